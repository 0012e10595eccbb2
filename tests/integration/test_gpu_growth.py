"""GPU node groups grow on demand through the OpenStack simulator (over openstacksdk), and shrink back."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from sandbox.hubrunner import start_hub
from tests.integration.growth import (
    A100,
    FAST,
    GROUP,
    MIG_GROUP,
    SHARED_GROUP,
    SHARING,
    T4,
    T4_GROUP,
    clear_faults,
    cloud_log,
    group_state,
    inject,
    log_mark,
    no_nodes_in,
    set_timings,
    start,
    writes,
)
from tests.waiting import wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.shares("gpu-a100", "gpu-t4", "gpu-capi", MIG_GROUP, SHARED_GROUP),
]
# A Cluster API group beside the Magnum ones: a MachineDeployment of the sandbox's Cluster API
# controller (sandbox/clusterapi/), its machines shaped like gpu-t4 nodes (and timed by its settings).
CAPI_GROUP, CAPI_NAMESPACE = "gpu-capi", "capi-growth"
CAPI = f"""
node_groups:
  {CAPI_GROUP}:
    gpu: {{resource: nvidia.com/gpu, per_node: 2, product: Tesla-T4}}
    taint: {{key: nvidia.com/gpu, value: present, effect: NoSchedule}}
    scaling:
      backend: clusterapi
      namespace: {CAPI_NAMESPACE}
      machine_deployment: {CAPI_GROUP}
      capacity: {{cpu: "8", memory: 32Gi}}
      mode: resize
      max_nodes: 2
profiles:
  - slug: capi-1
    display_name: "Dedicated 1 T4 GPU (Cluster API)"
    kind: dedicated
    cpu: 0.5
    memory: 1G
    gpus: 1
    node_group: {CAPI_GROUP}
    start_timeout: 300
"""
# The growth hub also grows the partitioned and shared GPU groups: one hub for both proofs.
CATALOG = {"a100.yaml": A100, "t4.yaml": T4, "capi.yaml": CAPI, "sharing.yaml": SHARING}
GROUPS = [GROUP, T4_GROUP, MIG_GROUP, SHARED_GROUP]  # given fast timings by the cloud fixture
LABEL = "magnum.openstack.org/nodegroup"
HUB_START_TIMEOUT = 60
# JupyterHub's default hub-wide start timeout (the chart's too); the GPU profiles set their own.
EXTRA = (
    "c.GPUScaling.interval = 1\nc.GPUScaling.grace_period = 5\n"
    f"c.KubeSpawner.start_timeout = {HUB_START_TIMEOUT}\n"
)
# A GPU node that boots for minutes, as on CERN's cloud: longer than the hub-wide start timeout.
PRODUCTION_BOOT = {"boot_delay": 90, "gpu_delay": 10}


@pytest.fixture(scope="module")
def machine_deployment(api_client, core):
    from kubernetes import client

    from sandbox.clusterapi.controller import install_crds

    # Already there on a sandbox started with them; a sandbox started before keeps its other tests.
    install_crds(api_client)
    objects = client.CustomObjectsApi(api_client)
    core.create_namespace({"metadata": {"name": CAPI_NAMESPACE}})
    body = {
        "apiVersion": "cluster.x-k8s.io/v1beta1",
        "kind": "MachineDeployment",
        "metadata": {"name": CAPI_GROUP, "annotations": {"sandbox.cern.ch/node-shape": T4_GROUP}},
        "spec": {"clusterName": "sandbox", "replicas": 0},
    }
    objects.create_namespaced_custom_object(
        "cluster.x-k8s.io", "v1beta1", CAPI_NAMESPACE, "machinedeployments", body
    )
    yield objects
    # Machines first (the sandbox then marks their nodes gone), then the namespace.
    objects.patch_namespaced_custom_object(
        "cluster.x-k8s.io",
        "v1beta1",
        CAPI_NAMESPACE,
        "machinedeployments",
        CAPI_GROUP,
        {"spec": {"replicas": 0}},
    )
    wait_until(
        lambda: not capi_objects(objects, "machines"), timeout=30, what="the Cluster API machines gone"
    )
    core.delete_namespace(CAPI_NAMESPACE)


def capi_objects(objects, plural: str) -> list[dict]:
    return objects.list_namespaced_custom_object("cluster.x-k8s.io", "v1beta1", CAPI_NAMESPACE, plural)[
        "items"
    ]


@pytest.fixture(scope="module")
def growth_hub(sandbox, tmp_path_factory, cloud, catalog, machine_deployment):
    extra = EXTRA + f"c.GPUScaling.cluster_api_kubeconfig = {sandbox['kubeconfig']!r}\n"
    try:
        hub = start_hub(tmp_path_factory.mktemp("growth-hub"), extra, env={"CERN_PROFILES": str(catalog)})
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    yield hub
    hub.stop()


def test_slices_and_shares_start_on_their_nodes_and_an_empty_mig_group_grows_per_slice_type(
    growth_hub, cloud, core, sandbox
):
    """A MIG-slice profile and a time-sliced profile each start on a node of their group holding
    their own extended resource, placed by the real scheduler from what the node agent advertises
    (as the NVIDIA device plugin would); the empty MIG group grows by what the requested slice type
    needs, not by the slices of other types its nodes would also bring."""

    def counts():
        return group_state(cloud, MIG_GROUP)["node_count"], group_state(cloud, SHARED_GROUP)["node_count"]

    # Left by an earlier run on a kept sandbox, empty nodes are given back by this hub first.
    wait_until(lambda: counts() == (0, 0), timeout=60, what="both sharing groups at 0 nodes")
    # Two 1g.10gb slices wanted: a node has one (and a 3g.40gb nobody asked for), so two nodes.
    users = {"mig-one": "mig-small", "mig-two": "mig-small", "shares-a-t4": "t4-share"}
    with ThreadPoolExecutor(len(users)) as pool:
        list(pool.map(lambda item: start(growth_hub, item[0], profile=item[1]), users.items()))
    try:

        def bound():
            """Each user's pod, once the scheduler has bound all three (their placement is the proof:
            the notebooks need not finish starting)."""
            pods = {}
            for user in users:
                found = core.list_namespaced_pod(
                    sandbox["user_namespace"], label_selector=f"hub.jupyter.org/username={user}"
                ).items
                if len(found) != 1 or not found[0].spec.node_name:
                    return None
                pods[user] = found[0]
            return pods

        pods = wait_until(bound, timeout=120, what="the three pods bound to new GPU nodes")
        placed, nodes = {}, set()
        for user, profile in users.items():
            pod = pods[user]
            node = core.read_node(pod.spec.node_name)
            limits = pod.spec.containers[0].resources.limits
            resource = "nvidia.com/mig-1g.10gb" if profile == "mig-small" else "nvidia.com/gpu.shared"
            placed[user] = (
                node.metadata.labels[LABEL],
                limits.get(resource),
                node.status.allocatable.get(resource),
            )
            assert "nvidia.com/gpu" not in limits, limits
            nodes.add(node.metadata.name)
        assert placed == {
            "mig-one": (MIG_GROUP, "1", "1"),
            "mig-two": (MIG_GROUP, "1", "1"),
            "shares-a-t4": (SHARED_GROUP, "1", "4"),
        }
        assert (len(nodes), counts()) == (3, (2, 1))
    finally:
        # Interrupts the starts; the nodes are given back while the module's other tests run.
        for user in users:
            growth_hub.api("DELETE", f"/users/{user}/server")


def at_rest(cloud, core) -> None:
    """The A100 group at 0 nodes, no change of it running, its nodes gone from the cluster: each test
    starts from there whatever the previous one left (a failed test's server, a shrink under way)."""
    wait_until(
        lambda: (
            (state := group_state(cloud))["node_count"] == 0
            and state["status"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE")
        ),
        timeout=120,
        what="the group at 0 nodes, no change running",
    )
    wait_until(lambda: no_nodes_in(core, GROUP), timeout=60, what="the group's nodes to leave the cluster")


def test_a_gpu_spawn_outlasts_a_minutes_long_boot_and_the_group_shrinks_back(
    growth_hub, cloud, core, sandbox
):
    """The node boots for longer than the hub-wide start timeout: the profile's own (300 s) is the
    deadline JupyterHub enforces. A profile with a short one (20 s) fails at that time, saying so."""
    at_rest(cloud, core)
    set_timings(cloud, GROUP, **PRODUCTION_BOOT)
    mark = log_mark(cloud)
    user, hasty = "needs-an-a100", "tries-quickly"
    reader, events, _ = start(growth_hub, user)
    hasty_reader, hasty_events, _ = start(growth_hub, hasty, profile="a100-quick")
    started = time.monotonic()
    try:

        def ready():
            return growth_hub.api("GET", f"/users/{user}").json()["servers"].get("", {}).get("ready")

        hasty_reader.join(timeout=60)
        assert hasty_events and hasty_events[-1].get("failed"), hasty_events
        assert (
            "No GPU became free within the profile's start timeout (20 s); try again later or pick a "
            "shared profile." in hasty_events[-1]["message"]
        ), hasty_events[-1]
        assert growth_hub.api("GET", f"/users/{hasty}").json()["servers"] == {}
        wait_until(ready, timeout=300, what="the notebook on a new GPU node")
        assert time.monotonic() - started > HUB_START_TIMEOUT  # the boot did outlast the hub-wide timeout
        reader.join(timeout=30)
        messages = [e.get("message", "") for e in events]
        # The phases in plain words, in order; the profile is named, never the node group.
        said = list(dict.fromkeys(m.split(" — ")[0] for m in messages))
        phases = [
            "No GPU is free for “Dedicated 1 A100 GPU”: asking the cloud for a new GPU node",
            "A new GPU node is starting",
            "The node joined; its GPU is being prepared",
            "Pulling the image",
        ]
        assert [m for m in said if m in phases] == phases, "\n".join(messages)
        # The container's start and the notebook's may fall between two looks; one of them is said.
        assert {"The container started; starting the notebook", "Starting the notebook"} & set(said), messages
        assert not [m for m in messages if GROUP in m], "\n".join(messages)
        # The scheduler's own text is still there, behind the details.
        assert any("nodes are available" in e.get("details", "") for e in events), events
        progress = [e["progress"] for e in events if "progress" in e]
        assert progress == sorted(progress), progress
        assert events[-1].get("ready") is True
        assert group_state(cloud)["node_count"] == 1
        assert len(writes(cloud, mark, GROUP)) == 1  # one resize, nothing else
        pod = core.read_namespaced_pod(f"jupyter-{user}", sandbox["user_namespace"])
        assert core.read_node(pod.spec.node_name).metadata.labels["magnum.openstack.org/nodegroup"] == GROUP

        metrics = growth_hub.session.get(f"{growth_hub.url}/hub/metrics", timeout=10).text
        assert (
            f'cern_spawner_backend_requests_total{{action="grow",node_group="{GROUP}",result="accepted"}} 1.0'
            in metrics
        )
        assert f'cern_spawner_nodes_target{{node_group="{GROUP}"}} 1.0' in metrics
        assert f'cern_spawner_node_ready_seconds_count{{node_group="{GROUP}"}} 1.0' in metrics
    finally:
        growth_hub.api("DELETE", f"/users/{user}/server")
        set_timings(cloud, GROUP, **FAST)
    wait_until(lambda: group_state(cloud)["node_count"] == 0, timeout=60, what="the group back at 0 nodes")
    wait_until(
        lambda: no_nodes_in(core, GROUP),
        timeout=30,
        what="the node to leave the cluster",
    )


def test_no_quota_fails_the_spawn_fast_with_the_reason_and_leaves_nothing(growth_hub, cloud, core, sandbox):
    at_rest(cloud, core)  # else a node left running would take the spawn without any resize
    inject(cloud, GROUP, quota=True, count=100, match="resize")
    user = "no-quota-left"
    try:
        # Fast: the controller's first round meets the quota error; nothing waits for the 300 s timeout.
        # Within its first seconds the spawn request itself answers with the reason.
        reader, events, response = start(growth_hub, user, expect=(201, 202, 503))
        if response.status_code == 503:
            message = response.json()["message"]
        else:
            wait_until(lambda: any(e.get("failed") for e in events), timeout=30, what="the spawn to fail")
            message = next(e for e in events if e.get("failed"))["message"]
        assert "quota" in message.lower(), message
        wait_until(
            lambda: (
                not core.list_namespaced_pod(
                    sandbox["user_namespace"], label_selector=f"hub.jupyter.org/username={user}"
                ).items
            ),
            timeout=60,
            what="the pod to be removed",
        )
        assert group_state(cloud)["node_count"] == 0
    finally:
        clear_faults(cloud, GROUP)


def test_ten_gpu_spawns_arriving_over_two_seconds_make_three_nodes_in_one_write(
    growth_hub, cloud, core, sandbox
):
    """A burst as a course's start or a loaded hub makes it: the starts arrive one by one, 0.2 s
    apart. The controller holds its resize until none came for GPUScaling.burst_quiet (1 s), so
    one write covers all ten; the group could not be resized again until that write is carried out."""
    at_rest(cloud, core)
    mark = log_mark(cloud)
    users = [f"crowd-{index}" for index in range(10)]
    for user in users:
        growth_hub.api("POST", f"/users/{user}")

    def spawn(index_user):
        index, user = index_user
        time.sleep(0.2 * index)
        response = growth_hub.api("POST", f"/users/{user}/server", json={"profile": "a100-1"})
        assert response.status_code in (201, 202), response.text

    try:
        with ThreadPoolExecutor(len(users)) as pool:
            list(pool.map(spawn, enumerate(users)))

        def all_ready():
            return all(
                growth_hub.api("GET", f"/users/{u}").json()["servers"].get("", {}).get("ready") for u in users
            )

        wait_until(all_ready, timeout=300, what="ten notebooks running")
        # 10 GPUs at 4 per node: exactly 3 nodes, asked for in one cloud write.
        assert group_state(cloud)["node_count"] == 3
        changes = writes(cloud, mark, GROUP)
        assert [r["path"].endswith("/actions/resize") for r in changes] == [True], changes
        nodes = {
            core.read_namespaced_pod(f"jupyter-{u}", sandbox["user_namespace"]).spec.node_name for u in users
        }
        assert len(nodes) == 3
    finally:
        for user in users:
            growth_hub.api("DELETE", f"/users/{user}/server")
    wait_until(lambda: group_state(cloud)["node_count"] == 0, timeout=90, what="the group back at 0 nodes")


def test_a_failing_cloud_api_is_retried_and_the_spawn_completes(growth_hub, cloud, core, sandbox):
    at_rest(cloud, core)
    mark = log_mark(cloud)
    inject(cloud, GROUP, status=500, count=2, match="resize")
    user = "cloud-hiccup"
    try:
        reader, events, _ = start(growth_hub, user)

        def ready():
            return growth_hub.api("GET", f"/users/{user}").json()["servers"].get("", {}).get("ready")

        wait_until(ready, timeout=180, what="the notebook after the cloud recovered")
        log = cloud_log(cloud, mark, GROUP)
        resizes = [r["status"] for r in log if r["path"].endswith("/actions/resize")]
        assert resizes == [500, 500, 202], resizes
        reader.join(timeout=30)
        assert any(e.get("message", "").startswith("The cloud is not answering; retrying") for e in events), (
            events
        )
    finally:
        clear_faults(cloud, GROUP)
        growth_hub.api("DELETE", f"/users/{user}/server")
    wait_until(lambda: group_state(cloud)["node_count"] == 0, timeout=90, what="the group back at 0 nodes")


def test_an_autoscaled_group_grows_by_raising_min_and_shrinks_by_lowering_it(
    growth_hub, cloud, core, sandbox
):
    assert group_state(cloud, T4_GROUP)["labels"] == {"auto_scaling_enabled": "true"}
    assert group_state(cloud, T4_GROUP)["node_count"] == 0
    mark = log_mark(cloud)
    user = "needs-a-t4"
    reader, events, _ = start(growth_hub, user, profile="t4-1")
    try:

        def ready():
            return growth_hub.api("GET", f"/users/{user}").json()["servers"].get("", {}).get("ready")

        wait_until(ready, timeout=180, what="the notebook on a new T4 node")
        state = group_state(cloud, T4_GROUP)
        # min pins the new node: the autoscaler would otherwise remove it while it waits idle for its GPU.
        assert (state["node_count"], state["min_node_count"]) == (1, 1)
        log = cloud_log(cloud, mark, T4_GROUP)
        changes = [
            "resize" if r["path"].endswith("/actions/resize") else r["method"]
            for r in log
            if r["method"] in ("POST", "PATCH")
        ]
        assert changes == ["resize", "PATCH"], changes  # node_count first: Magnum refuses min > node_count
    finally:
        growth_hub.api("DELETE", f"/users/{user}/server")
    # The hub only lowers min; the autoscaler then removes the idle node.
    wait_until(lambda: group_state(cloud, T4_GROUP)["min_node_count"] == 0, timeout=60, what="min back at 0")
    wait_until(lambda: group_state(cloud, T4_GROUP)["node_count"] == 0, timeout=60, what="idle node gone")
    wait_until(
        lambda: no_nodes_in(core, T4_GROUP),
        timeout=30,
        what="the T4 node to leave the cluster",
    )


def test_a_cluster_api_group_grows_by_replicas_and_shrinks_through_delete_machine(
    growth_hub, machine_deployment, core, sandbox
):
    user = "needs-a-capi-t4"
    start(growth_hub, user, profile="capi-1")
    try:

        def ready():
            return growth_hub.api("GET", f"/users/{user}").json()["servers"].get("", {}).get("ready")

        wait_until(ready, timeout=120, what="the notebook on a new Cluster API node")
        (deployment,) = capi_objects(machine_deployment, "machinedeployments")
        assert deployment["spec"]["replicas"] == 1
        annotations = deployment["metadata"]["annotations"]
        assert annotations["capacity.cluster-autoscaler.kubernetes.io/gpu-count"] == "2"
        assert (
            annotations["capacity.cluster-autoscaler.kubernetes.io/labels"]
            == f"magnum.openstack.org/nodegroup={CAPI_GROUP}"
        )
        pod = core.read_namespaced_pod(f"jupyter-{user}", sandbox["user_namespace"])
        node = core.read_node(pod.spec.node_name)
        assert node.metadata.labels["magnum.openstack.org/nodegroup"] == CAPI_GROUP
        (machine,) = capi_objects(machine_deployment, "machines")
        assert machine["spec"]["providerID"] == node.spec.provider_id
        # The sandbox deletes a marked Machine within its next round (0.5 s): a watch sees the mark.
        watched = watch_machines(machine_deployment, machine["metadata"]["resourceVersion"])
    finally:
        growth_hub.api("DELETE", f"/users/{user}/server")
    # Emptied, the node goes after the hub's grace period (5 s): its own Machine marked, then replicas.
    wait_until(
        lambda: deployment_replicas(machine_deployment) == 0, timeout=30, what="the replicas back at 0"
    )
    events = watched.result(timeout=30)
    marked = [
        o["metadata"]["name"]
        for kind, o in events
        if kind == "MODIFIED" and DELETE_MACHINE in annotations_of(o)
    ]
    deleted = [o["metadata"]["name"] for kind, o in events if kind == "DELETED"]
    assert (marked[:1], deleted) == ([machine["metadata"]["name"]], [machine["metadata"]["name"]]), events
    wait_until(lambda: no_nodes_in(core, CAPI_GROUP), timeout=30, what="the Cluster API node to leave")
    metrics = growth_hub.session.get(f"{growth_hub.url}/hub/metrics", timeout=10).text
    shrinks = f'action="shrink",node_group="{CAPI_GROUP}",result="accepted"'
    assert f"cern_spawner_backend_requests_total{{{shrinks}}} 1.0" in metrics
    # Timed apart from Magnum's calls (this hub runs both backends).
    resizes = 'backend="clusterapi",call="resize",result="ok"'
    assert f"cern_spawner_cloud_request_duration_seconds_count{{{resizes}}} 2.0" in metrics  # up, down


DELETE_MACHINE = "cluster.x-k8s.io/delete-machine"


def annotations_of(o: dict) -> dict:
    return o["metadata"].get("annotations") or {}


def deployment_replicas(objects) -> int:
    (deployment,) = capi_objects(objects, "machinedeployments")
    return deployment["spec"]["replicas"]


def watch_machines(objects, resource_version: str):
    """The Machines' watch events from `resource_version` until one is deleted (or 60 s)."""
    from kubernetes import watch

    def follow():
        events = []
        stream = watch.Watch()
        for event in stream.stream(
            objects.list_namespaced_custom_object,
            "cluster.x-k8s.io",
            "v1beta1",
            CAPI_NAMESPACE,
            "machines",
            resource_version=resource_version,
            timeout_seconds=60,
        ):
            events.append((event["type"], event["object"]))
            if event["type"] == "DELETED":
                stream.stop()
        return events

    return ThreadPoolExecutor(1).submit(follow)

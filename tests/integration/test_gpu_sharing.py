"""Partitioned and shared GPUs on the sandbox: a MIG-slice profile and a time-sliced profile each start
on a node of their group holding their own extended resource, placed by the real kube-scheduler from
what the node agent advertises (as the NVIDIA device plugin would), and an empty MIG group grows by
what the requested slice type needs, not by the slices of other types a node would also bring.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from sandbox.hubrunner import start_hub
from tests.integration.growth import group_state, set_timings, start
from tests.waiting import wait_until

MIG_GROUP, SHARED_GROUP = "gpu-a100-mig", "gpu-t4-shared"
pytestmark = [pytest.mark.integration, pytest.mark.shares(MIG_GROUP, SHARED_GROUP)]
GROUPS = [MIG_GROUP, SHARED_GROUP]
LABEL = "magnum.openstack.org/nodegroup"
TAINT = "taint: {key: nvidia.com/gpu, value: present, effect: NoSchedule}"
SCALING = "scaling: {backend: magnum, cluster: sandbox, mode: resize, min_nodes: 0, max_nodes: 2}"
# As sandbox/topology.yaml lays the nodes out: one 1g.10gb and one 3g.40gb slice per A100, and one
# T4 in 4 replicas advertised as nvidia.com/gpu.shared.
CATALOG = {
    "sharing.yaml": f"""
node_groups:
  {MIG_GROUP}:
    gpu:
      per_node: 1
      product: NVIDIA-A100-SXM4-80GB
      mig: {{slices: {{1g.10gb: 1, 3g.40gb: 1}}, config: sandbox-mixed}}
    {TAINT}
    {SCALING}
  {SHARED_GROUP}:
    gpu: {{per_node: 1, product: Tesla-T4, time_slicing: {{replicas: 4, rename_by_default: true}}}}
    {TAINT}
    {SCALING}
profiles:
  - slug: mig-small
    display_name: "A small A100 slice"
    kind: shared
    cpu: {{guarantee: 0.1, limit: 0.5}}
    memory: {{guarantee: 256M, limit: 1G}}
    mig_slice: 1g.10gb
    node_group: {MIG_GROUP}
    start_timeout: 120
  - slug: t4-share
    display_name: "A shared T4"
    kind: shared
    cpu: {{guarantee: 0.1, limit: 0.5}}
    memory: {{guarantee: 256M, limit: 1G}}
    shared_gpu: true
    node_group: {SHARED_GROUP}
    start_timeout: 120
"""
}
EXTRA = "c.GPUScaling.interval = 1\nc.GPUScaling.grace_period = 1\n"


@pytest.fixture(scope="module")
def sharing_hub(sandbox, tmp_path_factory, cloud, catalog):
    for group in GROUPS:  # on top of the growth tests' fast boots: a quick giving back
        set_timings(cloud, group, shrink_delay=0.5)
    try:
        hub = start_hub(tmp_path_factory.mktemp("sharing-hub"), EXTRA, env={"CERN_PROFILES": str(catalog)})
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    yield hub
    hub.stop()


def notebook_pod(core, namespace, user):
    (pod,) = core.list_namespaced_pod(namespace, label_selector=f"hub.jupyter.org/username={user}").items
    return pod


def test_slices_and_shares_start_on_their_nodes_and_an_empty_mig_group_grows_per_slice_type(
    sharing_hub, cloud, core, sandbox
):
    assert (group_state(cloud, MIG_GROUP)["node_count"], group_state(cloud, SHARED_GROUP)["node_count"]) == (
        0,
        0,
    )
    # Two 1g.10gb slices wanted: a node has one (and a 3g.40gb nobody asked for), so two nodes.
    users = {"mig-one": "mig-small", "mig-two": "mig-small", "shares-a-t4": "t4-share"}
    with ThreadPoolExecutor(len(users)) as pool:
        list(pool.map(lambda item: start(sharing_hub, item[0], profile=item[1]), users.items()))
    try:

        def all_ready():
            return all(
                sharing_hub.api("GET", f"/users/{user}").json()["servers"].get("", {}).get("ready")
                for user in users
            )

        wait_until(all_ready, timeout=120, what="the three notebooks on new GPU nodes")
        namespace = sandbox["user_namespace"]
        placed = {}
        for user, profile in users.items():
            pod = notebook_pod(core, namespace, user)
            node = core.read_node(pod.spec.node_name)
            limits = pod.spec.containers[0].resources.limits
            resource = "nvidia.com/mig-1g.10gb" if profile == "mig-small" else "nvidia.com/gpu.shared"
            placed[user] = (
                node.metadata.labels[LABEL],
                limits.get(resource),
                node.status.allocatable.get(resource),
            )
            assert "nvidia.com/gpu" not in limits, limits
        assert placed == {
            "mig-one": (MIG_GROUP, "1", "1"),
            "mig-two": (MIG_GROUP, "1", "1"),
            "shares-a-t4": (SHARED_GROUP, "1", "4"),
        }
        assert notebook_pod(core, namespace, "mig-one").spec.node_name != (
            notebook_pod(core, namespace, "mig-two").spec.node_name
        )
        assert (
            group_state(cloud, MIG_GROUP)["node_count"],
            group_state(cloud, SHARED_GROUP)["node_count"],
        ) == (2, 1)
    finally:
        for user in users:
            sharing_hub.api("DELETE", f"/users/{user}/server")
    # Emptied, the groups shrink back (grace 1 s), as whole-GPU groups do: the cloud's count is what
    # the next run starts from.
    wait_until(
        lambda: (
            group_state(cloud, MIG_GROUP)["node_count"] == group_state(cloud, SHARED_GROUP)["node_count"] == 0
        ),
        timeout=90,
        what="both groups back to 0 nodes",
    )

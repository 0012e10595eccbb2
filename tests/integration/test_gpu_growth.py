"""GPU node groups grow on demand through the OpenStack simulator (over openstacksdk), and shrink back."""

from __future__ import annotations

import json
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from sandbox.hubrunner import start_hub
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
PROFILES = Path(__file__).resolve().parents[2] / "profiles"
GROUP = "gpu-a100"
A100 = f"""
node_groups:
  {GROUP}:
    gpu: {{resource: nvidia.com/gpu, per_node: 4, product: NVIDIA-A100-SXM4-40GB}}
    taint: {{key: nvidia.com/gpu, value: present, effect: NoSchedule}}
    scaling: {{backend: magnum, cluster: sandbox, mode: resize, min_nodes: 0, max_nodes: 4}}
profiles:
  - slug: a100-1
    display_name: "Dedicated 1 A100 GPU"
    kind: dedicated
    cpu: 0.5
    memory: 1G
    gpus: 1
    node_group: {GROUP}
    start_timeout: 300
"""
# An autoscaled group (Cluster API style): the hub raises min_node_count, the autoscaler removes idle nodes.
T4_GROUP = "gpu-t4"
T4 = f"""
node_groups:
  {T4_GROUP}:
    gpu: {{resource: nvidia.com/gpu, per_node: 2, product: Tesla-T4}}
    taint: {{key: nvidia.com/gpu, value: present, effect: NoSchedule}}
    scaling: {{backend: magnum, cluster: sandbox, mode: raise-min, min_nodes: 0, max_nodes: 3}}
profiles:
  - slug: t4-1
    display_name: "Dedicated 1 T4 GPU"
    kind: dedicated
    cpu: 0.5
    memory: 1G
    gpus: 1
    node_group: {T4_GROUP}
    start_timeout: 300
"""


@pytest.fixture(scope="module")
def cloud(sandbox):
    url = sandbox["openstack"]["url"]
    requests.post(
        f"{url}/_simulator/settings",
        json={"boot_delay": 2, "gpu_delay": 1, "autoscaler_interval": 1, "scale_down_unneeded": 3},
        timeout=10,
    ).raise_for_status()
    yield url
    requests.delete(f"{url}/_simulator/faults", timeout=10)


EXTRA = "c.CERNSpawner.scaling_interval = 1\nc.CERNSpawner.scaling_grace_period = 5\n"


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    directory = tmp_path_factory.mktemp("profiles")
    shutil.copy(PROFILES / "default.yaml", directory / "default.yaml")
    (directory / "a100.yaml").write_text(A100)
    (directory / "t4.yaml").write_text(T4)
    return directory


@pytest.fixture(scope="module")
def growth_hub(sandbox, tmp_path_factory, cloud, catalog):
    try:
        hub = start_hub(tmp_path_factory.mktemp("growth-hub"), EXTRA, env={"CERN_PROFILES": str(catalog)})
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    yield hub
    hub.stop()


def group_state(cloud, group=GROUP) -> dict:
    return requests.get(f"{cloud}/_simulator/state", timeout=10).json()["groups"][group]


def writes(cloud) -> list[dict]:
    log = requests.get(f"{cloud}/_simulator/state", timeout=10).json()["requests"]
    return [r for r in log if r["method"] in ("POST", "PATCH") and r["status"] < 300]


def follow_progress(hub, user) -> tuple[threading.Thread, list[dict]]:
    """Read the spawn's progress event stream in the background, as the spawn page does.

    Started before the spawn request: that request itself waits up to 10 s for a fast spawn, so
    a reader started after it could miss the whole story.
    """
    events: list[dict] = []

    def read():
        while not (events and (events[-1].get("ready") or events[-1].get("failed"))):
            url = f"{hub.url}/hub/api/users/{user}/server/progress"
            with requests.get(url, headers=hub.session.headers, stream=True, timeout=300) as response:
                if response.status_code != 200:
                    time.sleep(0.2)  # not pending yet
                    continue
                for line in response.iter_lines(decode_unicode=True):
                    if line and line.startswith("data:"):
                        events.append(json.loads(line[5:]))

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread, events


def start(hub, user, expect=(201, 202), profile="a100-1"):
    hub.api("POST", f"/users/{user}")
    reader, events = follow_progress(hub, user)
    response = hub.api("POST", f"/users/{user}/server", json={"profile": profile})
    assert response.status_code in expect, response.text
    return reader, events, response


def test_a_gpu_spawn_grows_the_empty_group_then_it_shrinks_back(growth_hub, cloud, core, sandbox):
    assert group_state(cloud)["node_count"] == 0
    before = len(writes(cloud))
    user = "needs-an-a100"
    reader, events, _ = start(growth_hub, user)

    def ready():
        return growth_hub.api("GET", f"/users/{user}").json()["servers"].get("", {}).get("ready")

    wait_until(ready, timeout=180, what="the notebook on a new GPU node")
    reader.join(timeout=30)
    messages = [e.get("message", "") for e in events]
    assert any(f"Requested 1 new GPU node(s) for {GROUP} (0 → 1)" in m for m in messages), messages
    assert events[-1].get("ready") is True
    assert group_state(cloud)["node_count"] == 1
    assert len(writes(cloud)) - before == 1  # one resize, nothing else
    pod = core.read_namespaced_pod(f"jupyter-{user}", sandbox["user_namespace"])
    assert core.read_node(pod.spec.node_name).metadata.labels["magnum.openstack.org/nodegroup"] == GROUP

    metrics = growth_hub.session.get(f"{growth_hub.url}/hub/metrics", timeout=10).text
    assert (
        f'cern_spawner_backend_requests_total{{action="grow",node_group="{GROUP}",result="accepted"}} 1.0'
        in metrics
    )
    assert f'cern_spawner_nodes_target{{node_group="{GROUP}"}} 1.0' in metrics
    assert f'cern_spawner_node_ready_seconds_count{{node_group="{GROUP}"}} 1.0' in metrics

    growth_hub.api("DELETE", f"/users/{user}/server")
    wait_until(lambda: group_state(cloud)["node_count"] == 0, timeout=60, what="the group back at 0 nodes")
    wait_until(
        lambda: (
            not [
                n
                for n in core.list_node().items
                if n.metadata.labels.get("magnum.openstack.org/nodegroup") == GROUP
            ]
        ),
        timeout=30,
        what="the node to leave the cluster",
    )


def test_no_quota_fails_the_spawn_fast_with_the_reason_and_leaves_nothing(growth_hub, cloud, core, sandbox):
    requests.post(
        f"{cloud}/_simulator/faults", json={"quota": True, "count": 100, "match": "resize"}, timeout=10
    )
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
        requests.delete(f"{cloud}/_simulator/faults", timeout=10)


def test_ten_concurrent_gpu_spawns_make_three_nodes_with_at_most_three_writes(
    growth_hub, cloud, core, sandbox
):
    wait_until(lambda: group_state(cloud)["node_count"] == 0, timeout=60, what="the group at 0 nodes")
    before = len(writes(cloud))
    users = [f"crowd-{index}" for index in range(10)]
    for user in users:
        growth_hub.api("POST", f"/users/{user}")

    def spawn(user):
        response = growth_hub.api("POST", f"/users/{user}/server", json={"profile": "a100-1"})
        assert response.status_code in (201, 202), response.text

    try:
        with ThreadPoolExecutor(len(users)) as pool:
            list(pool.map(spawn, users))

        def all_ready():
            return all(
                growth_hub.api("GET", f"/users/{u}").json()["servers"].get("", {}).get("ready") for u in users
            )

        wait_until(all_ready, timeout=300, what="ten notebooks running")
        # 10 GPUs at 4 per node: exactly 3 nodes, asked for in at most 3 cloud writes.
        assert group_state(cloud)["node_count"] == 3
        assert len(writes(cloud)) - before <= 3
        nodes = {
            core.read_namespaced_pod(f"jupyter-{u}", sandbox["user_namespace"]).spec.node_name for u in users
        }
        assert len(nodes) == 3
    finally:
        for user in users:
            growth_hub.api("DELETE", f"/users/{user}/server")
    wait_until(lambda: group_state(cloud)["node_count"] == 0, timeout=90, what="the group back at 0 nodes")


def test_a_failing_cloud_api_is_retried_and_the_spawn_completes(growth_hub, cloud, core, sandbox):
    # node_count drops to 0 when the shrink is accepted; the node itself leaves a little later.
    wait_until(
        lambda: group_state(cloud)["status"] == "UPDATE_COMPLETE", timeout=90, what="the shrink to finish"
    )
    wait_until(lambda: group_state(cloud)["node_count"] == 0, timeout=90, what="the group at 0 nodes")
    wait_until(
        lambda: (
            not [
                n
                for n in core.list_node().items
                if n.metadata.labels.get("magnum.openstack.org/nodegroup") == GROUP
            ]
        ),
        timeout=60,
        what="the group's nodes to leave the cluster",
    )
    seen = len(requests.get(f"{cloud}/_simulator/state", timeout=10).json()["requests"])
    requests.post(
        f"{cloud}/_simulator/faults", json={"status": 500, "count": 2, "match": "resize"}, timeout=10
    )
    user = "cloud-hiccup"
    try:
        reader, events, _ = start(growth_hub, user)

        def ready():
            return growth_hub.api("GET", f"/users/{user}").json()["servers"].get("", {}).get("ready")

        wait_until(ready, timeout=180, what="the notebook after the cloud recovered")
        log = requests.get(f"{cloud}/_simulator/state", timeout=10).json()["requests"][seen:]
        resizes = [r["status"] for r in log if r["path"].endswith("/actions/resize")]
        assert resizes == [500, 500, 202], resizes
        reader.join(timeout=30)
        assert any("Retrying" in e.get("message", "") for e in events), events
    finally:
        requests.delete(f"{cloud}/_simulator/faults", timeout=10)
        growth_hub.api("DELETE", f"/users/{user}/server")
    wait_until(lambda: group_state(cloud)["node_count"] == 0, timeout=90, what="the group back at 0 nodes")


def test_an_autoscaled_group_grows_by_raising_min_and_shrinks_by_lowering_it(
    growth_hub, cloud, core, sandbox
):
    assert group_state(cloud, T4_GROUP)["labels"] == {"auto_scaling_enabled": "true"}
    assert group_state(cloud, T4_GROUP)["node_count"] == 0
    seen = len(requests.get(f"{cloud}/_simulator/state", timeout=10).json()["requests"])
    user = "needs-a-t4"
    reader, events, _ = start(growth_hub, user, profile="t4-1")
    try:

        def ready():
            return growth_hub.api("GET", f"/users/{user}").json()["servers"].get("", {}).get("ready")

        wait_until(ready, timeout=180, what="the notebook on a new T4 node")
        state = group_state(cloud, T4_GROUP)
        # min pins the new node: the autoscaler would otherwise remove it while it waits idle for its GPU.
        assert (state["node_count"], state["min_node_count"]) == (1, 1)
        log = requests.get(f"{cloud}/_simulator/state", timeout=10).json()["requests"][seen:]
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
        lambda: (
            not [
                n
                for n in core.list_node().items
                if n.metadata.labels.get("magnum.openstack.org/nodegroup") == T4_GROUP
            ]
        ),
        timeout=30,
        what="the T4 node to leave the cluster",
    )

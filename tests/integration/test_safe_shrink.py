"""Giving GPU nodes back never costs anyone their work, and a misbehaving cloud is not waited on
silently — under the simulator's Heat-like timings: a resize down keeps the group UPDATE_IN_PROGRESS
for a while, the removed VM's Node object leaves Kubernetes later still, the cloud can fail or hang.

The workloads here are plain pods in the hub's namespace, each holding GPUs as a notebook does:
the controller counts every pod bound to a node, whoever started it.
"""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime

import pytest
from kubernetes.client.rest import ApiException

from cern_spawner.scaling.capacity import REMOVAL_ANNOTATION
from tests.integration.growth import (
    H100,
    H100_GROUP,
    L4,
    L4_GROUP,
    NODE_GROUP_NODE_LABEL,
    RestartableHub,
    clear_faults,
    gpu_holder_pod,
    group_state,
    inject,
    log_mark,
    no_nodes_in,
    set_timings,
    start,
    writes,
)
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.shares("gpu-h100", "gpu-l4")]
# Groups of its own, so that this module runs beside the other GPU modules.
GROUPS = [H100_GROUP, L4_GROUP]
# H100 keeps one node's worth of GPUs ready in office hours, read on the hub's wall clock, which
# this module moves (WALL_CLOCK): outside the window until the standby test, so the other tests
# see a plain group.
STANDBY = (
    "standby: {gpus: 4, timezone: Europe/Zurich, windows: [{days: mon-fri, from: '08:00', to: '18:00'}]}"
)
CATALOG = {"h100.yaml": H100.replace("max_nodes: 4}", f"max_nodes: 4, {STANDBY}}}"), "l4.yaml": L4}
WALL_CLOCK = "wall-clock"  # in the hub's directory: the time the hub's controller reads, ISO 8601
SUNDAY = datetime(2026, 12, 6, 12, tzinfo=UTC)
MONDAY_0800 = datetime(2026, 12, 7, 7, 0, 30, tzinfo=UTC)  # 08:00:30 in Zurich
MONDAY_1800 = datetime(2026, 12, 7, 17, 0, 30, tzinfo=UTC)  # 18:00:30
GRACE = 5  # per node, from when it emptied
# Calls to a failing cloud give up sooner than the defaults (20 s, 30 s; unit-tested) to keep the
# suite short; the behaviour is the same.
EXTRA = (
    f"c.CERNSpawner.scaling_interval = 1\nc.CERNSpawner.scaling_grace_period = {GRACE}\n"
    "c.JupyterHub.cleanup_servers = False\n"
    "c.GPUScaling.call_timeout = 5\nc.GPUScaling.retry_timeout = 10\n"
    # A moved clock is seen at the next idle read (a real window edge wakes the controller itself).
    "c.GPUScaling.idle_refresh = 1\n"
    "import datetime, pathlib\n"
    "c.GPUScaling.wall_clock = lambda: datetime.datetime.fromisoformat("
    f"pathlib.Path({WALL_CLOCK!r}).read_text())\n"
)
HEAT = {"boot_delay": 3, "gpu_delay": 1, "shrink_delay": 3, "node_removal_lag": 4}
# The resize down stays in progress long enough for a hub restart to land in the middle of it: a
# hub's stop and start take up to ~20 s on a loaded 2-core machine (20 s was missed once).
SLOW_SHRINK = {"shrink_delay": 45}


@pytest.fixture(scope="module")
def hubs(sandbox, catalog, cloud, tmp_path_factory):
    for group in GROUPS:
        set_timings(cloud, group, **HEAT)
    hubs = RestartableHub(tmp_path_factory.mktemp("shrink-hub"), EXTRA, catalog)
    set_wall_clock(hubs, SUNDAY)
    hubs.launch()
    yield hubs
    hubs.close()


def set_wall_clock(hubs: RestartableHub, moment: datetime) -> None:
    (hubs.directory / WALL_CLOCK).write_text(moment.isoformat())


def workload(name: str, group: str) -> dict:
    """A pod that holds one GPU of `group` until deleted, as a notebook would."""
    return gpu_holder_pod(name, group, {"app": "shrink-test"}, grace=1)


def running_on(core, namespace, group) -> dict[str, list[str]]:
    """node -> names of this test's running pods on it."""
    placed: dict[str, list[str]] = {}
    for pod in core.list_namespaced_pod(namespace, label_selector="app=shrink-test").items:
        if pod.status.phase == "Running" and pod.spec.node_name:
            placed.setdefault(pod.spec.node_name, []).append(pod.metadata.name)
    return placed


def delete_pods(core, namespace, names) -> None:
    for name in names:
        core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)


def group_nodes(core, group) -> dict:
    return {
        n.metadata.name: n for n in core.list_node(label_selector=f"{NODE_GROUP_NODE_LABEL}={group}").items
    }


def fill_two_nodes(core, namespace, cloud, group, per_node) -> dict[str, list[str]]:
    """Grow `group` from 0 to 2 full nodes through the hub's controller; node -> its pods."""
    wait_until(
        lambda: group_state(cloud, group)["node_count"] == 0 and no_nodes_in(core, group),
        timeout=120,
        what=f"{group} at 0 nodes",
    )
    for i in range(2 * per_node):
        core.create_namespaced_pod(namespace, workload(f"{group}-work-{i}", group))
    placed = wait_until(
        lambda: (p := running_on(core, namespace, group)) and sum(map(len, p.values())) == 2 * per_node and p,
        timeout=180,
        what=f"{2 * per_node} GPU pods running on 2 new nodes",
    )
    assert sorted(map(len, placed.values())) == [per_node, per_node], placed
    return placed


def test_the_incident_resize_mode_with_a_hub_restart_in_the_middle_of_the_shrink(hubs, cloud, core, sandbox):
    """2 nodes, 4 GPU pods on each; those on one node stop. Only that node goes, after its own grace,
    and neither the first hub nor the one restarted during the resize makes a second write."""
    namespace = sandbox["user_namespace"]
    placed = fill_two_nodes(core, namespace, cloud, H100_GROUP, per_node=4)
    victim, survivor = sorted(placed)
    set_timings(cloud, H100_GROUP, **SLOW_SHRINK)
    try:
        mark = log_mark(cloud)
        delete_pods(core, namespace, placed[victim])
        emptied = time.time()

        shrink = wait_until(lambda: writes(cloud, mark, H100_GROUP), timeout=90, what="a shrink request")
        assert [w["path"].endswith("/actions/resize") for w in shrink] == [True], shrink
        assert shrink[0]["at"] - emptied >= GRACE - 1  # not the moment it emptied: its own grace first
        node = core.read_node(victim)
        assert node.spec.unschedulable and REMOVAL_ANNOTATION in node.metadata.annotations  # cordoned first
        assert group_state(cloud, H100_GROUP)["status"] == "UPDATE_IN_PROGRESS"

        hubs.hubs[-1].stop()  # a rolling update, while Heat deletes the VM
        hubs.launch()
        assert victim in group_nodes(core, H100_GROUP)  # the new hub starts while the removal is under way
        wait_until(lambda: victim not in group_nodes(core, H100_GROUP), timeout=90, what=f"{victim} to leave")
        set_timings(cloud, H100_GROUP, **HEAT)
        time.sleep(GRACE + 2)  # rounds of the new hub past any grace, on the settled view
        assert len(writes(cloud, mark, H100_GROUP)) == 1, writes(cloud, mark, H100_GROUP)
        assert group_state(cloud, H100_GROUP)["node_count"] == 1
        assert list(group_nodes(core, H100_GROUP)) == [survivor]
        assert sorted(running_on(core, namespace, H100_GROUP)[survivor]) == sorted(placed[survivor])

        delete_pods(core, namespace, placed[survivor])
        wait_until(
            lambda: group_state(cloud, H100_GROUP)["node_count"] == 0, timeout=90, what="the group back at 0"
        )
        wait_until(lambda: no_nodes_in(core, H100_GROUP), timeout=60, what="the last node to leave")
        assert len(writes(cloud, mark, H100_GROUP)) == 2
    finally:  # a failure here must not leave the next tests a slow Heat and busy nodes
        set_timings(cloud, H100_GROUP, **HEAT)
        for name in placed[survivor] + placed[victim]:
            with contextlib.suppress(ApiException):
                core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)


def test_the_incident_in_raise_min_mode(hubs, cloud, core, sandbox):
    """Autoscaled group: the hub lowers min only to the nodes in use; the autoscaler removes the idle
    node and never the one running pods."""
    namespace = sandbox["user_namespace"]
    placed = fill_two_nodes(core, namespace, cloud, L4_GROUP, per_node=2)
    victim, survivor = sorted(placed)
    assert group_state(cloud, L4_GROUP)["min_node_count"] == 2
    mark = log_mark(cloud)
    delete_pods(core, namespace, placed[victim])
    wait_until(lambda: victim not in group_nodes(core, L4_GROUP), timeout=120, what=f"{victim} to leave")
    time.sleep(GRACE + 2)
    state = group_state(cloud, L4_GROUP)
    assert (state["min_node_count"], state["node_count"]) == (1, 1)
    assert [w["method"] for w in writes(cloud, mark, L4_GROUP) if "nodegroups" in w["path"]] == ["PATCH"]
    assert sorted(running_on(core, namespace, L4_GROUP)[survivor]) == sorted(placed[survivor])

    delete_pods(core, namespace, placed[survivor])
    wait_until(lambda: group_state(cloud, L4_GROUP)["node_count"] == 0, timeout=120, what="back at 0")
    assert group_state(cloud, L4_GROUP)["min_node_count"] == 0


def test_standby_gpus_grow_at_the_window_start_and_go_at_its_end_leaving_the_busy_node(
    hubs, cloud, core, sandbox
):
    """08:00: one node boots with no one asking; a user takes a GPU of it at once and the group
    grows to keep 4 free; 18:00: the spare node goes, the node running the user's pod stays."""
    namespace = sandbox["user_namespace"]
    set_timings(cloud, H100_GROUP, **STANDBY_TIMINGS)
    wait_until(
        lambda: group_state(cloud, H100_GROUP)["node_count"] == 0 and no_nodes_in(core, H100_GROUP),
        timeout=60,
        what="H100 at 0 nodes",
    )
    mark = log_mark(cloud)
    try:
        set_wall_clock(hubs, MONDAY_0800)
        (standby,) = wait_until(lambda: gpus_ready(core, H100_GROUP, 1), timeout=60, what="a standby node")
        assert [w["path"].endswith("/actions/resize") for w in writes(cloud, mark, H100_GROUP)] == [True]

        core.create_namespaced_pod(namespace, workload("standby-user", H100_GROUP))
        placed = wait_until(
            lambda: running_on(core, namespace, H100_GROUP), timeout=60, what="the user's pod"
        )
        assert placed == {standby: ["standby-user"]}  # served by the standby node, not a new one
        nodes = wait_until(lambda: gpus_ready(core, H100_GROUP, 2), timeout=60, what="the standby restored")
        spare = next(n for n in nodes if n != standby)
        assert len(writes(cloud, mark, H100_GROUP)) == 2

        set_wall_clock(hubs, MONDAY_1800)
        wait_until(
            lambda: spare not in group_nodes(core, H100_GROUP), timeout=60, what="the spare node to go"
        )
        assert group_state(cloud, H100_GROUP)["node_count"] == 1
        assert running_on(core, namespace, H100_GROUP) == {standby: ["standby-user"]}
        assert not core.read_node(standby).spec.unschedulable  # never cordoned
        shrinks = writes(cloud, mark, H100_GROUP)[2:]
        assert len(shrinks) == 1 and shrinks[0]["path"].endswith("/actions/resize"), shrinks
    finally:
        set_wall_clock(hubs, SUNDAY)
        delete_pods(core, namespace, ["standby-user"])
    wait_until(lambda: group_state(cloud, H100_GROUP)["node_count"] == 0, timeout=60, what="H100 back at 0")
    set_timings(cloud, H100_GROUP, **HEAT)


STANDBY_TIMINGS = {"boot_delay": 1, "gpu_delay": 0.5, "shrink_delay": 1, "node_removal_lag": 1}


def gpus_ready(core, group, count) -> list[str] | None:
    """The group's node names once `count` nodes have allocatable GPUs, else None."""
    nodes = group_nodes(core, group)
    ready = [
        name
        for name, node in sorted(nodes.items())
        if int((node.status.allocatable or {}).get("nvidia.com/gpu", "0")) > 0
        and any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
    ]
    return ready if len(ready) == count == len(nodes) else None


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"status": 500, "count": 10000, "match": "any"}, id="every-call-answers-500"),
        pytest.param({"hang": True, "count": 10000, "match": "any"}, id="every-call-hangs"),
    ],
)
def test_a_failing_cloud_fails_the_waiting_spawn_with_a_plain_message_and_leaves_nothing(
    hubs, cloud, core, sandbox, fault
):
    hub = hubs.hubs[-1]
    wait_until(lambda: group_state(cloud, H100_GROUP)["node_count"] == 0, timeout=90, what="the group at 0")
    mark = log_mark(cloud)
    inject(cloud, H100_GROUP, **fault)
    user = f"cloud-fault-{'hang' if fault.get('hang') else '500'}"
    try:
        # When the cloud still fails from an earlier test, one fresh try fails within the spawn
        # request's first seconds and the request itself answers 503 with the reason.
        reader, events, response = start(hub, user, expect=(201, 202, 503), profile="h100-1")
        reader.join(timeout=90)
        if response.status_code == 503:
            message = response.json()["message"]
        else:
            assert events and events[-1].get("failed"), events
            message = events[-1]["message"]
        assert "The cloud is not answering; try again later or pick a shared profile." in message
        assert hub.api("GET", f"/users/{user}").json()["servers"] == {}
        assert not core.list_namespaced_pod(
            sandbox["user_namespace"], label_selector=f"hub.jupyter.org/username={user}"
        ).items
        assert hub.api("GET", "/").status_code == 200  # the hub answered all along
    finally:
        clear_faults(cloud, H100_GROUP)
    time.sleep(2)  # rounds after the cloud answers again: the user is gone, nothing is grown
    assert group_state(cloud, H100_GROUP)["node_count"] == 0
    assert writes(cloud, mark, H100_GROUP) == []  # nothing was grown for the user who was told to go

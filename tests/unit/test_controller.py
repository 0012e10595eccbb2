"""The scaling controller's decisions against a recording cloud and a recording Kubernetes API
(the cloud and the API server are the only stand-ins; tests/integration runs the real ones)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY

from cern_spawner.scaling.capacity import REMOVAL_ANNOTATION, summarize
from cern_spawner.scaling.controller import ScalingController
from cern_spawner.scaling.errors import CeilingReached, CloudUnavailable, QuotaExceeded, TemporaryError
from cern_spawner.scaling.magnum import GroupState
from cern_spawner.scaling.memory import Memory
from cern_spawner.scaling.pacing import QUIET_READ_CAP
from cern_spawner.scaling.standby import parse as parse_standby
from cern_spawner.scaling.state import ScaledGroup

pytestmark = pytest.mark.unit
LABEL = "magnum.openstack.org/nodegroup"
GROUP = ScaledGroup("gpu-v100", LABEL, "nvidia.com/gpu", 4, "sandbox", "resize", 0, 4)


class Cloud:
    """Records the writes the controller makes, answers with a settable state or raises."""

    def __init__(self, state: GroupState, error: Exception | None = None, hang: float = 0):
        self.state_now, self.error, self.hang, self.writes, self.reads = state, error, hang, [], 0

    def state(self, group):
        self.reads += 1
        if self.hang:
            time.sleep(self.hang)
        if self.error:
            raise self.error
        return self.state_now

    def resize(self, group, node_count, nodes_to_remove=None):
        if self.error:
            raise self.error
        self.writes.append(("resize", node_count, tuple(nodes_to_remove or ())))
        self.state_now = replace(self.state_now, node_count=node_count, status="UPDATE_IN_PROGRESS")

    def patch(self, group, current, **changes):
        if self.error:
            raise self.error
        self.writes.append(("patch", tuple(sorted(changes.items()))))
        fields = {"min_node_count": "min_nodes", "max_node_count": "max_nodes"}
        self.state_now = replace(self.state_now, **{fields[k]: v for k, v in changes.items()})

    def done(self):
        self.state_now = replace(self.state_now, status="UPDATE_COMPLETE")


class Kube:
    """The API server's node patches and pod listings, recorded; `bound` pods appear on a node
    between the watch's view and the controller's re-check."""

    def __init__(self, view):
        self.view, self.patches, self.bound = view, [], {}

    async def patch_node(self, name, body):
        self.patches.append((name, body["spec"]["unschedulable"]))
        node = self.view.nodes.get(name)
        if node is not None:
            node.setdefault("spec", {})["unschedulable"] = body["spec"]["unschedulable"]
            annotations = node["metadata"].setdefault("annotations", {})
            annotations.update(body["metadata"]["annotations"])
            node["metadata"]["annotations"] = {k: v for k, v in annotations.items() if v is not None}

    async def list_pod_for_all_namespaces(self, field_selector, _preload_content):
        node = field_selector.split("=", 1)[1]
        items = [p for p in self.view.pods.values() if p["spec"].get("nodeName") == node]
        items += [gpu_pod(name, node=node) for name in self.bound.get(node, ())]

        class Response:
            async def json(self):
                return {"items": items}

        return Response()


class View:
    def __init__(self, nodes=(), pods=()):
        self.nodes = {n["metadata"]["name"]: n for n in nodes}
        self.pods = {}
        for p in pods:
            self.add(p)
        self.synced, self.changed = asyncio.Event(), asyncio.Event()
        self.synced.set()
        self.last_arrival = None  # as ClusterView: when a new unscheduled pod was last seen
        self.expected = {}  # as ClusterView: pods of starts under way, not seen yet -> group

    def in_flight(self, group):
        return sum(1 for expected in self.expected.values() if expected == group)

    def expect(self, key, group):
        self.expected[key] = group

    def unexpect(self, key):
        if self.expected.pop(key, None) is not None:
            self.changed.set()

    def add(self, pod):
        self.pods[f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"] = pod

    def remove(self, name, namespace="hub"):
        del self.pods[f"{namespace}/{name}"]

    def start(self, groups=None):
        self.groups = groups

    def regroup(self):
        pass

    def capacity(self, group, gpus_per_node, namespace=None, leaving=frozenset()):
        return summarize(
            self.nodes.values(), self.pods.values(), [group], {group.name: gpus_per_node}, namespace, leaving
        )[group.name]


def gpu_node(name, gpus="4", group="gpu-v100"):
    return {
        "metadata": {"name": name, "labels": {LABEL: group}},
        "spec": {"providerID": f"openstack:///uuid-{name}"},
        "status": {
            "allocatable": {"nvidia.com/gpu": gpus},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def gpu_pod(name, node=None, gpus=1, group="gpu-v100", namespace="hub"):
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "nodeName": node,
            "nodeSelector": {LABEL: group},
            "containers": [{"resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}],
        },
        "status": {"phase": "Running" if node else "Pending"},
    }


def cloud_state(nodes, status="UPDATE_COMPLETE", minimum=0, maximum=4):
    return GroupState("gpu-v100", nodes, minimum, maximum, status, "")


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def controller(cloud, view, group=GROUP, clock=None, kube=True, groups=None, **kwargs):
    return ScalingController(
        groups or (lambda: [group]),
        view,
        lambda cluster: cloud,
        logging.getLogger("test"),
        kube=Kube(view) if kube is True else kube,
        namespace="hub",
        grace=60,
        clock=clock or Clock(),
        **kwargs,
    )


def run(coroutine):
    return asyncio.run(coroutine)


def rounds(scaler, clock, count=1, step=0.0):
    for _ in range(count):
        clock.now += step
        run(scaler.reconcile())


# -- growth ----------------------------------------------------------------------------------------
def test_ten_waiting_users_on_an_empty_group_make_one_request_for_three_nodes():
    cloud = Cloud(cloud_state(0))
    view = View(pods=[gpu_pod(f"p{i}") for i in range(10)])
    scaler = controller(cloud, view)
    for _ in range(3):  # later rounds see the growth under way and ask for nothing more
        run(scaler.reconcile())
    assert cloud.writes == [("resize", 3, ())]
    assert "0 → 3" in scaler.status("gpu-v100").events[0]
    assert scaler.status("gpu-v100").blocker is None


def test_a_full_group_at_its_ceiling_blocks_waiting_users_with_a_reason_naming_no_group():
    nodes = [gpu_node(f"n{i}") for i in range(4)]
    pods = [gpu_pod(f"r{i}", node=f"n{i // 4}") for i in range(16)] + [gpu_pod("waiting")]
    cloud = Cloud(cloud_state(4))
    scaler = controller(cloud, View(nodes, pods))
    run(scaler.reconcile())
    assert cloud.writes == []
    blocker = scaler.status("gpu-v100").blocker
    assert isinstance(blocker, CeilingReached)
    assert "maximum of 4" in blocker.user_message and "gpu-v100" not in blocker.user_message


def test_a_2_gpu_request_grows_the_group_when_two_nodes_have_one_free_gpu_each():
    nodes = [gpu_node("n0"), gpu_node("n1")]
    pods = [gpu_pod(f"r{i}", node=f"n{i % 2}") for i in range(6)] + [gpu_pod("two", gpus=2)]
    cloud = Cloud(cloud_state(2))
    scaler = controller(cloud, View(nodes, pods))
    run(scaler.reconcile())
    assert cloud.writes == [("resize", 3, ())]


def test_gpus_used_by_another_namespaces_pods_are_not_free():
    view = View([gpu_node("n0")], [gpu_pod("batch", node="n0", gpus=4, namespace="ml"), gpu_pod("w")])
    cloud = Cloud(cloud_state(1))
    run(controller(cloud, view).reconcile())
    assert cloud.writes == [("resize", 2, ())]


def test_growth_above_the_clouds_max_raises_it_and_puts_it_back_after_the_shrink(tmp_path):
    group = replace(GROUP, max_nodes=5)
    clock = Clock()
    cloud = Cloud(cloud_state(4, maximum=4))
    nodes = [gpu_node(f"n{i}") for i in range(4)]
    view = View(nodes, [gpu_pod(f"r{i}", node=f"n{i // 4}") for i in range(16)] + [gpu_pod("w")])
    memory = Memory(tmp_path / "memory.json")
    scaler = controller(cloud, view, group, clock=clock, memory=memory)
    rounds(scaler, clock)
    assert cloud.writes == [("patch", (("max_node_count", 5),)), ("resize", 5, ())]
    # The node joins, serves the user, who then stops; everyone else stops too.
    cloud.done()
    view.nodes["n4"] = gpu_node("n4")
    view.remove("w")
    view.add(gpu_pod("w", node="n4"))
    rounds(scaler, clock)
    for name in list(view.pods):
        del view.pods[name]
    rounds(scaler, clock, step=1)
    rounds(scaler, clock, step=61)
    assert cloud.writes[2] == ("resize", 0, ("uuid-n4", "uuid-n3", "uuid-n2", "uuid-n1", "uuid-n0"))
    assert Memory(tmp_path / "memory.json").raised_max == {"gpu-v100": 4}  # survives a restart
    cloud.done()
    view.nodes.clear()
    rounds(scaler, clock, step=1)
    assert cloud.writes[3:] == [("patch", (("max_node_count", 4),))]
    assert Memory(tmp_path / "memory.json").raised_max == {}


# -- a cloud that misbehaves ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("error", "blocked"),
    [
        pytest.param(QuotaExceeded("No quota left."), True, id="quota-blocks"),
        pytest.param(TemporaryError("API failing.", delay=5), False, id="5xx-retries-later"),
    ],
)
def test_cloud_errors_on_growth(error, blocked):
    clock = Clock()
    cloud = Cloud(cloud_state(0))
    scaler = controller(cloud, View(pods=[gpu_pod("waiting")]), clock=clock)
    cloud.error = error
    run(scaler.reconcile())
    assert (scaler.status("gpu-v100").blocker is error) == blocked
    if not blocked:
        cloud.error = None
        run(scaler.reconcile())
        assert cloud.writes == []  # still inside the backoff
        clock.now += 6
        run(scaler.reconcile())
        assert cloud.writes == [("resize", 1, ())]


def test_a_failing_cloud_fails_waiting_users_after_the_retry_window_then_recovers():
    clock = Clock()
    cloud = Cloud(cloud_state(0), error=TemporaryError("The cloud's API is failing.", "HTTP 500"))
    scaler = controller(cloud, View(pods=[gpu_pod("waiting")]), clock=clock, retry_timeout=30)
    status = scaler.status("gpu-v100")
    for _ in range(60):
        rounds(scaler, clock, step=1)
        if status.blocker:
            break
    assert isinstance(status.blocker, CloudUnavailable)
    assert status.blocker.user_message == (
        "The cloud is not answering; try again later or pick a shared profile."
    )
    assert 30 <= clock.now - 101 <= 36  # at the first retry failing past the window (backoff 5, 10, 20...)
    assert cloud.reads < 10  # backoff, not a read every round
    cloud.error = None
    rounds(scaler, clock, step=31)
    assert status.blocker is None and status.retrying_since is None
    assert cloud.writes == [("resize", 1, ())]


def test_a_long_boot_reads_the_cloud_less_often_and_still_sees_it_end():
    # interval 2 s, a boot of 5 minutes: a read every round would be 150 reads.
    clock = Clock()
    cloud = Cloud(cloud_state(0))
    view = View(pods=[gpu_pod("waiting")])
    scaler = controller(cloud, view, clock=clock, interval=2.0)
    rounds(scaler, clock)
    assert cloud.writes == [("resize", 1, ())]
    reads_at_request = cloud.reads
    rounds(scaler, clock, step=2)
    assert cloud.reads == reads_at_request + 1  # our own request is looked at an interval later
    rounds(scaler, clock, count=150, step=2)
    assert cloud.reads - reads_at_request <= 45
    status = scaler.status("gpu-v100")
    cloud.done()  # the cloud finishes between two reads
    finished_at = clock.now
    for _ in range(30):
        rounds(scaler, clock, step=2)
        if status.requested is None:
            break
    assert status.requested is None
    assert clock.now - finished_at <= QUIET_READ_CAP + 2


def test_a_newly_waiting_user_makes_the_next_round_read_the_cloud():
    clock = Clock()
    cloud = Cloud(cloud_state(0))
    view = View(pods=[gpu_pod("first")])
    scaler = controller(cloud, view, clock=clock, interval=2.0)
    rounds(scaler, clock, count=30, step=2)  # the first node is still booting: reads spaced out
    quiet_reads = cloud.reads
    view.add(gpu_pod("second"))
    rounds(scaler, clock, step=0.1)
    assert cloud.reads == quiet_reads + 1


def test_a_hung_cloud_call_gives_up_at_its_deadline():
    cloud = Cloud(cloud_state(0), hang=1.0)
    scaler = controller(cloud, View(pods=[gpu_pod("waiting")]), call_timeout=0.2)

    async def timed():
        started = time.monotonic()
        await scaler.reconcile()
        return time.monotonic() - started

    assert run(timed()) < 0.9  # (asyncio.run itself then waits for the abandoned thread)
    assert scaler.status("gpu-v100").retrying_since is not None
    assert "not answering" in scaler.status("gpu-v100").events[-1]


def test_one_hung_group_does_not_stall_growth_of_another():
    other = replace(GROUP, name="gpu-t4", cluster="other")
    hung, healthy = Cloud(cloud_state(0), hang=2.0), Cloud(replace(cloud_state(0), name="gpu-t4"))
    view = View(pods=[gpu_pod("a"), gpu_pod("b", group="gpu-t4")])

    async def scenario():
        scaler = ScalingController(
            lambda: [GROUP, other],
            view,
            lambda cluster: hung if cluster == "sandbox" else healthy,
            logging.getLogger("test"),
            namespace="hub",
            interval=0.05,
            call_timeout=5,
        )
        scaler.start()
        await asyncio.sleep(0.5)
        scaler._task.cancel()
        return scaler

    run(scenario())
    assert healthy.writes == [("resize", 1, ())]
    assert hung.writes == []


def test_a_vm_that_never_joins_stops_counting_after_the_deadline_and_the_group_grows_again():
    clock = Clock()
    cloud = Cloud(cloud_state(0))
    view = View(pods=[gpu_pod("waiting")])
    lost = {"node_group": "gpu-v100"}
    before = REGISTRY.get_sample_value("cern_spawner_nodes_lost_total", lost) or 0
    scaler = controller(cloud, view, clock=clock, join_deadline=1200)
    rounds(scaler, clock)
    cloud.done()  # the cloud says the VM is there; Kubernetes never sees it
    rounds(scaler, clock, count=3, step=300)
    assert cloud.writes == [("resize", 1, ())]
    rounds(scaler, clock, step=301)
    assert cloud.writes == [("resize", 1, ()), ("resize", 2, ())]
    assert REGISTRY.get_sample_value("cern_spawner_nodes_lost_total", lost) == before + 1


# -- giving back, safely ---------------------------------------------------------------------------
def test_the_incident_a_shrink_never_removes_a_node_running_notebooks():
    """2 nodes, 4 notebooks on each; node-0's users stop. Only node-0 goes, after its own grace,
    and no second write happens before the first one shows in the cloud and in Kubernetes."""
    clock = Clock()
    nodes = [gpu_node("n0"), gpu_node("n1")]
    view = View(nodes, [gpu_pod(f"r{i}", node=f"n{i // 4}") for i in range(8)])
    cloud = Cloud(cloud_state(2))
    scaler = controller(cloud, view, clock=clock)
    rounds(scaler, clock)
    for i in range(4):
        view.remove(f"r{i}")
    rounds(scaler, clock, step=1)
    rounds(scaler, clock, step=30)
    assert cloud.writes == []  # node-0 has been empty for 30 s of its 60 s grace
    rounds(scaler, clock, step=31)
    assert cloud.writes == [("resize", 1, ("uuid-n0",))]
    assert scaler.kube.patches == [("n0", True)]  # cordoned before the write
    # The cloud now counts 1 node and is still updating; Kubernetes still lists node-0.
    rounds(scaler, clock, count=5, step=61)
    cloud.done()
    rounds(scaler, clock, count=5, step=61)  # done in the cloud, node-0 still listed
    assert cloud.writes == [("resize", 1, ("uuid-n0",))]
    del view.nodes["n0"]
    rounds(scaler, clock, count=5, step=61)
    assert cloud.writes == [("resize", 1, ("uuid-n0",))]  # node-1 runs notebooks: never named


def test_a_user_who_restarts_within_the_grace_period_finds_their_node():
    clock = Clock()
    view = View([gpu_node("n0")], [gpu_pod("alice", node="n0")])
    cloud = Cloud(cloud_state(1))
    scaler = controller(cloud, view, clock=clock)
    rounds(scaler, clock)
    view.remove("alice")
    rounds(scaler, clock, step=50)
    view.add(gpu_pod("alice", node="n0"))
    rounds(scaler, clock, step=5)
    view.remove("alice")
    rounds(scaler, clock, step=5)
    rounds(scaler, clock, step=50)  # 110 s since it first emptied, but 50 s since the last stop
    assert cloud.writes == []
    rounds(scaler, clock, step=11)
    assert cloud.writes == [("resize", 0, ("uuid-n0",))]


def test_a_pod_bound_between_decision_and_write_keeps_its_node():
    clock = Clock()
    view = View([gpu_node("n0")])
    cloud = Cloud(cloud_state(1))
    scaler = controller(cloud, view, clock=clock)
    rounds(scaler, clock)
    scaler.kube.bound["n0"] = ["just-bound"]  # the watch has not shown it yet
    rounds(scaler, clock, step=61)
    assert cloud.writes == []
    assert scaler.kube.patches == [("n0", True), ("n0", None)]  # cordoned, found busy, uncordoned


def test_a_group_changed_by_someone_else_meanwhile_is_not_written():
    clock = Clock()
    view = View([gpu_node("n0")])
    cloud = Cloud(cloud_state(1))
    scaler = controller(cloud, view, clock=clock)
    rounds(scaler, clock)
    original = cloud.state

    def racing_state(group):
        cloud.state_now = replace(cloud.state_now, status="UPDATE_IN_PROGRESS")
        return original(group)

    clock.now += 61
    scaler.status("gpu-v100").cloud_at = clock.now  # the round uses its cached view...
    cloud.state = racing_state  # ...and the fresh read right before the write sees the change
    run(scaler.reconcile())
    assert cloud.writes == []
    assert scaler.kube.patches == [("n0", True), ("n0", None)]


@pytest.mark.parametrize(
    ("cloud_after", "nodes_listed", "uncordoned"),
    [
        pytest.param(
            cloud_state(1, status="UPDATE_IN_PROGRESS"), True, False, id="write-landed-cloud-updating"
        ),
        pytest.param(cloud_state(1), True, False, id="write-landed-node-still-listed"),
        pytest.param(cloud_state(2), True, True, id="cordoned-but-never-written"),
    ],
)
def test_a_hub_restart_in_the_middle_of_a_shrink(cloud_after, nodes_listed, uncordoned):
    clock = Clock()
    n0 = gpu_node("n0")
    n0["spec"]["unschedulable"] = True
    n0["metadata"]["annotations"] = {REMOVAL_ANNOTATION: "2026-12-03T12:00:00+00:00"}
    view = View([n0, gpu_node("n1")], [gpu_pod(f"r{i}", node="n1") for i in range(4)])
    cloud = Cloud(cloud_after)
    scaler = controller(cloud, view, clock=clock)  # the new hub
    rounds(scaler, clock, count=3, step=15)  # within the grace the new hub counts from its start
    assert cloud.writes == []
    assert (("n0", None) in scaler.kube.patches) == uncordoned
    assert all(name == "n0" for name, _ in scaler.kube.patches)  # node-1 is never touched


def test_a_group_removed_from_the_catalog_is_returned_to_its_baseline(tmp_path):
    clock = Clock()
    catalog = [GROUP]
    cloud = Cloud(cloud_state(0))
    view = View(pods=[gpu_pod("w")])
    scaler = controller(
        cloud, view, clock=clock, groups=lambda: list(catalog), memory=Memory(tmp_path / "m.json")
    )
    rounds(scaler, clock)
    cloud.done()
    view.nodes["n0"] = gpu_node("n0")
    view.remove("w")
    catalog.clear()  # the admin removes the group (or its scaling block)
    rounds(scaler, clock, count=2, step=61)
    assert cloud.writes == [("resize", 1, ()), ("resize", 0, ("uuid-n0",))]
    cloud.done()
    del view.nodes["n0"]
    rounds(scaler, clock, step=1)
    assert Memory(tmp_path / "m.json").grown == {}


def test_an_idle_group_is_read_from_the_cloud_at_most_every_idle_refresh():
    clock = Clock()
    cloud = Cloud(cloud_state(0))
    scaler = controller(cloud, View(), clock=clock, idle_refresh=10)
    rounds(scaler, clock, count=30, step=1)
    assert cloud.reads == 3


# -- raise-min (autoscaled) groups ----------------------------------------------------------------
def test_raise_min_mode_orders_max_resize_min():
    group = replace(GROUP, mode="raise-min")
    cloud = Cloud(cloud_state(1, minimum=1, maximum=1))
    scaler = controller(
        cloud, View([gpu_node("n0")], [gpu_pod(f"r{i}", node="n0") for i in range(4)] + [gpu_pod("w")]), group
    )
    run(scaler.reconcile())
    assert cloud.writes == [
        ("patch", (("max_node_count", 2),)),
        ("resize", 2, ()),
        ("patch", (("min_node_count", 2),)),
    ]


def test_raise_min_mode_lowers_min_once_to_the_nodes_still_in_use():
    clock = Clock()
    group = replace(GROUP, mode="raise-min")
    cloud = Cloud(cloud_state(2, minimum=2, maximum=4))
    view = View([gpu_node("n0"), gpu_node("n1")], [gpu_pod(f"r{i}", node=f"n{i // 4}") for i in range(8)])
    scaler = controller(cloud, view, group, clock=clock)
    shrinks = {"node_group": "gpu-v100", "action": "shrink", "result": "accepted"}
    before = REGISTRY.get_sample_value("cern_spawner_backend_requests_total", shrinks) or 0
    rounds(scaler, clock)
    for i in range(4):
        view.remove(f"r{i}")
    rounds(scaler, clock, step=1)
    rounds(scaler, clock, step=61)
    assert cloud.writes == [("patch", (("min_node_count", 1),))]
    # The autoscaler removes node-0: the cloud counts 1 while Kubernetes still lists both.
    cloud.state_now = replace(cloud.state_now, node_count=1, status="UPDATE_IN_PROGRESS")
    rounds(scaler, clock, count=3, step=61)
    cloud.done()
    rounds(scaler, clock, count=3, step=61)
    assert cloud.writes == [("patch", (("min_node_count", 1),))]  # never 0 while node-1 runs notebooks
    assert REGISTRY.get_sample_value("cern_spawner_backend_requests_total", shrinks) == before + 1


def test_each_joining_node_is_recorded_but_not_those_found_at_start():
    cloud = Cloud(cloud_state(1))
    view = View([gpu_node("n0")], [gpu_pod(f"r{i}", node="n0") for i in range(4)] + [gpu_pod("w")])
    scaler = controller(cloud, view)
    run(scaler.reconcile())
    view.nodes["n1"] = gpu_node("n1", gpus="0")
    run(scaler.reconcile())
    status = scaler.status("gpu-v100")
    assert [e for e in status.events if "joined" in e] == [
        "Node n1 joined gpu-v100; waiting for its GPU to become available."
    ]
    assert set(status.joined) == {"n0", "n1"}


def test_measured_boots_give_the_expected_time_and_survive_a_restart(tmp_path):
    clock = Clock()
    cloud = Cloud(cloud_state(0))
    view = View(pods=[gpu_pod("w")])
    scaler = controller(cloud, view, clock=clock, memory=Memory(tmp_path / "m.json"))
    rounds(scaler, clock)
    cloud.done()
    view.nodes["n0"] = gpu_node("n0")
    rounds(scaler, clock, step=420)
    assert scaler.expected_boot_seconds("gpu-v100") == 420
    again = controller(cloud, View(), memory=Memory(tmp_path / "m.json"))
    assert again.expected_boot_seconds("gpu-v100") == 420


def test_after_the_cloud_failed_someone_new_gets_a_fresh_try_not_the_old_verdict():
    clock = Clock()
    cloud = Cloud(cloud_state(0), error=TemporaryError("The cloud's API is failing.", "HTTP 500"))
    view = View(pods=[gpu_pod("first")])
    scaler = controller(cloud, view, clock=clock, retry_timeout=30)
    status = scaler.status("gpu-v100")
    while status.blocker is None:
        rounds(scaler, clock, step=1)
    view.remove("first")  # told, gone
    rounds(scaler, clock, step=1)
    assert status.blocker is None
    cloud.error = None  # the cloud recovers in the middle of a 30 s backoff
    view.add(gpu_pod("second"))
    rounds(scaler, clock, step=1)
    assert status.blocker is None and cloud.writes == [("resize", 1, ())]


def test_a_node_nobody_used_goes_soon_after_its_user_cancelled_one_that_served_keeps_its_grace():
    clock = Clock()
    cloud = Cloud(cloud_state(0))
    view = View(pods=[gpu_pod("cancels")])
    scaler = controller(cloud, view, clock=clock)
    scaler.grace = 600
    rounds(scaler, clock)
    view.remove("cancels")  # the user cancels while the node boots
    cloud.done()
    view.nodes["n0"] = gpu_node("n0")
    rounds(scaler, clock, step=5)
    rounds(scaler, clock, step=59)
    assert cloud.writes == [("resize", 1, ())]
    rounds(scaler, clock, step=2)
    assert cloud.writes == [("resize", 1, ()), ("resize", 0, ("uuid-n0",))]


def test_an_idle_controller_wakes_when_an_empty_nodes_grace_ends_not_only_at_the_slow_refresh():
    clock = Clock()
    view = View([gpu_node("n0")], [gpu_pod("alice", node="n0")])
    scaler = controller(cloud := Cloud(cloud_state(1)), view, clock=clock, idle_refresh=30, interval=1)
    rounds(scaler, clock)
    assert scaler._due_in(scaler.status("gpu-v100")) == 30  # nothing due: the slow refresh
    view.remove("alice")
    rounds(scaler, clock, step=1)
    assert scaler._due_in(scaler.status("gpu-v100")) == 60  # her node's grace
    clock.now += 55
    assert scaler._due_in(scaler.status("gpu-v100")) == 5
    assert cloud.writes == []


def test_a_round_that_finds_a_node_just_emptied_wakes_the_loop_before_its_slow_refresh():
    """The loop's wait is worked out before the group's round runs: the round that starts a node's
    grace must shorten it, or the node goes only at the slow refresh."""
    clock = Clock()
    view = View([gpu_node("n0")], [gpu_pod("alice", node="n0")])
    scaler = controller(Cloud(cloud_state(1)), view, clock=clock, idle_refresh=300, interval=1)
    run(scaler._guarded(GROUP, False))
    scaler._wake_at = clock.now + 300  # the loop sleeps until its slow refresh
    view.changed.clear()
    run(scaler._guarded(GROUP, False))
    assert not view.changed.is_set()  # nothing new: no extra round
    view.remove("alice")
    clock.now += 1
    run(scaler._guarded(GROUP, False))
    assert view.changed.is_set()  # her node's 60 s grace is due long before 300 s


@pytest.mark.parametrize(
    ("error", "kept_cordoned"),
    [
        pytest.param(TemporaryError("The cloud is not answering."), True, id="timeout-may-have-landed"),
        pytest.param(CeilingReached("refused"), False, id="refused-nothing-removed"),
    ],
)
def test_a_failed_shrink_write_keeps_the_node_cordoned_unless_it_surely_did_nothing(error, kept_cordoned):
    clock = Clock()
    view = View([gpu_node("n0")])
    cloud = Cloud(cloud_state(1))
    scaler = controller(cloud, view, clock=clock)
    rounds(scaler, clock)
    original = cloud.resize

    def failing_resize(*args, **kwargs):
        raise error

    cloud.resize = failing_resize
    rounds(scaler, clock, step=61)
    assert view.nodes["n0"]["spec"].get("unschedulable") is (True if kept_cordoned else None)
    if kept_cordoned:
        # The write did not land (the cloud still counts the node): the settled view releases it.
        cloud.resize = original
        rounds(scaler, clock, step=6)
        assert view.nodes["n0"]["spec"].get("unschedulable") is None
        assert cloud.writes == []


# -- standby ---------------------------------------------------------------------------------------
class WallClock:
    def __init__(self, text):
        self.set(text)

    def set(self, text):
        self.now = datetime.fromisoformat(text).replace(tzinfo=UTC)

    def __call__(self):
        return self.now


def test_standby_grows_at_the_window_start_restores_after_a_user_and_is_released_at_its_end():
    office = parse_standby(
        {
            "gpus": 4,
            "timezone": "Europe/Zurich",
            "windows": [{"days": "mon-fri", "from": "08:00", "to": "18:00"}],
        }
    )
    group = replace(GROUP, standby=office)
    clock, wall = Clock(), WallClock("2026-12-07 06:59")  # Monday 07:59 in Zurich
    cloud, view = Cloud(cloud_state(0)), View()
    scaler = controller(cloud, view, group, clock=clock, wall_clock=wall)
    rounds(scaler, clock)
    assert cloud.writes == []
    assert scaler._window_due(group) == 60  # wakes up for 08:00

    wall.set("2026-12-07 07:00")
    rounds(scaler, clock, step=60)
    assert cloud.writes == [("resize", 1, ())]
    assert scaler.status(group.name).standby_gpus == 4
    cloud.done()
    view.nodes["n0"] = gpu_node("n0")
    rounds(scaler, clock, count=3, step=30)
    assert len(cloud.writes) == 1  # the standby node is there, and kept past the unclaimed grace

    view.add(gpu_pod("user", node="n0"))  # a user takes a standby GPU: never refused, then restored
    rounds(scaler, clock, step=1)
    assert cloud.writes[1:] == [("resize", 2, ())]
    cloud.done()
    view.nodes["n1"] = gpu_node("n1")
    rounds(scaler, clock, count=3, step=30)
    assert len(cloud.writes) == 2

    wall.set("2026-12-07 17:00")  # 18:00: the empty node goes, the busy one stays
    rounds(scaler, clock, step=61)
    assert cloud.writes[2:] == [("resize", 1, ("uuid-n1",))]
    assert scaler.status(group.name).standby_gpus == 0
    assert {name for name, _ in scaler.kube.patches} == {"n1"}  # the busy node was never cordoned


def test_standby_never_takes_the_room_of_waiting_users():
    office = parse_standby({"gpus": 8, "windows": [{"days": "daily", "from": "00:00", "to": "24:00"}]})
    group = replace(GROUP, standby=office, max_nodes=2)
    nodes = [gpu_node("n0")]
    pods = [gpu_pod(f"r{i}", node="n0") for i in range(4)] + [gpu_pod(f"w{i}") for i in range(4)]
    cloud = Cloud(cloud_state(1))
    scaler = controller(cloud, View(nodes, pods), group, wall_clock=WallClock("2026-12-07 10:00"))
    run(scaler.reconcile())
    assert cloud.writes == [("resize", 2, ())]  # the users' node; the ceiling leaves no standby
    assert scaler.status(group.name).blocker is None


def test_a_burst_still_arriving_is_grown_for_in_one_request_once_it_stops():
    """Starts arrive over a few seconds (a loaded hub creates their pods one by one): one resize
    for all of them once no new pod came for burst_quiet, not one for the first and a second boot
    for the rest."""
    clock = Clock()
    cloud = Cloud(cloud_state(0))
    view = View()
    scaler = controller(cloud, view, clock=clock, burst_quiet=1.0, burst_window=10.0)
    for i in range(6):  # a pod every 0.4 s
        view.add(gpu_pod(f"p{i}"))
        view.last_arrival = clock.now
        rounds(scaler, clock)
        clock.now += 0.4
    assert cloud.writes == []  # still arriving
    clock.now += 1.0
    rounds(scaler, clock)
    assert cloud.writes == [("resize", 2, ())]  # 6 GPUs, 4 per node: one request


@pytest.mark.parametrize(
    "last_pod, resizes",
    [
        pytest.param("created", [("resize", 3, ())], id="its-pod-comes-one-growth-for-all-nine"),
        pytest.param("start-failed", [("resize", 2, ())], id="its-start-fails-the-eight-grow-at-once"),
    ],
)
def test_a_growth_waits_for_the_pod_of_a_start_that_has_begun(last_pod, resizes):
    """A loaded API server takes a while to create a pod: the start that asked for it has begun, so
    the growth waits for that pod (bounded by burst_window) instead of leaving it for a second
    boot. A start that fails before its pod exists releases the wait."""
    clock = Clock()
    cloud = Cloud(cloud_state(0))
    view = View(pods=[gpu_pod(f"p{i}") for i in range(8)])
    view.last_arrival = clock.now
    scaler = controller(cloud, view, clock=clock, burst_quiet=1.0, burst_window=30.0)
    with scaler.arriving("gpu-v100", "hub/p8"):
        rounds(scaler, clock, count=4, step=1.0)
        assert cloud.writes == []  # quiet for 4 s, but the ninth pod is still being created
        if last_pod == "created":
            view.add(gpu_pod("p8"))
            view.expected.pop("hub/p8")  # as ClusterView does when the pod's first event comes
    rounds(scaler, clock)
    assert cloud.writes == resizes


def test_a_burst_that_never_stops_is_grown_for_at_the_end_of_its_window():
    clock = Clock()
    cloud = Cloud(cloud_state(0))
    view = View()
    scaler = controller(cloud, view, clock=clock, burst_quiet=1.0, burst_window=3.0)
    for i in range(10):
        view.add(gpu_pod(f"p{i}"))
        view.last_arrival = clock.now
        rounds(scaler, clock)
        if cloud.writes:
            break
        clock.now += 0.5
    assert cloud.writes == [("resize", 2, ())]
    assert clock.now == pytest.approx(103.0)  # the window's end, 3 s after the first pod

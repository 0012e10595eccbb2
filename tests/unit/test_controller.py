"""The scaling controller's decisions against a recording backend (the cloud is the only stand-in)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import pytest
from prometheus_client import REGISTRY

from cern_spawner.scaling.controller import ScaledGroup, ScalingController
from cern_spawner.scaling.errors import CeilingReached, QuotaExceeded, TemporaryError
from cern_spawner.scaling.magnum import GroupState

pytestmark = pytest.mark.unit
LABEL = "magnum.openstack.org/nodegroup"
GROUP = ScaledGroup("gpu-v100", LABEL, "nvidia.com/gpu", 4, "sandbox", "resize", 0, 4)


class Cloud:
    """Records the writes the controller makes, answers with a fixed state or raises."""

    def __init__(self, state: GroupState, error: Exception | None = None):
        self.state_now, self.error, self.writes = state, error, []

    def state(self, group):
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


class View:
    def __init__(self, nodes=(), pods=()):
        self.nodes = {n["metadata"]["name"]: n for n in nodes}
        self.pods = {p["metadata"]["name"]: p for p in pods}


def gpu_node(name, gpus="4"):
    return {
        "metadata": {"name": name, "labels": {LABEL: "gpu-v100"}},
        "status": {
            "allocatable": {"nvidia.com/gpu": gpus},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def gpu_pod(name, node=None):
    return {
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "nodeSelector": {LABEL: "gpu-v100"},
            "containers": [{"resources": {"limits": {"nvidia.com/gpu": "1"}}}],
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


def controller(cloud, view, group=GROUP, clock=None):
    return ScalingController(
        lambda: [group],
        view,
        lambda cluster: cloud,
        logging.getLogger("test"),
        grace=60,
        clock=clock or Clock(),
    )


def run(coroutine):
    return asyncio.run(coroutine)


def test_ten_waiting_users_on_an_empty_group_make_one_request_for_three_nodes():
    cloud = Cloud(cloud_state(0))
    view = View(pods=[gpu_pod(f"p{i}") for i in range(10)])
    scaler = controller(cloud, view)
    for _ in range(3):  # later rounds see the growth under way and ask for nothing more
        run(scaler.reconcile())
    assert cloud.writes == [("resize", 3, ())]
    assert "0 → 3" in scaler.status("gpu-v100").events[0]
    assert scaler.status("gpu-v100").blocker is None


def test_a_full_group_at_its_ceiling_blocks_waiting_users_with_a_reason():
    nodes = [gpu_node(f"n{i}") for i in range(4)]
    pods = [gpu_pod(f"r{i}", node=f"n{i // 4}") for i in range(16)] + [gpu_pod("waiting")]
    cloud = Cloud(cloud_state(4))
    scaler = controller(cloud, View(nodes, pods))
    run(scaler.reconcile())
    assert cloud.writes == []
    assert isinstance(scaler.status("gpu-v100").blocker, CeilingReached)
    assert "maximum of 4" in scaler.status("gpu-v100").blocker.user_message


@pytest.mark.parametrize(
    ("error", "blocked"),
    [
        pytest.param(QuotaExceeded("No quota left."), True, id="quota-blocks"),
        pytest.param(TemporaryError("API failing.", delay=30), False, id="5xx-retries-later"),
    ],
)
def test_cloud_errors(error, blocked):
    clock = Clock()
    cloud = Cloud(cloud_state(0), error=error)
    scaler = controller(cloud, View(pods=[gpu_pod("waiting")]), clock=clock)
    run(scaler.reconcile())
    assert (scaler.status("gpu-v100").blocker is error) == blocked
    if not blocked:
        cloud.error = None
        run(scaler.reconcile())
        assert cloud.writes == []  # still inside the retry delay
        clock.now += 31
        run(scaler.reconcile())
        assert cloud.writes == [("resize", 1, ())]


def test_shrinks_after_the_grace_period_naming_only_empty_nodes():
    clock = Clock()
    nodes = [gpu_node("n0"), gpu_node("n1"), gpu_node("n2")]
    cloud = Cloud(cloud_state(3))
    view = View(nodes, [gpu_pod("busy", node="n1"), gpu_pod("waiting")])
    scaler = controller(cloud, view, clock=clock)
    run(scaler.reconcile())  # demand seen now
    del view.pods["waiting"]
    clock.now += 30
    run(scaler.reconcile())
    assert cloud.writes == []  # within the grace period
    clock.now += 31
    run(scaler.reconcile())
    assert cloud.writes == [("resize", 1, ("n2", "n0"))]


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


def test_raise_min_mode_shrinks_by_lowering_min_only():
    clock = Clock()
    group = replace(GROUP, mode="raise-min")
    cloud = Cloud(cloud_state(2, minimum=2, maximum=4))
    scaler = controller(cloud, View([gpu_node("n0"), gpu_node("n1")], []), group, clock=clock)
    run(scaler.reconcile())
    assert cloud.writes == []  # the grace period starts with the controller (a hub restart)
    clock.now += 61
    run(scaler.reconcile())
    assert cloud.writes == [("patch", (("min_node_count", 0),))]


def test_raise_min_mode_lowers_min_once_and_leaves_idle_nodes_to_the_autoscaler():
    clock = Clock()
    group = replace(GROUP, mode="raise-min")
    cloud = Cloud(cloud_state(2, minimum=2, maximum=4))
    scaler = controller(cloud, View([gpu_node("n0"), gpu_node("n1")], []), group, clock=clock)
    shrinks = {"node_group": "gpu-v100", "action": "shrink", "result": "accepted"}
    before = REGISTRY.get_sample_value("cern_spawner_backend_requests_total", shrinks) or 0
    run(scaler.reconcile())
    clock.now += 61
    run(scaler.reconcile())
    cloud.state_now = replace(cloud.state_now, min_nodes=0)  # the patch landed; nodes still there
    for _ in range(3):
        clock.now += 61
        run(scaler.reconcile())
    assert cloud.writes == [("patch", (("min_node_count", 0),))]
    assert REGISTRY.get_sample_value("cern_spawner_backend_requests_total", shrinks) == before + 1


def test_raise_min_mode_keeps_min_at_the_nodes_still_in_use():
    clock = Clock()
    group = replace(GROUP, mode="raise-min")
    cloud = Cloud(cloud_state(2, minimum=2, maximum=4))
    view = View([gpu_node("n0"), gpu_node("n1")], [gpu_pod("r0", node="n1")])
    scaler = controller(cloud, view, group, clock=clock)
    run(scaler.reconcile())
    clock.now += 61
    run(scaler.reconcile())
    assert cloud.writes == [("patch", (("min_node_count", 1),))]


def test_each_joining_node_is_named_to_waiting_users_but_not_those_found_at_start():
    cloud = Cloud(cloud_state(1))
    view = View([gpu_node("n0")], [gpu_pod(f"r{i}", node="n0") for i in range(4)] + [gpu_pod("w")])
    scaler = controller(cloud, view)
    run(scaler.reconcile())
    view.nodes["n1"] = gpu_node("n1", gpus="0")
    run(scaler.reconcile())
    joined = [e for e in scaler.status("gpu-v100").events if "joined" in e]
    assert joined == ["Node n1 joined gpu-v100; waiting for its GPU to become available."]

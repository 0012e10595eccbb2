"""Capacity and growth per GPU resource: MIG slice types and time-sliced shares."""

from __future__ import annotations

import pytest

from cern_spawner.scaling.capacity import GroupSelector, summarize
from cern_spawner.scaling.planner import GroupView, plan, plan_layout

pytestmark = pytest.mark.unit
LABEL = "magnum.openstack.org/nodegroup"
SMALL, LARGE = "nvidia.com/mig-1g.10gb", "nvidia.com/mig-3g.40gb"
MIG = GroupSelector("a100-mig", LABEL, SMALL, ((SMALL, 4), (LARGE, 1)))


def node(name, allocatable, ready="True", unschedulable=False):
    return {
        "metadata": {"name": name, "labels": {LABEL: "a100-mig"}},
        "spec": {"unschedulable": unschedulable},
        "status": {"allocatable": allocatable, "conditions": [{"type": "Ready", "status": ready}]},
    }


def pod(name, resource, node_name=None, group="a100-mig"):
    spec = {
        "containers": [{"name": "notebook", "resources": {"limits": {resource: "1"}}}],
        "nodeSelector": {LABEL: group},
    }
    if node_name:
        spec["nodeName"] = node_name
    return {"metadata": {"name": name, "namespace": "hub"}, "spec": spec, "status": {"phase": "Pending"}}


FULL = {SMALL: "4", LARGE: "1"}


@pytest.mark.parametrize(
    "nodes, pods, small, large, totals",
    [
        (
            [node("n0", FULL)],
            [pod("a", SMALL, "n0"), pod("b", SMALL, "n0"), pod("c", LARGE, "n0"), pod("d", LARGE)],
            # (allocatable, used, free per node, pending, booting)
            (4, 2, (2,), (), 0),
            (1, 1, (), (1,), 0),
            # (allocatable, used, free, pending, booting)
            (5, 3, 2, 1, 0),
        ),
        (
            [node("n0", FULL), node("n1", {SMALL: "0", LARGE: "0"})],  # n1: device plugin starting
            [pod("a", SMALL), pod("b", SMALL), pod("other", SMALL, group="elsewhere")],
            (4, 0, (4,), (1, 1), 4),
            (1, 0, (1,), (), 1),
            (5, 0, 5, 2, 5),
        ),
        (
            [node("n0", FULL, unschedulable=True), node("n1", FULL, ready="False")],
            [pod("a", LARGE)],
            (4, 0, (), (), 4),
            (1, 0, (), (1,), 1),
            (4 + 1, 0, 0, 1, 5),
        ),
        ([], [pod("a", SMALL)], (0, 0, (), (1,), 0), (0, 0, (), (), 0), (0, 0, 0, 1, 0)),
    ],
    ids=["slices-in-use", "one-node-booting", "cordoned-and-not-ready", "no-nodes"],
)
def test_capacity_per_slice_type(nodes, pods, small, large, totals):
    capacity = summarize(nodes, pods, [MIG], {"a100-mig": 5}, namespace="hub")["a100-mig"]
    for resource, expected in ((SMALL, small), (LARGE, large)):
        r = capacity.resource(resource)
        assert (r.allocatable, r.used, r.free_per_node, r.pending_requests, r.booting) == expected, resource
    got = (
        capacity.allocatable_gpus,
        capacity.used_gpus,
        capacity.free_gpus,
        capacity.pending_gpus,
        capacity.booting_gpus,
    )
    assert got == totals


def test_whole_gpus_have_one_resource_equal_to_the_totals():
    whole = GroupSelector("v100", LABEL, "nvidia.com/gpu")
    nodes = [{**node("n0", {"nvidia.com/gpu": "4"}), "metadata": {"name": "n0", "labels": {LABEL: "v100"}}}]
    pods = [pod("a", "nvidia.com/gpu", "n0", group="v100"), pod("b", "nvidia.com/gpu", group="v100")]
    capacity = summarize(nodes, pods, [whole], {"v100": 4})["v100"]
    (only,) = capacity.resources
    assert (only.resource, only.per_node, only.free_per_node, only.pending_requests) == (
        "nvidia.com/gpu",
        4,
        (3,),
        (1,),
    )
    assert (capacity.free_per_node, capacity.pending_requests) == ((3,), (1,))


def view(backend=1, joined=1, free=(), pending=(), ceiling=4, booting=0, standby=0):
    return GroupView(
        name="a100-mig",
        gpus_per_node=5,
        backend_nodes=backend,
        joined_nodes=joined,
        free_per_node=free,
        pending_requests=pending,
        booting_nodes=booting,
        ceiling=ceiling,
        standby_gpus=standby,
    )


# (resource, per node, free per node, pending): the layout 4 × 1g.10gb + 1 × 3g.40gb
@pytest.mark.parametrize(
    "group, small, large, target, unmet",
    [
        (view(backend=0, joined=0, pending=(1,)), ((), (1,)), ((), ()), 1, 0),
        (view(free=(2,), pending=(1,)), ((2,), (1,)), ((), ()), 1, 0),
        # Free 1g.10gb slices do not serve a 3g.40gb request.
        (view(free=(3,), pending=(1,)), ((3,), ()), ((), (1,)), 2, 0),
        (view(free=(1,), pending=(1,) * 3), ((1,), (1, 1, 1)), ((), ()), 2, 0),
        # Each type alone: 1g.10gb needs one node, 3g.40gb two; new nodes bring both.
        (view(pending=(1,) * 5), ((), (1, 1, 1)), ((), (1, 1)), 3, 0),
        # A node on its way brings its slices of each type.
        (view(backend=2, joined=1, pending=(1,)), ((), ()), ((), (1,)), 2, 0),
        (view(ceiling=2, pending=(1,) * 3), ((), ()), ((), (1, 1, 1)), 2, 2),
    ],
    ids=[
        "from-zero",
        "a-free-slice",
        "free-slices-of-another-type",
        "more-than-free",
        "most-nodes-any-type-needs",
        "on-its-way",
        "ceiling",
    ],
)
def test_growth_per_slice_type(group, small, large, target, unmet):
    resources = [(SMALL, 4, *small), (LARGE, 1, *large)]
    decision = plan_layout(group, resources)
    assert (decision.target, decision.unmet_gpus) == (target, unmet), decision.reason


def test_one_resource_plans_as_whole_gpus():
    group = view(free=(1,), pending=(2, 1))
    assert plan_layout(group, [("nvidia.com/gpu", 5, (1,), (2, 1))]) == plan(group)


def test_standby_counts_slices_of_any_type():
    decision = plan_layout(view(free=(1,), standby=3), [(SMALL, 4, (1,), ()), (LARGE, 1, (), ())])
    assert (decision.target, decision.unmet_gpus) == (2, 0)

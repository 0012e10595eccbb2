"""The shrink decision: only on a settled view, only empty nodes past their own grace period."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cern_spawner.scaling.capacity import NodeInfo
from cern_spawner.scaling.shrink import ShrinkView, decide, unsettled

pytestmark = pytest.mark.unit
NOW = 1000.0


def node(name, workloads=0):
    return NodeInfo(name, "True", 4, 4 * bool(workloads), workloads, False, False, f"id-{name}")


def view(**overrides) -> ShrinkView:
    values = dict(
        mode="resize",
        members=(node("n0"), node("n1", workloads=4)),
        leaving=0,
        cloud_nodes=2,
        cloud_min=0,
        cloud_busy=False,
        lost=0,
        baseline=0,
        empty_since={"n0": NOW - 100},
        grace=60,
        now=NOW,
    )
    values.update(overrides)
    return ShrinkView(**values)


@pytest.mark.parametrize(
    ("overrides", "target", "remove"),
    [
        pytest.param({}, 1, ("n0",), id="the-empty-node-past-its-grace"),
        pytest.param({"empty_since": {"n0": NOW - 30}}, None, None, id="within-its-own-grace"),
        pytest.param({"empty_since": {}}, None, None, id="never-seen-empty"),
        pytest.param({"cloud_busy": True}, None, None, id="cloud-still-updating"),
        pytest.param({"leaving": 1}, None, None, id="a-named-node-is-still-in-kubernetes"),
        pytest.param({"cloud_nodes": 1}, None, None, id="cloud-already-counts-fewer"),
        pytest.param({"cloud_nodes": 3}, None, None, id="a-vm-not-joined-yet"),
        pytest.param({"cloud_nodes": 3, "lost": 1}, 2, ("n0",), id="a-lost-vm-is-kept-but-settled"),
        pytest.param({"baseline": 2}, None, None, id="never-below-the-baseline"),
        pytest.param(
            {
                "members": (node("n0"), node("n1"), node("n2", workloads=1)),
                "cloud_nodes": 3,
                "empty_since": {"n0": NOW - 100, "n1": NOW - 100},
            },
            1,
            ("n1", "n0"),
            id="every-empty-node-newest-first",
        ),
        pytest.param(
            {
                "members": (node("n0"), node("n1")),
                "empty_since": {"n0": NOW - 100, "n1": NOW - 100},
                "baseline": 1,
            },
            1,
            ("n1",),
            id="down-to-the-baseline-only",
        ),
        pytest.param(
            {"members": (node("n0", workloads=1), node("n1", workloads=4)), "empty_since": {"n0": NOW - 100}},
            None,
            None,
            id="a-node-with-a-pod-is-never-removable-whatever-its-history",
        ),
        pytest.param({"mode": "raise-min", "cloud_min": 2}, 1, (), id="raise-min-lowers-min-to-nodes-in-use"),
        pytest.param(
            {"mode": "raise-min", "cloud_min": 2, "empty_since": {"n0": NOW - 1}},
            None,
            None,
            id="raise-min-keeps-a-node-in-its-grace",
        ),
        pytest.param({"mode": "raise-min", "cloud_min": 1}, None, None, id="raise-min-already-low"),
        pytest.param(
            {"mode": "raise-min", "cloud_min": 2, "cloud_nodes": 1},
            None,
            None,
            id="raise-min-waits-for-the-autoscalers-removal-to-show",
        ),
    ],
)
def test_decide(overrides, target, remove):
    decision = decide(view(**overrides))
    if target is None:
        assert decision is None
    else:
        assert (decision.target, decision.remove) == (target, remove)


def test_the_incident_second_decision_on_an_unsettled_view_removes_nothing():
    # 2 nodes, 4 notebooks each; n0's users stopped and n0 was named (2 → 1). The cloud already says 1
    # node while Kubernetes still lists n0: the old code asked for 0 and lost n1's four notebooks.
    after_first_write = view(cloud_nodes=1, leaving=1, members=(node("n1", workloads=4),), empty_since={})
    assert unsettled(after_first_write)
    assert decide(after_first_write) is None
    settled = replace(after_first_write, leaving=0)
    assert decide(settled) is None  # n1 runs notebooks: never below the nodes in use


@pytest.mark.parametrize(
    ("unclaimed", "empty_for", "removed"),
    [
        pytest.param(frozenset({"n0"}), 61, True, id="never-used-goes-after-the-short-wait"),
        pytest.param(frozenset({"n0"}), 30, False, id="never-used-not-before-it"),
        pytest.param(frozenset(), 61, False, id="a-node-that-served-keeps-its-full-grace"),
    ],
)
def test_unclaimed_nodes(unclaimed, empty_for, removed):
    decision = decide(view(grace=600, unclaimed=unclaimed, empty_since={"n0": NOW - empty_for}))
    assert (decision is not None) == removed


def used(name, gpus):
    """A node running one pod that holds `gpus` of its 4 GPUs."""
    return NodeInfo(name, "True", 4, gpus, 1, False, False, f"id-{name}")


THREE = {"n0": NOW - 100, "n1": NOW - 100}


@pytest.mark.parametrize(
    ("overrides", "target", "remove"),
    [
        pytest.param({"keep_free": 4}, None, None, id="inside-the-window-the-standby-node-stays"),
        pytest.param({"keep_free": 0}, 1, ("n0",), id="at-the-window-end-it-goes"),
        pytest.param(
            {
                "members": (node("n0"), node("n1"), node("n2", workloads=1)),
                "cloud_nodes": 3,
                "empty_since": THREE,
            },
            1,
            ("n1", "n0"),
            id="window-end-both-empty-go-the-busy-one-stays",
        ),
        pytest.param(
            {
                "members": (node("n0"), node("n1"), node("n2", workloads=1)),
                "cloud_nodes": 3,
                "empty_since": THREE,
                "keep_free": 4,
            },
            2,
            ("n1",),
            id="one-spare-node-kept-the-oldest",
        ),
        pytest.param(
            {"members": (node("n0"), used("n1", 1)), "keep_free": 3},
            1,
            ("n0",),
            id="free-gpus-on-a-busy-node-hold-the-standby",
        ),
        pytest.param(
            {"members": (node("n0"), used("n1", 2)), "keep_free": 3},
            None,
            None,
            id="not-enough-on-the-busy-node",
        ),
        pytest.param(
            {"mode": "raise-min", "cloud_min": 2, "keep_free": 4},
            None,
            None,
            id="raise-min-keeps-the-standby",
        ),
        pytest.param({"mode": "raise-min", "cloud_min": 2, "keep_free": 0}, 1, (), id="raise-min-window-end"),
    ],
)
def test_standby_keeps_free_gpus_only_inside_its_window(overrides, target, remove):
    decision = decide(view(**overrides))
    if target is None:
        assert decision is None
    else:
        assert (decision.target, decision.remove) == (target, remove)

"""The planner: one target per group from all pending demand, counting nodes on their way."""

from __future__ import annotations

import pytest

from cern_spawner.scaling.planner import GroupView, burst_wait, plan

pytestmark = pytest.mark.unit


def view(free_gpus=0, pending_gpus=0, booting_gpus=0, **overrides) -> GroupView:
    """A view from totals: free GPUs packed 4 per node, each pending pod asking for one GPU."""
    values = dict(
        name="gpu-v100",
        gpus_per_node=4,
        backend_nodes=1,
        joined_nodes=1,
        free_per_node=tuple(min(4, free_gpus - i) for i in range(0, free_gpus, 4)),
        pending_requests=(1,) * pending_gpus,
        booting_nodes=booting_gpus // 4,
        baseline=0,
        ceiling=4,
    )
    values.update(overrides)
    return GroupView(**values)


@pytest.mark.parametrize(
    ("overrides", "target", "unmet"),
    [
        pytest.param({}, 1, 0, id="no-demand-no-change"),
        pytest.param({"pending_gpus": 1, "free_gpus": 1}, 1, 0, id="a-free-gpu-serves-it"),
        pytest.param({"pending_gpus": 1}, 2, 0, id="one-more-node"),
        pytest.param({"backend_nodes": 0, "joined_nodes": 0, "pending_gpus": 1}, 1, 0, id="from-zero"),
        pytest.param(
            {"backend_nodes": 0, "joined_nodes": 0, "pending_gpus": 10}, 3, 0, id="ten-gpus-three-nodes"
        ),
        pytest.param({"backend_nodes": 0, "joined_nodes": 0, "pending_gpus": 20}, 4, 4, id="ceiling-caps"),
        pytest.param({"backend_nodes": 4, "joined_nodes": 4, "pending_gpus": 1}, 4, 1, id="at-ceiling"),
        pytest.param(
            {"backend_nodes": 2, "joined_nodes": 1, "pending_gpus": 4}, 2, 0, id="booting-node-counts"
        ),
        pytest.param(
            {"backend_nodes": 2, "joined_nodes": 1, "pending_gpus": 5}, 3, 0, id="beyond-the-booting-node"
        ),
        pytest.param({"pending_gpus": 4, "booting_gpus": 4}, 1, 0, id="gpus-not-yet-allocatable-count"),
        pytest.param({"backend_nodes": 0, "joined_nodes": 0, "baseline": 1}, 1, 0, id="never-below-baseline"),
        pytest.param({"backend_nodes": 3, "joined_nodes": 3, "free_gpus": 12}, 3, 0, id="never-shrinks"),
        pytest.param({"gpus_per_node": 0, "pending_gpus": 2}, 1, 2, id="not-a-gpu-group"),
        pytest.param(
            {"backend_nodes": 5, "joined_nodes": 5, "pending_gpus": 4}, 5, 4, id="above-ceiling-already"
        ),
    ],
)
def test_plan(overrides, target, unmet):
    decision = plan(view(**overrides))
    assert (decision.target, decision.unmet_gpus) == (target, unmet)
    assert decision.grows == (target > decision.current)


def test_concurrent_demand_coalesces_into_one_target():
    # Ten users waiting on an empty group: one decision covers them all, and deciding again while
    # the three nodes boot asks for nothing more.
    first = plan(view(backend_nodes=0, joined_nodes=0, pending_gpus=10))
    assert first.target == 3
    again = plan(view(backend_nodes=3, joined_nodes=0, pending_gpus=10))
    assert not again.grows
    joined = plan(view(backend_nodes=3, joined_nodes=3, booting_gpus=12, pending_gpus=10))
    assert not joined.grows


@pytest.mark.parametrize(
    ("free_per_node", "requests", "target", "unmet"),
    [
        pytest.param((1, 1), (2,), 3, 0, id="two-half-free-nodes-cannot-hold-a-2-gpu-pod"),
        pytest.param((2,), (2,), 2, 0, id="one-node-with-two-free-holds-it"),
        pytest.param((1, 1), (1, 1), 2, 0, id="single-gpu-pods-fill-the-gaps"),
        pytest.param((3,), (2, 2), 3, 0, id="best-fit-then-one-new-node"),
        pytest.param((), (3, 3), 4, 0, id="two-3-gpu-pods-need-two-nodes"),
        pytest.param((), (5,), 2, 5, id="larger-than-a-node-is-never-met"),
    ],
)
def test_gpus_are_placed_per_node(free_per_node, requests, target, unmet):
    decision = plan(
        GroupView(
            name="gpu-v100",
            gpus_per_node=4,
            backend_nodes=2,
            joined_nodes=2,
            free_per_node=free_per_node,
            pending_requests=requests,
            ceiling=4,
        )
    )
    assert (decision.target, decision.unmet_gpus) == (target, unmet)


# -- standby: free GPUs kept ready in a window, after the waiting users and within the ceiling -----
@pytest.mark.parametrize(
    ("overrides", "target", "unmet", "standby_unmet"),
    [
        pytest.param({"backend_nodes": 0, "joined_nodes": 0, "standby_gpus": 4}, 1, 0, 0, id="window-opens"),
        pytest.param(
            {"backend_nodes": 0, "joined_nodes": 0, "standby_gpus": 5}, 2, 0, 0, id="rounds-up-to-nodes"
        ),
        pytest.param({"free_gpus": 4, "standby_gpus": 4}, 1, 0, 0, id="already-free"),
        pytest.param({"free_gpus": 3, "standby_gpus": 4}, 2, 0, 0, id="a-user-took-one-restore"),
        pytest.param(
            {"backend_nodes": 2, "joined_nodes": 1, "standby_gpus": 4}, 2, 0, 0, id="booting-node-counts"
        ),
        pytest.param(
            {"free_gpus": 4, "pending_gpus": 2, "standby_gpus": 4}, 2, 0, 0, id="users-first-then-standby"
        ),
        pytest.param(
            {"backend_nodes": 0, "joined_nodes": 0, "pending_gpus": 3, "standby_gpus": 1},
            1,
            0,
            0,
            id="spare-on-a-users-node-counts",
        ),
        pytest.param({"backend_nodes": 0, "joined_nodes": 0, "standby_gpus": 40}, 4, 0, 24, id="max-cap"),
        pytest.param(
            {"backend_nodes": 3, "joined_nodes": 3, "pending_gpus": 4, "standby_gpus": 8},
            4,
            0,
            8,
            id="users-take-the-last-node-before-standby",
        ),
        pytest.param(
            {"backend_nodes": 4, "joined_nodes": 4, "pending_gpus": 1, "standby_gpus": 4},
            4,
            1,
            4,
            id="at-ceiling-users-blocked-standby-short",
        ),
        pytest.param(
            {"backend_nodes": 0, "joined_nodes": 0, "baseline": 1, "standby_gpus": 4},
            1,
            0,
            0,
            id="baseline-node-holds-the-standby",
        ),
    ],
)
def test_standby(overrides, target, unmet, standby_unmet):
    decision = plan(view(**overrides))
    assert (decision.target, decision.unmet_gpus, decision.standby_unmet) == (target, unmet, standby_unmet)


def test_standby_growth_says_why():
    decision = plan(view(backend_nodes=0, joined_nodes=0, pending_gpus=1, standby_gpus=8))
    assert decision.reason == "grow 0 → 3 for 1 GPU(s) and 5 standby GPU(s)"


@pytest.mark.parametrize(
    "demand_since, last_arrival, now, expected",
    [
        pytest.param(None, 99.0, 100.0, 0.0, id="nobody-waits"),
        pytest.param(90.0, None, 100.0, 0.0, id="no-arrival-seen"),
        pytest.param(99.0, 99.8, 100.0, 0.8, id="still-arriving"),
        pytest.param(99.0, 98.5, 100.0, 0.0, id="quiet-for-a-second"),
        pytest.param(90.0, 99.9, 100.0, 0.0, id="arriving-but-window-over"),
        pytest.param(95.0, 99.9, 104.5, 0.0, id="window-ends-first"),
        pytest.param(99.5, 99.9, 100.0, 0.9, id="quiet-ends-first"),
    ],
)
def test_a_growth_waits_for_a_burst_to_finish_arriving(demand_since, last_arrival, now, expected):
    assert burst_wait(demand_since, last_arrival, now, quiet=1.0, longest=5.0) == pytest.approx(expected)


@pytest.mark.parametrize(
    "last_arrival, in_flight, now, expected",
    [
        pytest.param(98.0, 1, 100.0, 1.0, id="a-pod-being-created-holds-past-the-quiet"),
        pytest.param(None, 2, 100.0, 1.0, id="only-starts-in-flight"),
        pytest.param(99.8, 1, 100.0, 1.0, id="in-flight-and-still-arriving"),
        pytest.param(99.0, 1, 103.5, 0.5, id="in-flight-until-the-window-ends"),
        pytest.param(99.0, 1, 104.0, 0.0, id="window-over-despite-one-in-flight"),
        pytest.param(98.0, 0, 100.0, 0.0, id="none-in-flight-quiet"),
    ],
)
def test_a_growth_waits_for_the_pods_of_starts_already_begun(last_arrival, in_flight, now, expected):
    assert burst_wait(99.0, last_arrival, now, quiet=1.0, longest=5.0, in_flight=in_flight) == (
        pytest.approx(expected)
    )


def test_no_quiet_time_grows_at_once():
    assert burst_wait(99.0, 99.9, 100.0, quiet=0.0, longest=5.0) == 0.0
    assert burst_wait(99.0, 99.9, 100.0, quiet=0.0, longest=5.0, in_flight=3) == 0.0

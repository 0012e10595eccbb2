"""The simulated cluster autoscaler's choice of a node to remove (pure)."""

from __future__ import annotations

import pytest

from sandbox.openstack.autoscaler import node_to_remove

pytestmark = pytest.mark.unit


def group(node_count, minimum, status="UPDATE_COMPLETE"):
    return {"node_count": node_count, "min_node_count": minimum, "status": status}


@pytest.mark.parametrize(
    ("state", "busy", "idle_for", "expected"),
    [
        pytest.param(group(2, 0), set(), 11, "t-1", id="idle-above-min-removed-newest-first"),
        pytest.param(group(2, 0), {"t-1"}, 11, "t-0", id="busy-node-kept"),
        pytest.param(group(2, 0), {"t-0", "t-1"}, 11, None, id="all-busy"),
        pytest.param(group(2, 2), set(), 11, None, id="min-pins-the-nodes"),
        pytest.param(group(2, 0), set(), 5, None, id="not-idle-long-enough"),
        pytest.param(group(2, 0, "UPDATE_IN_PROGRESS"), set(), 11, None, id="group-busy"),
    ],
)
def test_node_to_remove(state, busy, idle_for, expected):
    empty_since: dict[str, float] = {}
    assert node_to_remove(state, ["t-0", "t-1"], busy, empty_since, 100.0, 10) is None  # first sight
    assert node_to_remove(state, ["t-0", "t-1"], busy, empty_since, 100.0 + idle_for, 10) == expected


def test_a_node_that_ran_a_pod_starts_its_idle_time_again():
    empty_since: dict[str, float] = {}
    node_to_remove(group(1, 0), ["t-0"], set(), empty_since, 0.0, 10)
    node_to_remove(group(1, 0), ["t-0"], {"t-0"}, empty_since, 8.0, 10)
    assert node_to_remove(group(1, 0), ["t-0"], set(), empty_since, 12.0, 10) is None
    assert node_to_remove(group(1, 0), ["t-0"], set(), empty_since, 22.0, 10) == "t-0"

"""When the controller reads a group from the cloud (scaling/pacing.py)."""

from __future__ import annotations

import pytest

from cern_spawner.scaling.magnum import GroupState
from cern_spawner.scaling.pacing import QUIET_READ_CAP, next_gap, read_due

pytestmark = pytest.mark.unit


def state(nodes=1, status="UPDATE_IN_PROGRESS", minimum=0, maximum=4):
    return GroupState("gpu-v100", nodes, minimum, maximum, status, "")


@pytest.mark.parametrize(
    ("read_at", "active", "gap", "more_waiting", "due"),
    [
        (None, False, 2.0, False, True),
        (95.0, True, 2.0, True, True),
        (99.0, True, 2.0, False, False),
        (98.0, True, 2.0, False, True),
        (95.0, True, 8.0, False, False),
        (92.0, True, 8.0, False, True),
        (80.0, False, 2.0, False, False),
        (70.0, False, 2.0, False, True),
    ],
    ids=[
        "never-read",
        "more-users-wait",
        "active-within-gap",
        "active-gap-passed",
        "active-quiet-within-long-gap",
        "active-quiet-long-gap-passed",
        "idle-within-refresh",
        "idle-refresh-passed",
    ],
)
def test_read_due(read_at, active, gap, more_waiting, due):
    now = 100.0
    assert read_due(read_at, now, active=active, gap=gap, idle_refresh=30.0, more_waiting=more_waiting) is due


@pytest.mark.parametrize(
    ("before", "after", "gap", "expected"),
    [
        (None, state(), 0.0, 2.0),
        (state(1), state(1), 0.0, 4.0),
        (state(1), state(1), 4.0, QUIET_READ_CAP),
        (state(1), state(1), QUIET_READ_CAP, QUIET_READ_CAP),
        (state(1), state(2), QUIET_READ_CAP, 2.0),
        (state(1), state(1, "UPDATE_COMPLETE"), QUIET_READ_CAP, 2.0),
        (state(1), state(1, "UPDATE_FAILED"), 4.0, 2.0),
        (state(1), state(1, maximum=8), 4.0, 2.0),
    ],
    ids=[
        "first-read",
        "same-doubles",
        "same-reaches-cap",
        "same-stays-at-cap",
        "node-count-moved",
        "finished",
        "failed",
        "limits-changed",
    ],
)
def test_next_gap(before, after, gap, expected):
    assert next_gap(before, after, gap, interval=2.0) == expected


def test_an_interval_above_the_cap_is_never_shortened():
    assert next_gap(state(), state(), 20.0, interval=20.0) == 20.0

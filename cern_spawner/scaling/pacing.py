"""How often the controller reads a group from the cloud (pure: no I/O, no clock of its own).

While something waits or changes (`ScalingController._active`) the group is read every round,
but a round comes every `interval` (2 s) and a boot lasts minutes: a cloud that answers the same
state again is read half as often each time, up to QUIET_READ_CAP, and at once again when the
state changes, when more users start waiting, or after our own request. An idle group is read
every `idle_refresh`.
"""

from __future__ import annotations

from .backend import GroupState

# Seconds between reads of a group whose cloud state has not changed while a change is under way:
# how late, at worst, the controller learns that the cloud finished (or failed) a change it did
# not see coming (a grow it asked for is read `interval` after the request).
QUIET_READ_CAP = 8.0


def read_due(
    read_at: float | None,
    now: float,
    *,
    active: bool,
    gap: float,
    idle_refresh: float,
    more_waiting: bool,
) -> bool:
    """Whether this round reads the cloud: `read_at` is the last read (None: none yet, or a
    request since), `gap` the current spacing of reads while active."""
    if read_at is None or more_waiting:
        return True
    return now - read_at >= (gap if active else idle_refresh)


def next_gap(before: GroupState | None, after: GroupState, gap: float, interval: float) -> float:
    """The spacing of reads after one that found `after` (`before`: the previous read)."""
    if before is None or _moved(before, after):
        return interval
    return min(max(gap, interval) * 2, max(QUIET_READ_CAP, interval))


def _moved(before: GroupState, after: GroupState) -> bool:
    return (before.node_count, before.status, before.min_nodes, before.max_nodes) != (
        after.node_count,
        after.status,
        after.min_nodes,
        after.max_nodes,
    )

"""GroupStatus as pending starts read it: woken when a blocker is set, never by a timer."""

from __future__ import annotations

import asyncio

import pytest

from cern_spawner.scaling.errors import CeilingReached
from cern_spawner.scaling.state import GroupStatus

pytestmark = pytest.mark.unit
FULL = CeilingReached("No GPU is free.", "gpu-v100 at 4 of 4")


def test_a_blocker_already_set_is_returned_at_once():
    status = GroupStatus(blocker=FULL)
    assert asyncio.run(status.until_blocked()) is FULL


@pytest.mark.parametrize(
    "change, wakes",
    [
        pytest.param({"blocker": FULL}, True, id="blocker-set"),
        pytest.param({"blocker": None}, False, id="blocker-cleared"),
        pytest.param({"requested": (0, 2)}, False, id="other-field"),
    ],
)
def test_waiters_wake_only_when_a_blocker_is_set(change, wakes):
    async def scenario():
        status = GroupStatus()
        waiters = [asyncio.ensure_future(status.until_blocked()) for _ in range(3)]
        await asyncio.sleep(0)
        for name, value in change.items():
            setattr(status, name, value)
        await asyncio.sleep(0)
        done = [w.done() for w in waiters]
        for w in waiters:
            w.cancel()
        ended = await asyncio.gather(*waiters, return_exceptions=True)
        return done, [r for r in ended if not isinstance(r, asyncio.CancelledError)]

    done, results = asyncio.run(scenario())
    assert done == [wakes] * 3
    assert results == ([FULL] * 3 if wakes else [])


def test_a_blocker_set_then_cleared_before_the_waiter_runs_does_not_wake_it():
    async def scenario():
        status = GroupStatus()
        waiter = asyncio.ensure_future(status.until_blocked())
        await asyncio.sleep(0)
        status.blocker = FULL
        status.blocker = None  # gone before the waiter ran: it waits on
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        still_waiting = not waiter.done()
        status.blocker = FULL
        return still_waiting, await asyncio.wait_for(waiter, 1)

    assert asyncio.run(scenario()) == (True, FULL)


def test_cancelled_waits_are_dropped_at_the_next_wait():
    async def scenario():
        status = GroupStatus()
        ended = [asyncio.ensure_future(status.until_blocked()) for _ in range(100)]
        await asyncio.sleep(0)
        for w in ended:
            w.cancel()
        await asyncio.sleep(0)
        live = asyncio.ensure_future(status.until_blocked())
        await asyncio.sleep(0)
        kept = len(status._blocked_waiters)
        live.cancel()
        return kept

    assert asyncio.run(scenario()) == 1


def test_a_blocker_set_before_a_start_began_is_not_that_starts_verdict():
    """A quota refusal that failed an earlier user still stands (nobody-waiting rounds clear it):
    a start that began after it waits for a verdict of its own."""
    times = iter([100.0, 200.0])
    status = GroupStatus(wall_clock=lambda: next(times))

    async def scenario():
        status.blocker = FULL  # at 100, for an earlier user
        waiter = asyncio.ensure_future(status.until_blocked(after=150.0))
        await asyncio.sleep(0)
        stale = not waiter.done()
        status.blocker = FULL  # at 200: the controller judged again, this start's pod waiting
        return stale, await asyncio.wait_for(waiter, 1)

    assert asyncio.run(scenario()) == (True, FULL)

"""The one way cern-spawner waits: exponential backoff, with a deadline where there is one.

Every pause between two looks at something goes through `Backoff` (or `until`, which wraps it),
so its timing is stated in one place and tests run it with an injected sleep and clock. Loops
that only stream events as they come (progress generators, log readers) wait on those events
themselves, not on a timer.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

Sleep = Callable[[float], Awaitable]


def full_jitter(delay: float, draw: Callable[[float, float], float] = random.uniform) -> float:
    """A pause anywhere in [0, delay]: many waiters that failed together do not retry together."""
    return draw(0, delay)


class Backoff:
    """Delays that double from `first` up to `cap`; `reset()` after a success.

    `jitter`, if given, turns each delay into the pause actually slept (see `full_jitter`);
    `sleep` may wake early (for example `lambda s: asyncio.wait({task}, timeout=s)`).
    """

    def __init__(
        self,
        first: float = 0.1,
        cap: float = 5.0,
        sleep: Sleep = asyncio.sleep,
        jitter: Callable[[float], float] | None = None,
    ):
        self.first, self.cap, self._sleep, self._jitter = first, cap, sleep, jitter
        self.delay = first

    def reset(self) -> None:
        self.delay = self.first

    def next_pause(self) -> float:
        """The pause to sleep now, advancing the delay for the one after."""
        pause = self._jitter(self.delay) if self._jitter else self.delay
        self.delay = min(self.delay * 2, self.cap)
        return pause

    async def sleep(self) -> None:
        await self._sleep(self.next_pause())


def steady(seconds: float, sleep: Sleep = asyncio.sleep) -> Backoff:
    """The same pause every time: a poll at a fixed interval."""
    return Backoff(first=seconds, cap=seconds, sleep=sleep)


async def until(
    check: Callable[[], Awaitable[object]],
    *,
    within: float | None,
    what: str,
    first: float = 0.1,
    cap: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Sleep = asyncio.sleep,
):
    """Await check() until it returns something truthy, and return that.

    TimeoutError naming `what` after `within` s; `within=None` waits as long as it takes (the
    caller's own deadline, or a cancellation, ends it).
    """
    deadline = None if within is None else clock() + within
    backoff = Backoff(first, cap, sleep)
    while True:
        result = await check()
        if result:
            return result
        if deadline is not None and clock() >= deadline:
            raise TimeoutError(f"{what}: not done after {within:.0f} s")
        await backoff.sleep()


# (loop, seconds) -> the next shared tick: one timer for every waiter, not one each.
_ticks: dict[tuple[int, float], asyncio.Future] = {}


async def shared_tick(seconds: float) -> None:
    """Return at the next tick of a clock of `seconds` shared by all its waiters in this loop.

    A hub polls each pending start at the same interval; with one timer per interval the waiters
    cost a callback each instead of a timer and a wait set each (a wait is up to `seconds`)."""
    loop = asyncio.get_running_loop()
    key = (id(loop), seconds)
    tick = _ticks.get(key)
    if tick is None or tick.done() or tick.get_loop() is not loop:
        tick = _ticks[key] = loop.create_future()
        loop.call_later(seconds, _fire, tick)
    await asyncio.shield(tick)  # a cancelled waiter must not cancel the others' tick


def _fire(tick: asyncio.Future) -> None:
    if not tick.done():
        tick.set_result(None)

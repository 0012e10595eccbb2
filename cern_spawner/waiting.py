"""The one way cern-spawner waits: exponential backoff, with a deadline where there is one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class Backoff:
    """Delays that double from `first` up to `cap`; `reset()` after a success."""

    def __init__(
        self, first: float = 0.1, cap: float = 5.0, sleep: Callable[[float], Awaitable] = asyncio.sleep
    ):
        self.first, self.cap, self._sleep = first, cap, sleep
        self.delay = first

    def reset(self) -> None:
        self.delay = self.first

    async def sleep(self) -> None:
        await self._sleep(self.delay)
        self.delay = min(self.delay * 2, self.cap)


async def until(
    check: Callable[[], Awaitable[object]],
    *,
    within: float,
    what: str,
    first: float = 0.1,
    cap: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable] = asyncio.sleep,
):
    """Await check() until it returns something truthy; TimeoutError naming `what` after `within` s."""
    deadline = clock() + within
    backoff = Backoff(first, cap, sleep)
    while True:
        result = await check()
        if result:
            return result
        if clock() >= deadline:
            raise TimeoutError(f"{what}: not done after {within:.0f} s")
        await backoff.sleep()

"""One way for tests to wait for the cluster: poll with backoff until true or fail with what was seen."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    check: Callable[[], T], *, timeout: float, what: str, clock=time.monotonic, sleep=time.sleep
) -> T:
    """Return check()'s first truthy result; fail the test after `timeout` seconds."""
    deadline = clock() + timeout
    delay = 0.05
    last = None
    while True:
        last = check()
        if last:
            return last
        if clock() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        sleep(delay)
        delay = min(delay * 2, 1.0)

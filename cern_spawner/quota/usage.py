"""GPU use over a rolling window, and when it frees. Pure: times are epoch seconds, `now` is given.

A session holds `gpus` GPUs from `start` to `stop` (None: still running, counted up to `now`). Its
use within the window (now - window, now] is its overlap with the window times its GPUs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class GpuSession:
    server: str  # the server's name ("" for the default server)
    profile: str
    gpus: int
    start: float
    stop: float | None = None  # None: running

    def end(self, now: float) -> float:
        return now if self.stop is None else min(self.stop, now)


def gpu_seconds(sessions: Iterable[GpuSession], now: float, window: float) -> float:
    """GPU-seconds used within the `window` seconds before `now`, running sessions counted to `now`."""
    since = now - window
    return sum(s.gpus * max(0.0, s.end(now) - max(s.start, since)) for s in sessions)


def running_gpus(sessions: Iterable[GpuSession], *, except_server: str | None = None) -> int:
    """GPUs held now by running sessions, leaving out server `except_server` (the one starting)."""
    return sum(s.gpus for s in sessions if s.stop is None and s.server != except_server)


def frees_at(sessions: Iterable[GpuSession], now: float, window: float, target: float) -> float | None:
    """The first time from `now` at which the use counted up to `now` has left the window enough
    that at most `target` GPU-seconds remain in it: `now` if it already has, None if never
    (target < 0). Running sessions are taken as stopping now: their further use is unknown.

    Use in the window at t ≥ now is Σ gpus × (end − max(start, t − window))⁺, a continuous
    non-increasing function, linear between the times t − window passes a start or an end: check
    those in order and interpolate inside the step where it drops to `target`.
    """
    if target < 0:
        return None
    spans = [(s.start, s.end(now), s.gpus) for s in sessions if s.end(now) > s.start]

    def use(t: float) -> float:
        since = t - window
        return sum(gpus * max(0.0, end - max(start, since)) for start, end, gpus in spans)

    before, used = now, use(now)
    if used <= target:
        return now
    for t in sorted({edge + window for start, end, _ in spans for edge in (start, end)}):
        if t <= now:
            continue
        after = use(t)
        if after <= target:
            # Linear between `before` and `t`: solve for the crossing.
            return before + (used - target) * (t - before) / (used - after)
        before, used = t, after
    return None  # unreachable: after the last end has left the window, use is 0 ≤ target

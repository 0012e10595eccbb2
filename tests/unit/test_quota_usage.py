"""GPU-hours over a rolling window, and when they free: the window arithmetic, on a given clock."""

from __future__ import annotations

import pytest

from cern_spawner.quota.usage import GpuSession, frees_at, gpu_seconds, running_gpus

pytestmark = pytest.mark.unit

H = 3600.0
DAY = 24 * H
WEEK = 7 * DAY
NOW = 100 * DAY  # any fixed instant: the functions only see the numbers they are given


def session(start_h: float, stop_h: float | None, gpus: int = 1, server: str = "") -> GpuSession:
    """A session from `start_h` hours before NOW to `stop_h` hours before NOW (None: running)."""
    return GpuSession(server, "gpu-1", gpus, NOW - start_h * H, None if stop_h is None else NOW - stop_h * H)


USED = {
    # name: (sessions, window, GPU-hours used)
    "nothing": ([], WEEK, 0.0),
    "inside": ([session(10, 8)], WEEK, 2.0),
    "two-gpus-count-twice": ([session(10, 8, gpus=2)], WEEK, 4.0),
    "running-counts-up-to-now": ([session(3, None)], WEEK, 3.0),
    "cut-at-the-window-start": ([session(7 * 24 + 2, 7 * 24 - 1)], WEEK, 1.0),
    "wholly-before-the-window": ([session(7 * 24 + 5, 7 * 24 + 1)], WEEK, 0.0),
    "spans-the-whole-window": ([session(30, None)], 24 * H, 24.0),
    "stopped-exactly-at-the-window-start": ([session(26, 24)], 24 * H, 0.0),
    "several": ([session(50, 40), session(5, 4, gpus=4), session(1, None)], 48 * H, 8 + 4 + 1),
}


@pytest.mark.parametrize(("sessions", "window", "hours"), USED.values(), ids=USED.keys())
def test_gpu_hours_in_the_window(sessions, window, hours):
    assert gpu_seconds(sessions, NOW, window) / H == pytest.approx(hours)


def test_a_stop_after_now_counts_up_to_now():
    # A clock read before a stop recorded by another process: never counted beyond now.
    assert gpu_seconds([session(2, -1)], NOW, WEEK) / H == pytest.approx(2.0)


RUNNING = {
    "none-running": ([session(5, 4)], None, 0),
    "running-summed": ([session(5, None, gpus=2), session(1, None, gpus=1, server="b")], None, 3),
    "the-starting-server-left-out": ([session(5, None, gpus=2), session(1, None, server="b")], "", 1),
}


@pytest.mark.parametrize(("sessions", "except_server", "gpus"), RUNNING.values(), ids=RUNNING.keys())
def test_running_gpus(sessions, except_server, gpus):
    assert running_gpus(sessions, except_server=except_server) == gpus


FREES = {
    # name: (sessions, window, target GPU-hours, hours after NOW it frees, None: never)
    "already-below": ([session(10, 8)], WEEK, 5.0, 0.0),
    "negative-target-never": ([session(10, 8)], WEEK, -1.0, None),
    # 9.5 GPU-hours ending 1 h ago; 1 h must leave: its first hour leaves the window in 7 d − 10.5 h + 1 h.
    "one-hour-of-the-oldest": ([session(10.5, 1)], WEEK, 8.5, 7 * 24 - 10.5 + 1),
    "two-gpus-free-twice-as-fast": ([session(10, 0, gpus=2)], WEEK, 18.0, 7 * 24 - 10 + 1),
    "all-of-it": ([session(10, 8)], WEEK, 0.0, 7 * 24 - 8),
    # 3 h at 2 GPUs then later 3 h at 1 GPU; to be at 3 h the first must leave wholly.
    "across-a-gap": ([session(20, 17, gpus=2), session(5, 2)], 24 * H, 3.0, 24 - 17),
    "running-taken-as-stopping-now": ([session(4, None)], 24 * H, 3.0, 24 - 4 + 1),
}


@pytest.mark.parametrize(("sessions", "window", "target", "after"), FREES.values(), ids=FREES.keys())
def test_when_gpu_hours_free(sessions, window, target, after):
    at = frees_at(sessions, NOW, window, target * H)
    if after is None:
        assert at is None
    else:
        assert at == pytest.approx(NOW + after * H)
        # And at that moment the use counted up to NOW is indeed down to the target.
        past = [GpuSession(s.server, s.profile, s.gpus, s.start, s.end(NOW)) for s in sessions]
        assert gpu_seconds(past, at, window) / H == pytest.approx(
            min(target, gpu_seconds(past, NOW, window) / H)
        )

"""cern_spawner.waiting: the pauses of a backoff and the deadline of `until`, on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from cern_spawner.kube_create import Outcome, until_settled
from cern_spawner.waiting import Backoff, full_jitter, shared_tick, steady, until

pytestmark = pytest.mark.unit


class FakeTime:
    """A clock that only sleeping moves; records each pause."""

    def __init__(self):
        self.now = 0.0
        self.pauses: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


@pytest.mark.parametrize(
    ("first", "cap", "jitter", "pauses"),
    [
        (0.1, 5.0, None, [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]),
        (0.5, 30, None, [0.5, 1, 2, 4, 8, 16, 30, 30]),
        (1.0, 1.0, None, [1.0] * 8),
        (0.2, 5.0, lambda delay: delay / 2, [0.1, 0.2, 0.4, 0.8, 1.6, 2.5, 2.5, 2.5]),
        (0, 5.0, None, [0] * 8),
    ],
    ids=[
        "default-doubling-to-cap",
        "watch-relist",
        "steady",
        "jitter-applied-to-each-delay",
        "zero-stays-zero",
    ],
)
async def test_backoff_pauses(first, cap, jitter, pauses):
    time = FakeTime()
    backoff = Backoff(first, cap, sleep=time.sleep, jitter=jitter)
    for _ in range(8):
        await backoff.sleep()
    assert time.pauses == pytest.approx(pauses)


async def test_reset_starts_again_from_the_first_delay():
    time = FakeTime()
    backoff = Backoff(1, 10, sleep=time.sleep)
    for _ in range(3):
        await backoff.sleep()
    backoff.reset()
    await backoff.sleep()
    assert time.pauses == [1, 2, 4, 1]


def test_steady_is_a_fixed_interval():
    tick = steady(0.5)
    assert [tick.next_pause() for _ in range(4)] == [0.5] * 4


@pytest.mark.parametrize(
    ("delay", "drawn", "expected"),
    [(4.0, 0.25, 1.0), (4.0, 1.0, 4.0), (4.0, 0.0, 0.0)],
    ids=["inside", "top", "bottom"],
)
def test_full_jitter_draws_between_zero_and_the_delay(delay, drawn, expected):
    assert full_jitter(delay, draw=lambda low, high: low + (high - low) * drawn) == expected


@pytest.mark.parametrize(
    ("answers", "within", "result", "pauses"),
    [
        ([False, False, "ok"], 10, "ok", [0.1, 0.2]),
        (["at once"], 10, "at once", []),
        ([None] * 40 + [42], None, 42, [0.1, 0.2, 0.4, 0.8, 1.6, 3.2] + [5.0] * 34),
    ],
    ids=["after-two-looks", "first-look", "no-deadline-waits-as-long-as-it-takes"],
)
async def test_until_returns_the_first_truthy_answer(answers, within, result, pauses):
    time = FakeTime()
    answers = iter(answers)

    async def check():
        return next(answers)

    assert await until(check, within=within, what="x", clock=time.clock, sleep=time.sleep) == result
    assert time.pauses == pytest.approx(pauses)


async def test_until_gives_up_at_its_deadline_naming_what_it_waited_for():
    time = FakeTime()
    looks = []

    async def never():
        looks.append(time.now)
        return False

    with pytest.raises(TimeoutError, match=r"^pod u/jupyter-x: not done after 3 s$"):
        await until(never, within=3, what="pod u/jupyter-x", cap=1, clock=time.clock, sleep=time.sleep)
    assert looks == pytest.approx([0, 0.1, 0.3, 0.7, 1.5, 2.5, 3.5])  # one last look past the deadline


@pytest.mark.parametrize(
    ("retries", "pauses"),
    [(0, []), (3, [0.2, 0.4, 0.8]), (7, [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0])],
    ids=["no-retry", "three-retries", "capped"],
)
async def test_creates_retry_after_doubling_jittered_pauses(retries, pauses):
    time, tries = FakeTime(), []

    async def attempt(seconds):
        tries.append(seconds)
        return (Outcome.RETRY, "timed out") if len(tries) <= retries else (Outcome.CREATED, "created")

    outcome, _ = await until_settled(
        attempt, 3, lambda why: None, sleep=time.sleep, jitter=lambda delay: delay
    )
    assert outcome is Outcome.CREATED
    assert time.pauses == pytest.approx(pauses)


@pytest.mark.parametrize("cancelled", [0, 1], ids=["all-wait", "one-cancelled"])
async def test_waiters_of_a_shared_tick_share_one_timer_and_a_cancelled_one_stops_no_other(
    cancelled, monkeypatch
):
    timers = []
    loop = asyncio.get_running_loop()
    real_call_later = loop.call_later

    def counting_call_later(delay, callback, *args):
        timers.append(delay)
        return real_call_later(delay, callback, *args)

    monkeypatch.setattr(loop, "call_later", counting_call_later)
    waiters = [asyncio.ensure_future(shared_tick(0.01)) for _ in range(5)]
    await asyncio.sleep(0)
    for waiter in waiters[:cancelled]:
        waiter.cancel()
    await asyncio.wait(waiters)
    assert timers == [0.01]
    assert [w.cancelled() for w in waiters] == [True] * cancelled + [False] * (5 - cancelled)
    await shared_tick(0.01)  # a tick that fired is not waited on again: the next one is new
    assert timers == [0.01, 0.01]

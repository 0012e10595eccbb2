"""Start or refuse a GPU server, which limits apply to whom, and the words users read."""

from __future__ import annotations

from datetime import UTC, datetime
from types import MappingProxyType, SimpleNamespace

import pytest

from cern_spawner.quota.decision import card_line, decide, when, window_words
from cern_spawner.quota.policy import (
    Limits,
    Override,
    QuotaPolicy,
    effective_limits,
    most_generous,
    parse_window,
    policy_of,
    role_limits,
)
from cern_spawner.quota.usage import GpuSession

pytestmark = pytest.mark.unit

H = 3600.0
WEEK = 7 * 24 * H
# Thursday 3 December 2026, 12:00 UTC.
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC).timestamp()


def session(start_h, stop_h, gpus=1, server=""):
    return GpuSession(server, "gpu-1", gpus, NOW - start_h * H, None if stop_h is None else NOW - stop_h * H)


# 9.5 GPU-hours from 119 h ago: the first of them leaves the 7-day window at 14:00 UTC on Saturday.
PAST = [session(119, 119 - 9.5)]

DECISIONS = {
    # name: (limits, sessions, gpus asked, allowed, limit that refused, message or its start)
    "cpu-profile-never-limited": (Limits(gpus=0, gpu_hours=0), [], 0, True, "", ""),
    "unlimited": (Limits(), PAST, 4, True, "", ""),
    "hours-left": (Limits(gpu_hours=10), PAST, 1, True, "", ""),
    "hours-used-up": (
        Limits(gpu_hours=9.5),
        PAST,
        1,
        False,
        "gpu_hours",
        "You have used 9.5 of 9.5 GPU-hours in the last 7 days; "
        "1 GPU-hour frees at 14:00 UTC Saturday 5 December.",
    ),
    "zero-hours-never-free": (
        Limits(gpu_hours=0),
        [],
        1,
        False,
        "gpu_hours",
        "You have used 0 of 0 GPU-hours in the last 7 days; ask the service's administrators for more.",
    ),
    "a-small-quota-frees-all-of-itself": (
        Limits(gpu_hours=0.5),
        [session(1, 0)],
        1,
        False,
        "gpu_hours",
        "You have used 1 of 0.5 GPU-hours in the last 7 days; "
        "0.5 GPU-hours frees at 12:00 UTC Thursday 10 December.",
    ),
    "running-server-said": (
        Limits(gpu_hours=2),
        [session(3, None, server="other")],
        1,
        False,
        "gpu_hours",
        "You have used 3 of 2 GPU-hours in the last 7 days; "
        "1 GPU-hour frees at 11:00 UTC Thursday 10 December if your running GPU servers stop now.",
    ),
    "gpus-fit": (Limits(gpus=2), [session(1, None, server="other")], 1, True, "", ""),
    "gpus-held-elsewhere": (
        Limits(gpus=2),
        [session(1, None, gpus=2, server="other")],
        1,
        False,
        "gpus",
        "You are using 2 of your 2 GPUs at a time on other servers; stop one of them to start this one.",
    ),
    "profile-bigger-than-the-limit": (
        Limits(gpus=1),
        [],
        2,
        False,
        "gpus",
        "This profile uses 2 GPUs; your quota allows 1 GPU at a time.",
    ),
    "its-own-stale-session-not-counted": (Limits(gpus=1), [session(1, None, server="")], 1, True, "", ""),
}


@pytest.mark.parametrize(
    ("limits", "sessions", "gpus", "allowed", "limit", "message"), DECISIONS.values(), ids=DECISIONS.keys()
)
def test_decide(limits, sessions, gpus, allowed, limit, message):
    verdict = decide(limits, sessions, gpus=gpus, now=NOW, window=WEEK, server="")
    assert (verdict.allowed, verdict.limit) == (allowed, limit)
    assert verdict.message.startswith(message)


def test_starts_in_flight_count_against_gpus_at_once():
    verdict = decide(Limits(gpus=2), [], gpus=1, now=NOW, window=WEEK, pending_gpus=2)
    assert not verdict.allowed and verdict.gpus_in_use == 2


def test_the_refusal_says_when_and_the_verdict_carries_the_numbers():
    verdict = decide(Limits(gpu_hours=9.5), PAST, gpus=1, now=NOW, window=WEEK)
    assert verdict.used_hours == pytest.approx(9.5) and verdict.left_hours == 0
    assert verdict.frees_at == datetime(2026, 12, 5, 14, 0, tzinfo=UTC).timestamp()


CARDS = {
    "nothing-limited": (Limits(), [], ""),
    "hours": (Limits(gpu_hours=10), [session(4, 0.5)], "GPU quota: 6.5 of 10 GPU-hours left (last 7 days)"),
    "both": (
        Limits(gpus=2, gpu_hours=10),
        [session(2, None, server="b")],
        "GPU quota: 8 of 10 GPU-hours left (last 7 days), 1 of 2 GPUs in use",
    ),
    "none-left-not-negative": (
        Limits(gpu_hours=1),
        [session(3, 0)],
        "GPU quota: 0 of 1 GPU-hours left (last 7 days)",
    ),
}


@pytest.mark.parametrize(("limits", "sessions", "line"), CARDS.values(), ids=CARDS.keys())
def test_card_line(limits, sessions, line):
    assert card_line(decide(limits, sessions, gpus=1, now=NOW, window=WEEK), WEEK) == line


WHEN = {
    "later-today": (NOW + 2 * H, "14:00 UTC today"),
    "tomorrow": (NOW + 20 * H, "08:00 UTC tomorrow"),
    "next-week": (NOW + 7 * 24 * H, "12:00 UTC Thursday 10 December"),
}


@pytest.mark.parametrize(("at", "words"), WHEN.values(), ids=WHEN.keys())
def test_when(at, words):
    assert when(at, NOW) == words


@pytest.mark.parametrize(
    ("text", "seconds", "words"),
    [
        ("7d", WEEK, "7 days"),
        ("1w", WEEK, "7 days"),
        ("24h", 86400, "1 day"),
        ("90m", 5400, "90 minutes"),
        ("2h", 7200, "2 hours"),
    ],
    ids=["days", "a-week", "hours-as-a-day", "minutes", "hours"],
)
def test_windows(text, seconds, words):
    assert parse_window(text) == seconds
    assert window_words(seconds) == words


POLICY = QuotaPolicy(
    window=int(WEEK),
    default=Limits(gpus=1, gpu_hours=10),
    roles=MappingProxyType(
        {
            "ml": Limits(gpus=4, gpu_hours=100),
            "atlas": Limits(gpus=2),  # no GPU-hours limit: unlimited for that role
            "students": Limits(gpus=1, gpu_hours=20),
        }
    ),
)
ROLES = {
    # name: (roles held, limits, metrics label)
    "no-listed-role-gets-default": ({"someone"}, Limits(gpus=1, gpu_hours=10), "default"),
    "one-role": ({"students"}, Limits(gpus=1, gpu_hours=20), "students"),
    "most-generous-limit-by-limit": ({"ml", "students"}, Limits(gpus=4, gpu_hours=100), "ml"),
    "unlimited-beats-a-number": ({"atlas", "students"}, Limits(gpus=2, gpu_hours=None), "atlas"),
}


@pytest.mark.parametrize(("roles", "limits", "label"), ROLES.values(), ids=ROLES.keys())
def test_role_limits(roles, limits, label):
    assert role_limits(POLICY, roles) == (limits, label)


OVERRIDES = {
    "none": (None, Limits(gpus=1, gpu_hours=20)),
    "raises-what-it-names": (Override(gpu_hours=50), Limits(gpus=1, gpu_hours=50)),
    "both": (Override(gpus=3, gpu_hours=50), Limits(gpus=3, gpu_hours=50)),
    "expired-ignored": (Override(gpu_hours=50, expires=NOW - 1), Limits(gpus=1, gpu_hours=20)),
    "until-it-expires": (Override(gpu_hours=50, expires=NOW + 1), Limits(gpus=1, gpu_hours=50)),
}


@pytest.mark.parametrize(("override", "limits"), OVERRIDES.values(), ids=OVERRIDES.keys())
def test_an_admins_override(override, limits):
    assert effective_limits(POLICY, {"students"}, override, NOW) == (limits, "students")


def test_most_generous_of_nothing_is_none():
    assert most_generous([]) is None


def test_policy_from_a_catalogs_section_and_none_without():
    section = MappingProxyType(
        {
            "window": "24h",
            "default": MappingProxyType({"gpu_hours": 5}),
            "roles": MappingProxyType({"ml": MappingProxyType({"gpus": 2})}),
        }
    )
    policy = policy_of(SimpleNamespace(quotas=section))
    assert policy == QuotaPolicy(
        window=86400, default=Limits(gpu_hours=5.0), roles=MappingProxyType({"ml": Limits(gpus=2)})
    )
    assert policy_of(SimpleNamespace(quotas=section)) is policy  # kept per section
    assert policy_of(SimpleNamespace(quotas=None)) is None
    assert policy_of(SimpleNamespace(quotas=MappingProxyType({}))).window == WEEK  # 7d by default

"""Which servers the culler stops and warns about: a frozen view and a fixed time in, decisions out."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from cern_spawner.catalog import load_catalog
from cern_spawner.culling.decide import Server, message, notices, to_cull
from cern_spawner.culling.service import Culling, run, servers_of
from tests.unit.catalog_samples import BASE, write

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
RECENT = 300
# GPU profile: idle 1 h, max age 1 day (the defaults); shared: idle 8 h, no max age.
CULLING = "culling:\n  dedicated: {idle_timeout: 3600, max_age: 86400}\n  shared: {idle_timeout: 28800}\n"


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return load_catalog(write(tmp_path_factory.mktemp("catalog"), {"a.yaml": BASE + CULLING}))


def server(profile="gpu-1", *, idle=0.0, age=7200.0, name="", ready=True):
    """A server started `age` s ago, last active `idle` s ago (None: never reported)."""
    return Server(
        user="ana",
        name=name,
        profile=profile,
        last_activity=None if idle is None else NOW - timedelta(seconds=idle),
        started=NOW - timedelta(seconds=age),
        ready=ready,
    )


CASES = [
    ("gpu-idle-past-timeout", server(idle=3601), "idle"),
    ("gpu-idle-just-before", server(idle=3599), None),
    ("shared-same-idle-stays", server("shared-2g", idle=3601), None),
    ("shared-idle-past-8h", server("shared-2g", idle=28801, age=30000), "idle"),
    ("gpu-over-max-age-and-quiet", server(idle=600, age=86401), "max_age"),
    ("gpu-over-max-age-but-active", server(idle=60, age=90000), None),
    ("shared-never-aged-out", server("shared-2g", idle=600, age=10**7), None),
    ("never-reported-uses-start", server(idle=None, age=3601), "idle"),
    ("starting-or-stopping", server(idle=5000, ready=False), None),
    ("unknown-profile-gets-shared", server("gone", idle=3601), None),
    ("unknown-profile-idle-8h", server("gone", idle=28801, age=30000), "idle"),
    ("no-profile-recorded", server(None, idle=28801, age=30000), "idle"),
]


@pytest.mark.parametrize("view, reason", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_to_cull(catalog, view, reason):
    found = to_cull([view], catalog, NOW, recent=RECENT)
    assert [d.reason for d in found] == ([reason] if reason else [])


def test_recent_activity_protects_even_a_zero_timeout_profile(tmp_path):
    tiny = load_catalog(write(tmp_path, {"a.yaml": BASE + "    idle_timeout: 1\n"}))
    assert to_cull([server(idle=10)], tiny, NOW, recent=RECENT) == []
    assert [d.reason for d in to_cull([server(idle=RECENT)], tiny, NOW, recent=RECENT)] == ["idle"]


def test_zero_means_never(tmp_path):
    never = load_catalog(write(tmp_path, {"a.yaml": BASE + "    idle_timeout: 0\n    max_age: 0\n"}))
    assert to_cull([server(idle=10**7, age=10**7)], never, NOW, recent=RECENT) == []


NOTICES = [
    ("gpu-12-min-left", server(idle=3600 - 720), 900, "idle", 720),
    ("gpu-too-early", server(idle=600), 900, None, None),
    ("shared-not-yet", server("shared-2g", idle=3600), 900, None, None),
    ("max-age-soon", server(idle=600, age=86400 - 300), 900, "max_age", 300),
    ("due-now", server(idle=4000), 900, "idle", 0),
]


@pytest.mark.parametrize(
    "view, warn_before, reason, left", [n[1:] for n in NOTICES], ids=[n[0] for n in NOTICES]
)
def test_notices(catalog, view, warn_before, reason, left):
    found = notices([view], catalog, NOW, warn_before=warn_before, recent=RECENT)
    assert [(n.reason, n.seconds_left(NOW)) for n in found] == ([(reason, left)] if reason else [])


MESSAGES = [
    (
        "gpu-named-idle",
        server(idle=3600 - 720, name="train"),
        "Your GPU server 'train' will be stopped in 12 min for inactivity; open it or click Keep to keep it.",
    ),
    (
        "shared-default-idle",
        server("shared-2g", idle=28800 - 30, age=30000),
        "Your server will be stopped in less than a minute for inactivity; open it or click Keep to keep it.",
    ),
    (
        "gpu-max-age",
        server(idle=600, age=86400 - 600),
        "Your GPU server reached its maximum age (24 h) and will be stopped in 10 min, at its first quiet "
        "moment; save your work. Keep postpones it while you work.",
    ),
]


@pytest.mark.parametrize("view, text", [m[1:] for m in MESSAGES], ids=[m[0] for m in MESSAGES])
def test_message(catalog, view, text):
    [notice] = notices([view], catalog, NOW, warn_before=3600, recent=RECENT)
    assert message(notice, NOW) == text


def test_rest_user_model_to_servers():
    model = {
        "name": "ana",
        "servers": {
            "": {
                "last_activity": "2026-12-03T11:00:00.123456Z",
                "started": "2026-12-03T10:00:00Z",
                "ready": True,
                "pending": None,
                "user_options": {"profile": "gpu-1"},
            },
            "x": {
                "last_activity": None,
                "started": None,
                "ready": False,
                "pending": "spawn",
                "user_options": None,
            },
        },
    }
    default, pending = servers_of(model)
    assert default == Server(
        "ana",
        "",
        "gpu-1",
        datetime(2026, 12, 3, 11, 0, 0, 123456, tzinfo=UTC),
        datetime(2026, 12, 3, 10, tzinfo=UTC),
        True,
    )
    assert (pending.profile, pending.ready, pending.started) == (None, False, None)


class Listing:
    """The culler's HubAPI, counting the listings it is asked for (nobody to stop)."""

    def __init__(self):
        self.listings = 0

    async def servers(self):
        self.listings += 1
        return []


class Stop(Exception):
    pass


@pytest.mark.parametrize(
    "running, listings",
    [([False, False, False], 0), ([False, True, False], 1), ([True, True, True], 3)],
    ids=["nobody-running-no-listing", "listed-only-while-someone-runs", "always-someone"],
)
def test_a_round_lists_the_users_only_while_a_server_runs(catalog, running, listings):
    api, answers, rounds = Listing(), iter(running), []

    async def sleep(seconds):
        rounds.append(seconds)
        if len(rounds) == len(running):
            raise Stop()

    with pytest.raises(Stop):
        asyncio.run(run(api, lambda: catalog, Culling(), sleep=sleep, anyone_running=lambda: next(answers)))
    assert (api.listings, rounds) == (listings, [60.0] * len(running))

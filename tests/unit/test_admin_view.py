"""The admin page's view from plain facts: catalog status, node groups with the cloud's state and
their last events with times, GPU servers by idle time (no hub, clocks passed in)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from cern_spawner.catalog import load_catalog
from cern_spawner.scaling.errors import QuotaExceeded
from cern_spawner.scaling.state import GroupStatus
from cern_spawner.web.admin import epoch, profile_slug, server_facts
from cern_spawner.web.admin_view import ServerFacts, build_view, duration, moment
from tests.unit.test_spawner_start import GPU_DEFAULT
from tests.unit.test_web_availability import status

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC
MONOTONIC = 5000.0


@pytest.fixture
def catalog(tmp_path):
    (tmp_path / "profiles.yaml").write_text(GPU_DEFAULT)
    return load_catalog([str(tmp_path)])


def store_status(catalog, refused=None) -> dict:
    return {
        "paths": ["/etc/cern-spawner/profiles"],
        "version": catalog.version,
        "loaded_at": NOW - 3600,
        "sources": list(catalog.sources),
        "profiles": [p.slug for p in catalog.profiles],
        "node_groups": sorted(catalog.node_groups),
        "refused_edit": refused,
    }


DURATIONS = {
    "unknown": (None, "—"),
    "seconds": (45.9, "45 s"),
    "minutes": (12 * 60 + 5, "12 min"),
    "hours": (3 * 3600 + 5 * 60, "3 h 05 min"),
    "days": (2 * 86400 + 4 * 3600 + 59, "2 d 4 h"),
    "clock-skew": (-3, "0 s"),
}


@pytest.mark.parametrize("seconds, words", DURATIONS.values(), ids=DURATIONS.keys())
def test_durations_in_words(seconds, words):
    assert duration(seconds) == words


def test_a_moment_is_utc_and_how_long_ago():
    assert moment(NOW - 180, NOW) == "2027-01-15 07:57:00 UTC (3 min ago)"


def test_catalog_status_and_refused_edit(catalog):
    problems = ["profiles/gpu.yaml:12: profiles[3].gpus: -1 is less than the minimum of 0"]
    refused = {"since": NOW - 60, "message": "refused", "problems": problems}
    view = build_view([(store_status(catalog, refused), catalog)], None, [], now=NOW, monotonic_now=MONOTONIC)
    (row,) = view.catalogs
    assert row.version == catalog.version[:12]
    assert row.applied_at == "2027-01-15 07:00:00 UTC (1 h 00 min ago)"
    assert (row.profiles, row.node_groups) == (len(catalog.profiles), 2)
    assert row.refused_since == "2027-01-15 07:59:00 UTC (1 min ago)"
    assert row.problems == tuple(problems)
    assert view.gpu_growth is False


def test_a_scaled_group_shows_nodes_gpus_cloud_state_and_its_last_events_newest_first(catalog):
    group = status(
        nodes=2, alloc=8, used=3, pending=1, cloud_nodes=3, blocker=QuotaExceeded("No quota.", "HTTP 403")
    )
    group.cloud_at = MONOTONIC - 4
    said = iter([NOW - 600, NOW - 300])
    group.wall_clock = lambda: next(said)
    group.say("Requested 1 new GPU node(s) for gpu-v100 (2 → 3).")
    group.say("Node n3 joined gpu-v100; waiting for its GPU to become available.")
    servers = [ServerFacts("ann", "", "gpu-1", NOW - 7200, NOW - 60, True, "n1")]
    view = build_view(
        [(store_status(catalog), catalog)], {"gpu-v100": group}, servers, now=NOW, monotonic_now=MONOTONIC
    )
    cpu, gpu = view.groups  # sorted by name: default-worker, gpu-v100
    assert (cpu.name, cpu.watched, cpu.scaling, cpu.gpu) == (
        "default-worker",
        False,
        "not scaled by the hub",
        "",
    )
    assert gpu.gpu == "4 × Tesla-V100 per node"
    assert gpu.scaling == "resize, 0–4 nodes (cluster sandbox)"
    assert (gpu.ready_nodes, gpu.nodes, gpu.gpus_total, gpu.gpus_used, gpu.gpus_pending) == (2, 2, 8, 3, 1)
    assert gpu.gpus_free == 5
    assert gpu.cloud == "UPDATE_COMPLETE: 3 nodes (min 0, max 4), read 4 s ago"
    assert gpu.problem == "No quota. (HTTP 403)"
    assert gpu.servers == 1
    assert [(e.at, e.message[:14]) for e in gpu.events] == [
        ("2027-01-15 07:55:00 UTC (5 min ago)", "Node n3 joined"),
        ("2027-01-15 07:50:00 UTC (10 min ago)", "Requested 1 ne"),
    ]
    assert view.gpu_growth is True


def test_a_scaled_group_before_its_first_round_is_not_watched_yet(catalog):
    view = build_view([(store_status(catalog), catalog)], {}, [], now=NOW, monotonic_now=MONOTONIC)
    assert [g.watched for g in view.groups] == [False, False]
    assert view.groups[1].scaling.startswith("resize")


def test_a_failing_cloud_says_for_how_long(catalog):
    group = status()
    group.retrying_since = MONOTONIC - 125
    view = build_view(
        [(store_status(catalog), catalog)], {"gpu-v100": group}, [], now=NOW, monotonic_now=MONOTONIC
    )
    assert view.groups[1].problem == "The cloud has been failing for 2 min; retrying."


def test_gpu_servers_longest_idle_first_and_cpu_servers_counted(catalog):
    servers = [
        ServerFacts("busy", "", "gpu-1", NOW - 3600, NOW - 30, True, "n1"),
        ServerFacts("idle", "big", "gpu-1", NOW - 90000, NOW - 5 * 3600, True, "n2"),
        ServerFacts("new", "", "gpu-1", NOW - 20, None, False),
        ServerFacts("cpu", "", "shared-1g", NOW - 60, NOW - 60, True, "w1"),
        ServerFacts("gone", "", "removed-profile", NOW - 60, NOW - 60, True, "w2"),
    ]
    view = build_view([(store_status(catalog), catalog)], None, servers, now=NOW, monotonic_now=MONOTONIC)
    assert [(s.user, s.server, s.idle, s.age, s.state) for s in view.gpu_servers] == [
        ("idle", "big", "5 h 00 min", "1 d 1 h", "running"),
        ("busy", "", "30 s", "1 h 00 min", "running"),
        ("new", "", "—", "20 s", "starting"),
    ]
    assert view.gpu_servers[0].profile == "Dedicated 1 GPU (gpu-1)"
    assert view.gpu_servers[0].node == "n2"
    assert view.other_servers == 2


def test_server_facts_from_the_hubs_users():
    started = datetime(2027, 1, 15, 6, 0, 0)  # JupyterHub's database: naive UTC
    pod = {"spec": {"nodeName": "gpu-node-1"}}

    def spawner(active, ready, options):
        return SimpleNamespace(
            active=active,
            ready=ready,
            user_options=options,
            orm_spawner=SimpleNamespace(started=started, last_activity=None),
            pod_reflector=SimpleNamespace(pods={"ns/jupyter-ann": pod}),
            namespace="ns",
            pod_name="jupyter-ann",
        )

    users = {
        "ann": SimpleNamespace(
            name="ann",
            spawners={"": spawner(True, True, {"profile": "gpu-1"}), "old": spawner(False, False, {})},
        )
    }
    (facts,) = server_facts(users)
    assert facts == ServerFacts("ann", "", "gpu-1", epoch(started), None, True, "gpu-node-1")
    assert epoch(started) == datetime(2027, 1, 15, 6, 0, 0, tzinfo=UTC).timestamp()


def test_group_status_events_keep_their_times():
    times = iter([10.0, 20.0])
    group = GroupStatus(wall_clock=lambda: next(times))
    group.say("one")
    group.say("one")  # said again: not repeated
    group.say("two")
    assert group.events == ["one", "two"]
    assert group.history == [(10.0, "one"), (20.0, "two")]


def test_the_repository_profiles_render_without_a_controller():
    catalog = load_catalog([str(Path(__file__).resolve().parents[2] / "profiles")])
    view = build_view([(store_status(catalog), catalog)], None, [], now=NOW, monotonic_now=MONOTONIC)
    assert {g.name for g in view.groups} == set(catalog.node_groups)
    assert not any(g.watched for g in view.groups)


SLUGS = {
    "rest": ({"profile": "gpu-1"}, "gpu-1"),
    "form": ({"profile": ["gpu-1"]}, "gpu-1"),
    "none": ({}, ""),
    "empty-form": ({"profile": []}, ""),
    "no-options": (None, ""),
}


@pytest.mark.parametrize("options, slug", SLUGS.values(), ids=SLUGS.keys())
def test_the_profile_a_server_was_started_with(options, slug):
    assert profile_slug(options) == slug

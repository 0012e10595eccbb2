"""GPU sessions and overrides kept in the hub's database: tables created when missing, sessions
opened and closed by the spawner's hooks, and everything still there for a hub started again on the
same database."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from jupyterhub import orm
from kubespawner import KubeSpawner
from sqlalchemy.orm import Session
from traitlets.config import Config

from cern_spawner import CERNSpawner, restart
from cern_spawner.quota import hooks
from cern_spawner.quota import ledger as ledger_module
from cern_spawner.quota.ledger import Ledger, sessions_table, write_queued
from cern_spawner.quota.metrics import GPU_HOURS
from cern_spawner.quota.policy import Override
from cern_spawner.quota.usage import GpuSession
from cern_spawner.web.progress_stream import SpawnPlan

pytestmark = pytest.mark.unit
H = 3600.0
PROFILES = Path(__file__).resolve().parents[2] / "profiles"


QUICK_WRITE = 0.05  # the queued starts' delay in these tests (the hub's is seconds)


@pytest.fixture(autouse=True)
def quick_writes(monkeypatch):
    monkeypatch.setattr(ledger_module, "WRITE_DELAY", QUICK_WRITE)


def hub_db(path):
    """What a hub opens at start: JupyterHub's own tables, then a session on them."""
    return orm.new_session_factory(f"sqlite:///{path}")()


def test_sessions_and_overrides_outlive_the_hub(tmp_path):
    first = Ledger(hub_db(tmp_path / "jupyterhub.sqlite"))
    first.open("alice", "", "gpu-1", 1, "default", 1000.0)
    first.open("alice", "big", "gpu-4", 4, "default", 2000.0)
    first.close("alice", "", 1000.0 + 2 * H)
    first.set_override("alice", Override(gpu_hours=50.0, reason="deadline", set_by="carol", set_at=5.0))
    first.db.close()

    again = Ledger(hub_db(tmp_path / "jupyterhub.sqlite"))  # a restarted hub: a new engine
    assert again.sessions("alice", since=0.0) == [
        GpuSession("", "gpu-1", 1, 1000.0, 1000.0 + 2 * H),
        GpuSession("big", "gpu-4", 4, 2000.0, None),  # still running: counted up to now
    ]
    assert again.override("alice") == Override(gpu_hours=50.0, reason="deadline", set_by="carol", set_at=5.0)
    assert again.close("alice", "big", 2000.0 + H) == [("default", 4.0)]
    # Sessions that ended before the window starts are not read.
    assert again.sessions("alice", since=6000.0) == [GpuSession("", "gpu-1", 1, 1000.0, 1000.0 + 2 * H)]


def test_a_start_ends_a_session_left_open_for_the_same_server(tmp_path):
    ledger = Ledger(hub_db(tmp_path / "hub.sqlite"))
    ledger.open("bob", "", "gpu-1", 1, "ml", 100.0)
    ledger.open("bob", "", "gpu-1", 1, "ml", 500.0)  # its stop never seen (the hub was killed)
    assert ledger.sessions("bob", since=0.0) == [
        GpuSession("", "gpu-1", 1, 100.0, 500.0),
        GpuSession("", "gpu-1", 1, 500.0, None),
    ]
    assert ledger.is_open("bob", "") and not ledger.is_open("bob", "other")
    assert ledger.clear_override("bob") is False


async def test_a_server_started_twice_in_one_burst_ends_each_earlier_session(tmp_path):
    ledger = Ledger(hub_db(tmp_path / "hub.sqlite"))
    ledger.open("bob", "", "gpu-1", 1, "ml", 50.0)
    write_queued()  # open before the burst
    ledger.open("bob", "", "gpu-1", 1, "ml", 100.0)  # both queued: one burst, stops never seen
    ledger.open("bob", "", "gpu-1", 1, "ml", 500.0)
    ledger.open("eve", "", "gpu-1", 1, "ml", 120.0)
    await asyncio.sleep(QUICK_WRITE + 0.2)
    assert ledger.sessions("bob", since=0.0) == [
        GpuSession("", "gpu-1", 1, 50.0, 100.0),
        GpuSession("", "gpu-1", 1, 100.0, 500.0),
        GpuSession("", "gpu-1", 1, 500.0, None),
    ]
    assert ledger.sessions("eve", since=0.0) == [GpuSession("", "gpu-1", 1, 120.0, None)]


class FakeSpawner(SimpleNamespace):
    """What the hooks read of a CERNSpawner: its database, user, name, catalog and roles."""

    async def user_roles(self):
        return {"ml"}


def spawner(db, name=""):
    catalog = SimpleNamespace(quotas=None, version="v")
    return FakeSpawner(
        db=db,
        user=SimpleNamespace(name="carl", spawners={}),
        name=name,
        catalog_store=SimpleNamespace(current=lambda: catalog),
        log=logging.getLogger("test"),
        _log_name=f"carl/{name}",
    )


async def test_hooks_open_a_gpu_session_at_start_and_close_it_at_stop(tmp_path, monkeypatch):
    db = hub_db(tmp_path / "hub.sqlite")
    one = spawner(db)
    clock = iter([10.0, 10.0 + 3 * H])  # the start, the stop
    monkeypatch.setattr(hooks, "clock", lambda: next(clock))
    before = GPU_HOURS.labels(role="default")._value.get()

    await hooks.started(one, SpawnPlan("gpu-2", "Two GPUs", gpus=2))
    await hooks.started(one, SpawnPlan("shared-2g", "Shared"))  # CPU servers are not accounted
    await hooks.started(one, SpawnPlan("gpu-2", "Two GPUs", gpus=2), only_if_missing=True)  # kept
    assert Ledger(db).sessions("carl", since=0.0) == [GpuSession("", "gpu-2", 2, 10.0, None)]
    hooks.stopped(one)
    assert Ledger(db).sessions("carl", since=0.0) == [GpuSession("", "gpu-2", 2, 10.0, 10.0 + 3 * H)]
    assert GPU_HOURS.labels(role="default")._value.get() - before == pytest.approx(6.0)


async def test_hooks_without_a_database_do_nothing():
    await hooks.started(spawner(None), SpawnPlan("gpu-2", "Two GPUs", gpus=2))
    await hooks.check(spawner(None), SpawnPlan("gpu-2", "Two GPUs", gpus=2))
    hooks.stopped(spawner(None))


async def test_hooks_in_a_hub_use_their_own_session_on_the_hubs_engine(tmp_path, monkeypatch, caplog):
    """In a hub the spawner's user carries the hub's session; the deprecated `Spawner.db` (a
    six-line warning per spawner) is never read, and the hub's session sees every write."""
    monkeypatch.setattr("kubespawner.spawner.load_config", lambda **kwargs: None)
    hub = hub_db(tmp_path / "hub.sqlite")
    c = Config()
    c.CERNSpawner.profiles_path = [str(PROFILES)]
    real = CERNSpawner(_mock=True, config=c)
    real.user.name, real.user.db = "dana", hub
    clock = iter([10.0, 10.0 + H])
    monkeypatch.setattr(hooks, "clock", lambda: next(clock))
    with caplog.at_level(logging.WARNING):
        await hooks.started(real, SpawnPlan("gpu-1", "One GPU", gpus=1))
        assert Ledger(hub).sessions("dana", since=0.0) == [GpuSession("", "gpu-1", 1, 10.0, None)]
        hooks.stopped(real)
    assert Ledger(hub).sessions("dana", since=0.0) == [GpuSession("", "gpu-1", 1, 10.0, 10.0 + H)]
    assert "db" not in real._trait_values
    assert "deprecated" not in caplog.text


def count_sessions(path) -> int:
    """Rows as another process (a hub restarted on the same file) would read them: no queue."""
    return len(hub_db(path).execute(sessions_table.select()).all())


async def test_a_burst_of_starts_is_written_in_one_transaction_a_moment_later(tmp_path, monkeypatch):
    path = tmp_path / "hub.sqlite"
    db = hub_db(path)
    ledger = Ledger(db)
    commits = []
    real_commit = db.commit
    monkeypatch.setattr(db, "commit", lambda: (commits.append(1), real_commit())[1])
    for i in range(30):
        ledger.open(f"user{i}", "", "gpu-1", 1, "default", 100.0 + i)
    assert count_sessions(path) == 0  # queued, not written yet
    await asyncio.sleep(QUICK_WRITE + 0.2)
    assert count_sessions(path) == 30
    assert len(commits) == 1


@pytest.mark.parametrize(
    "use",
    [
        pytest.param(lambda ledger: ledger.sessions("eve", since=0.0), id="sessions"),
        pytest.param(lambda ledger: ledger.is_open("eve", ""), id="is_open"),
        pytest.param(lambda ledger: ledger.close("eve", "", 100.0 + H), id="close"),
    ],
)
async def test_every_other_use_writes_the_queued_starts_first(tmp_path, use):
    path = tmp_path / "hub.sqlite"
    hooks_db = hub_db(path)
    handler_db = Session(bind=hooks_db.get_bind())  # a request's session on the hub's engine
    Ledger(hooks_db).open("eve", "", "gpu-1", 1, "default", 100.0)
    use(Ledger(handler_db))
    assert count_sessions(path) == 1


async def test_a_stop_right_after_a_start_ends_that_session(tmp_path):
    ledger = Ledger(hub_db(tmp_path / "hub.sqlite"))
    ledger.open("eve", "", "gpu-2", 2, "default", 100.0)
    assert ledger.close("eve", "", 100.0 + H) == [("default", 2.0)]
    await asyncio.sleep(QUICK_WRITE + 0.2)  # nothing left to write later
    assert ledger.sessions("eve", since=0.0) == [GpuSession("", "gpu-2", 2, 100.0, 100.0 + H)]


def test_outside_an_event_loop_a_start_is_written_at_once(tmp_path):
    path = tmp_path / "hub.sqlite"
    Ledger(hub_db(path)).open("eve", "", "gpu-1", 1, "default", 100.0)
    assert count_sessions(path) == 1


async def test_a_hub_that_exits_writes_what_it_queued(tmp_path):
    path = tmp_path / "hub.sqlite"
    Ledger(hub_db(path)).open("eve", "", "gpu-1", 1, "default", 100.0)
    write_queued()  # what atexit runs
    assert count_sessions(path) == 1


@pytest.mark.parametrize(
    "already_open, expected_start",
    [
        pytest.param(False, datetime(2026, 12, 4, 9, 0, tzinfo=UTC).timestamp(), id="start-lost-opened-then"),
        pytest.param(True, 50.0, id="open-one-kept"),
    ],
)
async def test_a_restarted_hub_accounts_a_running_gpu_server_whose_start_was_not_written(
    tmp_path, monkeypatch, already_open, expected_start
):
    monkeypatch.setattr("kubespawner.spawner.load_config", lambda **kwargs: None)
    hub = hub_db(tmp_path / "hub.sqlite")
    if already_open:
        Ledger(hub).open("dana", "", "gpu-1", 1, "default", 50.0)
    c = Config()
    c.CERNSpawner.profiles_path = [str(PROFILES)]
    real = CERNSpawner(_mock=True, config=c)
    real.user.name, real.user.db = "dana", hub
    real.orm_spawner = SimpleNamespace(started=datetime(2026, 12, 4, 9, 0), server=None, name="")  # naive UTC
    real._check_pending = True  # JupyterHub's check of each server at its start

    async def running(self):
        return None

    async def already_started(spawner, plan, kube_poll):
        return None

    monkeypatch.setattr(KubeSpawner, "poll", running)
    monkeypatch.setattr(restart, "resume_after_restart", already_started)
    monkeypatch.setattr(CERNSpawner, "_offered", running)  # the catalog's answer: see _plan
    monkeypatch.setattr(CERNSpawner, "_plan", lambda self, entry: SpawnPlan("gpu-1", "One GPU", gpus=1))
    assert await real.poll() is None
    assert Ledger(hub).sessions("dana", since=0.0) == [GpuSession("", "gpu-1", 1, expected_start, None)]

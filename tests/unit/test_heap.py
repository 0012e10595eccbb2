"""The start-up heap is frozen once the hub serves, once per process."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest
from jupyterhub.app import JupyterHub

from cern_spawner import heap

pytestmark = pytest.mark.unit


class Node:
    me: Node | None = None


@pytest.fixture
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the test process collects as before


def test_freeze_collects_then_freezes_once(unfrozen):
    cycle = []
    cycle.append(cycle)
    del cycle
    assert heap.freeze() is True
    frozen = gc.get_freeze_count()
    assert frozen > 0
    later = Node()
    later.me = later  # a cycle made after the freeze is still collected
    gone = weakref.ref(later)
    del later
    gc.collect()
    assert gone() is None
    assert heap.freeze() is False  # a second hub in the same process freezes nothing more
    assert gc.get_freeze_count() == frozen


@pytest.mark.parametrize(
    "outcome, frozen",
    [
        pytest.param("started", True, id="hub-serves"),
        pytest.param("failed", False, id="hub-failed-to-start"),
    ],
)
def test_the_freeze_waits_for_the_hub_to_serve(unfrozen, monkeypatch, outcome, frozen):
    async def scenario():
        app = JupyterHub()
        app._start_future = asyncio.get_running_loop().create_future()
        monkeypatch.setattr(JupyterHub, "initialized", classmethod(lambda cls: True))
        monkeypatch.setattr(JupyterHub, "instance", classmethod(lambda cls, *a, **k: app))
        assert heap.freeze_after_start() is True
        await asyncio.sleep(0.3)
        before = gc.get_freeze_count()
        if outcome == "started":
            app._start_future.set_result(None)
        else:
            app._start_future.set_exception(RuntimeError("could not bind"))
        await asyncio.gather(*heap._tasks, return_exceptions=True)
        return before, gc.get_freeze_count()

    before, after = asyncio.run(scenario())
    assert before == 0  # nothing frozen while the hub starts
    assert (after > 0) == frozen


def test_no_event_loop_no_freeze(unfrozen):
    assert heap.freeze_after_start() is False
    assert gc.get_freeze_count() == 0

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
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()  # the rest of the test process collects as before
    gc.set_threshold(*threshold)


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
    "outcome, young, frozen, threshold",
    [
        pytest.param("started", heap.YOUNG_THRESHOLD, True, heap.YOUNG_THRESHOLD, id="hub-serves"),
        pytest.param("started", 2500, True, 2500, id="hub-serves-own-threshold"),
        pytest.param("started", None, True, 700, id="hub-serves-python-threshold"),
        pytest.param("failed", heap.YOUNG_THRESHOLD, False, 700, id="hub-failed-to-start"),
    ],
)
def test_the_freeze_waits_for_the_hub_to_serve(unfrozen, monkeypatch, outcome, young, frozen, threshold):
    gc.set_threshold(700, 10, 10)

    async def scenario():
        app = JupyterHub()
        app._start_future = asyncio.get_running_loop().create_future()
        monkeypatch.setattr(JupyterHub, "initialized", classmethod(lambda cls: True))
        monkeypatch.setattr(JupyterHub, "instance", classmethod(lambda cls, *a, **k: app))
        assert heap.freeze_after_start(young) is True
        await asyncio.sleep(0.3)
        before = gc.get_freeze_count(), gc.get_threshold()
        if outcome == "started":
            app._start_future.set_result(None)
        else:
            app._start_future.set_exception(RuntimeError("could not bind"))
        await asyncio.gather(*heap._tasks, return_exceptions=True)
        return before, gc.get_freeze_count()

    before, after = asyncio.run(scenario())
    assert before == (0, (700, 10, 10))  # nothing changed while the hub starts
    assert (after > 0) == frozen
    assert gc.get_threshold() == (threshold, 10, 10)  # the older generations' ratios kept


@pytest.mark.parametrize("bad", [0, -5], ids=["zero", "negative"])
def test_a_young_threshold_below_one_is_refused(unfrozen, bad):
    with pytest.raises(ValueError, match=f"young_gc_threshold: at least 1 allocation, not {bad}"):
        heap.set_young_threshold(bad)


def test_no_event_loop_no_freeze(unfrozen):
    assert heap.freeze_after_start() is False
    assert gc.get_freeze_count() == 0

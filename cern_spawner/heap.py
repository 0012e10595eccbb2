"""Keep the hub's start-up heap out of the garbage collector's full passes.

What a hub holds once it has started (JupyterHub, SQLAlchemy's mappers, the Kubernetes and OpenStack
clients, an ORM object per user) lives as long as the process, yet Python's full collection walks
all of it each time: ~0.16 s of CPU on the event loop in benchmarks/hub_cost.py's hubs, about once
every other burst of 30 spawns, and more with more users. Once the hub serves, one collection clears
start-up garbage and `gc.freeze()` moves the survivors to the permanent generation, so later passes
walk only what came after. Frozen objects that become garbage later are never freed: start-up
objects that go away (a server stopped after a restart) cost their memory, not a leak that grows.

The young generation's threshold is raised as well (Python's 700 net allocations between young
passes to `YOUNG_THRESHOLD`): a spawn allocates thousands of short-lived containers (request
handlers, pod manifests, parsed watch events), and with 700 most are walked by a young pass, some
promoted and walked again, before their references drop. In benchmarks/hub_cost.py's hubs, 40
spawns a burst: young passes 713 -> 29 over 8 rounds and the garbage collector's CPU 0.71 -> 0.50 s
(~0.6 ms a spawn); the cycles a pass frees then wait for at most that many more allocations.
"""

from __future__ import annotations

import asyncio
import gc

# Net allocations of container objects between young passes (Python's default: 700).
YOUNG_THRESHOLD = 10_000

_tasks: set[asyncio.Task] = set()


def freeze_after_start(young_threshold: int | None = YOUNG_THRESHOLD) -> bool:
    """Schedule the freeze (and `young_threshold`, None: Python's own) for when the hub serves;
    False when no event loop runs (a `jupyterhub` subcommand, or a test applying the config)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return False
    task = loop.create_task(_freeze_when_started(young_threshold))
    _tasks.add(task)  # the loop holds tasks weakly
    task.add_done_callback(_tasks.discard)
    return True


async def _freeze_when_started(young_threshold: int | None) -> None:
    from jupyterhub.app import JupyterHub

    from .culling.hub import hub_started

    if not JupyterHub.initialized():
        return
    app = JupyterHub.instance()
    await hub_started(app)
    if freeze():
        app.log.info("Froze %d start-up objects out of the garbage collector's passes", gc.get_freeze_count())
    if young_threshold is not None:
        set_young_threshold(young_threshold)


def set_young_threshold(allocations: int) -> None:
    """Young passes every `allocations` net allocations; the older generations' ratios unchanged."""
    if allocations < 1:
        raise ValueError(f"young_gc_threshold: at least 1 allocation, not {allocations!r}")
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(allocations, older, oldest)


def freeze() -> bool:
    """Collect, then freeze what survives; once per process (False when done before: a second
    hub in one process, as tests run, must not freeze the first one's later objects too)."""
    if gc.get_freeze_count():
        return False
    gc.collect()
    gc.freeze()
    return True

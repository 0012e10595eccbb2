"""What the scaling controller knows of each group: its settings and its status, read by spawns
(progress, blockers) and the picker (availability)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .backend import GroupState
from .capacity import Capacity
from .errors import ScalingError
from .standby import Standby


@dataclass(frozen=True)
class ScaledGroup:
    name: str
    label: str
    gpu_resource: str
    gpus_per_node: int
    cluster: str
    mode: str  # "resize" | "raise-min"
    min_nodes: int
    max_nodes: int
    standby: Standby | None = None  # free GPUs kept ready in time windows (not kept in Memory)
    # (resource, count per node) of a MIG layout's slice types or a time-sliced GPU's shares;
    # empty: gpus_per_node of gpu_resource (whole GPUs). gpus_per_node is then their sum.
    resources: tuple[tuple[str, int], ...] = ()


@dataclass
class GroupStatus:
    capacity: Capacity | None = None
    cloud: GroupState | None = None
    cloud_at: float | None = None  # when `cloud` was read
    read_gap: float = 0.0  # seconds between reads while active (pacing.next_gap; 0: the interval)
    requested: tuple[int, int] | None = None  # (from, to) of the growth under way
    requested_at: float | None = None
    requested_for: int = 0  # the node count asked for, to time how long it takes to be ready
    blocker: ScalingError | None = None  # why waiting users cannot be served
    retrying_since: float | None = None  # the cloud has failed transiently since then
    retry_at: float = 0.0
    retry_delay: float = 0.0
    events: list[str] = field(default_factory=list)  # operators' history, oldest first
    members: set[str] = field(default_factory=set)  # the group's nodes at the last round
    joined: dict[str, float] = field(default_factory=dict)  # node -> when it joined
    removing: dict[str, float] = field(default_factory=dict)  # node named for removal -> when
    empty_since: dict[str, float] = field(default_factory=dict)  # node -> first seen without workloads
    unclaimed: set[str] = field(default_factory=set)  # joined while we watched, never ran a workload
    awaiting: list[float] = field(default_factory=list)  # join deadlines of VMs not joined yet
    lost: int = 0  # VMs past their join deadline
    standby_gpus: int = 0  # free GPUs kept ready at the last round (0 outside standby windows)
    demand_since: float | None = None  # when users began waiting for this group (None: nobody waits)

    # `events` with when each was said (Unix seconds), for the admin page; the clock for tests.
    history: list[tuple[float, str]] = field(default_factory=list)
    wall_clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)
    blocker_since: float = 0.0  # when `blocker` was set (wall clock)
    # Spawns waiting in `until_blocked`: woken when a blocker is set, not by a timer.
    _blocked_waiters: list[asyncio.Future] = field(default_factory=list, repr=False, compare=False)

    def __setattr__(self, name: str, value) -> None:
        object.__setattr__(self, name, value)
        if name == "blocker" and value is not None:
            object.__setattr__(self, "blocker_since", self.__dict__.get("wall_clock", time.time)())
            waiters = self.__dict__.get("_blocked_waiters") or []
            self.__dict__["_blocked_waiters"] = []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def until_blocked(self, after: float = 0.0) -> ScalingError:
        """The blocker set at or after `after` (wall clock), at once if there is one, else once
        one is set. A verdict from before is not this start's: it judged users who came earlier
        (their pods gone since), and stands until a round with nobody waiting clears it. Every
        pending GPU start waits here: a timer each would wake them all every second for nothing."""
        while self.blocker is None or self.blocker_since < after:
            waiter = asyncio.get_running_loop().create_future()
            # Cancelled waits (spawns that ended) go at the next wait, not only at the next blocker.
            self._blocked_waiters = [w for w in self._blocked_waiters if not w.done()] + [waiter]
            await waiter
        return self.blocker

    def say(self, message: str) -> None:
        if not self.events or self.events[-1] != message:
            self.events.append(message)
            del self.events[:-50]
            self.history.append((self.wall_clock(), message))
            del self.history[:-50]

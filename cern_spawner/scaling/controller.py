"""The scaling controller: one per hub, growing GPU node groups for all waiting users and giving
back what no one uses.

Rounds are driven by the cluster watch (a pod waiting, a node joining) plus a slow refresh; each
group is reconciled in its own task, so a hung cloud call stalls only its group. A round reads
capacity from the shared watch and the group from the cloud (paced: pacing.py), asks the pure
planner for one target, and writes only when the target grows and no change is under way: concurrent spawns
coalesce into one request. Shrinks, in giving_back.py (`GivingBack`, a mixin the controller
inherits), go through `shrink.decide` (settled view, per-node grace) and cordon, re-check and name
only empty nodes. Everything is recomputed from the cluster and the cloud, plus the small
`Memory`, so a hub restart neither loses nor repeats a change.
Inside a group's standby window (read on the injected wall clock) the planner also keeps its
standby GPUs free and the shrink spares the nodes holding them; at the window's end they go
through the same safe shrink.
Spawns read `status(group)` for progress and for a reason to give up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime

from .. import metrics
from .backend import GroupState, NodeGroups, baseline, grow
from .capacity import Capacity, GroupSelector
from .errors import CeilingReached, CloudUnavailable, PermanentError, ScalingError, TemporaryError
from .giving_back import UNCLAIMED_GRACE, GivingBack
from .memory import Memory
from .pacing import next_gap, read_due
from .planner import GroupView, burst_wait, plan_layout
from .standby import next_change, standby_gpus
from .state import GroupStatus, ScaledGroup


class ScalingController(GivingBack):
    def __init__(
        self,
        groups: Callable[[], list[ScaledGroup]],
        view,
        backend: Callable[[str], NodeGroups],
        log: logging.Logger,
        *,
        kube=None,
        namespace: str | None = None,
        interval: float = 2.0,
        idle_refresh: float = 30.0,
        grace: float = 300.0,
        call_timeout: float = 20.0,
        retry_timeout: float = 30.0,
        join_deadline: float = 1200.0,
        burst_quiet: float = 0.0,
        burst_window: float = 0.0,
        memory: Memory | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.groups = groups
        self.view = view
        self.backend = backend
        self.log = log
        self.kube = kube  # CoreV1Api for cordoning; None: nodes are named without cordoning
        self.namespace = namespace
        self.interval = interval
        self.idle_refresh = idle_refresh
        self.grace = grace
        self.call_timeout = call_timeout
        self.retry_timeout = retry_timeout
        self.join_deadline = join_deadline
        self.burst_quiet = burst_quiet  # 0: grow at first sight (see planner.burst_wait)
        self.burst_window = burst_window
        self.memory = memory or Memory(None)
        self.clock = clock
        self.wall_clock = wall_clock  # aware datetimes, for standby windows only
        self._wake_at = float("inf")  # when the loop's current wait ends (none yet: any round wakes it)
        self.statuses: dict[str, GroupStatus] = {}
        self._task: asyncio.Task | None = None
        self._group_tasks: dict[str, asyncio.Task] = {}

    @property
    def _gather(self) -> float:
        """Seconds the loop waits after a wake before its round, so a burst of events makes one."""
        return min(self.interval, 0.5)

    def status(self, group: str) -> GroupStatus:
        return self.statuses.setdefault(group, GroupStatus())

    @contextlib.contextmanager
    def arriving(self, group: str, pod_key: str) -> Iterator[None]:
        """A start for `group` that creates pod `pod_key` (namespace/name), while it runs: part of a
        burst from its first moment, not from its pod's first event, which comes up to a second
        later from a loaded API server; a growth of the group waits for its pod to be seen."""
        self.view.expect(pod_key, group)
        try:
            yield
        finally:
            self.view.unexpect(pod_key)

    def expected_boot_seconds(self, group: str) -> float | None:
        """Median of the group's recent measured boots (request → GPU allocatable), None before one."""
        return self.memory.expected_boot(group)

    def start(self) -> None:
        if self._task is None:
            self.view.start(groups=lambda: [(g.label, g.name) for g, _ in self._all_groups()])
            self._task = asyncio.ensure_future(self._run())

    # -- rounds ----------------------------------------------------------------------------------
    def _all_groups(self) -> list[tuple[ScaledGroup, bool]]:
        """The catalog's groups, plus groups we grew that the catalog no longer scales (retiring)."""
        current = self.groups()
        names = {g.name for g in current}
        retiring = []
        for name, settings in self.memory.grown.items():
            if name not in names:
                try:
                    retiring.append(ScaledGroup(**settings))
                except TypeError:
                    self.memory.forget_group(name)
        return [(g, False) for g in current] + [(g, True) for g in retiring]

    async def _run(self) -> None:
        await self.view.synced.wait()
        while True:
            self.view.changed.clear()
            wait = self.idle_refresh
            try:
                self.view.regroup()  # the catalog may scale other groups now: watch their nodes
                for group, retiring in self._all_groups():
                    task = self._group_tasks.get(group.name)
                    if task is None or task.done():
                        self._group_tasks[group.name] = asyncio.ensure_future(self._guarded(group, retiring))
                    wait = min(wait, self._due_in(self.status(group.name)), self._window_due(group))
            except Exception:
                self.log.exception("Scaling round failed")
            self._wake_at = self.clock() + wait
            try:
                await asyncio.wait_for(self.view.changed.wait(), timeout=wait)
            except TimeoutError:
                pass
            await asyncio.sleep(self._gather)  # one round per burst of watch events

    async def _guarded(self, group: ScaledGroup, retiring: bool) -> None:
        try:
            await self._reconcile_group(group, retiring)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.log.exception("Scaling round of %s failed", group.name)
        self._wake_sooner_if_due(group)

    def _wake_sooner_if_due(self, group: ScaledGroup) -> None:
        """The loop works out its wait before the group's round runs; a round that finds a node
        just emptied (its grace starts now) or something to watch would otherwise be looked at again
        only at the slow refresh."""
        due = self.clock() + min(self._due_in(self.status(group.name)), self._window_due(group))
        if due < self._wake_at - 1.0:  # a second's slack: the same deadline read twice never spins
            self.view.changed.set()

    def _due_in(self, status: GroupStatus) -> float:
        """Seconds until this group needs a round even if the cluster does not change: at once
        while something waits or changes, else when a retry or an empty node's grace is due."""
        if self._active(status):
            return self.interval
        now = self.clock()
        due = [status.retry_at] if status.retry_at > now else []
        for name, since in status.empty_since.items():
            grace = min(self.grace, UNCLAIMED_GRACE) if name in status.unclaimed else self.grace
            due.append(since + grace)
        later = [moment - now for moment in due if moment > now]
        return max(min(later, default=self.idle_refresh), self.interval)

    def _window_due(self, group: ScaledGroup) -> float:
        """Seconds until the group's standby window next opens or closes (idle_refresh without one)."""
        now = self.wall_clock()
        change = next_change(group.standby, now)
        if change is None:
            return self.idle_refresh
        return max((change - now).total_seconds(), self.interval)

    def _active(self, status: GroupStatus) -> bool:
        """Something is waiting or changing: read the cloud every `interval`, not every `idle_refresh`."""
        return bool(
            (status.capacity and status.capacity.pending_gpus)
            or status.requested
            or status.removing
            or len(status.awaiting) > status.lost
            or status.retrying_since is not None
            or (status.cloud and status.cloud.busy)
        )

    async def reconcile(self) -> None:
        """One round over every group, waiting for each (tests and tools; the loop runs them apart)."""
        for group, retiring in self._all_groups():
            await self._reconcile_group(group, retiring)

    # -- the cloud, with a deadline, retries and words -------------------------------------------
    async def _call(self, status: GroupStatus, fn, *args, **kwargs):
        try:
            result = await asyncio.wait_for(asyncio.to_thread(fn, *args, **kwargs), self.call_timeout)
        except TimeoutError as e:
            raise TemporaryError(
                "The cloud is not answering.",
                f"{getattr(fn, '__name__', fn)}: no answer in {self.call_timeout:.0f} s",
            ) from e
        if status.retrying_since is not None:
            self.log.info("The cloud answers again")
        status.retrying_since, status.retry_delay = None, 0.0
        if isinstance(status.blocker, CloudUnavailable):
            status.blocker = None
        return result

    def _failed(
        self, group: ScaledGroup, status: GroupStatus, error: ScalingError, action: str, since=None
    ) -> None:
        """`since`: when the failed call started (a hung call fails only at its deadline)."""
        self.log.warning("Scaling %s (%s): %s", group.name, action, error)
        now = self.clock()
        if isinstance(error, TemporaryError):
            if status.retrying_since is None:
                status.retrying_since = now if since is None else min(since, now)
            status.retry_delay = min(max(status.retry_delay * 2, 1.0, min(error.delay, 5.0)), 30.0)
            status.retry_at = now + status.retry_delay
            status.say(f"{error.user_message} Retrying in {status.retry_delay:.0f} s.")
            # Waiting users are told once a retry fails past the window; a user who comes later,
            # while the cloud is still failing, at the next failed retry.
            if now - status.retrying_since >= self.retry_timeout and action != "shrink":
                status.blocker = CloudUnavailable(
                    "The cloud is not answering; try again later or pick a shared profile.",
                    f"failing for {now - status.retrying_since:.0f} s: {error}",
                )
        elif action == "shrink":
            # An operator must look; no waiting user is at stake.
            status.retry_at = now + max(self.grace, 60.0)
            status.say(f"Could not return nodes: {error.user_message}")
        else:
            status.blocker = error
            status.requested = None

    # -- one group -------------------------------------------------------------------------------
    async def _reconcile_group(self, group: ScaledGroup, retiring: bool = False) -> None:
        status = self.status(group.name)
        now = self.clock()
        backend = self.backend(group.cluster)
        before = status.capacity.pending_gpus if status.capacity else 0
        capacity = self._observe(group, status, now)
        if capacity.pending_gpus == 0:
            status.demand_since = None
        elif status.demand_since is None:
            status.demand_since = now
        if capacity.pending_gpus == 0 and isinstance(status.blocker, CloudUnavailable):
            status.blocker = None  # told to those who waited; a newcomer is told after a fresh try
        if capacity.pending_gpus > before and status.retrying_since is not None:
            status.retry_at = 0.0  # someone new waits: ask the cloud now rather than at the next retry
        if now >= status.retry_at and read_due(
            status.cloud_at,
            now,
            active=self._active(status),
            gap=status.read_gap or self.interval,
            idle_refresh=self.idle_refresh,
            more_waiting=capacity.pending_gpus > before,
        ):
            try:
                fresh = await self._call(status, backend.state, group.name)
                status.read_gap = next_gap(status.cloud, fresh, status.read_gap, self.interval)
                status.cloud, status.cloud_at = fresh, now
            except ScalingError as e:
                self._failed(group, status, e, "read", since=now)
        cloud = status.cloud
        if cloud is None:
            return
        finished = status.requested is not None and not cloud.busy
        if finished and not cloud.failed:
            status.requested = None
        self._after_read(group, status, cloud, capacity, now)
        metrics.NODES_BASELINE.labels(group.name).set(baseline(group, cloud))
        if finished and cloud.failed:
            error = PermanentError("The cloud failed to add the node.", cloud.status_reason)
            self._failed(group, status, error, "grow")
            return
        if now < status.retry_at:
            return
        if await self._release_abandoned(group, status, cloud, capacity):
            return  # the view changes with the uncordon: decide at the next round
        pending = 0 if retiring else capacity.pending_gpus
        standby = 0 if retiring else standby_gpus(group.standby, self.wall_clock())
        status.standby_gpus = standby
        if pending == 0 and standby == 0:
            status.blocker = None
            await self._maybe_shrink(group, status, cloud, capacity, now, retiring)
            return
        decision = plan_layout(  # one resource (whole GPUs): plan itself
            GroupView(
                name=group.name,
                gpus_per_node=group.gpus_per_node,
                backend_nodes=cloud.node_count - status.lost,
                joined_nodes=capacity.nodes,
                free_per_node=capacity.free_per_node,
                pending_requests=capacity.pending_requests,
                booting_nodes=sum(1 for n in capacity.members if n.booting),
                baseline=baseline(group, cloud),
                ceiling=group.max_nodes - status.lost,
                standby_gpus=standby,
            ),
            [(r.resource, r.per_node, r.free_per_node, r.pending_requests) for r in capacity.resources],
        )
        if pending == 0 and not decision.grows:  # the standby is there (or capped): give back the rest
            status.blocker = None
            await self._maybe_shrink(group, status, cloud, capacity, now, retiring, keep_free=standby)
            return
        if decision.grows and not cloud.busy:
            hold = burst_wait(
                status.demand_since,
                self.view.last_arrival,
                now,
                self.burst_quiet,
                self.burst_window,
                self.view.in_flight(group.name),
            )
            if hold > 0:  # starts are still arriving: one resize for all of them, a moment later
                # The loop gathers events for a moment after each wake: wake it that much sooner.
                asyncio.get_running_loop().call_later(max(hold - self._gather, 0.0), self.view.changed.set)
                return
            target = decision.target + status.lost
            try:
                self.memory.remember_growth(
                    group.name,
                    {k: v for k, v in asdict(group).items() if k != "standby"},  # JSON; not for retiring
                    cloud.max_nodes,
                    raised=cloud.max_nodes is not None and target > cloud.max_nodes,
                )
                await self._call(status, grow, backend, group, cloud, target)
            except ScalingError as e:
                metrics.BACKEND_REQUESTS.labels(group.name, "grow", metrics.scaling_reason(e)).inc()
                self._failed(group, status, e, "grow", since=now)
                return
            metrics.BACKEND_REQUESTS.labels(group.name, "grow", "accepted").inc()
            metrics.NODES_TARGET.labels(group.name).set(target)
            status.requested, status.requested_at, status.blocker = (cloud.node_count, target), now, None
            status.requested_for = target - status.lost
            status.awaiting += [now + self.join_deadline] * (target - cloud.node_count)
            status.cloud_at = None  # read it again at the next round
            status.say(
                f"Requested {target - cloud.node_count} new GPU node(s) for {group.name} "
                f"({cloud.node_count} → {target})."
            )
            self.log.info("Growing %s: %s", group.name, decision.reason)
        elif decision.unmet_gpus and not decision.grows and not cloud.busy:
            status.blocker = CeilingReached(
                "No GPU is free for this profile and its GPU nodes are at their maximum of "
                f"{group.max_nodes}: try again later, or ask the service admins for more GPU nodes.",
                f"{group.name}: {decision.reason}",
            )

    def _observe(self, group: ScaledGroup, status: GroupStatus, now: float) -> Capacity:
        """Capacity from the watch, and what changed since the last round: joins, departures,
        nodes that emptied."""
        for name in [n for n in status.removing if n not in self.view.nodes]:
            del status.removing[name]
        capacity = self.view.capacity(  # kept up to date per watch event, not recounted here
            GroupSelector(group.name, group.label, group.gpu_resource, group.resources),
            group.gpus_per_node,
            namespace=self.namespace,
            leaving=frozenset(status.removing),
        )
        members = {n.name for n in capacity.members}
        first = status.capacity is None
        for name in sorted(members - status.members):
            status.joined[name] = now
            if not first:  # not at the first round: those nodes were there before us
                status.unclaimed.add(name)
                status.say(f"Node {name} joined {group.name}; waiting for its GPU to become available.")
        for name in status.members - members:
            status.joined.pop(name, None)
        status.capacity, status.members = capacity, members
        for node in capacity.members:
            if node.workloads:
                status.empty_since.pop(node.name, None)
                status.unclaimed.discard(node.name)
            else:
                status.empty_since.setdefault(node.name, now)
        for name in set(status.empty_since) - members:
            del status.empty_since[name]
        status.unclaimed &= members
        metrics.GPU_PENDING.labels(group.name).set(capacity.pending_gpus)
        metrics.GPU_FREE.labels(group.name).set(capacity.free_gpus)
        return capacity

    def _after_read(self, group, status: GroupStatus, cloud: GroupState, capacity: Capacity, now) -> None:
        """What needs the cloud's view too: removals the cloud kept, VMs that never join, boots done."""
        if not cloud.busy:
            # A removal the cloud finished (or failed) long ago whose node is still here: the cloud
            # kept it. Stop treating it as leaving, so it is counted and may be chosen again.
            for name, named_at in list(status.removing.items()):
                if now - named_at > self.join_deadline:
                    del status.removing[name]
                    status.say(f"Node {name} was named for removal but is still there; counting it again.")
                    self.log.warning(
                        "%s: node %s named for removal %d s ago is still there",
                        group.name,
                        name,
                        now - named_at,
                    )
        self._track_joins(group, status, cloud, capacity, now)

    def _track_joins(self, group, status: GroupStatus, cloud: GroupState, capacity: Capacity, now) -> None:
        unjoined = max(cloud.node_count - capacity.nodes, 0)
        if len(status.awaiting) > unjoined:  # the oldest requests join first
            del status.awaiting[: len(status.awaiting) - unjoined]
        while len(status.awaiting) < unjoined:
            status.awaiting.append(now + self.join_deadline)
        lost = sum(1 for deadline in status.awaiting if deadline <= now)
        if lost > status.lost:
            metrics.NODES_LOST.labels(group.name).inc(lost - status.lost)
            status.say(f"{lost - status.lost} VM(s) of {group.name} did not join Kubernetes in time.")
            self.log.warning(
                "%s: %d VM(s) counted by the cloud have not joined Kubernetes within %d s; no longer "
                "counted as on their way",
                group.name,
                lost,
                self.join_deadline,
            )
        status.lost = lost
        if status.requested_at is not None and status.requested is None and capacity.booting_gpus == 0:
            if capacity.allocatable_gpus >= status.requested_for * group.gpus_per_node:
                seconds = now - status.requested_at
                metrics.NODE_READY_SECONDS.labels(group.name).observe(seconds)
                self.memory.record_boot(group.name, seconds)
                status.requested_at = None

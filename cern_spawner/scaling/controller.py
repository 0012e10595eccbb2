"""The scaling controller: one loop per hub that grows GPU node groups for all waiting users.

Each round it reads capacity from the shared watch and each scaled group's state from the cloud,
asks the pure planner for one target, and writes to the cloud only when the target grows and no
change is under way: concurrent spawns coalesce into one request. Everything is recomputed each
round from the cluster and the cloud, so a hub restart neither loses nor repeats growth.
When demand is gone for `grace` seconds, it returns what it raised to the group's baseline,
naming only empty nodes. Spawns read `status(group)` for progress and for a reason to give up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import metrics
from .capacity import Capacity, GroupSelector, summarize
from .errors import CeilingReached, PermanentError, ScalingError, TemporaryError
from .magnum import GroupState, MagnumGroups
from .planner import GroupView, plan


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


@dataclass
class GroupStatus:
    capacity: Capacity | None = None
    cloud: GroupState | None = None
    requested: tuple[int, int] | None = None  # (from, to) of the growth under way
    requested_at: float | None = None
    requested_for: int = 0  # the node count asked for, to time how long it takes to be ready
    blocker: ScalingError | None = None  # why waiting users cannot be served
    last_demand_at: float | None = None
    events: list[str] = field(default_factory=list)  # plain-language history, oldest first
    members: set[str] = field(default_factory=set)  # the group's nodes at the last round

    def say(self, message: str) -> None:
        if not self.events or self.events[-1] != message:
            self.events.append(message)
            del self.events[:-50]


class ScalingController:
    def __init__(
        self,
        groups: Callable[[], list[ScaledGroup]],
        view,
        backend: Callable[[str], MagnumGroups],
        log: logging.Logger,
        *,
        interval: float = 2.0,
        grace: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.groups = groups
        self.view = view
        self.backend = backend
        self.log = log
        self.interval = interval
        self.grace = grace
        self.clock = clock
        self.statuses: dict[str, GroupStatus] = {}
        self._task: asyncio.Task | None = None
        self._retry_at: dict[str, float] = {}

    def status(self, group: str) -> GroupStatus:
        return self.statuses.setdefault(group, GroupStatus())

    def start(self) -> None:
        if self._task is None:
            self.view.start()
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        await self.view.synced.wait()
        while True:
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("Scaling round failed")
            await asyncio.sleep(self.interval)

    async def reconcile(self) -> None:
        groups = self.groups()
        selectors = [GroupSelector(g.name, g.label, g.gpu_resource) for g in groups]
        capacities = summarize(
            self.view.nodes.values(),
            self.view.pods.values(),
            selectors,
            {g.name: g.gpus_per_node for g in groups},
        )
        for group in groups:
            await self._reconcile_group(group, capacities[group.name])

    async def _reconcile_group(self, group: ScaledGroup, capacity: Capacity) -> None:
        status = self.status(group.name)
        members = {
            name
            for name, node in self.view.nodes.items()
            if (node["metadata"].get("labels") or {}).get(group.label) == group.name
        }
        if status.capacity is not None:  # not at the first round: those nodes were there before us
            for name in sorted(members - status.members):
                status.say(f"Node {name} joined {group.name}; waiting for its GPU to become available.")
        status.capacity, status.members = capacity, members
        metrics.GPU_PENDING.labels(group.name).set(capacity.pending_gpus)
        metrics.GPU_FREE.labels(group.name).set(capacity.free_gpus)
        now = self.clock()
        if status.requested_at is not None and status.requested is None and capacity.booting_gpus == 0:
            if capacity.allocatable_gpus >= status.requested_for * group.gpus_per_node:
                metrics.NODE_READY_SECONDS.labels(group.name).observe(now - status.requested_at)
                status.requested_at = None
        # Demand is what we know nothing about before our first round (a hub restart): count the
        # grace period from then rather than shrinking what may still be wanted.
        if capacity.pending_gpus or status.last_demand_at is None:
            status.last_demand_at = now
        if now < self._retry_at.get(group.name, 0):
            return
        backend = self.backend(group.cluster)
        try:
            cloud = await asyncio.to_thread(backend.state, group.name)
        except ScalingError as e:
            self._failed(group, status, e)
            return
        status.cloud = cloud
        metrics.NODES_BASELINE.labels(group.name).set(_baseline(group, cloud))
        if status.requested and not cloud.busy:
            if cloud.failed:
                self._failed(
                    group, status, PermanentError("The cloud failed to add the node.", cloud.status_reason)
                )
                return
            status.requested = None
        decision = plan(
            GroupView(
                name=group.name,
                gpus_per_node=group.gpus_per_node,
                backend_nodes=cloud.node_count,
                joined_nodes=capacity.nodes,
                free_gpus=capacity.free_gpus,
                pending_gpus=capacity.pending_gpus,
                booting_gpus=capacity.booting_gpus,
                baseline=_baseline(group, cloud),
                ceiling=group.max_nodes,
            )
        )
        if capacity.pending_gpus == 0:
            status.blocker = None
            await self._maybe_shrink(group, status, cloud, capacity, backend, now)
            return
        if decision.grows and not cloud.busy:
            try:
                await asyncio.to_thread(grow, backend, group, cloud, decision.target)
            except ScalingError as e:
                metrics.BACKEND_REQUESTS.labels(group.name, "grow", type(e).__name__).inc()
                self._failed(group, status, e)
                return
            metrics.BACKEND_REQUESTS.labels(group.name, "grow", "accepted").inc()
            metrics.NODES_TARGET.labels(group.name).set(decision.target)
            status.requested, status.requested_at, status.blocker = (
                (cloud.node_count, decision.target),
                now,
                None,
            )
            status.requested_for = decision.target
            status.say(
                f"Requested {decision.target - cloud.node_count} new GPU node(s) for {group.name} "
                f"({cloud.node_count} → {decision.target}); this usually takes 5–15 minutes."
            )
            self.log.info("Growing %s: %s", group.name, decision.reason)
        elif decision.unmet_gpus and not decision.grows and not cloud.busy:
            status.blocker = CeilingReached(
                f"No GPU is free in {group.name} and it is at its maximum of {group.max_nodes} node(s): "
                "try again later, or ask the service admins for more GPU nodes."
            )

    def _failed(self, group: ScaledGroup, status: GroupStatus, error: ScalingError) -> None:
        self.log.warning("Scaling %s: %s", group.name, error)
        if isinstance(error, TemporaryError):
            self._retry_at[group.name] = self.clock() + error.delay
            status.say(f"{error.user_message} Retrying.")
        else:
            status.blocker = error
            status.requested = None

    async def _maybe_shrink(self, group, status, cloud: GroupState, capacity: Capacity, backend, now) -> None:
        baseline = _baseline(group, cloud)
        # What we raised: min_node_count in raise-min mode (the autoscaler then removes idle nodes,
        # never one running a pod), the node count in resize mode.
        raised = cloud.min_nodes if group.mode == "raise-min" else cloud.node_count
        if cloud.busy or raised <= baseline:
            return
        if status.last_demand_at is not None and now - status.last_demand_at < self.grace:
            return
        busy_nodes = {p["spec"].get("nodeName") for p in self.view.pods.values() if p["spec"].get("nodeName")}
        members = sorted(
            (
                n
                for n in self.view.nodes.values()
                if (n["metadata"].get("labels") or {}).get(group.label) == group.name
            ),
            key=lambda n: n["metadata"]["name"],
            reverse=True,
        )
        empty = [n["metadata"]["name"] for n in members if n["metadata"]["name"] not in busy_nodes]
        if group.mode == "raise-min":
            # Keep min at the nodes still in use, so the demand they serve keeps its grace period.
            target = max(baseline, len(members) - len(empty))
            if cloud.min_nodes > target:
                await self._shrink(group, status, cloud, backend, target, [])
            return
        removable = min(cloud.node_count - baseline, len(empty))
        if removable <= 0:
            return
        await self._shrink(group, status, cloud, backend, cloud.node_count - removable, empty[:removable])

    async def _shrink(self, group, status, cloud: GroupState, backend, target: int, empty: list[str]) -> None:
        try:
            await asyncio.to_thread(shrink, backend, group, cloud, target, empty)
        except ScalingError as e:
            metrics.BACKEND_REQUESTS.labels(group.name, "shrink", type(e).__name__).inc()
            self._failed(group, status, e)
            return
        metrics.BACKEND_REQUESTS.labels(group.name, "shrink", "accepted").inc()
        metrics.NODES_TARGET.labels(group.name).set(target)
        status.say(f"Returned {group.name} to {target} node(s): no one is waiting for a GPU.")
        self.log.info("Shrinking %s %d → %d, removing %s", group.name, cloud.node_count, target, empty)


def _baseline(group: ScaledGroup, cloud: GroupState) -> int:
    """Never below the catalog's baseline; in resize mode not below the cloud's own min either
    (Magnum refuses it). In raise-min mode the cloud's min is ours to lower."""
    return group.min_nodes if group.mode == "raise-min" else max(group.min_nodes, cloud.min_nodes)


def grow(backend: MagnumGroups, group: ScaledGroup, cloud: GroupState, target: int) -> None:
    """Ask Magnum for `target` nodes. Order matters: Magnum refuses min > node_count and max < node_count."""
    if target > group.max_nodes:
        raise CeilingReached(f"{group.name} may not grow beyond {group.max_nodes} node(s).")
    if cloud.max_nodes is not None and target > cloud.max_nodes:
        backend.patch(group.name, cloud, max_node_count=target)
    if cloud.node_count < target:
        backend.resize(group.name, target)
    if group.mode == "raise-min" and cloud.min_nodes < target:
        # Autoscaled clusters keep only what min pins; raised after node_count so min <= node_count.
        backend.patch(
            group.name, GroupState(**{**cloud.__dict__, "node_count": target}), min_node_count=target
        )


def shrink(
    backend: MagnumGroups, group: ScaledGroup, cloud: GroupState, target: int, empty: list[str]
) -> None:
    if group.mode == "raise-min":
        if cloud.min_nodes > target:
            backend.patch(group.name, cloud, min_node_count=target)
        return  # the autoscaler removes the idle nodes
    backend.resize(group.name, target, nodes_to_remove=empty)

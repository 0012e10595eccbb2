"""Giving back what no one uses: the scaling controller's shrink, as a mixin of `ScalingController`.

A group with nobody waiting is offered to `shrink.decide` (settled view, per-node grace); the
nodes it chooses are cordoned and their pods listed again from the API server (a pod bound
meanwhile: uncordon, skip), the group is read again right before the write (changed meanwhile:
uncordon, decide again), and only then named to the cloud by server id. Nodes a hub restart left
cordoned but never named are made schedulable again once nothing is leaving. Back at rest, a
`max_node_count` raised by growth is put back and a group the catalog no longer scales is forgotten.
"""

from __future__ import annotations

from .. import metrics
from . import nodes as node_ops
from .backend import GroupState, baseline, shrink
from .capacity import Capacity
from .errors import ScalingError, TemporaryError
from .shrink import ShrinkView, decide, unsettled
from .state import GroupStatus

UNCLAIMED_GRACE = 60.0  # seconds an empty node that never ran a workload is kept


class GivingBack:
    """The shrink half of `ScalingController`, which it inherits. It reads the controller's
    settings (`grace`, `kube`, `clock`, `log`, `backend`, `memory`, `statuses`) and calls its cloud
    helpers (`_call`, `_failed`)."""

    def _shrink_view(
        self, group, status: GroupStatus, cloud: GroupState, capacity: Capacity, now, keep_free: int = 0
    ) -> ShrinkView:
        return ShrinkView(
            mode=group.mode,
            members=capacity.members,
            leaving=len(status.removing),
            cloud_nodes=cloud.node_count,
            cloud_min=cloud.min_nodes,
            cloud_busy=cloud.busy,
            lost=status.lost,
            baseline=baseline(group, cloud),
            empty_since=status.empty_since,
            grace=self.grace,
            now=now,
            unclaimed=frozenset(status.unclaimed),
            unclaimed_grace=UNCLAIMED_GRACE,
            keep_free=keep_free,
        )

    async def _release_abandoned(self, group, status: GroupStatus, cloud, capacity: Capacity) -> bool:
        """Nodes we cordoned but never named (a hub restart between the two): when nothing is
        leaving, they are not on their way out, so make them schedulable again. While the cloud
        updates or Kubernetes lists more nodes than the cloud counts, they may be leaving: keep them."""
        abandoned = [n.name for n in capacity.members if n.ours_to_remove]
        if not abandoned or self.kube is None:
            return False
        if cloud.busy or capacity.nodes + status.lost > cloud.node_count:
            for name in abandoned:
                status.removing.setdefault(name, self.clock())
            return True
        for name in abandoned:
            await node_ops.uncordon(self.kube, name)
            status.say(f"Node {name} was cordoned by an interrupted shrink; made schedulable again.")
        return True

    async def _maybe_shrink(
        self, group, status, cloud: GroupState, capacity: Capacity, now, retiring, keep_free: int = 0
    ) -> None:
        view = self._shrink_view(group, status, cloud, capacity, now, keep_free)
        if unsettled(view):
            return
        decision = decide(view)
        if decision is None:
            await self._restore_raised_max(group, status, cloud, retiring)
            return
        nameless = [n.name for n in capacity.members if n.name in decision.remove and not n.server_id]
        if nameless:
            # Heat ignores anything but server ids in nodes_to_remove and then removes the newest
            # VMs itself, busy or not: without the id, never shrink.
            self.log.warning("Not shrinking %s: no providerID (server id) on %s", group.name, nameless)
            return
        if decision.remove and self.kube is not None:
            chosen = await self._cordon_and_recheck(group, status, decision.remove)
            if not chosen:
                return
        else:
            chosen = list(decision.remove)
        backend = self.backend(group.cluster)
        try:
            fresh = await self._call(status, backend.state, group.name)  # right before the write
        except ScalingError as e:
            await self._uncordon(chosen)
            self._failed(group, status, e, "shrink")
            return
        if fresh.busy or fresh.node_count != cloud.node_count or fresh.min_nodes != cloud.min_nodes:
            await self._uncordon(chosen)  # someone changed the group meanwhile: decide again
            status.cloud, status.cloud_at = fresh, now
            return
        target = cloud.node_count - len(chosen) if decision.remove else decision.target
        ids = {n.name: n.server_id for n in capacity.members}
        try:
            await self._call(status, shrink, backend, group, fresh, target, [ids[name] for name in chosen])
        except ScalingError as e:
            metrics.BACKEND_REQUESTS.labels(group.name, "shrink", metrics.scaling_reason(e)).inc()
            if not isinstance(e, TemporaryError):
                await self._uncordon(chosen)  # refused: nothing will be removed
            # A timeout or a 5xx may still have been carried out: the nodes stay cordoned, and are
            # made schedulable again only once the view has settled without their removal.
            self._failed(group, status, e, "shrink")
            return
        for name in chosen:
            status.removing[name] = now
        status.cloud_at = None
        metrics.BACKEND_REQUESTS.labels(group.name, "shrink", "accepted").inc()
        metrics.NODES_TARGET.labels(group.name).set(target)
        status.say(f"Returning {group.name} to {target} node(s): {decision.reason}.")
        self.log.info("Shrinking %s: %s", group.name, decision.reason)

    async def _cordon_and_recheck(self, group, status: GroupStatus, names: tuple[str, ...]) -> list[str]:
        """Cordon each chosen node, then look again at what runs there: a pod may have been bound
        between the watch's view and the cordon. Busy ones are uncordoned and skipped."""
        chosen = []
        for name in names:
            try:
                await node_ops.cordon(self.kube, name)
                busy = await node_ops.workloads_on(self.kube, name)
            except ScalingError as e:
                self.log.warning("Not removing %s: %s", name, e)
                await self._uncordon([name])
                continue
            if busy:
                self.log.info("Not removing %s: %s was bound to it meanwhile", name, ", ".join(busy))
                status.empty_since.pop(name, None)
                await self._uncordon([name])
                continue
            chosen.append(name)
        return chosen

    async def _uncordon(self, names) -> None:
        if self.kube is None:
            return
        for name in names:
            try:
                await node_ops.uncordon(self.kube, name)
            except ScalingError as e:
                self.log.warning("Could not uncordon %s: %s", name, e)

    async def _restore_raised_max(
        self, group, status: GroupStatus, cloud: GroupState, retiring: bool
    ) -> None:
        """Back at rest: put back the max_node_count growth raised, and forget a retired group."""
        if group.name in self.memory.raised_max:
            original = self.memory.raised_max[group.name]
            if original is None or cloud.max_nodes == original:
                self.memory.forget_max(group.name)
            elif cloud.node_count <= original and cloud.min_nodes <= original:
                try:
                    await self._call(
                        status, self.backend(group.cluster).patch, group.name, cloud, max_node_count=original
                    )
                except ScalingError as e:
                    self._failed(group, status, e, "shrink")
                    return
                metrics.BACKEND_REQUESTS.labels(group.name, "restore-max", "accepted").inc()
                status.say(f"Put back {group.name}'s maximum of {original} node(s).")
                self.memory.forget_max(group.name)
                status.cloud_at = None
                return
        raised = cloud.min_nodes if group.mode == "raise-min" else cloud.node_count
        if group.name not in self.memory.raised_max and raised <= baseline(group, cloud):
            if retiring:
                self.log.info("%s is back at its baseline and no longer scaled: forgetting it", group.name)
                self.statuses.pop(group.name, None)
            self.memory.forget_group(group.name)

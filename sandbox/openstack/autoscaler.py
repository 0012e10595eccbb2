"""The cluster autoscaler of an autoscaled (Cluster API) node group, as far as the hub meets it.

It removes a node that has run no pod for `scale_down_unneeded` seconds while the group has more
nodes than its min_node_count: which is why growth there must raise min_node_count, and why
lowering min is all a shrink needs. Like the real one it never grows an empty GPU group by itself
(it cannot know the group's nodes would have GPUs); scaling up from pending pods is not modelled.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)


def node_to_remove(
    group: dict,
    members: Iterable[str],
    busy: set[str],
    empty_since: dict[str, float],
    now: float,
    unneeded: float,
) -> str | None:
    """The node the autoscaler would remove now, if any. `empty_since` is updated in place."""
    members = sorted(members)
    for name in list(empty_since):
        if name not in members or name in busy:
            del empty_since[name]
    for name in members:
        if name not in busy:
            empty_since.setdefault(name, now)
    if group["status"].endswith("_IN_PROGRESS") or group["node_count"] <= group["min_node_count"]:
        return None
    idle = [name for name in members if name not in busy and now - empty_since[name] >= unneeded]
    return idle[-1] if idle else None


async def run(cloud, busy_nodes: Callable[[], set[str]], clock: Callable[[], float] = time.time) -> None:
    """Every `autoscaler_interval` seconds (the group's own, when set for it), remove at most one
    idle node per autoscaled group."""
    empty_since: dict[str, dict[str, float]] = {}
    waited: dict[str, float] = {}  # group -> seconds since its last look
    while True:
        names = cloud.autoscaled_groups()
        intervals = {name: cloud.setting("autoscaler_interval", name) for name in names}
        tick = min(intervals.values(), default=cloud.setting("autoscaler_interval"))
        await asyncio.sleep(tick)
        due = []
        for name in names:
            waited[name] = waited.get(name, 0.0) + tick
            if waited[name] >= intervals[name] - 1e-6:
                due.append(name)
        if not due:
            continue
        try:
            busy = await asyncio.to_thread(busy_nodes)
        except Exception as e:  # the cluster may be restarting; try again next round
            log.warning("autoscaler: cannot list pods: %s", e)
            continue
        for name in due:
            waited[name] = 0.0
            try:
                node = node_to_remove(
                    cloud.groups[name],
                    cloud.member_nodes(name),
                    busy,
                    empty_since.setdefault(name, {}),
                    clock(),
                    cloud.setting("scale_down_unneeded", name),
                )
                if node:
                    log.info("autoscaler: removing idle node %s from %s", node, name)
                    cloud.autoscaler_remove(name, node)
            except Exception:  # one bad round must not end the autoscaler
                log.exception("autoscaler: round failed for %s", name)


def busy_nodes_from(core) -> Callable[[], set[str]]:
    """Nodes that run a pod that is not finished (the official client, in a thread)."""

    def busy() -> set[str]:
        pods = core.list_pod_for_all_namespaces(field_selector="spec.nodeName!=", _request_timeout=10).items
        return {p.spec.node_name for p in pods if p.status.phase not in ("Succeeded", "Failed")}

    return busy

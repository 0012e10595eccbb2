"""Which nodes to give back, decided only on a settled view. Pure: no I/O, no clock.

A notebook is someone's unsaved work, so a shrink:
- is decided only when the previous change is visible everywhere: the cloud is not updating, every
  node named for removal has left Kubernetes, and Kubernetes lists exactly the VMs the cloud counts;
- never names a node that runs (or is bound to run) a pod other than a DaemonSet's;
- waits `grace` seconds per node from when that node became empty, so a user who stops and
  restarts within the grace period finds their node; a node that joined and never ran anything
  (its user cancelled while it booted) needs no such wait and goes after `unclaimed_grace`;
- never asks for fewer nodes than run workloads, nor fewer than the baseline;
- inside a standby window, keeps enough empty nodes (the oldest) for `keep_free` GPUs to stay free.
"""

from __future__ import annotations

from dataclasses import dataclass

from .capacity import NodeInfo


@dataclass(frozen=True)
class ShrinkView:
    mode: str  # "resize" | "raise-min"
    members: tuple[NodeInfo, ...]  # joined nodes, less those already named for removal
    leaving: int  # nodes named for removal that Kubernetes still lists
    cloud_nodes: int  # the cloud's node_count
    cloud_min: int
    cloud_busy: bool
    lost: int  # VMs the cloud counts that never joined within the deadline
    baseline: int
    empty_since: dict[str, float]  # node -> when it was first seen without workloads
    grace: float
    now: float
    unclaimed: frozenset[str] = frozenset()  # joined while we watched, never ran a workload
    unclaimed_grace: float = 60.0
    keep_free: int = 0  # standby GPUs to keep free (0 outside standby windows)


@dataclass(frozen=True)
class Shrink:
    target: int  # the node_count (resize) or min_node_count (raise-min) to write
    remove: tuple[str, ...]  # nodes to name for removal (resize mode), newest first
    reason: str


def unsettled(view: ShrinkView) -> str:
    """Why no shrink may be decided now, or "" when the view is settled."""
    if view.cloud_busy:
        return "the cloud is still updating the group"
    if view.leaving:
        return f"{view.leaving} node(s) named for removal are still in Kubernetes"
    if len(view.members) + view.lost != view.cloud_nodes:
        return f"Kubernetes lists {len(view.members)} node(s), the cloud counts {view.cloud_nodes}"
    return ""


def removable(view: ShrinkView) -> list[NodeInfo]:
    """Empty nodes past their grace period, newest name first (the last grown go first)."""
    return sorted(
        (
            n
            for n in view.members
            if n.workloads == 0
            and n.name in view.empty_since
            and view.now - view.empty_since[n.name]
            >= (min(view.grace, view.unclaimed_grace) if n.name in view.unclaimed else view.grace)
        ),
        key=lambda n: n.name,
        reverse=True,
    )


def standby_spared(view: ShrinkView, candidates: list[NodeInfo]) -> list[NodeInfo]:
    """The candidates less the oldest ones needed to keep `keep_free` GPUs free."""
    names = {n.name for n in candidates}
    free = sum(n.free_gpus for n in view.members if n.name not in names)
    kept = 0
    while kept < len(candidates) and free < view.keep_free:
        kept += 1
        free += candidates[-kept].free_gpus
    return candidates[: len(candidates) - kept]


def decide(view: ShrinkView) -> Shrink | None:
    """The one shrink to make now, or None."""
    if unsettled(view):
        return None
    candidates = standby_spared(view, removable(view))
    in_use = len(view.members) - len(candidates)
    if view.mode == "raise-min":
        # The autoscaler removes idle nodes once min allows it, never one running a pod; min stays at
        # the nodes in use or inside their grace period, so their demand keeps its node.
        target = max(view.baseline, in_use)
        if view.cloud_min > target:
            return Shrink(target, (), f"lower min {view.cloud_min} → {target}")
        return None
    count = min(len(candidates), view.cloud_nodes - max(view.baseline, in_use + view.lost))
    if count <= 0:
        return None
    chosen = tuple(n.name for n in candidates[:count])
    target = view.cloud_nodes - count
    return Shrink(target, chosen, f"{view.cloud_nodes} → {target}, removing empty {', '.join(chosen)}")

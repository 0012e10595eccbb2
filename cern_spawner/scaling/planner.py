"""Decide one node count per GPU node group from all pending demand. Pure: no I/O, no clock.

Every user waiting for a GPU counts, not just the one whose spawn asks; so concurrent spawns
coalesce into one target, and a second decision made while nodes are still booting does not
request them again (nodes on their way count as capacity). GPUs are placed per node, as the
scheduler places them: a 2-GPU request needs one node with two free GPUs, not two nodes with one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GroupView:
    """What is known about one node group at the moment of a decision."""

    name: str
    gpus_per_node: int
    backend_nodes: int  # node_count the cloud reports (includes nodes still booting), less lost VMs
    joined_nodes: int  # nodes registered in Kubernetes
    free_per_node: tuple[int, ...] = ()  # free GPUs of each schedulable ready node
    pending_requests: tuple[int, ...] = ()  # GPUs of each pod no node has taken yet
    booting_nodes: int = 0  # joined nodes whose GPUs are not allocatable yet
    baseline: int = 0  # never plan below this (the group's min size)
    ceiling: int = 0  # never plan above this (the admin's max size)

    @property
    def pending_gpus(self) -> int:
        return sum(self.pending_requests)


@dataclass(frozen=True)
class Decision:
    group: str
    current: int  # the cloud's node_count when deciding
    target: int  # node count to ask for; equal to current means "no change"
    unmet_gpus: int  # demand that even `target` nodes will not serve (ceiling reached)
    reason: str

    @property
    def grows(self) -> bool:
        return self.target > self.current


def place(requests: tuple[int, ...], bins: list[int]) -> list[int]:
    """Best-fit decreasing: put each request in the fullest bin it fits; return what found none.
    `bins` (free GPUs per node) is consumed."""
    unplaced = []
    for request in sorted(requests, reverse=True):
        fitting = [i for i, free in enumerate(bins) if free >= request]
        if not fitting:
            unplaced.append(request)
            continue
        best = min(fitting, key=lambda i: bins[i])
        bins[best] -= request
    return unplaced


def plan(view: GroupView) -> Decision:
    """The node count that serves the pending demand, counting nodes already on their way."""
    if view.gpus_per_node <= 0:
        return Decision(
            view.name, view.backend_nodes, view.backend_nodes, view.pending_gpus, "not a GPU group"
        )
    on_the_way = max(view.backend_nodes - view.joined_nodes, 0) + view.booting_nodes
    bins = list(view.free_per_node) + [view.gpus_per_node] * on_the_way
    unplaced = place(view.pending_requests, bins)
    floor = max(view.backend_nodes, view.baseline)
    if not unplaced:
        return Decision(view.name, view.backend_nodes, floor, 0, "enough GPUs free or on their way")
    too_big = [r for r in unplaced if r > view.gpus_per_node]
    new_nodes: list[int] = []
    for request in sorted((r for r in unplaced if r <= view.gpus_per_node), reverse=True):
        if place((request,), new_nodes):
            new_nodes.append(view.gpus_per_node - request)
    target = min(floor + len(new_nodes), max(view.ceiling, floor))
    # What the capped number of new nodes still cannot hold.
    room = [view.gpus_per_node] * (target - floor)
    unmet = sum(too_big) + sum(place(tuple(r for r in unplaced if r <= view.gpus_per_node), room))
    shortfall = sum(unplaced)
    if target == floor:
        reason = (
            f"ceiling of {view.ceiling} nodes reached"
            if not too_big or len(too_big) < len(unplaced)
            else f"a request needs more than the {view.gpus_per_node} GPUs of a node"
        )
        return Decision(view.name, view.backend_nodes, floor, unmet, reason)
    reason = f"grow {view.backend_nodes} → {target} for {shortfall} GPU(s)"
    return Decision(view.name, view.backend_nodes, target, unmet, reason)

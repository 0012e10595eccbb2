"""Decide one node count per GPU node group from all pending demand. Pure: no I/O, no clock.

Every user waiting for a GPU counts, not just the one whose spawn asks; so concurrent spawns
coalesce into one target, and a second decision made while nodes are still booting does not
request them again (nodes on their way count as capacity).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class GroupView:
    """What is known about one node group at the moment of a decision."""

    name: str
    gpus_per_node: int
    backend_nodes: int  # node_count the cloud reports (includes nodes still booting)
    joined_nodes: int  # nodes registered in Kubernetes
    free_gpus: int  # allocatable minus requested, on ready nodes
    pending_gpus: int  # GPUs requested by pods of this group that no node has taken yet
    booting_gpus: int = 0  # joined nodes whose GPUs are not allocatable yet, times gpus_per_node
    baseline: int = 0  # never plan below this (the group's min size)
    ceiling: int = 0  # never plan above this (the admin's max size)


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


def plan(view: GroupView) -> Decision:
    """The node count that serves the pending demand, counting nodes already on their way."""
    if view.gpus_per_node <= 0:
        return Decision(
            view.name, view.backend_nodes, view.backend_nodes, view.pending_gpus, "not a GPU group"
        )
    on_the_way = max(view.backend_nodes - view.joined_nodes, 0) * view.gpus_per_node + view.booting_gpus
    shortfall = view.pending_gpus - view.free_gpus - on_the_way
    floor = max(view.backend_nodes, view.baseline)
    if shortfall <= 0:
        return Decision(view.name, view.backend_nodes, floor, 0, "enough GPUs free or on their way")
    wanted = floor + math.ceil(shortfall / view.gpus_per_node)
    target = min(wanted, max(view.ceiling, floor))
    unmet = max(shortfall - (target - floor) * view.gpus_per_node, 0)
    if target == floor:
        return Decision(
            view.name, view.backend_nodes, floor, unmet, f"ceiling of {view.ceiling} nodes reached"
        )
    reason = f"grow {view.backend_nodes} → {target} for {shortfall} GPU(s)"
    return Decision(view.name, view.backend_nodes, target, unmet, reason)

"""Decide one node count per GPU node group from all pending demand. Pure: no I/O, no clock.

Every user waiting for a GPU counts, not just the one whose spawn asks; so concurrent spawns
coalesce into one target, and a second decision made while nodes are still booting does not
request them again (nodes on their way count as capacity). GPUs are placed per node, as the
scheduler places them: a 2-GPU request needs one node with two free GPUs, not two nodes with one.
Standby GPUs (free GPUs kept ready in office hours) come after the waiting users: they are added
only once the users are served and only within the ceiling, so they never take a user's room.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace


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
    standby_gpus: int = 0  # free GPUs to keep beyond the waiting users (0 outside standby windows)

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
    standby_unmet: int = 0  # standby GPUs the ceiling leaves out (no user waits for them)

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
    """The node count that serves the pending demand, then the standby, counting nodes already on
    their way."""
    if view.gpus_per_node <= 0:
        return Decision(
            view.name, view.backend_nodes, view.backend_nodes, view.pending_gpus, "not a GPU group"
        )
    on_the_way = max(view.backend_nodes - view.joined_nodes, 0) + view.booting_nodes
    bins = list(view.free_per_node) + [view.gpus_per_node] * on_the_way
    unplaced = place(view.pending_requests, bins)
    floor = max(view.backend_nodes, view.baseline)
    cap = max(view.ceiling, floor)
    too_big = [r for r in unplaced if r > view.gpus_per_node]
    new_nodes: list[int] = []  # free GPUs left on each node added for the users
    for request in sorted((r for r in unplaced if r <= view.gpus_per_node), reverse=True):
        if place((request,), new_nodes):
            new_nodes.append(view.gpus_per_node - request)
    for_users = min(floor + len(new_nodes), cap)
    # Standby counts what stays free once the users are placed: on the nodes there or on their
    # way, on nodes the baseline adds, and on the nodes added for the users (those the ceiling allows).
    spare = (
        sum(bins) + (floor - view.backend_nodes) * view.gpus_per_node + sum(new_nodes[: for_users - floor])
    )
    short = max(view.standby_gpus - spare, 0)
    target = min(for_users + -(-short // view.gpus_per_node), cap)
    standby_unmet = max(short - (target - for_users) * view.gpus_per_node, 0)
    # What the capped number of new nodes still cannot hold.
    room = [view.gpus_per_node] * (for_users - floor)
    unmet = sum(too_big) + sum(place(tuple(r for r in unplaced if r <= view.gpus_per_node), room))
    shortfall = sum(unplaced)
    if target == floor:
        if not unplaced:
            reason = "enough GPUs free or on their way"
            if short:
                reason = f"standby short of {short} GPU(s): ceiling of {view.ceiling} nodes reached"
        elif not too_big or len(too_big) < len(unplaced):
            reason = f"ceiling of {view.ceiling} nodes reached"
        else:
            reason = f"a request needs more than the {view.gpus_per_node} GPUs of a node"
        return Decision(view.name, view.backend_nodes, floor, unmet, reason, standby_unmet)
    wants = [f"{shortfall} GPU(s)"] if shortfall else []
    wants += [f"{short} standby GPU(s)"] if short else []
    reason = f"grow {view.backend_nodes} → {target} for {' and '.join(wants) or 'the baseline'}"
    return Decision(view.name, view.backend_nodes, target, unmet, reason, standby_unmet)


def plan_layout(
    view: GroupView, resources: Sequence[tuple[str, int, tuple[int, ...], tuple[int, ...]]]
) -> Decision:
    """`plan` for a group whose nodes each bring several resources (a MIG layout's slice types):
    `resources` holds (name, per node, free per node, pending requests) of each. A request is only
    served by its own type, and every new node brings every type, so the group needs the most
    nodes any one type needs. `view`'s totals (all types added up) carry the standby."""
    if len(resources) <= 1:
        return plan(view)
    decisions = []
    if view.standby_gpus:  # slices of any type kept free: the totals' plan, without the users
        decisions.append(plan(replace(view, pending_requests=())))
    for name, per_node, free, pending in resources:
        if pending:
            decision = plan(
                replace(
                    view, gpus_per_node=per_node, free_per_node=free, pending_requests=pending, standby_gpus=0
                )
            )
            decisions.append(replace(decision, reason=f"{name}: {decision.reason}"))
    if not decisions:
        return plan(replace(view, pending_requests=()))
    target = max(d.target for d in decisions)
    return Decision(
        view.name,
        view.backend_nodes,
        target,
        sum(d.unmet_gpus for d in decisions),
        "; ".join(d.reason for d in decisions if d.target == target or d.unmet_gpus),
        sum(d.standby_unmet for d in decisions),
    )


def burst_wait(
    demand_since: float | None,
    last_arrival: float | None,
    now: float,
    quiet: float,
    longest: float,
    in_flight: int = 0,
) -> float:
    """Seconds to hold a growth so that one resize covers a burst of GPU starts still arriving:
    until `quiet` s have passed since the last start began (or waiting pod appeared), and while
    `in_flight` starts are still creating their pods, but never past `longest` s after the group's
    demand began. 0: grow now. A resize cannot be changed until the cloud has carried it out
    (minutes), so a start that arrives just after it would wait for a second boot."""
    if demand_since is None or quiet <= 0 or (last_arrival is None and not in_flight):
        return 0.0
    until = now if last_arrival is None else last_arrival + quiet
    if in_flight:  # its pod's first event wakes the controller sooner
        until = max(until, now + quiet)
    return max(0.0, min(until, demand_since + longest) - now)

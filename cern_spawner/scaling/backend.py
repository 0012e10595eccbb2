"""What the scaling controller needs from a cloud's node groups, whichever API serves them.

A backend offers three calls on one node group, all synchronous (the controller runs them in a
worker thread with a deadline) and raising only `errors.ScalingError`s:

- `state(group)`: a `GroupState` (node count, min/max, whether a change is under way).
- `resize(group, node_count, nodes_to_remove=None)`: ask for `node_count` nodes; when shrinking,
  `nodes_to_remove` are the chosen empty nodes' server ids (the last part of Node.spec.providerID),
  which the backend must remove rather than nodes of its own choosing.
- `patch(group, current, **changes)`: set `min_node_count` and/or `max_node_count` (None: no max).

The order of those writes (`grow`, `shrink`) and the floor of a group (`baseline`) are the same for
every backend and live here: Magnum (magnum.py) and Cluster API (clusterapi.py) implement the calls.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from .errors import CeilingReached

if TYPE_CHECKING:
    from .state import ScaledGroup


@dataclass(frozen=True)
class GroupState:
    name: str
    node_count: int
    min_nodes: int
    max_nodes: int | None
    status: str
    status_reason: str
    # A cluster autoscaler removes idle nodes above min (Magnum's label auto_scaling_enabled=true,
    # or a MachineDeployment carrying the autoscaler's min/max size annotations).
    autoscaled: bool = False

    @property
    def busy(self) -> bool:
        return self.status.endswith("_IN_PROGRESS")

    @property
    def failed(self) -> bool:
        return self.status.endswith("_FAILED")


class NodeGroups(Protocol):
    """The node groups of one cluster (Magnum) or one management-cluster namespace (Cluster API)."""

    def state(self, group: str) -> GroupState: ...

    def resize(self, group: str, node_count: int, nodes_to_remove: list[str] | None = None) -> None: ...

    def patch(self, group: str, current: GroupState, **changes) -> None: ...


def baseline(group: ScaledGroup, cloud: GroupState) -> int:
    """Never below the catalog's baseline; in resize mode not below the cloud's own min either
    (Magnum refuses it, the cluster-autoscaler would grow it back). In raise-min mode the cloud's
    min is ours to lower."""
    return group.min_nodes if group.mode == "raise-min" else max(group.min_nodes, cloud.min_nodes)


def grow(backend: NodeGroups, group: ScaledGroup, cloud: GroupState, target: int) -> None:
    """Ask for `target` nodes. Order matters: Magnum refuses min > node_count and max < node_count."""
    if target > group.max_nodes:
        raise CeilingReached(f"{group.name} may not grow beyond {group.max_nodes} node(s).")
    if cloud.max_nodes is not None and target > cloud.max_nodes:
        backend.patch(group.name, cloud, max_node_count=target)
    if cloud.node_count < target:
        backend.resize(group.name, target)
    if group.mode == "raise-min" and cloud.min_nodes < target:
        # Autoscaled groups keep only what min pins; raised after node_count so min <= node_count.
        backend.patch(group.name, replace(cloud, node_count=target), min_node_count=target)


def shrink(
    backend: NodeGroups, group: ScaledGroup, cloud: GroupState, target: int, remove: list[str]
) -> None:
    if group.mode == "raise-min":
        if cloud.min_nodes > target:
            backend.patch(group.name, cloud, min_node_count=target)
        return  # the autoscaler removes the idle nodes
    backend.resize(group.name, target, nodes_to_remove=remove)

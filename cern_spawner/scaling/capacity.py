"""GPU capacity per node group, computed from Node and Pod objects (as plain dicts). Pure.

The hub keeps one shared watch of Nodes and Pods and calls `summarize` on what it holds, so a
spawn never lists the cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

TERMINAL = {"Succeeded", "Failed"}


@dataclass(frozen=True)
class GroupSelector:
    name: str
    label: str  # node label whose value names the group
    gpu_resource: str


@dataclass(frozen=True)
class Capacity:
    group: str
    nodes: int  # registered nodes of the group
    ready_nodes: int
    allocatable_gpus: int  # on ready nodes
    used_gpus: int  # requested by non-terminated pods bound to the group's nodes
    pending_gpus: int  # requested by pods that select the group and no node has taken yet
    # Joined nodes whose GPUs are not usable yet: the kubelet not Ready yet, or Ready with the
    # device plugin still starting. A node whose kubelet stopped reporting (Unknown) is lost, not booting.
    booting_gpus: int
    gpus_per_node: int

    @property
    def free_gpus(self) -> int:
        return max(self.allocatable_gpus - self.used_gpus, 0)


def _quantity(value) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return 0


def _ready_status(node: Mapping) -> str:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("status"))
    return "False"  # no condition yet: the kubelet has only just registered


def _ready(node: Mapping) -> bool:
    return _ready_status(node) == "True"


def gpus_requested(pod: Mapping, resource: str) -> int:
    total = 0
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        # Extended resources must have requests == limits; either may be given.
        value = (resources.get("limits") or {}).get(resource) or (resources.get("requests") or {}).get(
            resource
        )
        total += _quantity(value)
    return total


def _selects(pod: Mapping, group: GroupSelector) -> bool:
    return ((pod.get("spec") or {}).get("nodeSelector") or {}).get(group.label) == group.name


def summarize(
    nodes: Iterable[Mapping],
    pods: Iterable[Mapping],
    groups: Iterable[GroupSelector],
    gpus_per_node: Mapping[str, int],
) -> dict[str, Capacity]:
    nodes, pods = list(nodes), list(pods)
    live_pods = [
        p
        for p in pods
        if (p.get("status") or {}).get("phase") not in TERMINAL and not p["metadata"].get("deletionTimestamp")
    ]
    result = {}
    for group in groups:
        members = [n for n in nodes if (n["metadata"].get("labels") or {}).get(group.label) == group.name]
        names = {n["metadata"]["name"] for n in members}
        ready = [n for n in members if _ready(n)]
        allocatable = sum(
            _quantity((n.get("status") or {}).get("allocatable", {}).get(group.gpu_resource)) for n in ready
        )
        per_node = gpus_per_node.get(group.name, 0)
        starting = [n for n in members if _ready_status(n) == "False"]
        booting = per_node * len(starting) + sum(
            per_node
            for n in ready
            if _quantity((n.get("status") or {}).get("allocatable", {}).get(group.gpu_resource)) == 0
        )
        used = sum(
            gpus_requested(p, group.gpu_resource)
            for p in live_pods
            if (p.get("spec") or {}).get("nodeName") in names
        )
        pending = sum(
            gpus_requested(p, group.gpu_resource)
            for p in live_pods
            if not (p.get("spec") or {}).get("nodeName") and _selects(p, group)
        )
        result[group.name] = Capacity(
            group=group.name,
            nodes=len(members),
            ready_nodes=len(ready),
            allocatable_gpus=allocatable,
            used_gpus=used,
            pending_gpus=pending,
            booting_gpus=booting,
            gpus_per_node=per_node,
        )
    return result

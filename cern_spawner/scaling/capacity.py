"""GPU capacity per node group, computed from Node and Pod objects (as plain dicts). Pure.

The hub keeps one shared watch of Nodes and of every namespace's Pods and calls `summarize` on
what it holds, so a spawn never lists the cluster. Free GPUs are counted per node: a 2-GPU
request does not fit two nodes with one free GPU each.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

TERMINAL = {"Succeeded", "Failed"}
# Set on a node the hub cordoned to remove it: after a hub restart the new hub knows it was ours.
REMOVAL_ANNOTATION = "cern-spawner.cern.ch/removal"


@dataclass(frozen=True)
class GroupSelector:
    name: str
    label: str  # node label whose value names the group
    gpu_resource: str


@dataclass(frozen=True)
class NodeInfo:
    """One member node of a group, as the shrink and the planner need it."""

    name: str
    ready: str  # the Ready condition: "True", "False" (kubelet starting) or "Unknown" (lost)
    allocatable_gpus: int
    used_gpus: int  # requested by live pods bound to it, any namespace
    workloads: int  # live pods bound to it that are not DaemonSet or static pods
    unschedulable: bool
    ours_to_remove: bool  # cordoned by the hub for removal (REMOVAL_ANNOTATION)
    server_id: str  # the cloud's VM id from spec.providerID ("" when the node has none)

    @property
    def free_gpus(self) -> int:
        if self.ready != "True" or self.unschedulable:
            return 0
        return max(self.allocatable_gpus - self.used_gpus, 0)

    @property
    def booting(self) -> bool:
        # Joined, but its GPUs are not usable yet: the kubelet not Ready yet, or Ready with the
        # device plugin still starting. A node whose kubelet stopped reporting (Unknown) is lost.
        return self.ready == "False" or (self.ready == "True" and self.allocatable_gpus == 0)


@dataclass(frozen=True)
class Capacity:
    group: str
    nodes: int  # registered nodes of the group
    ready_nodes: int
    allocatable_gpus: int  # on ready nodes
    used_gpus: int  # requested by non-terminated pods bound to the group's nodes, any namespace
    pending_gpus: int  # requested by the hub's pods that select the group and no node has taken yet
    # Joined nodes whose GPUs are not usable yet, times gpus_per_node.
    booting_gpus: int
    gpus_per_node: int
    members: tuple[NodeInfo, ...] = ()
    pending_requests: tuple[int, ...] = ()  # GPUs of each pending pod, largest first

    @property
    def free_gpus(self) -> int:
        if not self.members:  # built without per-node detail (a summary from elsewhere)
            return max(self.allocatable_gpus - self.used_gpus, 0)
        return sum(n.free_gpus for n in self.members)

    @property
    def free_per_node(self) -> tuple[int, ...]:
        return tuple(n.free_gpus for n in self.members if n.free_gpus)


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


def is_workload(pod: Mapping) -> bool:
    """A pod whose node must not be removed under it: anything but DaemonSet and static pods."""
    metadata = pod.get("metadata") or {}
    if "kubernetes.io/config.mirror" in (metadata.get("annotations") or {}):
        return False
    return not any(owner.get("kind") == "DaemonSet" for owner in metadata.get("ownerReferences") or [])


def is_live(pod: Mapping) -> bool:
    # A pod being deleted still runs until it is gone: it keeps its node busy.
    return (pod.get("status") or {}).get("phase") not in TERMINAL


def server_id(node: Mapping) -> str:
    """The VM id openstack-cloud-controller-manager writes as providerID (openstack:///<id>)."""
    provider = (node.get("spec") or {}).get("providerID") or ""
    return provider.rsplit("/", 1)[-1] if provider.startswith("openstack://") else ""


def member_nodes(nodes: Iterable[Mapping], group: GroupSelector) -> list[Mapping]:
    return [n for n in nodes if (n["metadata"].get("labels") or {}).get(group.label) == group.name]


def summarize(
    nodes: Iterable[Mapping],
    pods: Iterable[Mapping],
    groups: Iterable[GroupSelector],
    gpus_per_node: Mapping[str, int],
    namespace: str | None = None,
    leaving: frozenset[str] = frozenset(),
) -> dict[str, Capacity]:
    """Capacity per group. Pending demand counts only pods of `namespace` (the hub's; None: all);
    nodes in `leaving` (already named for removal) are no longer members."""
    nodes = [n for n in nodes if n["metadata"]["name"] not in leaving]
    live_pods = [p for p in pods if is_live(p)]
    by_node: dict[str, list[Mapping]] = {}
    unbound = []
    for pod in live_pods:
        node_name = (pod.get("spec") or {}).get("nodeName")
        if node_name:
            by_node.setdefault(node_name, []).append(pod)
        elif namespace is None or pod["metadata"].get("namespace", namespace) == namespace:
            unbound.append(pod)
    result = {}
    for group in groups:
        per_node = gpus_per_node.get(group.name, 0)
        members = []
        for node in member_nodes(nodes, group):
            name = node["metadata"]["name"]
            bound = by_node.get(name, [])
            members.append(
                NodeInfo(
                    name=name,
                    ready=_ready_status(node),
                    allocatable_gpus=_quantity(
                        ((node.get("status") or {}).get("allocatable") or {}).get(group.gpu_resource)
                    ),
                    used_gpus=sum(gpus_requested(p, group.gpu_resource) for p in bound),
                    workloads=sum(1 for p in bound if is_workload(p)),
                    unschedulable=bool((node.get("spec") or {}).get("unschedulable")),
                    ours_to_remove=REMOVAL_ANNOTATION in (node["metadata"].get("annotations") or {}),
                    server_id=server_id(node),
                )
            )
        members.sort(key=lambda n: n.name)
        requests = sorted(
            (
                gpus
                for p in unbound
                if ((p.get("spec") or {}).get("nodeSelector") or {}).get(group.label) == group.name
                and (gpus := gpus_requested(p, group.gpu_resource))
            ),
            reverse=True,
        )
        ready = [n for n in members if n.ready == "True"]
        result[group.name] = Capacity(
            group=group.name,
            nodes=len(members),
            ready_nodes=len(ready),
            allocatable_gpus=sum(n.allocatable_gpus for n in ready),
            used_gpus=sum(n.used_gpus for n in members),
            pending_gpus=sum(requests),
            booting_gpus=per_node * sum(1 for n in members if n.booting),
            gpus_per_node=per_node,
            members=tuple(members),
            pending_requests=tuple(requests),
        )
    return result

"""GPU capacity per node group, from Node objects and what each Pod uses. Pure.

The hub keeps one watch of Nodes and of every namespace's Pods. Each pod event updates a
`PodIndex` (per node: extended resources requested and workloads of live pods; the live pods no
node has taken yet) in O(1), and a round reads a group's capacity from it in O(the group's nodes +
unbound pods), never going over every pod of the cluster. `summarize` does the same from plain
lists (tests, tools). Free GPUs are counted per node: a 2-GPU request does not fit two nodes with
one free GPU each.

A group's nodes may advertise several GPU resources (a MIG layout: nvidia.com/mig-1g.10gb,
nvidia.com/mig-3g.40gb, ...): the group's totals add them all up (a node with none of them
allocatable is still booting), and `Capacity.resources` counts each one on its own, since a
request for one slice type is only served by a free slice of that type.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..catalog.model import in_node_group

TERMINAL = {"Succeeded", "Failed"}
# Set on a node the hub cordoned to remove it: after a hub restart the new hub knows it was ours.
REMOVAL_ANNOTATION = "cern-spawner.cern.ch/removal"


@dataclass(frozen=True)
class GroupSelector:
    name: str
    label: str  # node label whose value names the group
    gpu_resource: str
    # (resource, count per node) of each GPU resource the nodes advertise; empty: gpu_resource alone.
    resources: tuple[tuple[str, int], ...] = ()

    def layout(self, per_node: int) -> tuple[tuple[str, int], ...]:
        return self.resources or ((self.gpu_resource, per_node),)


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
    # (resource, allocatable, used) of each of the group's GPU resources (one for whole GPUs).
    by_resource: tuple[tuple[str, int, int], ...] = ()

    @property
    def free_gpus(self) -> int:
        if not self.by_resource:
            return self._free(self.allocatable_gpus, self.used_gpus)
        return sum(self._free(allocatable, used) for _, allocatable, used in self.by_resource)

    def free_of(self, resource: str) -> int:
        return sum(self._free(a, u) for name, a, u in self.by_resource if name == resource)

    def _free(self, allocatable: int, used: int) -> int:
        if self.ready != "True" or self.unschedulable:
            return 0
        return max(allocatable - used, 0)

    @property
    def booting(self) -> bool:
        # Joined, but its GPUs are not usable yet: the kubelet not Ready yet, or Ready with the
        # device plugin still starting. A node whose kubelet stopped reporting (Unknown) is lost.
        return self.ready == "False" or (self.ready == "True" and self.allocatable_gpus == 0)


@dataclass(frozen=True)
class ResourceCapacity:
    """One GPU resource of a group (a MIG slice type, or the group's only one)."""

    resource: str
    per_node: int  # advertised by each node
    allocatable: int  # on ready nodes
    used: int  # requested by live pods bound to the group's nodes
    free_per_node: tuple[int, ...]  # free on each schedulable ready node that has some
    pending_requests: tuple[int, ...]  # of each of the hub's pods waiting for this resource, largest first
    booting: int  # per_node times the group's booting nodes

    @property
    def free(self) -> int:
        return sum(self.free_per_node)

    @property
    def pending(self) -> int:
        return sum(self.pending_requests)


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
    resources: tuple[ResourceCapacity, ...] = ()  # each GPU resource on its own

    def resource(self, name: str) -> ResourceCapacity | None:
        return next((r for r in self.resources if r.resource == name), None)

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
    return [n for n in nodes if in_node_group(n["metadata"].get("labels"), group.label, group.name)]


@dataclass(frozen=True, slots=True)
class PodUse:
    """What capacity reads of one pod; the watch keeps this, not the pod (small, comparable: an
    event that leaves it equal changes no capacity)."""

    namespace: str | None
    node: str | None  # spec.nodeName: None until the scheduler binds it
    live: bool  # not Succeeded/Failed (a pod being deleted still holds its node)
    workload: bool  # not a DaemonSet or static pod
    extended: tuple[tuple[str, int], ...]  # requested extended resources (nvidia.com/gpu, ...), > 0
    selector: tuple[tuple[str, str], ...]  # spec.nodeSelector

    def requested(self, resource: str) -> int:
        return sum(count for name, count in self.extended if name == resource)

    def selects(self, label: str, value: str) -> bool:
        return (label, value) in self.selector


def pod_use(pod: Mapping) -> PodUse:
    spec = pod.get("spec") or {}
    totals: Counter = Counter()
    for container in spec.get("containers") or []:
        resources = container.get("resources") or {}
        limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
        # Extended resources (domain-prefixed names) must have requests == limits; either may be given.
        for name in {*limits, *requests}:
            if "/" in name:
                totals[name] += _quantity(limits.get(name) or requests.get(name))
    return PodUse(
        namespace=(pod.get("metadata") or {}).get("namespace"),
        node=spec.get("nodeName") or None,
        live=is_live(pod),
        workload=is_workload(pod),
        extended=tuple(sorted((k, v) for k, v in totals.items() if v > 0)),
        selector=tuple(sorted((spec.get("nodeSelector") or {}).items())),
    )


class PodIndex:
    """Live pods' use, by node, kept up to date one pod at a time (`set`, `discard`)."""

    def __init__(self) -> None:
        self.uses: dict[str, PodUse] = {}
        self.on_node: dict[str, Counter] = {}  # node -> extended resource -> requested by live pods
        self.workloads: Counter = Counter()  # node -> live workload pods bound to it
        self.unbound: dict[str, PodUse] = {}  # live pods no node has taken yet

    def __len__(self) -> int:
        return len(self.uses)

    def set(self, key: str, use: PodUse) -> bool:
        """Record `use` for the pod `key`; False when it was already so (nothing to recompute)."""
        before = self.uses.get(key)
        if before == use:
            return False
        if before is not None:
            self._count(key, before, -1)
        self.uses[key] = use
        self._count(key, use, +1)
        return True

    def discard(self, key: str) -> bool:
        before = self.uses.pop(key, None)
        if before is None:
            return False
        self._count(key, before, -1)
        return True

    def _count(self, key: str, use: PodUse, sign: int) -> None:
        if not use.live:
            return
        if use.node is None:
            if sign > 0:
                self.unbound[key] = use
            else:
                self.unbound.pop(key, None)
            return
        totals = self.on_node.setdefault(use.node, Counter())
        for name, count in use.extended:
            totals[name] += sign * count
            if not totals[name]:
                del totals[name]
        if not totals:
            del self.on_node[use.node]
        if use.workload:
            self.workloads[use.node] += sign
            if not self.workloads[use.node]:
                del self.workloads[use.node]


def index_of(pods: Iterable[Mapping]) -> PodIndex:
    index = PodIndex()
    for number, pod in enumerate(pods):
        metadata = pod.get("metadata") or {}
        index.set(f"{metadata.get('namespace')}/{metadata.get('name', number)}#{number}", pod_use(pod))
    return index


def summarize(
    nodes: Iterable[Mapping],
    pods: Iterable[Mapping],
    groups: Iterable[GroupSelector],
    gpus_per_node: Mapping[str, int],
    namespace: str | None = None,
    leaving: frozenset[str] = frozenset(),
) -> dict[str, Capacity]:
    """Capacity per group from plain lists of Node and Pod objects (see `capacity_of`)."""
    return capacity_of(nodes, index_of(pods), groups, gpus_per_node, namespace, leaving)


def capacity_of(
    nodes: Iterable[Mapping],
    index: PodIndex,
    groups: Iterable[GroupSelector],
    gpus_per_node: Mapping[str, int],
    namespace: str | None = None,
    leaving: frozenset[str] = frozenset(),
) -> dict[str, Capacity]:
    """Capacity per group. Pending demand counts only pods of `namespace` (the hub's; None: all);
    nodes in `leaving` (already named for removal) are no longer members."""
    nodes = [n for n in nodes if n["metadata"]["name"] not in leaving]
    unbound = [
        use
        for use in index.unbound.values()
        if namespace is None or use.namespace is None or use.namespace == namespace
    ]
    result = {}
    for group in groups:
        per_node = gpus_per_node.get(group.name, 0)
        layout = group.layout(per_node)
        members = []
        for node in member_nodes(nodes, group):
            name = node["metadata"]["name"]
            allocatable = (node.get("status") or {}).get("allocatable") or {}
            used = index.on_node.get(name) or {}
            by_resource = tuple((r, _quantity(allocatable.get(r)), used.get(r, 0)) for r, _ in layout)
            members.append(
                NodeInfo(
                    name=name,
                    ready=_ready_status(node),
                    allocatable_gpus=sum(a for _, a, _ in by_resource),
                    used_gpus=sum(u for _, _, u in by_resource),
                    workloads=index.workloads.get(name, 0),
                    unschedulable=bool((node.get("spec") or {}).get("unschedulable")),
                    ours_to_remove=REMOVAL_ANNOTATION in (node["metadata"].get("annotations") or {}),
                    server_id=server_id(node),
                    by_resource=by_resource,
                )
            )
        members.sort(key=lambda n: n.name)
        mine = [use for use in unbound if use.selects(group.label, group.name)]
        pending = {
            resource: tuple(sorted((n for use in mine if (n := use.requested(resource))), reverse=True))
            for resource, _ in layout
        }
        requests = tuple(sorted((n for r in pending.values() for n in r), reverse=True))
        ready = [n for n in members if n.ready == "True"]
        booting = sum(1 for n in members if n.booting)
        resources = tuple(
            ResourceCapacity(
                resource=resource,
                per_node=count,
                allocatable=sum(a for n in ready for r, a, _ in n.by_resource if r == resource),
                used=sum(u for n in members for r, _, u in n.by_resource if r == resource),
                free_per_node=tuple(f for n in members if (f := n.free_of(resource))),
                pending_requests=pending[resource],
                booting=count * booting,
            )
            for resource, count in layout
        )
        result[group.name] = Capacity(
            group=group.name,
            nodes=len(members),
            ready_nodes=len(ready),
            allocatable_gpus=sum(n.allocatable_gpus for n in ready),
            used_gpus=sum(n.used_gpus for n in members),
            pending_gpus=sum(requests),
            booting_gpus=per_node * booting,
            gpus_per_node=per_node,
            members=tuple(members),
            pending_requests=requests,
            resources=resources,
        )
    return result

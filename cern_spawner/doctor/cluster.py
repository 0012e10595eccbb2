"""Node groups against the cluster's nodes: does each group have nodes a profile can land on (or a
cloud group that can add them), and do a GPU group's nodes offer their GPUs?

`node_group_verdict` and `gpu_verdict` are pure: facts in, a Result out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..catalog import NodeGroup
from ..catalog.model import in_node_group
from .cloud import CloudGroup
from .result import Result, failed, passed, skipped


@dataclass(frozen=True)
class NodeFacts:
    name: str
    labels: Mapping[str, str]
    allocatable: Mapping[str, str]
    ready: bool
    schedulable: bool


def node_facts(node: dict) -> NodeFacts:
    """From a Node as the API server sends it (JSON)."""
    conditions = node.get("status", {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return NodeFacts(
        name=node["metadata"]["name"],
        labels=node["metadata"].get("labels") or {},
        allocatable=node.get("status", {}).get("allocatable") or {},
        ready=ready,
        schedulable=not node.get("spec", {}).get("unschedulable", False),
    )


async def list_nodes(api_client) -> list[NodeFacts]:
    import json

    from kubernetes_asyncio import client

    response = await client.CoreV1Api(api_client).list_node(_preload_content=False)
    return [node_facts(item) for item in json.loads(await response.read())["items"]]


def members(group: NodeGroup, nodes: Sequence[NodeFacts]) -> list[NodeFacts]:
    return [node for node in nodes if in_node_group(node.labels, group.label, group.name)]


def _names(nodes: Sequence[NodeFacts], limit: int = 5) -> str:
    names = [n.name for n in nodes]
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def node_group_verdict(
    group: NodeGroup,
    profiles: Sequence[str],
    nodes: Sequence[NodeFacts],
    cloud: CloudGroup | None,
    growth_on: bool,
) -> Result:
    """A group passes when a profile's pod can land there now (Ready, schedulable nodes with its
    label) or the hub can grow it (a Magnum node group the cloud knows, min/max fit for its mode)."""
    name = f"node group {group.name}"
    selector = f"{group.label}={group.name}"
    used_by = f"profiles {', '.join(profiles)}" if profiles else "no profile"
    found = members(group, nodes)
    usable = [n for n in found if n.ready and n.schedulable]
    here = (
        f"{len(usable)} usable node{'s' if len(usable) != 1 else ''} labelled {selector}"
        + (f" ({len(found) - len(usable)} not Ready or cordoned)" if len(found) > len(usable) else "")
        + f", for {used_by}"
    )
    scaled = bool(group.scaling and group.scaling.get("cluster"))
    if not scaled:
        if usable:
            return passed(name, here)
        if found:
            return failed(
                name,
                f"nodes labelled {selector} ({_names(found)}) are all not Ready or cordoned: "
                f"{used_by} cannot start",
                f"kubectl describe node {found[0].name}; uncordon or repair the group's nodes",
            )
        return failed(
            name,
            f"no node is labelled {selector}: {used_by} cannot start",
            f"label the group's nodes (kubectl label node NODE {selector}), or correct the group's "
            f"name or its `label` in the catalog (kubectl get nodes -L {group.label} shows the labels)",
        )
    if not growth_on:
        words = f"{here}; GPU growth is off (GPUScaling.openstack_cloud is empty), so the group never grows"
        fix = "set GPUScaling.openstack_cloud (chart: openstack.cloud) and its clouds.yaml"
        return passed(name, words, fix) if usable else failed(name, words, fix)
    if cloud is None:
        return skipped(name, f"{here}; the cloud was not asked (see cloud login)")
    if cloud.error is not None:
        return failed(name, f"{here}; {cloud.error_words}", cloud.fix)
    problems = cloud.problems
    detail = f"{here}; {cloud.summary}"
    hard = [p for p in problems if p.fatal]
    if hard:
        return failed(name, f"{detail}; " + "; ".join(p.text for p in hard), " ".join(p.fix for p in hard))
    if problems:
        return passed(
            name, f"{detail}; " + "; ".join(p.text for p in problems), " ".join(p.fix for p in problems)
        )
    return passed(name, detail)


def gpu_verdict(group: NodeGroup, nodes: Sequence[NodeFacts]) -> Result:
    """Every node of a GPU group advertises what the catalog says it has (`GPU.node_resources`:
    whole GPUs, MIG slices or time-sliced replicas; the device plugin does it once the driver
    works) and, with a MIG layout, carries its nvidia.com/mig.config label."""
    from ..catalog.gpu_sharing import MIG_CONFIG_LABEL

    name = f"GPUs {group.name}"
    assert group.gpu is not None
    expected = group.gpu.node_resources
    found = members(group, nodes)
    if not found:
        return skipped(name, "no nodes yet: checked when the group has some")
    short = [
        f"{node.name} offers {_count(node.allocatable.get(resource))} {resource}"
        for node in found
        for resource, count in expected
        if _count(node.allocatable.get(resource)) < count
    ]
    layout = group.gpu.mig_config
    if layout:
        short += [
            f"{node.name} has {MIG_CONFIG_LABEL}={node.labels.get(MIG_CONFIG_LABEL, '(none)')}"
            for node in found
            if node.labels.get(MIG_CONFIG_LABEL) != layout
        ]
    wanted = ", ".join(f"{count} {resource}" for resource, count in expected)
    if layout:
        wanted += f" ({MIG_CONFIG_LABEL}={layout})"
    if not short:
        nodes_word = "1 node offers" if len(found) == 1 else f"{len(found)} nodes offer"
        return passed(name, f"{nodes_word} {wanted} each")
    return failed(
        name,
        f"the catalog says each node offers {wanted}, but " + ", ".join(short),
        f"check the GPU driver, device plugin and MIG manager on those nodes (kubectl describe node; "
        f"their pods' logs), or correct node_groups.{group.name}.gpu in the catalog",
    )


def _count(quantity: str | None) -> int:
    if not quantity:
        return 0
    try:
        return int(quantity)  # extended resources are whole numbers
    except ValueError:
        return 0

"""The seed's profiles, as plain data, and their mapping to KubeSpawner's ``profile_list``.

This is the starting catalogue until profiles are loaded from YAML; the mapping is pure so it can be
tested without a hub or a cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

# Heat-driver Magnum clusters (CERN) label every node with the name of its node group.
DEFAULT_NODE_GROUP_LABEL = "magnum.openstack.org/nodegroup"
DEFAULT_GPU_RESOURCE = "nvidia.com/gpu"
# Read-only so that it can serve as a default argument without being shared mutable state.
DEFAULT_GPU_TOLERATION: Mapping[str, str] = MappingProxyType(
    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
)

# Labels put on every user pod, so that operators (and the spread constraint) can select by them.
PROFILE_LABEL = "cern-spawner/profile"
NODE_GROUP_LABEL = "cern-spawner/node-group"
ZONE_TOPOLOGY_KEY = "topology.kubernetes.io/zone"

Kind = Literal["shared", "dedicated"]


@dataclass(frozen=True)
class SeedProfile:
    """One profile a user can pick.

    ``shared`` profiles are burstable (guarantees below limits); ``dedicated`` ones get guaranteed QoS
    (requests = limits) and may hold whole GPUs.
    """

    slug: str
    display_name: str
    description: str
    kind: Kind
    cpu_guarantee: float
    cpu_limit: float
    mem_guarantee: str
    mem_limit: str
    gpus: int
    node_group: str
    default: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("shared", "dedicated"):
            raise ValueError(
                f"profile {self.slug!r}: kind must be 'shared' or 'dedicated', not {self.kind!r}"
            )
        if self.gpus < 0:
            raise ValueError(f"profile {self.slug!r}: gpus must not be negative")
        # Guaranteed QoS is what makes a dedicated profile dedicated: never let it drift into burstable.
        if self.kind == "dedicated" and (
            self.cpu_guarantee != self.cpu_limit or self.mem_guarantee != self.mem_limit
        ):
            raise ValueError(f"profile {self.slug!r}: a dedicated profile needs guarantees equal to limits")


SEED_PROFILES: tuple[SeedProfile, ...] = (
    SeedProfile(
        slug="shared-1g",
        display_name="Shared, 1 GB memory, 0.5 CPU core",
        description="For light work: reading notebooks, small analyses. CPU and memory may burst when free.",
        kind="shared",
        cpu_guarantee=0.1,
        cpu_limit=0.5,
        mem_guarantee="512M",
        mem_limit="1G",
        gpus=0,
        node_group="default-worker",
    ),
    SeedProfile(
        slug="shared-2g",
        display_name="Shared, 2 GB memory, 1 CPU core",
        description="For everyday analysis. CPU and memory may burst when free.",
        kind="shared",
        cpu_guarantee=0.2,
        cpu_limit=1,
        mem_guarantee="1G",
        mem_limit="2G",
        gpus=0,
        node_group="default-worker",
        default=True,
    ),
    SeedProfile(
        slug="shared-4g",
        display_name="Shared, 4 GB memory, 2 CPU cores",
        description="For heavier analysis on the shared nodes. CPU and memory may burst when free.",
        kind="shared",
        cpu_guarantee=0.5,
        cpu_limit=2,
        mem_guarantee="2G",
        mem_limit="4G",
        gpus=0,
        node_group="default-worker",
    ),
    SeedProfile(
        slug="gpu-1",
        display_name="Dedicated 1 GPU, 4GB memory, 2 CPU cores",
        description=(
            "One whole NVIDIA V100 GPU with reserved CPU and memory. "
            "If no GPU is free, a GPU node is requested: starting can take several minutes."
        ),
        kind="dedicated",
        cpu_guarantee=2,
        cpu_limit=2,
        mem_guarantee="4G",
        mem_limit="4G",
        gpus=1,
        node_group="gpu-v100",
    ),
)


def _override(
    profile: SeedProfile,
    node_group_label: str,
    gpu_resource: str,
    gpu_toleration: Mapping[str, str],
) -> dict[str, Any]:
    override: dict[str, Any] = {
        "cpu_guarantee": profile.cpu_guarantee,
        "cpu_limit": profile.cpu_limit,
        "mem_guarantee": profile.mem_guarantee,
        "mem_limit": profile.mem_limit,
        "node_selector": {node_group_label: profile.node_group},
        "extra_labels": {PROFILE_LABEL: profile.slug, NODE_GROUP_LABEL: profile.node_group},
    }
    if profile.gpus:
        gpus = {gpu_resource: str(profile.gpus)}
        # GPUs cannot be overcommitted: Kubernetes requires requests = limits for extended resources.
        override["extra_resource_guarantees"] = dict(gpus)
        override["extra_resource_limits"] = dict(gpus)
        # Only GPU pods may land on (tainted) GPU nodes.
        override["tolerations"] = [dict(gpu_toleration)]
    if profile.kind == "shared":
        # Spread shared pods over zones, but never leave one pending for it: a soft constraint.
        override["extra_pod_config"] = {
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": ZONE_TOPOLOGY_KEY,
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": {NODE_GROUP_LABEL: profile.node_group}},
                }
            ]
        }
    return override


def to_profile_list(
    profiles: Iterable[SeedProfile],
    *,
    node_group_label: str = DEFAULT_NODE_GROUP_LABEL,
    gpu_resource: str = DEFAULT_GPU_RESOURCE,
    gpu_toleration: Mapping[str, str] = DEFAULT_GPU_TOLERATION,
) -> list[dict[str, Any]]:
    """Map profiles to KubeSpawner ``profile_list`` entries; a new list of new dicts on every call.

    Raises ValueError on duplicate slugs or unless exactly one profile is the default (KubeSpawner
    would silently pick the first one).
    """
    profiles = tuple(profiles)
    slugs = [p.slug for p in profiles]
    duplicates = sorted({s for s in slugs if slugs.count(s) > 1})
    if duplicates:
        raise ValueError(f"duplicate profile slugs: {', '.join(duplicates)}")
    defaults = [p.slug for p in profiles if p.default]
    if profiles and len(defaults) != 1:
        raise ValueError(f"exactly one profile must be the default, found {len(defaults)}: {defaults}")
    return [
        {
            "display_name": p.display_name,
            "slug": p.slug,
            "description": p.description,
            "default": p.default,
            "kubespawner_override": _override(p, node_group_label, gpu_resource, gpu_toleration),
        }
        for p in profiles
    ]

"""The catalog's immutable data: node groups, profiles, and the problems a broken catalog has."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from ..bounded import Bounded

# Heat-driver Magnum clusters (CERN) label every node with the name of its node group.
DEFAULT_NODE_GROUP_LABEL = "magnum.openstack.org/nodegroup"
DEFAULT_GPU_RESOURCE = "nvidia.com/gpu"


def in_node_group(labels: Mapping[str, str] | None, label: str, name: str) -> bool:
    """Whether a node with these labels belongs to the node group `name` whose nodes carry `label`
    (Magnum's by default): the one membership test of the hub, the scaling and the doctor."""
    return (labels or {}).get(label) == name


Kind = Literal["shared", "dedicated"]


@dataclass(frozen=True)
class CullPolicy:
    """When an idle or old server is stopped, in seconds; 0 means never (see culling/)."""

    idle_timeout: int
    max_age: int


# Built-in defaults per profile kind, used where the catalog's top-level `culling:` says nothing:
# dedicated profiles hold reserved CPUs and GPUs nobody else can use, so they are freed sooner.
DEFAULT_CULLING: Mapping[str, CullPolicy] = MappingProxyType(
    {
        "shared": CullPolicy(idle_timeout=8 * 3600, max_age=0),
        "dedicated": CullPolicy(idle_timeout=3600, max_age=24 * 3600),
    }
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the catalog, located as precisely as the source allows."""

    file: str
    line: int | None
    path: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        text = ": ".join(part for part in (where, self.path, self.message) if part)
        return f"{text} — {self.hint}" if self.hint else text


class CatalogError(Exception):
    """The catalog cannot be used; ``problems`` says every reason found, not just the first."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True, kw_only=True)
class GPU:
    """The GPUs on each node of a group: ``per_node`` of extended resource ``resource``.

    Partitioned: ``mig_slices`` (MIG slices of each node by profile name, "mixed" strategy) or
    ``replicas`` > 1 (time-sliced); see gpu_sharing for the resource names the nodes advertise.
    """

    resource: str = DEFAULT_GPU_RESOURCE
    per_node: int
    product: str | None = None
    mig_slices: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    mig_config: str | None = None  # the nodes' nvidia.com/mig.config label (MIG manager's layout)
    replicas: int = 1  # time-slicing replicas of each GPU; 1: not time-sliced
    rename_by_default: bool = False  # time-sliced GPUs advertised as <resource>.shared

    @property
    def sharing(self) -> Literal["whole", "mig", "time-sliced"]:
        return "mig" if self.mig_slices else "time-sliced" if self.replicas > 1 else "whole"

    @property
    def node_resources(self) -> tuple[tuple[str, int], ...]:
        """(extended resource, count) each node of the group advertises."""
        from .gpu_sharing import mig_resource, shared_resource

        if self.mig_slices:
            return tuple((mig_resource(self.resource, name), n) for name, n in self.mig_slices.items())
        if self.replicas > 1:
            return ((shared_resource(self.resource, self.rename_by_default), self.per_node * self.replicas),)
        return ((self.resource, self.per_node),)

    def requested(self, profile: Profile) -> tuple[str, int] | None:
        """(extended resource, count) a profile on this group puts in its limits; None: no GPU."""
        from .gpu_sharing import mig_resource, shared_resource

        if profile.mig_slice:
            return mig_resource(self.resource, profile.mig_slice), 1
        if profile.shared_gpu:
            return shared_resource(self.resource, self.rename_by_default), 1
        return (self.resource, profile.gpus) if profile.gpus else None


@dataclass(frozen=True, kw_only=True)
class NodeGroup:
    """Nodes labelled ``label=name``; ``zones`` empty means unknown (treated as several)."""

    name: str
    label: str = DEFAULT_NODE_GROUP_LABEL
    zones: tuple[str, ...] = ()
    spread_zones: bool = True
    # "pack" or "spread"; None: pack a GPU group, spread a CPU one (see packs).
    placement: str | None = None
    gpu: GPU | None = None
    # {key, value?, effect}, as in a Kubernetes taint.
    taint: Mapping[str, str] | None = None
    # Schema-checked only; the scaling controller reads it.
    scaling: Mapping[str, Any] | None = None

    @property
    def packs(self) -> bool:
        """Whether pods prefer nodes already running this group's pods (fewer part-used nodes)."""
        return self.placement == "pack" if self.placement else self.gpu is not None


class ImageChoice(NamedTuple):
    name: str
    display_name: str
    image: str


@dataclass(frozen=True, kw_only=True)
class Volume:
    """A profile's extra volume: ``source`` is one of {pvc: {claim_name}}, {csi: {driver,
    volume_attributes?}}, {host_path: {path, type?}}, as written (schema-checked)."""

    name: str
    mount_path: str
    source: Mapping[str, Any]
    read_only: bool = False
    sub_path: str | None = None
    mount_propagation: str | None = None


@dataclass(frozen=True, kw_only=True)
class Profile:
    """One profile users can pick; quantities are already checked (guarantee ≤ limit).

    ``mem_*`` keep the text the admin wrote (e.g. "2G", "1.5Gi", or bytes), CPU is in cores.
    """

    slug: str
    display_name: str
    description: str = ""
    kind: Kind
    cpu_guarantee: float
    cpu_limit: float
    mem_guarantee: str
    mem_limit: str
    gpus: int = 0
    mig_slice: str | None = None  # one MIG slice of this type (e.g. "1g.10gb") instead of whole GPUs
    shared_gpu: bool = False  # one time-sliced share of a GPU instead of whole GPUs
    node_group: str
    image: str | None = None
    image_choices: tuple[ImageChoice, ...] = ()
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    allowed_roles: tuple[str, ...] = ()
    default: bool = False
    start_timeout: int | None = None
    idle_timeout: int | None = None
    # None: the kind's default from the catalog's `culling:`; 0: never.
    max_age: int | None = None
    volumes: tuple[Volume, ...] = ()

    @property
    def gpu_units(self) -> int:
        """Devices the pod holds: whole GPUs, or 1 for a MIG slice or a shared GPU."""
        return 1 if self.mig_slice or self.shared_gpu else self.gpus


@dataclass(frozen=True)
class Catalog:
    """A validated catalog: exactly one profile has ``default`` set (unless there are none)."""

    node_groups: Mapping[str, NodeGroup]
    profiles: tuple[Profile, ...]
    sources: tuple[str, ...] = ()
    # sha256 of the files' contents: a cache key that changes whenever a file does.
    version: str = ""
    # Culling defaults per profile kind (the top-level `culling:` over DEFAULT_CULLING).
    culling: Mapping[str, CullPolicy] = field(default_factory=lambda: DEFAULT_CULLING)
    # Suspicious but usable settings, logged when the catalog is loaded.
    warnings: tuple[Problem, ...] = ()
    # The top-level `quotas:` section as written (read-only, schema-checked; see quota_rules.py),
    # None when absent: read by cern_spawner/quota/.
    quotas: Mapping[str, Any] | None = None

    def profile(self, slug: str) -> Profile | None:
        return self._by_slug.get(slug)

    @cached_property
    def allowed_by_roles(self) -> Bounded[tuple[Profile, ...]]:
        """`access.allowed_profiles`' answers, per role set (the catalog never changes)."""
        return Bounded(max_entries=1024)  # distinct role sets are few, but come from the SSO

    @cached_property
    def _by_slug(self) -> Mapping[str, Profile]:
        # Built at first use (a frozen dataclass still has an instance dict): callers look profiles
        # up once per offered profile, which scanning the tuple made quadratic in the catalog's size.
        # Slugs are unique (the loader refuses duplicates); the first wins if a caller built one without.
        index: dict[str, Profile] = {}
        for profile in self.profiles:
            index.setdefault(profile.slug, profile)
        return MappingProxyType(index)

    @property
    def default_profile(self) -> Profile | None:
        return next((p for p in self.profiles if p.default), self.profiles[0] if self.profiles else None)

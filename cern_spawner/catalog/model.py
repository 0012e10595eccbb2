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
    """The GPUs on each node of a group: ``per_node`` of extended resource ``resource``."""

    resource: str = DEFAULT_GPU_RESOURCE
    per_node: int
    product: str | None = None


@dataclass(frozen=True, kw_only=True)
class NodeGroup:
    """Nodes labelled ``label=name``; ``zones`` empty means unknown (treated as several)."""

    name: str
    label: str = DEFAULT_NODE_GROUP_LABEL
    zones: tuple[str, ...] = ()
    spread_zones: bool = True
    gpu: GPU | None = None
    # {key, value?, effect}, as in a Kubernetes taint.
    taint: Mapping[str, str] | None = None
    # Schema-checked only; the scaling controller reads it.
    scaling: Mapping[str, Any] | None = None


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

"""What the admin page shows, as a frozen view built from plain facts (no I/O, clocks passed in).

`build_view` takes the catalog stores' states, the scaling controller's group statuses and the
running servers (`ServerFacts`, read from the hub by the handler) and returns an `AdminView` whose
fields the template prints as they are: times and durations are already words, so the template
holds no logic and every value is escaped by Jinja's autoescape.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..catalog import Catalog

EVENTS_SHOWN = 10  # per node group, newest first


@dataclass(frozen=True)
class ServerFacts:
    """One active server as the hub knows it (times in Unix seconds; None: not known)."""

    user: str
    server: str  # "" for the default server
    profile: str  # the catalog slug asked for ("" when none)
    started: float | None
    last_activity: float | None
    ready: bool
    node: str = ""  # the Kubernetes node its pod is on ("" while unscheduled)


@dataclass(frozen=True)
class CatalogRow:
    paths: tuple[str, ...]
    version: str  # first 12 characters of the digest
    applied_at: str  # "2026-12-03 21:05:12 UTC"
    profiles: int
    node_groups: int
    refused_since: str  # "" when no edit is refused
    problems: tuple[str, ...]  # file:line: path: message — hint


@dataclass(frozen=True)
class Event:
    at: str  # "21:05:12 UTC (3 min ago)"
    message: str


@dataclass(frozen=True)
class GroupRow:
    name: str
    gpu: str  # "4 × NVIDIA-A100 per node", or "" for a CPU group
    scaling: str  # "resize, 0–4 nodes", or "not scaled by the hub"
    watched: bool  # the hub's GPU growth watches its nodes: the counts below are known
    nodes: int = 0
    ready_nodes: int = 0
    gpus_total: int = 0
    gpus_used: int = 0
    gpus_free: int = 0
    gpus_pending: int = 0
    cloud: str = ""  # "UPDATE_IN_PROGRESS: 2 nodes (min 0, max 4), read 3 s ago", or ""
    cloud_reason: str = ""
    problem: str = ""  # why waiting users are not served (and the detail), or ""
    servers: int = 0  # active servers of the hub on this group's profiles
    events: tuple[Event, ...] = ()


@dataclass(frozen=True)
class ServerRow:
    user: str
    server: str
    profile: str  # display name (slug), or the slug alone when no longer in the catalog
    gpus: int
    node_group: str
    node: str
    state: str  # "running" | "starting"
    age: str
    idle: str
    age_seconds: float
    idle_seconds: float | None


@dataclass(frozen=True)
class AdminView:
    generated_at: str
    catalogs: tuple[CatalogRow, ...]
    gpu_growth: bool  # a scaling controller runs in this hub
    groups: tuple[GroupRow, ...]
    gpu_servers: tuple[ServerRow, ...]
    other_servers: int  # active servers without GPUs


# -- words for times -------------------------------------------------------------------------------
def duration(seconds: float | None) -> str:
    """'45 s', '12 min', '3 h 05 min', '2 d 4 h'; '—' when unknown."""
    if seconds is None:
        return "—"
    seconds = max(int(seconds), 0)
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def moment(at: float, now: float) -> str:
    """'2026-12-03 21:05:12 UTC (3 min ago)'."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))
    return f"{stamp} ({duration(now - at)} ago)"


# -- the view --------------------------------------------------------------------------------------
def catalog_row(status: Mapping, now: float) -> CatalogRow:
    """A row from `CatalogStore.status()`."""
    refused = status.get("refused_edit") or {}
    return CatalogRow(
        paths=tuple(status["paths"]),
        version=status["version"][:12],
        applied_at=moment(status["loaded_at"], now),
        profiles=len(status["profiles"]),
        node_groups=len(status["node_groups"]),
        refused_since=moment(refused["since"], now) if refused else "",
        problems=tuple(refused.get("problems", ())),
    )


def group_row(
    catalog: Catalog, name: str, status, servers: int, now: float, monotonic_now: float
) -> GroupRow:
    """A node group of the catalog, with what the controller knows of it (`status`: its
    `GroupStatus`, None when the hub does not scale the group)."""
    group = catalog.node_groups[name]
    gpu = ""
    if group.gpu is not None:
        gpu = f"{group.gpu.per_node} × {group.gpu.product or group.gpu.resource} per node"
    scaling = group.scaling or {}
    if scaling.get("cluster"):
        span = f"{scaling.get('min_nodes', 0)}–{scaling.get('max_nodes', 0)} nodes"
        words = f"{scaling.get('mode', 'resize')}, {span} (cluster {scaling['cluster']})"
    else:
        words = "not scaled by the hub"
    if status is None or status.capacity is None:
        return GroupRow(name=name, gpu=gpu, scaling=words, watched=False, servers=servers)
    capacity, cloud = status.capacity, status.cloud
    cloud_words = ""
    if cloud is not None:
        maximum = "none" if cloud.max_nodes is None else cloud.max_nodes
        cloud_words = f"{cloud.status}: {cloud.node_count} nodes (min {cloud.min_nodes}, max {maximum})"
        if status.cloud_at is not None:
            cloud_words += f", read {duration(monotonic_now - status.cloud_at)} ago"
    problem = ""
    if status.blocker is not None:
        problem = status.blocker.user_message + (
            f" ({status.blocker.detail})" if status.blocker.detail else ""
        )
    elif status.retrying_since is not None:
        problem = (
            f"The cloud has been failing for {duration(monotonic_now - status.retrying_since)}; retrying."
        )
    history = getattr(status, "history", None) or [(None, message) for message in status.events]
    events = tuple(
        Event(at=moment(at, now) if at is not None else "", message=message)
        for at, message in reversed(history[-EVENTS_SHOWN:])
    )
    return GroupRow(
        name=name,
        gpu=gpu,
        scaling=words,
        watched=True,
        nodes=capacity.nodes,
        ready_nodes=capacity.ready_nodes,
        gpus_total=capacity.allocatable_gpus,
        gpus_used=capacity.used_gpus,
        gpus_free=capacity.free_gpus,
        gpus_pending=capacity.pending_gpus,
        cloud=cloud_words,
        cloud_reason=cloud.status_reason if cloud is not None else "",
        problem=problem,
        servers=servers,
        events=events,
    )


def server_row(facts: ServerFacts, catalog: Catalog | None, now: float) -> ServerRow:
    profile = catalog.profile(facts.profile) if catalog is not None and facts.profile else None
    name = f"{profile.display_name} ({profile.slug})" if profile else facts.profile or "—"
    age = now - facts.started if facts.started is not None else 0.0
    idle = now - facts.last_activity if facts.last_activity is not None else None
    return ServerRow(
        user=facts.user,
        server=facts.server,
        profile=name,
        gpus=profile.gpus if profile else 0,
        node_group=profile.node_group if profile else "",
        node=facts.node,
        state="running" if facts.ready else "starting",
        age=duration(age),
        idle=duration(idle),
        age_seconds=age,
        idle_seconds=idle,
    )


def build_view(
    catalogs: Iterable[tuple[Mapping, Catalog]],
    statuses: Mapping[str, object] | None,
    servers: Iterable[ServerFacts],
    *,
    now: float,
    monotonic_now: float,
) -> AdminView:
    """`catalogs`: (CatalogStore.status(), its catalog) per store; `statuses`: the controller's
    GroupStatus per scaled group (None: no GPU growth in this hub)."""
    catalogs = list(catalogs)
    catalog = catalogs[0][1] if catalogs else None  # a hub serves one catalog (one store per path set)
    rows = [server_row(facts, catalog, now) for facts in servers]
    gpu_rows = sorted(
        (row for row in rows if row.gpus),
        key=lambda row: (row.node_group, -(row.idle_seconds or 0.0), row.user, row.server),
    )
    per_group: dict[str, int] = {}
    for row in rows:
        per_group[row.node_group] = per_group.get(row.node_group, 0) + 1
    groups = ()
    if catalog is not None:
        groups = tuple(
            group_row(catalog, name, (statuses or {}).get(name), per_group.get(name, 0), now, monotonic_now)
            for name in sorted(catalog.node_groups)
        )
    return AdminView(
        generated_at=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now)),
        catalogs=tuple(catalog_row(status, now) for status, _ in catalogs),
        gpu_growth=statuses is not None,
        groups=groups,
        gpu_servers=tuple(gpu_rows),
        other_servers=len(rows) - len(gpu_rows),
    )

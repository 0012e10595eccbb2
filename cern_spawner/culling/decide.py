"""Which servers to stop now, and which to warn about: a frozen view in, decisions out, no I/O.

A server is due when it has been idle for its profile's `idle_timeout`, or is older than its
`max_age` — but never while it shows recent activity (`recent` seconds): past its max_age it stops
at its first quiet moment. Times come from JupyterHub's activity data (the proxy's and the
server's reports), so "idle" is as fine as those reports (by default every 5 minutes).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from ..catalog.culling import policy_for
from ..catalog.model import Catalog

Reason = Literal["idle", "max_age"]


@dataclass(frozen=True)
class Server:
    """One running server as the hub reports it; `profile` is the slug it was started with (None:
    unknown). Times are timezone-aware UTC."""

    user: str
    name: str  # "" for the default server
    profile: str | None
    last_activity: datetime | None
    started: datetime | None
    ready: bool = True


@dataclass(frozen=True)
class Due:
    """When `server` will be stopped and why; `at` ≤ now means now."""

    server: Server
    at: datetime
    reason: Reason
    profile: str  # the slug for metrics ("unknown" when the catalog no longer has it)
    gpu: bool  # the profile's node group has GPUs
    timeout: int  # the idle_timeout or max_age that applies, in seconds

    def seconds_left(self, now: datetime) -> int:
        return max(0, int((self.at - now).total_seconds()))


def due(server: Server, catalog: Catalog, *, recent: float) -> Due | None:
    """When the server will be stopped if nothing happens, or None (never, or starting/stopping)."""
    if not server.ready or server.started is None:
        return None
    profile = catalog.profile(server.profile or "")
    policy = policy_for(catalog, profile)
    active = server.last_activity or server.started
    candidates: list[tuple[datetime, Reason, int]] = []
    if policy.idle_timeout:
        candidates.append((active + timedelta(seconds=policy.idle_timeout), "idle", policy.idle_timeout))
    if policy.max_age:
        aged = server.started + timedelta(seconds=policy.max_age)
        candidates.append((max(aged, active + timedelta(seconds=recent)), "max_age", policy.max_age))
    if not candidates:
        return None
    at, reason, timeout = min(candidates, key=lambda c: c[0])
    return Due(
        server,
        at,
        reason,
        profile.slug if profile else "unknown",
        profile is not None and _has_gpus(catalog, profile.node_group),
        timeout,
    )


def _has_gpus(catalog: Catalog, group: str) -> bool:
    node_group = catalog.node_groups.get(group)
    return node_group is not None and node_group.gpu is not None


def to_cull(servers: Iterable[Server], catalog: Catalog, now: datetime, *, recent: float) -> list[Due]:
    """The servers due now, oldest deadline first. A server active within `recent` seconds is never
    among them, whatever its timeouts (a clock skew or a short idle_timeout cannot stop a busy one)."""
    found = []
    for server in servers:
        when = due(server, catalog, recent=recent)
        active = server.last_activity or server.started
        if (
            when is not None
            and when.at <= now
            and active is not None
            and (now - active).total_seconds() >= recent
        ):
            found.append(when)
    return sorted(found, key=lambda d: d.at)


def notices(
    servers: Iterable[Server], catalog: Catalog, now: datetime, *, warn_before: float, recent: float
) -> list[Due]:
    """The servers that will be stopped within `warn_before` seconds, soonest first."""
    found = []
    for server in servers:
        when = due(server, catalog, recent=recent)
        if when is not None and (when.at - now).total_seconds() <= warn_before:
            found.append(when)
    return sorted(found, key=lambda d: d.at)


def message(notice: Due, now: datetime) -> str:
    """What the user reads, plain text (templates and JSON escape it)."""
    what = "GPU server" if notice.gpu else "server"
    name = f"{what} '{notice.server.name}'" if notice.server.name else f"{what}"
    when = _minutes(notice.seconds_left(now))
    if notice.reason == "idle":
        return f"Your {name} will be stopped {when} for inactivity; open it or click Keep to keep it."
    return (
        f"Your {name} reached its maximum age ({_hours(notice.timeout)}) and will be stopped {when}, "
        "at its first quiet moment; save your work. Keep postpones it while you work."
    )


def _minutes(seconds: int) -> str:
    if seconds < 60:
        return "in less than a minute"
    minutes = round(seconds / 60)
    return f"in {minutes} min"


def _hours(seconds: int) -> str:
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds // 60} min"

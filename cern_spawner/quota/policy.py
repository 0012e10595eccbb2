"""The catalog's `quotas:` section as frozen limits, and which limits apply to a user. Pure.

Rules (docs/admin/quotas.md):
- `roles` maps a role (a JupyterHub group: single sign-on roles become groups at login) to limits;
  a user holding several listed roles gets the most generous of them, limit by limit (the highest
  `gpus` of any of them and the highest `gpu_hours`; a limit a role leaves out is unlimited for it);
- `default` applies to users holding none of the listed roles; without it they are unlimited;
- an admin's override for one user replaces the limits it names, until it expires.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

DEFAULT_WINDOW = "7d"
DEFAULT_ROLE = "default"  # the label of users holding no listed role (metrics, logs)
_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
WINDOW_PATTERN = re.compile(r"^([1-9][0-9]*)([mhdw])$")


def parse_window(text: str) -> int:
    """'7d' → seconds; units m, h, d, w. The schema allows only this form."""
    match = WINDOW_PATTERN.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 7d, 24h or 90m")
    return int(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class Limits:
    """None means unlimited."""

    gpus: int | None = None  # GPUs held at once, over all the user's servers
    gpu_hours: float | None = None  # GPU-hours used within the rolling window

    @property
    def unlimited(self) -> bool:
        return self.gpus is None and self.gpu_hours is None


def _higher(a, b):
    return None if a is None or b is None else max(a, b)


def most_generous(limits: Iterable[Limits]) -> Limits | None:
    """Limit by limit, the highest (unlimited beats any number); None for no limits at all."""
    found = None
    for item in limits:
        if found is None:
            found = item
        else:
            found = Limits(_higher(found.gpus, item.gpus), _higher(found.gpu_hours, item.gpu_hours))
    return found


@dataclass(frozen=True)
class QuotaPolicy:
    window: int  # seconds
    default: Limits = Limits()
    roles: Mapping[str, Limits] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Override:
    """An admin's limits for one user; None keeps the role's limit. `expires` in epoch seconds."""

    gpus: int | None = None
    gpu_hours: float | None = None
    expires: float | None = None
    reason: str = ""
    set_by: str = ""
    set_at: float | None = None

    def active(self, now: float) -> bool:
        return self.expires is None or now < self.expires


def _limits(data: Mapping[str, Any] | None) -> Limits:
    data = data or {}
    hours = data.get("gpu_hours")
    return Limits(gpus=data.get("gpus"), gpu_hours=None if hours is None else float(hours))


def _policy(raw: Mapping[str, Any]) -> QuotaPolicy:
    return QuotaPolicy(
        window=parse_window(raw.get("window", DEFAULT_WINDOW)),
        default=_limits(raw.get("default")),
        roles=MappingProxyType({role: _limits(data) for role, data in (raw.get("roles") or {}).items()}),
    )


def policy_of(catalog) -> QuotaPolicy | None:
    """The catalog's quota policy, or None when it has no `quotas:` section (nobody is limited)."""
    raw = getattr(catalog, "quotas", None)
    if raw is None:
        return None
    # Asked at every form and start: kept per section (a catalog's is immutable; the entry holds it,
    # so its id is not reused while kept).
    hit = _policies.get(id(raw))
    if hit is None or hit[0] is not raw:
        if len(_policies) >= 16:
            _policies.clear()
        hit = _policies[id(raw)] = (raw, _policy(raw))
    return hit[1]


_policies: dict[int, tuple[Mapping, QuotaPolicy]] = {}


def role_limits(policy: QuotaPolicy, roles: Iterable[str]) -> tuple[Limits, str]:
    """The limits of a user holding `roles`, and the label they are counted under in metrics:
    the listed role that gave them (the first in name order if several), else "default"."""
    held = sorted(set(roles) & set(policy.roles))
    if not held:
        return policy.default, DEFAULT_ROLE
    return most_generous(policy.roles[role] for role in held), held[0]


def effective_limits(
    policy: QuotaPolicy, roles: Iterable[str], override: Override | None, now: float
) -> tuple[Limits, str]:
    """`role_limits`, with the limits an active override names replacing the role's."""
    limits, label = role_limits(policy, roles)
    if override is None or not override.active(now):
        return limits, label
    return (
        Limits(
            gpus=limits.gpus if override.gpus is None else override.gpus,
            gpu_hours=limits.gpu_hours if override.gpu_hours is None else override.gpu_hours,
        ),
        label,
    )

"""The catalog's top-level ``quotas:`` section (GPU limits per role, see docs/profiles.md) and the
checks the schema cannot make. The quota package (cern_spawner/quota/) reads the section as kept
here; nothing here does I/O.

- the section is written in one file only (an error otherwise: two files' limits would silently mix);
- warnings, not errors (the catalog still loads): a role no profile's ``allowed_roles`` names (roles
  are JupyterHub groups, so a typo limits nobody), and a role given less than ``default`` (users
  holding it would get less than users holding no listed role).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from ..logsafe import did_you_mean
from .model import Problem
from .source import Document


def quota_section(
    docs: Iterable[Document],
) -> tuple[Mapping[str, Any] | None, Document | None, list[Problem]]:
    """The ``quotas:`` section (read-only), the file it is in, and the problems (set twice)."""
    found: Document | None = None
    problems: list[Problem] = []
    for doc in docs:
        if "quotas" not in doc.data:
            continue
        if found is not None:
            problems.append(
                doc.problem(
                    ("quotas",),
                    f"quotas is also set in {found.file}:{found.line_of(('quotas',))}",
                    "set the quotas section in one file only",
                )
            )
            continue
        found = doc
    if found is None:
        return None, None, problems
    return _frozen(found.data["quotas"] or {}), found, problems


def quota_warnings(
    section: Mapping[str, Any] | None, doc: Document | None, profiles: Iterable
) -> list[Problem]:
    """Suspicious but usable quota settings; `profiles` are the catalog's profile entries (with `.data`)."""
    if section is None or doc is None:
        return []
    known = sorted({role for entry in profiles for role in entry.data.get("allowed_roles", ())})
    default = section.get("default") or {}
    found: list[Problem] = []
    for role, limits in (section.get("roles") or {}).items():
        at = ("quotas", "roles", role)
        if role not in known:
            hint = did_you_mean(role, known) or (
                f"Roles named by profiles: {', '.join(known)}." if known else "No profile names any role."
            )
            found.append(
                doc.problem(
                    at,
                    f"role {role!r} is not in any profile's allowed_roles",
                    f"{hint} Fine if it is a single sign-on role used only for quotas.",
                )
            )
        for key in ("gpus", "gpu_hours"):
            mine, base = (limits or {}).get(key), default.get(key)
            if base is not None and mine is not None and mine < base:
                found.append(
                    doc.problem(
                        (*at, key),
                        f"role {role!r} gets {_amount(key, mine)}, less than default's {_amount(key, base)}",
                        "default applies only to users holding no listed role: "
                        "its users would get more than this role's",
                    )
                )
    return found


def _amount(key: str, value: float) -> str:
    if key == "gpus":
        return f"{value} GPU at once" if value == 1 else f"{value} GPUs at once"
    return f"{value:g} GPU-hours"


def _frozen(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({key: _frozen(item) for key, item in value.items()})
    return copy.deepcopy(value)

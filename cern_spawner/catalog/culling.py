"""The catalog's culling settings: defaults per profile kind (top-level ``culling:``) over the built-in
ones, each profile's own ``idle_timeout``/``max_age`` over its kind's, and the checks on them.

Seconds throughout; 0 (or null in YAML) means never. The hub's culler (cern_spawner/culling/) reads
`policy_for(catalog, profile)`; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from .model import DEFAULT_CULLING, Catalog, CullPolicy, Problem, Profile
from .semantics import Entry
from .source import Document

FIELDS = ("idle_timeout", "max_age")


def seconds(data: Mapping, key: str, default: int | None) -> int | None:
    """`key` as written: absent → `default`, null → 0 (never)."""
    if key not in data:
        return default
    return data[key] or 0


def culling_defaults(
    docs: Iterable[Document],
) -> tuple[Mapping[str, CullPolicy], dict[str, Entry], list[Problem]]:
    """The kinds' defaults (each kind set in one file at most, its unset fields the built-in ones),
    where each kind was set, and the problems (a kind set twice)."""
    defaults = dict(DEFAULT_CULLING)
    where: dict[str, Entry] = {}
    problems: list[Problem] = []
    for doc in docs:
        for kind, data in (doc.data.get("culling") or {}).items():
            entry = Entry(doc, ("culling", kind), data or {})
            if kind in where:
                problems.append(
                    entry.problem(
                        (),
                        f"culling.{kind} is also set in {where[kind].where()}",
                        "set each kind's culling in one file only",
                    )
                )
                continue
            where[kind] = entry
            base = DEFAULT_CULLING[kind]
            defaults[kind] = CullPolicy(
                idle_timeout=seconds(entry.data, "idle_timeout", base.idle_timeout),
                max_age=seconds(entry.data, "max_age", base.max_age),
            )
    return MappingProxyType(defaults), where, problems


def culling_warnings(
    profiles: Iterable[Entry], defaults: Mapping[str, CullPolicy], kinds: Mapping[str, Entry]
) -> tuple[Problem, ...]:
    """Settings that load but are probably mistakes: a max_age shorter than the idle timeout (the
    idle timeout can then never apply), and dedicated (GPU) servers kept idle longer than shared ones."""
    found = [
        w for kind, entry in kinds.items() for w in _suspicious(entry, defaults[kind], f"culling.{kind}")
    ]
    for entry in profiles:
        data = entry.data
        if not any(key in data for key in FIELDS):
            continue
        base = defaults[data["kind"]]
        policy = CullPolicy(
            idle_timeout=seconds(data, "idle_timeout", base.idle_timeout),
            max_age=seconds(data, "max_age", base.max_age),
        )
        found += _suspicious(entry, policy, f"profile {data['slug']!r}")
    shared, dedicated = defaults["shared"], defaults["dedicated"]
    at = kinds.get("dedicated") or kinds.get("shared")
    if at is not None and _never_or_longer(dedicated.idle_timeout, shared.idle_timeout):
        found.append(
            at.problem(
                (),
                f"dedicated (GPU) servers are kept idle {_words(dedicated.idle_timeout)}, "
                f"shared ones {_words(shared.idle_timeout)}",
                "idle GPUs are paid for and kept from others: "
                "give dedicated profiles the shorter idle_timeout",
            )
        )
    return tuple(found)


def _suspicious(entry: Entry, policy: CullPolicy, what: str) -> list[Problem]:
    if policy.max_age and policy.idle_timeout and policy.max_age < policy.idle_timeout:
        key = "max_age" if "max_age" in entry.data else "idle_timeout"
        return [
            entry.problem(
                (key,),
                f"{what}: max_age {policy.max_age} s is shorter than idle_timeout {policy.idle_timeout} s, "
                "so the idle timeout never applies",
                "make max_age longer than idle_timeout, or set idle_timeout: 0 (never)",
            )
        ]
    return []


def _never_or_longer(a: int, b: int) -> bool:
    """Timeout `a` is later than `b` (0 is never, the latest)."""
    return bool(b) and (not a or a > b)


def _words(timeout: int) -> str:
    return "for ever" if not timeout else f"up to {timeout} s"


def policy_for(catalog: Catalog, profile: Profile | None) -> CullPolicy:
    """The profile's culling: its own fields over its kind's defaults. A server whose profile is no
    longer in the catalog (`None`) gets the shared defaults, the most lenient unless an admin says
    otherwise: we do not know what it holds."""
    if profile is None:
        return catalog.culling["shared"]
    base = catalog.culling[profile.kind]
    return CullPolicy(
        idle_timeout=base.idle_timeout if profile.idle_timeout is None else profile.idle_timeout,
        max_age=base.max_age if profile.max_age is None else profile.max_age,
    )

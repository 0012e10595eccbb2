"""What CERNSpawner calls: `check` before a start creates anything, `started` once its server runs,
`stopped` at every stop, and `card_notes` for the picker. Accounting needs the hub's database
(our own session on it: `quota_session`); a spawner built without one (unit tests) accounts nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from ..errors import Refused, UserFacingError
from ..web.cards import CARD_KEY
from .database import quota_session
from .decision import Verdict, card_line, decide
from .ledger import Ledger
from .metrics import GPU_HOURS, REFUSALS
from .policy import DEFAULT_ROLE, Limits, QuotaPolicy, effective_limits, policy_of
from .usage import GpuSession

clock: Callable[[], float] = time.time  # wall-clock epoch seconds; tests replace it


class QuotaRefused(Refused):
    """A GPU server start over the user's quota (403)."""

    def __init__(self, message: str):
        super().__init__(403, message)


@dataclass(frozen=True)
class Standing:
    """A user's quota now: the window, the limits that apply, the sessions within the window."""

    window: int
    limits: Limits
    role: str
    sessions: list[GpuSession]
    pending_gpus: int  # asked by the user's other starts still in flight

    def verdict(self, server: str, gpus: int, now: float) -> Verdict:
        return decide(
            self.limits,
            self.sessions,
            gpus=gpus,
            now=now,
            window=self.window,
            server=server,
            pending_gpus=self.pending_gpus,
        )


async def standing(spawner, db, policy: QuotaPolicy, now: float) -> Standing | None:
    """`spawner`'s user's quota standing, read through `db`; None when no limit applies to them."""
    ledger = Ledger(db)
    user = spawner.user
    limits, role = effective_limits(policy, await spawner.user_roles(), ledger.override(user.name), now)
    if limits.unlimited:
        return None
    # Other starts of the same user in flight hold no session yet: count what they asked for.
    pending = 0
    for other in user.spawners.values():
        plan = getattr(getattr(other, "spawn_state", None), "plan", None)
        if other is not spawner and other._spawn_pending and plan is not None:
            pending += plan.gpus
    return Standing(policy.window, limits, role, ledger.sessions(user.name, now - policy.window), pending)


async def check(spawner, plan) -> None:
    """Refuse (403) a GPU start over quota; nothing is created yet when it is called."""
    if plan is None or not plan.gpus:
        return
    db = quota_session(spawner)
    policy = policy_of(spawner.catalog_store.current()) if db is not None else None
    if policy is None:
        return
    now = clock()
    try:
        found = await standing(spawner, db, policy, now)
    except SQLAlchemyError as e:
        db.rollback()  # the session is shared: leave it usable
        spawner.log.error("GPU quota of %s could not be read: %s", spawner._log_name, e)
        raise UserFacingError(
            503, "Your GPU quota could not be checked just now; try again in a minute."
        ) from e
    if found is None:
        return
    verdict = found.verdict(spawner.name, plan.gpus, now)
    if not verdict.allowed:
        REFUSALS.labels(role=found.role, limit=verdict.limit).inc()
        spawner.log.warning(
            "Refused %r for %s over GPU quota (%s, role %r): %s",
            plan.slug,
            spawner._log_name,
            verdict.limit,
            found.role,
            verdict.message,
        )
        raise QuotaRefused(verdict.message)


async def card_notes(spawner, offered: list[dict]) -> dict[str, dict]:
    """The picker's quota line per GPU profile of `offered` (slug → {text, disabled, reason}); empty
    when no limit applies. A database error shows no line: the start is checked anyway."""
    asking = {entry["slug"]: (entry.get(CARD_KEY) or {}).get("gpus", 0) for entry in offered}
    asking = {slug: gpus for slug, gpus in asking.items() if gpus}
    db = quota_session(spawner) if asking else None
    policy = policy_of(spawner.catalog_store.current()) if db is not None else None
    if policy is None:
        return {}
    now = clock()
    try:
        found = await standing(spawner, db, policy, now)
    except SQLAlchemyError:
        db.rollback()
        spawner.log.exception("GPU quota of %s not shown on the form", spawner._log_name)
        return {}
    if found is None:
        return {}
    notes = {}
    for slug, gpus in asking.items():
        verdict = found.verdict(spawner.name, gpus, now)
        notes[slug] = {
            "text": card_line(verdict, found.window),
            "disabled": not verdict.allowed,
            "reason": verdict.message,
        }
    return notes


async def started(spawner, plan, *, only_if_missing: bool = False, at: float | None = None) -> None:
    """A GPU server runs: its session begins (every GPU server, quotas or not: the history is
    there when quotas are turned on). `only_if_missing`: after a hub restart, keep the open one.
    `at`: when it began (epoch seconds), if not now."""
    if plan is None or not plan.gpus:
        return
    db = quota_session(spawner)
    if db is None:
        return
    try:
        ledger = Ledger(db)
        name = spawner.user.name
        if only_if_missing and ledger.is_open(name, spawner.name):
            return
        policy = policy_of(spawner.catalog_store.current())
        role = DEFAULT_ROLE
        if policy is not None:
            _, role = effective_limits(policy, await spawner.user_roles(), None, clock())
        ledger.open(name, spawner.name, plan.slug, plan.gpus, role, clock() if at is None else at)
    except SQLAlchemyError:
        db.rollback()
        # The server runs either way; the log says whose use went uncounted.
        spawner.log.exception("GPU session of %s not recorded", spawner._log_name)


def stopped(spawner) -> None:
    """The server stopped (or never started): its open session, if any, ends now."""
    db = quota_session(spawner) if spawner.user is not None else None
    if db is None:
        return
    try:
        for role, hours in Ledger(db).close(spawner.user.name, spawner.name, clock()):
            GPU_HOURS.labels(role=role or DEFAULT_ROLE).inc(hours)
    except SQLAlchemyError:
        db.rollback()
        spawner.log.exception("End of the GPU session of %s not recorded", spawner._log_name)

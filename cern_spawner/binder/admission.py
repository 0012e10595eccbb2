"""Whether a new build pod may start, and under which name: pure decisions plus the hub's lock.

Two limits: `per_user_build_limit` (builds one user started that still run) and
`max_concurrent_builds` (all build pods of the namespace). Counting and creating happen under one
asyncio lock per event loop (the hub's), so two launches of this hub cannot both see room for one.
Build pods are named per user slot (`binder-build-<user key>-<slot>`, slots 0..limit-1): a second
hub process racing this one gets 409 Conflict from the API server on the same name, so the per-user
limit holds across processes too. The global cap is counted under the lock only (one hub process,
as JupyterHub runs).
"""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import BinderRefused

IMAGE_LABEL = "cern-spawner.cern.ch/build-image"
_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def image_key(image: str) -> str:
    """sha256(image)[:20]: a label value naming the image a build pod builds."""
    return hashlib.sha256(image.encode()).hexdigest()[:20]


def slot_pod_name(user: str, slot: int) -> str:
    """`binder-build-<sha256(user)[:16]>-<slot>`: DNS-safe, the same in every hub process."""
    return f"binder-build-{hashlib.sha256(user.encode()).hexdigest()[:16]}-{slot}"


def admission_lock() -> asyncio.Lock:
    """The lock held around count + create, one per event loop (asyncio locks bind to a loop)."""
    loop = asyncio.get_running_loop()
    lock = _LOCKS.get(loop)
    if lock is None:
        lock = _LOCKS[loop] = asyncio.Lock()
    return lock


@dataclass(frozen=True)
class Seen:
    """A build pod as admission needs it."""

    name: str
    live: bool  # not finished and not being deleted
    mine: bool  # started by the launching user


@dataclass(frozen=True)
class Slot:
    name: str
    stale: bool  # held by a finished pod, to be removed before the name can be used


def refusal(own_live: int, all_live: int, per_user: int, total: int) -> BinderRefused | None:
    """The 429 for a launch over a limit, or None when a build may start."""
    if own_live >= per_user:
        return BinderRefused(
            429,
            f"You already have {own_live} image build{'s' if own_live != 1 else ''} running; "
            "wait for them to finish, then try again.",
        )
    if all_live >= total:
        return BinderRefused(
            429,
            f"The hub is already running as many image builds as it allows at once ({all_live}); "
            "try again in a few minutes.",
        )
    return None


def choose_slot(user: str, per_user: int, pods: Iterable[Seen], total: int) -> Slot | BinderRefused:
    """The slot a new build of `user` takes: a free name first, else one held by a finished pod;
    a 429 when a limit is reached or every slot is taken by a running build."""
    pods = list(pods)
    own_live = sum(1 for p in pods if p.live and p.mine)
    refused = refusal(own_live, sum(1 for p in pods if p.live), per_user, total)
    if refused:
        return refused
    by_name = {p.name: p for p in pods}
    names = [slot_pod_name(user, slot) for slot in range(per_user)]
    for name in names:
        if name not in by_name:
            return Slot(name, stale=False)
    for name in names:
        if not by_name[name].live:
            return Slot(name, stale=True)
    # Every slot runs a build although fewer count as this user's (a label edited by hand):
    # the names, not the count, are what the API server enforces.
    return refusal(per_user, 0, per_user, total)

"""One smoke round: start each profile as the smoke user, wait for its server to answer, stop it.

Plain async functions over a small `Hub` interface (hub.py talks to the real REST API; tests pass a
fake), with the clock and the sleep injected. A failed profile never stops the round: each row says
what happened to its profile, and the round goes on.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from ..waiting import until

# Results, worst last: what the table shows and what the exit code is made of.
READY = "ready"  # started, answered through the proxy, stopped
REFUSED = "refused"  # the hub said no (a 4xx: profile not offered to the smoke user, quota...)
FAILED = "failed"  # the spawn failed (the hub's message says why)
TIMEOUT = "timeout"  # not ready within the profile's time
NO_ANSWER = "no-answer"  # ready, but its URL did not answer through the proxy
NOT_STOPPED = "not-stopped"  # everything else went well, but the server did not stop
RESULTS = (READY, REFUSED, FAILED, TIMEOUT, NO_ANSWER, NOT_STOPPED)

# KubeSpawner's scheduling event, kept in the progress events' details ("Scheduled: …").
_ASSIGNED = re.compile(r"Successfully assigned \S+/\S+ to (\S+)")


@dataclass(frozen=True)
class Row:
    profile: str
    result: str
    seconds_to_ready: float | None  # from the start request to the server answering
    node: str | None  # where its pod ran, from the progress events; None if none said
    message: str = ""  # the hub's words when not ready

    @property
    def ok(self) -> bool:
        return self.result == READY


class Refusal(Exception):
    """The hub answered a start with a 4xx: its message is the row's."""


class Hub(Protocol):
    """What a smoke round asks of the hub, for one user's default server."""

    async def start(self, profile: str) -> None: ...  # raises Refusal on a 4xx

    def progress(self) -> AsyncIterator[dict]: ...  # the spawn's progress events, to ready/failed

    async def answers(self) -> bool: ...  # the server's URL through the proxy answers 200

    async def stop(self) -> None: ...

    async def stopped(self) -> bool: ...  # no server running nor pending

    async def node(self) -> str | None: ...  # where the server's pod runs, as the hub knows it


def node_of(event: dict) -> str | None:
    """The node named by a progress event's scheduler line, if it has one."""
    for text in (event.get("details") or "", event.get("message") or ""):
        found = _ASSIGNED.search(str(text))
        if found:
            return found.group(1)
    return None


async def _follow(hub: Hub, seen: dict) -> tuple[bool, str]:
    """Read the spawn's progress to its end: (ready, the failure's message); the node into `seen`."""
    async for event in hub.progress():
        seen["node"] = node_of(event) or seen.get("node")
        if event.get("failed"):
            return False, str(event.get("message") or "the spawn failed")
        if event.get("ready"):
            return True, ""
    return False, "the progress stream ended before the server was ready"


async def smoke_profile(
    hub: Hub,
    profile: str,
    *,
    within: float,
    stop_timeout: float = 120.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable] = asyncio.sleep,
) -> Row:
    """Start `profile`, wait (up to `within` s) for its server to answer, stop it: its row."""
    began = clock()
    try:
        await hub.start(profile)
    except Refusal as e:
        return Row(profile, REFUSED, None, None, str(e))  # nothing was started
    seen: dict = {}
    try:
        ready, message = await asyncio.wait_for(_follow(hub, seen), within)
    except TimeoutError:
        ready, message = None, f"the server was not ready within {within:.0f} s"
    if ready and seen.get("node") is None:
        # A spawn ready within the start request's wait streams no scheduler event: ask the hub.
        seen["node"] = await hub.node()
    if ready is None:
        row = Row(profile, TIMEOUT, None, seen.get("node"), message)
    elif not ready:
        row = Row(profile, FAILED, None, seen.get("node"), message)
    else:
        try:
            left = max(within - (clock() - began), 1.0)
            await until(hub.answers, within=left, what="its URL", cap=1.0, clock=clock, sleep=sleep)
            row = Row(profile, READY, round(clock() - began, 1), seen.get("node"))
        except TimeoutError:
            row = Row(
                profile,
                NO_ANSWER,
                None,
                seen.get("node"),
                f"ready, but its URL did not answer within {within:.0f} s",
            )
    # Stopped whatever happened: the next profile starts the same user's server.
    await hub.stop()
    try:
        await until(hub.stopped, within=stop_timeout, what="the stop", cap=2.0, clock=clock, sleep=sleep)
    except TimeoutError:
        if row.ok:
            row = Row(
                profile,
                NOT_STOPPED,
                row.seconds_to_ready,
                row.node,
                f"still running after {stop_timeout:.0f} s",
            )
    return row


async def smoke(
    hub: Hub,
    profiles: list[tuple[str, float]],
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable] = asyncio.sleep,
) -> list[Row]:
    """One row per (profile, timeout s), in order: each profile starts once the previous stopped."""
    rows = []
    for profile, within in profiles:
        rows.append(await smoke_profile(hub, profile, within=within, clock=clock, sleep=sleep))
    return rows


def exit_code(rows: list[Row]) -> int:
    """0 when every profile smoked is ready (and there was one), else 1."""
    return 0 if rows and all(row.ok for row in rows) else 1

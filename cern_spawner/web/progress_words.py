"""What the spawn-progress page says, in plain words, from the facts of one spawn. Pure.

Users see their profile's display name and the phase their server is in, never a node-group name
or the scheduler's own text: that stays available as `details` (behind a disclosure on the page).
The bar follows the phases, not the number of events: 5 waiting for a GPU (or asking for one),
10–49 a new node booting (by the elapsed share of the measured boot time), 60 the node joined,
70 pulling the image, 80 the container started, 90 the notebook starting.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

# Pod phases, in order, as the cluster's events tell them (None: the pod has no node yet).
POD_PHASES = ("scheduled", "pulling", "started", "notebook")
# Kubernetes event reasons → pod phase.
EVENT_PHASES = {
    "Scheduled": "scheduled",
    "Pulling": "pulling",
    "Pulled": "pulling",
    "Created": "started",
    "Started": "started",
}
GROWTH_FLOOR, GROWTH_CEILING = 10, 49
# Without a measured boot time the bar creeps toward the ceiling: halfway after this long.
UNMEASURED_HALF_LIFE = 300.0


@dataclass(frozen=True)
class SpawnFacts:
    """What is known about one spawn at one moment (times on the scaling controller's clock)."""

    profile: str  # the profile's display name
    gpu: bool = False
    scaled: bool = False  # the hub may grow the profile's node group
    pod: str | None = None  # the furthest of POD_PHASES reached, None while unscheduled
    free_gpus: int | None = None  # in the profile's group, at the controller's last round
    growth_since: float | None = None  # when the cloud was asked for the node being booted
    node_joined: bool = False  # a node joined the group since that request
    retrying_since: float | None = None  # the cloud has been failing transiently since
    blocker: str | None = None  # why no GPU can be had, in the controller's words for users
    expected_boot: float | None = None  # median measured boot time of the group, seconds
    details: tuple[str, ...] = ()  # the cluster's own messages about the current phase


def minutes(seconds: float) -> str:
    """A duration as users read it on a clock: "45 s", "1 min", "12 min", "1 h 5 min"."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{int(seconds)} s"
    total = int(seconds // 60)
    if total < 60:
        return f"{total} min"
    hours, rest = divmod(total, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


def _growth_progress(elapsed: float, expected: float | None) -> int:
    if expected and expected > 0:
        share = elapsed / expected
    else:
        share = 1 - math.exp(-elapsed * math.log(2) / UNMEASURED_HALF_LIFE)
    return min(GROWTH_FLOOR + int(share * (GROWTH_CEILING - GROWTH_FLOOR)), GROWTH_CEILING)


def phase(facts: SpawnFacts) -> str:
    """The spawn's phase: failed, one of POD_PHASES, joined, retrying, growing or waiting."""
    if facts.pod in POD_PHASES:
        return facts.pod
    if facts.blocker:
        return "failed"
    if not facts.gpu:
        return "waiting"
    if facts.node_joined:
        return "joined"
    if facts.retrying_since is not None:
        return "retrying"
    if facts.growth_since is not None:
        return "growing"
    return "waiting"


def words(facts: SpawnFacts, now: float) -> dict:
    """The progress event for `facts` at `now`: {"progress", "message", "phase"[, "details"]}."""
    current = phase(facts)
    progress, message = 5, ""
    if current == "waiting":
        if not facts.gpu:
            message = "Finding a place for your server"
        elif facts.scaled and facts.free_gpus == 0:
            message = f"No GPU is free for “{facts.profile}”: asking the cloud for a new GPU node"
        else:
            message = f"Waiting for a free GPU for “{facts.profile}”"
    elif current == "failed":
        message = facts.blocker or ""
    elif current == "retrying":
        progress = GROWTH_FLOOR
        message = (
            "The cloud is not answering; retrying "
            f"({minutes(now - facts.retrying_since)} so far). Your place in the queue is kept."
        )
    elif current == "growing":
        elapsed = now - facts.growth_since
        progress = _growth_progress(elapsed, facts.expected_boot)
        so_far = f"A new GPU node is starting — {minutes(elapsed)} so far"
        if facts.expected_boot:
            message = f"{so_far}, usually about {minutes(facts.expected_boot)}"
        else:
            message = f"{so_far}; a new node takes several minutes"
    elif current == "joined":
        progress, message = 60, "The node joined; its GPU is being prepared"
    elif current in ("scheduled", "pulling"):
        progress, message = 70, "Pulling the image"
    elif current == "started":
        progress, message = 80, "The container started; starting the notebook"
    elif current == "notebook":
        progress, message = 90, "Starting the notebook"
    event = {"progress": progress, "message": message, "phase": current}
    if facts.details:
        event["details"] = "\n".join(facts.details)
    return event


def html_message(event: dict) -> str:
    """The event as HTML for JupyterHub's own progress page: the words, the cluster's text folded."""
    text = html.escape(event["message"])
    if not event.get("details"):
        return text
    lines = "".join(f"<li>{html.escape(line)}</li>" for line in event["details"].split("\n"))
    return f"{text}<details><summary>Details from the cluster</summary><ul>{lines}</ul></details>"

"""Plain words, for the progress page, for the scheduler's verdict on a pod waiting for a GPU.

The scheduler's own text ("0/5 nodes are available: 1 Insufficient nvidia.com/gpu, 4 node(s) didn't
match Pod's node affinity/selector. …") is for admins; while the hub grows the group, a user only
needs to know the server waits for a GPU. The scheduler's text stays in the pod's events.
"""

from __future__ import annotations

import re

_UNSCHEDULABLE = re.compile(r"\b\d+/\d+ nodes are available\b")


def plain_scheduling_message(message: str, group: str) -> str | None:
    """The user's reading of a FailedScheduling event of a pod that waits for a GPU in `group`;
    None for any other event, which is shown as Kubernetes wrote it."""
    if not _UNSCHEDULABLE.search(message or ""):
        return None
    return f"Waiting for a free GPU in {group}: no node can take the server yet."

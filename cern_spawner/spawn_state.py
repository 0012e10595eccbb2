"""What one start of a server knows, in one object the spawner replaces at each start.

JupyterHub keeps one spawner object per server across all its starts and stops, so anything a
start learns (the repository it launches, the image it built, its messages, the profile and node
group it waits on) must not leak into the next one. `CERNSpawner` holds a `SpawnState` and makes a
new one when a start begins (the options check, which JupyterHub runs right before `start()`) and
when the server stops.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from .binder.launch import Launch
from .web.progress_stream import SpawnPlan


@dataclass
class SpawnState:
    # The checked options' profile: what KubeSpawner will apply and the node group it waits on.
    plan: SpawnPlan | None = None
    # start() has begun: the progress stream (which may open earlier) waits for it.
    started: bool = False
    # A repository launch: (repo_url, ref) as checked, finding or building its image, the result.
    binder_request: tuple[str, str] | None = None
    binder_preparing: asyncio.Future | None = None
    binder_launch: Launch | None = None
    # What the launch reported so far, streamed into the spawn page.
    binder_messages: list[str] = field(default_factory=list)

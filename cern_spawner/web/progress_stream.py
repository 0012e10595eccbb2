"""The spawn's progress events: KubeSpawner's pod events and the scaling controller's view of the
profile's node group, merged into one story told in plain words (see progress_words).

KubeSpawner's generator ends when its start ends; the merged stream ends with it, so JupyterHub's
progress handler goes on to send `ready` (or `failed`) as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace

from .progress_words import EVENT_PHASES, POD_PHASES, SpawnFacts, html_message, phase, words

MAX_DETAILS = 5  # the cluster's latest lines about the current phase; it repeats itself


@dataclass(frozen=True)
class SpawnPlan:
    """What a spawn starts, decided before it starts: the profile KubeSpawner will apply."""

    slug: str
    display_name: str
    gpus: int = 0
    start_timeout: float | None = None  # the profile's own, None: the hub-wide one
    group: str | None = None  # the scaled node group to watch, None: not grown by this hub


class SpawnStory:
    """State of one spawn's progress: the furthest pod phase, the cluster's words about it, what
    was said already. `controller` may be None (a CPU profile, or no cloud configured)."""

    def __init__(self, plan: SpawnPlan, controller=None):
        self.plan, self.controller = plan, controller if plan.group else None
        self.clock: Callable[[], float] = self.controller.clock if self.controller else _no_clock
        self.began = self.clock()
        self.pod: str | None = None
        self.details: list[str] = []
        self.growth_since: float | None = None
        self.node_joined = False
        self.said: set[str] = set()
        self.progress = 0
        self._last: tuple | None = None

    def on_kube(self, event: dict) -> None:
        """One of KubeSpawner's events: its raw Kubernetes event moves the pod phase or adds detail."""
        raw = event.get("raw_event")
        if not isinstance(raw, dict):
            return  # KubeSpawner's "still waiting" reminder: our own words say more
        reached = EVENT_PHASES.get(raw.get("reason") or "")
        if reached and _later(reached, self.pod):
            self.pod, self.details = reached, []
        line = f"{raw.get('reason') or raw.get('type') or 'Event'}: {raw.get('message') or ''}".strip()
        if line not in self.details:
            self.details = [*self.details, line][-MAX_DETAILS:]

    def finished(self) -> None:
        """KubeSpawner's start returned a running pod: JupyterHub now waits for the notebook."""
        self.pod, self.details = "notebook", []

    def facts(self) -> SpawnFacts:
        plan = self.plan
        facts = SpawnFacts(profile=plan.display_name, gpu=bool(plan.gpus), scaled=self.controller is not None)
        facts = replace(facts, pod=self.pod, details=tuple(self.details))
        if self.controller is None:
            return facts
        status = self.controller.status(plan.group)
        if status.requested is not None and status.requested_at is not None:
            self.growth_since = status.requested_at
        since = self.growth_since if self.growth_since is not None else self.began
        if any(at >= since for at in status.joined.values()):
            self.node_joined = True
        return replace(
            facts,
            free_gpus=status.capacity.free_gpus if status.capacity else None,
            growth_since=self.growth_since,
            node_joined=self.node_joined,
            retrying_since=status.retrying_since,
            blocker=status.blocker.user_message if status.blocker else None,
            expected_boot=self.controller.expected_boot_seconds(plan.group),
        )

    def events(self) -> list[dict]:
        """The events to send now: nothing when nothing changed."""
        facts, now = self.facts(), self.clock()
        steps = []
        current = phase(facts)
        if facts.gpu and facts.scaled and facts.growth_since is not None and not self.said:
            # The cloud was asked before this stream's first look (a loaded hub, a late reader):
            # say why first, as when the look comes before the request.
            before = replace(facts, pod=None, blocker=None, retrying_since=None, details=())
            steps.append(words(replace(before, growth_since=None, node_joined=False, free_gpus=0), now))
        if facts.gpu and (current in POD_PHASES or current == "joined"):
            # A phase shorter than our polling still happened: tell it, in order, once.
            quiet = replace(facts, pod=None, blocker=None, retrying_since=None, details=())
            if facts.growth_since is not None and "growing" not in self.said:
                steps.append(words(replace(quiet, node_joined=False), now))
            if facts.node_joined and current != "joined" and "joined" not in self.said:
                steps.append(words(quiet, now))
        steps.append(words(facts, now))
        out = []
        for step in steps:
            self.said.add(step["phase"])
            self.progress = max(self.progress, step["progress"])  # the bar never goes back
            step = {**step, "progress": self.progress}
            key = (step["phase"], step["message"], step.get("details"), step["progress"])
            if key == self._last:
                continue
            self._last = key
            step["html_message"] = html_message(step)
            out.append(step)
        return out


def _later(reached: str, current: str | None) -> bool:
    return current is None or POD_PHASES.index(reached) > POD_PHASES.index(current)


def _no_clock() -> float:
    return asyncio.get_running_loop().time()


async def merged_progress(
    story: SpawnStory, kube: AsyncIterator[dict], started_ok: Callable[[], bool], interval: float = 0.5
):
    """Yield the story's events while KubeSpawner's generator runs; end when it ends."""
    kube = kube.__aiter__()
    pending = asyncio.ensure_future(kube.__anext__())
    try:
        while True:
            for event in story.events():
                yield event
            done, _ = await asyncio.wait({pending}, timeout=interval)
            if pending in done:
                try:
                    story.on_kube(pending.result())
                except StopAsyncIteration:
                    break
                pending = asyncio.ensure_future(kube.__anext__())
        if started_ok():
            story.finished()
            for event in story.events():
                yield event
    finally:
        if not pending.done():
            pending.cancel()

"""What a week of GPU notebooks costs: GPU-hours used by notebooks against node-hours paid, and how
long users wait, with and without culling and standby GPUs.

A seeded, generated week of GPU-session arrivals (weekday office-hour peaks in Europe/Zurich, quiet
nights and weekends; lognormal working times; some sessions left open and idle for hours) is
replayed against the scaling controller's pure parts — `planner.plan`, `shrink.decide`,
`standby.standby_gpus` — on a fake clock, with the OpenStack simulator's timing model
(sandbox/openstack/cloud.py: a resize keeps the group UPDATE_IN_PROGRESS until the new VMs have
joined after `boot_delay` and their GPUs are allocatable `gpu_delay` later; a shrink deletes the
VMs after `shrink_delay`), at production-like boot times. The scheduler places a pod as
kube-scheduler scores a GPU notebook of the catalog: a GPU group's `placement: pack` (the default)
gives its pods a preferred pod affinity to the group's pods per node, so the node running most of
them wins, ties going to the least allocated; `spread` (kube-scheduler's default scoring alone) is
least allocated first (GPUs are not among its scored resources, CPU and memory follow the
notebooks). Culling stops a session
`idle_timeout` after its last activity (the catalog's default for dedicated profiles), at the
culler's next pass.

    .venv/bin/python benchmarks/cost_week.py [--seed 18] [--boot-delay 150]

Writes benchmarks/results/cost_week.json (rendered into docs/performance.md by benchmarks/report.py).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cern_spawner.catalog.model import DEFAULT_CULLING  # noqa: E402
from cern_spawner.scaling.capacity import NodeInfo  # noqa: E402
from cern_spawner.scaling.config import GPUScaling  # noqa: E402
from cern_spawner.scaling.controller import UNCLAIMED_GRACE  # noqa: E402
from cern_spawner.scaling.planner import GroupView, plan  # noqa: E402
from cern_spawner.scaling.shrink import ShrinkView, decide  # noqa: E402
from cern_spawner.scaling.standby import Standby, parse, standby_gpus  # noqa: E402
from sandbox.openstack.cloud import DEFAULT_SETTINGS  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "cost_week.json"
ZONE = ZoneInfo("Europe/Zurich")
WEEK_START = datetime(2026, 11, 30, tzinfo=ZONE)  # a Monday, 00:00 local
WEEK = 7 * 24 * 3600
GPUS_PER_NODE = 4  # as the sandbox's A100 and H100 groups
MAX_GPUS = 40  # the group's ceiling, in GPUs (max_nodes × GPUs per node)
GRACE = GPUScaling.grace_period.default_value  # seconds an emptied node is kept
TICK = 5.0  # seconds between controller rounds (the real one reacts to the watch within ~2 s)
CULL_EVERY = 300.0  # seconds between the culler's passes
IDLE_TIMEOUT = DEFAULT_CULLING["dedicated"].idle_timeout or 0
OFFICE = {"days": "mon-fri", "from": "08:00", "to": "18:00"}


# -- the trace --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Session:
    arrival: float  # seconds after WEEK_START
    gpus: int
    active: float  # seconds of work from its start
    idle: float  # seconds it then stays open without activity before the user stops it


def hourly_rate(local: datetime) -> float:
    """GPU sessions started per hour: two office peaks on weekdays, little at night and weekends."""
    hour = local.hour + local.minute / 60
    if local.weekday() >= 5:
        return 0.6 if 9 <= hour < 20 else 0.1
    peaks = 9 * math.exp(-(((hour - 10) / 1.5) ** 2)) + 7 * math.exp(-(((hour - 14.5) / 1.8) ** 2))
    return 0.3 + peaks + (1.0 if 18 <= hour < 23 else 0.0)


def generate(seed: int, scale: float = 1.0) -> list[Session]:
    """A week of arrivals (thinned Poisson process), reproducible from the seed; `scale` multiplies
    the arrival rate (a bigger service)."""
    rng = random.Random(seed)
    top = max(hourly_rate(WEEK_START + timedelta(minutes=m)) for m in range(0, 24 * 60, 5)) / 3600 * scale
    sessions, t = [], 0.0
    while True:
        t += rng.expovariate(top)
        if t >= WEEK:
            return sessions
        local = WEEK_START + timedelta(seconds=t)
        if rng.random() > hourly_rate(local) * scale / 3600 / top:
            continue
        active = min(rng.lognormvariate(math.log(5400), 0.8), 10 * 3600)  # median 1.5 h of work
        if rng.random() < 0.3:  # left open: until the next morning, or over the weekend
            idle = rng.uniform(2, 16) * 3600 * (3 if local.weekday() == 4 and local.hour >= 12 else 1)
        else:
            idle = rng.uniform(0, 15 * 60)  # stopped after a short while
        sessions.append(Session(t, 2 if rng.random() < 0.1 else 1, active, idle))


# -- the cluster and the cloud ------------------------------------------------------------------------
@dataclass
class Node:
    name: str
    created: float  # VM requested: billed from here
    joined_at: float
    gpus_at: float
    used: int = 0
    workloads: int = 0
    ever_used: bool = False
    deleted_at: float | None = None  # VM deleted: billed until here
    gone_at: float | None = None  # Node object gone

    def info(self, now: float, per_node: int) -> NodeInfo:
        ready = "True" if now >= self.joined_at else "False"
        return NodeInfo(
            self.name,
            ready,
            per_node if now >= self.gpus_at else 0,
            self.used,
            self.workloads,
            self.deleted_at is not None,
            self.deleted_at is not None,
            self.name,
        )


@dataclass
class World:
    boot: float
    gpu: float
    shrink_delay: float
    removal_lag: float
    grace: float = GRACE
    placement: str = "pack"  # the catalog's node-group placement: pack | spread
    per_node: int = GPUS_PER_NODE
    nodes: list[Node] = field(default_factory=list)
    busy_until: float = 0.0
    serial: int = 0
    empty_since: dict[str, float] = field(default_factory=dict)
    removing: set[str] = field(default_factory=set)  # named for removal: the scheduler skips them

    def live(self) -> list[Node]:
        return [n for n in self.nodes if n.deleted_at is None]

    def listed(self, now: float) -> list[Node]:
        return [n for n in self.nodes if now >= n.joined_at and (n.gone_at is None or now < n.gone_at)]

    def grow(self, now: float, count: int) -> None:
        for _ in range(count):
            self.serial += 1
            name = f"node-{self.serial:04d}"
            self.nodes.append(Node(name, now, now + self.boot, now + self.boot + self.gpu))
        self.busy_until = now + self.boot + self.gpu

    def remove(self, now: float, names: tuple[str, ...]) -> None:
        for node in self.nodes:
            if node.name in names:
                node.deleted_at = now + self.shrink_delay
                node.gone_at = node.deleted_at + self.removal_lag
        self.busy_until = now + self.shrink_delay


def place(world: World, gpus: int, now: float) -> Node | None:
    """kube-scheduler's pick for a notebook: a ready node that fits; with `pack` the one running most
    of the group's notebooks (the preferred pod affinity, weight 100, outweighs the resource scores),
    ties and `spread` going to the least allocated."""
    fits = [
        n
        for n in world.live()
        if now >= n.gpus_at and n.name not in world.removing and world.per_node - n.used >= gpus
    ]
    if world.placement == "pack":
        return min(fits, key=lambda n: (-n.workloads, n.used, n.name), default=None)
    return min(fits, key=lambda n: (n.used, n.name), default=None)


def controller_round(world: World, now: float, waiting: list, standby: Standby | None) -> None:
    """One round of ScalingController._reconcile_group, on the simulated cloud and cluster."""
    listed = world.listed(now)
    for node in listed:
        if node.workloads:
            world.empty_since.pop(node.name, None)
        else:
            world.empty_since.setdefault(node.name, now)
    busy = now < world.busy_until
    live = world.live()
    wall = (WEEK_START + timedelta(seconds=now)).astimezone(UTC)
    keep = standby_gpus(standby, wall)
    pending = tuple(s.gpus for s in waiting)
    if pending or keep:
        decision = plan(
            GroupView(
                name="gpu",
                gpus_per_node=world.per_node,
                backend_nodes=len(live),
                joined_nodes=sum(1 for n in live if now >= n.joined_at),
                free_per_node=tuple(
                    world.per_node - n.used for n in live if now >= n.gpus_at and n.used < world.per_node
                ),
                pending_requests=pending,
                booting_nodes=sum(1 for n in live if n.joined_at <= now < n.gpus_at),
                ceiling=MAX_GPUS // world.per_node,
                standby_gpus=keep,
            )
        )
        if decision.grows and not busy:
            world.grow(now, decision.target - len(live))
            return
        if pending or decision.grows:
            return
    members = tuple(n.info(now, world.per_node) for n in listed if n.deleted_at is None)
    view = ShrinkView(
        mode="resize",
        members=members,
        leaving=sum(1 for n in listed if n.deleted_at is not None),
        cloud_nodes=len(live),
        cloud_min=0,
        cloud_busy=busy,
        lost=0,
        baseline=0,
        empty_since=world.empty_since,
        grace=world.grace,
        now=now,
        unclaimed=frozenset(n.name for n in live if not n.ever_used),
        unclaimed_grace=UNCLAIMED_GRACE,
        keep_free=keep,
    )
    shrink = decide(view)
    if shrink and shrink.remove:
        world.remove(now, shrink.remove)


def replay(
    sessions: list[Session],
    *,
    culling: bool,
    standby: Standby | None,
    boot: float,
    gpu: float,
    grace: float = GRACE,
    placement: str = "pack",
    per_node: int = GPUS_PER_NODE,
) -> dict:
    world = World(
        boot,
        gpu,
        DEFAULT_SETTINGS["shrink_delay"],
        DEFAULT_SETTINGS["node_removal_lag"],
        grace,
        placement,
        per_node,
    )
    queue = sorted(sessions, key=lambda s: s.arrival)
    waiting: list[Session] = []
    running: list[tuple[float, Session, Node]] = []  # (end, session, node)
    waits: list[tuple[Session, float]] = []
    used = active = 0.0
    unused = {"booting": 0.0, "free beside notebooks": 0.0, "empty nodes": 0.0}
    now, index = 0.0, 0
    horizon = WEEK + 2 * 24 * 3600  # let the week's last sessions end and the group shrink
    while now < horizon:
        while index < len(queue) and queue[index].arrival <= now:
            waiting.append(queue[index])
            index += 1
        still = []
        for end, session, node in running:
            if end <= now:
                node.used -= session.gpus
                node.workloads -= 1
            else:
                still.append((end, session, node))
        running = still
        world.removing = {n.name for n in world.nodes if n.deleted_at is not None}
        for session in list(waiting):
            node = place(world, session.gpus, now)
            if node is None:
                continue
            waiting.remove(session)
            node.used += session.gpus
            node.workloads += 1
            node.ever_used = True
            world.empty_since.pop(node.name, None)
            idle = session.idle
            if culling and IDLE_TIMEOUT and idle > IDLE_TIMEOUT:
                # Culled at the culler's first pass after the timeout (passes at multiples of CULL_EVERY).
                idle_end = math.ceil((now + session.active + IDLE_TIMEOUT) / CULL_EVERY) * CULL_EVERY
                idle = idle_end - now - session.active
            running.append((now + session.active + idle, session, node))
            # Placed at the first round after it came: a free GPU took it at once (the scheduler
            # binds within a second; the rounds' period is not a wait).
            waits.append((session, 0.0 if now - session.arrival < TICK else now - session.arrival))
            used += (session.active + idle) * session.gpus
            active += session.active * session.gpus
        controller_round(world, now, waiting, standby)
        for node in world.live():  # where the paid GPU-hours that no notebook holds go
            if now < node.gpus_at:
                unused["booting"] += world.per_node * TICK
            elif node.workloads:
                unused["free beside notebooks"] += (world.per_node - node.used) * TICK
            else:
                unused["empty nodes"] += world.per_node * TICK
        now += TICK
    paid = sum(((n.deleted_at if n.deleted_at is not None else horizon) - n.created) for n in world.nodes)
    return {"waits": waits, "used": used, "active": active, "paid_gpu_s": paid * per_node, "unused": unused}


def run(
    sessions: list[Session],
    *,
    per_node: int = GPUS_PER_NODE,
    boot: float,
    gpu: float,
    pair_standby: Standby | None = None,
    **options,
) -> dict:
    """The week on `per_node`-GPU nodes. A 2-GPU notebook cannot run on a 1-GPU node (the loader
    refuses such a profile), so with 1-GPU nodes the catalog puts the 2-GPU profile on a 2-GPU group
    of its own: both groups are replayed and added up (`standby` on the 1-GPU group, `pair_standby`
    on the 2-GPU one)."""
    if per_node == 1:
        small = [s for s in sessions if s.gpus == 1]
        parts = [replay(small, per_node=1, boot=boot, gpu=gpu, **options)]
        big = [s for s in sessions if s.gpus > 1]
        if big:
            parts.append(replay(big, per_node=2, boot=boot, gpu=gpu, **{**options, "standby": pair_standby}))
    else:
        parts = [replay(sessions, per_node=per_node, boot=boot, gpu=gpu, **options)]
    waits = [w for part in parts for w in part["waits"]]
    result = summary(
        waits,
        sum(p["used"] for p in parts),
        sum(p["active"] for p in parts),
        sum(p["paid_gpu_s"] for p in parts),
        boot + gpu,
    )
    unused: dict[str, float] = {}
    for part in parts:
        for key, value in part["unused"].items():
            unused[key] = unused.get(key, 0.0) + value
    result["unused_gpu_hours"] = {k: round(v / 3600, 1) for k, v in unused.items()}
    return result


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def office(session: Session) -> bool:
    local = WEEK_START + timedelta(seconds=session.arrival)
    return local.weekday() < 5 and 8 <= local.hour < 18


def summary(waits, used: float, active: float, paid_gpu_s: float, boot: float) -> dict:
    all_waits = [w for _, w in waits]
    office_waits = [w for s, w in waits if office(s)]
    paid_gpu_hours = paid_gpu_s / 3600
    return {
        "sessions": len(waits),
        "gpu_hours_used": round(used / 3600, 1),
        "gpu_hours_active": round(active / 3600, 1),
        "paid_gpu_hours": round(paid_gpu_hours, 1),
        "paid_over_used": round(paid_gpu_hours / (used / 3600), 2),
        "paid_over_active": round(paid_gpu_hours / (active / 3600), 2),
        "wait_p50_s": round(percentile(all_waits, 0.5), 1),
        "wait_p95_s": round(percentile(all_waits, 0.95), 1),
        "office_wait_p50_s": round(percentile(office_waits, 0.5), 1),
        "office_wait_p95_s": round(percentile(office_waits, 0.95), 1),
        "office_waited_pct": round(
            100 * sum(1 for w in office_waits if w > TICK) / max(len(office_waits), 1), 1
        ),
        "boot_s": boot,
    }


def bound(sessions: list[Session], culling: bool, per_node: int) -> float:
    """Paid ÷ used with perfect packing and no boot or grace: ceil(GPUs held / per node) nodes at
    every instant, as if notebooks moved between nodes for free. No policy does better."""
    events = []
    for s in sessions:
        idle = min(s.idle, IDLE_TIMEOUT) if culling and IDLE_TIMEOUT else s.idle
        events += [(s.arrival, s.gpus), (s.arrival + s.active + idle, -s.gpus)]
    used = paid = 0.0
    held, last = 0, 0.0
    for moment, change in sorted(events):
        used += held * (moment - last)
        paid += math.ceil(held / per_node) * per_node * (moment - last)
        held, last = held + change, moment
    return round(paid / used, 2)


def held(sessions: list[Session], culling: bool) -> dict:
    """GPUs held by notebooks over the week: mean and peak (what sizes the group)."""
    events = []
    for s in sessions:
        idle = min(s.idle, IDLE_TIMEOUT) if culling and IDLE_TIMEOUT else s.idle
        events += [(s.arrival, s.gpus), (s.arrival + s.active + idle, -s.gpus)]
    total, level, peak, last = 0.0, 0, 0, 0.0
    for moment, change in sorted(events):
        total += level * (moment - last)
        level, last = level + change, moment
        peak = max(peak, level)
    return {"mean": round(total / WEEK, 1), "peak": peak}


# The generated trace's parameters (no published trace of GPU notebook sessions with arrivals and
# durations was found; see TRACE_SOURCE), stated so that the report shows what it rests on.
TRACE = {
    "weekday arrivals per hour": (
        "0.3 + 9·exp(-((h-10)/1.5)²) + 7·exp(-((h-14.5)/1.8)²), +1 from 18:00 to 23:00"
    ),
    "weekend arrivals per hour": "0.6 from 09:00 to 20:00, 0.1 otherwise",
    "work per session": "lognormal, median 1.5 h, σ 0.8 (log), at most 10 h",
    "left open idle": "3 in 10 sessions, 2–16 h (×3 on Friday afternoons); the others stop within 15 min",
    "GPUs per session": "1; 2 for 1 in 10",
}
TRACE_SOURCE = (
    "Generated, seeded: no published trace of GPU notebook sessions (arrivals and durations) was found. "
    "The shape follows what is published qualitatively — NotebookOS (arXiv:2503.20591) reports from a "
    "production trace that notebook sessions are long-lived with sporadic GPU use — and the volume is that "
    "of a small service (about 60 GPU sessions a weekday). --load multiplies the arrival rate."
)


def row(name: str, result: dict) -> list:
    return [
        name,
        result["gpu_hours_used"],
        result["gpu_hours_active"],
        result["paid_gpu_hours"],
        f"{result['paid_over_used']:.2f}×",
        f"{result['paid_over_active']:.2f}×",
        f"{result['wait_p50_s']:.0f} / {result['wait_p95_s']:.0f} s",
        f"{result['office_wait_p50_s']:.0f} / {result['office_wait_p95_s']:.0f} s",
        ", ".join(word for word, met in (("ratio", result["ratio_met"]), ("wait", result["wait_met"])) if met)
        or "neither",
    ]


def report(data: dict) -> list[dict]:
    settings = data["settings"]
    boot = settings["boot_s"]
    columns = [
        "scenario",
        "GPU-h used",
        "GPU-h active",
        "GPU-h paid",
        "paid ÷ used",
        "paid ÷ active",
        "wait p50 / p95",
        "office wait p50 / p95",
        f"goal met (≤ {settings['ratio_goal']}×; office p95 < {boot:.0f} s)",
    ]
    trace = data["trace"]
    notes = [
        "GPU-h used: GPUs held by running notebooks, idle ones included; active: while their users work. "
        "Paid: from each VM's request to its deletion, in GPU-hours (node-hours × GPUs per node). "
        "Office hours: arrivals Monday–Friday 08:00–18:00 Europe/Zurich.",
        f"Trace (seed {settings['seed']}, load ×{settings['load']}): {trace['sessions']} sessions, "
        f"{trace['two_gpu']} of them asking for 2 GPUs, {trace['left_idle']} left open idle for hours; "
        f"GPUs held: mean {trace['held']['mean']}, peak {trace['held']['peak']} without culling, mean "
        f"{trace['held_culled']['mean']}, peak {trace['held_culled']['peak']} with culling. "
        + "; ".join(f"{k}: {v}" for k, v in data["trace_parameters"].items())
        + ". "
        + data["trace_source"],
        f"Culling: idle_timeout {settings['idle_timeout_s']} s (the catalog's default for dedicated "
        f"profiles), culler every {settings['cull_every_s']:.0f} s. Grace before an emptied node goes: "
        f"{settings['grace_period_s']:.0f} s (GPUScaling.grace_period's default) unless a row says "
        "otherwise. "
        "Standby: free GPUs kept in office hours. 1-GPU nodes: the 2-GPU notebooks run on a 2-GPU group "
        "of their own (a 2-GPU profile cannot go on 1-GPU nodes), counted in the same row, without standby "
        "unless the row says so.",
    ]
    bounds = ", ".join(f"{k}-GPU nodes {v:.2f}×" for k, v in data["bounds"].items())
    return [
        {
            "title": f"One week, {settings['gpus_per_node']}-GPU nodes, packed (placement: pack), "
            f"standby {settings['standby']['gpus']} GPU(s) in office hours",
            "columns": columns,
            "rows": [row(name, result) for name, result in data["scenarios"].items()],
            "notes": notes,
        },
        {
            "title": "By node flavour, packed, all with culling",
            "columns": columns,
            "rows": [row(name, result) for name, result in data["variants"].items()],
            "notes": [
                "Packed (the default for GPU groups): each notebook prefers the node running most of the "
                "group's notebooks (a preferred pod affinity); spread (placement: spread, kube-scheduler's "
                "default scoring alone) puts it on the least allocated node, leaving part-used nodes "
                "that never empty for the shrink. Best possible ratio at this load, with notebooks moved "
                f"between nodes for free and no boot or grace: {bounds}."
            ],
        },
        {
            "title": "A busier service (arrival rate multiplied), packed, with culling",
            "columns": columns,
            "rows": [row(name, result) for name, result in data["loads"].items()],
            "notes": [
                "Same trace shape, more arrivals: "
                + "; ".join(
                    f"load ×{k}: mean {v['mean']} GPUs held, peak {v['peak']}"
                    for k, v in data["load_held"].items()
                )
                + f". The group's ceiling is raised to {LOAD_MAX_GPUS} GPUs for these rows."
            ],
        },
    ]


def judged(result: dict) -> dict:
    result["ratio_met"] = result["paid_over_used"] <= 1.3
    result["wait_met"] = result["office_wait_p95_s"] < result["boot_s"]
    return result


def office_standby(gpus: int) -> Standby | None:
    return parse({"gpus": gpus, "timezone": "Europe/Zurich", "windows": [OFFICE]})


LOAD_MAX_GPUS = 160  # the ceiling for the busier rows: never the limit at load ×4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--load", type=float, default=1.0, help="arrival rate multiplier of the main rows")
    parser.add_argument(
        "--boot-delay",
        type=float,
        default=150.0,
        help="seconds until a new VM joins (the simulator's boot_delay)",
    )
    parser.add_argument(
        "--gpu-delay", type=float, default=10.0, help="seconds from join to allocatable GPUs (gpu_delay)"
    )
    parser.add_argument("--standby-gpus", type=int, default=1, help="standby GPUs in office hours")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    started = time.monotonic()
    sessions = generate(args.seed, args.load)
    timing = {"boot": args.boot_delay, "gpu": args.gpu_delay}
    standby = office_standby(args.standby_gpus)
    scenarios = {}
    for name, culling, keep in [
        ("no culling, no standby", False, None),
        ("culling", True, None),
        ("standby", False, standby),
        ("culling + standby", True, standby),
    ]:
        scenarios[name] = judged(run(sessions, culling=culling, standby=keep, **timing))
        print(name, json.dumps(scenarios[name]), flush=True)
    variants = {}
    for name, options in [
        ("1-GPU nodes", {"per_node": 1}),
        ("1-GPU nodes, grace 300 s", {"per_node": 1, "grace": 300.0}),
        ("1-GPU nodes, standby 1", {"per_node": 1, "standby": office_standby(1)}),
        ("1-GPU nodes, standby 2", {"per_node": 1, "standby": office_standby(2)}),
        ("1-GPU nodes, standby 3", {"per_node": 1, "standby": office_standby(3)}),
        (
            "1-GPU nodes, standby 3, grace 300 s",
            {"per_node": 1, "standby": office_standby(3), "grace": 300.0},
        ),
        (
            "1-GPU nodes, standby 1 (2 on the 2-GPU group)",
            {"per_node": 1, "standby": office_standby(1), "pair_standby": office_standby(2)},
        ),
        (
            "1-GPU nodes, standby 1 (2 on the 2-GPU group), grace 300 s",
            {"per_node": 1, "standby": office_standby(1), "pair_standby": office_standby(2), "grace": 300.0},
        ),
        ("2-GPU nodes", {"per_node": 2}),
        ("2-GPU nodes, spread", {"per_node": 2, "placement": "spread"}),
        ("2-GPU nodes, grace 300 s", {"per_node": 2, "grace": 300.0}),
        ("2-GPU nodes, standby 1", {"per_node": 2, "standby": office_standby(1)}),
        ("2-GPU nodes, standby 2", {"per_node": 2, "standby": office_standby(2)}),
        (
            "2-GPU nodes, standby 2, grace 300 s",
            {"per_node": 2, "standby": office_standby(2), "grace": 300.0},
        ),
        ("4-GPU nodes", {"per_node": 4}),
        ("4-GPU nodes, spread", {"per_node": 4, "placement": "spread"}),
        ("4-GPU nodes, grace 300 s", {"per_node": 4, "grace": 300.0}),
        ("4-GPU nodes, standby 4", {"per_node": 4, "standby": office_standby(4)}),
    ]:
        variants[name] = judged(
            run(sessions, culling=True, standby=options.pop("standby", None), **timing, **options)
        )
        print(name, json.dumps(variants[name]), flush=True)
    loads, load_held = {}, {}
    global MAX_GPUS
    MAX_GPUS = LOAD_MAX_GPUS
    for load in (2.0, 4.0):
        busier = generate(args.seed, args.load * load)
        load_held[f"{load:g}"] = held(busier, True)
        for name, options in [
            ("4-GPU nodes", {"per_node": 4}),
            ("4-GPU nodes, standby 4", {"per_node": 4, "standby": office_standby(4)}),
            ("2-GPU nodes, standby 2", {"per_node": 2, "standby": office_standby(2)}),
        ]:
            key = f"load ×{load:g}, {name}"
            loads[key] = judged(
                run(busier, culling=True, standby=options.pop("standby", None), **timing, **options)
            )
            print(key, json.dumps(loads[key]), flush=True)
    data = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()],
        },
        "duration_s": round(time.monotonic() - started, 1),
        "settings": {
            "seed": args.seed,
            "load": args.load,
            "boot_s": args.boot_delay + args.gpu_delay,
            "boot_delay_s": args.boot_delay,
            "gpu_delay_s": args.gpu_delay,
            "shrink_delay_s": DEFAULT_SETTINGS["shrink_delay"],
            "gpus_per_node": GPUS_PER_NODE,
            "max_gpus": 40,
            "grace_period_s": GRACE,
            "idle_timeout_s": IDLE_TIMEOUT,
            "cull_every_s": CULL_EVERY,
            "standby": {"gpus": args.standby_gpus, "timezone": "Europe/Zurich", "windows": [OFFICE]},
            "ratio_goal": 1.3,
            "tick_s": TICK,
        },
        "trace": {
            "sessions": len(sessions),
            "two_gpu": sum(1 for s in sessions if s.gpus == 2),
            "left_idle": sum(1 for s in sessions if s.idle > 3600),
            "held": held(sessions, False),
            "held_culled": held(sessions, True),
        },
        "trace_parameters": TRACE,
        "trace_source": TRACE_SOURCE,
        "bounds": {str(n): bound(sessions, True, n) for n in (1, 2, 4)},
        "scenarios": scenarios,
        "variants": variants,
        "loads": loads,
        "load_held": load_held,
    }
    data["report"] = report(data)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

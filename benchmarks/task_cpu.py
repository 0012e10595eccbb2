"""Where a hub's event loop spends its CPU, task by task (a diagnostic of benchmarks/hub_cost.py).

Each hub gets config lines (no code of ours: the anchor takes them too) that time every step the
event loop runs (`asyncio.Handle._run`) in the main thread's CPU time and add it to the step's
owner: the task's coroutine (`finish_user_spawn`, `KubeSpawner._start`, a watch) or the plain
callback. A signal makes the hub write its totals; the benchmark reads them before and after each
timed burst, so only the bursts count. Unlike py-spy's samples (wall time of threads it deems
busy: an sqlite fsync counts) this is CPU, and unlike cProfile it costs a few µs a step, not a
multiple of the work. Garbage collection lands on whichever step allocated when it ran.

A task's steps are also added up by where each resumed: the chain of coroutines it was suspended
in (`finish_user_spawn > User.spawn > ...`), which splits JupyterHub's long tasks by the hooks and
calls inside them (a few µs more a step). The rest of the process's CPU is listed too, so the
owners add up to what the results files count: the loop's own work between steps (select and its
system time, timers), the main thread outside the loop's iterations, and the other threads.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import time
from pathlib import Path

# Neither JupyterHub (SIGUSR1) nor hub_cost's cProfile toggle (SIGUSR2) takes it.
SIGNAL = signal.SIGRTMIN + 2
CHAIN_DEPTH = 8  # coroutines named in a resume point, outermost first
# The rest of the process's CPU, so that the owners add up to it: the loop's own work between steps,
# the main thread outside the loop's iterations (signal handlers, start-up), the other threads.
BETWEEN = "loop: select, timers, bookkeeping between steps"
OUTSIDE = "main thread outside the loop's iterations"
THREADS = "other threads (executor: DNS, cloud reads)"


def hub_config(path: Path) -> str:
    """Config lines that account each loop step's CPU and write the totals to `path` on SIGNAL."""
    return f"""
def _task_cpu_install():
    import asyncio.base_events, asyncio.events, collections, json, os, signal, time
    cpu, steps, resumed, written = collections.Counter(), collections.Counter(), collections.Counter(), [0]
    run, clock = asyncio.events.Handle._run, time.thread_time
    run_once = asyncio.base_events.BaseEventLoop._run_once
    in_steps, in_iterations = [0.0], [0.0]

    def owner(handle):
        callback = handle._callback
        task = getattr(callback, "__self__", None)
        if isinstance(task, asyncio.Task):
            return "task " + getattr(task.get_coro(), "__qualname__", "?")
        function = getattr(callback, "__func__", callback)
        where = getattr(getattr(function, "__code__", None), "co_filename", "").rsplit("/", 2)[-2:]
        name = getattr(function, "__qualname__", type(callback).__name__)
        return "callback " + name + " (" + "/".join(where) + ")"

    def resume_point(handle):
        # read before the step runs: the coroutines the task is suspended in, outermost first
        task = getattr(handle._callback, "__self__", None)
        if not isinstance(task, asyncio.Task):
            return None
        names, coro = [], task.get_coro()
        while coro is not None and len(names) < {CHAIN_DEPTH}:
            names.append(getattr(coro, "__qualname__", type(coro).__name__))
            inner = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
            coro = inner if hasattr(inner, "cr_await") or hasattr(inner, "gi_yieldfrom") else None
        return " > ".join(names)

    def timed_run(handle):
        where = resume_point(handle)
        began = clock()
        try:
            return run(handle)
        finally:
            spent = clock() - began
            in_steps[0] += spent
            name = owner(handle)
            cpu[name] += spent
            steps[name] += 1
            if where is not None:
                resumed[where] += spent

    def timed_run_once(loop):
        # one iteration: waiting in select (its system time), timers, then the ready steps
        began, stepped = clock(), in_steps[0]
        try:
            return run_once(loop)
        finally:
            spent = clock() - began
            in_iterations[0] += spent
            cpu["{BETWEEN}"] += spent - (in_steps[0] - stepped)
            steps["{BETWEEN}"] += 1

    def write(*_):
        written[0] += 1
        main, process = clock(), time.process_time()
        totals = {{"main_thread_s": main, "process_s": process, "iterations_s": in_iterations[0]}}
        state = {{"written": written[0], "cpu_s": cpu, "steps": steps, "resumed_s": resumed}}
        state["totals"] = totals
        with open({str(path)!r} + ".tmp", "w") as f:
            json.dump(state, f)
        os.replace({str(path)!r} + ".tmp", {str(path)!r})

    asyncio.events.Handle._run = timed_run
    asyncio.base_events.BaseEventLoop._run_once = timed_run_once
    signal.signal({int(SIGNAL)}, write)
_task_cpu_install()
"""


def read_totals(pid: int, path: Path, timeout: float = 10) -> dict:
    """Ask the hub `pid` for its totals (see `hub_config`) and wait for them."""
    before = json.loads(path.read_text())["written"] if path.exists() else 0
    os.kill(pid, SIGNAL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            totals = json.loads(path.read_text())
            if totals["written"] > before:
                return totals
        except (OSError, ValueError):
            pass  # not written yet
        time.sleep(0.01)
    raise TimeoutError(f"hub {pid} did not write its loop's CPU totals to {path}")


class TaskCpu:
    """Both hubs' CPU by task (and the rest of the process) over the timed bursts: `span` around each."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.cpu_s: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.steps: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.resumed_s: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)

    def path(self, hub_name: str) -> Path:
        return self.directory / f"{hub_name}.task-cpu.json"

    def config(self, hub_name: str) -> str:
        return hub_config(self.path(hub_name))

    @contextlib.contextmanager
    def span(self, name: str, hub_name: str, pid: int):
        """Add the CPU of hub `pid` over this block to `name` (e.g. "CERNSpawner gpu-1")."""
        before = read_totals(pid, self.path(hub_name))
        yield
        after = read_totals(pid, self.path(hub_name))
        for key, seconds in after["cpu_s"].items():
            self.cpu_s[name][key] += seconds - before["cpu_s"].get(key, 0.0)
            self.steps[name][key] += after["steps"][key] - before["steps"].get(key, 0)
        change = {key: after["totals"][key] - before["totals"][key] for key in after["totals"]}
        self.cpu_s[name][OUTSIDE] += change["main_thread_s"] - change["iterations_s"]
        self.cpu_s[name][THREADS] += change["process_s"] - change["main_thread_s"]
        for key, seconds in after["resumed_s"].items():
            self.resumed_s[name][key] += seconds - before["resumed_s"].get(key, 0.0)


def _ms_a_spawn(table: dict[str, collections.Counter], name: str, key: str, spawns: int) -> float:
    return 1000 * table[name][key] / spawns


def side_by_side(
    task_cpu: TaskCpu, ours: str, anchor: str, spawns: tuple[int, int], top: int = 30
) -> list[str]:
    """Lines: ms of hub CPU a spawn by owner, ours against the anchor, largest first."""

    def ms(name: str, key: str, units: int) -> float:
        return _ms_a_spawn(task_cpu.cpu_s, name, key, units)

    totals = [1000 * sum(task_cpu.cpu_s[n].values()) / u for n, u in zip((ours, anchor), spawns, strict=True)]
    lines = [
        f"hub CPU: ours {totals[0]:.2f} ms a spawn, anchor {totals[1]:.2f}",
        "-- ms a spawn: ours, anchor, difference; steps a spawn: ours, anchor; owner (largest first)",
    ]
    keys = set(task_cpu.cpu_s[ours]) | set(task_cpu.cpu_s[anchor])
    ranked = sorted(keys, key=lambda k: -max(ms(ours, k, spawns[0]), ms(anchor, k, spawns[1])))
    for key in ranked[:top]:
        a, b = ms(ours, key, spawns[0]), ms(anchor, key, spawns[1])
        steps = (task_cpu.steps[ours][key] / spawns[0], task_cpu.steps[anchor][key] / spawns[1])
        lines.append(f"{a:7.2f} {b:7.2f} {a - b:+7.2f}   {steps[0]:6.1f} {steps[1]:6.1f}   {key}")
    return lines


def resume_points(
    task_cpu: TaskCpu, ours: str, anchor: str, spawns: tuple[int, int], top: int = 40
) -> list[str]:
    """Lines: ms of loop CPU a spawn by where the task's step resumed, the largest differences first."""

    def ms(name: str, key: str, units: int) -> float:
        return _ms_a_spawn(task_cpu.resumed_s, name, key, units)

    lines = ["-- ms a spawn: ours, anchor, difference; where the task resumed (largest differences first)"]
    keys = set(task_cpu.resumed_s[ours]) | set(task_cpu.resumed_s[anchor])
    ranked = sorted(keys, key=lambda k: -abs(ms(ours, k, spawns[0]) - ms(anchor, k, spawns[1])))
    for key in ranked[:top]:
        a, b = ms(ours, key, spawns[0]), ms(anchor, key, spawns[1])
        lines.append(f"{a:7.2f} {b:7.2f} {a - b:+7.2f}   {key}")
    return lines

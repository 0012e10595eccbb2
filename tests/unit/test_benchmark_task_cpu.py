"""benchmarks/task_cpu.py: the config lines a hub takes account its loop's CPU by task, on a signal."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from benchmarks.task_cpu import (
    BETWEEN,
    THREADS,
    TaskCpu,
    hub_config,
    read_totals,
    resume_points,
    side_by_side,
)

pytestmark = pytest.mark.unit

# A stand-in hub: the config lines, then a loop with one busy task and one idle one.
PROGRAM = """
import asyncio, sys, threading, time


def worker():  # a thread of the process, outside the loop: a resolver or a cloud read
    while True:
        sum(i * i for i in range(20_000))
        time.sleep(0.005)

async def inner():
    await asyncio.sleep(0)
    sum(i * i for i in range(20_000))  # after the resume: counted where inner resumed


async def busy():
    while True:
        await inner()

async def idle():
    while True:
        await asyncio.sleep(0.05)

async def main():
    threading.Thread(target=worker, daemon=True).start()
    asyncio.ensure_future(busy()); asyncio.ensure_future(idle())
    print("ready", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


@pytest.fixture
def hub(tmp_path):
    path = TaskCpu(tmp_path).path("CERNSpawner")
    code = hub_config(path) + textwrap.dedent(PROGRAM)
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "ready"
        yield process.pid, path
    finally:
        process.kill()
        process.wait()


def test_a_hub_writes_its_loop_cpu_by_task_when_asked(hub):
    pid, path = hub
    first = read_totals(pid, path)
    second = read_totals(pid, path)
    assert second["written"] == first["written"] + 1
    assert second["cpu_s"]["task busy"] > first["cpu_s"].get("task busy", 0.0)
    assert second["steps"]["task idle"] >= 1
    # The busy task takes the loop's CPU, the idle one next to none of it.
    assert second["cpu_s"]["task busy"] > 10 * second["cpu_s"]["task idle"]
    # By where it resumed: inside `inner`, called from `busy`.
    resumed = second["resumed_s"]
    inside = sum(seconds for where, seconds in resumed.items() if where.startswith("busy > inner > sleep"))
    assert inside > 10 * (resumed["busy"] + resumed["idle"]), resumed  # their first steps only


def test_a_span_adds_only_what_ran_inside_it(hub, tmp_path):
    pid, path = hub
    task_cpu = TaskCpu(tmp_path)
    with task_cpu.span("ours", "CERNSpawner", pid):
        pass
    inside = task_cpu.cpu_s["ours"]["task busy"]
    total = read_totals(pid, path)["cpu_s"]["task busy"]
    assert 0 < inside < total
    # The rest of the process is accounted too: the loop between its steps, the other thread.
    assert task_cpu.steps["ours"][BETWEEN] >= 1
    assert task_cpu.cpu_s["ours"][THREADS] > 0


def test_the_table_puts_the_largest_owner_first_with_the_difference():
    task_cpu = TaskCpu(None)
    task_cpu.cpu_s["ours"].update({"task a": 0.03, "task b": 0.09})
    task_cpu.cpu_s["anchor"].update({"task a": 0.06})
    task_cpu.steps["ours"].update({"task a": 30, "task b": 60})
    task_cpu.steps["anchor"].update({"task a": 30})
    lines = side_by_side(task_cpu, "ours", "anchor", (30, 30))
    assert lines[0] == "hub CPU: ours 4.00 ms a spawn, anchor 2.00"
    assert lines[2].split() == ["3.00", "0.00", "+3.00", "2.0", "0.0", "task", "b"]
    assert lines[3].split() == ["1.00", "2.00", "-1.00", "1.0", "1.0", "task", "a"]


def test_resume_points_rank_the_largest_differences_first():
    task_cpu = TaskCpu(None)
    task_cpu.resumed_s["ours"].update({"t > a": 0.03, "t > b": 0.06})
    task_cpu.resumed_s["anchor"].update({"t > a": 0.09, "t > b": 0.06})
    lines = resume_points(task_cpu, "ours", "anchor", (30, 30))
    assert lines[1].split() == ["1.00", "3.00", "-2.00", "t", ">", "a"]
    assert lines[2].split() == ["2.00", "2.00", "+0.00", "t", ">", "b"]

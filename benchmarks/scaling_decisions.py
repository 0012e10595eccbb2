"""CPU cost of a scaling decision: capacity from the watch's index, then the planner.

A controller round reads one group's capacity from the index the watch keeps up to date (one
`PodIndex.set` per pod event) and asks the planner, once per scaled group, however many users
wait. Measured for 50 waiting GPU pods among 500 pods and 40 nodes; beside it, what a round cost
when it recounted every pod (`summarize` over all of them, as before issue 16).

    .venv/bin/python benchmarks/scaling_decisions.py

Writes benchmarks/results/scaling_decisions.json.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cern_spawner.scaling.capacity import GroupSelector, capacity_of, index_of, pod_use, summarize  # noqa: E402
from cern_spawner.scaling.planner import GroupView, plan  # noqa: E402

LABEL = "magnum.openstack.org/nodegroup"


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def objects(nodes: int, running: int, waiting: int):
    node_list = [
        {
            "metadata": {"name": f"n{i}", "labels": {LABEL: "gpu-v100" if i % 2 else "default-worker"}},
            "status": {
                "allocatable": {"nvidia.com/gpu": "4"},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }
        for i in range(nodes)
    ]
    pods = []
    for i in range(running + waiting):
        gpu = i % 5 == 0 or i >= running
        pods.append(
            {
                "metadata": {"name": f"p{i}"},
                "spec": {
                    "nodeName": f"n{i % nodes}" if i < running else None,
                    "nodeSelector": {LABEL: "gpu-v100" if gpu else "default-worker"},
                    "containers": [{"resources": {"limits": {"nvidia.com/gpu": "1"}} if gpu else {}}],
                },
                "status": {"phase": "Running" if i < running else "Pending"},
            }
        )
    return node_list, pods


def per_call_us(fn, calls: int, rounds: int = 7) -> float:
    samples = []
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(calls):
            fn()
        samples.append((time.process_time() - start) / calls * 1e6)
    return round(statistics.median(samples), 2)


def main() -> None:
    nodes, pods = objects(40, 450, 50)
    groups = [
        GroupSelector("gpu-v100", LABEL, "nvidia.com/gpu"),
        GroupSelector("default-worker", LABEL, "nvidia.com/gpu"),
    ]
    capacity = summarize(nodes, pods, groups, {"gpu-v100": 4})["gpu-v100"]
    view = GroupView(
        name="gpu-v100",
        gpus_per_node=4,
        backend_nodes=capacity.nodes,
        joined_nodes=capacity.nodes,
        free_per_node=capacity.free_per_node,
        pending_requests=capacity.pending_requests,
        booting_nodes=0,
        baseline=0,
        ceiling=40,
    )
    decision = plan(view)
    index = index_of(pods)
    # One pod event: a waiting pod bound to a node, or back.
    waiting = pods[-1]
    bound = {**waiting, "spec": {**waiting["spec"], "nodeName": "n1"}, "status": {"phase": "Running"}}
    states = [bound, waiting]
    flip = [0]

    def event():
        flip[0] ^= 1
        index.set("p-last", pod_use(states[flip[0]]))  # what the watch does per pod event

    results = {
        "benchmark": "scaling_decisions",
        "objects": {"nodes": 40, "pods": 500, "waiting_gpu_pods": 50},
        "decision": {
            "pending_gpus": capacity.pending_gpus,
            "free_gpus": capacity.free_gpus,
            "target": decision.target,
        },
        "planner_us_per_decision": per_call_us(lambda: plan(view), 20000),
        "capacity_us_per_round": per_call_us(
            lambda: capacity_of(nodes, index, groups[:1], {"gpu-v100": 4}), 2000
        ),
        "index_us_per_pod_event": per_call_us(lambda: event(), 20000),
        "recount_us_per_round": per_call_us(lambda: summarize(nodes, pods, groups[:1], {"gpu-v100": 4}), 200),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "loadavg_1_5_15": load()},
    }
    out = ROOT / "benchmarks" / "results" / "scaling_decisions.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

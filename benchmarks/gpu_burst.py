"""50 users ask for a GPU at the same moment, against an empty GPU node group.

Runs in a sandbox of its own (a cluster named `burst`: one CPU node, a GPU group at 0 nodes with
4 GPUs per node and a ceiling of 16), so the machine's main sandbox is left alone.

- CERNSpawner: 50 concurrent REST spawns of a one-GPU profile with the group at 0 nodes. Counted:
  cloud writes (resize/patch), the most nodes the group ever had against the 13 the demand needs
  (over-provisioning), seconds until all 50 notebooks are ready, hub CPU seconds per spawn.
- Plain KubeSpawner in the same run: it cannot grow a group, so an admin sizes its own group
  (`gpu-hand`, the same shape, which the CERN hub does not scale) by hand first (13 nodes through
  the same cloud API); then the same 50 spawns with the same pod resources. Its hub CPU per spawn
  is the reference for ours. It is the anchor hub of benchmarks/hubs.py: none of our code loaded
  (until issue 16 it read jupyterhub_config.py, and earlier still ran a scaling controller too).
- Both hubs run all along; `--rounds` rounds, the order of the two hubs alternating by round.

    .venv/bin/python benchmarks/gpu_burst.py [--users 50] [--rounds 2]

Writes benchmarks/results/gpu_burst.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from kubernetes import client, config

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import hubs  # noqa: E402
from cern_spawner.scaling.hub import connect  # noqa: E402
from cern_spawner.scaling.magnum import MagnumGroups  # noqa: E402

GROUP, HAND, PER_NODE, CEILING = "gpu-burst", "gpu-hand", 4, 16
LABEL = "magnum.openstack.org/nodegroup"
GPU_GROUPS = hubs.empty_gpu_group(GROUP, PER_NODE, CEILING) + hubs.empty_gpu_group(HAND, PER_NODE, CEILING)
TOPOLOGY = f"""
cluster: burst
node_group_label: {LABEL}
node_groups:
  default-worker: {{nodes: 1, cpu: "64", memory: 256Gi, zones: [cern-geneva-a]}}
{GPU_GROUPS}"""
CATALOG = f"""
node_groups:
  default-worker: {{}}
  {GROUP}:
    gpu: {{resource: nvidia.com/gpu, per_node: {PER_NODE}, product: NVIDIA-A100-SXM4-40GB}}
    taint: {{key: nvidia.com/gpu, value: present, effect: NoSchedule}}
    scaling: {{backend: magnum, cluster: burst, mode: resize, min_nodes: 0, max_nodes: {CEILING}}}
profiles:
  - slug: shared-1g
    display_name: "Shared, 1 GB memory"
    kind: shared
    cpu: {{guarantee: 0.1, limit: 1}}
    memory: {{guarantee: 256M, limit: 1G}}
    node_group: default-worker
    default: true
  - slug: gpu-burst-1
    display_name: "Dedicated 1 GPU"
    kind: dedicated
    cpu: 0.5
    memory: 1G
    gpus: 1
    node_group: {GROUP}
    start_timeout: 900
"""
# Two cores start 50 notebook servers at once in minutes, not seconds: both hubs wait for them.
PATIENCE = "c.KubeSpawner.http_timeout = 900\n"
CERN_CONFIG = PATIENCE + "c.GPUScaling.interval = 1\nc.GPUScaling.grace_period = 10\n"
PLAIN_NAMESPACE = "bench-kubespawner"
# The same pod as the catalog's gpu-burst-1 (resources, node selector, toleration), hand-written.
PLAIN_CONFIG = (
    PATIENCE
    + f"""
c.KubeSpawner.start_timeout = 900
c.KubeSpawner.cpu_guarantee = c.KubeSpawner.cpu_limit = 0.5
c.KubeSpawner.mem_guarantee = c.KubeSpawner.mem_limit = "1G"
c.KubeSpawner.extra_resource_guarantees = {{"nvidia.com/gpu": "1"}}
c.KubeSpawner.extra_resource_limits = {{"nvidia.com/gpu": "1"}}
c.KubeSpawner.node_selector = {{{LABEL!r}: {HAND!r}}}
c.KubeSpawner.tolerations = [
    {{"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}}
]
"""
)


def wait(predicate, timeout: float, what: str, step: float = 0.5) -> float:
    start = time.perf_counter()
    while not predicate():
        if time.perf_counter() - start > timeout:
            raise TimeoutError(what)
        time.sleep(step)
    return time.perf_counter() - start


class Cloud:
    def __init__(self, url: str):
        self.url = url

    def state(self) -> dict:
        return requests.get(f"{self.url}/_simulator/state", timeout=10).json()

    def mark(self) -> int:
        log = self.state()["requests"]
        return log[-1]["seq"] if log else 0

    def writes(self, since: int) -> int:
        log = self.state()["requests"]
        return sum(
            1 for r in log if r["seq"] > since and r["method"] in ("POST", "PATCH") and r["status"] < 300
        )

    def node_count(self) -> int:
        return self.state()["groups"][GROUP]["node_count"]


def gpu_nodes_ready(core, group: str = GROUP) -> int:
    count = 0
    for node in core.list_node(label_selector=f"{LABEL}={group}").items:
        ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
        count += ready and int((node.status.allocatable or {}).get("nvidia.com/gpu", "0")) > 0
    return count


def burst(hub, users: list[str], options: dict, on_tick=None) -> dict:
    hub.api("POST", "/users", json={"usernames": users})
    meter = hubs.Meter(hub)
    cpu_before = meter.sample()["hub_cpu_s"]
    start = time.perf_counter()

    def spawn(user):
        response = hub.api("POST", f"/users/{user}/server", json=options)
        if response.status_code not in (201, 202):
            raise RuntimeError(f"{user}: {response.status_code} {response.text[:200]}")

    with ThreadPoolExecutor(len(users)) as pool:
        list(pool.map(spawn, users))

    def all_ready():
        if on_tick:
            on_tick()
        listed = hub.api("GET", "/users?limit=200").json()  # the default page holds 50 users
        servers = {u["name"]: u["servers"].get("", {}) for u in listed}
        gone = [u for u in users if not servers.get(u)]
        if gone:  # a spawn failed: the numbers would mean nothing
            raise RuntimeError(f"{len(gone)} spawn(s) failed, e.g. {gone[0]}: see {hub.log}")
        return all(servers[u].get("ready") for u in users)

    wait(all_ready, 1200, "all notebooks ready", step=1)
    elapsed = time.perf_counter() - start
    cpu = meter.sample()["hub_cpu_s"] - cpu_before
    return {
        "loadavg_1_5_15": hubs.load(),
        "all_ready_s": round(elapsed, 1),
        "hub_cpu_s": round(cpu, 2),
        "hub_cpu_s_per_spawn": round(cpu / len(users), 3),
    }


def stop_all(hub, users: list[str], core, namespace: str) -> None:
    with ThreadPoolExecutor(10) as pool:
        list(pool.map(lambda u: hub.api("DELETE", f"/users/{u}/server"), users))
    wait(lambda: not core.list_namespaced_pod(namespace).items, 300, "pods removed")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2, help="rounds, the hubs' order alternating")
    args = parser.parse_args()
    needed = math.ceil(args.users / PER_NODE)
    began, load_start = time.time(), [round(x, 2) for x in os.getloadavg()]
    scratch = Path(tempfile.mkdtemp(prefix="gpu-burst-"))  # kept when the run fails, for its logs
    os.environ["CERN_SANDBOX_STATE"] = str(scratch / "state")
    (scratch / "topology.yaml").write_text(TOPOLOGY)
    (scratch / "profiles").mkdir()
    (scratch / "profiles" / "burst.yaml").write_text(CATALOG)
    os.environ["CERN_PROFILES"] = str(scratch / "profiles")
    up = subprocess.run(
        [sys.executable, "-m", "sandbox", "up", "--json", "--topology", str(scratch / "topology.yaml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if up.returncode != 0:
        raise SystemExit(up.stderr)
    report = json.loads(up.stdout)
    try:
        results = run(report, args.users, needed, scratch, args.rounds)
    finally:
        subprocess.run([sys.executable, "-m", "sandbox", "down"], cwd=ROOT, capture_output=True)
    shutil.rmtree(scratch, ignore_errors=True)
    results["date"] = datetime.datetime.fromtimestamp(began, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    results["duration_s"] = round(time.time() - began, 1)
    results["machine"]["loadavg_start"] = load_start
    results["machine"]["loadavg_1_5_15"] = hubs.load()
    out = ROOT / "benchmarks" / "results" / "gpu_burst.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


def run(report: dict, users_count: int, needed: int, scratch: Path, rounds: int) -> dict:
    core = client.CoreV1Api(config.new_client_from_config(report["kubeconfig"]))
    hubs.ensure_namespace(core, PLAIN_NAMESPACE)
    cloud = Cloud(report["openstack"]["url"])
    requests.post(
        f"{cloud.url}/_simulator/settings", json={"boot_delay": 5, "gpu_delay": 2}, timeout=10
    ).raise_for_status()
    magnum = MagnumGroups(connect("sandbox", report["openstack"]["clouds_yaml"]), "burst")
    cern = plain = None
    try:
        plain = hubs.anchor_hub(scratch / "plain", report, PLAIN_NAMESPACE, PLAIN_CONFIG, timeout=180)
        cern = hubs.cern_hub(scratch / "cern", CERN_CONFIG, timeout=180)
        done = []
        for index in range(rounds):
            entry: dict = {"order": hubs.alternating(["KubeSpawner", "CERNSpawner"], index)}
            for name in entry["order"]:
                users = [f"burst-{index}-{name[0].lower()}{i}" for i in range(users_count)]
                if name == "KubeSpawner":
                    # An admin sizes the group first, through the same cloud API, off the clock.
                    magnum.resize(HAND, needed)
                    wait(lambda: gpu_nodes_ready(core, HAND) == needed, 300, "hand-sized GPU nodes")
                    entry[name] = burst(plain, users, {})
                    stop_all(plain, users, core, PLAIN_NAMESPACE)
                    magnum.resize(HAND, 0)
                    wait(lambda: gpu_nodes_ready(core, HAND) == 0, 300, "hand-sized group back at 0")
                    continue
                # CERNSpawner from 0 nodes: the hub grows the group for everyone waiting.
                mark = cloud.mark()
                most = [0]

                def watch_count(most=most):
                    most[0] = max(most[0], cloud.node_count())

                result = burst(cern, users, {"profile": "gpu-burst-1"}, on_tick=watch_count)
                watch_count()
                result.update(
                    cloud_writes=cloud.writes(mark),
                    most_nodes=most[0],
                    nodes_needed=needed,
                    over_provisioned_nodes=most[0] - needed,
                )
                stop_all(cern, users, core, report["user_namespace"])
                result["shrink_back_s"] = round(
                    wait(lambda: cloud.node_count() == 0, 300, "the hub to shrink the group back"), 1
                )
                result["writes_including_shrink"] = cloud.writes(mark)
                entry[name] = result
            print(json.dumps(entry), flush=True)
            done.append(entry)
    finally:
        for hub in (cern, plain):
            if hub is not None:
                hub.stop()

    def median(name: str, field: str) -> float:
        return statistics.median(r[name][field] for r in done)

    cern_result = {
        field: median("CERNSpawner", field)
        for field in ("all_ready_s", "hub_cpu_s_per_spawn", "cloud_writes", "over_provisioned_nodes")
    }
    cern_result.update(
        shrink_back_s=median("CERNSpawner", "shrink_back_s"),
        writes_including_shrink=max(r["CERNSpawner"]["writes_including_shrink"] for r in done),
    )
    plain_result = {field: median("KubeSpawner", field) for field in ("all_ready_s", "hub_cpu_s_per_spawn")}
    return {
        "benchmark": "gpu_burst",
        "users": users_count,
        "rounds": rounds,
        "gpus_per_node": PER_NODE,
        "ceiling": CEILING,
        "simulated_boot_s": 5,
        "simulator_settings": cloud.state()["settings"],
        "cern_hub": "GPUScaling.interval 1 s, GPUScaling.grace_period 10 s",
        "plain_hub": "the anchor hub of benchmarks/hubs.py (plain KubeSpawner, no code of ours), "
        f"its own group {HAND} sized by hand",
        "machine": hubs.machine(),
        "CERNSpawner_from_0_nodes": cern_result,
        "KubeSpawner_hand_sized": plain_result,
        "per_round": done,
        "ratio_hub_cpu_per_spawn_cern_over_kubespawner": round(
            cern_result["hub_cpu_s_per_spawn"] / plain_result["hub_cpu_s_per_spawn"], 3
        ),
        "ratio_per_round": [
            round(r["CERNSpawner"]["hub_cpu_s_per_spawn"] / r["KubeSpawner"]["hub_cpu_s_per_spawn"], 3)
            for r in done
        ],
    }


if __name__ == "__main__":
    main()

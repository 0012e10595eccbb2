"""50 users ask for a GPU at the same moment, against an empty GPU node group.

Runs in a sandbox of its own (a cluster named `burst`: one CPU node, a GPU group at 0 nodes with
4 GPUs per node and a ceiling of 16), so the machine's main sandbox is left alone.

- CERNSpawner: 50 concurrent REST spawns of a one-GPU profile with the group at 0 nodes. Counted:
  cloud writes (resize/patch), the most nodes the group ever had against the 13 the demand needs
  (over-provisioning), seconds until all 50 notebooks are ready, hub CPU seconds per spawn.
- Plain KubeSpawner in the same run: it cannot grow a group, so an admin sizes it by hand first
  (13 nodes through the same cloud API); then the same 50 spawns with the same pod resources.
  Its hub CPU per spawn is the reference for ours. That hub runs no scaling controller: the
  repository's jupyterhub_config.py grows groups (and starts the controller with the hub) whenever
  the sandbox has an OpenStack simulator, so the plain hub reads the sandbox through a view of its
  state directory whose sandbox.json has no `openstack` (issue 16: before, it ran the controller too).

    .venv/bin/python benchmarks/gpu_burst.py [--users 50]

Writes benchmarks/results/gpu_burst.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shutil
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

from cern_spawner.scaling.hub import connect  # noqa: E402
from cern_spawner.scaling.magnum import MagnumGroups  # noqa: E402
from sandbox.hubrunner import start_hub, state_without_cloud  # noqa: E402

GROUP, PER_NODE, CEILING = "gpu-burst", 4, 16
LABEL = "magnum.openstack.org/nodegroup"
TOPOLOGY = f"""
cluster: burst
node_group_label: {LABEL}
node_groups:
  default-worker: {{nodes: 1, cpu: "64", memory: 256Gi, zones: [cern-geneva-a]}}
  {GROUP}:
    nodes: 0
    cpu: "64"
    memory: 256Gi
    zones: [cern-geneva-a]
    gpu: {{resource: nvidia.com/gpu, per_node: {PER_NODE}, product: NVIDIA-A100-SXM4-40GB}}
    gpu_taint: {{key: nvidia.com/gpu, value: present, effect: NoSchedule}}
    scaling: {{min_nodes: 0, max_nodes: {CEILING}}}
"""
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
CERN_CONFIG = PATIENCE + "c.CERNSpawner.scaling_interval = 1\nc.CERNSpawner.scaling_grace_period = 10\n"
PLAIN_NAMESPACE = "bench-kubespawner"
# jupyterhub_config.py read a sandbox without a cloud: no openstack_cloud, no start_with_hub.
NO_CONTROLLER = (
    'assert "openstack_cloud" not in c.CERNSpawner, "the plain hub must not run the scaling controller"\n'
)
# The same pod as the catalog's gpu-burst-1 (resources, node selector, toleration), hand-written.
PLAIN_CONFIG = (
    PATIENCE
    + NO_CONTROLLER
    + f"""
c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
c.KubeSpawner.namespace = {PLAIN_NAMESPACE!r}
c.KubeSpawner.cmd = ["jupyterhub-singleuser"]
c.KubeSpawner.start_timeout = 900
c.KubeSpawner.cpu_guarantee = c.KubeSpawner.cpu_limit = 0.5
c.KubeSpawner.mem_guarantee = c.KubeSpawner.mem_limit = "1G"
c.KubeSpawner.extra_resource_guarantees = {{"nvidia.com/gpu": "1"}}
c.KubeSpawner.extra_resource_limits = {{"nvidia.com/gpu": "1"}}
c.KubeSpawner.node_selector = {{{LABEL!r}: {GROUP!r}}}
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


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


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


def gpu_nodes_ready(core) -> int:
    count = 0
    for node in core.list_node(label_selector=f"{LABEL}={GROUP}").items:
        ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
        count += ready and int((node.status.allocatable or {}).get("nvidia.com/gpu", "0")) > 0
    return count


def burst(hub, users: list[str], options: dict, on_tick=None) -> dict:
    for user in users:
        hub.api("POST", f"/users/{user}")
    cpu_before = cpu_seconds(hub.process.pid)
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
    cpu = cpu_seconds(hub.process.pid) - cpu_before
    return {
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
        results = run(report, args.users, needed, scratch)
    finally:
        subprocess.run([sys.executable, "-m", "sandbox", "down"], cwd=ROOT, capture_output=True)
    shutil.rmtree(scratch, ignore_errors=True)
    results["date"] = datetime.datetime.fromtimestamp(began, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    results["duration_s"] = round(time.time() - began, 1)
    results["machine"]["loadavg_1_5_15"] = {
        "start": load_start,
        "end": [round(x, 2) for x in os.getloadavg()],
    }
    out = ROOT / "benchmarks" / "results" / "gpu_burst.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


def run(report: dict, users_count: int, needed: int, scratch: Path) -> dict:
    core = client.CoreV1Api(config.new_client_from_config(report["kubeconfig"]))
    core.create_namespace({"metadata": {"name": PLAIN_NAMESPACE}})
    cloud = Cloud(report["openstack"]["url"])
    requests.post(
        f"{cloud.url}/_simulator/settings", json={"boot_delay": 5, "gpu_delay": 2}, timeout=10
    ).raise_for_status()
    users = [f"burst-{i}" for i in range(users_count)]

    # Plain KubeSpawner: an admin sizes the group first, through the same cloud API.
    magnum = MagnumGroups(connect("sandbox", report["openstack"]["clouds_yaml"]), "burst")
    magnum.resize(GROUP, needed)
    wait(lambda: gpu_nodes_ready(core) == needed, 300, "hand-sized GPU nodes")
    plain_state = state_without_cloud(Path(report["state_dir"]), scratch / "plain-state")
    plain = start_hub(scratch / "plain", PLAIN_CONFIG, env={"CERN_SANDBOX_STATE": str(plain_state)})
    try:
        plain_result = burst(plain, users, {})
        stop_all(plain, users, core, PLAIN_NAMESPACE)
    finally:
        plain.stop()
    magnum.resize(GROUP, 0)
    wait(lambda: gpu_nodes_ready(core) == 0 and cloud.node_count() == 0, 300, "group back at 0")

    # CERNSpawner from 0 nodes: the hub grows the group for everyone waiting.
    cern = start_hub(scratch / "cern", CERN_CONFIG)
    try:
        mark = cloud.mark()
        most = [0]

        def watch_count():
            most[0] = max(most[0], cloud.node_count())

        cern_result = burst(cern, users, {"profile": "gpu-burst-1"}, on_tick=watch_count)
        watch_count()
        cern_result.update(
            cloud_writes=cloud.writes(mark),
            most_nodes=most[0],
            nodes_needed=needed,
            over_provisioned_nodes=most[0] - needed,
        )
        stop_all(cern, users, core, report["user_namespace"])
        cern_result["shrink_back_s"] = round(
            wait(lambda: cloud.node_count() == 0, 300, "the hub to shrink the group back"), 1
        )
        cern_result["writes_including_shrink"] = cloud.writes(mark)
    finally:
        cern.stop()
    return {
        "benchmark": "gpu_burst",
        "users": users_count,
        "gpus_per_node": PER_NODE,
        "ceiling": CEILING,
        "simulated_boot_s": 5,
        "simulator_settings": cloud.state()["settings"],
        "cern_hub": "scaling_interval 1 s, scaling_grace_period 10 s",
        "plain_hub": "no scaling controller (jupyterhub_config.py read a sandbox without a cloud)",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "CERNSpawner_from_0_nodes": cern_result,
        "KubeSpawner_hand_sized": plain_result,
        "ratio_hub_cpu_per_spawn_cern_over_kubespawner": round(
            cern_result["hub_cpu_s_per_spawn"] / plain_result["hub_cpu_s_per_spawn"], 3
        ),
    }


if __name__ == "__main__":
    main()

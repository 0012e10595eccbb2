"""200 users start a server at once: failures and orphan pods, CERNSpawner against plain KubeSpawner.

A sandbox of its own (process mode; cluster `burst`: 4 large CPU nodes, a GPU group at 0 nodes, 8 GPUs per
node), two hubs at once (`benchmarks/hubs.py`): CERNSpawner with the repository's jupyterhub_config.py, and
the anchor, plain KubeSpawner loading no code of ours. Both: `concurrent_spawn_limit` 300, the same start
and HTTP timeouts, the same pod resources, and a tiny HTTP server standing in for Jupyter as the pod's
command (the node agent runs it as a process), so what is measured is the hubs and the API server, not
200 Jupyter start-ups on two cores.

Each round, each hub in turn (the order alternates by round): 200 concurrent `POST /users/<name>/server`
through the REST API; each spawn ends ready, or failed (the POST refused, or the server gone before it was
ready). Then every server is stopped; pods still there 60 s after the hub reports all servers gone are
orphans (counted, then deleted so the next round starts clean).

    .venv/bin/python benchmarks/spawn_burst.py [--rounds 3] [--users 200] [--gpu]

`--gpu`: after the shared rounds, one burst of the one-GPU profile: CERNSpawner from 0 GPU nodes (the hub
grows the group), plain KubeSpawner on the group sized by hand to what the burst needs.
Writes benchmarks/results/spawn_burst.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from kubernetes import client, config

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.hubs import (  # noqa: E402
    Meter,
    alternating,
    anchor_hub,
    cern_hub,
    empty_gpu_group,
    ensure_namespace,
    load,
    machine,
    sandbox_down,
    sandbox_up,
    servers_ready,
)

GROUP, PER_NODE = "gpu-burst", 8
LABEL = "magnum.openstack.org/nodegroup"


def topology(users: int) -> str:
    ceiling = math.ceil(users / PER_NODE)
    return f"""
cluster: burst
node_group_label: {LABEL}
node_groups:
  default-worker: {{nodes: 4, cpu: "64", memory: 256Gi, zones: [cern-geneva-a, cern-geneva-b]}}
{empty_gpu_group(GROUP, PER_NODE, ceiling)}"""


def catalog(users: int) -> str:
    ceiling = math.ceil(users / PER_NODE)
    return f"""
node_groups:
  default-worker: {{}}
  {GROUP}:
    gpu: {{resource: nvidia.com/gpu, per_node: {PER_NODE}, product: NVIDIA-A100-SXM4-40GB}}
    taint: {{key: nvidia.com/gpu, value: present, effect: NoSchedule}}
    scaling: {{backend: magnum, cluster: burst, mode: resize, min_nodes: 0, max_nodes: {ceiling}}}
profiles:
  - slug: shared-1g
    display_name: "Shared, 1 GB memory"
    kind: shared
    cpu: {{guarantee: 0.1, limit: 0.5}}
    memory: {{guarantee: 512M, limit: 1G}}
    node_group: default-worker
    default: true
  - slug: gpu-burst-1
    display_name: "Dedicated 1 GPU"
    kind: dedicated
    cpu: 0.5
    memory: 1G
    gpus: 1
    node_group: {GROUP}
"""


# The stand-in for Jupyter: answers 200 on port 8888 to every path; the arguments KubeSpawner appends
# (--port, --ip, ...) land in sys.argv, unread.
STANDIN = (
    "import http.server as h\n"
    "class A(h.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200); self.send_header('Content-Length', '0'); self.end_headers()\n"
    "    def log_message(self, *a): pass\n"
    "h.ThreadingHTTPServer(('0.0.0.0', 8888), A).serve_forever()\n"
)
# Both hubs: the same knobs (the anchor already mirrors jupyterhub_config.py's timeouts).
BOTH = f"""
c.JupyterHub.concurrent_spawn_limit = 300
c.KubeSpawner.cmd = ["python", "-c", {STANDIN!r}]
"""
PLAIN_NAMESPACE = "bench-kubespawner"
# The pods of the catalog's profiles, written by hand for the plain hub.
PLAIN_SHARED = """
c.KubeSpawner.cpu_guarantee = 0.1
c.KubeSpawner.cpu_limit = 0.5
c.KubeSpawner.mem_guarantee = "512M"
c.KubeSpawner.mem_limit = "1G"
"""
PLAIN_GPU = f"""
c.KubeSpawner.cpu_guarantee = c.KubeSpawner.cpu_limit = 0.5
c.KubeSpawner.mem_guarantee = c.KubeSpawner.mem_limit = "1G"
c.KubeSpawner.extra_resource_guarantees = {{"nvidia.com/gpu": "1"}}
c.KubeSpawner.extra_resource_limits = {{"nvidia.com/gpu": "1"}}
c.KubeSpawner.node_selector = {{{LABEL!r}: {GROUP!r}}}
c.KubeSpawner.tolerations = [
    {{"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}}
]
"""
SETTLE_S = 900  # the longest a burst may take to end (every spawn ready or failed)
ORPHAN_GRACE_S = 60


def _post(hub, path: str, body: dict | None = None) -> requests.Response:
    # One connection per request: 200 threads on one requests.Session would share its small pool.
    return requests.post(
        f"{hub.url}/hub/api{path}", json=body, headers={"Authorization": f"token {hub.token}"}, timeout=300
    )


def burst(hub, users: list[str], options: dict) -> dict:
    """Start every user's server at once; wait until each is ready or failed."""
    created = _post(hub, "/users", {"usernames": users})
    if created.status_code not in (201, 409):
        raise RuntimeError(f"creating users: {created.status_code} {created.text[:200]}")
    meter = Meter(hub)
    before = meter.sample()
    start = time.perf_counter()
    refused: dict[str, str] = {}

    def spawn(user):
        response = _post(hub, f"/users/{user}/server", options)
        if response.status_code not in (201, 202):
            refused[user] = f"{response.status_code} {response.text[:200]}"

    with ThreadPoolExecutor(len(users)) as pool:
        list(pool.map(spawn, users))
    posted = time.perf_counter() - start
    states: dict = {}
    while time.perf_counter() - start < SETTLE_S:
        states = servers_ready(hub, users)
        if all(state is not False for state in states.values()):  # each ready (True) or gone (None)
            break
        time.sleep(2)
    elapsed = time.perf_counter() - start
    after = meter.sample()
    failed = sorted(u for u, state in states.items() if state is not True)
    return {
        "failures": len(failed),
        "failed_users": failed[:20],
        "refused_posts": len(refused),
        "still_starting": sum(1 for state in states.values() if state is False),
        "all_posts_answered_s": round(posted, 1),
        "all_settled_s": round(elapsed, 1),
        "hub_cpu_s": round(after["hub_cpu_s"] - before["hub_cpu_s"], 2),
        "hub_cpu_s_per_spawn": round((after["hub_cpu_s"] - before["hub_cpu_s"]) / len(users), 3),
    }


def stop_all(hub, users: list[str], core, namespace: str) -> dict:
    """Stop every server; pods left 60 s after the hub says all are gone are orphans (then deleted)."""
    with ThreadPoolExecutor(20) as pool:
        list(
            pool.map(
                lambda u: requests.delete(
                    f"{hub.url}/hub/api/users/{u}/server",
                    headers={"Authorization": f"token {hub.token}"},
                    timeout=300,
                ),
                users,
            )
        )
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline and any(s is not None for s in servers_ready(hub, users).values()):
        time.sleep(2)
    deadline = time.monotonic() + ORPHAN_GRACE_S
    pods = core.list_namespaced_pod(namespace).items
    while pods and time.monotonic() < deadline:
        time.sleep(2)
        pods = core.list_namespaced_pod(namespace).items
    orphans = sorted(p.metadata.name for p in pods)
    for name in orphans:
        core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
    return {"orphan_pods": len(orphans), "orphan_names": orphans[:20]}


def gpu_nodes_ready(core) -> int:
    count = 0
    for node in core.list_node(label_selector=f"{LABEL}={GROUP}").items:
        ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
        count += ready and int((node.status.allocatable or {}).get("nvidia.com/gpu", "0")) > 0
    return count


def wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(2)


def run(report: dict, scratch: Path, rounds: int, users_count: int, gpu: bool) -> dict:
    core = client.CoreV1Api(config.new_client_from_config(report["kubeconfig"]))
    ensure_namespace(core, PLAIN_NAMESPACE)
    cern = cern_hub(scratch / "cern", BOTH, timeout=300)
    plain = anchor_hub(scratch / "plain", report, PLAIN_NAMESPACE, BOTH + PLAIN_SHARED, timeout=300)
    sides = {
        "CERNSpawner": (cern, report["user_namespace"], {"profile": "shared-1g"}),
        "KubeSpawner": (plain, PLAIN_NAMESPACE, {}),
    }
    results: dict = {"shared": []}
    try:
        for round_ in range(rounds):
            entry = {"round": round_ + 1, "order": alternating(tuple(sides), round_)}
            for name in entry["order"]:
                hub, namespace, options = sides[name]
                users = [f"r{round_}-{name[0].lower()}-{i}" for i in range(users_count)]
                entry[name] = {"load_before": load(), **burst(hub, users, options)}
                entry[name].update(stop_all(hub, users, core, namespace))
                print(json.dumps({name: entry[name]}), flush=True)
            results["shared"].append(entry)
        if gpu:
            try:
                results["gpu"] = gpu_burst(report, core, cern, scratch, users_count)
            except Exception as e:  # the shared rounds' figures are kept; say what stopped this one
                results["gpu"] = {"error": repr(e)}
    finally:
        cern.stop()
        plain.stop()
    return results


def gpu_burst(report: dict, core, cern, scratch: Path, users_count: int) -> dict:
    """CERNSpawner from 0 GPU nodes; then plain KubeSpawner on a group an admin sized by hand."""
    from cern_spawner.scaling.hub import connect
    from cern_spawner.scaling.magnum import MagnumGroups

    needed = math.ceil(users_count / PER_NODE)
    url = report["openstack"]["url"]
    requests.post(f"{url}/_simulator/settings", json={"boot_delay": 5, "gpu_delay": 2}, timeout=10)
    out: dict = {"nodes_needed": needed}
    users = [f"gpu-c-{i}" for i in range(users_count)]
    out["CERNSpawner_from_0_nodes"] = {
        "load_before": load(),
        **burst(cern, users, {"profile": "gpu-burst-1"}),
    }
    out["CERNSpawner_from_0_nodes"].update(stop_all(cern, users, core, report["user_namespace"]))
    print(json.dumps(out), flush=True)
    magnum = MagnumGroups(connect("sandbox", report["openstack"]["clouds_yaml"]), "burst")
    # The hub shrinks what it grew after its grace period; size the group by hand for the plain hub.
    magnum.resize(GROUP, needed)
    wait(lambda: gpu_nodes_ready(core) >= needed, 600, "hand-sized GPU nodes")
    plain = anchor_hub(scratch / "plain-gpu", report, PLAIN_NAMESPACE, BOTH + PLAIN_GPU, timeout=300)
    try:
        users = [f"gpu-k-{i}" for i in range(users_count)]
        out["KubeSpawner_hand_sized"] = {"load_before": load(), **burst(plain, users, {})}
        out["KubeSpawner_hand_sized"].update(stop_all(plain, users, core, PLAIN_NAMESPACE))
    finally:
        plain.stop()
    return out


def tables(out: dict) -> list[dict]:
    """The results as docs/performance.md shows them (benchmarks/report.py renders this key)."""
    rows = []
    for entry in out["shared"]:
        for name in entry["order"]:
            r = entry[name]
            rows.append(
                [
                    entry["round"],
                    name,
                    r["failures"],
                    r["orphan_pods"],
                    r["all_settled_s"],
                    r["hub_cpu_s_per_spawn"],
                ]
                + [" / ".join(str(x) for x in r["load_before"])]
            )
    report = [
        {
            "title": f"{out['users']} concurrent shared spawns, per round (first listed ran first)",
            "columns": [
                "round",
                "hub",
                "failures",
                "orphan pods",
                "all settled (s)",
                "hub CPU s/spawn",
                "load before",
            ],
            "rows": rows,
        }
    ]
    gpu = out.get("gpu") or {}
    if "error" in gpu:
        report.append({"title": "GPU burst", "columns": ["error"], "rows": [[gpu["error"]]]})
    elif gpu:
        report.append(
            {
                "title": f"{out['users']} concurrent one-GPU spawns ({gpu['nodes_needed']} nodes needed)",
                "columns": [
                    "hub",
                    "failures",
                    "orphan pods",
                    "all settled (s)",
                    "hub CPU s/spawn",
                    "load before",
                ],
                "rows": [
                    [name, r["failures"], r["orphan_pods"], r["all_settled_s"], r["hub_cpu_s_per_spawn"]]
                    + [" / ".join(str(x) for x in r["load_before"])]
                    for name, r in (
                        ("CERNSpawner, group from 0 nodes", gpu["CERNSpawner_from_0_nodes"]),
                        ("KubeSpawner, group sized by hand", gpu["KubeSpawner_hand_sized"]),
                    )
                ],
            }
        )
    return report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--gpu", action="store_true", help="also the GPU burst (from 0 nodes)")
    parser.add_argument("--state", help="sandbox state directory (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="leave the sandbox running (reused by a rerun)")
    args = parser.parse_args()
    began, load_start = time.time(), load()
    scratch = Path(tempfile.mkdtemp(prefix="spawn-burst-"))  # kept when the run fails, for the hub logs
    state = Path(args.state) if args.state else scratch / "state"
    # Beside the state: a rerun with --state finds the running sandbox's topology at the same path.
    topology_file = state.parent / f"{state.name}-topology.yaml"
    topology_file.write_text(topology(args.users))
    (scratch / "profiles").mkdir()
    (scratch / "profiles" / "burst.yaml").write_text(catalog(args.users))
    os.environ["CERN_PROFILES"] = str(scratch / "profiles")
    os.environ["CERN_SANDBOX_STATE"] = str(state)
    report = sandbox_up(state, topology_file)
    try:
        results = run(report, scratch, args.rounds, args.users, args.gpu)
    finally:
        if not args.keep:
            sandbox_down(state)
    shutil.rmtree(scratch, ignore_errors=True)
    summary = {
        name: {
            "failures_per_round": [r[name]["failures"] for r in results["shared"]],
            "orphan_pods_per_round": [r[name]["orphan_pods"] for r in results["shared"]],
        }
        for name in ("CERNSpawner", "KubeSpawner")
    }
    out = {
        "benchmark": "spawn_burst",
        "date": datetime.datetime.fromtimestamp(began, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "users": args.users,
        "rounds": args.rounds,
        "sandbox": "process mode; 4 CPU nodes (64 cores, 256Gi each); pods run a tiny HTTP server",
        "hubs": "concurrent_spawn_limit 300, start_timeout 120 s, http_timeout 60 s, "
        "k8s_api_request_timeout 3 s (KubeSpawner's default)",
        "machine": {**machine(), "loadavg_1_5_15_start": load_start},
        "duration_s": round(time.time() - began, 1),
        "summary": summary,
        **results,
    }
    out["report"] = tables(out)
    path = ROOT / "benchmarks" / "results" / "spawn_burst.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()

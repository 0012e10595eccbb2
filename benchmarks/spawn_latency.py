"""Spawn and stop latency: CERNSpawner against plain KubeSpawner, side by side on the sandbox.

Two hubs run at once against the same cluster (benchmarks/hubs.py: CERNSpawner, and the anchor,
plain KubeSpawner with no code of ours); spawns alternate between them so that both see the same
machine load, and which hub goes first alternates by round. Each spawn is timed from the REST
request to the server being ready (pod scheduled, process started, notebook answering the hub,
route added: watched at the hub's proxy, so that watching costs the hub nothing), each stop until
the pod object is gone.

    .venv/bin/python benchmarks/spawn_latency.py [--rounds N]

Writes benchmarks/results/spawn_latency.json (`python -m benchmarks.report` makes the table).
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

from kubernetes import client, config

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import hubs  # noqa: E402

PLAIN_NAMESPACE = "bench-kubespawner"
# Plain KubeSpawner as most deployments start: its defaults, plus the command (its default is the
# image's CMD, which the sandbox cannot run) and a namespace that does not enforce PSA restricted,
# which its default pods would fail.
PLAIN_CONFIG = """
c.KubeSpawner.cpu_limit = 1.0
c.KubeSpawner.mem_limit = "2G"
"""
PROXY_TOKEN = secrets.token_hex(32)  # both hubs' proxies: readiness is read from their routes


def wait(predicate, timeout: float, what: str) -> float:
    start = time.perf_counter()
    while not predicate():
        if time.perf_counter() - start > timeout:
            raise TimeoutError(what)
        time.sleep(0.02)
    return time.perf_counter() - start


def spawn_and_stop(hub, core, namespace: str, user: str, options: dict) -> tuple[float, float]:
    hub.api("POST", f"/users/{user}")
    start = time.perf_counter()
    response = hub.api("POST", f"/users/{user}/server", json=options)
    response.raise_for_status()

    def ready():
        return hub.api("GET", f"/users/{user}").json()["servers"].get("", {}).get("ready")

    # Watched at the hub's proxy (its routes), every 20 ms: asking the hub itself that often (a
    # token check and a user model per request) took a loaded machine's CPU from the hub it timed.
    wait(lambda: user in hubs.routed_users(hub, PROXY_TOKEN), 180, f"{user} routed")
    spawn = time.perf_counter() - start
    wait(ready, 30, f"{user} ready")  # the route is the start's last step; the server reads ready
    pod_name = f"jupyter-{user}"
    start = time.perf_counter()
    hub.api("DELETE", f"/users/{user}/server")

    def gone():
        try:
            core.read_namespaced_pod(pod_name, namespace)
            return False
        except client.ApiException as e:
            return e.status == 404

    wait(gone, 120, f"{pod_name} removed")
    return spawn, time.perf_counter() - start


def summary(samples: list[float]) -> dict:
    return {
        "median_s": round(statistics.median(samples), 3),
        "min_s": round(min(samples), 3),
        "max_s": round(max(samples), 3),
        "samples": [round(s, 3) for s in samples],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    began, load_start = time.time(), hubs.load()
    report = hubs.sandbox_up(hubs.state_dir())
    core = client.CoreV1Api(config.new_client_from_config(report["kubeconfig"]))
    hubs.ensure_namespace(core, PLAIN_NAMESPACE)
    with tempfile.TemporaryDirectory() as scratch:
        proxy = hubs.proxy_token_config(PROXY_TOKEN)
        cern = hubs.cern_hub(Path(scratch) / "cern", proxy)
        plain = hubs.anchor_hub(Path(scratch) / "plain", report, PLAIN_NAMESPACE, PLAIN_CONFIG + proxy)
        try:
            contenders = {
                "CERNSpawner": (cern, report["user_namespace"], {"profile": "shared-2g"}),
                "KubeSpawner": (plain, PLAIN_NAMESPACE, {}),
            }
            spawns = {name: [] for name in contenders}
            stops = {name: [] for name in contenders}
            for round_ in range(args.rounds + 1):
                for name in hubs.alternating(list(contenders), round_):
                    hub, namespace, options = contenders[name]
                    spawn, stop = spawn_and_stop(hub, core, namespace, f"bench-{round_}", options)
                    if round_ > 0:  # the first round warms caches (imports, page cache)
                        spawns[name].append(spawn)
                        stops[name].append(stop)
        finally:
            cern.stop()
            plain.stop()
    results = {
        "benchmark": "spawn_latency",
        "rounds": args.rounds,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(began)),
        "duration_s": round(time.time() - began, 1),
        "machine": hubs.machine(loadavg_start=load_start),
        "spawn": {name: summary(samples) for name, samples in spawns.items()},
        "stop": {name: summary(samples) for name, samples in stops.items()},
    }
    for phase in ("spawn", "stop"):
        results[phase]["ratio_cern_over_kubespawner"] = round(
            results[phase]["CERNSpawner"]["median_s"] / results[phase]["KubeSpawner"]["median_s"], 3
        )
    out = ROOT / "benchmarks" / "results" / "spawn_latency.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

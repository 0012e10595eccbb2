"""The hub's CPU while nobody uses it: CERNSpawner with GPU growth on, against plain KubeSpawner.

Two hubs side by side on one sandbox, in the same run, both from benchmarks/hubs.py:

- CERNSpawner with growth on: `openstack_cloud` is the sandbox's OpenStack simulator (as
  jupyterhub_config.py sets it) and the catalog scales three of the sandbox's GPU groups (`gpu-v100`
  and `gpu-a100` by resize, `gpu-t4` by raising min), so the scaling controller starts with the hub
  (`start_with_hub`) and runs its watch of every Node and Pod and its slow cloud refresh.
- plain `kubespawner.KubeSpawner`: the anchor hub of benchmarks/hubs.py, whose config loads no code
  of ours (no jupyterhub_config.py, no scaling controller; an import hook refuses cern_spawner).

Neither hub has a user or a server. After `--settle` seconds, `--rounds` windows of `--window`
seconds each: the CPU seconds (utime + stime from /proc, so robust to other load on the machine)
of each hub process and of its children except configurable-http-proxy, which is measured on its
own; and the cloud GETs of the window from the simulator's request log (only the CERN hub talks
to the cloud). Reported in CPU seconds per second (s/s) and as the ratio CERNSpawner ÷ KubeSpawner.

    CERN_SANDBOX_STATE=/tmp/sbx-bench .venv/bin/python benchmarks/idle_cpu.py \\
        [--settle 30] [--window 120] [--rounds 3] [--py-spy PATH]

It starts that sandbox when none runs there (`CERN_SANDBOX_STATE=/tmp/sbx-bench .venv/bin/python
-m sandbox down` afterwards). `--py-spy PATH` also samples both hubs with that py-spy during the
windows (`record --nonblocking`: the hubs are never paused, and py-spy's reading of their memory is
its own CPU time, not theirs) and writes where their CPU goes to
benchmarks/diagnostics/idle_cpu_profile.txt and its figures to idle_cpu_pyspy.json there (a
diagnosis, not a result of `make bench`; py-spy is no dependency: `pip install --target DIR py-spy`).
Writes benchmarks/results/idle_cpu.json; docs/performance.md has the table.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from kubernetes import client, config, watch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import hubs  # noqa: E402
from benchmarks.sampling import where_it_goes  # noqa: E402
from cern_spawner.scaling.config import GPUScaling  # noqa: E402

# Recorded with the results, from the code measured rather than written down by hand.
IDLE_REFRESH = GPUScaling.class_traits()["idle_refresh"].default_value

GROUPS = ("gpu-v100", "gpu-a100", "gpu-t4")
# The sandbox's GPU groups (sandbox/topology.yaml), all three scaled by the hub.
CATALOG = """
node_groups:
  default-worker:
    zones: [cern-geneva-a, cern-geneva-b]
  gpu-v100:
    gpu: {resource: nvidia.com/gpu, per_node: 4, product: Tesla-V100-PCIE-32GB}
    taint: {key: nvidia.com/gpu, value: present, effect: NoSchedule}
    scaling: {backend: magnum, cluster: sandbox, mode: resize, min_nodes: 0, max_nodes: 4}
  gpu-a100:
    gpu: {resource: nvidia.com/gpu, per_node: 4, product: NVIDIA-A100-SXM4-40GB}
    taint: {key: nvidia.com/gpu, value: present, effect: NoSchedule}
    scaling: {backend: magnum, cluster: sandbox, mode: resize, min_nodes: 0, max_nodes: 4}
  gpu-t4:
    gpu: {resource: nvidia.com/gpu, per_node: 2, product: Tesla-T4}
    taint: {key: nvidia.com/gpu, value: present, effect: NoSchedule}
    scaling: {backend: magnum, cluster: sandbox, mode: raise-min, min_nodes: 0, max_nodes: 3}
profiles:
  - slug: shared-1g
    display_name: "Shared, 1 GB memory"
    kind: shared
    cpu: {guarantee: 0.1, limit: 1}
    memory: {guarantee: 256M, limit: 1G}
    node_group: default-worker
    default: true
  - slug: v100-1
    display_name: "Dedicated 1 V100 GPU"
    kind: dedicated
    cpu: 0.5
    memory: 1G
    gpus: 1
    node_group: gpu-v100
  - slug: a100-1
    display_name: "Dedicated 1 A100 GPU"
    kind: dedicated
    cpu: 0.5
    memory: 1G
    gpus: 1
    node_group: gpu-a100
  - slug: t4-1
    display_name: "Dedicated 1 T4 GPU"
    kind: dedicated
    cpu: 0.5
    memory: 1G
    gpus: 1
    node_group: gpu-t4
"""
PLAIN_NAMESPACE = "bench-kubespawner"
CERN_CONFIG = """
assert c.GPUScaling.openstack_cloud == "sandbox", "the CERN hub must grow groups"  # noqa: F821
"""
PLAIN_CONFIG = ""  # the anchor hub as benchmarks/hubs.py writes it


class EventCount:
    """Counts the cluster's Node and Pod watch events (what wakes the CERN hub's controller)."""

    def __init__(self, core: client.CoreV1Api, seconds: float):
        self.counts: collections.Counter = collections.Counter()
        self.threads = [
            threading.Thread(target=self._follow, args=(kind, fn, seconds), daemon=True)
            for kind, fn in (("nodes", core.list_node), ("pods", core.list_pod_for_all_namespaces))
        ]
        for thread in self.threads:
            thread.start()

    def _follow(self, kind: str, fn, seconds: float) -> None:
        version = fn(_preload_content=False)
        version = json.loads(version.data)["metadata"]["resourceVersion"]
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 1:
            stream = watch.Watch().stream(
                fn, resource_version=version, timeout_seconds=int(left), allow_watch_bookmarks=False
            )
            for event in stream:
                version = event["object"].metadata.resource_version
                self.counts[f"{kind} {event['type']}"] += 1
                if time.monotonic() >= deadline:
                    break

    def join(self) -> dict:
        for thread in self.threads:
            thread.join(timeout=30)
        return dict(sorted(self.counts.items()))


class Cloud:
    def __init__(self, url: str):
        self.url = url

    def log(self) -> list[dict]:
        return requests.get(f"{self.url}/_simulator/state", timeout=10).json()["requests"]

    def mark(self) -> int:
        log = self.log()
        return log[-1]["seq"] if log else 0

    def since(self, mark: int) -> list[dict]:
        return [r for r in self.log() if r["seq"] > mark]


def summary(values: list[float], digits: int = 5) -> dict:
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "samples": [round(v, digits) for v in values],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settle", type=float, default=30, help="seconds before the first window")
    parser.add_argument("--window", type=float, default=120, help="seconds per measured window")
    parser.add_argument("--rounds", type=int, default=3, help="measured windows")
    parser.add_argument("--py-spy", dest="py_spy", help="a py-spy binary: sample both hubs")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    args = parser.parse_args()
    load_start, began = hubs.load(), time.time()
    up = subprocess.run(
        [sys.executable, "-m", "sandbox", "up", "--json"], cwd=ROOT, capture_output=True, text=True
    )
    if up.returncode != 0:
        raise SystemExit(up.stderr)
    report = json.loads(up.stdout)
    api = config.new_client_from_config(report["kubeconfig"])
    core = client.CoreV1Api(api)
    try:
        core.create_namespace({"metadata": {"name": PLAIN_NAMESPACE}})
    except client.ApiException as e:
        if e.status != 409:
            raise
    cloud = Cloud(report["openstack"]["url"])
    results_dir = ROOT / "benchmarks" / "results"
    # A sampled run is a diagnosis, not a result of `make bench`: its files go beside the results.
    diagnostics_dir = ROOT / "benchmarks" / "diagnostics"

    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        (scratch / "profiles").mkdir()
        (scratch / "profiles" / "idle.yaml").write_text(CATALOG)
        cern = hubs.cern_hub(scratch / "cern", CERN_CONFIG, env={"CERN_PROFILES": str(scratch / "profiles")})
        plain = None
        try:
            plain = hubs.anchor_hub(scratch / "plain", report, PLAIN_NAMESPACE, PLAIN_CONFIG)
            meters = {
                "CERNSpawner": hubs.Meter(cern),
                "KubeSpawner": hubs.Meter(plain),
            }
            time.sleep(args.settle)
            spies = {}
            if args.py_spy:
                for name, hub in (("CERNSpawner", cern), ("KubeSpawner", plain)):
                    spies[name] = subprocess.Popen(
                        [args.py_spy, "record", "--pid", str(hub.process.pid), "--nonblocking"]
                        + ["--rate", str(args.rate), "--format", "raw", "--function"]
                        + ["--duration", str(int(args.window * args.rounds))]
                        + ["--output", str(scratch / f"{name}.raw")],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
            windows = []
            for _ in range(args.rounds):
                mark = cloud.mark()
                events = EventCount(core, args.window)
                before = {name: meter.sample() for name, meter in meters.items()}
                start = time.monotonic()
                time.sleep(args.window)
                after = {name: meter.sample() for name, meter in meters.items()}
                seconds = time.monotonic() - start
                requests_made = cloud.since(mark)
                by_kind = collections.Counter(f"{r['method']} {r['path']}" for r in requests_made)
                gets = {
                    group: sum(
                        1 for r in requests_made if r["method"] == "GET" and r["path"].endswith(f"/{group}")
                    )
                    for group in GROUPS
                }
                windows.append(
                    {
                        "seconds": round(seconds, 2),
                        "cpu_s_per_s": {
                            name: {
                                part: (after[name][f"{part}_cpu_s"] - before[name][f"{part}_cpu_s"]) / seconds
                                for part in ("hub", "proxy")
                            }
                            for name in meters
                        },
                        "cloud_gets_per_group": gets,
                        "cloud_requests": dict(sorted(by_kind.items())),
                        "watch_events": events.join(),
                        "loadavg_1_5_15": hubs.load(),
                    }
                )
                print(json.dumps(windows[-1]), flush=True)
            plain_log = (scratch / "plain" / "hub.log").read_text()
            for spy in spies.values():
                spy.wait(timeout=60)
        finally:
            cern.stop()
            if plain is not None:
                plain.stop()
        if spies:
            text = [
                f"py-spy record --nonblocking --rate {args.rate} --function, {len(windows)} x {args.window} s"
            ]
            for name in spies:
                raw = scratch / f"{name}.raw"
                text += where_it_goes(name, raw.read_text() if raw.exists() else "", args.rate)
            diagnostics_dir.mkdir(exist_ok=True)
            (diagnostics_dir / "idle_cpu_profile.txt").write_text("\n".join(text) + "\n")

    def rate(name: str, part: str) -> list[float]:
        return [w["cpu_s_per_s"][name][part] for w in windows]

    cern_hub, plain_hub = rate("CERNSpawner", "hub"), rate("KubeSpawner", "hub")
    total_seconds = sum(w["seconds"] for w in windows)
    gets_per_10s = {
        group: round(sum(w["cloud_gets_per_group"][group] for w in windows) / total_seconds * 10, 3)
        for group in GROUPS
    }
    results = {
        "benchmark": "idle_cpu",
        "date": datetime.datetime.fromtimestamp(began, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_s": round(time.time() - began, 1),
        "parameters": {
            "settle_s": args.settle,
            "window_s": args.window,
            "rounds": args.rounds,
            "py_spy_rate": args.rate if args.py_spy else None,
            "scaled_groups": list(GROUPS),
            "cern_hub": "CERNSpawner, openstack_cloud = the sandbox's simulator, start_with_hub, defaults "
            f"(scaling_interval 2 s, GPUScaling.idle_refresh {IDLE_REFRESH:g} s)",
            "plain_hub": "the anchor hub of benchmarks/hubs.py: kubespawner.KubeSpawner, no code of ours",
            "plain_hub_log_mentions_scaling": "scaling" in plain_log.lower(),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "kubernetes": client.VersionApi(api).get_code().git_version,
            "nodes": len(core.list_node().items),
            "pods_all_namespaces": len(core.list_pod_for_all_namespaces().items),
            "loadavg_1_5_15": {"start": load_start, "end": hubs.load()},
            "note": "shared machine; CPU is process time (utime + stime), not wall time",
        },
        "hub_cpu_s_per_s": {"CERNSpawner": summary(cern_hub), "KubeSpawner": summary(plain_hub)},
        "proxy_cpu_s_per_s": {
            "CERNSpawner": summary(rate("CERNSpawner", "proxy")),
            "KubeSpawner": summary(rate("KubeSpawner", "proxy")),
        },
        "ratio_cern_over_kubespawner": {
            "of_medians": round(statistics.median(cern_hub) / statistics.median(plain_hub), 3),
            "of_totals": round(sum(cern_hub) / sum(plain_hub), 3),
            "per_window": [round(c / p, 3) for c, p in zip(cern_hub, plain_hub, strict=True)],
        },
        "cloud_gets_per_group_per_10s": gets_per_10s,
        "windows": windows,
    }
    # A sampled run keeps its own file: its figures are the hubs' too, but say so.
    (diagnostics_dir / "idle_cpu_pyspy.json" if args.py_spy else results_dir / "idle_cpu.json").write_text(
        json.dumps(results, indent=1) + "\n"
    )
    print(
        json.dumps(
            {
                k: results[k]
                for k in ("hub_cpu_s_per_s", "ratio_cern_over_kubespawner", "cloud_gets_per_group_per_10s")
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()

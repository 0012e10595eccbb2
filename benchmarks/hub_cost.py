"""What the hub process itself costs: CPU per spawn (shared and GPU), idle CPU, and CPU and memory
at rest with 1,000 running servers — CERNSpawner against the anchor (plain KubeSpawner, none of our
code loaded: benchmarks/hubs.py).

A `--fake` sandbox of its own (cluster `cost`): pods are bound by the real scheduler and marked
Running by the node agent without starting anything, and every user's "notebook" is one stand-in
HTTP server on the loopback (`hubs.standin_notebook`, both hubs connect there). So what is measured
is the hub's own work — the REST request, the spawner, the Kubernetes API calls, the watches, the
readiness check, the proxy route — without two cores also starting Jupyter servers, which made the
earlier burst figures depend on the machine's load more than on the hub. Modelled, not real: the
notebook processes; the pods, nodes, scheduler, API server and (for GPU) the cloud's node boots
(the OpenStack simulator, nodes joining as the Node objects a kubelet would post) are real.

Both hubs run all along, each in its own namespace, with the same two profiles: CERNSpawner's
catalog (shared-1g, and gpu-1 on the group `gpu-grow` that it grows from 0 nodes through the
simulator) and, for the anchor, KubeSpawner's `profile_list` with the same pods (resources, node
selector, toleration); the anchor cannot grow a group, so its GPU profile selects the group
`gpu-hand`, which an admin sizes by hand (same cloud API) before its GPU round, outside the clock.

1. Idle: `--idle-rounds` windows of `--window` s, no servers.
2. Per spawn: `--rounds` rounds; in each, `--spawns` users start the shared profile at once on one
   hub, then on the other (the order alternates by round), then the same for the GPU profile. CPU
   per spawn = the hub's CPU from the first request until every server is ready, divided by the
   spawns; the servers are then stopped, the pods gone and the users deleted before the next hub's
   turn. The ratio is the median of the rounds' own (benchmarks/stats.py). Readiness is
   watched through each hub's proxy routes (`hubs.routed_users`), the hub itself asked only every
   FAILURE_CHECK_S s for failures and once at the end, so watching costs the hubs (almost) nothing.
3. At rest with `--servers` running servers: the anchor's servers are started, left `--settle` s,
   then `--rest-rounds` windows measure its CPU and RSS; then the CERN hub's, measured the same way
   (the anchor's servers still running: the CERN hub's cluster-wide watch holds them too), then the
   anchor again, now with both hubs' servers in the cluster.

    .venv/bin/python benchmarks/hub_cost.py [--spawns 40] [--rounds 2] [--servers 1000]

Writes benchmarks/results/hub_cost.json; `python -m benchmarks.report` makes docs/performance.md's tables.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import secrets
import signal
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from kubernetes import client, config

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import hubs, stats  # noqa: E402
from benchmarks.sampling import BurstSampler, side_by_side  # noqa: E402
from benchmarks.task_cpu import TaskCpu, resume_points  # noqa: E402
from benchmarks.task_cpu import side_by_side as task_cpu_side_by_side  # noqa: E402
from cern_spawner.scaling.hub import connect  # noqa: E402
from cern_spawner.scaling.magnum import MagnumGroups  # noqa: E402

LABEL = "magnum.openstack.org/nodegroup"
REST_BATCH = 50  # servers started at once for the at-rest part
PER_NODE, CEILING = 4, 16
ANCHOR_NAMESPACE = "bench-anchor"
GPU_GROUPS = hubs.empty_gpu_group("gpu-grow", PER_NODE, CEILING) + hubs.empty_gpu_group(
    "gpu-hand", PER_NODE, CEILING
)
TOPOLOGY = f"""
cluster: cost
node_group_label: {LABEL}
node_groups:
  default-worker: {{nodes: 20, cpu: "64", memory: 512Gi, zones: [cern-geneva-a]}}
{GPU_GROUPS}"""
CATALOG = f"""
node_groups:
  default-worker: {{}}
  gpu-grow:
    gpu: {{resource: nvidia.com/gpu, per_node: {PER_NODE}, product: NVIDIA-A100-SXM4-40GB}}
    taint: {{key: nvidia.com/gpu, value: present, effect: NoSchedule}}
    scaling: {{backend: magnum, cluster: cost, mode: resize, min_nodes: 0, max_nodes: {CEILING}}}
profiles:
  - slug: shared-1g
    display_name: "Shared, 1 GB memory"
    kind: shared
    cpu: {{guarantee: 0.1, limit: 1}}
    memory: {{guarantee: 256M, limit: 1G}}
    node_group: default-worker
    default: true
  - slug: gpu-1
    display_name: "Dedicated 1 GPU"
    kind: dedicated
    cpu: 0.5
    memory: 1G
    gpus: 1
    node_group: gpu-grow
"""
# Both hubs: wait for the stand-in, and let a burst start at once (JupyterHub's default limit is 100).
# The proxies' API token: the benchmark waits for servers by asking each hub's proxy for its routes.
PROXY_TOKEN = secrets.token_hex(32)
COMMON = (
    hubs.STANDIN_CONFIG + "c.JupyterHub.concurrent_spawn_limit = 0\n" + hubs.proxy_token_config(PROXY_TOKEN)
)
FAILURE_CHECK_S = 10  # how often the wait also asks the hub itself whether a spawn failed
CERN_CONFIG = (
    COMMON
    + "import os\nc.JupyterHub.hub_bind_url = f\"http://127.0.0.1:{os.environ['CERN_HUB_PORT']}\"\n"
    + "c.GPUScaling.interval = 1\nc.GPUScaling.grace_period = 10\n"
)
TOLERATION = {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}
ANCHOR_PROFILES = [
    {
        "display_name": "Shared, 1 GB memory",
        "slug": "shared-1g",
        "default": True,
        "kubespawner_override": {
            "cpu_guarantee": 0.1,
            "cpu_limit": 1.0,
            "mem_guarantee": "256M",
            "mem_limit": "1G",
            "node_selector": {LABEL: "default-worker"},
        },
    },
    {
        "display_name": "Dedicated 1 GPU",
        "slug": "gpu-1",
        "kubespawner_override": {
            "cpu_guarantee": 0.5,
            "cpu_limit": 0.5,
            "mem_guarantee": "1G",
            "mem_limit": "1G",
            "extra_resource_guarantees": {"nvidia.com/gpu": "1"},
            "extra_resource_limits": {"nvidia.com/gpu": "1"},
            "node_selector": {LABEL: "gpu-hand"},
            "tolerations": [TOLERATION],
        },
    },
]
ANCHOR_CONFIG = COMMON + f"c.KubeSpawner.profile_list = {ANCHOR_PROFILES!r}\n"


def profiling_config(path: Path) -> str:
    """Config lines (no code of ours: the anchor takes them too) under which SIGUSR2 toggles cProfile
    in the hub's main thread (its event loop), timed in that thread's CPU time, not wall time: on,
    then off with the stats written to `<path>.<n>`, one file per timed burst. (JupyterHub takes
    SIGUSR1 for its status dump.)"""
    return f"""
import cProfile as _cprofile, itertools as _itertools, signal as _signal
_profiler, _bursts = [None], _itertools.count()
def _profile_toggle(*_):
    if _profiler[0] is None:
        _profiler[0] = _cprofile.Profile(__import__("time").thread_time)
        _profiler[0].enable()
    else:
        _profiler[0].disable()
        _profiler[0].dump_stats(f"{{{str(path)!r}}}.{{next(_bursts)}}")
        _profiler[0] = None
_signal.signal(_signal.SIGUSR2, _profile_toggle)
"""


def wait(predicate, timeout: float, what: str, step: float = 0.5) -> float:
    start = time.perf_counter()
    while not predicate():
        if time.perf_counter() - start > timeout:
            raise TimeoutError(what)
        time.sleep(step)
    return time.perf_counter() - start


class Side:
    def __init__(self, name: str, hub, namespace: str, gpu_group: str):
        self.name, self.hub, self.namespace, self.gpu_group = name, hub, namespace, gpu_group
        self.meter = hubs.Meter(hub)


def create_users(hub, users: list[str]) -> None:
    for start in range(0, len(users), 200):
        response = hub.api("POST", "/users", json={"usernames": users[start : start + 200]})
        if response.status_code not in (201, 409):
            raise RuntimeError(f"creating users: {response.status_code} {response.text[:300]}")


def start_servers(
    side: Side,
    users: list[str],
    options: dict,
    timeout: float = 1800,
    profile: bool = False,
    sampler: BurstSampler | None = None,
    task_cpu: TaskCpu | None = None,
) -> dict:
    """All at once; the hub's CPU from the first request until every server is ready (`profile`:
    the hub's cProfile runs over that time, see `profiling_config`; `sampler`: py-spy samples it;
    `task_cpu`: its loop's CPU by task is added up)."""
    name, pid = f"{side.name} {options.get('profile')}", side.hub.process.pid
    with contextlib.ExitStack() as spans:
        if sampler is not None:
            spans.enter_context(sampler.span(name, pid))
        if task_cpu is not None:
            spans.enter_context(task_cpu.span(name, side.name, pid))
        return _start_servers(side, users, options, timeout, profile)


def _start_servers(side: Side, users: list[str], options: dict, timeout: float, profile: bool) -> dict:
    if profile:
        os.kill(side.hub.process.pid, signal.SIGUSR2)
    before = side.meter.sample()
    began = time.perf_counter()

    def spawn(user):
        response = side.hub.api("POST", f"/users/{user}/server", json=options)
        if response.status_code not in (201, 202):
            raise RuntimeError(f"{side.name} {user}: {response.status_code} {response.text[:200]}")

    with ThreadPoolExecutor(min(len(users), 50)) as pool:
        list(pool.map(spawn, users))

    def all_ready():
        states = hubs.servers_ready(side.hub, users)
        gone = [u for u, s in states.items() if s is None]
        if gone:
            raise RuntimeError(
                f"{side.name}: {len(gone)} spawn(s) failed, e.g. {gone[0]}: see {side.hub.log}"
            )
        return all(states.values())

    # Watched through the proxy's routes (whose CPU is not the hub's), asking the hub itself only
    # every FAILURE_CHECK_S whether a spawn failed: polling the hub each second cost it ~1 ms per
    # user listed per poll, charged to whichever side's servers took longer (the GPU side's wait
    # for a node boot).
    wanted, checked = set(users), [time.perf_counter()]

    def all_routed():
        if wanted <= hubs.routed_users(side.hub, PROXY_TOKEN):
            return True
        if time.perf_counter() - checked[0] > FAILURE_CHECK_S:
            checked[0] = time.perf_counter()
            all_ready()  # raises on a failed spawn
        return False

    wait(all_routed, timeout, f"{side.name}: all servers routed", step=0.5)
    wait(all_ready, 60, f"{side.name}: all servers ready", step=0.2)  # routed, then marked ready
    seconds = time.perf_counter() - began
    after = side.meter.sample()
    if profile:
        os.kill(side.hub.process.pid, signal.SIGUSR2)
    cpu = after["hub_cpu_s"] - before["hub_cpu_s"]
    system = after["hub_system_s"] - before["hub_system_s"]
    return {
        "spawns": len(users),
        "all_ready_s": round(seconds, 1),
        "hub_cpu_s": round(cpu, 3),
        "hub_cpu_s_per_spawn": round(cpu / len(users), 4),
        # the kernel's part of it (the hub process's stime): sockets, the database file
        "hub_system_s_per_spawn": round(system / len(users), 5),
        "loadavg_1_5_15": hubs.load(),
    }


def resize_once_pods_exist(core, magnum, namespace: str, spawns: int, began: float) -> float:
    """The anchor's admin for `--anchor-nodes with-pods`: resize its group for `spawns` GPUs once as
    many notebook pods exist in `namespace` (empty before a burst); seconds from `began`."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pods = core.list_namespaced_pod(namespace, label_selector="component=singleuser-server").items
        if len(pods) >= spawns:
            magnum.resize("gpu-hand", math.ceil(spawns / PER_NODE))
            return round(time.perf_counter() - began, 2)
        time.sleep(0.05)
    raise RuntimeError(f"the anchor's {spawns} pods did not all exist within 120 s")


def stop_servers(side: Side, users: list[str], core) -> None:
    """Stop the round's servers, wait for their pods to go, then delete its users and the
    namespace's Events: a hub's CPU per spawn grows with the users it holds (27 to 40 ms on both
    sides over 12 rounds that kept them) and with the Events its reflector holds (KubeSpawner sorts
    all of them at each start; the API server keeps them an hour, ~5,000 after 100 rounds, more in
    ours after GPU rounds that waited for a boot), and each round should find both hubs as the first
    did."""
    with ThreadPoolExecutor(20) as pool:
        list(pool.map(lambda u: side.hub.api("DELETE", f"/users/{u}/server"), users))
    wait(
        lambda: (
            not core.list_namespaced_pod(side.namespace, label_selector="component=singleuser-server").items
        ),
        900,
        f"{side.name}: pods gone",
        step=1,
    )
    left = set(users)

    def delete_users() -> bool:  # a user whose server is still stopping is refused (400): again
        for user in sorted(left):
            if side.hub.api("DELETE", f"/users/{user}").status_code in (204, 404):
                left.discard(user)
        return not left

    wait(delete_users, 120, f"{side.name}: the round's users deleted", step=1)
    core.delete_collection_namespaced_event(side.namespace)


def windows(sides: list[Side], rounds: int, seconds: float) -> list[dict]:
    """CPU s/s and RSS of each hub over `rounds` windows of `seconds`."""
    out = []
    for _ in range(rounds):
        before = {s.name: s.meter.sample() for s in sides}
        began = time.monotonic()
        time.sleep(seconds)
        after = {s.name: s.meter.sample() for s in sides}
        elapsed = time.monotonic() - began
        out.append(
            {
                "seconds": round(elapsed, 1),
                "loadavg_1_5_15": hubs.load(),
                **{
                    s.name: {
                        "hub_cpu_s_per_s": round(
                            (after[s.name]["hub_cpu_s"] - before[s.name]["hub_cpu_s"]) / elapsed, 5
                        ),
                        "proxy_cpu_s_per_s": round(
                            (after[s.name]["proxy_cpu_s"] - before[s.name]["proxy_cpu_s"]) / elapsed, 5
                        ),
                        "hub_rss_mib": round(after[s.name]["hub_rss_bytes"] / 2**20, 1),
                    }
                    for s in sides
                },
            }
        )
        print(json.dumps(out[-1]), flush=True)
    return out


def median_of(samples: list[dict], name: str, field: str) -> float:
    return statistics.median(w[name][field] for w in samples)


def run(
    args,
    report: dict,
    scratch: Path,
    results: dict,
    sampler: BurstSampler | None = None,
    task_cpu: TaskCpu | None = None,
) -> dict:
    """Fills `results` phase by phase (kept when a later phase fails)."""
    core = client.CoreV1Api(config.new_client_from_config(report["kubeconfig"]))
    hubs.ensure_namespace(core, ANCHOR_NAMESPACE)
    wait(
        lambda: any(
            a.metadata.name == "default" for a in core.list_namespaced_service_account(ANCHOR_NAMESPACE).items
        ),
        60,
        "the anchor namespace's default service account",
    )
    cloud_url = report["openstack"]["url"]
    requests.post(f"{cloud_url}/_simulator/settings", json={"boot_delay": 5, "gpu_delay": 2}, timeout=10)
    magnum = MagnumGroups(connect("sandbox", report["openstack"]["clouds_yaml"]), "cost")
    # No server, no stand-in; a port of its own lets two runs share the machine.
    standin = hubs.standin_notebook(args.standin_port) if args.rounds or args.servers else None
    port = f"c.KubeSpawner.port = {args.standin_port}\n"
    cern = anchor = None
    try:
        (scratch / "profiles").mkdir()
        (scratch / "profiles" / "cost.yaml").write_text(CATALOG)
        if args.profile:
            # The hubs write into it and stop if it is missing.
            args.profile.mkdir(parents=True, exist_ok=True)
        profiling = {
            name: (profiling_config(args.profile / name) if args.profile else "")
            + (task_cpu.config(name) if task_cpu else "")
            for name in ("CERNSpawner", "KubeSpawner")
        }
        cern = hubs.cern_hub(
            scratch / "cern",
            CERN_CONFIG + port + profiling["CERNSpawner"],
            env={"CERN_PROFILES": str(scratch / "profiles")},
        )
        anchor = hubs.anchor_hub(
            scratch / "anchor", report, ANCHOR_NAMESPACE, ANCHOR_CONFIG + port + profiling["KubeSpawner"]
        )
        sides = {
            "CERNSpawner": Side("CERNSpawner", cern, report["user_namespace"], "gpu-grow"),
            "KubeSpawner": Side("KubeSpawner", anchor, ANCHOR_NAMESPACE, "gpu-hand"),
        }
        time.sleep(args.settle)
        results["idle"] = windows(list(sides.values()), args.idle_rounds, args.window)

        spawn_rounds = results["spawn_rounds"] = []
        for index in range(args.rounds):
            entry: dict = {"order": hubs.alternating(list(sides), index)}
            kinds = (("shared", {"profile": "shared-1g"}), ("gpu", {"profile": "gpu-1"}))
            # GPU rounds wait for node boots (~45 s each): a run may time fewer of them.
            wanted = [k for k in kinds if k[0] in args.kinds and (k[0] != "gpu" or index < gpu_rounds(args))]
            for kind, options in wanted:
                for name in entry["order"]:
                    side = sides[name]
                    users = [f"{kind}-{index}-{i}" for i in range(args.spawns)]
                    create_users(side.hub, users)
                    sizing = None
                    if kind == "gpu" and name == "KubeSpawner" and args.anchor_nodes == "with-pods":
                        # A reactive admin: the resize goes out once every spawn's pod exists, as
                        # the controller reacts to pending pods (it cannot know of a spawn sooner).
                        sizing = ThreadPoolExecutor(1)
                        resized = sizing.submit(
                            resize_once_pods_exist,
                            core,
                            magnum,
                            side.namespace,
                            len(users),
                            time.perf_counter(),
                        )
                    elif kind == "gpu" and name == "KubeSpawner" and args.anchor_nodes == "with-spawns":
                        # The admin's resize goes out with the spawns: both sides wait for a boot.
                        magnum.resize("gpu-hand", math.ceil(args.spawns / PER_NODE))
                    elif kind == "gpu" and name == "CERNSpawner":
                        # From 0 nodes, as the anchor's group starts: when its previous burst was the
                        # one just before (order C, K then K, C then C, K), the controller's grace
                        # shrink may not have run yet, and the burst would find nodes booted.
                        wait(lambda: group_empty(magnum, core, "gpu-grow"), 600, "the grown group back at 0")
                    elif kind == "gpu" and name == "KubeSpawner":  # an admin sizes its group first
                        magnum.resize("gpu-hand", math.ceil(args.spawns / PER_NODE))
                        wait(
                            lambda: gpu_ready(core, "gpu-hand") >= math.ceil(args.spawns / PER_NODE),
                            600,
                            "hand-sized nodes",
                        )
                    entry[f"{kind} {name}"] = start_servers(
                        side, users, options, profile=bool(args.profile), sampler=sampler, task_cpu=task_cpu
                    )
                    if sizing is not None:
                        entry[f"{kind} {name}"]["admin_resized_after_s"] = resized.result()
                        sizing.shutdown()
                    print(name, kind, json.dumps(entry[f"{kind} {name}"]), flush=True)
                    stop_servers(side, users, core)
                    if kind == "gpu" and name == "KubeSpawner":
                        magnum.resize("gpu-hand", 0)
                        wait(lambda: gpu_ready(core, "gpu-hand") == 0, 600, "hand-sized group back at 0")
            spawn_rounds.append(entry)
        magnum.resize("gpu-hand", 0)

        rest = results["at_rest"] = {}
        if args.servers:
            for name, label in (("KubeSpawner", "alone"), ("CERNSpawner", "alone"), ("KubeSpawner", "both")):
                side = sides[name]
                if label == "alone":
                    users = [f"rest-{i}" for i in range(args.servers)]
                    create_users(side.hub, users)
                    # In batches: 1000 at once makes plain KubeSpawner fail some (its 3 s pod create
                    # timeout under load), and this part is about the hub at rest, not a burst.
                    batches = [
                        start_servers(side, users[i : i + REST_BATCH], {"profile": "shared-1g"})
                        for i in range(0, len(users), REST_BATCH)
                    ]
                    rest[f"{name} start"] = {
                        "servers": len(users),
                        "batch": REST_BATCH,
                        "seconds": round(sum(b["all_ready_s"] for b in batches), 1),
                        "hub_cpu_s": round(sum(b["hub_cpu_s"] for b in batches), 2),
                    }
                    print(name, "started", args.servers, json.dumps(rest[f"{name} start"]), flush=True)
                    time.sleep(args.settle)
                rest[f"{name} {label}"] = windows([side], args.rest_rounds, args.window)
        results["cluster"] = {
            "nodes": len(core.list_node().items),
            "pods_all_namespaces": len(core.list_pod_for_all_namespaces().items),
        }
        return results
    finally:
        for hub in (cern, anchor):
            if hub is not None:
                hub.stop()
        if standin is not None:
            standin.shutdown()


def gpu_rounds(args) -> int:
    """How many of the rounds also time the GPU profile."""
    return args.rounds if args.gpu_rounds is None else min(args.gpu_rounds, args.rounds)


def group_empty(magnum, core, group: str) -> bool:
    """No VM in the cloud, no change under way, no Node left in the cluster."""
    state = magnum.state(group)
    return (
        state.node_count == 0
        and not state.busy
        and not core.list_node(label_selector=f"{LABEL}={group}").items
    )


def gpu_ready(core, group: str) -> int:
    count = 0
    for node in core.list_node(label_selector=f"{LABEL}={group}").items:
        ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
        count += ready and int((node.status.allocatable or {}).get("nvidia.com/gpu", "0")) > 0
    return count


def summary(results: dict, args, incomplete: list[str]) -> dict:
    out: dict = {}
    idle = results["idle"]
    if idle:
        cern_idle, plain_idle = (
            median_of(idle, "CERNSpawner", "hub_cpu_s_per_s"),
            median_of(idle, "KubeSpawner", "hub_cpu_s_per_s"),
        )
        out["idle_hub_cpu_s_per_s"] = {
            "CERNSpawner": cern_idle,
            "KubeSpawner": plain_idle,
            "ratio": round(cern_idle / plain_idle, 3),
        }
    for kind in [k for k in ("shared", "gpu") if k in args.kinds] if "spawn_rounds" not in incomplete else ():
        timed = [
            r
            for r in results["spawn_rounds"]
            if all(f"{kind} {n}" in r for n in ("CERNSpawner", "KubeSpawner"))
        ]
        if not timed:
            continue
        per = {
            name: [r[f"{kind} {name}"]["hub_cpu_s_per_spawn"] for r in timed]
            for name in ("CERNSpawner", "KubeSpawner")
        }
        medians = {name: statistics.median(v) for name, v in per.items()}
        out[f"{kind}_hub_cpu_s_per_spawn"] = {
            **{name: {"median": round(m, 4), "samples": per[name]} for name, m in medians.items()},
            # The median of the rounds' own ratios (benchmarks/stats.py), and the pooled one beside it.
            "ratio": round(stats.paired_ratio(per["CERNSpawner"], per["KubeSpawner"]), 3),
            "ratio_of_medians": round(stats.ratio_of_medians(per["CERNSpawner"], per["KubeSpawner"]), 3),
            "ratio_per_round": [
                round(c / p, 3) for c, p in zip(per["CERNSpawner"], per["KubeSpawner"], strict=True)
            ],
        }
    rest = results.get("at_rest") or {}
    if "KubeSpawner both" in rest:
        table = {}
        for key in ("KubeSpawner alone", "CERNSpawner alone", "KubeSpawner both"):
            name = key.split()[0]
            samples = rest[key]
            table[key] = {
                "hub_cpu_s_per_s": round(median_of(samples, name, "hub_cpu_s_per_s"), 5),
                "hub_rss_mib": round(median_of(samples, name, "hub_rss_mib"), 1),
                "loadavg_1_5_15": samples[-1]["loadavg_1_5_15"],
            }
        plain = [table["KubeSpawner alone"], table["KubeSpawner both"]]
        table["ratio_cpu"] = round(
            table["CERNSpawner alone"]["hub_cpu_s_per_s"]
            / statistics.mean(p["hub_cpu_s_per_s"] for p in plain),
            3,
        )
        table["ratio_rss"] = round(
            table["CERNSpawner alone"]["hub_rss_mib"] / statistics.mean(p["hub_rss_mib"] for p in plain), 3
        )
        out[f"at_rest_{args.servers}_servers"] = table
    return out


def timed_spawns(results: dict, kind: str) -> tuple[int, int]:
    """Spawns timed with `kind`'s profile over the run: (ours, the anchor's)."""
    return tuple(
        sum(e[f"{kind} {name}"]["spawns"] for e in results["spawn_rounds"] if f"{kind} {name}" in e)
        for name in ("CERNSpawner", "KubeSpawner")
    )


def write_diagnosis(sampler: BurstSampler, results: dict, args) -> None:
    """Where the two hubs' CPU per spawn differs, function by function, from the py-spy samples."""
    text = [f"py-spy record --nonblocking --rate {args.rate} --function, during each timed burst"]
    for kind, profile in (("shared", "shared-1g"), ("gpu", "gpu-1")):
        spawns = dict(zip(("CERNSpawner", "KubeSpawner"), timed_spawns(results, kind), strict=True))
        ours, anchor = (sampler.stacks[f"{name} {profile}"] for name in spawns)
        if not ours or not anchor:
            continue
        counts = f"{spawns['CERNSpawner']} spawns on ours, {spawns['KubeSpawner']} on the anchor"
        text += ["", f"== {kind}: {counts}"]
        text += side_by_side(ours, anchor, (spawns["CERNSpawner"], spawns["KubeSpawner"]), args.rate)
    out = ROOT / "benchmarks" / "diagnostics" / "hub_cost_profile.txt"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(text) + "\n")
    print(f"wrote {out}", flush=True)


def write_task_cpu(task_cpu: TaskCpu, results: dict, args, began: float) -> None:
    """Where the two hubs' loop CPU per spawn differs, task by task (benchmarks/task_cpu.py)."""
    when = datetime.datetime.fromtimestamp(began, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = [
        f"# hub_cost.py {' '.join(sys.argv[1:])}, {when}",
        "# The event loop's CPU time (main thread) by task or callback, over the timed bursts only;",
        "# the accounting costs a few us a loop step on both hubs. Totals and ratios: the results files.",
    ]
    for kind, profile in (("shared", "shared-1g"), ("gpu", "gpu-1")):
        spawns = timed_spawns(results, kind)
        if not all(spawns):
            continue
        text += ["", f"== {kind}: {spawns[0]} spawns on ours, {spawns[1]} on the anchor"]
        names = (f"CERNSpawner {profile}", f"KubeSpawner {profile}")
        text += task_cpu_side_by_side(task_cpu, *names, spawns)
        text += ["", *resume_points(task_cpu, *names, spawns)]
    out = ROOT / "benchmarks" / "diagnostics" / "hub_cost_task_cpu.txt"
    out.write_text("\n".join(text) + "\n")
    print(f"wrote {out}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spawns", type=int, default=40, help="servers started at once per hub and round")
    parser.add_argument("--rounds", type=int, default=2, help="per-spawn rounds (order alternates)")
    parser.add_argument(
        "--gpu-rounds",
        type=int,
        help="how many of the rounds (the first) also time the GPU profile; default: all of them",
    )
    parser.add_argument(
        "--servers", type=int, default=1000, help="running servers for the at-rest part (0: skip)"
    )
    parser.add_argument("--window", type=float, default=60, help="seconds per measured window")
    parser.add_argument("--idle-rounds", type=int, default=3)
    parser.add_argument("--rest-rounds", type=int, default=2)
    parser.add_argument("--settle", type=float, default=20, help="seconds before a measurement at rest")
    parser.add_argument("--kinds", default="shared,gpu", help="profiles to time per spawn")
    parser.add_argument("--standin-port", type=int, default=hubs.STANDIN_PORT, help="the notebooks' port")
    parser.add_argument(
        "--anchor-nodes",
        choices=("before", "with-spawns", "with-pods"),
        default="before",
        help="GPU: the anchor's group sized before its clock starts (before), resized as its first "
        "request goes out (with-spawns), or once all its spawns' pods exist (with-pods: as a reactive "
        "controller could at best)",
    )
    parser.add_argument(
        "--out", default=str(ROOT / "benchmarks" / "results" / "hub_cost.json"), help="results file to write"
    )
    parser.add_argument(
        "--py-spy",
        dest="py_spy",
        help="a py-spy binary: sample each hub during each timed burst (nonblocking: the CPU figures "
        "stand) and write benchmarks/diagnostics/hub_cost_profile.txt, where the hubs' CPU differs",
    )
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument(
        "--task-cpu",
        dest="task_cpu",
        action="store_true",
        help="add up each hub's event-loop CPU by task during each timed burst and write "
        "benchmarks/diagnostics/hub_cost_task_cpu.txt (see benchmarks/task_cpu.py)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="DIR: cProfile each hub's event loop during each timed burst (DIR/<hub>.<n>; inflates the CPU "
        "figures: not for results files)",
    )
    args = parser.parse_args()
    began, load_start = time.time(), hubs.load()
    scratch = Path(tempfile.mkdtemp(prefix="hub-cost-"))
    state = scratch / "state"
    (scratch / "topology.yaml").write_text(TOPOLOGY)
    os.environ["CERN_SANDBOX_STATE"] = str(state)  # the CERN hub's config reads this sandbox
    report = hubs.sandbox_up(state, scratch / "topology.yaml", fake=True)
    results: dict = {"idle": [], "spawn_rounds": [], "at_rest": {}}
    failure = None
    sampler = BurstSampler(args.py_spy, args.rate, scratch) if args.py_spy else None
    task_cpu = TaskCpu(scratch) if args.task_cpu else None
    try:
        run(args, report, scratch, results, sampler, task_cpu)
    except Exception as e:  # keep what was measured, and say what stopped the run
        failure = f"{type(e).__name__}: {e}"
        print(failure, flush=True)
    finally:
        hubs.sandbox_down(state)
    incomplete = [phase for phase in ("spawn_rounds", "at_rest") if not results[phase]]
    document = {
        "benchmark": "hub_cost",
        "date": datetime.datetime.fromtimestamp(began, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_s": round(time.time() - began, 1),
        "parameters": vars(args),
        "modelled": "--fake sandbox: pods bound by the real scheduler and marked Running without a process; "
        "one stand-in HTTP server answers for every notebook (pod_connect_ip 127.0.0.1) on both hubs",
        "failure": failure,
        "machine": hubs.machine(loadavg_start=load_start, **results.pop("cluster", {})),
        "summary": summary(results, args, incomplete),
        **results,
    }
    out = Path(args.out)
    out.write_text(json.dumps(document, indent=1, default=str) + "\n")
    if sampler is not None:
        write_diagnosis(sampler, results, args)
    if task_cpu is not None:
        write_task_cpu(task_cpu, results, args, began)
    print(json.dumps(document["summary"], indent=1))


if __name__ == "__main__":
    main()

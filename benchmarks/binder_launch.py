"""Repository launches: CERNSpawner's Binder-from-git path against plain KubeSpawner, on the sandbox.

Three measurements in one run, on one sandbox:

1. Reuse: N launches of an already-built image through a repository launch (REST
   `POST /hub/api/users/<u>/server` with `{"profile": "shared-1g", "binder_repo": <url>,
   "binder_ref": "main"}`: git ls-remote, a registry HEAD, then the pod), alternating with plain
   KubeSpawner given the same image directly (`c.KubeSpawner.image`) and the same resources, on a
   second hub. Time from the request to the server being ready; the hub's time before the pod
   (from its log); and `resolve_ref` and `RegistryClient.manifest_exists` timed in this process
   against the sandbox's git server and registry.
2. First launch: M launches of a commit whose image was deleted from the registry first (one in
   each of the first M rounds of part 1), split into the build (build pod created -> finished,
   seen by a watch) and the rest. KubeSpawner cannot build, so the comparison is with the reuse
   launch of part 1.
3. Concurrent, R rounds: K users launch the same unbuilt commit at once: how many build pods (one),
   and the time until all are ready, against one user alone (part 2) and against the same burst of
   K launches with the image already built, on both hubs (K notebooks starting at once on the
   machine, with no build at all).

    .venv/bin/python benchmarks/binder_launch.py [--launches N] [--builds M] [--concurrent K] [--bursts R]

It deletes images from the sandbox registry and creates build pods in the users' namespace, which
disturbs tests running on the same sandbox: give it a sandbox of its own, e.g.
`CERN_SANDBOX_STATE=/tmp/sbx-bench .venv/bin/python benchmarks/binder_launch.py` (it starts that
sandbox when none runs there; `CERN_SANDBOX_STATE=/tmp/sbx-bench .venv/bin/python -m sandbox down`
afterwards). Writes benchmarks/results/binder_launch.json; docs/performance.md has the table.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
import urllib3
from kubernetes import client, config, watch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import hubs  # noqa: E402
from cern_spawner.binder.config import BinderConfig  # noqa: E402
from cern_spawner.binder.images import image_name  # noqa: E402
from cern_spawner.binder.registry import RegistryClient  # noqa: E402
from cern_spawner.binder.resolve import resolve_ref  # noqa: E402
from sandbox.builder import oci  # noqa: E402

PROFILE = "shared-1g"  # cpu 0.1-0.5, memory 512M-1G (profiles/default.yaml)
REPO = "requirements"  # one of the sandbox git server's repositories
BUILD_SELECTOR = "app.kubernetes.io/component=binder-build"
PLAIN_NAMESPACE = "bench-kubespawner"
# Both hubs answer the spawn request at once and are polled for readiness the same way.
COMMON_CONFIG = "c.JupyterHub.slow_spawn_timeout = 0\n"


def plain_config(image: str) -> str:
    """Plain KubeSpawner given the repository's image directly, with the profile's resources; as
    in spawn_latency.py, its command (the default is the image's CMD, which the sandbox cannot run)
    and a namespace without PSA enforcement, which its default pods would fail."""
    # The anchor hub of benchmarks/hubs.py (no code of ours) sets the spawner, namespace and cmd.
    return (
        COMMON_CONFIG
        + f"c.KubeSpawner.image = {image!r}\n"
        + "c.KubeSpawner.cpu_guarantee = 0.1\n"
        + "c.KubeSpawner.cpu_limit = 0.5\n"
        + 'c.KubeSpawner.mem_guarantee = "512M"\n'
        + 'c.KubeSpawner.mem_limit = "1G"\n'
    )


def summary(samples: list[float], digits: int = 3) -> dict:
    return {
        "median_s": round(statistics.median(samples), digits),
        "min_s": round(min(samples), digits),
        "max_s": round(max(samples), digits),
        "samples": [round(s, digits) for s in samples],
    }


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def wait(predicate, timeout: float, what: str, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(step)


class BuildWatch:
    """Build pods seen by a watch: when each was added and when it was first seen finished (wall
    clock of this process), and its own timestamps."""

    def __init__(self, core, namespace: str):
        self.pods: dict[str, dict] = {}
        self.error: Exception | None = None
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._watch = watch.Watch()
        version = core.list_namespaced_pod(namespace, label_selector=BUILD_SELECTOR).metadata.resource_version
        self._thread = threading.Thread(target=self._run, args=(core, namespace, version), daemon=True)
        self._thread.start()

    def _run(self, core, namespace: str, version: str) -> None:
        try:
            while not self._stopped.is_set():
                try:
                    for event in self._watch.stream(
                        core.list_namespaced_pod,
                        namespace,
                        label_selector=BUILD_SELECTOR,
                        resource_version=version,
                        allow_watch_bookmarks=True,  # keeps the version fresh between builds
                        timeout_seconds=30,
                    ):
                        if event["type"] != "BOOKMARK":
                            self._seen(event["type"], event["object"])
                    version = self._watch.resource_version or version
                except client.ApiException as e:
                    if e.status != 410:
                        raise
                    version = self._relist(core, namespace)  # the version expired: list again
                except (urllib3.exceptions.HTTPError, OSError):
                    version = self._watch.resource_version or version  # ended early: resume
        except Exception as e:  # noqa: BLE001 — reported by since(), in the main thread
            self.error = e

    def _relist(self, core, namespace: str) -> str:
        listed = core.list_namespaced_pod(namespace, label_selector=BUILD_SELECTOR)
        for pod in listed.items:
            with self._lock:
                if pod.metadata.uid not in self.pods:  # missed: its own time, to the second
                    self.pods[pod.metadata.uid] = {
                        "name": pod.metadata.name,
                        "added": pod.metadata.creation_timestamp.timestamp(),
                    }
            self._seen("MODIFIED", pod)
        return listed.metadata.resource_version

    def _seen(self, kind: str, pod) -> None:
        now = time.time()
        with self._lock:
            entry = self.pods.setdefault(pod.metadata.uid, {"name": pod.metadata.name})
            if kind == "ADDED":
                entry.setdefault("added", now)
            if pod.status.phase in ("Succeeded", "Failed") and "finished" not in entry:
                entry["finished"], entry["phase"] = now, pod.status.phase
                state = (pod.status.container_statuses or [None])[0]
                ended = state and state.state and state.state.terminated
                if ended and ended.finished_at:
                    # The pod's own record, to the second: created -> container finished.
                    seconds = ended.finished_at - pod.metadata.creation_timestamp
                    entry["pod_seconds"] = seconds.total_seconds()

    def since(self, start: float) -> list[dict]:
        if self.error is not None:
            raise RuntimeError(f"the build pod watch failed: {self.error!r}")
        with self._lock:
            return [dict(p) for p in self.pods.values() if p.get("added", 0) >= start]

    def stop(self) -> None:
        self._stopped.set()
        self._watch.stop()


class HubLog:
    """Times from a hub's log (milliseconds): the spawn's start (its OAuth client, written just
    before Spawner.start), the repository launch's image line, the pod's creation."""

    STAMP = re.compile(r"^\[\w (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) ")

    def __init__(self, hub):
        self.path = hub.log

    def _time(self, pattern: re.Pattern) -> float | None:
        for line in self.path.read_text(errors="replace").splitlines():
            if pattern.search(line) and (stamp := self.STAMP.match(line)):
                return datetime.datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        return None

    def times(self, user: str) -> dict:
        """Wall-clock times (the hub logs local time, as this process reads it)."""
        name = re.escape(user)
        return {
            "start": self._time(re.compile(rf"(Creating|Updating) oauth client jupyterhub-user-{name}$")),
            "image": self._time(re.compile(rf"\] {name}: image \S+ for \S+ \((reused|built)\)")),
            "pod": self._time(re.compile(rf"Attempting to create pod jupyter-{name},")),
        }

    def steps(self, user: str, ready_at: float) -> dict:
        times = self.times(user)
        start, image, pod = times["start"], times["image"], times["pod"]
        out = {}
        if pod is not None:
            out["pod_to_ready"] = ready_at - pod
        if start is not None and pod is not None:
            out["before_pod"] = pod - start
        if start is not None and image is not None:
            out["launch_steps"] = image - start
        return out


def launch(hub, user: str, options: dict, timeout: float = 600) -> float:
    """Seconds from the spawn request to the hub reporting the server ready."""
    hub.api("POST", f"/users/{user}")
    start = time.perf_counter()
    response = hub.api("POST", f"/users/{user}/server", json=options)
    if response.status_code not in (201, 202):
        raise RuntimeError(f"{user}: {response.status_code} {response.text[:500]}")

    def ready():
        server = hub.api("GET", f"/users/{user}").json()["servers"].get("")
        if server is None and time.perf_counter() - start > 5:
            raise RuntimeError(f"{user}'s spawn ended without a server: see {hub.log}")
        return server and server.get("ready")

    wait(ready, timeout, f"{user} ready")
    return time.perf_counter() - start


def stop(hub, core, namespace: str, user: str) -> None:
    hub.api("DELETE", f"/users/{user}/server")

    def gone():
        pods = core.list_namespaced_pod(namespace, label_selector=f"hub.jupyter.org/username={user}")
        return not pods.items

    wait(gone, 120, f"{user}'s pod removed", step=0.2)


def forget_image(image: str) -> None:
    """Delete the image's manifest from the sandbox registry, so that the next launch builds it."""
    oci.delete(requests.Session(), oci.parse_reference(image))


async def time_launch_steps(repo_url: str, image: str, registry_host: str, rounds: int) -> dict:
    """resolve_ref and manifest_exists as the hub calls them (a new registry client per launch)."""
    resolves, lookups = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        await resolve_ref(repo_url, "main")
        resolves.append(time.perf_counter() - start)
        registry = RegistryClient(None, None, http_registries=[registry_host])
        start = time.perf_counter()
        if not await registry.manifest_exists(image):
            raise RuntimeError(f"{image} is not in the registry")
        lookups.append(time.perf_counter() - start)
    return {"resolve_ref": summary(resolves, 4), "manifest_exists": summary(lookups, 4)}


def first_launch(hub, log: HubLog, core, namespace, builds: BuildWatch, image, user, options) -> dict:
    forget_image(image)
    start = time.time()
    total = launch(hub, user, options)
    hub_times = log.times(user)
    pods = builds.since(start - 1)
    if len(pods) != 1 or "finished" not in pods[0]:
        raise RuntimeError(f"{user}: expected one finished build pod, saw {pods}")
    pod = pods[0]
    result = {
        "total": total,
        "build": pod["finished"] - pod["added"],
        "before_build": pod["added"] - start,
        "after_build": start + total - pod["finished"],
    }
    if hub_times["image"] is not None and hub_times["pod"] is not None:
        # Where "after_build" goes: the hub seeing the end (it polls the pod with a backoff) and
        # looking the image up again, then the server's pod.
        result["build_end_to_hub_image_line"] = hub_times["image"] - pod["finished"]
        result["server_pod_to_ready"] = start + total - hub_times["pod"]
    if "pod_seconds" in pod:
        result["build_pod_timestamps"] = pod["pod_seconds"]
    stop(hub, core, namespace, user)
    return result


def concurrent_launch(hub, core, namespace, builds: BuildWatch, users, options, forget=None) -> dict:
    """`users` launch at once; `forget` = an image to delete from the registry first."""
    if forget:
        forget_image(forget)
    start = time.time()
    with ThreadPoolExecutor(len(users)) as pool:
        times = list(pool.map(lambda user: launch(hub, user, options), users))
    all_ready = time.time() - start
    pods = builds.since(start - 1)
    with ThreadPoolExecutor(len(users)) as pool:
        list(pool.map(lambda user: stop(hub, core, namespace, user), users))
    return {
        "users": len(users),
        "build_pods": len(pods),
        "build_pod_names": sorted(p["name"] for p in pods),
        "all_ready_s": round(all_ready, 3),
        "per_user": summary(times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--launches", type=int, default=10, help="reuse launches per spawner (N)")
    parser.add_argument("--builds", type=int, default=3, help="first launches with a build (M)")
    parser.add_argument("--concurrent", type=int, default=5, help="users launching at once (K)")
    parser.add_argument("--bursts", type=int, default=3, help="rounds of the concurrent launches (R)")
    args = parser.parse_args()
    load_start, began = load(), time.time()
    up = subprocess.run(
        [sys.executable, "-m", "sandbox", "up", "--json"], cwd=ROOT, capture_output=True, text=True
    )
    if up.returncode != 0:
        raise SystemExit(up.stderr)
    report = json.loads(up.stdout)
    api = config.new_client_from_config(report["kubeconfig"])
    core = client.CoreV1Api(api)
    namespace = report["user_namespace"]
    try:
        core.create_namespace({"metadata": {"name": PLAIN_NAMESPACE}})
    except client.ApiException as e:
        if e.status != 409:
            raise
    repo = report["git"]["repos"][REPO]
    registry_host = report["registry"]["host"]
    image = image_name(registry_host, BinderConfig().image_prefix, repo["url"], repo["commit"])
    options = {"profile": PROFILE, "binder_repo": repo["url"], "binder_ref": repo["branch"]}
    builds = BuildWatch(core, namespace)
    phases: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        cern = hubs.cern_hub(Path(scratch) / "cern", COMMON_CONFIG)
        plain = hubs.anchor_hub(Path(scratch) / "plain", report, PLAIN_NAMESPACE, plain_config(image))
        logs = {"CERNSpawner": HubLog(cern), "KubeSpawner": HubLog(plain)}
        try:
            # Warm-up, not counted: first spawns of each hub (imports, caches); builds the image
            # when the registry does not have it yet, which plain KubeSpawner needs.
            launch(cern, "bench-warm", options)
            stop(cern, core, namespace, "bench-warm")
            launch(plain, "bench-warm", {})
            stop(plain, core, PLAIN_NAMESPACE, "bench-warm")

            # Reuse launches alternate between the hubs; the first M rounds also time a first
            # launch (image deleted first), so that both see the same stretch of machine load.
            phases["reuse_and_first_launch"] = load()
            contenders = {
                "CERNSpawner": (cern, namespace, options),
                "KubeSpawner": (plain, PLAIN_NAMESPACE, {}),
            }
            ready = {name: [] for name in contenders}
            before_pod = {name: [] for name in contenders}
            pod_to_ready = {name: [] for name in contenders}
            launch_steps, reuse_builds, firsts = [], 0, []
            for round_ in range(max(args.launches, args.builds)):
                for name in hubs.alternating(list(contenders), round_):
                    hub, ns, opts = contenders[name]
                    if round_ >= args.launches:
                        break
                    user = f"bench-reuse-{round_}"
                    began_at = time.time()
                    ready[name].append(launch(hub, user, opts))
                    ready_at = time.time()
                    reuse_builds += len([p for p in builds.since(began_at) if p["added"] <= ready_at])
                    stop(hub, core, ns, user)
                    steps = logs[name].steps(user, ready_at)
                    if "pod_to_ready" in steps:
                        pod_to_ready[name].append(steps["pod_to_ready"])
                    if "before_pod" in steps:
                        before_pod[name].append(steps["before_pod"])
                    if "launch_steps" in steps:
                        launch_steps.append(steps["launch_steps"])
                if round_ < args.builds:
                    user = f"bench-build-{round_}"
                    firsts.append(
                        first_launch(
                            cern,
                            logs["CERNSpawner"],
                            core,
                            namespace,
                            builds,
                            image,
                            user,
                            options,
                        )
                    )
            direct = asyncio.run(time_launch_steps(repo["url"], image, registry_host, args.launches))

            # K users at once, R rounds: the same unbuilt commit on CERNSpawner (one build pod
            # expected), then the same burst with the image built, on both hubs — what K notebooks
            # starting at once cost on this machine, with no build at all.
            phases["concurrent"] = load()
            bursts = {"unbuilt": [], "CERNSpawner": [], "KubeSpawner": []}
            for round_ in range(args.bursts):
                users = [f"bench-many-{round_}-{i}" for i in range(args.concurrent)]
                bursts["unbuilt"].append(
                    concurrent_launch(cern, core, namespace, builds, users, options, forget=image)
                )
                users = [f"bench-burst-{round_}-{i}" for i in range(args.concurrent)]
                for name in hubs.alternating(list(contenders), round_):
                    hub, ns, opts = contenders[name]
                    bursts[name].append(concurrent_launch(hub, core, ns, builds, users, opts))
        finally:
            builds.stop()
            cern.stop()
            plain.stop()

    first = {key: summary([run[key] for run in firsts if key in run]) for key in firsts[0]}
    reuse_median = statistics.median(ready["CERNSpawner"])
    alone = first["total"]["median_s"]
    results = {
        "benchmark": "binder_launch",
        "date": datetime.datetime.fromtimestamp(began, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_s": round(time.time() - began, 1),
        "parameters": {
            "launches": args.launches,
            "builds": args.builds,
            "concurrent": args.concurrent,
            "bursts": args.bursts,
            "profile": PROFILE,
            "repository": f"sandbox git server's {REPO}@{repo['branch']}",
            "image": image,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "kubernetes": client.VersionApi(api).get_code().git_version,
            "loadavg_1_5_15": {"start": load_start, **phases, "end": load()},
            "note": "shared machine: absolute times are noisy, the ratios within one run count",
        },
        "reuse": {
            "ready": {name: summary(samples) for name, samples in ready.items()},
            "ratio_cern_over_kubespawner": round(reuse_median / statistics.median(ready["KubeSpawner"]), 3),
            "hub_before_pod": {
                "what": "hub log: the spawn's OAuth client -> 'Attempting to create pod'",
                **{name: summary(samples, 4) for name, samples in before_pod.items() if samples},
            },
            "pod_to_ready": {
                "what": "hub log 'Attempting to create pod' -> the hub reporting the server ready",
                **{name: summary(samples) for name, samples in pod_to_ready.items() if samples},
            },
            "hub_launch_steps": {
                "what": "hub log: the spawn's OAuth client -> the launch's image line (resolve + lookup)",
                **summary(launch_steps, 4),
            },
            "direct": {"what": "in the benchmark process, against the sandbox's servers", **direct},
            "build_pods": reuse_builds,
        },
        "first_launch": {
            "what": "image deleted from the registry first; build = build pod added -> seen finished",
            **first,
            "kubespawner": None,
            "kubespawner_note": "plain KubeSpawner cannot build an image: compared with the reuse launch",
            "reuse_median_s": round(reuse_median, 3),
            "build_cost_s": round(alone - reuse_median, 3),
            "ratio_first_over_reuse": round(alone / reuse_median, 3),
        },
        "concurrent": {
            "what": "K users launch at once, R rounds; all_ready = request -> the last of the K ready",
            "unbuilt": {
                "what": "CERNSpawner, the same commit, its image deleted from the registry first",
                "build_pods_per_round": [b["build_pods"] for b in bursts["unbuilt"]],
                "all_ready": summary([b["all_ready_s"] for b in bursts["unbuilt"]]),
                "rounds": bursts["unbuilt"],
            },
            "built": {
                "what": "the same K launches with the image in the registry (plain KubeSpawner: given it)",
                **{
                    name: {
                        "build_pods_per_round": [b["build_pods"] for b in bursts[name]],
                        "all_ready": summary([b["all_ready_s"] for b in bursts[name]]),
                        "rounds": bursts[name],
                    }
                    for name in contenders
                },
            },
            "alone_median_s": alone,
        },
    }
    concurrent = results["concurrent"]
    unbuilt = concurrent["unbuilt"]["all_ready"]["median_s"]
    built = {name: concurrent["built"][name]["all_ready"]["median_s"] for name in contenders}
    concurrent["ratio_unbuilt_over_alone"] = round(unbuilt / alone, 3)
    concurrent["ratio_unbuilt_over_built"] = round(unbuilt / built["CERNSpawner"], 3)
    concurrent["built"]["ratio_cern_over_kubespawner"] = round(built["CERNSpawner"] / built["KubeSpawner"], 3)
    if any(n != 1 for n in concurrent["unbuilt"]["build_pods_per_round"]):
        print(
            f"warning: identical launches made {concurrent['unbuilt']['build_pods_per_round']} build pods",
            file=sys.stderr,
        )
    out = ROOT / "benchmarks" / "results" / "binder_launch.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

"""Shared parts of the GPU growth tests: a test catalog with an empty and an autoscaled GPU group,
and readers of the OpenStack simulator's state and of a spawn's progress."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import requests

from sandbox.controlplane import free_port
from sandbox.hubrunner import start_hub
from tests.waiting import wait_until

PROFILES = Path(__file__).resolve().parents[2] / "profiles"
GROUP = "gpu-a100"
A100 = f"""
node_groups:
  {GROUP}:
    gpu: {{resource: nvidia.com/gpu, per_node: 4, product: NVIDIA-A100-SXM4-40GB}}
    taint: {{key: nvidia.com/gpu, value: present, effect: NoSchedule}}
    scaling: {{backend: magnum, cluster: sandbox, mode: resize, min_nodes: 0, max_nodes: 4}}
profiles:
  - slug: a100-1
    display_name: "Dedicated 1 A100 GPU"
    kind: dedicated
    cpu: 0.5
    memory: 1G
    gpus: 1
    node_group: {GROUP}
    start_timeout: 300
  - slug: a100-quick
    display_name: "Quick A100 try"
    kind: dedicated
    cpu: 0.5
    memory: 1G
    gpus: 1
    node_group: {GROUP}
    start_timeout: 20
"""
# An autoscaled group (Cluster API style): the hub raises min_node_count, the autoscaler removes idle nodes.
T4_GROUP = "gpu-t4"
T4 = f"""
node_groups:
  {T4_GROUP}:
    gpu: {{resource: nvidia.com/gpu, per_node: 2, product: Tesla-T4}}
    taint: {{key: nvidia.com/gpu, value: present, effect: NoSchedule}}
    scaling: {{backend: magnum, cluster: sandbox, mode: raise-min, min_nodes: 0, max_nodes: 3}}
profiles:
  - slug: t4-1
    display_name: "Dedicated 1 T4 GPU"
    kind: dedicated
    cpu: 0.5
    memory: 1G
    gpus: 1
    node_group: {T4_GROUP}
    start_timeout: 300
"""


def dedicated_catalog(group: str, per_node: int, product: str, mode: str, max_nodes: int, slug: str) -> str:
    """A catalog of one scaled GPU group and one dedicated 1-GPU profile on it."""
    return f"""
node_groups:
  {group}:
    gpu: {{resource: nvidia.com/gpu, per_node: {per_node}, product: {product}}}
    taint: {{key: nvidia.com/gpu, value: present, effect: NoSchedule}}
    scaling: {{backend: magnum, cluster: sandbox, mode: {mode}, min_nodes: 0, max_nodes: {max_nodes}}}
profiles:
  - slug: {slug}
    display_name: "Dedicated 1 {product} GPU"
    kind: dedicated
    cpu: 0.5
    memory: 1G
    gpus: 1
    node_group: {group}
    start_timeout: 300
"""


# Groups of their own for the modules that run beside test_gpu_growth (see sandbox/topology.yaml).
H100_GROUP, L4_GROUP, A40_GROUP = "gpu-h100", "gpu-l4", "gpu-a40"
H100 = dedicated_catalog(H100_GROUP, 4, "NVIDIA-H100-80GB-HBM3", "resize", 4, "h100-1")
L4 = dedicated_catalog(L4_GROUP, 2, "NVIDIA-L4", "raise-min", 3, "l4-1")
A40 = dedicated_catalog(A40_GROUP, 4, "NVIDIA-A40", "resize", 4, "a40-1")

# Partitioned and shared GPUs (sandbox/topology.yaml lays their nodes out the same way): grown by
# test_gpu_growth's hub beside the A100 and T4 groups.
MIG_GROUP, SHARED_GROUP = "gpu-a100-mig", "gpu-t4-shared"
_TAINT = "taint: {key: nvidia.com/gpu, value: present, effect: NoSchedule}"
_SCALED = "scaling: {backend: magnum, cluster: sandbox, mode: resize, min_nodes: 0, max_nodes: 2}"
# As sandbox/topology.yaml lays the nodes out: one 1g.10gb and one 3g.40gb slice per A100, and one
# T4 in 4 replicas advertised as nvidia.com/gpu.shared.
SHARING = f"""
node_groups:
  {MIG_GROUP}:
    gpu:
      per_node: 1
      product: NVIDIA-A100-SXM4-80GB
      mig: {{slices: {{1g.10gb: 1, 3g.40gb: 1}}, config: sandbox-mixed}}
    {_TAINT}
    {_SCALED}
  {SHARED_GROUP}:
    gpu: {{per_node: 1, product: Tesla-T4, time_slicing: {{replicas: 4, rename_by_default: true}}}}
    {_TAINT}
    {_SCALED}
profiles:
  - slug: mig-small
    display_name: "A small A100 slice"
    kind: shared
    cpu: {{guarantee: 0.1, limit: 0.5}}
    memory: {{guarantee: 256M, limit: 1G}}
    mig_slice: 1g.10gb
    node_group: {MIG_GROUP}
    start_timeout: 120
  - slug: t4-share
    display_name: "A shared T4"
    kind: shared
    cpu: {{guarantee: 0.1, limit: 0.5}}
    memory: {{guarantee: 256M, limit: 1G}}
    shared_gpu: true
    node_group: {SHARED_GROUP}
    start_timeout: 120
"""


def group_state(cloud, group=GROUP) -> dict:
    return requests.get(f"{cloud}/_simulator/state", timeout=10).json()["groups"][group]


def log_mark(cloud) -> int:
    """A mark in the simulator's request log: pass it to `cloud_log` or `writes` as `since`."""
    log = requests.get(f"{cloud}/_simulator/state", timeout=10).json()["requests"]
    return log[-1]["seq"] if log else 0


def cloud_log(cloud, since: int = 0, group: str | None = None) -> list[dict]:
    """Requests after `since`; with `group`, only those about that node group (modules run in
    parallel on one simulator, each on groups of its own)."""
    log = requests.get(f"{cloud}/_simulator/state", timeout=10).json()["requests"]
    return [r for r in log if r["seq"] > since and (group is None or r.get("group") == group)]


def writes(cloud, since: int = 0, group: str | None = None) -> list[dict]:
    return [
        r for r in cloud_log(cloud, since, group) if r["method"] in ("POST", "PATCH") and r["status"] < 300
    ]


# Fast timings for the tests of behaviour; a test of production timings sets its own.
FAST = {"boot_delay": 2, "gpu_delay": 1, "autoscaler_interval": 1, "scale_down_unneeded": 3}


def set_timings(cloud, group: str, **values) -> None:
    """The simulator's timings for one node group only (boot_delay, shrink_delay, ...)."""
    body = {"group": group, **values}
    requests.post(f"{cloud}/_simulator/settings", json=body, timeout=10).raise_for_status()


def inject(cloud, group: str, **fault) -> None:
    """A fault on one node group's calls only."""
    requests.post(f"{cloud}/_simulator/faults", json={"group": group, **fault}, timeout=10).raise_for_status()


def reset_timings(cloud, group: str) -> None:
    """Back to the simulator's global timings for that group."""
    requests.delete(f"{cloud}/_simulator/settings", params={"group": group}, timeout=10).raise_for_status()


def clear_faults(cloud, group: str) -> None:
    requests.delete(f"{cloud}/_simulator/faults", params={"group": group}, timeout=10).raise_for_status()


def follow_progress(hub, user) -> tuple[threading.Thread, list[dict]]:
    """Read the spawn's progress event stream in the background, as the spawn page does.

    Started before the spawn request: that request itself waits up to 10 s for a fast spawn, so
    a reader started after it could miss the whole story.
    """
    events: list[dict] = []

    def read():
        while not (events and (events[-1].get("ready") or events[-1].get("failed"))):
            url = f"{hub.url}/hub/api/users/{user}/server/progress"
            try:
                with requests.get(url, headers=hub.session.headers, stream=True, timeout=300) as response:
                    if response.status_code != 200:
                        time.sleep(0.2)  # not pending yet
                        continue
                    for line in response.iter_lines(decode_unicode=True):
                        if line and line.startswith("data:"):
                            events.append(json.loads(line[5:]))
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
                return  # the hub stopped (a restart test): the story ends here

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread, events


def start(hub, user, expect=(201, 202), profile="a100-1"):
    hub.api("POST", f"/users/{user}")
    reader, events = follow_progress(hub, user)
    response = hub.api("POST", f"/users/{user}/server", json={"profile": profile})
    assert response.status_code in expect, response.text
    return reader, events, response


NODE_GROUP_NODE_LABEL = "magnum.openstack.org/nodegroup"  # the sandbox topology's label on a group's nodes


def no_nodes_in(core, group: str) -> bool:
    """No Kubernetes node of the group is registered (the cloud's node_count drops before the node leaves)."""
    return not core.list_node(label_selector=f"{NODE_GROUP_NODE_LABEL}={group}").items


def gpu_holder_pod(
    name: str, group: str, labels: dict[str, str], requests: dict[str, str] | None = None, grace: int = 0
) -> dict:
    """A plain pod holding one GPU of `group` until deleted, as a notebook would: on the group's nodes,
    tolerating their GPU taint, and allowed under the restricted Pod Security level of the user namespace.

    `requests` (CPU, memory) make the scheduler weigh it as a notebook; `grace` is its
    terminationGracePeriodSeconds.
    """
    resources: dict = {"limits": {"nvidia.com/gpu": "1"}}
    if requests:
        resources["requests"] = dict(requests)
    return {
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": grace,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 1000,
                "runAsGroup": 100,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "nodeSelector": {NODE_GROUP_NODE_LABEL: group},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [
                {
                    "name": "main",
                    "image": "sandbox",
                    "command": ["sleep", "3600"],
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                    "resources": resources,
                }
            ],
        },
    }


class RestartableHub:
    """Hubs started one after another on the same database and ports, as a rolling update does:
    running servers reach the hub at the address they were given."""

    def __init__(self, directory: Path, extra: str, catalog: Path):
        self.directory, self.extra, self.catalog = directory, extra, catalog
        self.hubs: list = []
        self.ports = {
            name: str(free_port()) for name in ("CERN_PROXY_PORT", "CERN_PROXY_API_PORT", "CERN_HUB_PORT")
        }

    def launch(self, extra: str = ""):
        """The next hub; `extra` config lines for this one only."""
        try:
            env = {"CERN_PROFILES": str(self.catalog), **self.ports}
            self.hubs.append(start_hub(self.directory, self.extra + extra, env=env))
        except RuntimeError as e:
            pytest.fail(str(e), pytrace=False)
        return self.hubs[-1]

    def close(self) -> None:
        """Stop the servers the last hub still runs, then the hub."""
        last = self.hubs[-1] if self.hubs else None
        if last is None or last.process.poll() is not None:
            return
        for user in last.api("GET", "/users").json():
            if user["servers"]:
                last.api("DELETE", f"/users/{user['name']}/server")
        wait_until(
            lambda: not any(u["servers"] for u in last.api("GET", "/users").json()),
            timeout=60,
            what="servers stopped",
        )
        last.stop()

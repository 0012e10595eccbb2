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


def group_state(cloud, group=GROUP) -> dict:
    return requests.get(f"{cloud}/_simulator/state", timeout=10).json()["groups"][group]


def log_mark(cloud) -> int:
    """A mark in the simulator's request log: pass it to `cloud_log` or `writes` as `since`."""
    log = requests.get(f"{cloud}/_simulator/state", timeout=10).json()["requests"]
    return log[-1]["seq"] if log else 0


def cloud_log(cloud, since: int = 0) -> list[dict]:
    log = requests.get(f"{cloud}/_simulator/state", timeout=10).json()["requests"]
    return [r for r in log if r["seq"] > since]


def writes(cloud, since: int = 0) -> list[dict]:
    return [r for r in cloud_log(cloud, since) if r["method"] in ("POST", "PATCH") and r["status"] < 300]


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


def no_nodes_in(core, group: str) -> bool:
    """No Kubernetes node of the group is registered (the cloud's node_count drops before the node leaves)."""
    return not core.list_node(label_selector=f"magnum.openstack.org/nodegroup={group}").items


class RestartableHub:
    """Hubs started one after another on the same database and ports, as a rolling update does:
    running servers reach the hub at the address they were given."""

    def __init__(self, directory: Path, extra: str, catalog: Path):
        self.directory, self.extra, self.catalog = directory, extra, catalog
        self.hubs: list = []
        self.ports = {
            name: str(free_port()) for name in ("CERN_PROXY_PORT", "CERN_PROXY_API_PORT", "CERN_HUB_PORT")
        }

    def launch(self):
        try:
            env = {"CERN_PROFILES": str(self.catalog), **self.ports}
            self.hubs.append(start_hub(self.directory, self.extra, env=env))
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

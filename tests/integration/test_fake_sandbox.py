"""A second, --fake sandbox beside the main one: hundreds of pods, empty logs, and `down` stops
only its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes import client, config

from sandbox.cluster import _has_default_account
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
PODS = 200

TOPOLOGY = """
cluster: scale
node_groups:
  default-worker: {nodes: 4, zones: [a, b], cpu: "64", memory: 256Gi}
  gpu-a100: {nodes: 2, cpu: "32", memory: 128Gi, gpu: {resource: nvidia.com/gpu, per_node: 8, product: A100}}
"""


def run_sandbox(state: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CERN_SANDBOX_STATE": str(state)}
    return subprocess.run(
        [sys.executable, "-m", "sandbox", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )


@pytest.fixture
def fake_sandbox(tmp_path, sandbox):  # the main sandbox runs too: down must leave it alone
    topology = tmp_path / "topology.yaml"
    topology.write_text(TOPOLOGY)
    state = tmp_path / "state"
    started = run_sandbox(state, "up", "--fake", "--json", "--topology", str(topology))
    assert started.returncode == 0, started.stderr
    yield state, json.loads(started.stdout)
    run_sandbox(state, "down")


def test_fake_mode_runs_hundreds_of_silent_pods_and_down_stops_only_its_own(fake_sandbox, core, sandbox):
    state, report = fake_sandbox
    assert report["fake"] is True
    assert len(report["nodes"]) == 6
    api = client.CoreV1Api(config.new_client_from_config(report["kubeconfig"]))
    api.create_namespace({"metadata": {"name": "scale"}})
    wait_until(lambda: _has_default_account(api, "scale"), timeout=30, what="default service account")
    for index in range(PODS):
        api.create_namespaced_pod(
            "scale",
            {
                "metadata": {"name": f"p{index}"},
                "spec": {
                    "containers": [{"name": "c", "image": "none", "resources": {"requests": {"cpu": "100m"}}}]
                },
            },
        )

    def all_running():
        pods = api.list_namespaced_pod("scale").items
        return len([p for p in pods if p.status.phase == "Running" and p.status.pod_ip]) == PODS

    wait_until(all_running, timeout=120, what=f"{PODS} fake pods Running")
    ips = {p.status.pod_ip for p in api.list_namespaced_pod("scale").items}
    assert len(ips) == PODS
    # No process runs, so nothing was printed; a follow must not wait for output that never comes.
    assert api.read_namespaced_pod_log("p0", "scale") == ""
    assert api.read_namespaced_pod_log("p0", "scale", follow=True, _request_timeout=20) == ""

    stopped = run_sandbox(state, "down")
    assert stopped.returncode == 0
    assert "node-agent" in stopped.stdout and "kube-apiserver" in stopped.stdout
    assert run_sandbox(state, "status").returncode == 3
    # The main sandbox is untouched.
    assert core.list_node().items
    bridge = sandbox["pod_network"]["bridge"]
    assert subprocess.run(["ip", "link", "show", bridge], capture_output=True).returncode == 0

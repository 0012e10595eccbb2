"""Fixtures: the sandbox (started once per session or reused), a namespace per test, and a hub."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from sandbox.hubrunner import start_hub
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
PSA_RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def _sandbox(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sandbox", *args], cwd=ROOT, capture_output=True, text=True)


@pytest.fixture(scope="session")
def sandbox():
    """The running sandbox's settings; the session fails (never skips) when it cannot start."""
    was_running = _sandbox("status", "--json").returncode == 0
    started = _sandbox("up", "--json")
    if started.returncode != 0:
        pytest.fail(
            f"the sandbox did not start: {started.stderr.strip() or started.stdout.strip()}", pytrace=False
        )
    report = json.loads(started.stdout)
    yield report
    if not was_running and not os.environ.get("CERN_SANDBOX_KEEP"):
        _sandbox("down")


@pytest.fixture(scope="session")
def api_client(sandbox):
    from kubernetes import config

    return config.new_client_from_config(sandbox["kubeconfig"])


@pytest.fixture(scope="session")
def core(api_client):
    from kubernetes import client

    return client.CoreV1Api(api_client)


@pytest.fixture
def namespace(core):
    """A fresh namespace enforcing Pod Security `restricted`, deleted after the test."""
    from kubernetes import client

    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name, "labels": PSA_RESTRICTED}})

    def has_default_account():
        try:
            return core.read_namespaced_service_account("default", name)
        except client.ApiException:
            return None

    wait_until(has_default_account, timeout=30, what=f"service account default in {name}")
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="session")
def hub(sandbox, tmp_path_factory):
    """A real JupyterHub with CERNSpawner and configurable-http-proxy, on free ports."""
    try:
        running = start_hub(tmp_path_factory.mktemp("hub"))
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    yield running
    running.stop()

"""Fixtures: the sandbox (started once per session or reused), a namespace per test, and a hub."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Hub:
    def __init__(self, url: str, token: str, process: subprocess.Popen, log: Path):
        self.url, self.token, self.process, self.log = url, token, process, log
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {token}"

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.session.request(method, f"{self.url}/hub/api{path}", timeout=30, **kwargs)


@pytest.fixture(scope="session")
def hub(sandbox, tmp_path_factory):
    """A real JupyterHub with CERNSpawner and configurable-http-proxy, on free ports."""
    directory = tmp_path_factory.mktemp("hub")
    token = secrets.token_hex(32)
    config = directory / "test_config.py"
    config.write_text(
        f"c = get_config()  # noqa\n"
        f"load_subconfig({str(ROOT / 'jupyterhub_config.py')!r})  # noqa\n"
        f"c.JupyterHub.services = [{{'name': 'tests', 'api_token': {token!r}}}]\n"
        "c.JupyterHub.load_roles = [{'name': 'tests', 'scopes': ['admin:users', 'admin:servers', "
        "'access:servers', 'read:users'], 'services': ['tests']}]\n"
    )
    ports = {name: _free_port() for name in ("CERN_PROXY_PORT", "CERN_PROXY_API_PORT", "CERN_HUB_PORT")}
    env = {**os.environ, "CERN_HUB_DIR": str(directory), **{k: str(v) for k, v in ports.items()}}
    log = directory / "hub.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "jupyterhub"), "-f", str(config)],
            cwd=directory,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{ports['CERN_PROXY_PORT']}"

    def healthy():
        if process.poll() is not None:
            raise AssertionError(f"the hub exited with {process.returncode}: {log.read_text()[-3000:]}")
        try:
            return requests.get(f"{url}/hub/health", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    wait_until(healthy, timeout=60, what="the hub's /hub/health")
    yield Hub(url, token, process, log)
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
    time.sleep(0)

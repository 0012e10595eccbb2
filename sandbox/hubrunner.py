"""Start a real JupyterHub (with configurable-http-proxy) against the sandbox, on free ports.

Used by the integration tests and the benchmarks: the repository's jupyterhub_config.py plus a few
extra lines, and an API token for a service allowed to manage users and servers.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


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

    def login(self, username: str, password: str) -> requests.Session:
        """A browser-like session logged in through the hub's login form."""
        browser = requests.Session()
        browser.get(f"{self.url}/hub/login", timeout=10)
        response = browser.post(
            f"{self.url}/hub/login",
            data={"username": username, "password": password, "_xsrf": browser.cookies.get("_xsrf")},
            timeout=30,
        )
        response.raise_for_status()
        return browser

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_hub(directory: Path, extra_config: str = "", timeout: float = 60, env: dict | None = None) -> Hub:
    directory.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(32)
    config = directory / "hub_config.py"
    config.write_text(
        "c = get_config()  # noqa\n"
        f"load_subconfig({str(ROOT / 'jupyterhub_config.py')!r})  # noqa\n"
        f"c.JupyterHub.services = [{{'name': 'automation', 'api_token': {token!r}}}]\n"
        "c.JupyterHub.load_roles = [{'name': 'automation', 'scopes': ['admin:users', 'admin:servers', "
        "'access:servers', 'read:users', 'admin:groups', 'read:metrics'], 'services': ['automation']}]\n"
        + extra_config
    )
    config.chmod(0o600)  # it holds the token
    ports = {name: _free_port() for name in ("CERN_PROXY_PORT", "CERN_PROXY_API_PORT", "CERN_HUB_PORT")}
    env = {
        **os.environ,
        **(env or {}),
        "CERN_HUB_DIR": str(directory),
        **{k: str(v) for k, v in ports.items()},
    }
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
    hub = Hub(f"http://127.0.0.1:{ports['CERN_PROXY_PORT']}", token, process, log)
    deadline = time.monotonic() + timeout
    delay = 0.1
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the hub exited with {process.returncode}: {log.read_text()[-3000:]}")
        try:
            if requests.get(f"{hub.url}/hub/health", timeout=2).status_code == 200:
                return hub
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            hub.stop()
            raise RuntimeError(f"the hub did not answer /hub/health within {timeout:.0f}s — see {log}")
        time.sleep(delay)
        delay = min(delay * 2, 1.0)

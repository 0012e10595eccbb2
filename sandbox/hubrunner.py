"""Start a real JupyterHub (with configurable-http-proxy) against the sandbox, on free ports.

Used by the integration tests and the benchmarks: the repository's jupyterhub_config.py plus a few
extra lines, and an API token for a service allowed to manage users and servers.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import requests

from .controlplane import _http_ok, free_port
from .errors import SandboxError
from .keycloak import LoginError, login_code_flow
from .procs import wait_for

ROOT = Path(__file__).resolve().parent.parent


class Hub:
    def __init__(self, url: str, token: str, process: subprocess.Popen, log: Path):
        self.url, self.token, self.process, self.log = url, token, process, log
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {token}"

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.session.request(method, f"{self.url}/hub/api{path}", timeout=30, **kwargs)

    def login(self, username: str, password: str) -> requests.Session:
        """A browser-like session logged in as a browser would: through single sign-on when the hub
        uses it (the hub's OAuth redirect, Keycloak's login form, the hub's callback), otherwise
        through the hub's own login form."""
        browser = requests.Session()
        start = browser.get(f"{self.url}/hub/oauth_login", allow_redirects=False, timeout=30)
        if start.status_code == 404:  # a local authenticator: no OAuth endpoints
            return self._login_form(browser, username, password)
        if start.status_code != 302:
            raise LoginError(f"/hub/oauth_login answered {start.status_code}: {start.text[:300]}")
        callback = login_code_flow(browser, start.headers["Location"], username, password)
        if not callback.startswith(f"{self.url}/hub/oauth_callback?"):
            raise LoginError(f"single sign-on sent {username} to {callback}, not to this hub")
        back = browser.get(callback, allow_redirects=False, timeout=30)
        if back.status_code != 302:
            raise LoginError(f"the hub refused the login of {username}: {back.status_code} {back.text[:300]}")
        # The home page sets the _xsrf cookie that form posts and cookie-authenticated API calls need.
        home = browser.get(f"{self.url}/hub/home", timeout=30)
        if home.status_code != 200 or "/hub/login" in home.url:
            raise LoginError(f"{username} is not logged in after the callback (at {home.url})")
        return browser

    def _login_form(self, browser: requests.Session, username: str, password: str) -> requests.Session:
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
    # Ports given in `env` are kept (a restarted hub must answer where its servers expect it).
    ports = {
        name: int((env or {}).get(name) or free_port())
        for name in ("CERN_PROXY_PORT", "CERN_PROXY_API_PORT", "CERN_HUB_PORT")
    }
    env = {
        **os.environ,
        **(env or {}),
        "CERN_HUB_DIR": str(directory),
        **{k: str(v) for k, v in ports.items()},
    }
    return launch_hub(directory, config, env, f"http://127.0.0.1:{ports['CERN_PROXY_PORT']}", token, timeout)


def launch_hub(
    directory: Path, config: Path, env: dict, url: str, token: str, timeout: float, name: str = "hub"
) -> Hub:
    """Run `jupyterhub -f config` in `directory` (its output in hub.log) and wait until `url`
    answers /hub/health; a hub that exits or stays silent is stopped and reported with its log."""
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
    hub = Hub(url, token, process, log)
    try:
        wait_for(
            lambda: _http_ok(f"{hub.url}/hub/health"),
            timeout=timeout,
            what=f"the {name}'s /hub/health",
            hint=f"see {log}",
            give_up=lambda: (
                None
                if process.poll() is None
                else f"the {name} exited with {process.returncode}: {log.read_text()[-3000:]}"
            ),
        )
    except SandboxError as e:
        hub.stop()
        raise RuntimeError(str(e)) from e
    return hub


def state_without_cloud(state: Path, view: Path) -> Path:
    """The sandbox's state directory as a hub without GPU growth sees it (the benchmarks' plain
    KubeSpawner hubs): the same files (linked), but a sandbox.json without the OpenStack simulator."""
    view.mkdir(parents=True)
    for entry in state.iterdir():
        if entry.name != "sandbox.json":
            (view / entry.name).symlink_to(entry)
    report = json.loads((state / "sandbox.json").read_text())
    report.pop("openstack", None)
    (view / "sandbox.json").write_text(json.dumps(report))
    return view

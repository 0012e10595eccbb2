"""The hubs the benchmarks compare, and how they are measured. Shared by every benchmark.

- `cern_hub`: the repository's jupyterhub_config.py (CERNSpawner, its authenticator, handlers and
  templates) plus a few lines, through `sandbox.hubrunner.start_hub`.
- `anchor_hub`: plain `kubespawner.KubeSpawner` with a config written here that loads NO code of
  ours: it never reads jupyterhub_config.py, and an import hook installed first in its config makes
  any import of `cern_spawner` or `sandbox` fail, so the hub would not start if anything tried (fair
  by construction, not by reading logs). It gets the same knobs ours gets from jupyterhub_config.py
  that change a spawn's cost (start and HTTP timeouts, default URL, a service token for the REST API).
- `Meter`: CPU seconds (utime + stime from /proc: process time, so other load on the shared machine
  does not count) of a hub process and its children except configurable-http-proxy (measured
  apart), and its resident memory.
- `machine()` / `load()`: cores, Python, load averages, recorded beside every figure.
- `alternating(names, round)`: the order in which round `round` runs the hubs (first one side, then
  the other), so neither always runs first on a machine that warms up or gets busier.
- `routed_users(hub, token)`: whose servers have a proxy route (a hub given `proxy_token_config`):
  how a benchmark waits for servers without charging the hub for the polling.
- `standin_notebook()`: for a `--fake` sandbox, where pods run nothing, one tiny HTTP server on
  the loopback answering for every user's notebook; `STANDIN_CONFIG` points both hubs at it.
"""

from __future__ import annotations

import http.server
import json
import os
import platform
import secrets
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.controlplane import free_port  # noqa: E402
from sandbox.hubrunner import Hub, launch_hub, start_hub  # noqa: E402
from sandbox.nodeagent.network import PodNetwork  # noqa: E402

STANDIN_PORT = 8888  # KubeSpawner's default notebook port: the pods' port and the stand-in's
# Both hubs connect to every notebook at the stand-in (pod_connect_ip) instead of the pod's IP.
STANDIN_CONFIG = 'c.KubeSpawner.pod_connect_ip = "127.0.0.1"\n'

# Installed first in the anchor's config: nothing of ours can be imported in that process.
_REFUSE_OURS = '''
import sys


class _NoCodeOfOurs:
    """The anchor hub is plain KubeSpawner: importing our packages is an error, not a detail."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("cern_spawner", "sandbox", "benchmarks"):
            raise ImportError(f"the anchor hub loads no code of cern-spawner (something imported {name})")
        return None


sys.meta_path.insert(0, _NoCodeOfOurs())
'''


def load() -> list[float]:
    """1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def empty_gpu_group(name: str, per_node: int, ceiling: int) -> str:
    """A sandbox topology entry (under `node_groups:`) for a tainted A100 group at 0 nodes that may
    grow to `ceiling`: the GPU group every GPU benchmark starts from."""
    return f"""  {name}:
    nodes: 0
    cpu: "64"
    memory: 256Gi
    zones: [cern-geneva-a]
    gpu: {{resource: nvidia.com/gpu, per_node: {per_node}, product: NVIDIA-A100-SXM4-40GB}}
    gpu_taint: {{key: nvidia.com/gpu, value: present, effect: NoSchedule}}
    scaling: {{min_nodes: 0, max_nodes: {ceiling}}}
"""


def machine(**extra) -> dict:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg_1_5_15": load(),
        **extra,
    }


def alternating(names: tuple[str, ...] | list[str], round_index: int) -> list[str]:
    """Round 0 runs the hubs in the given order, round 1 reversed, and so on."""
    return list(names) if round_index % 2 == 0 else list(reversed(names))


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int, children: bool = False) -> float:
    """utime + stime of a process (with `children`: plus its reaped children's)."""
    fields = _stat(pid)
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def system_seconds(pid: int) -> float:
    """stime of a process alone: the kernel's work for it (sockets, files, fsync), part of cpu_seconds."""
    return int(_stat(pid)[12]) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


class Meter:
    """CPU and memory of one hub process: children (git, helpers) counted, the proxy apart."""

    def __init__(self, hub: Hub):
        self.hub = hub
        self.proxy = int((Path(hub.directory) / "proxy.pid").read_text().strip())

    def sample(self) -> dict:
        pid = self.hub.process.pid
        others = 0.0
        for child in _descendants(pid):
            if child != self.proxy:
                try:
                    others += cpu_seconds(child)
                except OSError:
                    pass
        return {
            "hub_cpu_s": cpu_seconds(pid, children=True) + others,
            "hub_system_s": system_seconds(pid),
            "proxy_cpu_s": cpu_seconds(self.proxy),
            "hub_rss_bytes": rss_bytes(pid),
        }


def cern_hub(directory: Path, extra_config: str = "", env: dict | None = None, timeout: float = 120) -> Hub:
    """CERNSpawner with the repository's jupyterhub_config.py (and `extra_config` after it)."""
    hub = start_hub(directory, extra_config, timeout=timeout, env=env)
    hub.directory = directory
    return hub


def ensure_namespace(core, name: str) -> None:
    """`core`: a kubernetes (sync) CoreV1Api."""
    from kubernetes import client

    try:
        core.create_namespace({"metadata": {"name": name}})
    except client.ApiException as e:
        if e.status != 409:
            raise


def anchor_config(report: dict, namespace: str, token: str, directory: Path, ports: dict) -> str:
    """The anchor hub's whole config: plain KubeSpawner, none of our code (see the module doc)."""
    # Where pods reach the hub: as jupyterhub_config.py computes it, from the sandbox's own settings.
    settings = json.loads((Path(report["state_dir"]) / "sandbox.json").read_text())
    gateway = "127.0.0.1" if settings.get("fake") else PodNetwork(**settings["network"]).gateway
    return (
        _REFUSE_OURS
        + f"""
c = get_config()  # noqa: F821
c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
c.JupyterHub.authenticator_class = "dummy"  # the benchmarks spawn through the REST API
c.KubeSpawner.namespace = {namespace!r}
c.KubeSpawner.cmd = ["jupyterhub-singleuser"]
c.KubeSpawner.default_url = "/lab"
c.KubeSpawner.start_timeout = 120
c.KubeSpawner.http_timeout = 60
c.JupyterHub.hub_bind_url = "http://{gateway}:{ports["hub"]}"
c.JupyterHub.bind_url = "http://127.0.0.1:{ports["proxy"]}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{ports["proxy_api"]}"
c.ConfigurableHTTPProxy.command = [{str(ROOT / "node_modules" / ".bin" / "configurable-http-proxy")!r}]
c.ConfigurableHTTPProxy.pid_file = {str(directory / "proxy.pid")!r}
c.JupyterHub.db_url = "sqlite:///{directory / "jupyterhub.sqlite"}"
c.JupyterHub.cookie_secret_file = {str(directory / "jupyterhub_cookie_secret")!r}
c.JupyterHub.services = [{{"name": "automation", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [
    {{
        "name": "automation",
        "scopes": ["admin:users", "admin:servers", "access:servers", "read:users", "admin:groups",
                   "read:metrics"],
        "services": ["automation"],
    }}
]
"""
    )


def anchor_hub(
    directory: Path,
    report: dict,
    namespace: str,
    extra_config: str = "",
    timeout: float = 120,
) -> Hub:
    """Plain KubeSpawner on the sandbox described by `report` (`python -m sandbox up --json`),
    spawning into `namespace` (create it first: `ensure_namespace`). No code of ours is loaded."""
    directory.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(32)
    ports = {name: free_port() for name in ("hub", "proxy", "proxy_api")}
    config = directory / "anchor_config.py"
    config.write_text(anchor_config(report, namespace, token, directory, ports) + extra_config)
    config.chmod(0o600)  # it holds the token
    # kubernetes_asyncio reads $KUBECONFIG when first imported; the hub runs outside the repository.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["KUBECONFIG"] = report["kubeconfig"]
    hub = launch_hub(
        directory, config, env, f"http://127.0.0.1:{ports['proxy']}", token, timeout, "anchor hub"
    )
    hub.directory = directory
    return hub


class _Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        body = b'{"stand-in": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, *args):  # quiet
        pass


def standin_notebook(port: int = STANDIN_PORT) -> http.server.ThreadingHTTPServer:
    """One HTTP server on 127.0.0.1:`port` answering 200 to every path: every user's "notebook" on a
    --fake sandbox. `.shutdown()` stops it."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Answer)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def sandbox_up(state: Path, topology: Path | None = None, fake: bool = False) -> dict:
    """Start (or reuse) the sandbox at `state`; its report."""
    command = [sys.executable, "-m", "sandbox", "up", "--json"]
    if topology:
        command += ["--topology", str(topology)]
    if fake:
        command.append("--fake")
    up = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "CERN_SANDBOX_STATE": str(state)},
    )
    if up.returncode != 0:
        sandbox_down(state)  # whatever it had started
        raise SystemExit(up.stderr)
    return json.loads(up.stdout)


def state_dir() -> Path:
    """$CERN_SANDBOX_STATE, or the sandbox's default state directory."""
    from sandbox.config import state_dir as configured

    return configured()


def sandbox_down(state: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "sandbox", "down"],
        cwd=ROOT,
        capture_output=True,
        env={**os.environ, "CERN_SANDBOX_STATE": str(state)},
    )


def proxy_token_config(token: str) -> str:
    """Config lines giving a hub's configurable-http-proxy a known API token (`routed_users`)."""
    return f"c.ConfigurableHTTPProxy.auth_token = {token!r}\n"


def routed_users(hub: Hub, token: str) -> set[str]:
    """The users whose default server has a route in the hub's configurable-http-proxy: asked of
    the proxy, whose CPU `Meter` counts apart, so waiting for servers this way costs the hub
    nothing. (Polling the hub's /users instead costs the hub per call, so a side whose servers take
    longer would pay more for being watched.) JupyterHub adds the route as the last step of a
    start, just before the server reads as ready."""
    if not hasattr(hub, "proxy_api"):
        proxy = int((Path(hub.directory) / "proxy.pid").read_text().strip())
        args = Path(f"/proc/{proxy}/cmdline").read_bytes().decode().split("\0")
        option = {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("--")}
        hub.proxy_api = f"http://{option.get('--api-ip') or '127.0.0.1'}:{option['--api-port']}"
    import requests

    routes = requests.get(
        f"{hub.proxy_api}/api/routes", headers={"Authorization": f"token {token}"}, timeout=30
    ).json()
    return {data["user"] for path, data in routes.items() if data.get("user") and not data.get("server_name")}


def servers_ready(hub: Hub, users: list[str]) -> dict[str, bool | None]:
    """Each user's default server: True ready, False starting, None none (stopped or failed)."""
    states: dict[str, bool | None] = {}
    offset = 0
    while True:
        page = hub.api("GET", f"/users?limit=200&offset={offset}").json()
        for user in page:
            server = user["servers"].get("")
            states[user["name"]] = None if not server else bool(server.get("ready"))
        if len(page) < 200:
            break
        offset += 200
    return {u: states.get(u) for u in users}


__all__ = [
    "STANDIN_CONFIG",
    "Hub",
    "Meter",
    "alternating",
    "anchor_hub",
    "cern_hub",
    "cpu_seconds",
    "ensure_namespace",
    "load",
    "machine",
    "proxy_token_config",
    "routed_users",
    "rss_bytes",
    "sandbox_down",
    "sandbox_up",
    "servers_ready",
    "standin_notebook",
]

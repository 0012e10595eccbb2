"""Spawning each seed profile through the hub's REST API, on the sandbox, through the real proxy."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import threading
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web
from kubernetes import client

from cern_spawner.catalog import load_catalog
from sandbox.controlplane import free_port
from sandbox.hubrunner import start_hub
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.shares("gpu-v100")]
PROFILES = load_catalog([Path(__file__).resolve().parents[2] / "profiles"]).profiles


@pytest.mark.parametrize("profile", PROFILES, ids=[p.slug for p in PROFILES])
def test_profile_spawns_serves_through_proxy_and_stops(hub, core, sandbox, profile):
    user = f"spawn-{profile.slug}"
    assert hub.api("POST", f"/users/{user}").status_code in (201, 409)
    # Roles are JupyterHub groups (single sign-on fills them at login); this user never logs in,
    # so an admin grants the role through the API.
    for role in profile.allowed_roles[:1]:
        assert hub.api("POST", f"/groups/{role}").status_code in (201, 409)
        assert hub.api("POST", f"/groups/{role}/users", json={"users": [user]}).status_code == 200
    started = hub.api("POST", f"/users/{user}/server", json={"profile": profile.slug})
    assert started.status_code in (201, 202), started.text

    def ready():
        model = hub.api("GET", f"/users/{user}").json()
        server = model["servers"].get("", {})
        return server.get("ready") and server

    wait_until(ready, timeout=120, what=f"{user}'s server to be ready")
    status = hub.session.get(f"{hub.url}/user/{user}/api/status", timeout=10)
    assert status.status_code == 200, status.text[:300]
    assert "started" in status.json()

    namespace = sandbox["user_namespace"]
    pods = core.list_namespaced_pod(namespace, label_selector=f"hub.jupyter.org/username={user}").items
    assert len(pods) == 1
    pod = pods[0]
    assert pod.metadata.labels["cern-spawner/profile"] == profile.slug
    node = core.read_node(pod.spec.node_name)
    assert node.metadata.labels["magnum.openstack.org/nodegroup"] == profile.node_group
    limits = pod.spec.containers[0].resources.limits
    if profile.gpus:
        assert limits["nvidia.com/gpu"] == str(profile.gpus)
        assert pod.status.qos_class == "Guaranteed"
    else:
        assert "nvidia.com/gpu" not in limits
        assert pod.status.qos_class == "Burstable"

    stopped = hub.api("DELETE", f"/users/{user}/server")
    assert stopped.status_code in (202, 204)

    def pod_gone():
        try:
            core.read_namespaced_pod(pod.metadata.name, namespace)
            return False
        except client.ApiException as e:
            return e.status == 404

    wait_until(pod_gone, timeout=60, what=f"{pod.metadata.name} to be removed")
    assert not hub.api("GET", f"/users/{user}").json()["servers"]


# -- a pod create answered after KubeSpawner's request timeout ------------------------------
SLOW_USER = "adopt-slow"
LATE_S = 4.0  # the API server's answer to SLOW_USER's pod creates reaches the hub this late (> 3 s)
# What is tested is the pod's creation: a notebook that answers at once (any path, 200) keeps it quick.
QUICK_NOTEBOOK = """
c.KubeSpawner.cmd = ["python", "-c", '''
import http.server as h
class A(h.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
h.HTTPServer(("0.0.0.0", 8888), A).serve_forever()
''']
"""
HOP_HEADERS = ("content-length", "transfer-encoding", "connection", "content-encoding")


class LateAnswers:
    """A plain-HTTP reverse proxy to the API server, on the loopback, for one hub: it passes every
    request on at once (so the API server does the work) but holds the answer to a create of
    SLOW_USER's pod LATE_S seconds, as an overloaded API server or hub does. Records those creates."""

    def __init__(self, sandbox: dict):
        self.upstream = sandbox["server"]
        pki = Path(sandbox["state_dir"]) / "pki"
        self.tls = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        self.tls.load_cert_chain(pki / "admin.crt", pki / "admin.key")
        self.port = free_port()
        self.creates: list[int] = []  # the API server's status for each create of the slow pod
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()
        self._ready.wait(10)

    def _serve(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self._ready.set()
        self.loop.run_forever()

    async def _start(self):
        app = web.Application(client_max_size=16 * 2**20)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        # At close the hub is gone, but the watches it ran through us stay open until the API server
        # ends them (minutes): cancel them after 1 s instead of aiohttp's 60 s grace.
        self.runner = web.AppRunner(app, shutdown_timeout=1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.tls))

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        slow = request.method == "POST" and request.path.endswith("/pods") and _user(body) == SLOW_USER
        async with self.session.request(
            request.method, self.upstream + request.path_qs, data=body or None, headers=headers, timeout=None
        ) as upstream:
            answer = web.StreamResponse(status=upstream.status)
            for key, value in upstream.headers.items():
                if key.lower() not in (
                    "content-length",
                    "transfer-encoding",
                    "connection",
                    "content-encoding",
                ):
                    answer.headers[key] = value
            if slow:
                self.creates.append(upstream.status)
                await asyncio.sleep(LATE_S)
            try:
                await answer.prepare(request)
                async for chunk in upstream.content.iter_any():  # watches stream
                    await answer.write(chunk)
            except (ConnectionResetError, aiohttp.ClientConnectionResetError):
                pass  # the client gave up (the hub's request timeout)
            return answer

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "late", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
                    "users": [{"name": "late", "user": {}}],
                    "contexts": [{"name": "late", "context": {"cluster": "late", "user": "late"}}],
                    "current-context": "late",
                }
            )
        )
        return path

    def close(self):
        async def shut():
            await self.session.close()
            await self.runner.cleanup()

        asyncio.run_coroutine_threadsafe(shut(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


def _user(body: bytes) -> str | None:
    return ((json.loads(body).get("metadata") or {}).get("labels") or {}).get("hub.jupyter.org/username")


@pytest.fixture
def late_hub(sandbox, tmp_path):
    """A hub whose API server answers SLOW_USER's pod creates after its request timeout: it reads
    the sandbox through a state directory whose kubeconfig points at LateAnswers."""
    proxy = LateAnswers(sandbox)
    state, view = Path(sandbox["state_dir"]), tmp_path / "state"
    view.mkdir()
    for entry in state.iterdir():
        if entry.name != "sandbox.json":
            (view / entry.name).symlink_to(entry)
    report = json.loads((state / "sandbox.json").read_text())
    report["kubeconfig"] = str(proxy.kubeconfig(tmp_path / "kubeconfig"))
    report.pop("openstack", None)  # no GPU growth: this hub only spawns a shared profile
    (view / "sandbox.json").write_text(json.dumps(report))
    try:
        hub = start_hub(tmp_path / "hub", QUICK_NOTEBOOK, env={"CERN_SANDBOX_STATE": str(view)})
    except RuntimeError as e:
        proxy.close()
        pytest.fail(str(e), pytrace=False)
    yield hub, proxy
    hub.stop()
    proxy.close()


def test_a_pod_create_answered_after_the_request_timeout_is_adopted(late_hub, core, sandbox):
    """The API server makes the pod but its answer comes after KubeSpawner's 3 s request timeout.
    Before, the retry met that pod (409), deleted it as stale and created another, whose answer came
    late too, until the spawn failed; now the pod this start made is recognised and adopted."""
    hub, proxy = late_hub
    assert hub.api("POST", f"/users/{SLOW_USER}").status_code in (201, 409)
    started = hub.api("POST", f"/users/{SLOW_USER}/server", json={"profile": "shared-1g"})
    assert started.status_code in (201, 202), started.text

    def settled():
        server = hub.api("GET", f"/users/{SLOW_USER}").json()["servers"].get("")
        return "failed" if not server else server.get("ready")

    assert wait_until(settled, timeout=90, what=f"{SLOW_USER}'s spawn to end") is True
    assert proxy.creates == [201]  # one create made the pod, and its answer came late
    selector = f"hub.jupyter.org/username={SLOW_USER}"
    pods = core.list_namespaced_pod(sandbox["user_namespace"], label_selector=selector).items
    assert [p.metadata.deletion_timestamp for p in pods] == [None]
    assert re.search(rf"Pod {pods[0].metadata.name}: timed out; .*; adopted", hub.log.read_text())
    assert hub.api("DELETE", f"/users/{SLOW_USER}/server").status_code in (202, 204)

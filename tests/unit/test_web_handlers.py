"""The cern endpoints over real HTTP, on an in-process JupyterHub (no proxy, no cluster): availability,
and who may read them (JupyterHub scopes: an admin's notebook-server token reads neither)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytest_asyncio
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from traitlets.config import Config

from cern_spawner import CERNSpawner
from cern_spawner.bounded import Bounded
from cern_spawner.web import handlers as web_handlers
from cern_spawner.web.handlers import AvailabilityHandler
from tests.unit.inprocess_hub import add_standard_users, running_hub
from tests.unit.test_web_availability import status

# Own loop for this module: KubeSpawner caches API clients per running loop (see test_spawner_pod).
pytestmark = pytest.mark.unit
in_module_loop = pytest.mark.asyncio(loop_scope="module")

PROFILES_DIR = Path(__file__).resolve().parents[2] / "profiles"
SHARED = ["shared-1g", "shared-2g", "shared-4g"]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def hub():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("kubespawner.spawner.load_config", lambda **kwargs: None)
        c = Config()
        c.JupyterHub.spawner_class = CERNSpawner
        c.JupyterHub.extra_handlers = web_handlers.handlers
        c.CERNSpawner.profiles_path = [str(PROFILES_DIR)]
        async with running_hub(c) as app:
            tokens, server_tokens = add_standard_users(app)
            yield SimpleNamespace(
                url=app.hub.url + "api/cern/availability",
                catalog_url=app.hub.url + "api/cern/catalog",
                servers_url=app.hub.url + "api/cern/servers/",
                tokens=tokens,
                server_tokens=server_tokens,
            )


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    monkeypatch.setattr(AvailabilityHandler, "cache", Bounded(max_entries=256, ttl=5.0))


async def get(url, token=None):
    headers = {"Authorization": f"token {token}"} if token else {}
    try:
        response = await AsyncHTTPClient().fetch(url, headers=headers)
    except HTTPClientError as e:
        return e.code, json.loads(e.response.body)
    return response.code, json.loads(response.body)


@in_module_loop
async def test_anonymous_gets_403_in_json(hub):
    code, body = await get(hub.url)
    assert code == 403
    assert body["status"] == 403 and body["message"]


@in_module_loop
async def test_each_user_sees_only_their_profiles(hub):
    code, alice = await get(hub.url, hub.tokens["alice"])
    assert code == 200
    assert list(alice["profiles"]) == SHARED
    assert alice["profiles"]["shared-2g"] == {
        "state": "available",
        "text": "Available",
        "reason": "",
        "disabled": False,
        "free_gpus": None,
        "total_gpus": None,
    }
    _, bob = await get(hub.url, hub.tokens["bob"])
    assert list(bob["profiles"]) == [*SHARED, "gpu-1"]
    # No cloud configured, so no controller watches the GPU group: said, not guessed.
    assert bob["profiles"]["gpu-1"]["state"] == "unknown"


@in_module_loop
async def test_gpu_verdict_comes_from_the_controllers_statuses(hub, monkeypatch):
    controller = SimpleNamespace(
        statuses={"gpu-v100": status(used=1)}, expected_boot_seconds=lambda group: None
    )
    monkeypatch.setattr(web_handlers, "shared_controller", lambda spawner, log: controller)
    _, bob = await get(hub.url, hub.tokens["bob"])
    assert bob["profiles"]["gpu-1"]["text"] == "3 of 4 GPUs free"
    # Within the cache's lifetime the controller is not read again.
    controller.statuses["gpu-v100"] = status(used=4)
    _, again = await get(hub.url, hub.tokens["bob"])
    assert again == bob


ACCESS = {
    # (endpoint, user, kind of token, status)
    "catalog-admin-token": ("catalog_url", "carol", "tokens", 200),
    "catalog-admin-server-token": ("catalog_url", "carol", "server_tokens", 403),
    "catalog-user-token": ("catalog_url", "alice", "tokens", 403),
    "availability-user-token": ("url", "alice", "tokens", 200),
    "availability-user-server-token": ("url", "alice", "server_tokens", 403),
    "availability-admin-server-token": ("url", "carol", "server_tokens", 403),
}


@in_module_loop
@pytest.mark.parametrize("endpoint, name, kind, status", ACCESS.values(), ids=ACCESS.keys())
async def test_access_follows_the_tokens_scopes(hub, endpoint, name, kind, status):
    code, body = await get(getattr(hub, endpoint), getattr(hub, kind)[name])
    assert code == status, body
    if status == 403:
        assert "notebook server's token" in body["message"]


WHERE = {
    # (token's owner, kind of token, whose servers, status)
    "own": ("alice", "tokens", "alice", 200),
    "another-users": ("alice", "tokens", "bob", 403),
    "admin-reads-anyone": ("carol", "tokens", "alice", 200),
    "own-server-token": ("alice", "server_tokens", "alice", 403),
    "admin-unknown-user": ("carol", "tokens", "nobody", 404),
}


@in_module_loop
@pytest.mark.parametrize("name, kind, whose, status", WHERE.values(), ids=WHERE.keys())
async def test_where_servers_run_follows_the_read_servers_scope(hub, name, kind, whose, status):
    code, body = await get(hub.servers_url + whose, getattr(hub, kind)[name])
    assert code == status, body
    if status == 200:
        assert body == {"user": whose, "servers": {}}  # nothing started in this hub
    elif status == 403:
        assert "notebook server's token" in body["message"]

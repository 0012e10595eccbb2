"""GPU quotas in an in-process JupyterHub (no proxy, no cluster): a start over quota is refused with
403 through the REST API and the form before anything starts, the picker's card shows what is left,
and only admins change one user's quota (server-side scope checks)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
import pytest_asyncio
from jupyterhub.tests.utils import AsyncSession
from tornado.httpclient import AsyncHTTPClient
from traitlets.config import Config

from cern_spawner import CERNSpawner
from cern_spawner.quota import hooks
from cern_spawner.quota.ledger import Ledger, sessions_table
from cern_spawner.web import handlers as web_handlers
from tests.unit.inprocess_hub import add_standard_users, running_hub

pytestmark = pytest.mark.unit
in_module_loop = pytest.mark.asyncio(loop_scope="module")

H = 3600.0
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC).timestamp()  # a Thursday
CATALOG = """\
node_groups:
  default-worker: {}
  gpu-v100:
    gpu: {per_node: 4}
profiles:
  - slug: shared-2g
    display_name: Shared
    kind: shared
    cpu: {guarantee: 0.2, limit: 1}
    memory: {guarantee: 1G, limit: 2G}
    node_group: default-worker
    default: true
  - slug: gpu-1
    display_name: One GPU
    kind: dedicated
    cpu: 2
    memory: 4G
    gpus: 1
    node_group: gpu-v100
quotas:
  window: 7d
  default: {gpus: 1, gpu_hours: 2}
  roles:
    gpu-users: {gpus: 2, gpu_hours: 10}
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def hub(tmp_path_factory):
    profiles = tmp_path_factory.mktemp("profiles")
    (profiles / "catalog.yaml").write_text(CATALOG)
    starts = []

    async def no_start(spawner):
        starts.append(spawner.user.name)
        raise AssertionError("a refused start reached KubeSpawner")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("kubespawner.spawner.load_config", lambda **kwargs: None)
        patch.setattr("kubespawner.KubeSpawner.start", no_start)
        patch.setattr(hooks, "clock", lambda: NOW)
        c = Config()
        c.JupyterHub.spawner_class = CERNSpawner
        c.JupyterHub.extra_handlers = web_handlers.handlers
        c.CERNSpawner.profiles_path = [str(profiles)]
        c.BinderConfig.registry = "registry.invalid:5000"  # repository launches on (never reached)
        async with running_hub(c) as app:
            tokens, server_tokens = add_standard_users(app)
            yield SimpleNamespace(
                app=app, url=app.hub.url, tokens=tokens, server_tokens=server_tokens, starts=starts
            )


@pytest.fixture(autouse=True)
def alice_used_two_and_a_half_hours(hub):
    """alice (default: 1 GPU, 2 GPU-hours) ran one GPU from 3.5 h to 1 h ago; no overrides."""
    ledger = Ledger(hub.app.db)
    ledger.db.execute(sessions_table.delete())
    ledger.clear_override("alice")
    ledger.open("alice", "", "gpu-1", 1, "default", NOW - 3.5 * H)
    ledger.close("alice", "", NOW - 1 * H)
    yield
    hub.app.db.rollback()


async def call(hub, method, path, token=None, body=None):
    headers = {"Authorization": f"token {token}"} if token else {}
    if body is not None:
        body = json.dumps(body)
    response = await AsyncHTTPClient().fetch(
        hub.url + path.lstrip("/"),
        method=method,
        headers=headers,
        body=body,
        raise_error=False,
        follow_redirects=False,
        allow_nonstandard_methods=True,
    )
    text = response.body.decode() if response.body else ""
    try:
        return response.code, json.loads(text)
    except ValueError:
        return response.code, text


async def browser(hub, name: str) -> AsyncSession:
    """A session logged in through the hub's login form (the mock authenticator: password = name):
    the hub's pages take cookies, not API tokens."""
    session = AsyncSession()
    login = hub.url + "login"
    await session.get(login)
    answer = await session.post(
        login,
        data={"username": name, "password": name, "_xsrf": session.cookies["_xsrf"]},
        allow_redirects=False,
    )
    answer.raise_for_status()
    (await session.get(hub.url + "home")).raise_for_status()
    return session


async def form_page(hub, name: str) -> str:
    response = await (await browser(hub, name)).get(hub.url + "spawn")
    assert response.status_code == 200 and response.url.endswith("/spawn"), response.url
    return response.text


REFUSED = (
    "You have used 2.5 of 2 GPU-hours in the last 7 days; 1 GPU-hour frees at 10:00 UTC Thursday 10 December."
)


@in_module_loop
async def test_rest_start_over_quota_is_refused_with_the_numbers_and_nothing_starts(hub):
    for options in ({"profile": "gpu-1"}, {"profile": "gpu-1", **LAUNCH}):
        code, body = await call(hub, "POST", "api/users/alice/server", hub.tokens["alice"], options)
        assert (code, body["message"]) == (403, REFUSED)
    assert hub.starts == []
    _, alice = await call(hub, "GET", "api/users/alice", hub.tokens["carol"])
    assert alice["servers"] == {}


# A repository launch's confirmation page posts the same form, with the repository's fields.
LAUNCH = {"binder_repo": "https://github.com/org/analysis", "binder_ref": "main"}


@in_module_loop
@pytest.mark.parametrize("fields", [{}, LAUNCH], ids=["form", "repository-launch"])
async def test_form_post_over_quota_is_refused_with_the_numbers(hub, fields):
    session = await browser(hub, "alice")
    answer = await session.post(
        hub.url + "spawn", data={"profile": "gpu-1", **fields, "_xsrf": session.cookies["_xsrf"]}
    )
    assert answer.status_code == 403
    assert REFUSED in answer.text
    assert hub.starts == []


@in_module_loop
async def test_the_card_shows_whats_left_and_is_disabled_over_quota(hub):
    alice = await form_page(hub, "alice")
    assert 'data-slug="gpu-1" data-kind="dedicated" data-quota-off="1"' in alice
    assert REFUSED in alice
    bob = await form_page(hub, "bob")
    assert "data-quota-off" not in bob
    assert "GPU quota: 10 of 10 GPU-hours left (last 7 days), 0 of 2 GPUs in use" in bob


@in_module_loop
async def test_an_admin_raises_one_users_quota_and_it_is_kept(hub):
    code, body = await call(
        hub, "PUT", "api/cern/quota/alice", hub.tokens["carol"], {"gpu_hours": 5, "reason": "thesis deadline"}
    )
    assert code == 200, body
    # Kept in the hub's database: a new reader finds it.
    assert Ledger(hub.app.db).override("alice").gpu_hours == 5.0
    code, quota = await call(hub, "GET", "api/cern/quota/alice", hub.tokens["alice"])
    assert code == 200
    assert (quota["gpu_hours_limit"], quota["gpu_hours_used"], quota["gpu_hours_left"]) == (5.0, 2.5, 2.5)
    assert quota["override"]["set_by"] == "carol" and quota["override"]["reason"] == "thesis deadline"
    page = await form_page(hub, "alice")
    assert "data-quota-off" not in page and "GPU quota: 2.5 of 5 GPU-hours left" in page
    code, _ = await call(hub, "DELETE", "api/cern/quota/alice", hub.tokens["carol"])
    assert code == 204 and Ledger(hub.app.db).override("alice") is None


ACCESS = {
    # (method, whose quota, caller, kind of token, status)
    "user-reads-own": ("GET", "alice", "alice", "tokens", 200),
    "admin-reads-any": ("GET", "alice", "carol", "tokens", 200),
    "user-reads-another": ("GET", "alice", "bob", "tokens", 403),
    "server-token-reads-own": ("GET", "alice", "alice", "server_tokens", 403),
    "user-raises-own": ("PUT", "alice", "alice", "tokens", 403),
    "user-raises-another": ("PUT", "alice", "bob", "tokens", 403),
    "admin-server-token-raises": ("PUT", "alice", "carol", "server_tokens", 403),
    "user-removes-own-override": ("DELETE", "alice", "alice", "tokens", 403),
    "anonymous": ("GET", "alice", None, None, 403),
    "no-such-user": ("GET", "nobody", "carol", "tokens", 404),
}


@in_module_loop
@pytest.mark.parametrize("method, whose, caller, kind, status", ACCESS.values(), ids=ACCESS.keys())
async def test_who_may_read_and_change_a_quota(hub, method, whose, caller, kind, status):
    token = getattr(hub, kind)[caller] if caller else None
    body = {"gpu_hours": 100} if method == "PUT" else None
    code, answer = await call(hub, method, f"api/cern/quota/{whose}", token, body)
    assert code == status, answer
    if status == 403:
        assert Ledger(hub.app.db).override("alice") is None


BAD = {
    "not-json": (b"{", "must be JSON"),
    "unknown-key": ({"gpu_hour": 5}, "Unknown keys 'gpu_hour'"),
    "nothing-to-set": ({"reason": "x"}, "Give gpus, gpu_hours or both"),
    "negative": ({"gpus": -1}, "gpus must be a whole number of at least 0, not -1."),
    "boolean": ({"gpu_hours": True}, "gpu_hours must be a number"),
    "naive-time": ({"gpus": 2, "expires": "2026-12-10T18:00"}, "expires needs a time zone"),
    "past": ({"gpus": 2, "expires": "2026-12-01T18:00Z"}, "expires is in the past"),
}


@in_module_loop
@pytest.mark.parametrize("body, words", BAD.values(), ids=BAD.keys())
async def test_a_malformed_override_is_refused_with_400(hub, body, words):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = await AsyncHTTPClient().fetch(
        f"{hub.url}api/cern/quota/alice",
        method="PUT",
        headers={"Authorization": f"token {hub.tokens['carol']}"},
        body=raw,
        raise_error=False,
    )
    assert response.code == 400
    assert words in json.loads(response.body)["message"]
    assert Ledger(hub.app.db).override("alice") is None

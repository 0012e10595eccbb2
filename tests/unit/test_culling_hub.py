"""The culler in a real, in-process JupyterHub (no proxy, no cluster): started by configure_hub's
wiring, acting with its own token of exactly its role's scopes; the notices, Keep and the banner."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytest_asyncio
from jupyterhub import orm
from jupyterhub.spawner import Spawner
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from traitlets.config import Config

from cern_spawner.culling import hub as culling_hub
from cern_spawner.culling.handlers import handlers as culling_handlers
from cern_spawner.culling.service import CULLS, SCOPES, SERVICE_NAME
from cern_spawner.waiting import until
from cern_spawner.web import HUB_TEMPLATE_DIR
from tests.unit.inprocess_hub import add_user, running_hub

pytestmark = pytest.mark.unit
in_module_loop = pytest.mark.asyncio(loop_scope="module")

PROFILES_DIR = Path(__file__).resolve().parents[2] / "profiles"  # gpu-1: idle 1 h; shared: 8 h


class ParkedSpawner(Spawner):
    """Servers the test puts in the database as running; stopping one only forgets it."""

    async def start(self):
        raise AssertionError("the test does not start servers")

    async def stop(self, now=False):
        pass

    async def poll(self):
        return None


def running(app, name: str, server: str, profile: str, *, idle: float, age: float):
    """A running server of `name`, started `age` s ago, last active `idle` s ago."""
    user = app.users[orm.User.find(app.db, name)]
    if server not in user.orm_spawners:
        user._new_orm_spawner(server, server)
    spawner = user.get_spawner(server, replace_failed=True)
    now = datetime.now(UTC).replace(tzinfo=None)
    spawner.user_options = {"profile": profile}
    spawner.orm_spawner.server = orm.Server(ip="127.0.0.1", port=1, base_url=user.prefix)
    spawner.orm_spawner.started = now - timedelta(seconds=age)
    spawner.orm_spawner.last_activity = now - timedelta(seconds=idle)
    app.db.commit()
    return spawner


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def hub():
    c = Config()
    c.JupyterHub.spawner_class = ParkedSpawner
    c.JupyterHub.allow_named_servers = True
    c.JupyterHub.template_paths = [HUB_TEMPLATE_DIR]
    c.JupyterHub.extra_handlers = list(culling_handlers)
    c.CERNSpawner.profiles_path = [str(PROFILES_DIR)]
    c.Culling.interval = 0.2
    c.Culling.warn_before = 900
    culling_hub.configure(c)  # what configure_hub does; its task waits for the hub's start
    async with running_hub(c) as app:
        tokens = {name: add_user(app, name).new_api_token() for name in ("ana", "ben")}
        yield SimpleNamespace(app=app, api=app.hub.url + "api/", tokens=tokens)


async def call(method, url, token=None, body=None, **kwargs):
    headers = {"Authorization": f"token {token}"} if token else {}
    try:
        response = await AsyncHTTPClient().fetch(
            url, method=method, headers=headers, body=None if body is None else json.dumps(body), **kwargs
        )
    except HTTPClientError as e:
        return e.code, json.loads(e.response.body)
    return response.code, json.loads(response.body) if response.body else None


class Browser:
    """A logged-in browser session: cookies and the XSRF token, as JupyterHub's login sets them."""

    def __init__(self, base: str):
        self.base, self.cookies = base, {}

    @classmethod
    async def logged_in(cls, base: str, name: str) -> Browser:
        browser = cls(base)
        await browser.get("login")
        xsrf = browser.cookies["_xsrf"]
        code, _ = await browser.post(f"login?_xsrf={xsrf}", {"username": name, "password": name})
        assert code == 302
        return browser

    def _remember(self, response) -> None:
        for header in response.headers.get_list("Set-Cookie"):
            name, _, rest = header.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]

    def _headers(self) -> dict:
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}

    async def get(self, path: str) -> str:
        response = await AsyncHTTPClient().fetch(self.base + path, headers=self._headers())
        self._remember(response)
        return response.body.decode()

    async def post(self, path: str, form: dict) -> tuple[int, str]:
        from urllib.parse import urlencode

        response = await AsyncHTTPClient().fetch(
            self.base + path,
            method="POST",
            headers=self._headers(),
            body=urlencode({**form, "_xsrf": self.cookies.get("_xsrf", "")}),
            follow_redirects=False,
            raise_error=False,
        )
        self._remember(response)
        return response.code, response.headers.get("Location", "")


def culls(profile, reason):
    return CULLS.labels(profile, reason)._value.get()


@in_module_loop
async def test_registered_with_its_role_and_a_token_of_only_its_scopes(hub):
    await until(lambda: _ready(), within=10, what="the culler to start")
    service = orm.Service.find(hub.app.db, SERVICE_NAME)
    assert [role.name for role in service.roles] == [SERVICE_NAME]
    [token] = service.api_tokens  # a previous start's would have been deleted
    assert token.scopes == ["inherit"]  # its owner's: the role's scopes, no more
    assert sorted(scope for role in service.roles for scope in role.scopes) == sorted(SCOPES)
    assert culling_hub.api_url(hub.app).startswith("http://127.0.0.1:")


async def _ready():
    return culling_hub.RUNNING


@in_module_loop
async def test_an_idle_gpu_server_is_culled_and_a_shared_one_of_the_same_age_stays(hub):
    await until(_ready, within=10, what="the culler to start")
    before = culls("gpu-1", "idle")
    gpu = running(hub.app, "ana", "train", "gpu-1", idle=3700, age=3800)
    shared = running(hub.app, "ana", "notes", "shared-2g", idle=3700, age=3800)
    busy = running(hub.app, "ben", "", "gpu-1", idle=10, age=3800)

    async def gpu_stopped():
        return not gpu.active

    async def counted():
        return culls("gpu-1", "idle") == before + 1

    await until(gpu_stopped, within=10, what="the idle GPU server to be culled")
    await until(counted, within=5, what="the cull to be counted")
    assert shared.active and busy.active
    code, body = await call("GET", hub.api + "users/ana", hub.tokens["ana"])
    assert sorted(body["servers"]) == ["notes"]
    # The culler's stop went through the REST API (the hub's own log of it is the DELETE).
    await call("DELETE", hub.api + "users/ana/servers/notes", hub.tokens["ana"])
    await call("DELETE", hub.api + "users/ben/server", hub.tokens["ben"])


@in_module_loop
async def test_notices_keep_and_the_banner(hub):
    await until(_ready, within=10, what="the culler to start")
    # 12 minutes before its idle timeout: warned (900 s ahead), not yet culled.
    spawner = running(hub.app, "ana", "gpu", "gpu-1", idle=3600 - 720, age=4000)
    code, body = await call("GET", hub.api + "cern/notices", hub.tokens["ana"])
    assert code == 200
    [notice] = body["notices"]
    assert (notice["server"], notice["profile"], notice["reason"]) == ("gpu", "gpu-1", "idle")
    assert 700 <= notice["seconds_left"] <= 720
    assert notice["message"].startswith("Your GPU server 'gpu' will be stopped in 12 min for inactivity")
    code, other = await call("GET", hub.api + "cern/notices", hub.tokens["ben"])
    assert (code, other["notices"]) == (200, [])
    code, refused = await call("GET", hub.api + "cern/notices")
    assert code == 403

    browser = await Browser.logged_in(hub.app.hub.url, "ana")
    html = await browser.get("home")
    assert 'id="cern-notices"' in html
    assert "Your GPU server &#39;gpu&#39; will be stopped in 12 min for inactivity" in html
    assert f'action="{hub.app.hub.base_url}cern/keep"' in html
    # The banner's Keep button: a form post with the session's XSRF token, back to the home page.
    assert await browser.post("cern/keep", {"server": "gpu"}) == (302, hub.app.hub.base_url + "home")
    assert 'id="cern-notices"' not in await browser.get("home")
    running(hub.app, "ana", "gpu", "gpu-1", idle=3600 - 720, age=4000)

    # Keep records activity server-side: the notice is gone and the culler sees a fresh time.
    code, kept = await call("POST", hub.api + "cern/notices/keep", hub.tokens["ana"], {"server": "gpu"})
    assert (code, kept["kept"], kept["notices"]) == (200, "gpu", [])
    assert datetime.now(UTC).replace(tzinfo=None) - spawner.orm_spawner.last_activity < timedelta(minutes=1)
    code, missing = await call("POST", hub.api + "cern/notices/keep", hub.tokens["ana"], {"server": "nope"})
    assert code == 404 and "no running server named 'nope'" in missing["message"]
    code, _ = await call("POST", hub.api + "cern/notices/keep", hub.tokens["ben"], {"server": "gpu"})
    assert code == 404  # ben's own servers only: ana's "gpu" is not his
    await call("DELETE", hub.api + "users/ana/servers/gpu", hub.tokens["ana"])


@in_module_loop
async def test_a_config_that_replaced_services_or_roles_gets_them_back(hub):
    """`c.JupyterHub.services = [...]` after configure_hub drops ours at the hub's start: the culler
    registers its service and role again before making its token."""
    db = hub.app.db
    service = orm.Service.find(db, SERVICE_NAME)
    service.roles = []
    db.commit()
    assert culling_hub.registered(hub.app) is service
    assert [role.name for role in service.roles] == [SERVICE_NAME]
    assert sorted(orm.Role.find(db, SERVICE_NAME).scopes) == sorted(SCOPES)


@in_module_loop
async def test_the_banner_escapes_what_it_shows(hub, monkeypatch):
    from cern_spawner.culling import handlers

    hostile = '<script>alert("x")</script>'
    notice = {"server": hostile, "reason": "idle", "seconds_left": 60, "message": hostile, "url": hostile}
    monkeypatch.setattr(handlers, "notices_for", lambda user, now=None: [notice] if user else [])
    browser = await Browser.logged_in(hub.app.hub.url, "ben")
    html = await browser.get("home")
    assert 'id="cern-notices"' in html
    assert hostile not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html

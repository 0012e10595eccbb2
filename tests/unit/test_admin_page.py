"""/hub/cern/admin over real HTTP on an in-process JupyterHub (no proxy, no cluster): rendered with
JupyterHub's page template for admins only, every value escaped."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytest_asyncio
from jupyterhub.tests.utils import AsyncSession
from traitlets.config import Config

from cern_spawner import CERNSpawner
from cern_spawner.chart_settings import _metrics_scraper
from cern_spawner.web import HUB_TEMPLATE_DIR
from cern_spawner.web.admin import admin_handlers
from tests.unit.inprocess_hub import add_user, running_hub

pytestmark = pytest.mark.unit
in_module_loop = pytest.mark.asyncio(loop_scope="module")

PROFILES_DIR = Path(__file__).resolve().parents[2] / "profiles"
HOSTILE = "<script>alert('x')</script>"
SCRAPER_TOKEN = "a-scrapers-token-0123456789abcdef"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def hub(tmp_path_factory):
    profiles = tmp_path_factory.mktemp("admin-profiles")
    for file in PROFILES_DIR.glob("*.yaml"):
        shutil.copy(file, profiles)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("kubespawner.spawner.load_config", lambda **kwargs: None)
        c = Config()
        c.JupyterHub.spawner_class = CERNSpawner
        c.JupyterHub.extra_handlers = admin_handlers
        c.JupyterHub.template_paths = [HUB_TEMPLATE_DIR]
        c.CERNSpawner.profiles_path = [str(profiles)]
        c.CERNSpawner.profiles_reload_interval = 0.0
        _metrics_scraper(c, SCRAPER_TOKEN)  # what the chart's metrics.serviceMonitor adds
        async with running_hub(c) as app:
            sessions = {}
            for name, admin in (("alice", False), ("carol", True)):
                add_user(app, name, admin=admin)
                sessions[name] = await log_in(app.hub.url, name)
            yield SimpleNamespace(
                url=app.hub.url + "cern/admin",
                metrics=app.hub.url + "metrics",
                sessions=sessions,
                profiles=profiles,
            )


async def log_in(hub_url: str, name: str) -> AsyncSession:
    """A browser session through the hub's login form (MockHub's authenticator: password = name);
    pages, unlike the API, take no token."""
    session = AsyncSession()
    form = await session.get(hub_url + "login")
    response = await session.post(
        hub_url + "login",
        data={"username": name, "password": name, "_xsrf": form.cookies["_xsrf"]},
        allow_redirects=False,
    )
    assert response.status_code == 302, response.text
    return session


async def get(hub, name=None):
    session = hub.sessions[name] if name else AsyncSession()
    response = await session.get(hub.url, allow_redirects=False)
    return response.status_code, response.text


@in_module_loop
async def test_an_admin_sees_the_catalog_and_node_groups_in_the_hubs_page(hub):
    code, page = await get(hub, "carol")
    assert code == 200
    assert "<h1>Service status</h1>" in page
    assert 'id="jupyterhub-logo"' in page and 'id="logout"' in page  # inside JupyterHub's page.html
    assert "No refused edit" in page
    assert 'id="group-gpu-v100"' in page and 'id="group-default-worker"' in page
    assert "GPU growth is off in this hub" in page  # no cloud in this hub
    assert "No GPU server is running or starting." in page


ACCESS = {
    "admin": ("carol", 200),
    "user": ("alice", 403),
}


@in_module_loop
@pytest.mark.parametrize("name, status", ACCESS.values(), ids=ACCESS.keys())
async def test_only_the_admin_scopes_open_the_page(hub, name, status):
    code, page = await get(hub, name)
    assert code == status
    if status == 403:
        assert "Only hub admins may see the service" in page
        assert "Service status" not in page


@in_module_loop
async def test_anonymous_is_sent_to_log_in(hub):
    code, _ = await get(hub)
    assert code == 302


@in_module_loop
async def test_a_refused_edit_is_shown_with_its_problems_escaped(hub):
    assert (await get(hub, "carol"))[0] == 200  # the hub's catalog is open (a broken one at start is fatal)
    broken = hub.profiles / "zz-broken.yaml"
    broken.write_text(f'profiles:\n  - slug: x\n    "{HOSTILE}": 1\n')
    try:
        code, page = await get(hub, "carol")
        form = await hub.sessions["carol"].get(hub.url.replace("cern/admin", "spawn"))
    finally:
        broken.unlink()
    # The admins' banner on the spawn form links to the page.
    assert "Profile catalog edit refused" in form.text
    assert '/hub/cern/admin">service status</a>' in form.text
    assert code == 200
    assert "The latest edit was refused" in page
    assert "zz-broken.yaml:3" in page
    assert HOSTILE not in page
    assert "&lt;script&gt;" in page
    # Reverted: the next look shows no refusal.
    _, page = await get(hub, "carol")
    assert "No refused edit" in page


@in_module_loop
async def test_metrics_answer_the_scrapers_read_metrics_token_only(hub):
    scraped = await AsyncSession().get(hub.metrics, headers={"Authorization": f"token {SCRAPER_TOKEN}"})
    assert scraped.status_code == 200
    assert "cern_spawner_catalog_applied_timestamp_seconds" in scraped.text
    assert (await hub.sessions["alice"].get(hub.metrics)).status_code == 403
    assert (await AsyncSession().get(hub.metrics)).status_code == 403

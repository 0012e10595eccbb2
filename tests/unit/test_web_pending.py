"""The spawn-progress page, rendered as JupyterHub renders templates (our path first, then its own)."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
from jinja2 import ChoiceLoader, Environment, FileSystemLoader
from jupyterhub._data import DATA_FILES_PATH

from cern_spawner.web import HUB_TEMPLATE_DIR

pytestmark = pytest.mark.unit

PROGRESS_URL = "/hub/api/users/alice/server/progress?_xsrf=abc"


def render(server_name: str = "") -> str:
    # As JupyterHub.template_paths does: ours searched first, JupyterHub's templates behind them.
    env = Environment(
        loader=ChoiceLoader(
            [FileSystemLoader(HUB_TEMPLATE_DIR), FileSystemLoader(os.path.join(DATA_FILES_PATH, "templates"))]
        ),
        autoescape=True,
    )
    spawner = SimpleNamespace(name=server_name, options_form="<form>")
    user = SimpleNamespace(name="alice", escaped_name="alice", json_escaped_name="alice", spawner=spawner)
    return env.get_template("spawn_pending.html").render(
        base_url="/hub/",
        static_url=lambda path, **kwargs: f"/hub/static/{path}",
        user=user,
        spawner=spawner,
        progress_url=PROGRESS_URL,
        xsrf_token="abc",
    )


def test_extends_jupyterhubs_page_and_follows_the_progress_stream():
    page = render()
    assert 'id="jupyterhub-logo"' in page  # JupyterHub's page.html around it
    assert 'data-progress-url="/hub/api/users/alice/server/progress?_xsrf=abc"' in page
    assert "new EventSource(root.dataset.progressUrl)" in page


def test_lists_events_with_elapsed_time_and_fails_with_a_way_back():
    page = render()
    assert '<ol id="cern-log" class="cern-log" aria-labelledby="cern-log-title">' in page
    assert 'id="cern-elapsed" role="timer"' in page
    assert '<div id="cern-failed" class="cern-failed" role="alert" hidden>' in page
    assert '<a class="cern-button" href="/hub/spawn/alice">Back to the profile choice</a>' in page
    assert 'data-stop-url="/hub/api/users/alice/server"' in page


def test_named_servers_link_back_to_their_own_form():
    page = render("gpu box")
    assert 'href="/hub/spawn/alice/gpu%20box"' in page
    assert 'data-stop-url="/hub/api/users/alice/servers/gpu%20box"' in page
    assert "Starting your server “gpu box”" in page

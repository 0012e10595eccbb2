"""Launch links: the pure decision (plan_launch), then the handler on an in-process JupyterHub."""

from __future__ import annotations

from html.parser import HTMLParser
from types import SimpleNamespace
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import pytest_asyncio
from jupyterhub.spawner import Spawner
from jupyterhub.tests.utils import AsyncSession
from tornado import web
from tornado.httputil import url_concat
from traitlets.config import Config

from cern_spawner.binder import handlers
from cern_spawner.binder.handlers import (
    Confirm,
    HubUrls,
    Redirect,
    Refusal,
    ServerState,
    binder_handlers,
    plan_launch,
)
from cern_spawner.binder.options import NOT_ENABLED
from cern_spawner.binder.spawning import BinderSpawnerMixin
from cern_spawner.web import HUB_TEMPLATE_DIR
from tests.unit.inprocess_hub import running_hub

pytestmark = pytest.mark.unit
in_module_loop = pytest.mark.asyncio(loop_scope="module")

CONFIG = SimpleNamespace(
    enabled=True,
    allowed_hosts=["github.com", "gitlab.cern.ch"],
    insecure_origins=["http://127.0.0.1:9418"],
    github_host="github.com",
    gitlab_host="gitlab.cern.ch",
    default_profile="",
    token_launches=[],
)
URLS = HubUrls(
    spawn="/hub/spawn/alice", pending="/hub/spawn-pending/alice", server="/user/alice/", home="/hub/home"
)
REPO = "https://github.com/org/repo"
STOPPED = ServerState("stopped")


def confirm(spec, query, config=CONFIG):
    answer = plan_launch(spec, query, config, STOPPED, URLS)
    assert isinstance(answer, Confirm), answer
    return answer


def next_of(answer: Confirm) -> str:
    """The `next` of the form's action, which must be JupyterHub's spawn page and nothing else."""
    parts = urlsplit(answer.action)
    assert parts.path == URLS.spawn
    query = parse_qs(parts.query, strict_parsing=True)
    assert list(query) == ["next"] and len(query["next"]) == 1, query
    return query["next"][0]


@pytest.mark.parametrize(
    ("spec", "query", "expected"),
    [
        pytest.param("gh/org/repo/main", {}, (REPO, "main", "", "", "/user/alice/"), id="gh-no-path"),
        pytest.param(
            "gh/org/repo/feature/x",
            {"labpath": "/notebooks/intro.ipynb"},
            (
                REPO,
                "feature/x",
                "",
                "lab/tree/notebooks/intro.ipynb",
                "/user/alice/lab/tree/notebooks/intro.ipynb",
            ),
            id="ref-with-slash-and-labpath",
        ),
        pytest.param(
            "gl/swan%2Fdemo/v1.0",
            {"urlpath": "git-pull?repo=https://github.com/a/b&branch=main"},
            (
                "https://gitlab.cern.ch/swan/demo",
                "v1.0",
                "",
                "git-pull?repo=https://github.com/a/b&branch=main",
                "/user/alice/git-pull?repo=https://github.com/a/b&branch=main",
            ),
            id="gl-urlpath-with-query",
        ),
        pytest.param(
            "git/http%3A%2F%2F127.0.0.1%3A9418%2Frepo.git/HEAD",
            {"profile": "gpu-1"},
            ("http://127.0.0.1:9418/repo.git", "HEAD", "gpu-1", "", "/user/alice/"),
            id="git-sandbox-with-profile",
        ),
        pytest.param(
            "gh/org/repo/main",
            {"labpath": "résumé_#1.ipynb"},
            (
                REPO,
                "main",
                "",
                "lab/tree/résumé_#1.ipynb",
                "/user/alice/lab/tree/r%C3%A9sum%C3%A9_%231.ipynb",
            ),
            id="next-percent-encoded",
        ),
        pytest.param(
            "gh/org/repo/main",
            {"profile": "  "},
            (REPO, "main", "", "", "/user/alice/"),
            id="blank-profile-is-none",
        ),
    ],
)
def test_a_stopped_server_gets_the_confirmation_page_never_a_spawn(spec, query, expected):
    answer = confirm(spec, query)
    assert (answer.repo_url, answer.ref, answer.profile, answer.path, next_of(answer)) == expected
    # The repository travels in the form's fields, never in a URL that would start it.
    assert "binder" not in answer.action


@pytest.mark.parametrize(
    ("patterns", "spec", "allowlisted"),
    [
        pytest.param([], "gh/cern/repo/main", False, id="default-none"),
        pytest.param(["github.com/cern/*"], "gh/cern/repo/main", True, id="organisation"),
        pytest.param(["github.com/cern/*"], "gh/CERN/repo/main", True, id="organisation-any-case"),
        pytest.param(["github.com/cern/*"], "gh/cernx/repo/main", False, id="not-a-prefix-of-a-name"),
        pytest.param(["github.com/cern/repo"], "gh/cern/repo2/main", False, id="one-repository"),
        pytest.param(["gitlab.cern.ch/*"], "gl/swan%2Fdemo/main", True, id="whole-host"),
        pytest.param(["gitlab.cern.ch/*"], "gh/cern/repo/main", False, id="other-host"),
    ],
)
def test_an_allowlisted_repository_is_said_on_the_confirmation_page(patterns, spec, allowlisted):
    config = SimpleNamespace(**{**vars(CONFIG), "token_launches": patterns})
    assert confirm(spec, {}, config).tokens_allowlisted is allowlisted


@pytest.mark.parametrize(
    ("default", "query", "profile"),
    [
        pytest.param("", {}, "", id="no-default-lets-the-spawner-pick"),
        pytest.param("shared-2g", {}, "shared-2g", id="configured-default"),
        pytest.param("shared-2g", {"profile": "gpu-1"}, "gpu-1", id="link-wins-over-default"),
    ],
)
def test_the_profile_comes_from_the_link_else_the_default(default, query, profile):
    config = SimpleNamespace(**{**vars(CONFIG), "default_profile": default})
    assert confirm("gh/org/repo/main", query, config).profile == profile


@pytest.mark.parametrize(
    ("spec", "query", "status", "words"),
    [
        pytest.param("gh/org/repo/main", {}, 404, NOT_ENABLED, id="binder-off"),
        pytest.param("svn/org/repo/main", {}, 400, "Unknown repository provider", id="unknown-provider"),
        pytest.param("gh/org/repo", {}, 400, "names no ref", id="no-ref"),
        pytest.param(
            "git/https%3A%2F%2Fevil.example%2Fa%2Fb/main", {}, 403, "not allowed", id="host-off-list"
        ),
        pytest.param("git/file%3A%2F%2F%2Fetc/main", {}, 400, "never allowed", id="file-url"),
        pytest.param(
            "git/https%3A%2F%2Fu%3Ap%40github.com%2Fa%2Fb/main", {}, 400, "credentials", id="credentials"
        ),
        pytest.param("gh/org/repo/--upload-pack=x", {}, 400, "starts with '-'", id="ref-option"),
        pytest.param("gh/org/repo/main", {"urlpath": "../../hub/admin"}, 400, "climbs out", id="urlpath-up"),
        pytest.param(
            "gh/org/repo/main", {"urlpath": "//evil.example/x"}, 400, "not a URL", id="urlpath-host"
        ),
        pytest.param(
            "gh/org/repo/main", {"labpath": "a.ipynb?x=1"}, 400, "only a file path", id="labpath-query"
        ),
    ],
)
def test_refused_links(spec, query, status, words):
    config = SimpleNamespace(**{**vars(CONFIG), "enabled": status != 404})
    answer = plan_launch(spec, query, config, STOPPED, URLS)
    assert isinstance(answer, Refusal)
    assert answer.status == status
    assert words in answer.message
    assert answer.title.isascii()


def test_binder_off_refuses_before_reading_the_link():
    config = SimpleNamespace(**{**vars(CONFIG), "enabled": False})
    answer = plan_launch("svn/anything", {}, config, STOPPED, URLS)
    assert (answer.status, answer.message) == (404, NOT_ENABLED)


SAME = {"profile": "shared-1g", "binder_repo": REPO, "binder_ref": "main"}


@pytest.mark.parametrize(
    ("server", "query", "url"),
    [
        pytest.param(ServerState("running", SAME), {}, "/user/alice/", id="running-same"),
        pytest.param(
            ServerState("running", SAME),
            {"labpath": "a.ipynb"},
            "/user/alice/lab/tree/a.ipynb",
            id="running-labpath",
        ),
        pytest.param(
            ServerState("starting", SAME),
            {"urlpath": "tree"},
            "/hub/spawn-pending/alice?next=%2Fuser%2Falice%2Ftree",
            id="starting-same-goes-to-pending-page",
        ),
        pytest.param(
            ServerState("running", {**SAME, "binder_repo": "HTTPS://GitHub.com/org/repo.git/"}),
            {},
            "/user/alice/",
            id="same-repo-written-differently",
        ),
        pytest.param(
            ServerState("running", {"binder_repo": REPO}),
            {},
            None,
            id="saved-ref-defaults-to-head-not-main",
        ),
        pytest.param(
            ServerState("running", SAME), {"profile": "shared-1g"}, "/user/alice/", id="same-explicit-profile"
        ),
    ],
)
def test_an_active_server_of_the_same_launch_is_reused(server, query, url):
    answer = plan_launch("gh/org/repo/main", query, CONFIG, server, URLS)
    if url is None:
        assert isinstance(answer, Refusal) and answer.status == 409
    else:
        assert answer == Redirect(url)


@pytest.mark.parametrize(
    ("server", "query", "words"),
    [
        pytest.param(
            ServerState("running", {}), {}, "already running (the default profile)", id="plain-server"
        ),
        pytest.param(
            ServerState("running", {"profile": "gpu-1"}),
            {},
            "already running (profile gpu-1)",
            id="other-profile",
        ),
        pytest.param(
            ServerState("starting", {**SAME, "binder_ref": "dev"}),
            {},
            f"already starting ({REPO} at dev, profile shared-1g)",
            id="other-ref",
        ),
        pytest.param(
            ServerState("running", {**SAME, "binder_repo": "https://github.com/org/fork"}),
            {},
            "github.com/org/fork at main",
            id="other-repo",
        ),
        pytest.param(
            ServerState("running", SAME),
            {"profile": "gpu-1"},
            "already running",
            id="link-asks-other-profile",
        ),
        pytest.param(
            ServerState("running", {"binder_repo": 5}), {}, "already running", id="malformed-saved-options"
        ),
        pytest.param(ServerState("stopping", SAME), {}, "stopping", id="stopping"),
    ],
)
def test_an_active_server_of_another_launch_is_left_alone(server, query, words):
    answer = plan_launch("gh/org/repo/main", query, CONFIG, server, URLS)
    assert isinstance(answer, Refusal)
    assert answer.status == 409
    assert words in answer.message
    assert answer.link == ("/hub/home", "Go to the home page")
    if server.state != "stopping":
        assert answer.message.endswith("stop it from the home page, then open the link again.")


@pytest.mark.parametrize(
    ("spawner", "state"),
    [
        pytest.param(None, "stopped", id="no-spawner-loaded"),
        pytest.param(SimpleNamespace(active=False, pending=None, ready=False), "stopped", id="inactive"),
        pytest.param(
            SimpleNamespace(active=True, pending="spawn", ready=False), "starting", id="spawn-pending"
        ),
        pytest.param(
            SimpleNamespace(active=True, pending="check", ready=False), "starting", id="check-pending"
        ),
        pytest.param(
            SimpleNamespace(active=True, pending="stop", ready=False), "stopping", id="stop-pending"
        ),
        pytest.param(SimpleNamespace(active=True, pending=None, ready=True), "running", id="ready"),
    ],
)
def test_server_state(spawner, state):
    spawners = (
        {} if spawner is None else {"": SimpleNamespace(user_options={"profile": "x"}, **vars(spawner))}
    )
    assert handlers.server_state(SimpleNamespace(spawners=spawners)).state == state


# --- the handler on a real hub --------------------------------------------------------------------


class RecordingSpawner(BinderSpawnerMixin, Spawner):
    """CERNSpawner's handling of spawn queries (the mixin's options_from_query); records the form
    data JupyterHub's spawn page hands over (queries reach options_from_form too), starts nothing."""

    forms: list = []
    options_form = "<p>The profile form</p>"  # as CERNSpawner always has one
    describe_launch_profile = None  # no catalog: the confirmation page shows the slug as given

    def options_from_form(self, form_data):
        RecordingSpawner.forms.append(form_data)
        return {key: values[0] for key, values in form_data.items()}

    async def start(self):
        raise web.HTTPError(503, "The test spawner starts no servers.")

    async def stop(self, now=False):
        pass

    async def poll(self):
        return 0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def hub():
    c = Config()
    c.JupyterHub.spawner_class = RecordingSpawner
    c.JupyterHub.extra_handlers = binder_handlers()
    c.JupyterHub.template_paths = [HUB_TEMPLATE_DIR]  # as both hub configurations set it
    c.BinderConfig.registry = "registry.example.org"
    c.BinderConfig.allowed_hosts = ["github.com", "gitlab.cern.ch"]
    async with running_hub(c) as app:
        yield app


async def login(app, name) -> AsyncSession:
    session = AsyncSession()
    login_url = app.hub.url + "login"
    xsrf = (await session.get(login_url)).cookies["_xsrf"]
    response = await session.post(
        url_concat(login_url, {"_xsrf": xsrf}),
        data={"username": name, "password": name},
        allow_redirects=False,
    )
    assert response.status_code == 302
    return session


def link(app, spec, **query):
    return url_concat(app.hub.url + "binder/v2/" + spec, query)


@in_module_loop
async def test_anonymous_goes_to_login_and_comes_back(hub):
    response = await AsyncSession().get(
        link(hub, "gh/org/repo/main", labpath="a.ipynb"), allow_redirects=False
    )
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    # MockHub serves below "/@/space%20word/": base URLs that need escaping are covered too.
    assert location.path == hub.hub.base_url + "login"
    assert parse_qs(location.query)["next"] == [
        hub.hub.base_url + "binder/v2/gh/org/repo/main?labpath=a.ipynb"
    ]


class ConfirmationPage(HTMLParser):
    """The confirmation page's form: its action, fields (name -> attributes) and texts by id."""

    def __init__(self, html: str):
        super().__init__()
        self.form: dict = {}
        self.fields: dict[str, dict] = {}
        self.by_id: dict[str, str] = {}
        self._open: list[tuple[str, str | None]] = []  # (tag, id) of the elements around the text
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and attrs.get("id") == "cern-confirm-form":
            self.form = attrs
        if tag == "input":
            if attrs.get("name"):
                self.fields[attrs["name"]] = attrs
            return  # a void element
        if tag in ("br", "img", "meta", "link", "hr"):
            return
        self._open.append((tag, attrs.get("id")))
        if attrs.get("id"):
            self.by_id[attrs["id"]] = ""

    def handle_endtag(self, tag):
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data):
        for _, element in self._open:
            if element:
                self.by_id[element] += data


def origin(app) -> str:
    return urlsplit(app.hub.url).scheme + "://" + urlsplit(app.hub.url).netloc


@in_module_loop
async def test_a_link_shows_the_confirmation_page_and_starts_nothing(hub):
    session = await login(hub, "alice")
    RecordingSpawner.forms.clear()
    spec = "git/" + quote("https://gitlab.cern.ch/swan/demo.git", safe="") + "/feature%2Fx"
    response = await session.get(
        link(hub, spec, labpath="ab.ipynb", profile="shared-1g"), allow_redirects=False
    )
    assert response.status_code == 200, response.text[:300]
    page = ConfirmationPage(response.text)
    # What will run, in words, and the warning.
    assert page.by_id["cern-confirm-repo"] == "https://gitlab.cern.ch/swan/demo.git"
    assert page.by_id["cern-confirm-ref"] == "feature/x"
    assert "shared-1g" in page.by_id["cern-confirm-profile"]
    assert "The repository's code will run as you." in page.by_id["cern-confirm-warning"]
    assert "your files" in page.by_id["cern-confirm-warning"]
    # A POST to JupyterHub's own spawn page, with its XSRF token, the launch in the body.
    assert page.form["method"] == "post"
    action = urlsplit(page.form["action"])
    assert action.path == hub.hub.base_url + "spawn/alice"
    assert parse_qs(action.query) == {"next": [hub.base_url + "user/alice/lab/tree/ab.ipynb"]}
    assert page.fields["_xsrf"]["value"] == session.cookies["_xsrf"]
    assert {name: field.get("value") for name, field in page.fields.items() if name != "_xsrf"} == {
        "profile": "shared-1g",
        "binder_repo": "https://gitlab.cern.ch/swan/demo.git",
        "binder_ref": "feature/x",
        "binder_tokens": "on",
    }
    tokens = page.fields["binder_tokens"]
    assert tokens["type"] == "checkbox" and "checked" not in tokens  # off unless ticked
    assert "<script" not in response.text.split('id="cern-confirm"')[1].split("</form>")[0]
    # Not to be framed by another site (a click on Launch is the consent): JupyterHub's default CSP.
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"
    # Nothing was started by the link itself.
    assert RecordingSpawner.forms == []
    spawner = hub.users["alice"].spawners.get("")
    assert spawner is None or not spawner.active


@in_module_loop
async def test_an_allowlisted_repository_says_so_instead_of_the_checkbox(hub):
    session = await login(hub, "alice")
    hub.config.BinderConfig.token_launches = ["github.com/cern/*"]
    try:
        response = await session.get(link(hub, "gh/cern/repo/main"), allow_redirects=False)
    finally:
        hub.config.BinderConfig.token_launches = []
    page = ConfirmationPage(response.text)
    assert "binder_tokens" not in page.fields
    assert "administrators trust this repository" in page.by_id["cern-confirm-tokens"]


@in_module_loop
async def test_the_confirmed_post_reaches_the_spawner_with_the_launch(hub):
    session = await login(hub, "carol")
    RecordingSpawner.forms.clear()
    response = await session.get(link(hub, "gh/org/repo/main", profile="shared-1g"), allow_redirects=False)
    page = ConfirmationPage(response.text)
    fields = {name: field["value"] for name, field in page.fields.items()}  # the box ticked
    without_xsrf = {name: value for name, value in fields.items() if name != "_xsrf"}

    # Without JupyterHub's XSRF token (another site's form): refused, nothing reaches the spawner.
    forged = await session.post(origin(hub) + page.form["action"], data=without_xsrf, allow_redirects=False)
    assert forged.status_code == 403
    assert RecordingSpawner.forms == []

    posted = await session.post(origin(hub) + page.form["action"], data=fields, allow_redirects=False)
    assert RecordingSpawner.forms == [
        {
            "_xsrf": [fields["_xsrf"]],
            "profile": ["shared-1g"],
            "binder_repo": ["https://github.com/org/repo"],
            "binder_ref": ["main"],
            "binder_tokens": ["on"],
        }
    ]
    assert posted.status_code == 503  # the test spawner's refusal, shown by JupyterHub


@pytest.mark.parametrize(
    ("query", "linked"),
    [
        pytest.param(
            {"opt-binder_repo": "https://github.com/org/repo", "opt-binder_ref": "main", "opt-profile": "p1"},
            "binder/v2/git/https%3A%2F%2Fgithub.com%2Forg%2Frepo/main?profile=p1",
            id="launch",
        ),
        pytest.param(
            {"binder_repo": "https://github.com/org/repo"},
            "binder/v2/git/https%3A%2F%2Fgithub.com%2Forg%2Frepo/HEAD",
            id="without-opt-prefix",
        ),
        pytest.param({"opt-binder_repo": "https://evil.example/x"}, None, id="refused-host-no-link"),
    ],
)
@in_module_loop
async def test_a_spawn_query_is_refused_with_a_link_to_the_confirmation_page(hub, query, linked):
    session = await login(hub, "dave")
    RecordingSpawner.forms.clear()
    response = await session.get(url_concat(hub.hub.url + "spawn/dave", query), allow_redirects=False)
    assert response.status_code == 403
    assert RecordingSpawner.forms == []  # nothing reached the spawn
    spawner = hub.users["dave"].spawners.get("")
    assert spawner is None or not spawner.active
    # JupyterHub's form, with the reason above it (our spawn.html shows HTML messages).
    assert "<p>The profile form</p>" in response.text
    error = response.text.split('class="spawn-error-msg alert alert-danger">')[1].split("</p>")[0]
    assert "A repository launch must be confirmed" in error
    if linked:
        assert f'<a href="{hub.hub.base_url}{linked}">' in error.replace("&amp;", "&")
    else:
        assert "<a " not in error and "evil" not in error


@pytest.mark.parametrize(
    ("spec", "status", "words"),
    [
        pytest.param(
            "git/" + quote("https://evil.example/a/b", safe="") + "/main",
            403,
            "Repositories on evil.example are not allowed on this hub.",
            id="host-off-list",
        ),
        pytest.param("gh/org/repo/a..b", 400, "is not a valid git ref", id="bad-ref"),
        pytest.param(
            "git/" + quote("https://github.com/a/<b>x</b>", safe="") + "/main",
            400,
            "/a/&lt;b&gt;x&lt;/b&gt;",  # the link's text, escaped by JupyterHub's template
            id="markup-escaped",
        ),
    ],
)
@in_module_loop
async def test_refusals_show_their_reason_on_jupyterhubs_error_page(hub, spec, status, words):
    session = await login(hub, "alice")
    response = await session.get(link(hub, spec), allow_redirects=False)
    assert response.status_code == status
    assert response.reason == "Cannot launch this link"
    assert words in response.text
    assert "<b>" not in response.text


@in_module_loop
async def test_binder_off_is_a_404_with_the_reason(hub):
    session = await login(hub, "alice")
    hub.config.BinderConfig.registry = ""
    try:
        response = await session.get(link(hub, "gh/org/repo/main"), allow_redirects=False)
    finally:
        hub.config.BinderConfig.registry = "registry.example.org"
    assert response.status_code == 404
    assert f"404 : {NOT_ENABLED}" in response.text  # JupyterHub's 404 page shows only its heading


@in_module_loop
async def test_a_busy_server_answers_409_with_a_way_home(hub, monkeypatch):
    monkeypatch.setattr(handlers, "server_state", lambda user: ServerState("running", {"profile": "gpu-1"}))
    session = await login(hub, "alice")
    response = await session.get(link(hub, "gh/org/repo/main"), allow_redirects=False)
    assert response.status_code == 409
    assert "Your server is already running (profile gpu-1)" in response.text
    assert f'<a href="{hub.hub.base_url}home">Go to the home page</a>' in response.text


@in_module_loop
async def test_the_same_launch_running_goes_to_the_server(hub, monkeypatch):
    state = ServerState("running", {"binder_repo": REPO, "binder_ref": "main"})
    monkeypatch.setattr(handlers, "server_state", lambda user: state)
    session = await login(hub, "alice")
    response = await session.get(link(hub, "gh/org/repo/main", urlpath="tree"), allow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"] == hub.base_url + "user/alice/tree"

"""Launch links: `/hub/binder/v2/<spec>` checks a mybinder-style link and asks the user to confirm.

The handler creates nothing. It checks the link (host allowlist, ref, urlpath/labpath) and shows a
confirmation page naming the repository, ref and profile: a link is a GET anyone can make a browser
send, and the launch runs the repository's code as the user. The page's form POSTs (with
JupyterHub's XSRF token) to JupyterHub's own `/hub/spawn/<user>?next=…`, whose spawn runs every
server-side check again (profile and role, `check_binder_options`) and builds the image. What to
answer is decided by `plan_launch`, a pure function; the handler only gathers its inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from html import escape
from urllib.parse import quote, urlencode

from jupyterhub.handlers import BaseHandler
from jupyterhub.utils import url_path_join
from tornado import web

from .config import BinderConfig
from .errors import BinderRefused
from .images import normalize_repo_url
from .options import DEFAULT_REF, NOT_ENABLED, TOKENS_KEY, token_launch_allowed
from .refs import launch_path, parse_spec
from .spawning import SpawnRefused

ROUTE = "/binder/v2/"
TEMPLATE = "binder_confirm.html"  # in cern_spawner.web.HUB_TEMPLATE_DIR (JupyterHub.template_paths)
# Characters kept as they are in the launch path put into `next`: the path's own structure and
# %-escapes (urlpath may carry a query); anything else (spaces are refused earlier, non-ASCII,
# '#', quotes) is percent-encoded so the Location header stays plain ASCII.
_PATH_SAFE = "/?&=%:@!$'()*+,;~"


@dataclass(frozen=True)
class ServerState:
    """The user's default server as a launch link sees it."""

    state: str  # "stopped", "starting", "running" or "stopping"
    user_options: Mapping = field(default_factory=dict)


@dataclass(frozen=True)
class HubUrls:
    """Where the hub serves this user's pages (escaped, as JupyterHub builds them)."""

    spawn: str  # /hub/spawn/<user>
    pending: str  # /hub/spawn-pending/<user>
    server: str  # /user/<user>/ (ends with '/')
    home: str  # /hub/home


@dataclass(frozen=True)
class Redirect:
    url: str


@dataclass(frozen=True)
class Confirm:
    """A stopped server: the confirmation page, whose form POSTs the launch to `action`."""

    repo_url: str
    ref: str
    profile: str  # the link's or the configured default; "" = the user's default profile
    path: str  # what opens in the server, relative to its URL ("" = its default)
    action: str  # JupyterHub's /hub/spawn/<user>?next=<server URL + path>
    tokens_allowlisted: bool  # BinderConfig.token_launches covers the repository


@dataclass(frozen=True)
class Refusal:
    """An answer with a readable message; `title` is short ASCII (it is the HTTP reason phrase)."""

    status: int
    message: str
    title: str = "Cannot launch this link"
    link: tuple[str, str] | None = None  # (url, text) of a way on


def plan_launch(
    spec: str, query: Mapping[str, str | None], config, server: ServerState, urls: HubUrls
) -> Confirm | Redirect | Refusal:
    """What to answer a launch link. `spec` is the raw (still %-encoded) path after /binder/v2/;
    `query` the decoded `urlpath`, `labpath`, `profile` arguments; `config` a BinderConfig."""
    if not config.enabled:
        # JupyterHub's 404 page shows only the heading (status and reason phrase), not the message.
        return Refusal(404, NOT_ENABLED, NOT_ENABLED)
    try:
        repo = parse_spec(
            spec, config.allowed_hosts, config.insecure_origins, config.github_host, config.gitlab_host
        )
        path = launch_path(query.get("urlpath"), query.get("labpath"))
    except BinderRefused as e:
        return Refusal(e.status, e.message)
    explicit_profile = (query.get("profile") or "").strip()
    profile = explicit_profile or config.default_profile
    target = urls.server + quote(path, safe=_PATH_SAFE)

    if server.state == "stopped":
        # Never a redirect that spawns: the user confirms with a POST (the spawner refuses
        # repository launches from a /hub/spawn query).
        return Confirm(
            repo.repo_url,
            repo.ref,
            profile,
            path,
            f"{urls.spawn}?{urlencode({'next': target})}",
            token_launch_allowed(repo.repo_url, config.token_launches),
        )
    home = (urls.home, "Go to the home page")
    if server.state == "stopping":
        return Refusal(
            409, "Your server is stopping: wait a moment, then open the link again.", "Server stopping", home
        )
    saved = server.user_options or {}
    if _same_launch(saved, repo.repo_url, repo.ref) and explicit_profile in ("", saved.get("profile")):
        if server.state == "running":
            return Redirect(target)
        return Redirect(f"{urls.pending}?{urlencode({'next': target})}")
    verb = "running" if server.state == "running" else "starting"
    return Refusal(
        409,
        f"Your server is already {verb} ({_describe(saved)}); stop it from the home page, "
        "then open the link again.",
        "Server already running",
        home,
    )


def _same_launch(saved: Mapping, repo_url: str, ref: str) -> bool:
    saved_repo, saved_ref = saved.get("binder_repo"), saved.get("binder_ref") or DEFAULT_REF
    if not isinstance(saved_repo, str) or not isinstance(saved_ref, str):
        return False
    return normalize_repo_url(saved_repo) == normalize_repo_url(repo_url) and saved_ref.strip() == ref


def _describe(saved: Mapping) -> str:
    """What the server runs, in a few words, for the 409 message."""
    profile = saved.get("profile")
    what = f"profile {profile}" if isinstance(profile, str) and profile else "the default profile"
    repo = saved.get("binder_repo")
    if isinstance(repo, str) and repo:
        ref = saved.get("binder_ref") or DEFAULT_REF
        return f"{repo} at {ref}, {what}"
    return what


def server_state(user) -> ServerState:
    """The default server's state, without creating a Spawner for a user who has none loaded."""
    spawner = user.spawners.get("")  # dict.get: _SpawnerDict creates one only on [] access
    if spawner is None or not spawner.active:
        return ServerState("stopped")
    options = spawner.user_options or {}
    if spawner.pending == "stop":
        return ServerState("stopping", options)
    return ServerState("running" if spawner.ready else "starting", options)


class BinderLaunchHandler(BaseHandler):
    """GET /hub/binder/v2/<provider>/<repository>/<ref>[?urlpath=…|labpath=…][&profile=…]."""

    @web.authenticated  # anonymous: JupyterHub's login, with this URL as `next`
    async def get(self, _decoded_spec: str):
        user = self.current_user
        # The routed argument is %-decoded, which would split gl/ and git/ repositories (one
        # encoded segment) at their slashes: the raw request path keeps them whole.
        raw = self.request.path
        prefix = url_path_join(self.hub.base_url, ROUTE)
        spec = raw[len(prefix) :] if raw.startswith(prefix) else raw.partition(ROUTE)[2]
        query = {name: self.get_query_argument(name, None) for name in ("urlpath", "labpath", "profile")}
        urls = HubUrls(
            spawn=url_path_join(self.hub.base_url, "spawn", user.escaped_name),
            pending=url_path_join(self.hub.base_url, "spawn-pending", user.escaped_name),
            server=user.server_url(""),
            home=url_path_join(self.hub.base_url, "home"),
        )
        config = BinderConfig(config=self.settings["config"])
        answer = plan_launch(spec, query, config, server_state(user), urls)
        if isinstance(answer, Confirm):
            try:
                await self._confirm(user, answer, urls)
                return
            except SpawnRefused as e:  # a profile the user may not start: said before the POST
                answer = Refusal(e.status_code, e.jupyterhub_message)
        if isinstance(answer, Redirect):
            self.log.info("Launch link %s for %s: redirecting to %s", spec, user.name, answer.url)
            self.redirect(answer.url)
            return
        self.log.warning(
            "Launch link %s for %s refused (%d): %s", spec, user.name, answer.status, answer.message
        )
        if answer.link:
            url, text = answer.link
            self.extra_error_html = f'<a href="{escape(url)}">{escape(text)}</a>'
        # JupyterHub's error page shows the exception's message (tornado's log_message), escaped,
        # under a heading of the reason phrase.
        raise web.HTTPError(answer.status, answer.message, reason=answer.title)

    async def _confirm(self, user, launch: Confirm, urls: HubUrls) -> None:
        # The default server's Spawner (JupyterHub makes one for any visit to the home page): it
        # knows the user's profiles. Nothing is started.
        spawner = user.spawner
        describe = getattr(spawner, "describe_launch_profile", None)
        if describe is None:  # not a CERNSpawner: the slug as given
            slug, name = launch.profile, launch.profile or "the default profile"
        else:
            slug, name = await describe(launch.profile)
        self.log.info(
            "Launch link of %r at %r for %s: asking for confirmation", launch.repo_url, launch.ref, user.name
        )
        page = await self.render_template(
            TEMPLATE,
            launch=launch,
            profile_slug=slug,
            profile_name=name,
            tokens_field=TOKENS_KEY,
            token_path=getattr(spawner, "token_mount_path", ""),
            home_url=urls.home,
        )
        self.set_header("Cache-Control", "no-store")  # it holds the XSRF token
        self.finish(page)


def binder_handlers() -> list[tuple[str, type]]:
    """For c.JupyterHub.extra_handlers (mounted below /hub/)."""
    return [(r"/binder/v2/(.+)", BinderLaunchHandler)]

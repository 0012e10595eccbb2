"""Binder launches on CERNSpawner: the options they take, the image from the build, their progress.

A mixin, kept out of spawner.py so that the spawner stays one concern per module. The flow:
`options_from_form` (form post or `/hub/spawn?…` query) keeps `binder_repo`/`binder_ref` apart
from KubeSpawner's fields; `check_binder` (run with the other server-side checks, on every path:
form, query, REST API) validates them and refuses a chosen `image`; `prepare_binder_image` (in
`start`, before any pod) resolves, finds or builds the image and sets `self.image` from that result
only; `binder_progress` streams what it reported into the spawn page.
"""

from __future__ import annotations

import asyncio
from functools import cached_property
from html import escape
from urllib.parse import quote, urlencode

from jupyterhub.utils import url_path_join

from ..errors import Refused
from ..options import OptionsRefused, check_user_options
from .config import BinderConfig
from .errors import BinderError, BinderRefused, BuildFailed, RegistryError, ResolveError
from .launch import Launch, prepare_image, registry_client
from .options import BINDER_KEYS, check_binder_options, split_form, wants_tokens
from .refs import check_repo_url


def _status_of(error: BinderError) -> int:
    """The REST answer for a launch that failed: the repository's fault (422), or a service's (502/503)."""
    if isinstance(error, (BuildFailed, ResolveError)):
        return 422  # a broken repository, an unknown ref: the user can fix it, the hub cannot
    if isinstance(error, RegistryError):
        return 502
    return 503  # BuildError: the cluster would not run the build


# A spawn that cannot go on: options refused, ref unknown, build failed, registry down (the name
# this module gave `errors.Refused` before there was one type).
SpawnRefused = Refused


class LaunchNotConfirmed(SpawnRefused):
    """A repository launch asked for in a `/hub/spawn?…` query: a GET any page can make the
    browser send. JupyterHub draws the spawn form with the HTML message (a link to the launch's
    confirmation page) and this status; nothing is started."""

    def __init__(self, message: str, html_message: str):
        super().__init__(403, message)
        # JupyterHub's spawn.html shows the plain message when set, else the HTML one.
        self.jupyterhub_message = None
        self.jupyterhub_html_message = html_message


# id(config) -> (config, its BinderConfig): the config is kept so that its id is not reused.
_configs: dict[int, tuple[object, BinderConfig]] = {}


def binder_config(config) -> BinderConfig:
    """The hub's `c.BinderConfig` settings, read once per config object: every spawner of a hub
    shares its config, and building the settings for each new spawner cost ~7 % of a start's CPU."""
    cached = _configs.get(id(config))
    if cached is None or cached[0] is not config:
        cached = _configs[id(config)] = (config, BinderConfig(config=config))
    return cached[1]


class BinderSpawnerMixin:
    """Mixed into CERNSpawner before KubeSpawner; configured as `c.BinderConfig.*`. A start's
    launch (request, build, messages) lives in the spawner's `spawn_state`."""

    def __init__(self, *args, **kwargs):
        # The repository fields of a refused form post, shown again when the form is redrawn.
        self._binder_typed: dict | None = None
        super().__init__(*args, **kwargs)

    @cached_property
    def binder_config(self) -> BinderConfig:
        return binder_config(self.config)  # once the spawner's config is loaded

    def binder_options_from_form(self, formdata: dict) -> dict:
        """KubeSpawner's options from the form, plus the repository fields (checked later)."""
        rest, binder = split_form(formdata)
        options = self._options_from_form(rest)
        options.update(binder)
        if binder:
            # Checked here too, so that the form is drawn again with the reason and what was typed
            # (a refusal later in the spawn would only say "Spawn failed").
            try:
                self._check_binder_or_refuse(options)
            except SpawnRefused:
                self._binder_typed = binder
                raise
        return options

    def options_from_query(self, query_data):
        """A `/hub/spawn/<user>?opt-…` GET: never a repository launch (those need a POST with
        JupyterHub's XSRF token, from the confirmation page or the picker)."""
        if any(key in query_data for key in BINDER_KEYS):
            self.log.warning(
                "Refused a repository launch from a spawn query for %s (not confirmed): %r",
                self._log_name,
                query_data,
            )
            raise self._not_confirmed(query_data)
        return super().options_from_query(query_data)

    def _not_confirmed(self, query_data) -> LaunchNotConfirmed:
        message = (
            "A repository launch must be confirmed: it runs the repository's code as you. "
            "Nothing was started."
        )
        rest, binder = split_form(query_data)
        try:
            checked = self._check_binder_quietly(binder)
        except BinderRefused:
            checked = None  # not launchable anyway: no link, and the query is not echoed
        if checked is None:
            return LaunchNotConfirmed(message, escape(message) + " Use the form below to start a server.")
        repo_url, ref = checked
        link = url_path_join(
            self.hub.base_url, "binder/v2/git", quote(repo_url, safe=""), quote(ref, safe="")
        )
        profile = (rest.get("profile") or [""])[0]
        if profile:
            link += "?" + urlencode({"profile": profile})
        return LaunchNotConfirmed(
            message,
            f'{escape(message)} <a href="{escape(link)}">Review the launch on its confirmation page</a>.',
        )

    def _check_binder_quietly(self, binder) -> tuple[str, str] | None:
        config = self.binder_config
        return check_binder_options(
            binder,
            enabled=config.enabled,
            allowed_hosts=config.allowed_hosts,
            insecure_origins=config.insecure_origins,
        )

    async def describe_launch_profile(self, slug: str) -> tuple[str, str]:
        """(slug, display name) of the profile a launch link starts: `slug`, else the user's default.

        For the confirmation page, so that it names what the POST will start; SpawnRefused (400/403,
        the catalog's own words) when the user may not start it. The spawn checks it again.
        """
        offered = await self._offered()
        try:
            check_user_options({"profile": slug} if slug else {}, self.catalog_store.current(), offered)
            entry = self._get_profile(slug, self._get_initialized_profile_list(offered))
        except OptionsRefused:
            raise  # a Refused: the catalog's own words
        except (ValueError, StopIteration):
            raise SpawnRefused(
                403, "No profile is available to you. Ask the service admins for access."
            ) from None
        return entry["slug"], entry.get("display_name") or entry["slug"]

    def binder_tokens_allowed(self, user_options=None) -> bool:
        """Whether this server gets the user's exchanged tokens: always for a plain launch; for a
        repository launch only when ticked or allow-listed (BinderConfig.token_launches)."""
        options = self.user_options if user_options is None else user_options
        return wants_tokens(options or {}, self.binder_config.token_launches)

    def check_binder(self, user_options) -> tuple[str, str] | None:
        """(repo_url, ref) of a repository launch, None for a plain one; 4xx on anything wrong."""
        return self._check_binder_or_refuse(user_options or {})

    def _check_binder_or_refuse(self, user_options) -> tuple[str, str] | None:
        config = self.binder_config
        try:
            return check_binder_options(
                user_options,
                enabled=config.enabled,
                allowed_hosts=config.allowed_hosts,
                insecure_origins=config.insecure_origins,
            )
        except BinderRefused as e:
            self.log.warning("Refused repository launch %r for %s: %s", user_options, self._log_name, e)
            raise

    def binder_form_context(self, saved: dict) -> dict:
        """The picker's `binder` variable: on or off, the allowed hosts, the saved repository."""
        config = self.binder_config
        typed, self._binder_typed = self._binder_typed, None
        if typed is not None:  # the form drawn again after a refusal: keep what the user typed
            repo, ref = typed.get("binder_repo"), typed.get("binder_ref")
        else:
            repo, ref = saved.get("binder_repo"), saved.get("binder_ref")
            try:
                check_repo_url(repo or "", config.allowed_hosts, config.insecure_origins)
            except BinderRefused:
                repo, ref = "", ""  # never offer again what the hub would now refuse
        return {
            "enabled": config.enabled,
            "allowed_hosts": [*config.allowed_hosts, *config.insecure_origins],
            "repo": repo or "",
            "ref": ref or "",
        }

    async def prepare_binder_image(self, repo_url: str, ref: str) -> Launch:
        """Find or build the repository's image and make it this server's image."""
        config = self.binder_config
        messages = self.spawn_state.binder_messages  # this start's
        try:
            launch = await prepare_image(
                config,
                repo_url=repo_url,
                ref=ref,
                user=self.user.name,
                namespace=config.build_namespace or self.namespace,
                core=self.api,
                registry=registry_client(config),
                report=messages.append,
            )
        except BinderRefused:
            raise  # a Refused, shown as it is
        except BinderError as e:
            self.log.warning("Repository launch of %s@%s for %s failed: %s", repo_url, ref, self._log_name, e)
            raise SpawnRefused(_status_of(e), str(e)) from None
        # From the build result only: user_options never carry an image for a repository launch.
        self.image = launch.image
        self.log.info(
            "%s: image %s for %s@%s (%s)",
            self._log_name,
            launch.image,
            repo_url,
            launch.commit,
            "built" if launch.built else "reused",
        )
        return launch

    async def binder_progress(self, preparing: asyncio.Future):
        """Yield the launch's messages as they come, until the image is ready (or failed)."""
        seen = 0
        while True:
            messages = self.spawn_state.binder_messages
            # Counted one by one: the build goes on while the consumer holds a message (a slow
            # client, a busy hub), and what it reports meanwhile must not be skipped.
            while seen < len(messages):
                seen += 1
                yield {"progress": 5, "message": messages[seen - 1]}
            if preparing.done():
                return
            await asyncio.wait({preparing}, timeout=0.5)

"""The users' side of culling: the notices (banner on the home page, JSON for a JupyterLab to poll)
and "Keep", which records activity in the hub's database, where the culler reads it.

- GET  /hub/api/cern/notices: the caller's servers to be stopped soon (scope read:servers!user=…);
- POST /hub/api/cern/notices/keep {"server": name}: keep it (scope users:activity!user=…, which a
  notebook server's own token has, so its JupyterLab can keep it);
- POST /hub/cern/keep (the banner's form, with the session's XSRF token): the same, back to /hub/home.

The notices come from the same `decide.notices` the culler's rounds use, on the hub's in-memory view
of the user's servers. Nothing is shown when no culler runs.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.handlers.base import BaseHandler
from tornado import web

from ..errors import Refused
from ..web.scopes import require_scope
from . import hub
from .decide import Server, message, notices


def _aware(when: datetime | None) -> datetime | None:
    # JupyterHub stores naive UTC times.
    return when.replace(tzinfo=UTC) if when is not None and when.tzinfo is None else when


def servers_of(user) -> list[Server]:
    """The user's running servers as the hub holds them (its User wrapper)."""
    found = []
    for name, spawner in user.spawners.items():
        if not spawner.active:
            continue
        options = spawner.user_options or {}
        profile = options.get("profile") if isinstance(options, dict) else None
        found.append(
            Server(
                user=user.name,
                name=name,
                profile=profile if isinstance(profile, str) else None,
                last_activity=_aware(spawner.orm_spawner.last_activity),
                started=_aware(spawner.orm_spawner.started),
                ready=bool(spawner.ready) and not spawner.pending,
            )
        )
    return found


def notices_for(user, now: datetime | None = None) -> list[dict]:
    """The user's notices as plain data (JSON, and the template, which escapes them)."""
    running = hub.RUNNING
    if user is None or running is None or getattr(user, "kind", "user") != "user":
        return []
    now = now or datetime.now(UTC)
    settings = running.settings
    found = notices(
        servers_of(user),
        running.store.current(),
        now,
        warn_before=settings.warn_before,
        recent=settings.recent,
    )
    return [
        {
            "server": notice.server.name,
            "profile": notice.profile,
            "reason": notice.reason,
            "seconds_left": notice.seconds_left(now),
            "at": notice.at.isoformat(),
            "message": message(notice, now),
            "url": user.server_url(notice.server.name),
        }
        for notice in found
    ]


def notices_for_template(user) -> list[dict]:
    """c.JupyterHub.template_vars["cern_notices"]: called with the page's user (None: logged out)."""
    return notices_for(user)


def keep(handler: BaseHandler, user, name: str) -> None:
    """Record activity on the user's running server `name` now, as its own activity report would."""
    spawner = user.spawners.get(name) if isinstance(name, str) else None
    if spawner is None or not spawner.active:
        handler.log.warning("Keep refused for %s: no running server %r", user.name, name)
        raise Refused(
            404,
            f"You have no running server named {name!r} to keep."
            if name
            else "Your default server is not running: there is nothing to keep.",
        )
    now = datetime.now(UTC).replace(tzinfo=None)
    orm_spawner = spawner.orm_spawner
    orm_spawner.last_activity = max(orm_spawner.last_activity or now, now)
    user.orm_user.last_activity = max(user.orm_user.last_activity or now, now)
    handler.db.commit()
    handler.log.info("%s kept server %r: activity recorded", user.name, name)


def _own_user(handler: APIHandler):
    user = handler.current_user
    if user is None or getattr(user, "kind", "user") != "user":
        raise web.HTTPError(403, "Log in to see and keep your servers.")
    return user


class NoticesHandler(APIHandler):
    """GET /hub/api/cern/notices."""

    def get(self):
        user = _own_user(self)
        require_scope(
            self,
            f"read:servers!user={user.name}",
            "Your servers' notices are for your browser session or a token with the read:servers scope.",
        )
        self.set_header("Cache-Control", "no-store")
        self.finish({"notices": notices_for(user), "keep_url": self.hub.base_url + "api/cern/notices/keep"})


class KeepHandler(APIHandler):
    """POST /hub/api/cern/notices/keep {"server": name} ("" for the default server)."""

    def post(self):
        user = _own_user(self)
        require_scope(
            self,
            f"users:activity!user={user.name}",
            "Keeping a server needs your browser session or a token with the users:activity scope.",
        )
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError as e:
            raise Refused(400, 'Send JSON: {"server": "<name>"}, "" for your default server.') from e
        name = body.get("server", "") if isinstance(body, dict) else None
        keep(self, user, name)
        self.finish({"kept": name, "notices": notices_for(user)})


class KeepPageHandler(BaseHandler):
    """POST /hub/cern/keep: the banner's Keep button (a form: works without JavaScript)."""

    @web.authenticated
    def post(self):
        user = self.current_user
        require_scope(self, f"users:activity!user={user.name}", "Only you may keep your servers.")
        keep(self, user, self.get_body_argument("server", ""))
        self.redirect(self.hub.base_url + "home")


# For c.JupyterHub.extra_handlers (paths are below /hub/).
handlers = [
    (r"/api/cern/notices", NoticesHandler),
    (r"/api/cern/notices/keep", KeepHandler),
    (r"/cern/keep", KeepPageHandler),
]

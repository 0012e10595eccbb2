"""/hub/api/cern/quota/<user>: a user's GPU quota, and admins' overrides of it.

- GET: limits, use within the window, what is left, running sessions and the override. The user
  (scope `read:servers!user=<name>`, held by their own `user` role) or an admin (`admin:users`).
- PUT: set the user's override, {"gpus"?, "gpu_hours"?, "expires"? (ISO 8601 or epoch seconds),
  "reason"?}; limits it names replace the role's until it expires. DELETE: remove it. Both need the
  `admin:users` scope on that user (hub admins hold it; a notebook server's token never does),
  checked here, on the server, whatever the caller's page shows.
"""

from __future__ import annotations

import json
from datetime import datetime

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import has_scope
from tornado import web

from ..logsafe import shown
from ..web.scopes import require_scope
from . import hooks
from .decision import card_line, decide
from .ledger import Ledger
from .policy import Override, effective_limits, policy_of

ADMIN_SCOPE = "admin:users"
READ_SCOPE = "read:servers"


class QuotaHandler(APIHandler):
    def _user(self, name: str):
        user = self.find_user(name)
        if user is None:
            raise web.HTTPError(404, f"No user {shown(name)}.")
        return user

    async def get(self, name: str):
        self._require_login()
        if not has_scope(f"{ADMIN_SCOPE}!user={name}", self.parsed_scopes, db=self.db):
            require_scope(
                self,
                f"{READ_SCOPE}!user={name}",
                "Only the user and hub admins may read a user's GPU quota "
                "(a notebook server's token may not).",
            )
        user = self._user(name)
        spawner = user.spawner
        if not hasattr(spawner, "catalog_store"):
            raise web.HTTPError(404, "This hub does not use CERNSpawner's profile catalog.")
        policy = policy_of(spawner.catalog_store.current())
        now = hooks.clock()
        ledger = Ledger(self.db)
        override = ledger.override(name)
        body: dict = {"user": name, "override": _override_json(override), "limited": False}
        if policy is not None:
            limits, role = effective_limits(policy, await spawner.user_roles(), override, now)
            sessions = ledger.sessions(name, now - policy.window)
            verdict = decide(limits, sessions, gpus=1, now=now, window=policy.window, server=None)
            body.update(
                limited=not limits.unlimited,
                role=role,
                window_seconds=policy.window,
                gpus_limit=limits.gpus,
                gpus_in_use=verdict.gpus_in_use,
                gpu_hours_limit=limits.gpu_hours,
                gpu_hours_used=round(verdict.used_hours, 4),
                gpu_hours_left=None if verdict.left_hours is None else round(verdict.left_hours, 4),
                text=card_line(verdict, policy.window),
                sessions=[
                    {
                        "server": s.server,
                        "profile": s.profile,
                        "gpus": s.gpus,
                        "start": s.start,
                        "stop": s.stop,
                    }
                    for s in sessions
                ],
            )
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body))

    def _require_login(self) -> None:
        # In JSON, as every API answer: not tornado's redirect to the login page.
        if self.current_user is None:
            raise web.HTTPError(403, "Log in, or send an API token, to read or change GPU quotas.")

    def _require_admin(self, name: str) -> None:
        require_scope(
            self,
            f"{ADMIN_SCOPE}!user={name}",
            "Only hub admins may change a user's GPU quota.",
        )

    async def put(self, name: str):
        self._require_login()
        self._require_admin(name)
        self._user(name)
        override = _parse(self.request.body, by=getattr(self.current_user, "name", ""), now=hooks.clock())
        Ledger(self.db).set_override(name, override)
        self.log.info(
            "GPU quota of %s overridden by %s: gpus %r, gpu_hours %r, expires %r, reason %r",
            name,
            override.set_by,
            override.gpus,
            override.gpu_hours,
            override.expires,
            override.reason,
        )
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"user": name, "override": _override_json(override)}))

    async def delete(self, name: str):
        self._require_login()
        self._require_admin(name)
        self._user(name)
        if Ledger(self.db).clear_override(name):
            self.log.info(
                "GPU quota override of %s removed by %s", name, getattr(self.current_user, "name", "")
            )
        self.set_status(204)
        self.finish()


def _parse(raw: bytes, *, by: str, now: float) -> Override:
    """The request's override, or 400 saying what is wrong with it."""
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise web.HTTPError(400, 'The body must be JSON, e.g. {"gpu_hours": 50}.') from None
    if not isinstance(body, dict):
        raise web.HTTPError(400, 'The body must be a JSON object, e.g. {"gpu_hours": 50}.')
    unknown = sorted(set(body) - {"gpus", "gpu_hours", "expires", "reason"})
    if unknown:
        raise web.HTTPError(
            400, f"Unknown keys {', '.join(map(shown, unknown))}: use gpus, gpu_hours, expires, reason."
        )
    gpus, hours = body.get("gpus"), body.get("gpu_hours")
    if gpus is not None and (isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0):
        raise web.HTTPError(400, f"gpus must be a whole number of at least 0, not {json.dumps(gpus)}.")
    if hours is not None and (isinstance(hours, bool) or not isinstance(hours, int | float) or hours < 0):
        raise web.HTTPError(400, f"gpu_hours must be a number of at least 0, not {json.dumps(hours)}.")
    if gpus is None and hours is None:
        raise web.HTTPError(400, "Give gpus, gpu_hours or both; DELETE removes the override.")
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise web.HTTPError(400, "reason must be text.")
    return Override(
        gpus=gpus,
        gpu_hours=None if hours is None else float(hours),
        expires=_expires(body.get("expires"), now),
        reason=reason[:500],
        set_by=by,
        set_at=now,
    )


def _expires(value, now: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        at = float(value)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise web.HTTPError(400, f"expires must be an ISO 8601 time, not {shown(value)}.") from None
        if moment.tzinfo is None:
            raise web.HTTPError(
                400, f"expires needs a time zone (e.g. 2026-12-10T18:00Z), not {shown(value)}."
            )
        at = moment.timestamp()
    else:
        raise web.HTTPError(400, f"expires must be an ISO 8601 time, not {shown(value)}.")
    if at <= now:
        raise web.HTTPError(400, "expires is in the past.")
    return at


def _override_json(override: Override | None) -> dict | None:
    if override is None:
        return None
    return {
        "gpus": override.gpus,
        "gpu_hours": override.gpu_hours,
        "expires": override.expires,
        "reason": override.reason,
        "set_by": override.set_by,
        "set_at": override.set_at,
    }


# Mounted with the other cern API handlers (web/handlers.py), below /hub/.
ROUTE = r"/api/cern/quota/([^/]+)"

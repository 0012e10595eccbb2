"""GET /hub/api/cern/servers/<user>: where each of a user's active servers runs (profile, pod, node,
node group), as the hub's pod watch sees it.

JupyterHub's own server model does not say where a pod landed, and the scheduler's event can reach
the hub after a fast spawn is already ready: tools such as `cern-spawner smoke` ask here instead.
Readable by whoever may read the user's servers (`read:servers!user=<name>`: the user, admins, the
smoke service for its own user).
"""

from __future__ import annotations

import json

from jupyterhub.apihandlers.base import APIHandler
from tornado import web

from ..logsafe import shown
from .scopes import require_scope

SCOPE = "read:servers"
ROUTE = r"/api/cern/servers/([^/]+)"


def servers_of(user) -> dict:
    """{server name: where it runs} for the user's servers that are started or starting."""
    out = {}
    for name, spawner in sorted(user.spawners.items()):
        if not spawner.active:
            continue
        where = (
            spawner.where() if hasattr(spawner, "where") else {"pod": None, "node": None, "node_group": None}
        )
        profile = (spawner.user_options or {}).get("profile")
        out[name] = {"profile": profile, "ready": spawner.ready, **where}
    return out


class ServersWhereHandler(APIHandler):
    @web.authenticated
    def get(self, name: str):
        require_scope(
            self,
            f"{SCOPE}!user={name}",
            f"Only the user and hub admins may see where a user's servers run, from their browser or "
            f"an API token with the {SCOPE} scope (a notebook server's token does not have it).",
        )
        user = self.find_user(name)
        if user is None:
            raise web.HTTPError(404, f"No user {shown(name)}.")
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps({"user": user.name, "servers": servers_of(user)}))

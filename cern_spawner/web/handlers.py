"""Small JSON endpoints of the hub: the catalog's status (admins) and profile availability (users).

Access is by JupyterHub scope, not by `user.admin`: a token carries only the scopes it was given, so
the token a notebook server gets (scopes `access:servers!server=…`, `users:activity!user=…`) reads
neither endpoint, even when its owner is an admin. The scopes are JupyterHub's own, held by the
roles every hub has: `read:hub` (the `admin` role: the catalog is part of the hub's configuration)
and `read:servers!user=<self>` (every user's own servers, through the `user` role's `self`).
"""

from __future__ import annotations

import json

from jupyterhub.apihandlers.base import APIHandler
from tornado import web

from ..bounded import Bounded
from ..catalog_store import all_stores
from ..quota.handlers import ROUTE as QUOTA_ROUTE
from ..quota.handlers import QuotaHandler
from ..scaling.hub import scaled_groups, shared_controller
from .availability import report
from .scopes import require_scope
from .servers import ROUTE as SERVERS_ROUTE
from .servers import ServersWhereHandler

CATALOG_SCOPE = "read:hub"
SERVERS_SCOPE = "read:servers"


class CatalogStatusHandler(APIHandler):
    """GET /hub/api/cern/catalog: version, profiles, node groups, and the last refused edit."""

    @web.authenticated
    def get(self):
        user = self.current_user
        require_scope(
            self,
            CATALOG_SCOPE,
            "Only hub admins may see the profile catalog's status, from their browser or an API token "
            f"with the {CATALOG_SCOPE} scope (a notebook server's token does not have it).",
        )
        # The admin's own spawner opens the hub's shared store if no spawn has done so yet.
        spawner = getattr(user, "spawner", None)
        if spawner is not None and hasattr(spawner, "catalog_store"):
            spawner.catalog_store.check()
        stores = all_stores()
        if not stores:
            raise web.HTTPError(404, "This hub does not use CERNSpawner's profile catalog.")
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps({"catalogs": [store.status() for store in stores]}))


async def availability_for(spawner, cache: Bounded) -> dict:
    """The availability report for the profiles the spawner's user may use (cached per roles)."""
    catalog = spawner.catalog_store.current()
    roles = frozenset(await spawner.user_roles())

    def compute() -> dict:
        # The controller exists once any CERNSpawner with a cloud was built (this one included):
        # shared_controller only looks it up. Its statuses come from the shared watch, not from here.
        controller = shared_controller(spawner, spawner.log)
        statuses = dict(controller.statuses) if controller else {}
        scaled = scaled_groups(catalog)
        boots = {g.name: controller.expected_boot_seconds(g.name) for g in scaled} if controller else {}
        return report(catalog, roles, statuses, scaled, boots)

    return cache.get_or_make((catalog.version, roles), compute)


class AvailabilityHandler(APIHandler):
    """GET /hub/api/cern/availability: the caller's profiles, each with whether it can start now."""

    # Every open picker polls, but a report changes only per scaling round; role mixes are few.
    cache = Bounded(max_entries=256, ttl=5.0)

    async def get(self):
        user = self.current_user
        # A service or an anonymous caller has no roles, hence no profiles: refuse in JSON.
        if user is None or getattr(user, "kind", "user") != "user":
            raise web.HTTPError(403, "Log in to see which profiles can start now.")
        require_scope(
            self,
            f"{SERVERS_SCOPE}!user={user.name}",
            "Which profiles can start now is shown to you in the hub's pages or to API tokens with the "
            f"{SERVERS_SCOPE} scope (a notebook server's token does not have it).",
        )
        spawner = user.spawner
        if not hasattr(spawner, "catalog_store"):
            raise web.HTTPError(404, "This hub does not use CERNSpawner's profile catalog.")
        body = await availability_for(spawner, self.cache)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body))


# For c.JupyterHub.extra_handlers (paths are below /hub/).
handlers = [
    (r"/api/cern/catalog", CatalogStatusHandler),
    (r"/api/cern/availability", AvailabilityHandler),
    (QUOTA_ROUTE, QuotaHandler),  # a user's GPU quota; admins' overrides
    (SERVERS_ROUTE, ServersWhereHandler),  # where a user's servers run
]

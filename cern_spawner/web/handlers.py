"""Admin-only JSON view of the profile catalog the hub serves, and of a refused edit."""

from __future__ import annotations

import json

from jupyterhub.apihandlers.base import APIHandler
from tornado import web

from ..catalog_store import all_stores


class CatalogStatusHandler(APIHandler):
    """GET /hub/api/cern/catalog: version, profiles, node groups, and the last refused edit."""

    @web.authenticated
    def get(self):
        user = self.current_user
        if not getattr(user, "admin", False):
            raise web.HTTPError(403, "Only admins may see the profile catalog's status.")
        # The admin's own spawner opens the hub's shared store if no spawn has done so yet.
        spawner = getattr(user, "spawner", None)
        if spawner is not None and hasattr(spawner, "catalog_store"):
            spawner.catalog_store.check()
        stores = all_stores()
        if not stores:
            raise web.HTTPError(404, "This hub does not use CERNSpawner's profile catalog.")
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps({"catalogs": [store.status() for store in stores]}))


# For c.JupyterHub.extra_handlers (paths are below /hub/).
handlers = [(r"/api/cern/catalog", CatalogStatusHandler)]

"""The service's admin page, /hub/cern/admin: catalog, node groups and GPU servers on one page.

For the operator on call: is the catalog the one they edited, which groups have free GPUs, what
the cloud is doing and said last, and which GPU servers have sat idle for hours. Access is by
JupyterHub scope, checked here on every request: `admin-ui` (JupyterHub's own admin page needs it
too), `read:hub` (the catalog is the hub's configuration) and `read:servers` on all users. The
`admin` role holds all three; a user's or a notebook server's token holds none of them.

The handler only reads the hub's objects into plain facts and renders `admin_view.build_view`'s
frozen view with JupyterHub's page template.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from jupyterhub.handlers.base import BaseHandler
from tornado import web

from ..catalog_store import all_stores
from ..scaling.hub import controller_for
from .admin_view import AdminView, ServerFacts, build_view
from .scopes import require_scope

ADMIN_SCOPES = ("admin-ui", "read:hub", "read:servers")
REFUSED = (
    "Only hub admins may see the service's admin page: it needs the scopes "
    + ", ".join(ADMIN_SCOPES)
    + " (JupyterHub's admin role has them)."
)


def epoch(moment: datetime | None) -> float | None:
    """Unix seconds of a JupyterHub database time (naive datetimes there are UTC)."""
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def pod_node(spawner) -> str:
    """The node of the server's pod, from KubeSpawner's pod reflector ("" when unknown)."""
    reflector = getattr(spawner, "pod_reflector", None)
    if reflector is None:
        return ""
    pod = reflector.pods.get(f"{spawner.namespace}/{spawner.pod_name}")
    return str((pod or {}).get("spec", {}).get("nodeName") or "")


def profile_slug(user_options) -> str:
    """The profile a server was started with: a form post keeps its fields as lists."""
    value = (user_options or {}).get("profile") or ""
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value)


def server_facts(users) -> list[ServerFacts]:
    """Every active (starting or running) server of the hub's users (JupyterHub's `UserDict`)."""
    facts = []
    for user in list(users.values()):
        for name, spawner in list(user.spawners.items()):
            if not spawner.active:
                continue
            facts.append(
                ServerFacts(
                    user=user.name,
                    server=name,
                    profile=profile_slug(spawner.user_options),
                    started=epoch(spawner.orm_spawner.started),
                    last_activity=epoch(spawner.orm_spawner.last_activity),
                    ready=bool(spawner.ready),
                    node=pod_node(spawner),
                )
            )
    return facts


def gather(handler: BaseHandler) -> AdminView:
    # The hub's configured catalog, through the admin's own spawner (which opens the shared store
    # if no spawn has yet); a service calling has no spawner: every store the process has opened.
    spawner = getattr(handler.current_user, "spawner", None)
    if spawner is not None and hasattr(spawner, "catalog_store"):
        stores = [spawner.catalog_store]
    else:
        stores = all_stores()
    if not stores:
        raise web.HTTPError(404, "This hub does not use CERNSpawner's profile catalog.")
    served = [store.current() for store in stores]  # checks the files for an edit first
    catalogs = [(store.status(), catalog) for store, catalog in zip(stores, served, strict=True)]
    controller = controller_for(stores[0])
    return build_view(
        catalogs,
        dict(controller.statuses) if controller else None,
        server_facts(handler.users),
        now=time.time(),
        monotonic_now=controller.clock() if controller else time.monotonic(),
    )


class AdminPageHandler(BaseHandler):
    """GET /hub/cern/admin."""

    @web.authenticated
    async def get(self):
        for scope in ADMIN_SCOPES:
            require_scope(self, scope, REFUSED)
        view = gather(self)
        self.set_header("Cache-Control", "no-store")
        self.finish(await self.render_template("cern_admin.html", view=view))


# For c.JupyterHub.extra_handlers (paths are below /hub/).
admin_handlers = [(r"/cern/admin", AdminPageHandler)]

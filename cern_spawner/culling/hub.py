"""Wiring the culler into a hub: what `configure_hub(c, culling=True)` writes into `c`, and the task
it starts once the hub is up.

`configure(c)` registers the JupyterHub service `cern-culler` (no URL, no process: the hub's
database knows it so that its token and role exist), its role with `service.SCOPES` only, the
home page's notices (`c.JupyterHub.template_vars["cern_notices"]`), and schedules `_start`, which
waits for the hub to have started, makes the service's token (deleting any earlier one), and runs
the rounds. The token is never written anywhere: it lives in this process's memory.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from traitlets.config import Config, LazyConfigValue

from ..catalog_store import CatalogStore
from .service import SCOPES, SERVICE_NAME, Culling, HubAPI, run

log = logging.getLogger(__name__)

ROLE = {
    "name": SERVICE_NAME,
    "description": "cern-spawner's culler: lists users' servers and stops idle and old ones",
    "scopes": list(SCOPES),
    "services": [SERVICE_NAME],
}
TOKEN_NOTE = "cern-spawner culler (in the hub process, never stored)"


@dataclass
class Running:
    """What the users' side (banner, notices) reads while the culler runs."""

    settings: Culling
    store: CatalogStore


# Set by `_start`: None while no culler runs in this process (then no notices are shown either).
RUNNING: Running | None = None
_tasks: set[asyncio.Task] = set()


def configure(c: Config) -> None:
    from ..configure import _extend
    from .handlers import notices_for_template

    _extend(c.JupyterHub, "services", [{"name": SERVICE_NAME}])
    _extend(c.JupyterHub, "load_roles", [ROLE])
    current = c.JupyterHub.template_vars if "template_vars" in c.JupyterHub else None
    if isinstance(current, LazyConfigValue):  # c.JupyterHub.template_vars.update(...) so far
        current.update({"cern_notices": notices_for_template})
    else:
        c.JupyterHub.template_vars = {**(current or {}), "cern_notices": notices_for_template}
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # a `jupyterhub` subcommand, or a test applying the config
        return
    loop.call_soon(lambda: _keep(asyncio.ensure_future(_start())))


def _keep(task: asyncio.Task) -> None:
    _tasks.add(task)  # the loop holds tasks weakly
    task.add_done_callback(_tasks.discard)


async def _start() -> None:
    from jupyterhub.app import JupyterHub

    from ..catalog_store import shared_store
    from ..scaling.startup import spawner_setting

    if not JupyterHub.initialized():
        return
    app = JupyterHub.instance()
    try:
        await hub_started(app)
        settings = Culling(config=app.config)
        store = shared_store(
            spawner_setting(app.config, "profiles_path"),
            log=app.log,
            min_interval=spawner_setting(app.config, "profiles_reload_interval"),
        )
        api = HubAPI(api_url(app), service_token(app))
    except Exception:  # the hub must still serve; say why nothing will be culled
        app.log.exception("The culler could not start: no server will be culled")
        return
    global RUNNING
    RUNNING = Running(settings, store)
    app.log.info(
        "Culler started: every %g s, warning %g s ahead, sparing servers active in the last %g s",
        settings.interval,
        settings.warn_before,
        settings.recent,
    )
    try:
        await run(api, store.current, settings, log=app.log, anyone_running=lambda: anyone_running(app))
    finally:
        RUNNING = None


def anyone_running(app) -> bool:
    """Whether any server of the hub is running or starting (in memory: every running server's
    user is loaded at the hub's start or by its spawn)."""
    return any(spawner.active for user in app.users.values() for spawner in user.spawners.values())


async def hub_started(app) -> None:
    """Until the hub serves its API (JupyterHub.start's end; the future exists from initialize on)."""
    from ..waiting import until

    async def initialized():
        return getattr(app, "_start_future", None) is not None

    await until(initialized, within=None, what="the hub's initialize", first=0.2, cap=1.0)
    await app._start_future


def service_token(app) -> str:
    """A new token of the culler's service, with its role's scopes (`SCOPES`); earlier ones (a
    previous hub process's) deleted, since nothing else holds them."""

    service = registered(app)
    for token in list(service.api_tokens):
        app.db.delete(token)
    app.db.commit()
    return service.new_api_token(note=TOKEN_NOTE, scopes=["inherit"])


def registered(app):
    """The service with its role, registered now if a later line of the hub's config replaced
    `c.JupyterHub.services` or `load_roles` (`= [...]` after configure_hub): the hub then drops
    them at its next start, and this puts them back."""
    from jupyterhub import orm, roles

    service = orm.Service.find(app.db, SERVICE_NAME)
    role = orm.Role.find(app.db, SERVICE_NAME)
    if service is not None and role is not None and role in service.roles:
        return service
    app.log.warning(
        "The hub's config replaced c.JupyterHub.services or load_roles after configure_hub: "
        "registering the %s service and role now",
        SERVICE_NAME,
    )
    if service is None:
        service = orm.Service(name=SERVICE_NAME, from_config=True)
        app.db.add(service)
        app.db.commit()
    role = roles.create_role(app.db, {key: value for key, value in ROLE.items() if key != "services"})
    roles.grant_role(app.db, service, role)
    return service


def api_url(app) -> str:
    """The hub's own REST API, reached on the address it listens on (hub_connect_url may name a
    Service that routes elsewhere, or through the network)."""
    hub = app.hub
    if app.internal_ssl or not hub.port:
        return hub.url + "api/"
    host = hub.ip if hub.ip not in ("", "0.0.0.0", "::") else "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{hub.port}{hub.base_url}api/"

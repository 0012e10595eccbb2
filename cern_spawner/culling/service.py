"""The culler: an asyncio task in the hub process that stops idle and old servers through the hub's
REST API, as the JupyterHub service `cern-culler` with the role of the same name.

Why in the hub process (docs/architecture.md): a managed service is a child process that gets its
token in $JUPYTERHUB_API_TOKEN, and our rule is no tokens in environment variables. In the process,
the token is made through the hub's database at each start (the previous one deleted) and only ever
held in memory. Acting through the REST API rather than the database keeps the culler to its role's
scopes, `SCOPES`: list the users, read their servers (activity, start time and `user_options`, where
the profile's slug is), and stop servers.

`cull_round` is one round with explicit arguments (the API, the catalog, the time); `run` repeats it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

from prometheus_client import Counter
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from traitlets import Float, Int, TraitError, validate
from traitlets.config import Configurable

from ..catalog.model import Catalog
from .decide import Due, Server, to_cull

log = logging.getLogger(__name__)

SERVICE_NAME = "cern-culler"
# Least scopes: users listed (list:users) with their servers' models (read:servers: last_activity,
# started, user_options), and stopped (delete:servers). Nothing about the users themselves.
SCOPES = ("list:users", "read:servers", "delete:servers")

CULLS = Counter(
    "cern_spawner_culls",
    "Servers stopped by the culler, per profile and reason (idle, max_age)",
    ["profile", "reason"],
)
CULL_FAILURES = Counter(
    "cern_spawner_cull_failures", "Servers the culler failed to stop, per profile", ["profile"]
)


class Culling(Configurable):
    """c.Culling: the culler's timing. The timeouts themselves are per profile, in the catalog."""

    interval = Float(
        60.0,
        help="Seconds between the culler's rounds (default 60 s): a server is stopped at most this "
        "long after it is due.",
    ).tag(config=True)
    warn_before = Float(
        900.0,
        help="Seconds before a cull when users are warned (home page banner, /hub/api/cern/notices). "
        "Default 900 s (15 min).",
    ).tag(config=True)
    recent = Float(
        300.0,
        help=(
            "Seconds of protection after any activity: a server active this recently is never stopped, "
            "past its max_age included (it then stops at its first quiet moment). Default 300 s, the "
            "hub's default activity report interval."
        ),
    ).tag(config=True)
    concurrency = Int(
        5, help="Servers stopped at once (each stop is a DELETE the hub then carries out). Default 5."
    ).tag(config=True)

    @validate("interval", "warn_before", "recent", "concurrency")
    def _positive(self, proposal):
        value, name = proposal["value"], proposal["trait"].name
        if value < 0 or (name in ("interval", "concurrency") and value == 0):
            raise TraitError(f"Culling.{name} must be positive, not {value!r}")
        return value


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    when = datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def servers_of(user: dict) -> list[Server]:
    """The servers of one user model of the REST API (`read:servers` fields)."""
    found = []
    for name, model in (user.get("servers") or {}).items():
        options = model.get("user_options") or {}
        profile = options.get("profile") if isinstance(options, dict) else None
        found.append(
            Server(
                user=user["name"],
                name=name,
                profile=profile if isinstance(profile, str) else None,
                last_activity=parse_time(model.get("last_activity")),
                started=parse_time(model.get("started")),
                ready=bool(model.get("ready")) and not model.get("pending"),
            )
        )
    return found


class HubAPI:
    """The few calls the culler makes, with its token; `url` is the hub's API (…/hub/api/)."""

    def __init__(self, url: str, token: str, *, client: AsyncHTTPClient | None = None, page: int = 200):
        self.url, self.page = url.rstrip("/") + "/", page
        self.client = client or AsyncHTTPClient()
        self._headers = {"Authorization": f"token {token}"}

    async def _request(self, method: str, path: str, **kwargs) -> dict | None:
        response = await self.client.fetch(
            self.url + path, method=method, headers={**self._headers, **kwargs.pop("headers", {})}, **kwargs
        )
        return json.loads(response.body) if response.body else None

    async def servers(self) -> list[Server]:
        """Every ready server, page by page (the hub caps a page's size)."""
        found: list[Server] = []
        offset = 0
        while True:
            query = urlencode({"state": "ready", "offset": offset, "limit": self.page})
            body = await self._request(
                "GET", f"users?{query}", headers={"Accept": "application/jupyterhub-pagination+json"}
            )
            for user in body["items"]:
                found += servers_of(user)
            following = (body.get("_pagination") or {}).get("next")
            if not following:
                return found
            offset = following["offset"]

    async def server(self, user: str, name: str) -> Server | None:
        """The server as the hub sees it now (None: gone)."""
        try:
            body = await self._request("GET", f"users/{quote(user, safe='')}")
        except HTTPClientError as e:
            if e.code == 404:
                return None
            raise
        return next((s for s in servers_of(body) if s.name == name), None)

    async def stop(self, server: Server) -> None:
        path = f"users/{quote(server.user, safe='')}/" + (
            f"servers/{quote(server.name, safe='')}" if server.name else "server"
        )
        try:
            await self._request("DELETE", path)
        except HTTPClientError as e:
            if e.code not in (400, 404):  # 400: not running (any more), 404: gone; both fine
                raise


async def cull_round(
    api: HubAPI,
    catalog: Catalog,
    now: Callable[[], datetime],
    *,
    recent: float,
    concurrency: int = 5,
    log: logging.Logger = log,
) -> list[Due]:
    """Stop the servers due now; returns those stopped. Each is looked at again just before its
    stop, so activity since the listing (a "Keep", a reconnect) saves it."""
    due = to_cull(await api.servers(), catalog, now(), recent=recent)
    limit = asyncio.Semaphore(concurrency)

    async def stop(item: Due) -> Due | None:
        async with limit:
            server = item.server
            try:
                fresh = await api.server(server.user, server.name)
                if fresh is None or not to_cull([fresh], catalog, now(), recent=recent):
                    log.info("Not culling %s/%s: active again, or gone", server.user, server.name)
                    return None
                await api.stop(fresh)
            except Exception:  # one failure must not stop the round; the next round tries again
                CULL_FAILURES.labels(item.profile).inc()
                log.exception("Could not cull %s/%s", server.user, server.name)
                return None
            CULLS.labels(item.profile, item.reason).inc()
            log.info(
                "Culled %s/%s (profile %s): %s over %d s",
                server.user,
                server.name,
                item.profile,
                "idle" if item.reason == "idle" else "older than max_age",
                item.timeout,
            )
            return item

    stopped = await asyncio.gather(*(stop(item) for item in due))
    return [item for item in stopped if item is not None]


async def run(
    api: HubAPI,
    catalog: Callable[[], Catalog],
    settings: Culling,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    log: logging.Logger = log,
    anyone_running: Callable[[], bool] = lambda: True,
) -> None:
    """Rounds for ever, `settings.interval` apart; a failed round is logged and the next one runs.
    A round is skipped while `anyone_running()` says no server runs: listing the users through the
    REST API (token check and its database commit, the query) was the idle hub's largest cost of
    ours after the cloud reads, to find nothing to stop."""
    while True:
        try:
            if anyone_running():
                await cull_round(
                    api, catalog(), now, recent=settings.recent, concurrency=settings.concurrency, log=log
                )
        except Exception:
            log.exception("Culling round failed; next one in %g s", settings.interval)
        await sleep(settings.interval)

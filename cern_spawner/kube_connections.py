"""How long the hub keeps an idle connection to the Kubernetes API server for its next request.

KubeSpawner's shared client (kubernetes_asyncio over aiohttp) closes a connection idle for 15 s,
aiohttp's default. Spawns rarely come closer than that, so a start after a quiet quarter-minute
opens its connections again: a TLS handshake each, ~1 ms of hub CPU, paid by every spawn of a
burst that needs a connection of its own. The API server keeps idle connections 90 s
(k8s.io/apiserver pkg/server/secure_serving.go, `IdleTimeout: 90 * time.Second`), and an OpenStack
Octavia load balancer in front of a Magnum cluster's API 50 s (a listener's `timeout_client_data`,
octavia/common/constants.py `DEFAULT_TIMEOUT_CLIENT_DATA = 50000` ms): below both. Should a site's
balancer close sooner, aiohttp does not reuse a connection the other side has closed; it opens a
new one, as it would without this setting.

The same client also trusts the environment (aiohttp's `trust_env`): before each request it looks
for a proxy and a netrc entry for the API server, each look in a worker thread of its own. Where
the hub's environment names no proxy and has no netrc file, both looks find nothing at a cost of
two thread hand-offs a request; `skip_environment_lookups` turns them off there, and only there.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

import aiohttp

DEFAULT_KEEPALIVE_S = 45.0


def _session(api) -> aiohttp.ClientSession | None:
    api_client = getattr(api, "api_client", api)
    session = getattr(getattr(api_client, "rest_client", None), "pool_manager", None)
    return session if isinstance(session, aiohttp.ClientSession) else None


def environment_configures_requests(
    environ: Mapping[str, str] = os.environ,
    proxies: Callable[[], Mapping[str, str]] = urllib.request.getproxies,
    home: Callable[[], Path] = Path.home,
) -> bool:
    """Whether aiohttp's `trust_env` could change a request here: a proxy for the schemes it reads
    (http, https, ws, wss) or a netrc file (`NETRC`, else ~/.netrc), as aiohttp looks them up."""
    if any(scheme in ("http", "https", "ws", "wss") for scheme in proxies()):
        return True
    try:
        netrc = Path(environ["NETRC"]) if environ.get("NETRC") else home() / ".netrc"
    except RuntimeError:  # no home directory: aiohttp finds no netrc either
        return False
    return netrc.exists()


def skip_environment_lookups(api, configured: Callable[[], bool] | None = None) -> bool:
    """Stop `api`'s client looking up a proxy and a netrc entry before each request, unless the
    environment has one of them (then nothing changes). True when the lookups are off."""
    session = _session(api)
    if session is None or not isinstance(getattr(session, "_trust_env", None), bool):
        return False
    if session._trust_env and not (configured or environment_configures_requests)():
        session._trust_env = False  # aiohttp takes it only at construction, as the keep-alive
    return not session._trust_env


def keep_connections(api, seconds: float) -> float | None:
    """Keep `api`'s idle connections (a kubernetes_asyncio API object, or its ApiClient) `seconds`
    before closing them; never shorter than the client's own setting. The value now in force, or
    None when the client is not one we know how to tune (it is then left alone)."""
    connector = getattr(_session(api), "connector", None)
    if not isinstance(connector, aiohttp.BaseConnector) or seconds <= 0:
        return None
    # aiohttp takes the keep-alive only at construction; the client builds its connector itself.
    current = getattr(connector, "_keepalive_timeout", None)
    if not isinstance(current, (int, float)):
        return None
    if current < seconds:
        connector._keepalive_timeout = float(seconds)
    return connector._keepalive_timeout

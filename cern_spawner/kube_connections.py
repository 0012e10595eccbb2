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
"""

from __future__ import annotations

import aiohttp

DEFAULT_KEEPALIVE_S = 45.0


def keep_connections(api, seconds: float) -> float | None:
    """Keep `api`'s idle connections (a kubernetes_asyncio API object, or its ApiClient) `seconds`
    before closing them; never shorter than the client's own setting. The value now in force, or
    None when the client is not one we know how to tune (it is then left alone)."""
    api_client = getattr(api, "api_client", api)
    session = getattr(getattr(api_client, "rest_client", None), "pool_manager", None)
    connector = getattr(session, "connector", None)
    if not isinstance(connector, aiohttp.BaseConnector) or seconds <= 0:
        return None
    # aiohttp takes the keep-alive only at construction; the client builds its connector itself.
    current = getattr(connector, "_keepalive_timeout", None)
    if not isinstance(current, (int, float)):
        return None
    if current < seconds:
        connector._keepalive_timeout = float(seconds)
    return connector._keepalive_timeout

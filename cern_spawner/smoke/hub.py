"""The smoke round's `Hub`: JupyterHub's REST API and the proxy, for one user's default server.

The token is the smoke service's (scopes: start, stop, read and access that one user's servers;
docs/operator/smoke.md), read from a file by the caller. Every request has a timeout; errors of the
HTTP client are wrapped at this boundary.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from urllib.parse import quote

import aiohttp

from .run import Refusal


class HubUnreachable(Exception):
    """The hub (or its proxy) could not be asked at all: the round cannot go on."""


class RestHub:
    """`url` is the hub's public URL (the proxy's): its API at url/hub/api, servers at url/user/…"""

    def __init__(self, session: aiohttp.ClientSession, url: str, token: str, user: str, timeout: float = 30):
        self.session, self.url, self.user = session, url.rstrip("/"), user
        self.headers = {"Authorization": f"token {token}"}
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._api = f"{self.url}/hub/api/users/{quote(user, safe='')}"

    async def _request(self, method: str, url: str, **kwargs) -> tuple[int, str]:
        try:
            async with self.session.request(
                method, url, headers=self.headers, timeout=self.timeout, allow_redirects=False, **kwargs
            ) as response:
                return response.status, await response.text()
        except (aiohttp.ClientError, TimeoutError) as e:
            raise HubUnreachable(f"{method} {url}: {e!r}") from e

    async def start(self, profile: str) -> None:
        status, body = await self._request("POST", f"{self._api}/server", json={"profile": profile})
        if status in (201, 202):
            return
        message = _message(body) or f"HTTP {status}"
        if 400 <= status < 500:
            raise Refusal(message)
        raise HubUnreachable(f"starting {profile}: HTTP {status}: {message}")

    async def progress(self) -> AsyncIterator[dict]:
        url = f"{self._api}/server/progress"
        try:
            # No total timeout: the caller's deadline ends a long spawn.
            async with self.session.get(
                url, headers=self.headers, timeout=aiohttp.ClientTimeout(sock_connect=30)
            ) as response:
                if 400 <= response.status < 500:
                    # The spawn ended (failed) before its progress could be read.
                    message = _message(await response.text()) or f"HTTP {response.status}"
                    yield {"failed": True, "message": f"the spawn ended early: {message}"}
                    return
                if response.status != 200:
                    raise HubUnreachable(f"GET {url}: HTTP {response.status}")
                async for raw in response.content:
                    line = raw.decode(errors="replace").strip()
                    if line.startswith("data:"):
                        try:
                            yield json.loads(line[len("data:") :])
                        except ValueError:
                            continue
        except aiohttp.ClientError as e:
            raise HubUnreachable(f"GET {url}: {e!r}") from e

    async def _server(self) -> dict | None:
        status, body = await self._request("GET", self._api)
        if status != 200:
            raise HubUnreachable(f"GET {self._api}: HTTP {status}: {_message(body)}")
        return json.loads(body).get("servers", {}).get("")

    async def node(self) -> str | None:
        """The node of the default server's pod from /hub/api/cern/servers; None when the hub does
        not say (no pod yet, or a hub without that endpoint)."""
        url = f"{self.url}/hub/api/cern/servers/{quote(self.user, safe='')}"
        status, body = await self._request("GET", url)
        if status != 200:
            return None
        try:
            node = json.loads(body)["servers"][""]["node"]
        except (ValueError, KeyError, TypeError):
            return None
        return node if isinstance(node, str) else None

    async def answers(self) -> bool:
        """The server's own API answers 200 through the proxy: a redirect (to a login) is no answer."""
        server = await self._server()
        if not server or not server.get("url"):
            return False
        try:
            status, _ = await self._request("GET", f"{self.url}{server['url']}api/status")
        except HubUnreachable:
            return False
        return status == 200

    async def stop(self) -> None:
        status, body = await self._request("DELETE", f"{self._api}/server")
        if status not in (202, 204, 400):  # 400: not running (a failed start was cleaned up)
            raise HubUnreachable(f"stopping: HTTP {status}: {_message(body)}")

    async def stopped(self) -> bool:
        return await self._server() is None


def _message(body: str) -> str:
    try:
        return str(json.loads(body).get("message") or "")
    except (ValueError, AttributeError):
        return body[:200]

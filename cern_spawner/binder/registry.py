"""Ask an OCI registry whether an image exists (distribution API v2), before building it.

Anonymous first; on 401 the challenge decides: Basic → the configured credentials, Bearer → a
token from the challenge's realm (with the credentials, if any, as Docker clients do). Tokens are
cached per realm/service/scope until shortly before they expire.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from urllib.parse import urlencode, urlsplit

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse

from ..bounded import Bounded
from .errors import RegistryError
from .images import ImageRef, split_image

MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^,\s]*))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="...",service="...",scope="..."` → ("bearer", {realm, service, scope})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {}
    for match in _PARAM.finditer(rest):
        quoted, bare = match.group(2), match.group(3)
        params[match.group(1).lower()] = quoted if quoted is not None else bare
    return scheme.lower(), params


class RegistryClient:
    """`manifest_exists(image)` against one or more registries.

    `http_registries`: host[:port] reached over plain http (the sandbox's registry); all others https.
    """

    def __init__(
        self,
        username: str | None = None,
        password: str | None = None,
        *,
        timeout: float = 10.0,
        http_registries: Iterable[str] = (),
    ):
        self.username = username
        self.password = password
        self.timeout = timeout
        self.http_registries = set(http_registries)
        # (registry, scope) -> token, each until shortly before it expires; one per repository
        # launched, so bounded (the least recently used is fetched again if needed).
        self._tokens: Bounded[str] = Bounded(max_entries=512)

    def _base(self, registry: str) -> str:
        return f"{'http' if registry in self.http_registries else 'https'}://{registry}"

    def _basic(self) -> str | None:
        if self.username is None:
            return None
        raw = f"{self.username}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    async def manifest_exists(self, image: str) -> bool:
        """True when `<registry>/<repository>:<tag>` has a manifest, False on 404; RegistryError otherwise."""
        try:
            ref = split_image(image)
        except ValueError as e:
            raise RegistryError(str(e)) from e
        return await self.manifest_at(ref)

    async def manifest_at(self, ref: ImageRef) -> bool:
        """`manifest_exists` for a reference already split; `ref.tag` may be a digest (sha256:…)."""
        url = f"{self._base(ref.registry)}/v2/{ref.repository}/manifests/{ref.tag}"
        response = await self._authorized("HEAD", url, ref)
        # Some registries answer HEAD on manifests poorly (405, or 400 without a body); GET is the
        # fallback every registry must serve.
        if response.code not in (200, 404, 401, 403):
            response = await self._authorized("GET", url, ref)
        if response.code == 200:
            return True
        if response.code == 404:
            return False
        if response.code in (401, 403):
            who = f"as {self.username!r}" if self.username else "anonymously"
            raise RegistryError(
                f"The registry {ref.registry} refused to let the hub read {ref.repository} {who} "
                f"(HTTP {response.code}): check the hub's registry credentials."
            )
        raise RegistryError(
            f"The registry {ref.registry} answered HTTP {response.code} for {ref.repository}:{ref.tag}: "
            "try again later."
        )

    async def _authorized(self, method: str, url: str, ref: ImageRef) -> HTTPResponse:
        response = await self._fetch(method, url, {"Accept": MANIFEST_TYPES, **self._cached_auth(ref)})
        if response.code != 401:
            return response
        scheme, params = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if scheme == "basic" and self.username is not None:
            auth = self._basic()
        elif scheme == "bearer" and params.get("realm"):
            auth = "Bearer " + await self._token(ref, params)
        else:
            return response  # no way to authenticate: the caller reports the 401
        return await self._fetch(method, url, {"Accept": MANIFEST_TYPES, "Authorization": auth})

    def _cached_auth(self, ref: ImageRef) -> dict[str, str]:
        token = self._tokens.get((ref.registry, self._scope(ref)))
        return {"Authorization": f"Bearer {token}"} if token else {}

    @staticmethod
    def _scope(ref: ImageRef) -> str:
        return f"repository:{ref.repository}:pull"

    async def _token(self, ref: ImageRef, params: dict[str, str]) -> str:
        realm, service = params["realm"], params.get("service", "")
        scope = params.get("scope") or self._scope(ref)
        realm_parts = urlsplit(realm)
        plain_ok = realm_parts.netloc in self.http_registries
        if realm_parts.scheme != "https" and not (realm_parts.scheme == "http" and plain_ok):
            raise RegistryError(f"The registry {ref.registry} named a non-https token service ({realm}).")
        query = urlencode({k: v for k, v in (("service", service), ("scope", scope)) if v})
        headers = {"Authorization": self._basic()} if self.username is not None else {}
        response = await self._fetch("GET", f"{realm}{'&' if '?' in realm else '?'}{query}", headers)
        if response.code != 200:
            raise RegistryError(
                f"The token service of {ref.registry} ({realm}) refused a pull token for "
                f"{ref.repository} (HTTP {response.code}): check the hub's registry credentials."
            )
        try:
            body = json.loads(response.body)
            token = body.get("token") or body["access_token"]
            lifetime = float(body.get("expires_in") or 60)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise RegistryError(f"The token service of {ref.registry} ({realm}) sent no token.") from e
        self._tokens.put((ref.registry, scope), token, ttl=max(lifetime - 10, 0))
        return token

    async def _fetch(self, method: str, url: str, headers: dict[str, str]) -> HTTPResponse:
        request = HTTPRequest(
            url,
            method=method,
            headers=headers,
            connect_timeout=self.timeout,
            request_timeout=self.timeout,
            follow_redirects=False,  # a redirect would carry the Authorization header elsewhere
        )
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except (HTTPClientError, OSError) as e:
            raise RegistryError(f"Could not reach the registry {urlsplit(url).netloc}: {e}") from e
        if response.code == 599:  # a client-side failure some HTTP clients report as a response
            raise RegistryError(f"Could not reach the registry {urlsplit(url).netloc}: {response.error}")
        return response

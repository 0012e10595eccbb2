"""The identity provider's HTTP side: JSON requests with typed errors, and OIDC discovery."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .errors import GrantRejected, ProviderUnavailable

WELL_KNOWN = "/.well-known/openid-configuration"


async def fetch_json(
    http_client: AsyncHTTPClient,
    url: str,
    *,
    request_timeout: float,
    form: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    request_kwargs: dict | None = None,
) -> dict:
    """GET `url` (or POST `form` url-encoded) and return the JSON object it answers.

    4xx → GrantRejected (the provider understood and refused); network errors, timeouts, 5xx and
    non-JSON bodies → ProviderUnavailable. `request_kwargs` are extra tornado HTTPRequest options
    (proxies, CA certificates), as in OAuthenticator.http_request_kwargs.
    """
    all_headers = {"Accept": "application/json", "User-Agent": "JupyterHub cern-spawner"}
    all_headers.update(headers or {})
    kwargs = dict(request_kwargs or {})
    if form is not None:
        all_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        kwargs.update(method="POST", body=urlencode(form))
    request = HTTPRequest(
        url, headers=all_headers, connect_timeout=request_timeout, request_timeout=request_timeout, **kwargs
    )
    try:
        response = await http_client.fetch(request)
    except HTTPClientError as e:
        # tornado reports timeouts and refused connections as code 599 without a response.
        if e.response is not None and 400 <= e.code < 500:
            error, description = _oauth_error(e.response.body)
            raise GrantRejected(e.code, error, description) from e
        raise ProviderUnavailable(f"{_without_query(url)}: {e}") from e
    except OSError as e:
        raise ProviderUnavailable(f"{_without_query(url)}: {e}") from e
    try:
        document = json.loads(response.body)
    except ValueError as e:
        raise ProviderUnavailable(f"{_without_query(url)}: the answer is not JSON") from e
    if not isinstance(document, dict):
        raise ProviderUnavailable(f"{_without_query(url)}: the answer is not a JSON object")
    return document


def _oauth_error(body: bytes | None) -> tuple[str, str]:
    # RFC 6749 §5.2 error bodies; anything else is reported by status alone.
    try:
        document = json.loads(body or b"")
    except ValueError:
        return "error", ""
    if not isinstance(document, dict):
        return "error", ""
    return str(document.get("error", "error")), str(document.get("error_description", ""))


def _without_query(url: str) -> str:
    return url.split("?", 1)[0]


@dataclass(frozen=True)
class ProviderMetadata:
    """The endpoints the hub uses, from the discovery document (RFC 8414 / OIDC Discovery names)."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str = ""
    end_session_endpoint: str = ""


async def discover(
    http_client: AsyncHTTPClient, issuer: str, *, request_timeout: float, **kwargs
) -> ProviderMetadata:
    """Fetch `issuer`'s OpenID configuration and check it names the same issuer (OIDC Discovery §4.3)."""
    url = issuer.rstrip("/") + WELL_KNOWN
    try:
        document = await fetch_json(http_client, url, request_timeout=request_timeout, **kwargs)
    except GrantRejected as e:
        raise ProviderUnavailable(f"{url}: {e}") from e
    return metadata_from_document(document, issuer)


def metadata_from_document(document: dict, issuer: str) -> ProviderMetadata:
    """The endpoints of a discovery document; ProviderUnavailable when it is unusable."""
    if document.get("issuer") != issuer:
        # A mismatch means a misconfigured issuer URL or a spoofed document: either way, unusable.
        raise ProviderUnavailable(
            f"the discovery document names issuer {document.get('issuer')!r}, expected {issuer!r}"
        )
    missing = [k for k in ("authorization_endpoint", "token_endpoint", "jwks_uri") if not document.get(k)]
    if missing:
        raise ProviderUnavailable(f"the discovery document of {issuer} lacks {', '.join(missing)}")
    return ProviderMetadata(
        issuer=issuer,
        authorization_endpoint=document["authorization_endpoint"],
        token_endpoint=document["token_endpoint"],
        jwks_uri=document["jwks_uri"],
        userinfo_endpoint=document.get("userinfo_endpoint") or "",
        end_session_endpoint=document.get("end_session_endpoint") or "",
    )

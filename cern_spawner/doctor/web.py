"""HTTP services the hub depends on: profile images in their registries, the SSO's discovery
document, the Binder registry and the git hosts repositories come from.

Every request has connect and request timeouts (`request_timeout`); the runner bounds each check too.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from ..binder.errors import RegistryError
from ..binder.images import ImageRef
from ..binder.registry import RegistryClient
from .result import Result, failed, passed, skipped
from .settings import SSO

# Docker's defaults for names without a registry host (`jupyter/scipy-notebook`, `python:3.12`).
DOCKER_HUB, DOCKER_HUB_API = "docker.io", "registry-1.docker.io"
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[A-Fa-f0-9]{32,}")


def image_ref(image: str) -> ImageRef:
    """An image reference as a container runtime reads it: registry host (Docker Hub when the first
    component has no '.', ':' and is not "localhost"), repository (library/ on Docker Hub for a
    single name), tag (default latest) or digest. ValueError for what no runtime would pull."""
    name, at, digest = image.strip().partition("@")
    if at and not _DIGEST.fullmatch(digest):
        raise ValueError(f"{image!r} has an invalid digest")
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
    else:
        registry, path = DOCKER_HUB, name
    tag = "latest"
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path, tag = path.rsplit(":", 1)
    if registry == DOCKER_HUB:
        registry = DOCKER_HUB_API
        if "/" not in path:
            path = f"library/{path}"
    if not path or path != path.lower() or not re.fullmatch(r"[a-z0-9._/-]+", path) or not tag:
        raise ValueError(f"{image!r} is not a valid image name")
    return ImageRef(registry, path, digest if at else tag)


def docker_credentials(path: str, registry: str) -> tuple[str | None, str | None]:
    """(username, password) for `registry` from a Docker config.json (or the hub's
    {"username", "password"} file, meant for the Binder registry); (None, None): anonymous."""
    if not path:
        return None, None
    with open(path) as f:
        data = json.load(f)
    if "auths" not in data:
        return str(data["username"]), str(data["password"])
    auths = data["auths"]
    keys = [k for k in (registry, f"https://{registry}", f"http://{registry}") if k in auths]
    if not keys and registry == DOCKER_HUB_API:
        keys = [k for k in auths if "docker.io" in k]
    if not keys:
        return None, None
    entry = auths[keys[0]]
    if "auth" in entry:
        username, _, password = base64.b64decode(entry["auth"], validate=True).decode().partition(":")
        return username, password
    return str(entry["username"]), str(entry["password"])


async def check_image(
    image: str,
    used_by: Sequence[str],
    *,
    credentials_path: str = "",
    http_registries: Iterable[str] = (),
    request_timeout: float = 10.0,
) -> Result:
    """The image's manifest answers a HEAD (GET when HEAD is refused) in its registry."""
    name = f"image {image}"
    users = ", ".join(used_by)
    try:
        ref = image_ref(image)
    except ValueError as e:
        return failed(
            name, f"{e} (used by {users})", "correct the image name in the catalog or KubeSpawner.image."
        )
    try:
        username, password = docker_credentials(credentials_path, ref.registry)
    except (OSError, ValueError, KeyError, TypeError, binascii.Error) as e:
        return failed(
            name,
            f"the registry credentials {credentials_path} cannot be read ({type(e).__name__})",
            "mount a Docker config.json there (or pass --registry-auth FILE).",
        )
    client = RegistryClient(username, password, timeout=request_timeout, http_registries=http_registries)
    try:
        found = await client.manifest_at(ref)
    except RegistryError as e:
        if str(e).startswith("Could not reach"):
            # Kubelets pull images, not the hub: a registry only the nodes reach still serves pods.
            fix = (
                "let the hub reach the registry (chart: networkPolicy.hub.egressAllowed) or run the doctor "
                "where it can; nodes pull images themselves, so if they reach it notebooks still start."
            )
        else:
            fix = (
                "for a private registry, give the doctor a Docker config.json with its credentials "
                "(BinderConfig.registry_credentials_path or --registry-auth)."
            )
        return failed(name, f"{e} (used by {users})", fix)
    if found:
        return passed(name, f"found in {ref.registry} (used by {users})")
    return failed(
        name,
        f"{ref.registry} has no {ref.repository}:{ref.tag} (used by {users})",
        "push the image, or correct its name or tag where it is set (the profiles' image / "
        "image_choices, or KubeSpawner.image for profiles without one).",
    )


def sso_check_name(sso: SSO) -> str:
    return "SSO keys" if sso.explicit else "SSO discovery"


async def check_sso(sso: SSO, *, request_timeout: float) -> Result:
    """The issuer's discovery document answers and names exactly the configured issuer; with every
    endpoint set explicitly (the hub reads no discovery document), the signing keys answer instead."""
    from ..auth.errors import GrantRejected, ProviderUnavailable
    from ..auth.provider import discover, fetch_json

    http, name = AsyncHTTPClient(), sso_check_name(sso)
    if sso.explicit:
        fix = (
            "set CERNAuthenticator.jwks_uri (chart: auth.endpoints.jwks) to the SSO's signing keys, and "
            "make sure the hub reaches it (egress, proxy, CA)."
        )
    else:
        fix = (
            "set CERNAuthenticator.issuer_url (chart: auth.issuerUrl) to the realm's issuer exactly as "
            "the discovery document names it (no trailing '/'), and make sure the hub reaches it "
            "(egress, proxy, CA)."
        )
    kwargs = {"request_timeout": request_timeout, "request_kwargs": sso.request_kwargs}
    try:
        if sso.explicit:
            keys = (await fetch_json(http, sso.jwks_uri, **kwargs)).get("keys")
        else:
            metadata = await discover(http, sso.issuer, **kwargs)
    except (ProviderUnavailable, GrantRejected) as e:  # any answer but the document, or none
        return failed(name, f"{sso.jwks_uri if sso.explicit else sso.issuer}: {e}", fix)
    if sso.explicit:
        if not keys:
            return failed(name, f"{sso.jwks_uri} lists no signing keys", fix)
        return passed(name, f"{sso.jwks_uri} lists {len(keys)} signing keys (endpoints set explicitly)")
    return passed(
        name,
        f"{sso.issuer}'s discovery document names this issuer (token endpoint {metadata.token_endpoint})",
    )


async def answers(
    url: str, *, request_timeout: float, request_kwargs: Mapping | None = None
) -> tuple[int | None, str]:
    """(HTTP status, "") when `url` answers at all (no redirect followed), else (None, why)."""
    request = HTTPRequest(
        url,
        method="GET",
        connect_timeout=request_timeout,
        request_timeout=request_timeout,
        follow_redirects=False,
        **(request_kwargs or {}),
    )
    try:
        response = await AsyncHTTPClient().fetch(request, raise_error=False)
    except (HTTPClientError, OSError) as e:
        return None, str(e)
    if response.code == 599:
        return None, str(response.error)
    return response.code, ""


async def check_registry(
    registry: str, http_registries: Iterable[str], credentials_path: str, *, request_timeout: float
) -> Result:
    """The Binder registry speaks the distribution API (v2) and the hub's credentials file reads."""
    name = "Binder registry"
    scheme = "http" if registry in set(http_registries) else "https"
    status, why = await answers(f"{scheme}://{registry}/v2/", request_timeout=request_timeout)
    fix = (
        "check BinderConfig.registry (chart: binder.registry) and that the hub reaches it "
        "(egress NetworkPolicy, DNS, its certificate)."
    )
    if status is None:
        return failed(name, f"{registry} does not answer: {why}", fix)
    if status not in (200, 401):
        return failed(name, f"{scheme}://{registry}/v2/ answered HTTP {status}, not the registry API", fix)
    if credentials_path:
        try:
            docker_credentials(credentials_path, registry)
        except (OSError, ValueError, KeyError, TypeError, binascii.Error) as e:
            return failed(
                name,
                f"{registry} answers, but the credentials {credentials_path} cannot be read "
                f"({type(e).__name__})",
                "mount the push Secret (a Docker config.json with an entry for the registry) there.",
            )
    login = "login required" if status == 401 else "open"
    return passed(name, f"{scheme}://{registry}/v2/ answers ({login})")


def git_origins(allowed_hosts: Iterable[str], insecure_origins: Iterable[str]) -> tuple[list[str], list[str]]:
    """(origins to ask, wildcard hosts that cannot be asked) of BinderConfig's git hosts."""
    origins, wildcards = [], []
    for host in allowed_hosts:
        if host.startswith("*."):
            wildcards.append(host)
        else:
            origins.append(f"https://{host}")
    origins += [origin.rstrip("/") for origin in insecure_origins]
    return origins, wildcards


async def check_git_host(origin: str, *, request_timeout: float) -> Result:
    name = f"git {urlsplit(origin).netloc or origin}"
    status, why = await answers(f"{origin}/", request_timeout=request_timeout)
    if status is None:
        return failed(
            name,
            f"{origin} does not answer: {why}",
            "let the hub reach it (egress NetworkPolicy, proxy, DNS), or remove it from "
            "BinderConfig.allowed_hosts / insecure_origins (chart: binder.allowedHosts).",
        )
    if status >= 500:
        return failed(
            name, f"{origin} answers HTTP {status}", "the git host is failing: see its status page."
        )
    return passed(name, f"{origin} answers (HTTP {status})")


def wildcard_note(wildcards: Sequence[str]) -> Result:
    return skipped("git wildcards", f"{', '.join(wildcards)}: any host under these; none asked")

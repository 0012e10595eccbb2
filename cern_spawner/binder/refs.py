"""Launch specs (mybinder routes) to a checked repository URL and ref; safe `urlpath`/`labpath`.

Pure functions. Every refusal is a `BinderRefused` whose message says what was wrong and how to
fix it, so a handler can answer it as is. Specs are taken still percent-encoded (the raw request
path after `/v2/`): `gl` and `git` encode their repository as one path segment, which decoding
first would split.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from .errors import BinderRefused

PROVIDERS = ("gh", "gl", "git")
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")  # space included: no git URL or ref needs one
_GH_OWNER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})")
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.+-]*")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
# A DNS name as URLs carry it (internationalized names in their xn-- form).
_HOST = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*")
# Controls (C0, C1), format characters (bidi overrides and isolates, zero-width ones, BOM, soft
# hyphen), separators, surrogates, private-use and unassigned code points: none belongs in a ref,
# and several make a ref read differently from what git sees.
_INVISIBLE_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp")
_MAX_REF = 255


@dataclass(frozen=True)
class RepoRef:
    provider: str  # "gh", "gl" or "git"
    repo_url: str  # a checked URL, scheme and host lowercased, no trailing slash
    ref: str  # a branch, tag, "HEAD" or a full commit SHA, as the user wrote it


def parse_spec(
    spec: str,
    allowed_hosts: Iterable[str],
    insecure_origins: Iterable[str] = (),
    github_host: str = "github.com",
    gitlab_host: str = "gitlab.com",
) -> RepoRef:
    """Parse `gh/<org>/<repo>/<ref>`, `gl/<encoded path>/<ref>` or `git/<encoded URL>/<ref>`.

    `allowed_hosts`: host names (`*.example.org` for any subdomain) repositories may come from.
    `insecure_origins`: exact `http://host[:port]` origins also allowed (the sandbox's git server).
    """
    _no_control(spec, "the launch link")
    provider, _, rest = spec.strip("/").partition("/")
    if provider not in PROVIDERS:
        raise BinderRefused(
            400,
            f"Unknown repository provider {provider!r} in the launch link: use gh/<org>/<repo>/<ref>, "
            "gl/<url-encoded project path>/<ref> or git/<url-encoded repository URL>/<ref>.",
        )
    if provider == "gh":
        owner, _, rest = rest.partition("/")
        name, _, raw_ref = rest.partition("/")
        if not _GH_OWNER.fullmatch(owner) or not _repo_segment_ok(name):
            raise BinderRefused(
                400,
                f"{owner}/{name!s} is not a GitHub repository name: the link should read "
                "gh/<org>/<repo>/<ref>, e.g. gh/binder-examples/requirements/HEAD.",
            )
        url = f"https://{github_host}/{owner}/{name}"
    elif provider == "gl":
        encoded, _, raw_ref = rest.partition("/")
        path = unquote(encoded).strip("/")
        segments = path.split("/")
        if len(segments) < 2 or not all(_repo_segment_ok(s) for s in segments):
            raise BinderRefused(
                400,
                f"{path!r} is not a GitLab project path: the link should read gl/<group>%2F<project>/<ref>, "
                "with the slashes of the project path encoded as %2F.",
            )
        url = f"https://{gitlab_host}/{path}"
    else:
        encoded, _, raw_ref = rest.partition("/")
        url = unquote(encoded)
    if not raw_ref:
        raise BinderRefused(
            400,
            "The launch link names no ref: add /<branch, tag or commit> at its end "
            "(HEAD for the default branch).",
        )
    repo_url = check_repo_url(url, allowed_hosts, insecure_origins)
    return RepoRef(provider, repo_url, check_ref(unquote(raw_ref)))


def check_repo_url(url: str, allowed_hosts: Iterable[str], insecure_origins: Iterable[str] = ()) -> str:
    """The URL normalized (scheme and host lowercased, the host's trailing '.' and a default port
    dropped, no trailing slash), or BinderRefused.

    https on a port other than 443 only for an `allowed_hosts` entry naming that port
    (`host:port`); plain http only for an exact `insecure_origins` entry.
    """
    _no_control(url, "the repository URL")
    if "\\" in url:
        raise BinderRefused(400, f"The repository URL {url!r} holds a backslash: use forward slashes.")
    if not _SCHEME.match(url) or url.lower().startswith("file:"):
        raise BinderRefused(
            400,
            f"{url!r} is not a remote repository: local paths and file:// URLs are never allowed; "
            "give an https:// URL of a git server.",
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise BinderRefused(400, f"The repository URL {url!r} cannot be parsed ({e}).") from e
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise BinderRefused(
            400, f"Only https:// repository URLs are allowed; {url!r} uses {scheme}:, give its https address."
        )
    if "@" in parts.netloc:
        raise BinderRefused(
            400,
            "The repository URL holds credentials (user@ or user:password@): remove them; "
            "only public repositories can be launched from a link.",
        )
    raw_host = (parts.hostname or "").lower()
    # "github.com." is github.com: one repository, one image, whichever way it was written.
    host = raw_host[:-1] if raw_host.endswith(".") and not raw_host.endswith("..") else raw_host
    if not host:
        raise BinderRefused(400, f"The repository URL {url!r} names no host: give https://<host>/<path>.")
    origin = f"{scheme}://{raw_host}" + (f":{port}" if port is not None else "")
    if scheme == "http" and origin in {o.lower().rstrip("/") for o in insecure_origins}:
        pass  # an explicitly allowed local server, e.g. the sandbox's
    elif scheme == "http":
        raise BinderRefused(
            403, f"Only https:// repository URLs are allowed, not http://: use the https address of {host}."
        )
    elif not _HOST.fullmatch(host):
        raise BinderRefused(
            400,
            f"{raw_host!r} is not a host name: give the host as letters, digits, '-' and '.' "
            "(an internationalized name in its xn-- form).",
        )
    elif not host_allowed(host, allowed_hosts, None if port == 443 else port):
        where = host if port in (None, 443) else f"{host}:{port}"
        raise BinderRefused(
            403,
            f"Repositories on {where} are not allowed on this hub. Ask the hub's administrators to add "
            f"{where} to the allowed git hosts, or use a repository on an allowed host"
            + (" and the standard https port." if port not in (None, 443) else "."),
        )
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise BinderRefused(400, f"The repository URL {url!r} has a query or fragment: remove the ?/# part.")
    path = parts.path.rstrip("/")
    segments = path.split("/")[1:]
    if not segments or not all(_repo_segment_ok(s) for s in segments):
        raise BinderRefused(
            400,
            f"The repository path {parts.path!r} is not a plain repository path: use letters, digits, "
            "'.', '_', '-' and '+' between slashes, without '.' or '..' segments or %-escapes.",
        )
    default_port = port is None or (scheme, port) in (("https", 443), ("http", 80))
    netloc = host if default_port else f"{host}:{port}"
    return f"{scheme}://{netloc}{path}"


def host_allowed(host: str, allowed_hosts: Iterable[str], port: int | None = None) -> bool:
    """Whether `host` (on `port`; None: the scheme's default) matches an entry: `host`, `*.domain`
    (any subdomain), either with `:port` to allow exactly that non-default port."""
    host = host.lower().rstrip(".")
    for entry in allowed_hosts:
        pattern, _, entry_port = entry.lower().partition(":")
        if (int(entry_port) if entry_port.isdigit() else None) != port:
            continue
        pattern = pattern.rstrip(".")
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and host != pattern[2:]:
                return True
        elif host == pattern:
            return True
    return False


def is_full_sha(value: str) -> bool:
    """A full commit id: 40 hex digits (SHA-1) or 64 (SHA-256 repositories), lowercase."""
    return bool(_SHA.fullmatch(value))


def check_ref(ref: str) -> str:
    """A branch, tag or full SHA, checked like `git check-ref-format --allow-onelevel`, plus no
    leading '-' (it would read as an option)."""
    if is_full_sha(ref):
        return ref
    problem = _ref_problem(ref)
    if problem:
        raise BinderRefused(
            400,
            f"{ref!r} is not a valid git ref: {problem}. Give a branch, a tag, HEAD or a full 40-character "
            "commit SHA.",
        )
    return ref


def _ref_problem(ref: str) -> str | None:
    if not ref:
        return "it is empty"
    if len(ref) > _MAX_REF:
        return f"it is longer than {_MAX_REF} characters"
    if _CONTROL.search(ref):
        return "it holds a space or a control character"
    hidden = next((c for c in ref if unicodedata.category(c) in _INVISIBLE_CATEGORIES), None)
    if hidden is not None:
        return (
            f"it holds the invisible or text-direction character U+{ord(hidden):04X} "
            f"({unicodedata.name(hidden, 'unnamed')}), which makes it read differently from what git sees"
        )
    bad = set(ref) & set("~^:?*[\\")
    if bad:
        return f"it holds {''.join(sorted(bad))!r}"
    if ref.startswith("-"):
        return "it starts with '-'"
    if ref == "@" or "@{" in ref:
        return "it holds '@{' or is '@'"
    if ".." in ref:
        return "it holds '..'"
    if ref.startswith("/") or ref.endswith("/") or "//" in ref:
        return "it has an empty component (a leading, trailing or doubled '/')"
    if ref.endswith("."):
        return "it ends with '.'"
    for component in ref.split("/"):
        if component.startswith("."):
            return "a component starts with '.'"
        if component.endswith(".lock"):
            return "a component ends with '.lock'"
    return None


def launch_path(urlpath: str | None = None, labpath: str | None = None) -> str:
    """Where to open the server after start, relative to its base URL ("" for the default).

    `labpath` (a file for JupyterLab) wins over `urlpath` (any path, query allowed, e.g. nbgitpuller's
    `git-pull?repo=...`), as on mybinder.org. One leading '/' is dropped: the result is always joined
    under the user's server, never used as is.
    """
    if labpath:
        path = safe_relative_path(labpath, "labpath", allow_query=False)
        return f"lab/tree/{path}" if path else "lab"
    if urlpath:
        return safe_relative_path(urlpath, "urlpath")
    return ""


def safe_relative_path(value: str, name: str = "urlpath", allow_query: bool = True) -> str:
    """`value` as a path relative to the user's server, or BinderRefused (400)."""
    _no_control(value, name)
    if "\\" in value:
        raise BinderRefused(400, f"{name} {value!r} holds a backslash: use forward slashes.")
    if value.startswith("//") or _SCHEME.match(value.split("/", 1)[0]):
        raise BinderRefused(
            400, f"{name} must be a path inside your server (like lab/tree/a.ipynb), not a URL: {value!r}."
        )
    path, sep, query = value.partition("?")
    if sep and not allow_query:
        raise BinderRefused(400, f"{name} {value!r} holds a query ('?'): give only a file path.")
    # Decode until stable so %2e%2e (and %252e...) cannot hide a '..'.
    decoded, previous = path, None
    while decoded != previous:
        previous, decoded = decoded, unquote(decoded)
    if any(segment == ".." for segment in decoded.replace("\\", "/").split("/")):
        raise BinderRefused(400, f"{name} {value!r} climbs out with '..': give a path inside your server.")
    return value[1:] if value.startswith("/") else value


def _repo_segment_ok(segment: str) -> bool:
    return bool(_PATH_SEGMENT.fullmatch(segment)) and segment not in (".", "..")


def _no_control(value: str, what: str) -> None:
    if _CONTROL.search(value) or any(unicodedata.category(c) in _INVISIBLE_CATEGORIES for c in value):
        raise BinderRefused(
            400,
            f"{what.capitalize()} holds a space, a control character or an invisible or text-direction "
            "character: remove it.",
        )

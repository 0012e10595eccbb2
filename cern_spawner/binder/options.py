"""The binder part of a spawn's user_options: `binder_repo` and `binder_ref` next to the profile.

Pure functions. `split_form` takes the binder fields out of form or query data before KubeSpawner
reads the rest; `check_binder_options` runs on every spawn path (form, link, REST API) and is the
only place that decides whether a repository launch may go ahead. The image is never part of
the options: the spawner sets it from the build result.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from .errors import BinderRefused
from .refs import check_ref, check_repo_url

# `binder_tokens`: True when the user ticked "give this server my CERN tokens" (see wants_tokens).
TOKENS_KEY = "binder_tokens"
BINDER_KEYS = ("binder_repo", "binder_ref", TOKENS_KEY)
DEFAULT_REF = "HEAD"
# KubeSpawner's suffix for a typed-in value (cern_spawner.options.UNLISTED_SUFFIX; not imported,
# since that module imports this one).
_UNLISTED_SUFFIX = "--unlisted-choice"

NOT_ENABLED = "Launching from a git repository is not enabled on this hub."
IMAGE_CHOSEN = "The image of a repository launch is built by the hub; it cannot be chosen."


def split_form(formdata: Mapping[str, list[str]]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """(the rest of the form data, binder options) from a form post or spawn query.

    The rest goes to KubeSpawner's `options_from_form`; the binder options join its result.

    An empty repository field means no repository launch (the picker always posts the field), so
    the binder options are then {}. An empty ref means HEAD. Values are trimmed; the first of
    repeated values counts, as KubeSpawner reads its own fields. The tokens checkbox counts only
    when ticked (a browser posts "on"); unticked, the key is absent.
    """
    # `_xsrf`: JupyterHub's token, in the body of the confirmation page's post; not an option.
    rest = {key: values for key, values in formdata.items() if key not in BINDER_KEYS and key != "_xsrf"}
    repo = _first(formdata.get("binder_repo"))
    if not repo:
        return rest, {}
    binder = {"binder_repo": repo, "binder_ref": _first(formdata.get("binder_ref")) or DEFAULT_REF}
    if _first(formdata.get(TOKENS_KEY)) == "on":
        binder[TOKENS_KEY] = True
    return rest, binder


def _first(values: Iterable[str] | None) -> str:
    for value in values or ():
        return value.strip() if isinstance(value, str) else ""
    return ""


def check_binder_options(
    user_options: Mapping,
    *,
    enabled: bool,
    allowed_hosts: Iterable[str],
    insecure_origins: Iterable[str] = (),
) -> tuple[str, str] | None:
    """(normalized repository URL, ref) of a repository launch, None when the options hold none.

    BinderRefused (400/403) when binder launches are off, a value is not a string, the options
    try to choose the image, or the repository or ref is not acceptable (see refs).
    """
    if not any(key in user_options for key in BINDER_KEYS):
        return None
    if not enabled:
        raise BinderRefused(400, NOT_ENABLED)
    repo = user_options.get("binder_repo")
    ref = user_options.get("binder_ref", DEFAULT_REF)
    for name, value in (("binder_repo", repo), ("binder_ref", ref)):
        if value is not None and not isinstance(value, str):
            raise BinderRefused(400, f"{name} must be a string.")
    if not isinstance(user_options.get(TOKENS_KEY, False), bool):
        raise BinderRefused(400, f"{TOKENS_KEY} must be true or false.")
    # Any choice of image (top-level, or a profile option of that name, listed or typed in) would
    # start something other than what was built.
    if any(isinstance(key, str) and key.removesuffix(_UNLISTED_SUFFIX) == "image" for key in user_options):
        raise BinderRefused(400, IMAGE_CHOSEN)
    if not repo or not repo.strip():
        raise BinderRefused(400, "binder_repo is empty: give the https URL of the git repository to launch.")
    repo_url = check_repo_url(repo.strip(), allowed_hosts, insecure_origins)
    return repo_url, check_ref((ref or DEFAULT_REF).strip())


# --- whose launches get the user's exchanged tokens -------------------------------------------------

_HOST_PORT = re.compile(
    r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*(?::[0-9]{1,5})?"
)
_SEGMENT = re.compile(r"[a-z0-9._+-]+")


def token_pattern_problem(pattern: str) -> str | None:
    """What is wrong with a `BinderConfig.token_launches` entry, None when it is fine.

    `host[:port]/path` names one repository; `host[:port]/prefix/*` (or `host[:port]/*`) every
    repository below that group, organisation or host. Lowercase; `*` only as the last segment.
    """
    host, slash, path = pattern.partition("/")
    if not _HOST_PORT.fullmatch(host):
        return "it must start with a lowercase host name (and :port), no scheme"
    if not slash or not path:
        return f"it names no repository: write {host}/* for every repository on {host}"
    segments = path.split("/")
    if segments[-1] == "*":
        segments = segments[:-1]
    if not all(_SEGMENT.fullmatch(s) and s not in (".", "..") for s in segments):
        return "its path must be lowercase letters, digits, '.', '_', '-', '+' between slashes, '*' only last"
    return None


def _repo_key(repo_url: str) -> str:
    """`host[:port]/path` of a repository URL, casefolded, no trailing '/' or '.git', default port dropped.

    Casefolded as GitHub and GitLab treat owner and project names; a pattern never matches more
    than the group or organisation its admin wrote.
    """
    parts = urlsplit(repo_url.strip())
    host = (parts.hostname or "").rstrip(".")
    port = parts.port
    netloc = (
        host
        if port is None or (parts.scheme.lower(), port) in (("https", 443), ("http", 80))
        else f"{host}:{port}"
    )
    path = parts.path.rstrip("/")
    path = path.removesuffix(".git")
    return f"{netloc}{path}".casefold()


def token_launch_allowed(repo_url: str, patterns: Iterable[str]) -> bool:
    """True when an admin's `token_launches` pattern covers the repository."""
    key = _repo_key(repo_url)
    for pattern in patterns:
        pattern = pattern.casefold()
        if pattern.endswith("/*"):
            prefix = pattern[:-1]  # keeps the '/': github.com/cern/* never matches github.com/cernx/…
            if key.startswith(prefix) and len(key) > len(prefix):
                return True
        elif key == pattern:
            return True
    return False


def wants_tokens(user_options: Mapping, patterns: Iterable[str]) -> bool:
    """Whether a server with these options gets the user's exchanged tokens.

    A plain launch does (as before). A repository launch runs code the user may never have read,
    so only when the user ticked the box (`binder_tokens` true) or an admin's pattern covers the
    repository.
    """
    repo = user_options.get("binder_repo")
    if not repo:
        return True
    if user_options.get(TOKENS_KEY) is True:
        return True
    return isinstance(repo, str) and token_launch_allowed(repo, patterns)

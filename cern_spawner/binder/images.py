"""Image names for built repositories: `<registry>/<prefix><slug>-<hash6>:<commit>`.

The slug makes names readable in the registry; the hash of the normalized repository URL keeps
two repositories with the same slug (forks, the same name on two hosts) apart. The tag is the
commit, so a name says exactly what was built and a lookup needs no index.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

SLUG_MAX = 40
# Git hosts whose repository paths are case-insensitive (github.com/Org/Repo is github.com/org/repo).
CASE_INSENSITIVE_HOSTS = frozenset({"github.com"})
# The OCI distribution spec's repository-name component and tag grammars.
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
# A registry host[:port]; a bare first component is a host only with a '.' or ':' or "localhost".
_REGISTRY = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?")
_NAME_MAX = 255  # the Docker reference limit on registry + repository


@dataclass(frozen=True)
class ImageRef:
    registry: str  # host[:port]
    repository: str  # the name inside the registry, e.g. binder/org-repo-1a2b3c
    tag: str

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}:{self.tag}"


def normalize_repo_url(repo_url: str) -> str:
    """The identity of a repository: scheme and host lowercased, the host's trailing '.' and a
    default port dropped, no trailing '/' or '.git'.

    The path keeps its case (git servers other than GitHub's may tell `Repo` from `repo`), except on
    hosts known to ignore it (`CASE_INSENSITIVE_HOSTS`), so one repository makes one image.
    """
    parts = urlsplit(repo_url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is not None and (scheme, port) not in (("https", 443), ("http", 80)):
        host = f"{host}:{port}"
    path = parts.path.rstrip("/")
    if path.endswith(".git"):
        path = path[: -len(".git")]
    if host in CASE_INSENSITIVE_HOSTS:
        path = path.lower()
    return f"{scheme}://{host}{path}"


def repo_hash(repo_url: str) -> str:
    """First 6 hex digits of sha256 of the normalized repository URL."""
    return hashlib.sha256(normalize_repo_url(repo_url).encode()).hexdigest()[:6]


def slug_for(repo_url: str) -> str:
    """The repository path lowercased, runs of other characters made one '-', at most 40 characters."""
    path = urlsplit(normalize_repo_url(repo_url)).path
    slug = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")
    return slug[:SLUG_MAX].rstrip("-") or "repo"


def image_name(registry: str, prefix: str, repo_url: str, commit: str) -> str:
    """`<registry>/<prefix><slug>-<hash6>:<commit>`; ValueError when the configuration (registry,
    prefix) cannot make a valid OCI reference."""
    registry = registry.strip().rstrip("/")
    if not _REGISTRY.fullmatch(registry):
        raise ValueError(f"binder registry {registry!r} is not a host[:port] (no scheme, no path)")
    repository = f"{prefix}{slug_for(repo_url)}-{repo_hash(repo_url)}"
    if not _REPOSITORY.fullmatch(repository):
        raise ValueError(
            f"binder image prefix {prefix!r} makes the invalid repository name {repository!r}: "
            "use lowercase letters, digits, '.', '_', '-' and '/' (e.g. 'binder/' or 'binder-')"
        )
    if not _TAG.fullmatch(commit):
        raise ValueError(f"{commit!r} cannot be an image tag")
    if len(registry) + 1 + len(repository) > _NAME_MAX:
        raise ValueError(f"image name {registry}/{repository} is longer than {_NAME_MAX} characters")
    return f"{registry}/{repository}:{commit}"


def split_image(image: str) -> ImageRef:
    """`host[:port]/repository:tag` into its parts. Digests and registry-less names are refused:
    binder images are always named by `image_name`."""
    registry, slash, rest = image.partition("/")
    repository, colon, tag = rest.rpartition(":")
    if not slash or not colon or not _REGISTRY.fullmatch(registry) or "@" in image:
        raise ValueError(f"{image!r} is not of the form <registry>/<repository>:<tag>")
    if not _REPOSITORY.fullmatch(repository) or not _TAG.fullmatch(tag):
        raise ValueError(f"{image!r} has an invalid repository name or tag")
    return ImageRef(registry, repository, tag)

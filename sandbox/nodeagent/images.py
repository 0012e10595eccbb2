"""Pull an image of the sandbox's own registry into a container's home directory.

The sandbox runs no image root filesystem: a container's command runs from the host. What an
image of the sandbox registry adds (the sandbox builder's images: a repository's files under
/home/jovyan) is unpacked into the home directory the container gets mounted at /home/jovyan.
Manifests and blobs are checked against their digests; tar members that would land outside the
home directory, devices, hard links and symlinks leaving it are refused.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import posixpath
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from ..builder import oci

TIMEOUT = 30
MAX_BLOB = 512 * 1024 * 1024  # a repository's files; more is no test repository


class ImageError(Exception):
    """Reason (ErrImagePull, …) and a message a user can read, as a kubelet reports them."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


class UnsafeMember(ValueError):
    pass


def sandbox_registries(state: Path) -> set[str]:
    """The registry hosts (host:port) of this sandbox, from sandbox.json: read at each pull,
    since `up` starts the registry after the node agent."""
    try:
        current = json.loads((state / "sandbox.json").read_text())
    except (OSError, ValueError):
        return set()
    registry = current.get("registry") or {}
    return {registry["host"]} if registry.get("host") else set()


def member_target(member: tarfile.TarInfo, prefix: str = oci.HOME) -> str | None:
    """The path of `member` relative to the home directory, None when it lies outside home (the
    sandbox has no root filesystem to put it in); UnsafeMember when it must not be unpacked."""
    name = member.name
    if name.startswith("/") or "\\" in name or "\0" in name:
        raise UnsafeMember(f"{name!r}: absolute or odd path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeMember(f"{name!r}: '..' in the path")
    if not (member.isreg() or member.isdir() or member.issym()):
        raise UnsafeMember(f"{name!r}: only files, directories and symlinks are unpacked")
    home = prefix.split("/")
    if parts[: len(home)] != home:
        return None
    relative = "/".join(parts[len(home) :])
    if member.issym():
        link = member.linkname
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(relative), link))
        if link.startswith("/") or resolved == ".." or resolved.startswith("../"):
            raise UnsafeMember(f"{name!r}: symlink to {link!r} leaves the home directory")
    return relative


def unpack(layer: bytes, home: Path, owner: tuple[int, int]) -> int:
    """Unpack a (gzipped) layer's home/jovyan/ part into `home`; returns the number of entries."""
    if layer[:2] == b"\x1f\x8b":
        layer = gzip.decompress(layer)
    count = 0
    with tarfile.open(fileobj=io.BytesIO(layer), mode="r:") as tar:
        for member in tar:
            relative = member_target(member)
            if not relative:
                continue  # outside home, or home itself
            target = home / relative
            _check_parents(home, target)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                target.chmod(0o700 | (member.mode & 0o755))
            elif member.issym():
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.is_symlink() or target.exists():
                    target.unlink()
                os.symlink(member.linkname, target)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.is_symlink():
                    target.unlink()  # never write through a link
                with tar.extractfile(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                target.chmod(0o600 | (member.mode & 0o755))  # no setuid/setgid/sticky bits
            os.chown(target, *owner, follow_symlinks=False)
            count += 1
    return count


def _check_parents(home: Path, target: Path) -> None:
    """An earlier symlink member must not redirect a later one (`a -> .`, then `a/../x`…)."""
    current = home
    for part in target.relative_to(home).parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise UnsafeMember(f"{target.relative_to(home)}: a parent directory is a symlink")


def _get(url: str, accept: str | None = None) -> tuple[bytes, dict]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        body = response.read(MAX_BLOB + 1)
        if len(body) > MAX_BLOB:
            raise ImageError("ErrImagePull", f"{url}: larger than {MAX_BLOB} bytes")
        return body, dict(response.headers)


def _verified(data: bytes, digest: str, what: str) -> bytes:
    algorithm, _, expected = digest.partition(":")
    if algorithm != "sha256" or hashlib.sha256(data).hexdigest() != expected:
        raise ImageError("ErrImagePull", f"{what} does not match its digest {digest}")
    return data


def pull(image: str, home: Path, owner: tuple[int, int]) -> dict:
    """Fetch `image` (plain HTTP: the sandbox registry has no TLS) and unpack it into `home`.
    Returns {"digest", "entries", "labels"}; raises ImageError."""
    ref = oci.parse_reference(image)
    base = f"http://{ref.host}/v2/{ref.repository}"
    try:
        body, headers = _get(f"{base}/manifests/{ref.reference}", ", ".join(oci.MANIFEST_TYPES))
    except urllib.error.HTTPError as e:
        if e.code == 404:
            raise ImageError(
                "ErrImagePull",
                f'Failed to pull image "{image}": {ref.host}/{ref.repository}:'
                f" not found (the sandbox registry has no such image)",
            ) from e
        raise ImageError("ErrImagePull", f'Failed to pull image "{image}": HTTP {e.code}') from e
    except (OSError, ValueError) as e:
        raise ImageError("ErrImagePull", f'Failed to pull image "{image}": {e}') from e
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    if ref.digest:
        _verified(body, ref.digest, "the manifest")
    try:
        manifest = json.loads(body)
        media = manifest.get("mediaType") or headers.get("Content-Type", "")
        if media not in oci.MANIFEST_TYPES:
            raise ValueError(f"manifest type {media!r} (an index or an old schema) is not supported")
        blobs = [manifest["config"], *manifest["layers"]]
        contents = []
        for blob in blobs:
            data, _ = _get(f"{base}/blobs/{blob['digest']}")
            contents.append(_verified(data, blob["digest"], f"blob {blob['digest']}"))
        config = json.loads(contents[0])
        home.mkdir(parents=True, exist_ok=True)
        entries = sum(unpack(layer, home, owner) for layer in contents[1:])
    except ImageError:
        raise
    except UnsafeMember as e:
        raise ImageError("ErrImagePull", f'Image "{image}" refused: {e}') from e
    except (OSError, ValueError, KeyError, TypeError, tarfile.TarError) as e:
        raise ImageError("ErrImagePull", f'Failed to pull image "{image}": {e}') from e
    labels = (config.get("config") or {}).get("Labels") or {}
    return {"digest": digest, "entries": entries, "labels": labels}

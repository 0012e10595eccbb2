"""OCI pieces shared by the sandbox builder (push) and the node agent (pull): image references,
digests, the one-layer image of a directory, and the distribution API's upload calls."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
# What a pull accepts: OCI, and Docker's schema 2 that other pushers write.
MANIFEST_TYPES = (MANIFEST_TYPE, "application/vnd.docker.distribution.manifest.v2+json")
HOME = "home/jovyan"  # repo2docker's REPO_DIR is $HOME; the layer keeps it as a path from /
IMAGE_UID = 1000

_HOST = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class Reference:
    host: str  # host[:port]
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What goes after /manifests/: the digest when there is one, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        tail = f"@{self.digest}" if self.digest else f":{self.tag or 'latest'}"
        return f"{self.host}/{self.repository}{tail}"


def parse_reference(image: str) -> Reference | None:
    """`host[:port]/path[:tag][@sha256:…]`, or None for a name without a registry host
    (`jupyter/base-notebook`, `python:3.12`): those are not pulled from a registry we know."""
    rest, _, digest = image.partition("@")
    host, slash, path = rest.partition("/")
    if not slash or not ("." in host or ":" in host or host == "localhost"):
        return None
    tag = None
    if ":" in path.rsplit("/", 1)[-1]:
        path, tag = path.rsplit(":", 1)
        if not _TAG.fullmatch(tag):
            raise ValueError(f"{image!r}: bad tag {tag!r}")
    if not _HOST.fullmatch(host):
        raise ValueError(f"{image!r}: bad registry host {host!r}")
    if not all(_COMPONENT.fullmatch(part) for part in path.split("/")):
        raise ValueError(f"{image!r}: bad repository {path!r}")
    if digest and not _DIGEST.fullmatch(digest):
        raise ValueError(f"{image!r}: bad digest {digest!r}")
    return Reference(host, path, tag, digest or None)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type: str, data: bytes) -> dict:
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data)}


def repository_layer(root: Path, mtime: int = 0) -> tuple[bytes, bytes]:
    """(tar, gzipped tar) of the files under `root` (without .git) at home/jovyan/, owned by the
    image user. Reproducible: sorted entries, one mtime, no user names, gzip without a timestamp."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        parts = HOME.split("/")
        for depth in range(1, len(parts) + 1):
            tar.addfile(_dir_entry("/".join(parts[:depth]), mtime))
        for path in _walk(root):
            relative = path.relative_to(root).as_posix()
            info = tar.gettarinfo(str(path), arcname=f"{HOME}/{relative}")
            info.uid = info.gid = IMAGE_UID
            info.uname = info.gname = ""
            info.mtime = mtime
            if info.isreg():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            elif info.isdir() or info.issym():
                tar.addfile(info)
            # Anything else (a socket, a fifo) is no repository content: left out.
    data = raw.getvalue()
    return data, gzip.compress(data, mtime=0)


def _dir_entry(name: str, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, mtime
    info.uid = info.gid = IMAGE_UID if name == HOME else 0
    return info


def _walk(root: Path):
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        base = Path(directory)
        if base != root:
            yield base
        for name in sorted(files):
            yield base / name
        # os.walk lists a symlink to a directory among dirs without entering it: keep it as a link.
        for name in [d for d in dirs if (base / d).is_symlink()]:
            dirs.remove(name)
            yield base / name


def image_config(diff_id: str, labels: dict[str, str], created: str) -> dict:
    return {
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": {"User": str(IMAGE_UID), "WorkingDir": f"/{HOME}", "Labels": labels},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created, "created_by": "sandbox builder: the repository's files"}],
    }


def image_manifest(config: bytes, layers: list[bytes], labels: dict[str, str] | None = None) -> dict:
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": descriptor(CONFIG_TYPE, config),
        "layers": [descriptor(LAYER_TYPE, layer) for layer in layers],
    }
    if labels:
        manifest["annotations"] = labels
    return manifest


def encode(document: dict) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


class PushError(Exception):
    pass


def push(session, ref: Reference, config: bytes, layers: list[bytes], manifest: bytes, scheme="http") -> str:
    """Upload the blobs (skipping those the registry has) and PUT the manifest; returns its digest.
    `session` is a requests.Session (credentials on it, if the registry wants any)."""
    base = f"{scheme}://{ref.host}/v2/{ref.repository}"
    for blob in [config, *layers]:
        digest = sha256(blob)
        if session.head(f"{base}/blobs/{digest}", timeout=30).status_code == 200:
            continue
        started = session.post(f"{base}/blobs/uploads/", timeout=30)
        if started.status_code != 202:
            raise PushError(f"starting an upload: HTTP {started.status_code} {started.text[:300]}")
        location = started.headers.get("Location", "")
        if not location.startswith(("http://", "https://")):
            location = f"{scheme}://{ref.host}{location}"
        separator = "&" if "?" in location else "?"
        done = session.put(
            f"{location}{separator}digest={digest}",
            data=blob,
            headers={"Content-Type": "application/octet-stream"},
            timeout=120,
        )
        if done.status_code != 201:
            raise PushError(f"uploading {digest}: HTTP {done.status_code} {done.text[:300]}")
    put = session.put(
        f"{base}/manifests/{ref.reference}",
        data=manifest,
        headers={"Content-Type": MANIFEST_TYPE},
        timeout=30,
    )
    if put.status_code != 201:
        raise PushError(f"putting the manifest: HTTP {put.status_code} {put.text[:300]}")
    return put.headers.get("Docker-Content-Digest") or sha256(manifest)


def delete(session, ref: Reference, scheme="http") -> bool:
    """Delete the image's manifest (found by its tag) so the next launch must build it again; False
    when there was none. The registry must allow deletes (the sandbox's does). Raises PushError when
    the registry answers anything else, or still has the tag afterwards."""
    manifests = f"{scheme}://{ref.host}/v2/{ref.repository}/manifests"
    accept = {"Accept": ", ".join(MANIFEST_TYPES)}
    found = session.head(f"{manifests}/{ref.reference}", headers=accept, timeout=10)
    if found.status_code == 404:
        return False
    if found.status_code != 200:
        raise PushError(f"looking up {ref}: HTTP {found.status_code}")
    deleted = session.delete(f"{manifests}/{found.headers['Docker-Content-Digest']}", timeout=10)
    if deleted.status_code != 202:
        raise PushError(f"deleting {ref}: HTTP {deleted.status_code} {deleted.text[:300]}")
    if session.head(f"{manifests}/{ref.reference}", headers=accept, timeout=10).status_code != 404:
        raise PushError(f"{ref} is still in the registry after its deletion")
    return True

"""Turn a pod's volumes into per-pod directories, as the kubelet does before containers start,
and keep the API-backed ones (secret, configMap, downwardAPI, projected) current while the pod runs.

Those four are written as the kubelet's AtomicWriter writes them: the files live in a hidden
`..<timestamp>` directory, `..data` is a symlink to it and each name the pod sees is a symlink to
`..data/<name>`. An update writes a new `..<timestamp>` directory, points `..data_tmp` at it and
renames that over `..data` (one atomic step: a reader sees the old or the new set, never a mix),
then removes the old directory. The volume's directory itself is what podexec bind-mounts, so a
running container sees the swap; a subPath mount binds one resolved file and stays stale, as in
a kubelet.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from kubernetes import client

from . import storage

log = logging.getLogger("sandbox.volumes")
DATA = "..data"
DATA_TMP = "..data_tmp"
# The kubelet renews a projected token at 80 % of its lifetime, or once it is 24 h old.
TOKEN_REFRESH_FRACTION = 0.8
TOKEN_REFRESH_MAX_AGE = 24 * 3600


class VolumeError(Exception):
    """A volume the sandbox cannot provide; the pod fails with this reason."""


def read_current(directory: Path) -> dict[str, tuple[bytes, int]]:
    """The files the volume shows now: relative path -> (content, permission bits)."""
    data = directory / DATA
    if not data.is_symlink():
        return {}
    current = {}
    base = data.resolve()
    for folder, _, names in os.walk(base):
        for name in names:
            path = Path(folder) / name
            current[str(path.relative_to(base))] = (path.read_bytes(), path.stat().st_mode & 0o7777)
    return current


def _visible(files: dict[str, bytes]) -> set[str]:
    # Like the kubelet, a nested path ("conf/app.yaml") shows as one symlink for its top directory.
    return {relative.split("/", 1)[0] for relative in files}


def write_atomic(
    directory: Path, files: dict[str, bytes], mode: int | dict[str, int], owner: tuple[int, int]
) -> bool:
    """Make `directory` show exactly `files`, swapping `..data` atomically; False if nothing changed.
    `mode`: the files' permission bits, or each file's (relative path -> bits)."""
    modes = mode if isinstance(mode, dict) else dict.fromkeys(files, mode)
    wanted = {relative: (content, modes[relative]) for relative, content in files.items()}
    if (directory / DATA).is_symlink() and read_current(directory) == wanted:
        return False
    if not directory.is_dir():
        directory.mkdir(parents=True)
        os.chown(directory, *owner)
    old = os.readlink(directory / DATA) if (directory / DATA).is_symlink() else None
    stamp = time.strftime("%Y_%m_%d_%H_%M_%S", time.gmtime())
    fresh = Path(tempfile.mkdtemp(prefix=f"..{stamp}.", dir=directory))
    fresh.chmod(0o755)
    for relative, content in files.items():
        path = fresh / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(modes[relative])
    for folder, names, others in os.walk(fresh):
        for name in [*names, *others]:
            os.lchown(Path(folder) / name, *owner)
    os.lchown(fresh, *owner)
    tmp = directory / DATA_TMP
    tmp.unlink(missing_ok=True)  # left by a swap that was interrupted
    tmp.symlink_to(fresh.name)
    os.lchown(tmp, *owner)
    os.rename(tmp, directory / DATA)
    visible = _visible(files)
    for name in visible:
        link = directory / name
        if not link.is_symlink():
            link.symlink_to(f"{DATA}/{name}")
            os.lchown(link, *owner)
    for entry in directory.iterdir():
        if not entry.name.startswith("..") and entry.name not in visible and entry.is_symlink():
            entry.unlink()  # a key that is gone from the source
    if old and old != fresh.name:
        shutil.rmtree(directory / old, ignore_errors=True)
    return True


def _select(data: dict[str, bytes], items, optional_name: str, modes: dict[str, int]) -> dict[str, bytes]:
    """The keys `items` names, at their paths; an item's own `mode` goes into `modes` (it wins over
    the volume's defaultMode, as the kubelet has it)."""
    if not items:
        return data
    selected = {}
    for item in items:
        if item.key not in data:
            raise VolumeError(f"{optional_name} has no key {item.key!r}")
        selected[item.path] = data[item.key]
        if item.mode is not None:
            modes[item.path] = item.mode
    return selected


def _with_default(files: dict[str, bytes], modes: dict[str, int], default_mode: int | None) -> dict[str, int]:
    return {path: modes.get(path, default_mode or 0o644) for path in files}


def _secret(api: client.CoreV1Api, namespace: str, name: str, optional: bool) -> dict[str, bytes]:
    try:
        secret = api.read_namespaced_secret(name, namespace)
    except client.ApiException as e:
        if e.status == 404 and optional:
            return {}
        raise VolumeError(f"secret {name!r} not found") from e
    return {key: base64.b64decode(value) for key, value in (secret.data or {}).items()}


def _config_map(api: client.CoreV1Api, namespace: str, name: str, optional: bool) -> dict[str, bytes]:
    try:
        config_map = api.read_namespaced_config_map(name, namespace)
    except client.ApiException as e:
        if e.status == 404 and optional:
            return {}
        raise VolumeError(f"configmap {name!r} not found") from e
    data = {key: value.encode() for key, value in (config_map.data or {}).items()}
    data.update({key: base64.b64decode(value) for key, value in (config_map.binary_data or {}).items()})
    return data


def _field(pod: client.V1Pod, path: str) -> str:
    meta = pod.metadata
    simple = {
        "metadata.name": meta.name,
        "metadata.namespace": meta.namespace,
        "metadata.uid": meta.uid,
        "spec.nodeName": pod.spec.node_name,
        "spec.serviceAccountName": pod.spec.service_account_name,
        "status.podIP": pod.status.pod_ip if pod.status else None,
        "status.hostIP": pod.status.host_ip if pod.status else None,
    }
    if path in simple:
        return simple[path] or ""
    for prefix, mapping in (("metadata.labels", meta.labels), ("metadata.annotations", meta.annotations)):
        if path == prefix:
            return "\n".join(f'{k}="{v}"' for k, v in sorted((mapping or {}).items()))
        if path.startswith(prefix + "['") and path.endswith("']"):
            return (mapping or {}).get(path[len(prefix) + 2 : -2], "")
    raise VolumeError(f"field {path!r} is not supported by the sandbox")


def token_due(token: bytes, now: float, requested: float) -> bool:
    """Whether a projected token must be renewed: past 80 % of the lifetime asked for (`requested`
    seconds; the API server may extend the token's own `exp`, the kubelet goes by the request),
    24 h old, or unreadable."""
    try:
        payload = token.split(b".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
        issued, expires = float(claims["iat"]), float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError, binascii.Error):
        return True
    lifetime = min(expires - issued, requested)
    return now >= issued + min(TOKEN_REFRESH_FRACTION * lifetime, TOKEN_REFRESH_MAX_AGE)


def _token(api: client.CoreV1Api, pod: client.V1Pod, source, current: bytes | None) -> bytes:
    seconds = source.expiration_seconds or 3600  # the API's default for a projected token
    if current is not None and not token_due(current, time.time(), seconds):
        return current
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(
            audiences=[source.audience] if source.audience else [],
            expiration_seconds=seconds,
            bound_object_ref=client.V1BoundObjectReference(
                kind="Pod", api_version="v1", name=pod.metadata.name, uid=pod.metadata.uid
            ),
        )
    )
    account = pod.spec.service_account_name or "default"
    result = api.create_namespaced_service_account_token(account, pod.metadata.namespace, request)
    return result.status.token.encode()


def updatable(volume: client.V1Volume) -> bool:
    """The volume types whose content follows the API (the kubelet rewrites them at each sync)."""
    return any(
        getattr(volume, kind) is not None for kind in ("secret", "config_map", "downward_api", "projected")
    )


def contents(api: client.CoreV1Api, pod: client.V1Pod, volume: client.V1Volume, target: Path):
    """(files, each file's mode) of an updatable volume as the API says now; current tokens are
    kept until due."""
    namespace = pod.metadata.namespace
    modes: dict[str, int] = {}
    if volume.secret is not None:
        source = volume.secret
        secret = _secret(api, namespace, source.secret_name, bool(source.optional))
        files = _select(secret, source.items, source.secret_name, modes)
        return files, _with_default(files, modes, source.default_mode)
    if volume.config_map is not None:
        source = volume.config_map
        data = _config_map(api, namespace, source.name, bool(source.optional))
        files = _select(data, source.items, source.name, modes)
        return files, _with_default(files, modes, source.default_mode)
    if volume.downward_api is not None:
        data = {}
        for item in volume.downward_api.items:
            data[item.path] = _field(pod, item.field_ref.field_path).encode()
            if item.mode is not None:
                modes[item.path] = item.mode
        return data, _with_default(data, modes, volume.downward_api.default_mode)
    data: dict[str, bytes] = {}
    current = read_current(target)
    for source in volume.projected.sources or []:
        if source.service_account_token is not None:
            path = source.service_account_token.path
            kept = current.get(path, (None, 0))[0]
            data[path] = _token(api, pod, source.service_account_token, kept)
        elif source.config_map is not None:
            cm = source.config_map
            data.update(
                _select(_config_map(api, namespace, cm.name, bool(cm.optional)), cm.items, cm.name, modes)
            )
        elif source.secret is not None:
            sec = source.secret
            data.update(
                _select(_secret(api, namespace, sec.name, bool(sec.optional)), sec.items, sec.name, modes)
            )
        elif source.downward_api is not None:
            for item in source.downward_api.items:
                data[item.path] = _field(pod, item.field_ref.field_path).encode()
                if item.mode is not None:
                    modes[item.path] = item.mode
    return data, _with_default(data, modes, volume.projected.default_mode)


def _claim_directory(api: client.CoreV1Api, namespace: str, name: str, owner: tuple[int, int]) -> Path:
    """The directory of the PersistentVolume bound to the claim (the scheduler waits for the binding)."""
    try:
        claim = api.read_namespaced_persistent_volume_claim(name, namespace)
    except client.ApiException as e:
        raise VolumeError(f"persistentvolumeclaim {name!r} not found") from e
    if not claim.spec.volume_name:
        raise VolumeError(f"persistentvolumeclaim {name!r} is not bound")
    try:
        volume = api.read_persistent_volume(claim.spec.volume_name)
    except client.ApiException as e:
        raise VolumeError(f"persistentvolume {claim.spec.volume_name!r} not found") from e
    source = volume.spec.local or volume.spec.host_path
    if source is None:
        raise VolumeError(f"persistentvolume {volume.metadata.name!r} has a type the sandbox does not mount")
    path = Path(source.path)
    created = False
    if not path.is_dir():
        kind = (volume.spec.host_path.type or "") if volume.spec.host_path else None
        if kind not in ("", "DirectoryOrCreate"):
            raise VolumeError(
                f"persistentvolume {volume.metadata.name!r}: directory {str(path)!r} is missing"
            )
        path.mkdir(parents=True, exist_ok=True)  # as a container runtime creates a missing hostPath
        created = True
    if created or storage.provisioned_here(volume):
        # Ours to manage, as the kubelet applies fsGroup to a local volume. An existing hostPath
        # stays as it is; a new one goes to the pod's user (no image ran to prepare it).
        os.chown(path, *owner)
        path.chmod(0o2775)
    return path


def materialize(
    api: client.CoreV1Api, pod: client.V1Pod, root: Path, owner: tuple[int, int]
) -> dict[str, Path]:
    """Create a directory per volume under `root`; returns volume name -> host path."""
    namespace = pod.metadata.namespace
    paths: dict[str, Path] = {}
    for volume in pod.spec.volumes or []:
        target = root / volume.name
        if volume.empty_dir is not None:
            target.mkdir(parents=True, exist_ok=True)
            os.chown(target, *owner)
            target.chmod(0o2775)
        elif updatable(volume):
            files, mode = contents(api, pod, volume, target)
            write_atomic(target, files, mode, owner)
        elif volume.persistent_volume_claim is not None:
            target = _claim_directory(api, namespace, volume.persistent_volume_claim.claim_name, owner)
        elif volume.host_path is not None:
            target = Path(volume.host_path.path)
        else:
            raise VolumeError(f"volume {volume.name!r} has a type the sandbox does not provide")
        paths[volume.name] = target
    return paths


class RoundReads:
    """The API as one sync round sees it: each ConfigMap and Secret is read once, however many
    pods mount it (the kubelet keeps a cache of them for the same reason)."""

    def __init__(self, api: client.CoreV1Api):
        self.api = api
        self.answers: dict[tuple, object] = {}

    def _read(self, kind: str, name: str, namespace: str):
        key = (kind, namespace, name)
        if key not in self.answers:
            try:
                self.answers[key] = getattr(self.api, f"read_namespaced_{kind}")(name, namespace)
            except client.ApiException as e:
                self.answers[key] = e
        answer = self.answers[key]
        if isinstance(answer, client.ApiException):
            raise answer
        return answer

    def read_namespaced_config_map(self, name: str, namespace: str):
        return self._read("config_map", name, namespace)

    def read_namespaced_secret(self, name: str, namespace: str):
        return self._read("secret", name, namespace)

    def __getattr__(self, name: str):
        return getattr(self.api, name)  # token requests and the rest go through as they are


def refresh(api: client.CoreV1Api, pod: client.V1Pod, paths: dict[str, Path]) -> list[str]:
    """One sync of a running pod's updatable volumes; returns the names of those that changed.
    A source that cannot be read keeps its last content (as the kubelet does) and is logged."""
    changed = []
    for volume in pod.spec.volumes or []:
        target = paths.get(volume.name)
        if target is None or not updatable(volume) or not (target / DATA).is_symlink():
            continue  # not materialized yet, or its pod is being removed
        try:
            stat = target.stat()
            files, mode = contents(api, pod, volume, target)
            if write_atomic(target, files, mode, (stat.st_uid, stat.st_gid)):
                changed.append(volume.name)
        except (VolumeError, client.ApiException, OSError) as e:
            log.warning(
                "pod %s/%s: volume %s not updated: %s",
                pod.metadata.namespace,
                pod.metadata.name,
                volume.name,
                e,
            )
    return changed


def remove(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)

"""Turn a pod's volumes into per-pod directories, as the kubelet does before containers start."""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

from kubernetes import client


class VolumeError(Exception):
    """A volume the sandbox cannot provide; the pod fails with this reason."""


def _write_files(directory: Path, files: dict[str, bytes], mode: int, owner: tuple[int, int]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for relative, content in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)
        os.chown(path, *owner)


def _select(data: dict[str, bytes], items, optional_name: str) -> dict[str, bytes]:
    if not items:
        return data
    selected = {}
    for item in items:
        if item.key not in data:
            raise VolumeError(f"{optional_name} has no key {item.key!r}")
        selected[item.path] = data[item.key]
    return selected


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


def _token(api: client.CoreV1Api, pod: client.V1Pod, source) -> bytes:
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(
            audiences=[source.audience] if source.audience else [],
            expiration_seconds=source.expiration_seconds or 3600,
            bound_object_ref=client.V1BoundObjectReference(
                kind="Pod", api_version="v1", name=pod.metadata.name, uid=pod.metadata.uid
            ),
        )
    )
    account = pod.spec.service_account_name or "default"
    result = api.create_namespaced_service_account_token(account, pod.metadata.namespace, request)
    return result.status.token.encode()


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
        elif volume.secret is not None:
            source = volume.secret
            data = _select(
                _secret(api, namespace, source.secret_name, bool(source.optional)),
                source.items,
                source.secret_name,
            )
            _write_files(target, data, source.default_mode or 0o644, owner)
        elif volume.config_map is not None:
            source = volume.config_map
            data = _select(
                _config_map(api, namespace, source.name, bool(source.optional)), source.items, source.name
            )
            _write_files(target, data, source.default_mode or 0o644, owner)
        elif volume.downward_api is not None:
            data = {
                item.path: _field(pod, item.field_ref.field_path).encode()
                for item in volume.downward_api.items
            }
            _write_files(target, data, volume.downward_api.default_mode or 0o644, owner)
        elif volume.projected is not None:
            data: dict[str, bytes] = {}
            for source in volume.projected.sources or []:
                if source.service_account_token is not None:
                    data[source.service_account_token.path] = _token(api, pod, source.service_account_token)
                elif source.config_map is not None:
                    cm = source.config_map
                    data.update(
                        _select(_config_map(api, namespace, cm.name, bool(cm.optional)), cm.items, cm.name)
                    )
                elif source.secret is not None:
                    sec = source.secret
                    data.update(
                        _select(_secret(api, namespace, sec.name, bool(sec.optional)), sec.items, sec.name)
                    )
                elif source.downward_api is not None:
                    for item in source.downward_api.items:
                        data[item.path] = _field(pod, item.field_ref.field_path).encode()
            _write_files(target, data, volume.projected.default_mode or 0o644, owner)
        elif volume.persistent_volume_claim is not None:
            # A claim's data outlives the pod, like a real volume: keyed by namespace and claim.
            target = root.parent.parent / "claims" / namespace / volume.persistent_volume_claim.claim_name
            target.mkdir(parents=True, exist_ok=True)
            os.chown(target, *owner)
        elif volume.host_path is not None:
            target = Path(volume.host_path.path)
        else:
            raise VolumeError(f"volume {volume.name!r} has a type the sandbox does not provide")
        paths[volume.name] = target
    return paths


def remove(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)

"""The per-user Kubernetes Secret holding exchanged tokens, mounted into the notebook pod as files.

Files, not environment variables: environment variables leak into child processes and `/proc`, and
cannot be updated in a running pod, while a mounted Secret is updated by the kubelet after a refresh.
Only exchanged tokens go in; never the refresh token nor the hub's own access token.
"""

from __future__ import annotations

import base64
import re

from kubernetes_asyncio.client import (
    ApiClient,
    CoreV1Api,
    V1Pod,
    V1SecretVolumeSource,
    V1Volume,
    V1VolumeMount,
)
from kubernetes_asyncio.client.exceptions import ApiException
from kubespawner.slugs import safe_slug

PREFIX = "cern-tokens-"
VOLUME = "cern-tokens"
# Owner and group (the pod's fsGroup) may read; nobody writes.
FILE_MODE = 0o440
# Secret data keys must match [-._a-zA-Z0-9]+.
_KEY_UNSAFE = re.compile(r"[^-._a-zA-Z0-9]")


def token_secret_name(username: str) -> str:
    """`cern-tokens-<username>`, the username escaped as KubeSpawner does (DNS label, hash when altered)."""
    return PREFIX + safe_slug(username, max_length=63 - len(PREFIX))


def token_file_name(audience: str) -> str:
    """`<audience>.token`, with characters not allowed in Secret keys replaced by `_`."""
    return _KEY_UNSAFE.sub("_", audience) + ".token"


def tokens_from_auth_state(auth_state: dict | None) -> dict[str, str]:
    """Audience → exchanged access token, from auth_state["exchanged_tokens"] (CERNAuthenticator)."""
    exchanged = (auth_state or {}).get("exchanged_tokens") or {}
    return {
        audience: entry["access_token"]
        for audience, entry in exchanged.items()
        if isinstance(entry, dict) and isinstance(entry.get("access_token"), str)
    }


def token_secret_manifest(username: str, namespace: str, tokens: dict[str, str]) -> dict:
    """The Secret for `username` in `namespace`: one `<audience>.token` entry per exchanged token."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": token_secret_name(username),
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/managed-by": "cern-spawner",
                "app.kubernetes.io/component": "user-tokens",
                "hub.jupyter.org/username": safe_slug(username, max_length=63),
            },
        },
        "data": {
            token_file_name(audience): base64.b64encode(token.encode()).decode()
            for audience, token in sorted(tokens.items())
        },
    }


class TokenSecretError(Exception):
    """The Secret could not be written; the message names it and the API server's answer."""


async def apply_token_secret(api_client: ApiClient, manifest: dict) -> None:
    """Create the Secret, or replace it when it exists (its tokens are renewed at every refresh)."""
    core = CoreV1Api(api_client)
    name, namespace = manifest["metadata"]["name"], manifest["metadata"]["namespace"]
    try:
        try:
            await core.create_namespaced_secret(namespace, manifest)
        except ApiException as e:
            if e.status != 409:
                raise
            await core.replace_namespaced_secret(name, namespace, manifest)
    except ApiException as e:
        raise TokenSecretError(f"Secret {namespace}/{name}: HTTP {e.status} {e.reason}") from e


async def delete_token_secret(api_client: ApiClient, username: str, namespace: str) -> None:
    """Delete the user's Secret; already gone is fine."""
    name = token_secret_name(username)
    try:
        await CoreV1Api(api_client).delete_namespaced_secret(name, namespace)
    except ApiException as e:
        if e.status != 404:
            raise TokenSecretError(f"Secret {namespace}/{name}: HTTP {e.status} {e.reason}") from e


async def write_user_tokens(api_client: ApiClient, username: str, namespace: str, auth_state) -> str | None:
    """Create or replace the user's Secret from auth_state; its name, or None when there is no token."""
    tokens = tokens_from_auth_state(auth_state)
    if not tokens:
        return None
    manifest = token_secret_manifest(username, namespace, tokens)
    await apply_token_secret(api_client, manifest)
    return manifest["metadata"]["name"]


def mount_token_secret(pod: V1Pod, secret_name: str, mount_path: str) -> None:
    """Add the Secret as a read-only volume of the notebook container (the first one).

    Added to the finished manifest rather than to the spawner's volume traits, which profiles may
    override: the mount survives any profile's volumes.
    """
    pod.spec.volumes = [
        *(pod.spec.volumes or []),
        V1Volume(name=VOLUME, secret=V1SecretVolumeSource(secret_name=secret_name, default_mode=FILE_MODE)),
    ]
    notebook = pod.spec.containers[0]
    notebook.volume_mounts = [
        *(notebook.volume_mounts or []),
        V1VolumeMount(name=VOLUME, mount_path=mount_path, read_only=True),
    ]


async def update_running_servers(user, auth_state: dict, log) -> None:
    """After a refresh, hand the new exchanged tokens to the user's running servers.

    Called by the authenticator, which knows the user but not Kubernetes; each spawner offering
    `update_token_secret(auth_state)` (CERNSpawner) rewrites its Secret. Failures are logged: the
    refresh itself succeeded, and the old tokens stay until the next one.
    """
    for spawner in list(getattr(user, "spawners", {}).values()):
        update = getattr(spawner, "update_token_secret", None)
        if update is None or not spawner.active:
            continue
        try:
            await update(auth_state)
        except Exception as e:  # one server's failure must not end the user's session
            log.warning("Could not update the tokens of %s's server %r: %s", user.name, spawner.name, e)

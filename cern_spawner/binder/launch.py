"""From a checked repository and ref to an image in the registry: resolve, look up, build if absent.

The registry is the truth: an image counts as there only when its manifest is, before and after a
build, so a build that "succeeded" without pushing is still a failure.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .. import metrics
from .build import Report, run_build
from .config import BinderConfig
from .errors import BinderError, NothingPushed
from .images import image_name
from .registry import RegistryClient
from .resolve import resolve_ref


@dataclass(frozen=True)
class Launch:
    repo_url: str
    ref: str  # as the user wrote it
    commit: str  # what it resolved to
    image: str  # <registry>/<prefix><slug>-<hash6>:<commit>
    built: bool  # True when this launch ran (or joined) a build


def registry_client(config: BinderConfig) -> RegistryClient:
    """A client for the hub's lookups, with the credentials file read now (rotations apply).

    The file is `{"username": ..., "password": ...}` or Docker's config.json (a
    `kubernetes.io/dockerconfigjson` Secret: `{"auths": {"<registry>": {"auth": base64(user:pass)}}}`),
    so the push Secret can be mounted into the hub as it is.
    """
    username = password = None
    if config.registry_credentials_path:
        path = config.registry_credentials_path
        try:
            with open(path) as f:
                data = json.load(f)
            username, password = _credentials(data, config.registry)
        except (OSError, ValueError, KeyError, TypeError, binascii.Error) as e:
            # Never the content: it holds the password.
            raise BinderError(
                f"The hub's registry credentials ({path}) cannot be read as "
                f'{{"username": ..., "password": ...}} or a Docker config.json with an entry for '
                f"{config.registry} ({e.__class__.__name__}): ask the hub's operators."
            ) from None
    return RegistryClient(username, password, http_registries=config.http_registries)


def _credentials(data: dict, registry: str) -> tuple[str, str]:
    if "auths" not in data:
        return str(data["username"]), str(data["password"])
    auths = data["auths"]
    keys = [key for key in (registry, f"https://{registry}", f"http://{registry}") if key in auths]
    entry = auths[keys[0] if keys else registry]  # KeyError: no entry for this registry
    if "auth" in entry:
        username, _, password = base64.b64decode(entry["auth"], validate=True).decode().partition(":")
        if not password:
            raise ValueError("auth holds no password")
        return username, password
    return str(entry["username"]), str(entry["password"])


async def prepare_image(
    config: BinderConfig,
    *,
    repo_url: str,
    ref: str,
    user: str,
    namespace: str,
    core,
    registry: RegistryClient,
    report: Report,
    resolve: Callable[..., Awaitable[str]] = resolve_ref,
    build: Callable[..., Awaitable[None]] = run_build,
) -> Launch:
    """Resolve `ref`, reuse the image when the registry has it, else build it (or join its build).

    `repo_url` and `ref` must already be checked (refs.parse_spec / check_binder_options).
    Raises BinderError subclasses whose messages are for the user.
    """
    commit = await resolve(repo_url, ref, time_limit=config.resolve_timeout)
    report(f"Resolved {ref} of {repo_url} to {commit[:12]}")
    try:
        image = image_name(config.registry, config.image_prefix, repo_url, commit)
    except ValueError as e:
        raise BinderError(f"The hub's Binder configuration cannot name images: {e}") from e
    if await registry.manifest_exists(image):
        report("Image found in the registry; no build needed.")
        return Launch(repo_url, ref, commit, image, built=False)
    report(f"No image of {commit[:12]} in the registry yet; building it.")
    with metrics.timed(metrics.BINDER_BUILD_SECONDS, metrics.build_result):
        await build(
            core,
            config,
            repo_url=repo_url,
            ref=ref,
            commit=commit,
            image=image,
            user=user,
            namespace=namespace,
            report=report,
        )
        if not await registry.manifest_exists(image):
            raise NothingPushed(
                f"The build finished but no image was pushed to {config.registry}; the builder may lack "
                "push rights there (check the push secret), or the build was stopped. Try again later."
            )
    report("Image built and pushed.")
    return Launch(repo_url, ref, commit, image, built=True)

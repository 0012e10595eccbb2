"""Build pods: one per image, shared by everyone who launches the same commit at the same time.

A pod carries its image's key as a label, so a second launch of the same commit finds it and joins
it instead of starting another; a new build is admitted under the limits and named per user slot
(`admission`). Whoever sees a build finish deletes
its pod; a waiter that is cancelled (the user left the spawn) just stops waiting, because others
may share the pod — it runs to its end (or its activeDeadlineSeconds) and is deleted by the next
waiter that sees it finish, or by `cleanup_finished_builds` at the next build. The registry, not
the pod, says whether an image exists: a waiter whose pod vanished returns and lets its caller ask.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import logging
import math
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable

from kubernetes_asyncio.client import ApiException

from ..waiting import until
from .admission import IMAGE_LABEL, Seen, Slot, admission_lock, choose_slot, image_key, slot_pod_name
from .buildlogs import clean_line, log_lines
from .config import BinderConfig
from .errors import BinderRefused, BuildError, BuildFailed

log = logging.getLogger(__name__)

COMPONENT_LABEL = "app.kubernetes.io/component"
COMPONENT = "binder-build"
USER_LABEL = "cern-spawner.cern.ch/build-user"
ANNOTATION = "cern-spawner.cern.ch/"
CONTAINER = "builder"
PUSH_CONFIG_DIR = "/var/run/cern-spawner/push-config"
FINISHED_TTL = 300.0  # seconds a finished build pod may linger before the cleanup removes it
_TERMINAL = ("Succeeded", "Failed")
GONE = "The build pod was removed before this launch saw it end; checking the registry for the image…"
# A builder container waiting for one of these reasons never starts by itself: a wrong builder image
# or configuration. Pull failures are retried by the kubelet (a registry blip passes), so they end
# the build only after IMAGE_PULL_PATIENCE seconds, not at build_timeout (an hour by default).
_NEVER_STARTS = (
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
)
_PULL_TROUBLE = ("ErrImagePull", "ImagePullBackOff")
IMAGE_PULL_PATIENCE = 120.0
_PLACEHOLDER = re.compile(r"\{(repo_url|ref|commit|image)\}")
_LABEL_SAFE = re.compile(r"[a-z0-9]")
_LABEL_VALUE = re.compile(r"[a-z0-9]([-a-z0-9_.]{0,61}[a-z0-9])?")

Report = Callable[[str], object]


def user_label(user: str) -> str:
    """A label value for a user name: [a-z0-9] kept, every other byte as -xx; hashed when too long."""
    escaped = "".join(
        c if _LABEL_SAFE.fullmatch(c) else "".join(f"-{b:02x}" for b in c.encode()) for c in user
    )
    if _LABEL_VALUE.fullmatch(escaped):
        return escaped
    return f"u{escaped[:40]}-{hashlib.sha256(user.encode()).hexdigest()[:16]}"


def builder_argv(command: list[str], **values: str) -> list[str]:
    """Each argument with {repo_url}/{ref}/{commit}/{image} replaced, in one pass (a value holding
    a placeholder stays as is); other braces are left alone. No shell ever sees the result."""
    return [_PLACEHOLDER.sub(lambda m: values[m.group(1)], arg) for arg in command]


def build_pod_manifest(
    config: BinderConfig,
    *,
    repo_url: str,
    ref: str,
    commit: str,
    image: str,
    user: str,
    namespace: str,
    name: str | None = None,
) -> dict:
    """The build pod for `image`, as a dict the API accepts (named `name`, by default the user's
    first slot). Pure."""
    argv = builder_argv(config.builder_command, repo_url=repo_url, ref=ref, commit=commit, image=image)
    env = dict(config.builder_env)
    mounts, volumes = [], []
    if config.buildkit_address:
        env["BUILDKIT_HOST"] = config.buildkit_address
    if config.engine_socket:
        env["DOCKER_HOST"] = f"unix://{config.engine_socket}"
        volumes.append({"name": "engine", "hostPath": {"path": config.engine_socket, "type": "Socket"}})
        mounts.append({"name": "engine", "mountPath": config.engine_socket})
    if config.push_secret:
        # Docker clients (docker-py in repo2docker too) read <DOCKER_CONFIG>/config.json.
        env["DOCKER_CONFIG"] = PUSH_CONFIG_DIR
        volumes.append(
            {
                "name": "push-config",
                "secret": {
                    "secretName": config.push_secret,
                    "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
                },
            }
        )
        mounts.append({"name": "push-config", "mountPath": PUSH_CONFIG_DIR, "readOnly": True})
    container = {
        "name": CONTAINER,
        "image": config.builder_image,
        "command": argv,
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "resources": config.build_resources,
        "securityContext": config.build_security_context,
        "volumeMounts": mounts,
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name or slot_pod_name(user, 0),
            "namespace": namespace,
            "labels": {
                COMPONENT_LABEL: COMPONENT,
                "app.kubernetes.io/managed-by": "cern-spawner",
                USER_LABEL: user_label(user),
                IMAGE_LABEL: image_key(image),
            },
            "annotations": {
                ANNOTATION + "repo-url": repo_url,
                ANNOTATION + "ref": ref,
                ANNOTATION + "commit": commit,
                ANNOTATION + "image": image,
                ANNOTATION + "user": user,
            },
        },
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "activeDeadlineSeconds": math.ceil(config.build_timeout),
            "nodeSelector": dict(config.build_node_selector),
            "tolerations": list(config.build_tolerations),
            "containers": [container],
            "volumes": volumes,
        },
    }


def _api_message(e: ApiException) -> str:
    """The API server's own sentence (the Status message) rather than the whole response."""
    try:
        return json.loads(e.body)["message"]
    except (TypeError, ValueError, KeyError):
        return f"HTTP {e.status} {e.reason}"


def _status_message(status: int, body: str | bytes) -> str:
    """`HTTP <status>: <the Status object's message>`, shortened."""
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    try:
        detail = json.loads(body)["message"]
    except (TypeError, ValueError, KeyError):
        detail = body.strip()
    return f"HTTP {status}: {detail[:200]}"


async def _read_pod(core, name: str, namespace: str):
    """The pod, or None when it does not exist."""
    try:
        return await core.read_namespaced_pod(name, namespace)
    except ApiException as e:
        if e.status == 404:
            return None
        raise BuildError(f"Could not read the build pod {name}: {_api_message(e)}") from e


async def _delete_pod(core, name: str, namespace: str, uid: str | None = None) -> None:
    """Delete the pod (only that incarnation when `uid` is given); already gone is fine."""
    body = {"preconditions": {"uid": uid}} if uid else None
    try:
        await core.delete_namespaced_pod(name, namespace, body=body)
    except ApiException as e:
        if e.status not in (404, 409):  # 409: the precondition failed, a newer pod has the name
            raise BuildError(f"Could not delete the build pod {name}: {_api_message(e)}") from e


def _is_live_build(pod) -> bool:
    return pod.status.phase not in _TERMINAL and pod.metadata.deletion_timestamp is None


async def _list_builds(core, namespace: str) -> list:
    try:
        pods = await core.list_namespaced_pod(namespace, label_selector=f"{COMPONENT_LABEL}={COMPONENT}")
    except ApiException as e:
        raise BuildError(f"Could not list the running builds: {_api_message(e)}") from e
    return pods.items


async def cleanup_finished_builds(
    core, namespace: str, *, older_than: float, now: datetime.datetime
) -> list[str]:
    """Delete build pods that finished more than `older_than` seconds before `now` (aware UTC);
    the names deleted. They linger only when every waiter left before the end."""
    try:
        pods = await core.list_namespaced_pod(namespace, label_selector=f"{COMPONENT_LABEL}={COMPONENT}")
    except ApiException as e:
        raise BuildError(f"Could not list build pods: {_api_message(e)}") from e
    deleted = []
    for pod in pods.items:
        if pod.status.phase not in _TERMINAL or pod.metadata.deletion_timestamp is not None:
            continue
        finished = _finished_at(pod) or pod.metadata.creation_timestamp
        if finished and (now - finished).total_seconds() > older_than:
            await _delete_pod(core, pod.metadata.name, namespace, pod.metadata.uid)
            deleted.append(pod.metadata.name)
    return deleted


def _finished_at(pod) -> datetime.datetime | None:
    for status in pod.status.container_statuses or []:
        if status.state and status.state.terminated and status.state.terminated.finished_at:
            return status.state.terminated.finished_at
    return None


def _termination(pod) -> tuple[int | None, str]:
    """(exit code, reason) of a finished build pod, e.g. (3, "Error") or (None, "DeadlineExceeded")."""
    for status in pod.status.container_statuses or []:
        terminated = status.state.terminated if status.state else None
        if terminated:
            return terminated.exit_code, terminated.reason or ""
    return None, pod.status.reason or pod.status.message or "unknown"


class _Unstartable(Exception):
    """The build pod's container will not start without a change of configuration."""


def _waiting_reason(pod) -> str | None:
    for status in pod.status.container_statuses or []:
        waiting = status.state.waiting if status.state else None
        if waiting and waiting.reason:
            return waiting.reason
    return None


def _start_trouble(pod) -> str | None:
    """Why a Pending build pod is not running yet, in words, or None when nothing is wrong yet."""
    for condition in pod.status.conditions or []:
        if condition.type == "PodScheduled" and condition.status == "False":
            return f"The build pod is waiting for a node: {condition.message or condition.reason}"
    for status in pod.status.container_statuses or []:
        waiting = status.state.waiting if status.state else None
        if waiting and waiting.reason not in (None, "ContainerCreating", "PodInitializing"):
            return f"The build pod cannot start yet: {waiting.reason}: {waiting.message or ''}".rstrip(": ")
    if pod.status.reason:
        return f"The build pod cannot start yet: {pod.status.reason}: {pod.status.message or ''}".rstrip(": ")
    return None


async def _create_or_join(
    core, config, manifest: dict, *, image: str, user: str, namespace: str, report: Report, clock, sleep
):
    """The build pod (ours or one already running for the image), or None when none could be had.

    Counting and creating run under the hub's admission lock; a slot held by a finished pod is
    freed outside it (its removal can take a while) and admission starts again.
    """
    key, label = image_key(image), user_label(user)
    for _ in range(4):
        async with admission_lock():
            pods = await _list_builds(core, namespace)
            running = next(
                (p for p in pods if _is_live_build(p) and (p.metadata.labels or {}).get(IMAGE_LABEL) == key),
                None,
            )
            if running is not None:
                report("Joining the build already running for this commit…")
                return running
            seen = [
                Seen(p.metadata.name, _is_live_build(p), (p.metadata.labels or {}).get(USER_LABEL) == label)
                for p in pods
            ]
            slot = choose_slot(user, config.per_user_build_limit, seen, config.max_concurrent_builds)
            if isinstance(slot, BinderRefused):
                log.warning("Refused a build of %r for %r: %s", image, user, slot.message)
                raise slot
            if not slot.stale:
                manifest = {**manifest, "metadata": {**manifest["metadata"], "name": slot.name}}
                try:
                    pod = await core.create_namespaced_pod(namespace, manifest)
                except ApiException as e:
                    if e.status != 409:
                        raise BuildError(f"The cluster refused the build pod: {_api_message(e)}") from e
                    # Another hub process took this slot a moment ago: count again.
                    log.info("Build pod %s of %r already exists; counting again", slot.name, user)
                    continue
                report(f"Building the image (build pod {slot.name})…")
                return pod
        await _free_slot(core, slot, namespace, clock=clock, sleep=sleep)
    return None


async def _free_slot(core, slot: Slot, namespace: str, *, clock, sleep) -> None:
    """Remove the finished pod holding the slot's name and wait until it is gone."""
    pod = await _read_pod(core, slot.name, namespace)
    if pod is None:
        return
    await _delete_pod(core, slot.name, namespace, pod.metadata.uid)
    await until(
        lambda: _gone(core, slot.name, namespace, pod.metadata.uid),
        within=60,
        what=f"removal of the finished build pod {slot.name}",
        clock=clock,
        sleep=sleep,
    )


async def _gone(core, name: str, namespace: str, uid: str) -> bool:
    pod = await _read_pod(core, name, namespace)
    return pod is None or pod.metadata.uid != uid


async def _stream_logs(core, name: str, namespace: str, report: Report, seen: deque, within: float):
    """Report each line of the builder's log as it comes; failures only reported (the phase,
    not the log, decides how the build ended)."""
    response = None
    try:
        async with asyncio.timeout(within):
            response = await core.read_namespaced_pod_log(
                name, namespace, container=CONTAINER, follow=True, _preload_content=False
            )
            if response.status != 200:
                report(f"(build logs unavailable: {_status_message(response.status, await response.text())})")
                return
            async for line in log_lines(response.content.iter_any()):
                seen.append(line)
                report(line)
    except (ApiException, OSError, TimeoutError, ValueError) as e:
        # aiohttp's errors are OSErrors (ClientConnectionError) or ValueErrors (payload).
        report(f"(build logs unavailable: {e.__class__.__name__}: {str(e).strip()[:200]})")
    except Exception as e:  # noqa: BLE001 — any client error: the log is a courtesy, never fatal
        report(f"(build logs unavailable: {e.__class__.__name__})")
    finally:
        if response is not None:
            response.close()


async def _log_tail(core, name: str, namespace: str, lines: int, seen: deque) -> tuple[tuple[str, ...], str]:
    """The last `lines` lines of the builder's log, and why they could not be read ("" if they could)."""
    try:
        text = await core.read_namespaced_pod_log(name, namespace, container=CONTAINER, tail_lines=lines)
    except ApiException as e:
        # The streamed lines, if any, are the next best thing.
        return tuple(seen), _status_message(e.status, e.body) if e.body else f"HTTP {e.status}"
    tail = [clean_line(line) for line in (text or "").splitlines()]
    return tuple(tail[-lines:]) or tuple(seen), ""


def _failure_message(exit_code: int | None, reason: str, tail: tuple[str, ...], problem: str) -> str:
    how = f"exit code {exit_code}, {reason}" if exit_code is not None else reason
    if tail:
        return f"The image build failed ({how}). The last lines of its log:\n" + "\n".join(tail)
    if problem:
        return f"The image build failed ({how}); its log could not be read ({problem})."
    return f"The image build failed ({how}); its log is empty."


async def run_build(
    core,
    config: BinderConfig,
    *,
    repo_url: str,
    ref: str,
    commit: str,
    image: str,
    user: str,
    namespace: str,
    report: Report,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable] = asyncio.sleep,
    wall_clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
) -> None:
    """Build `image` in a pod (or join the one building it), streaming its log into `report`.

    Returns when the pod succeeded or vanished; raises BinderRefused (429, nothing created) over a
    build limit, BuildFailed when the builder failed or ran past `build_timeout`, BuildError when the cluster
    cannot be used. `core` is a kubernetes_asyncio CoreV1Api.
    """
    deadline = clock() + config.build_timeout
    try:
        await cleanup_finished_builds(core, namespace, older_than=FINISHED_TTL, now=wall_clock())
    except BuildError:
        pass  # housekeeping only; the build itself will report a broken API
    manifest = build_pod_manifest(
        config, repo_url=repo_url, ref=ref, commit=commit, image=image, user=user, namespace=namespace
    )
    pod = await _create_or_join(
        core,
        config,
        manifest,
        image=image,
        user=user,
        namespace=namespace,
        report=report,
        clock=clock,
        sleep=sleep,
    )
    if pod is None:
        raise BuildError("The build could not be started: its pod name stayed taken; try again in a minute.")
    name, uid = pod.metadata.name, pod.metadata.uid
    said: set[str] = set()

    async def current():
        """The pod as it is now, or "gone" when it (this incarnation) no longer exists."""
        seen_pod = await _read_pod(core, name, namespace)
        if seen_pod is None or seen_pod.metadata.uid != uid:
            return "gone"
        return seen_pod

    pull_trouble_since: list[float] = []

    async def started():
        seen_pod = await current()
        if seen_pod == "gone" or seen_pod.status.phase != "Pending":
            return seen_pod
        trouble = _start_trouble(seen_pod)
        if trouble and trouble not in said:
            said.add(trouble)
            report(trouble)
        reason = _waiting_reason(seen_pod)
        if reason in _PULL_TROUBLE and not pull_trouble_since:
            pull_trouble_since.append(clock())
        if reason in _NEVER_STARTS or (
            reason in _PULL_TROUBLE and clock() - pull_trouble_since[0] >= IMAGE_PULL_PATIENCE
        ):
            raise _Unstartable(trouble or reason)
        return None

    async def finished():
        seen_pod = await current()
        return seen_pod if seen_pod == "gone" or seen_pod.status.phase in _TERMINAL else None

    try:
        pod = await until(
            started, within=max(deadline - clock(), 0), what="build pod start", clock=clock, sleep=sleep
        )
        if pod == "gone":
            report(GONE)
            return
        seen: deque[str] = deque(maxlen=config.log_tail_lines)
        await _stream_logs(core, name, namespace, report, seen, max(deadline - clock(), 0.001))
        pod = await until(
            finished, within=max(deadline - clock(), 0), what="build end", first=0.5, clock=clock, sleep=sleep
        )
    except _Unstartable as e:
        await _delete_pod(core, name, namespace, uid)
        # The hub's configuration, not the repository: the user cannot fix it (503, not 422).
        raise BuildError(
            f"{e} — the image builder cannot run here; please tell the hub's operators "
            "(BinderConfig.builder_image / builder settings)."
        ) from None
    except TimeoutError as e:
        await _delete_pod(core, name, namespace, uid)
        raise BuildFailed(
            f"The image build did not finish within {config.build_timeout:.0f} s and was stopped."
        ) from e
    if pod == "gone":
        report(GONE)  # another waiter saw the end and removed it; the registry will tell
        return
    try:
        if pod.status.phase == "Failed":
            exit_code, reason = _termination(pod)
            tail, problem = await _log_tail(core, name, namespace, config.log_tail_lines, seen)
            raise BuildFailed(_failure_message(exit_code, reason, tail, problem), tail, exit_code)
        report("The build finished.")
    finally:
        await _delete_pod(core, name, namespace, uid)

"""What a restarted hub does for a server it finds: finish a start the restart interrupted, and
open the GPU session a start left unwritten.

Called by `CERNSpawner.poll` during JupyterHub's start-up check of each known server; kept out of
spawner.py so that the spawner stays one concern per module.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from jupyterhub.utils import AnyTimeoutError, wait_for_http_server

from .quota import hooks as quota
from .waiting import until
from .web.progress_stream import SpawnPlan


async def account_after_restart(spawner, plan: SpawnPlan | None) -> None:
    """A GPU server found running by a restarted hub has an open session: one whose start was
    not written yet when the hub stopped (see quota.ledger.WRITE_DELAY) begins when JupyterHub
    recorded the server's start."""
    began = spawner.orm_spawner.started if spawner.orm_spawner is not None else None
    at = began.replace(tzinfo=UTC).timestamp() if began is not None else None
    await quota.started(spawner, plan, only_if_missing=True, at=at)


async def resume_after_restart(
    spawner, plan: SpawnPlan | None, kube_poll: Callable[[], Awaitable[int | None]]
) -> int | None:
    """The hub restarted while this server was still starting (its pod waiting for a GPU
    node, or its notebook not answering yet).

    JupyterHub checks each known server at start-up and stops one that does not answer
    within `http_timeout`; a node boot takes minutes, a notebook's start seconds. A pod created
    less than `start_timeout` ago is still within its start: wait for it as `start` would, until
    that deadline, so the spawn completes instead of being abandoned. Older servers get
    JupyterHub's own check.

    `plan`: the server's profile as the catalog gives it now (the profile's overrides are applied
    at start, not after a restart, so its timeout is read from here). `kube_poll`: KubeSpawner's
    poll, not ours.
    """
    key = f"{spawner.namespace}/{spawner.pod_name}"
    pod = spawner.pod_reflector.pods.get(key)
    if pod is None:
        return None
    timeout = (plan and plan.start_timeout) or spawner.start_timeout
    created = datetime.fromisoformat(pod["metadata"]["creationTimestamp"]).timestamp()
    left = created + timeout - time.time()
    if left <= 0:
        return None

    async def settled():
        pod = spawner.pod_reflector.pods.get(key)
        return pod is None or pod["status"]["phase"] != "Pending" or spawner.is_pod_running(pod)

    if not await settled():
        spawner.log.info(
            "%s: the hub restarted during its start; waiting up to %d s more", spawner._log_name, left
        )
    deadline = time.monotonic() + left
    try:
        await until(settled, within=left, what=f"pod {key}", cap=2.0)
        status = await kube_poll()  # also records the pod's address on the server
        if status is None and spawner.server:
            # JupyterHub's own check then allows only http_timeout: wait for the notebook here.
            remaining = max(deadline - time.monotonic(), spawner.http_timeout)
            await wait_for_http_server(spawner.server.url, timeout=remaining)
            await quota.started(spawner, plan, only_if_missing=True)  # its start ended after the restart
    except AnyTimeoutError:
        spawner.log.warning("%s: not running within %d s of its pod's creation", spawner._log_name, timeout)
        return 1  # JupyterHub then stops the server, deleting the pod
    return status

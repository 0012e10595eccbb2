"""The Kubernetes side of a safe shrink: cordon a node before naming it, re-check it, uncordon it.

These read the API server, not the shared watch: right before a node is named for removal the
watch may lag behind a pod that was just bound to it.
"""

from __future__ import annotations

import datetime

from kubernetes_asyncio.client.exceptions import ApiException

from .capacity import REMOVAL_ANNOTATION, is_live, is_workload
from .errors import TemporaryError


async def cordon(api, node: str) -> None:
    """Unschedulable, with our annotation so that a restarted hub knows who cordoned it."""
    stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    await _patch(
        api, node, {"spec": {"unschedulable": True}, "metadata": {"annotations": {REMOVAL_ANNOTATION: stamp}}}
    )


async def uncordon(api, node: str) -> None:
    await _patch(
        api, node, {"spec": {"unschedulable": None}, "metadata": {"annotations": {REMOVAL_ANNOTATION: None}}}
    )


async def workloads_on(api, node: str) -> list[str]:
    """Live pods bound to `node` other than DaemonSet and static pods, as namespace/name."""
    try:
        response = await api.list_pod_for_all_namespaces(
            field_selector=f"spec.nodeName={node}", _preload_content=False
        )
        pods = (await response.json())["items"]
    except ApiException as e:
        raise TemporaryError(
            "Could not check the node before removing it.", f"list pods on {node}: {e}"
        ) from e
    return [
        f"{p['metadata'].get('namespace')}/{p['metadata']['name']}"
        for p in pods
        if is_live(p) and is_workload(p)
    ]


async def _patch(api, node: str, body: dict) -> None:
    try:
        await api.patch_node(node, body)
    except ApiException as e:
        if e.status == 404:
            return  # already gone
        raise TemporaryError("Could not update the node.", f"patch node {node}: {e}") from e

"""One shared watch of the cluster's Nodes and of every namespace's Pods, for capacity.

Every namespace: a GPU taken by another namespace's pod is not free. KubeSpawner's reflectors key
objects by namespace and cannot hold Nodes, which have none; this is the same list-then-watch
loop, for both kinds, keeping plain dicts (never deserialized into typed objects: ~20x cheaper).
`changed` is set on every event, so the scaling controller's rounds follow the cluster.
"""

from __future__ import annotations

import asyncio
import logging

from kubernetes_asyncio import client, watch

from ..waiting import Backoff


class RawWatch(watch.Watch):
    """Events as the API server sent them: plain dicts, no model classes."""

    def get_return_type(self, func) -> str:
        return ""


def relevant(obj: dict) -> tuple:
    """What capacity and shrink decisions read of a Node or Pod. A kubelet's heartbeat or a pod's
    new condition timestamp changes nothing here, so it does not wake the controller."""
    metadata, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    if "containers" not in spec:  # a Node
        ready = next(
            (c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"), None
        )
        return (
            repr(metadata.get("labels")),
            repr(metadata.get("annotations")),
            spec.get("unschedulable"),
            spec.get("providerID"),
            repr(status.get("allocatable")),
            ready,
        )
    return (
        spec.get("nodeName"),
        status.get("phase"),
        metadata.get("deletionTimestamp") is not None,
        repr(spec.get("nodeSelector")),
        repr([c.get("resources") for c in spec.get("containers") or []]),
    )


def _key(obj: dict) -> str:
    metadata = obj["metadata"]
    return f"{metadata['namespace']}/{metadata['name']}" if metadata.get("namespace") else metadata["name"]


class ClusterView:
    def __init__(self, api: client.CoreV1Api, log: logging.Logger, timeout: float = 60):
        self.api = api
        self.log = log
        self.timeout = timeout
        self.nodes: dict[str, dict] = {}
        self.pods: dict[str, dict] = {}
        self.synced = asyncio.Event()
        self.changed = asyncio.Event()
        self._loaded: set[str] = set()
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.ensure_future(self._follow("nodes", self.api.list_node, {}, self.nodes)),
                asyncio.ensure_future(
                    self._follow("pods", self.api.list_pod_for_all_namespaces, {}, self.pods)
                ),
            ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks = []

    async def _follow(self, kind: str, list_method, kwargs: dict, store: dict) -> None:
        backoff = Backoff(first=0.5, cap=30)
        while True:
            try:
                listing = await list_method(**kwargs, _preload_content=False, _request_timeout=self.timeout)
                body = await listing.json()
                store.clear()
                store.update({_key(item): item for item in body["items"]})
                self.changed.set()
                self._loaded.add(kind)
                if len(self._loaded) == 2:
                    self.synced.set()
                backoff.reset()
                stream = RawWatch().stream(
                    list_method,
                    **kwargs,
                    resource_version=body["metadata"]["resourceVersion"],
                    timeout_seconds=300,
                )
                async for event in stream:  # a 410 Gone (version too old) raises: list again
                    if event["type"] == "BOOKMARK":
                        continue
                    obj, key = event["raw_object"], _key(event["raw_object"])
                    if event["type"] == "DELETED":
                        store.pop(key, None)
                        self.changed.set()
                        continue
                    before = store.get(key)
                    store[key] = obj
                    if before is None or relevant(before) != relevant(obj):
                        self.changed.set()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the API server restarting, a dropped connection
                self.log.warning("Watch of %s failed, listing again: %r", kind, e)
                await backoff.sleep()

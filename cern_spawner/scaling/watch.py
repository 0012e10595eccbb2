"""One shared watch of the cluster's Nodes and of the user namespace's Pods, for capacity.

KubeSpawner's reflectors key objects by namespace and cannot hold Nodes, which have none; this
is the same list-then-watch loop, for both kinds, keeping plain dicts.
"""

from __future__ import annotations

import asyncio
import logging

from kubernetes_asyncio import client, watch

from ..waiting import Backoff


class ClusterView:
    def __init__(self, api: client.CoreV1Api, namespace: str, log: logging.Logger, timeout: float = 60):
        self.api = api
        self.namespace = namespace
        self.log = log
        self.timeout = timeout
        self.nodes: dict[str, dict] = {}
        self.pods: dict[str, dict] = {}
        self.synced = asyncio.Event()
        self._loaded: set[str] = set()
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.ensure_future(self._follow("nodes", self.api.list_node, {}, self.nodes)),
                asyncio.ensure_future(
                    self._follow(
                        "pods", self.api.list_namespaced_pod, {"namespace": self.namespace}, self.pods
                    )
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
                store.update({item["metadata"]["name"]: item for item in body["items"]})
                self._loaded.add(kind)
                if len(self._loaded) == 2:
                    self.synced.set()
                backoff.reset()
                stream = watch.Watch().stream(
                    list_method,
                    **kwargs,
                    resource_version=body["metadata"]["resourceVersion"],
                    timeout_seconds=300,
                )
                async for event in stream:
                    if event["type"] == "ERROR":
                        break  # usually 410 Gone: our version is too old, list again
                    obj = event["raw_object"]
                    if event["type"] == "DELETED":
                        store.pop(obj["metadata"]["name"], None)
                    else:
                        store[obj["metadata"]["name"]] = obj
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the API server restarting, a dropped connection
                self.log.warning("Watch of %s failed, listing again: %r", kind, e)
                await backoff.sleep()

"""The hub's one watch of Pods (every namespace) and of Nodes, shared by the scaling controller
and KubeSpawner.

Every namespace: a GPU taken by another namespace's pod is not free. KubeSpawner keeps its own pod
reflector (the hub's namespace, `component=singleuser-server`); a hub that scales GPU groups would
then watch the hub's pods twice. Instead this watch also serves as that reflector (`HubPods`,
registered in `KubeSpawner.reflectors` under KubeSpawner's own key): the hub's pods are kept whole,
as KubeSpawner reads them; any other pod only as the `PodUse` capacity needs, and the capacity
index is updated per event. Events are read as raw JSON lines (no model classes: ~20x cheaper),
and a watch that ends is resumed from the last version seen (bookmarks keep it fresh) instead of
listing everything again; only a 410 Gone or an error lists again. `changed` is set when what
capacity reads changes, so the controller's rounds follow the cluster, not kubelet heartbeats.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping

from aiohttp import ClientTimeout
from kubernetes_asyncio import client

from ..waiting import Backoff
from .capacity import Capacity, GroupSelector, PodIndex, PodUse, capacity_of, pod_use

NO_NODE = "cern-spawner.cern.ch/no-group-is-scaled"  # a label no node has: no scaled group, no node
WATCH_SECONDS = 300  # the API server ends a watch after this; it is then resumed, not re-listed


def relevant(obj: dict) -> tuple | object:
    """What capacity and shrink decisions read of a Node or Pod. A kubelet's heartbeat or a pod's
    new condition timestamp changes nothing here, so it does not wake the controller."""
    metadata, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    if "containers" in spec:
        return pod_use(obj)
    ready = next((c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    return (
        repr(metadata.get("labels")),
        repr(metadata.get("annotations")),
        spec.get("unschedulable"),
        spec.get("providerID"),
        repr(status.get("allocatable")),
        ready,
    )


def _key(obj: dict) -> str:
    metadata = obj["metadata"]
    return f"{metadata['namespace']}/{metadata['name']}" if metadata.get("namespace") else metadata["name"]


def kubespawner_pods(config, namespace: str) -> dict:
    """ClusterView's arguments to serve as KubeSpawner's pod reflector for a hub with this config:
    the pods KubeSpawner's `_start_watching_pods` would watch, under the key it would use."""
    from kubespawner import KubeSpawner

    def setting(name: str):
        for section in ("CERNSpawner", "KubeSpawner"):
            if name in (config.get(section) or {}):
                return config[section][name]
        return KubeSpawner.class_traits()[name].default_value

    # With a namespace per user, KubeSpawner runs one reflector for all namespaces, keyed None.
    scope = None if setting("enable_user_namespaces") else namespace
    return {
        "hub_namespace": scope,
        "hub_labels": {"component": setting("component_label")},
        "share_as": ("pods", scope),
    }


class Gone(Exception):
    """The version to resume from is too old (410): list again."""


class HubPods:
    """KubeSpawner's pod reflector, fed by the view's watch: the same keys ("namespace/name") and
    the same raw pod dicts as KubeSpawner's `PodReflector.pods`."""

    kind = "pods"

    def __init__(self, view: ClusterView):
        self.view = view
        self.first_load_future: asyncio.Future = asyncio.get_running_loop().create_future()
        self.watch_task = None

    @property
    def pods(self) -> dict[str, dict]:
        return self.view.hub_pods

    resources = pods

    async def start(self) -> None:  # the view's watch is already running
        pass

    async def stop(self) -> None:
        # KubeSpawner stops a reflector it replaces; the watch serves the controller too: keep it.
        pass


class ClusterView:
    """`hub_namespace` (None: every namespace) and `hub_labels` select the pods KubeSpawner
    reads; `share_as` is KubeSpawner's reflector key for them (None: not shared)."""

    def __init__(
        self,
        api: client.CoreV1Api,
        log: logging.Logger,
        timeout: float = 60,
        *,
        hub_namespace: str | None = None,
        hub_labels: Mapping[str, str] | None = None,
        share_as: tuple | None = None,
    ):
        self.api = api
        self.log = log
        self.timeout = timeout
        self.hub_namespace = hub_namespace
        self.hub_labels = dict(hub_labels or {})
        self.share_as = share_as
        self.nodes: dict[str, dict] = {}
        self.index = PodIndex()
        self.hub_pods: dict[str, dict] = {}
        self.reflector: HubPods | None = None
        self.groups: Callable[[], Iterable[tuple[str, str]]] | None = None
        self._node_selector: str | None = None
        self.synced = asyncio.Event()
        self.changed = asyncio.Event()
        # When a pod no node has taken was last seen for the first time (time.monotonic): the
        # controller holds a growth while a burst of starts is still arriving (planner.burst_wait).
        self.last_arrival: float | None = None
        # GPU starts of this hub whose pod the watch has not seen yet: pod key -> node group. Such a
        # start arrives when it begins (under load its pod's first event comes up to a second
        # later), and a growth of its group is held until its pod is seen (see `expect`).
        self.expected: dict[str, str] = {}
        self._loaded: set[str] = set()
        self._tasks: list[asyncio.Task] = []

    # -- what the controller reads -----------------------------------------------------------------
    def capacity(
        self,
        group: GroupSelector,
        gpus_per_node: int,
        namespace: str | None = None,
        leaving: frozenset[str] = frozenset(),
    ) -> Capacity:
        return capacity_of(
            self.nodes.values(), self.index, [group], {group.name: gpus_per_node}, namespace, leaving
        )[group.name]

    def in_flight(self, group: str) -> int:
        """Starts of `group` whose pods are being created: a growth now would leave them out."""
        return sum(1 for expected in self.expected.values() if expected == group)

    def expect(self, key: str, group: str) -> None:
        """A start that will create pod `key` (namespace/name) on `group` began: it arrives now."""
        self.expected[key] = group
        self.last_arrival = time.monotonic()

    def unexpect(self, key: str) -> None:
        """The start of pod `key` ended. If its pod was never seen (it failed before creating it),
        a growth held for it need not wait any longer."""
        if self.expected.pop(key, None) is not None:
            self.changed.set()

    def is_hub_pod(self, pod: dict) -> bool:
        metadata = pod.get("metadata") or {}
        if self.hub_namespace is not None and metadata.get("namespace") != self.hub_namespace:
            return False
        labels = metadata.get("labels") or {}
        return all(labels.get(k) == v for k, v in self.hub_labels.items())

    # -- running -----------------------------------------------------------------------------------
    def start(self, groups: Callable[[], Iterable[tuple[str, str]]] | None = None) -> None:
        """`groups`: the (node label, value) of every group the controller scales; only their
        nodes are watched (None: every node)."""
        if self._tasks:
            return
        self.groups = groups
        if self.share_as is not None:
            self._share_with_kubespawner()
        self._node_selector = self.node_selector()
        self._tasks = [
            asyncio.ensure_future(self._follow_nodes()),
            asyncio.ensure_future(
                self._follow("pods", self.api.list_pod_for_all_namespaces, {}, self._reset_pods, self._pod)
            ),
        ]

    def node_selector(self) -> str | None:
        """A label selector for the scaled groups' nodes: a hub rarely scales more than a few
        groups, and every other node's status updates would only be parsed to be ignored."""
        if self.groups is None:
            return None
        pairs = set(self.groups())
        labels = {label for label, _ in pairs}
        if not pairs:
            return NO_NODE
        if len(labels) > 1:  # one selector cannot say "this label in A, or that label in B"
            return None
        return f"{labels.pop()} in ({','.join(sorted(value for _, value in pairs))})"

    def regroup(self) -> None:
        """Follow the scaled groups' nodes as the catalog now names them (called each round)."""
        selector = self.node_selector()
        if not self._tasks or selector == self._node_selector:
            return
        self.log.info("Watching nodes %s", selector or "(all)")
        self._node_selector = selector
        self._tasks[0].cancel()
        self._tasks[0] = asyncio.ensure_future(self._follow_nodes())

    def _follow_nodes(self):
        selector = {"label_selector": self._node_selector} if self._node_selector else {}
        return self._follow("nodes", self.api.list_node, selector, self._reset_nodes, self._node)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks = []

    def _share_with_kubespawner(self) -> None:
        from kubespawner import KubeSpawner

        self.reflector = HubPods(self)
        previous = KubeSpawner.reflectors.get(self.share_as)
        KubeSpawner.reflectors[self.share_as] = self.reflector
        if previous is not None:  # a spawner started KubeSpawner's own before us: one watch is enough
            asyncio.ensure_future(previous.stop())

    # -- applying what the API server says -----------------------------------------------------------
    def _reset_nodes(self, items: list[dict]) -> None:
        self.nodes = {_key(item): item for item in items}
        self.changed.set()

    def _node(self, kind: str, obj: dict) -> None:
        key = _key(obj)
        if kind == "DELETED":
            self.nodes.pop(key, None)
            self.changed.set()
            return
        before = self.nodes.get(key)
        self.nodes[key] = obj
        if before is None or relevant(before) != relevant(obj):
            self.changed.set()

    def _reset_pods(self, items: list[dict]) -> None:
        index = PodIndex()
        for item in items:
            key = _key(item)
            index.set(key, pod_use(item))
            self.expected.pop(key, None)  # seen: its start no longer holds a growth
        self.index = index
        self.hub_pods = {_key(item): item for item in items if self.is_hub_pod(item)}
        self.changed.set()
        if self.reflector is not None and not self.reflector.first_load_future.done():
            self.reflector.first_load_future.set_result(None)

    def _pod(self, kind: str, obj: dict) -> None:
        key = _key(obj)
        before = self.index.uses.get(key)
        if kind == "DELETED":
            self.hub_pods.pop(key, None)
            if self.index.discard(key) and self._scaling_reads(before):
                self.changed.set()
            return
        if self.is_hub_pod(obj):
            self.hub_pods[key] = obj
        else:
            self.hub_pods.pop(key, None)
        use = pod_use(obj)
        counted = self.expected.pop(key, None) is not None  # arrived when its start began
        if kind == "ADDED" and use.node is None and use.extended and not counted:
            self.last_arrival = time.monotonic()
        if self.index.set(key, use) and (self._scaling_reads(before) or self._scaling_reads(use)):
            self.changed.set()

    def _scaling_reads(self, use: PodUse | None) -> bool:
        """Whether the controller's rounds read this pod: one asking for GPUs (or another extended
        resource), or one on a node of a scaled group. A burst of shared notebooks then wakes no
        round; the index still counts every pod, so capacity is right whenever a round runs."""
        return use is not None and (bool(use.extended) or (use.node is not None and use.node in self.nodes))

    # -- list, then watch --------------------------------------------------------------------------
    async def _follow(self, kind: str, list_method, selector: dict, reset, apply) -> None:
        backoff = Backoff(first=0.5, cap=30)
        version = None
        while True:
            try:
                if version is None:
                    listing = await list_method(
                        **selector, _preload_content=False, _request_timeout=self.timeout
                    )
                    body = json.loads(await listing.read())
                    reset(body["items"])
                    version = body["metadata"]["resourceVersion"]
                    self._loaded.add(kind)
                    if len(self._loaded) == 2:
                        self.synced.set()
                version = await self._watch(list_method, selector, version, apply)
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except Gone:
                version = None
            except Exception as e:  # the API server restarting, a dropped connection, RBAC
                self.log.warning("Watch of %s failed, listing again: %r", kind, e)
                version = None
                await backoff.sleep()

    async def _watch(self, list_method, selector: dict, version: str, apply) -> str:
        """Apply events from `version` on until the API server ends the watch; the last version."""
        response = await list_method(
            **selector,
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
            _preload_content=False,
            # A deadline for the whole watch, not per read: a read timeout is re-armed at each
            # chunk, a cost per event (the API server ends the watch at WATCH_SECONDS anyway).
            _request_timeout=ClientTimeout(
                total=WATCH_SECONDS + self.timeout, connect=self.timeout, sock_connect=self.timeout
            ),
        )
        try:
            pending = b""
            async for chunk in response.content.iter_any():
                pending += chunk
                *lines, pending = pending.split(b"\n")  # one event per line
                for line in lines:
                    if line.strip():
                        version = self._event(line, version, apply)
        finally:
            response.release()
        return version

    def _event(self, line: bytes, version: str, apply) -> str:
        event = json.loads(line)
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone()
            raise client.ApiException(status=obj.get("code"), reason=obj.get("message"))
        if kind != "BOOKMARK":
            apply(kind, obj)
        return (obj.get("metadata") or {}).get("resourceVersion") or version

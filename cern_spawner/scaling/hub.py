"""Wiring of the scaling controller into the hub process: one controller, shared by all spawners."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import openstack
from openstack.config import loader

from ..catalog import Catalog
from ..catalog_store import CatalogStore
from .backend import NodeGroups
from .clusterapi import Capacity, ClusterAPIGroups, KubeStore
from .config import GPUScaling
from .controller import ScalingController
from .magnum import MagnumGroups
from .memory import Memory
from .standby import parse as parse_standby
from .state import ScaledGroup
from .watch import ClusterView, kubespawner_pods

_controllers: dict[tuple, ScalingController] = {}
_settings: dict[int, tuple[object, GPUScaling]] = {}  # id(config) -> (config, its settings)


CLUSTER_API = "clusterapi:"  # ScaledGroup.cluster of a Cluster API group: clusterapi:<namespace>/<name>


def backend_key(scaling) -> str:
    """Where the group's backend finds it (ScaledGroup.cluster): a Magnum cluster, or a
    MachineDeployment; "" when the catalog does not say (the catalog's semantics report it)."""
    if scaling.get("backend", "magnum") == "clusterapi":
        if scaling.get("namespace") and scaling.get("machine_deployment"):
            return f"{CLUSTER_API}{scaling['namespace']}/{scaling['machine_deployment']}"
        return ""
    return scaling.get("cluster") or ""


def machine_deployment_capacity(group) -> Capacity:
    """One node of a catalog group, for the cluster-autoscaler's scale-from-zero annotations."""
    written = (group.scaling or {}).get("capacity") or {}
    return Capacity(
        cpu=written.get("cpu", ""),
        memory=written.get("memory", ""),
        gpu_type=group.gpu.resource if group.gpu else "",
        gpu_count=group.gpu.per_node if group.gpu else 0,
        taints=(group.taint,) if group.taint else (),
        labels={group.label: group.name},  # what the profiles' nodeSelector asks for
    )


_last_scaled: list = []  # [the catalog, its scaled groups]: a catalog is never changed, only replaced


def scaled_groups(catalog: Catalog) -> tuple[ScaledGroup, ...]:
    """The catalog's GPU node groups that the hub may grow (through Magnum or Cluster API). Read at
    every GPU start and twice per controller round: worked out once per catalog."""
    if _last_scaled and _last_scaled[0] is catalog:
        return _last_scaled[1]
    groups = _scaled_groups(catalog)
    _last_scaled[:] = [catalog, groups]
    return groups


def _scaled_groups(catalog: Catalog) -> tuple[ScaledGroup, ...]:
    groups = []
    for group in catalog.node_groups.values():
        scaling = group.scaling or {}
        if group.gpu is None or not backend_key(scaling):
            continue
        groups.append(
            ScaledGroup(
                name=group.name,
                label=group.label,
                # Partitioned GPUs: counted in what the nodes advertise (slices, shares).
                gpu_resource=group.gpu.node_resources[0][0],
                gpus_per_node=sum(count for _, count in group.gpu.node_resources),
                resources=group.gpu.node_resources if group.gpu.sharing != "whole" else (),
                cluster=backend_key(scaling),
                mode=scaling.get("mode", "resize"),
                min_nodes=int(scaling.get("min_nodes", 0)),
                max_nodes=int(scaling.get("max_nodes", 0)),
                standby=parse_standby(scaling.get("standby")),  # checked by the catalog's semantics
            )
        )
    return tuple(groups)


def wall_now() -> datetime:
    return datetime.now(UTC)


def connect(cloud: str, clouds_yaml: str, api_timeout: float | None = None):
    """An openstacksdk connection from clouds.yaml (application credentials supported); every
    HTTP call it makes gives up after `api_timeout` seconds."""
    files = [clouds_yaml] if clouds_yaml else None
    config = loader.OpenStackConfig(config_files=files).get_one(cloud=cloud, api_timeout=api_timeout)
    return openstack.connection.Connection(config=config)


def gpu_scaling(config) -> GPUScaling:
    """The hub's `c.GPUScaling` settings, read once per config object (deprecations warned once)."""
    cached = _settings.get(id(config))
    if cached is None or cached[0] is not config:
        cached = _settings[id(config)] = (config, GPUScaling(config=config))
    return cached[1]


def hub_controller(
    settings: GPUScaling, *, namespace: str, store: CatalogStore, log: logging.Logger
) -> ScalingController | None:
    """The hub's controller for these settings, created and started on first use; None when no
    cloud is configured. `namespace` is where the notebook pods are, `store` their catalog."""
    if not settings.enabled:
        return None
    key = (settings.openstack_cloud, settings.openstack_clouds_yaml, namespace, store.paths)
    key += (settings.cluster_api_kubeconfig,)
    if key not in _controllers:
        from kubespawner.clients import shared_client

        connections: dict[str, MagnumGroups] = {}
        stores: dict[str, KubeStore] = {}

        def backend(cluster: str) -> NodeGroups:
            if cluster.startswith(CLUSTER_API):
                namespace_, name = cluster.removeprefix(CLUSTER_API).split("/", 1)
                if namespace_ not in stores:
                    kubeconfig = settings.cluster_api_kubeconfig
                    stores[namespace_] = KubeStore(
                        "" if kubeconfig == "in-cluster" else kubeconfig,
                        namespace_,
                        settings.cluster_api_version,
                    )
                groups = store.current().node_groups.values()
                written = next((g for g in groups if backend_key(g.scaling or {}) == cluster), None)
                capacity = machine_deployment_capacity(written) if written else None  # None: retiring
                return ClusterAPIGroups(stores[namespace_], name, capacity)
            if cluster not in connections:
                connection = connect(
                    settings.openstack_cloud, settings.openstack_clouds_yaml, settings.call_timeout
                )
                connections[cluster] = MagnumGroups(connection, cluster)
            return connections[cluster]

        api = shared_client("CoreV1Api")
        _controllers[key] = ScalingController(
            lambda: scaled_groups(store.current()),
            ClusterView(api, log, **kubespawner_pods(settings.config, namespace)),
            backend,
            log,
            kube=api,
            namespace=namespace,
            interval=settings.interval,
            idle_refresh=settings.idle_refresh,
            grace=settings.grace_period,
            call_timeout=settings.call_timeout,
            retry_timeout=settings.retry_timeout,
            join_deadline=settings.join_deadline,
            burst_quiet=settings.burst_quiet,
            burst_window=settings.burst_window,
            memory=Memory(settings.memory_path or None, log),
            wall_clock=settings.wall_clock or wall_now,
        )
        _controllers[key].start()
    return _controllers[key]


def shared_controller(spawner, log: logging.Logger) -> ScalingController | None:
    """The controller serving this spawner's namespace and catalog (see `hub_controller`)."""
    settings = gpu_scaling(spawner.config)
    if not settings.enabled:
        return None  # before reading the catalog: a spawner's __init__ never loads it
    return hub_controller(settings, namespace=spawner.namespace, store=spawner.catalog_store, log=log)


def controller_for(store: CatalogStore) -> ScalingController | None:
    """The running controller that grows `store`'s node groups (read by the admin page), or None."""
    return next((controller for key, controller in _controllers.items() if key[3] == store.paths), None)

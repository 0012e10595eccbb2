"""Wiring of the scaling controller into the hub process: one controller, shared by all spawners."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import openstack
from openstack.config import loader

from ..catalog import Catalog
from ..catalog_store import CatalogStore
from .config import GPUScaling
from .controller import ScalingController
from .magnum import MagnumGroups
from .memory import Memory
from .standby import parse as parse_standby
from .state import ScaledGroup
from .watch import ClusterView, kubespawner_pods

_controllers: dict[tuple, ScalingController] = {}
_settings: dict[int, tuple[object, GPUScaling]] = {}  # id(config) -> (config, its settings)


def scaled_groups(catalog: Catalog) -> list[ScaledGroup]:
    """The catalog's GPU node groups that the hub may grow through Magnum."""
    groups = []
    for group in catalog.node_groups.values():
        scaling = group.scaling or {}
        if group.gpu is None or scaling.get("backend", "magnum") != "magnum" or not scaling.get("cluster"):
            continue
        groups.append(
            ScaledGroup(
                name=group.name,
                label=group.label,
                # Partitioned GPUs: counted in what the nodes advertise (slices, shares).
                gpu_resource=group.gpu.node_resources[0][0],
                gpus_per_node=sum(count for _, count in group.gpu.node_resources),
                resources=group.gpu.node_resources if group.gpu.sharing != "whole" else (),
                cluster=scaling["cluster"],
                mode=scaling.get("mode", "resize"),
                min_nodes=int(scaling.get("min_nodes", 0)),
                max_nodes=int(scaling.get("max_nodes", 0)),
                standby=parse_standby(scaling.get("standby")),  # checked by the catalog's semantics
            )
        )
    return groups


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
    if not settings.openstack_cloud:
        return None
    key = (settings.openstack_cloud, settings.openstack_clouds_yaml, namespace, store.paths)
    if key not in _controllers:
        from kubespawner.clients import shared_client

        connections: dict[str, MagnumGroups] = {}

        def backend(cluster: str) -> MagnumGroups:
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
            memory=Memory(settings.memory_path or None, log),
            wall_clock=settings.wall_clock or wall_now,
        )
        _controllers[key].start()
    return _controllers[key]


def shared_controller(spawner, log: logging.Logger) -> ScalingController | None:
    """The controller serving this spawner's namespace and catalog (see `hub_controller`)."""
    settings = gpu_scaling(spawner.config)
    if not settings.openstack_cloud:
        return None  # before reading the catalog: a spawner's __init__ never loads it
    return hub_controller(settings, namespace=spawner.namespace, store=spawner.catalog_store, log=log)


def controller_for(store: CatalogStore) -> ScalingController | None:
    """The running controller that grows `store`'s node groups (read by the admin page), or None."""
    return next((controller for key, controller in _controllers.items() if key[3] == store.paths), None)

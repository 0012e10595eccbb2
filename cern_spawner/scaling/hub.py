"""Wiring of the scaling controller into the hub process: one controller, shared by all spawners."""

from __future__ import annotations

import logging

import openstack
from openstack.config import loader

from ..catalog import Catalog
from .config import GPUScaling
from .controller import ScalingController
from .magnum import MagnumGroups
from .memory import Memory
from .state import ScaledGroup
from .watch import ClusterView, kubespawner_pods

_controllers: dict[tuple, ScalingController] = {}


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
                gpu_resource=group.gpu.resource,
                gpus_per_node=group.gpu.per_node,
                cluster=scaling["cluster"],
                mode=scaling.get("mode", "resize"),
                min_nodes=int(scaling.get("min_nodes", 0)),
                max_nodes=int(scaling.get("max_nodes", 0)),
            )
        )
    return groups


def connect(cloud: str, clouds_yaml: str, api_timeout: float | None = None):
    """An openstacksdk connection from clouds.yaml (application credentials supported); every
    HTTP call it makes gives up after `api_timeout` seconds."""
    files = [clouds_yaml] if clouds_yaml else None
    config = loader.OpenStackConfig(config_files=files).get_one(cloud=cloud, api_timeout=api_timeout)
    return openstack.connection.Connection(config=config)


def shared_controller(spawner, log: logging.Logger) -> ScalingController | None:
    """The hub's controller, created on first use; None when no cloud is configured."""
    if not spawner.openstack_cloud:
        return None
    key = (
        spawner.openstack_cloud,
        spawner.openstack_clouds_yaml,
        spawner.namespace,
        tuple(spawner.profiles_path),
    )
    if key not in _controllers:
        from kubespawner.clients import shared_client

        settings = GPUScaling(config=spawner.config)
        connections: dict[str, MagnumGroups] = {}

        def backend(cluster: str) -> MagnumGroups:
            if cluster not in connections:
                connection = connect(
                    spawner.openstack_cloud, spawner.openstack_clouds_yaml, settings.call_timeout
                )
                connections[cluster] = MagnumGroups(connection, cluster)
            return connections[cluster]

        store = spawner.catalog_store
        api = shared_client("CoreV1Api")
        _controllers[key] = ScalingController(
            lambda: scaled_groups(store.current()),
            ClusterView(api, log, **kubespawner_pods(spawner.config, spawner.namespace)),
            backend,
            log,
            kube=api,
            namespace=spawner.namespace,
            interval=spawner.scaling_interval,
            idle_refresh=settings.idle_refresh,
            grace=spawner.scaling_grace_period,
            call_timeout=settings.call_timeout,
            retry_timeout=settings.retry_timeout,
            join_deadline=settings.join_deadline,
            memory=Memory(settings.memory_path or None, log),
        )
        _controllers[key].start()
    return _controllers[key]

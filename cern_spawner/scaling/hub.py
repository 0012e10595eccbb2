"""Wiring of the scaling controller into the hub process: one controller, shared by all spawners."""

from __future__ import annotations

import logging

import openstack
from openstack.config import loader

from ..catalog import Catalog
from .controller import ScaledGroup, ScalingController
from .magnum import MagnumGroups
from .watch import ClusterView

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


def connect(cloud: str, clouds_yaml: str):
    """An openstacksdk connection from clouds.yaml (application credentials supported)."""
    if clouds_yaml:
        config = loader.OpenStackConfig(config_files=[clouds_yaml]).get_one(cloud=cloud)
        return openstack.connection.Connection(config=config)
    return openstack.connect(cloud=cloud)


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

        connections: dict[str, MagnumGroups] = {}

        def backend(cluster: str) -> MagnumGroups:
            if cluster not in connections:
                connections[cluster] = MagnumGroups(
                    connect(spawner.openstack_cloud, spawner.openstack_clouds_yaml), cluster
                )
            return connections[cluster]

        store = spawner.catalog_store
        view = ClusterView(shared_client("CoreV1Api"), spawner.namespace, log)
        _controllers[key] = ScalingController(
            lambda: scaled_groups(store.current()),
            view,
            backend,
            log,
            interval=spawner.scaling_interval,
            grace=spawner.scaling_grace_period,
        )
        _controllers[key].start()
    return _controllers[key]

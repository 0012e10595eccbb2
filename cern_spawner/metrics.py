"""Prometheus metrics of cern-spawner, served with JupyterHub's own on /hub/metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

GPU_PENDING = Gauge(
    "cern_spawner_gpus_pending",
    "GPUs requested by pods that no node has taken yet, per node group",
    ["node_group"],
)
GPU_FREE = Gauge(
    "cern_spawner_gpus_free", "Allocatable GPUs not requested, on ready nodes, per node group", ["node_group"]
)
NODES_TARGET = Gauge(
    "cern_spawner_nodes_target", "Node count the controller last asked the cloud for", ["node_group"]
)
NODES_BASELINE = Gauge(
    "cern_spawner_nodes_baseline", "Node count the group returns to without demand", ["node_group"]
)
BACKEND_REQUESTS = Counter(
    "cern_spawner_backend_requests",
    "Writes to the cloud by node group, action and result",
    ["node_group", "action", "result"],
)
NODE_READY_SECONDS = Histogram(
    "cern_spawner_node_ready_seconds",
    "Seconds from asking the cloud for nodes to their GPUs being allocatable",
    ["node_group"],
    buckets=(10, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600),
)
NODES_LOST = Counter(
    "cern_spawner_nodes_lost",
    "VMs the cloud counted that did not join Kubernetes within the join deadline, per node group",
    ["node_group"],
)

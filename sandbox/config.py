"""Where the sandbox keeps its state and caches, and the topology it registers."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import SandboxError

DEFAULT_TOPOLOGY = Path(__file__).with_name("topology.yaml")
# How often the node agent rewrites secret/configMap/downwardAPI/projected volumes of running pods
# (the kubelet's sync period is 1 min plus its cache's TTL; the sandbox is quicker for tests).
DEFAULT_VOLUME_SYNC_SECONDS = 5.0
MAX_VOLUME_SYNC_SECONDS = 60.0


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "cern-spawner" / "sandbox"


def state_dir() -> Path:
    """The running sandbox's certificates, kubeconfig, logs and pids."""
    if explicit := os.environ.get("CERN_SANDBOX_STATE"):
        return Path(explicit)
    return default_state_dir()


def cache_dir() -> Path:
    """Built binaries, keyed by version so that only the first run builds."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cern-spawner"


@dataclass(frozen=True)
class NodeGroup:
    name: str
    role: str
    flavor: str
    nodes: int
    zones: tuple[str, ...]
    cpu: str
    memory: str
    gpu_resource: str | None = None
    gpus_per_node: int = 0
    gpu_product: str | None = None
    gpu_taint: dict | None = None
    # As the catalog writes them: {slices: {1g.10gb: 3, ...}, config: name} and {replicas, rename_by_default}.
    gpu_mig: dict | None = None
    gpu_time_slicing: dict | None = None
    min_nodes: int = 0  # the cloud's min_node_count for the group
    max_nodes: int = 0  # the cloud's max_node_count for the group
    autoscaled: bool = False  # a cluster autoscaler removes idle nodes above min_node_count


@dataclass(frozen=True)
class Topology:
    cluster: str
    node_group_label: str
    node_groups: tuple[NodeGroup, ...] = field(default_factory=tuple)
    volume_sync_seconds: float = DEFAULT_VOLUME_SYNC_SECONDS

    def node_names(self) -> list[str]:
        return [name for group in self.node_groups for name in node_names(self.cluster, group)]


def node_names(cluster: str, group: NodeGroup) -> list[str]:
    # Magnum names nodes <cluster>-<nodegroup>-<suffix>-node-<index>.
    return [f"{cluster}-{group.name}-node-{index}" for index in range(group.nodes)]


def load_topology(path: Path | str | None = None) -> Topology:
    path = Path(path) if path else DEFAULT_TOPOLOGY
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise SandboxError(f"cannot read topology {path}: {e}") from e
    try:
        groups = []
        for name, spec in raw["node_groups"].items():
            gpu = spec.get("gpu") or {}
            scaling = spec.get("scaling") or {}
            nodes = int(spec.get("nodes", 1))
            groups.append(
                NodeGroup(
                    name=name,
                    role=spec.get("role", "worker"),
                    flavor=spec.get("flavor", "m2.large"),
                    nodes=nodes,
                    zones=tuple(spec.get("zones") or ["nova"]),
                    cpu=str(spec.get("cpu", "4")),
                    memory=str(spec.get("memory", "16Gi")),
                    gpu_resource=gpu.get("resource"),
                    gpus_per_node=int(gpu.get("per_node", 0)),
                    gpu_product=gpu.get("product"),
                    gpu_taint=spec.get("gpu_taint"),
                    gpu_mig=gpu.get("mig"),
                    gpu_time_slicing=gpu.get("time_slicing"),
                    min_nodes=int(scaling.get("min_nodes", nodes)),
                    max_nodes=int(scaling.get("max_nodes", max(nodes, 4))),
                    autoscaled=bool(scaling.get("autoscaled", False)),
                )
            )
        return Topology(
            cluster=raw.get("cluster", "sandbox"),
            node_group_label=raw.get("node_group_label", "magnum.openstack.org/nodegroup"),
            node_groups=tuple(groups),
            volume_sync_seconds=volume_sync_seconds(
                raw.get("volume_sync_seconds", DEFAULT_VOLUME_SYNC_SECONDS)
            ),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise SandboxError(f"topology {path} is malformed ({e!r}); compare with {DEFAULT_TOPOLOGY}") from e


def volume_sync_seconds(value) -> float:
    """The topology's `volume_sync_seconds`: seconds between two volume syncs of a running pod."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")  # refused below, with the value as written
    if not 0 < seconds <= MAX_VOLUME_SYNC_SECONDS:
        raise ValueError(f"volume_sync_seconds must be in (0, {MAX_VOLUME_SYNC_SECONDS:g}], got {value!r}")
    return seconds

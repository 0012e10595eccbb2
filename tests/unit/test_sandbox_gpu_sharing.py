"""The sandbox's GPU nodes advertise what the NVIDIA device plugin would: whole GPUs, MIG slices, shares."""

from __future__ import annotations

import dataclasses

import pytest

from sandbox.config import load_topology
from sandbox.nodeagent.nodes import gpu_advertised, node_spec

pytestmark = pytest.mark.unit
TOPOLOGY = load_topology()
GROUPS = {group.name: group for group in TOPOLOGY.node_groups}


@pytest.mark.parametrize(
    "group, changes, resources, labels",
    [
        (
            "gpu-v100",
            {},
            {"nvidia.com/gpu": "4"},
            {"nvidia.com/gpu.product": "Tesla-V100-PCIE-32GB", "nvidia.com/gpu.count": "4"},
        ),
        (
            "gpu-a100-mig",
            {},
            {"nvidia.com/mig-1g.10gb": "1", "nvidia.com/mig-3g.40gb": "1"},
            {
                "nvidia.com/mig.strategy": "mixed",
                "nvidia.com/mig-1g.10gb.count": "1",
                "nvidia.com/mig.config": "sandbox-mixed",
                "nvidia.com/mig.config.state": "success",
                "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB",
            },
        ),
        (
            "gpu-t4-shared",
            {},
            {"nvidia.com/gpu.shared": "4"},
            {
                "nvidia.com/gpu.replicas": "4",
                "nvidia.com/gpu.product": "Tesla-T4",
                "nvidia.com/gpu.count": "1",
            },
        ),
        (
            "gpu-t4-shared",
            {"gpu_time_slicing": {"replicas": 4}, "gpus_per_node": 2},
            {"nvidia.com/gpu": "8"},
            {"nvidia.com/gpu.replicas": "4", "nvidia.com/gpu.product": "Tesla-T4-SHARED"},
        ),
    ],
    ids=["whole", "mig-mixed", "time-sliced-renamed", "time-sliced-same-name"],
)
def test_gpu_nodes_advertise_as_the_device_plugin_does(group, changes, resources, labels):
    advertised, node_labels = gpu_advertised(dataclasses.replace(GROUPS[group], **changes))
    assert advertised == resources
    assert {key: node_labels.get(key) for key in labels} == labels


def test_a_mig_node_has_no_whole_gpus_and_keeps_the_gpu_taint():
    spec = node_spec(TOPOLOGY, GROUPS["gpu-a100-mig"], 0, 9)
    assert "nvidia.com/gpu" not in spec["capacity"]
    assert spec["capacity"]["nvidia.com/mig-3g.40gb"] == "1"
    assert spec["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]

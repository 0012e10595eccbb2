"""GPU capacity per node group from Node and Pod objects."""

from __future__ import annotations

import pytest

from cern_spawner.scaling.capacity import GroupSelector, summarize

pytestmark = pytest.mark.unit
LABEL = "magnum.openstack.org/nodegroup"
GPU = GroupSelector("gpu-v100", LABEL, "nvidia.com/gpu")
CPU = GroupSelector("default-worker", LABEL, "nvidia.com/gpu")


def node(name, group, gpus="4", ready=True):
    """`ready` True, False (a kubelet coming up says so) or "Unknown" (a kubelet that stopped reporting)."""
    status = ready if isinstance(ready, str) else ("True" if ready else "False")
    return {
        "metadata": {"name": name, "labels": {LABEL: group}},
        "status": {
            "allocatable": {"nvidia.com/gpu": gpus} if gpus is not None else {},
            "conditions": [{"type": "Ready", "status": status}],
        },
    }


def pod(name, gpus=1, node_name=None, group="gpu-v100", phase="Pending", deleting=False):
    metadata = {"name": name}
    if deleting:
        metadata["deletionTimestamp"] = "2026-11-27T00:00:00Z"
    return {
        "metadata": metadata,
        "spec": {
            "nodeName": node_name,
            "nodeSelector": {LABEL: group},
            "containers": [{"resources": {"limits": {"nvidia.com/gpu": str(gpus)}} if gpus else {}}],
        },
        "status": {"phase": phase},
    }


@pytest.mark.parametrize(
    ("nodes", "pods", "expected"),
    [
        pytest.param(
            [], [], dict(nodes=0, ready_nodes=0, allocatable_gpus=0, free_gpus=0, pending_gpus=0), id="empty"
        ),
        pytest.param(
            [node("g0", "gpu-v100")],
            [pod("a", node_name="g0", phase="Running"), pod("b", node_name="g0", phase="Running")],
            dict(nodes=1, allocatable_gpus=4, used_gpus=2, free_gpus=2, pending_gpus=0),
            id="two-in-use",
        ),
        pytest.param(
            [node("g0", "gpu-v100")],
            [pod(f"p{i}", node_name="g0", phase="Running") for i in range(4)] + [pod("waiting")],
            dict(free_gpus=0, pending_gpus=1),
            id="full-with-one-waiting",
        ),
        pytest.param(
            [node("g0", "gpu-v100")],
            [
                pod("done", node_name="g0", phase="Succeeded"),
                pod("going", node_name="g0", phase="Running", deleting=True),
            ],
            dict(used_gpus=0, free_gpus=4),
            id="finished-and-deleting-pods-free-their-gpus",
        ),
        pytest.param(
            [node("g0", "gpu-v100", ready=False)],
            [],
            dict(nodes=1, ready_nodes=0, allocatable_gpus=0, booting_gpus=4),
            id="joined-node-not-ready-yet-is-on-its-way",
        ),
        pytest.param(
            [node("g0", "gpu-v100", ready="Unknown")],
            [],
            dict(nodes=1, ready_nodes=0, allocatable_gpus=0, booting_gpus=0),
            id="lost-node-offers-nothing",
        ),
        pytest.param(
            [node("g0", "gpu-v100", gpus="0")],
            [pod("waiting")],
            dict(ready_nodes=1, allocatable_gpus=0, booting_gpus=4, pending_gpus=1),
            id="device-plugin-not-ready",
        ),
        pytest.param(
            [node("c0", "default-worker", gpus=None)],
            [pod("cpu", gpus=0, group="default-worker"), pod("other-group", group="gpu-a100")],
            dict(nodes=0, pending_gpus=0),
            id="other-groups-do-not-count",
        ),
    ],
)
def test_gpu_group_capacity(nodes, pods, expected):
    capacity = summarize(nodes, pods, [GPU, CPU], {"gpu-v100": 4})["gpu-v100"]
    for field, value in expected.items():
        assert getattr(capacity, field) == value, field

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


def pod(
    name,
    gpus=1,
    node_name=None,
    group="gpu-v100",
    phase="Pending",
    deleting=False,
    namespace="hub",
    owner=None,
):
    metadata = {"name": name, "namespace": namespace}
    if owner:
        metadata["ownerReferences"] = [{"kind": owner, "name": "x"}]
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
            # As the scheduler counts them: a terminating pod holds its GPU until it is gone.
            dict(used_gpus=1, free_gpus=3),
            id="finished-pods-free-their-gpus-deleting-ones-not-yet",
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
        pytest.param(
            [node("g0", "gpu-v100")],
            [pod("training", gpus=3, node_name="g0", phase="Running", namespace="ml-batch")],
            dict(used_gpus=3, free_gpus=1),
            id="another-namespaces-pod-holds-gpus-too",
        ),
        pytest.param(
            [node("g0", "gpu-v100")],
            [pod("theirs", namespace="ml-batch")],
            dict(pending_gpus=0),
            id="only-the-hubs-pending-pods-are-demand",
        ),
        pytest.param(
            [node("g0", "gpu-v100"), node("g1", "gpu-v100")],
            [pod(f"p{i}", node_name=f"g{i % 2}", phase="Running") for i in range(6)] + [pod("two", gpus=2)],
            dict(free_gpus=2, free_per_node=(1, 1), pending_requests=(2,)),
            id="free-gpus-per-node",
        ),
    ],
)
def test_gpu_group_capacity(nodes, pods, expected):
    capacity = summarize(nodes, pods, [GPU, CPU], {"gpu-v100": 4}, namespace="hub")["gpu-v100"]
    for field, value in expected.items():
        assert getattr(capacity, field) == value, field


@pytest.mark.parametrize(
    ("pods", "workloads"),
    [
        pytest.param([], 0, id="empty"),
        pytest.param(
            [pod("agent", gpus=0, node_name="g0", phase="Running", owner="DaemonSet")], 0, id="daemonset"
        ),
        pytest.param([pod("nb", gpus=0, node_name="g0", phase="Running")], 1, id="a-notebook"),
        pytest.param(
            [pod("job", gpus=0, node_name="g0", phase="Pending", owner="Job")], 1, id="bound-not-started"
        ),
        pytest.param([pod("done", gpus=0, node_name="g0", phase="Succeeded")], 0, id="finished"),
    ],
)
def test_a_node_is_busy_with_anything_but_daemonsets(pods, workloads):
    capacity = summarize([node("g0", "gpu-v100")], pods, [GPU], {"gpu-v100": 4})["gpu-v100"]
    assert capacity.members[0].workloads == workloads


def test_nodes_named_for_removal_are_no_longer_members():
    capacity = summarize(
        [node("g0", "gpu-v100"), node("g1", "gpu-v100")],
        [],
        [GPU],
        {"gpu-v100": 4},
        leaving=frozenset({"g0"}),
    )["gpu-v100"]
    assert [n.name for n in capacity.members] == ["g1"]
    assert capacity.free_gpus == 4


def test_a_cordoned_node_offers_no_free_gpu_and_the_server_id_comes_from_provider_id():
    cordoned = node("g0", "gpu-v100")
    cordoned["spec"] = {"unschedulable": True, "providerID": "openstack:///5f0c-uuid"}
    member = summarize([cordoned], [], [GPU], {"gpu-v100": 4})["gpu-v100"].members[0]
    assert (member.free_gpus, member.server_id) == (0, "5f0c-uuid")


@pytest.mark.parametrize(
    ("labels", "member"),
    [
        pytest.param({"magnum.openstack.org/nodegroup": "gpu-v100"}, True, id="its-group"),
        pytest.param({"magnum.openstack.org/nodegroup": "gpu-a100"}, False, id="another-group"),
        pytest.param({"other/label": "gpu-v100"}, False, id="the-name-under-another-label"),
        pytest.param(None, False, id="no-labels"),
    ],
)
def test_one_membership_test_for_hub_scaling_and_doctor(labels, member):
    from cern_spawner.catalog.model import in_node_group

    assert in_node_group(labels, "magnum.openstack.org/nodegroup", "gpu-v100") is member

"""The Cluster API backend: what each growth and shrink decision writes to the MachineDeployment and
its Machines (against a small in-memory store of custom objects), how it reads a node group, its
error words, and the catalog's `scaling: {backend: clusterapi}` block."""

from __future__ import annotations

import copy
import datetime

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from cern_spawner.catalog import load_catalog
from cern_spawner.scaling import backend
from cern_spawner.scaling.backend import GroupState
from cern_spawner.scaling.clusterapi import (
    Capacity,
    ClusterAPIGroups,
    capacity_annotations,
    group_state,
    translate,
)
from cern_spawner.scaling.errors import CeilingReached, NotAllowed, PermanentError, TemporaryError
from cern_spawner.scaling.hub import machine_deployment_capacity, scaled_groups
from cern_spawner.scaling.state import ScaledGroup
from tests.unit.catalog_samples import edited, problems_of, write

pytestmark = pytest.mark.unit

MD = "gpu-a100-md"
MIN = "cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size"
MAX = "cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size"
DELETE = "cluster.x-k8s.io/delete-machine"
CAP = "capacity.cluster-autoscaler.kubernetes.io/"
NOW = datetime.datetime(2026, 12, 3, 22, 0, tzinfo=datetime.UTC)
CAPACITY = Capacity(cpu="16", memory="128Gi", gpu_type="nvidia.com/gpu", gpu_count=4)
CAPACITY_ANNOTATIONS = {
    CAP + "cpu": "16",
    CAP + "memory": "128Gi",
    CAP + "gpu-type": "nvidia.com/gpu",
    CAP + "gpu-count": "4",
}


class Store:
    """Custom objects in one namespace; records every patch (plural, name, body)."""

    def __init__(self, replicas=0, annotations=None, machines=()):
        self.objects = {
            ("machinedeployments", MD): {
                "metadata": {"name": MD, "generation": 1, "annotations": dict(annotations or {})},
                "spec": {"replicas": replicas},
                "status": {"observedGeneration": 1, "phase": "Running", "replicas": replicas},
            }
        }
        for name, provider in machines:
            self.objects[("machines", name)] = {
                "metadata": {"name": name, "labels": {"cluster.x-k8s.io/deployment-name": MD}},
                "spec": {"providerID": provider},
            }
        self.patches = []

    def get(self, plural, name):
        return copy.deepcopy(self.objects[(plural, name)])

    def list(self, plural, label_selector):
        key, value = label_selector.split("=")
        return [
            copy.deepcopy(o)
            for (p, _), o in self.objects.items()
            if p == plural and o["metadata"].get("labels", {}).get(key) == value
        ]

    def patch(self, plural, name, body):
        self.patches.append((plural, name, body))
        return {}


def scaled(mode="resize", max_nodes=4, min_nodes=0):
    return ScaledGroup(
        name="gpu-a100",
        label="node.cluster.x-k8s.io/nodegroup",
        gpu_resource="nvidia.com/gpu",
        gpus_per_node=4,
        cluster=f"clusterapi:capi/{MD}",
        mode=mode,
        min_nodes=min_nodes,
        max_nodes=max_nodes,
    )


def state(node_count=0, min_nodes=0, max_nodes=None):
    return GroupState("gpu-a100", node_count, min_nodes, max_nodes, "RUNNING", "")


MACHINES = [("m-0", "openstack:///vm-0"), ("m-1", "openstack:///vm-1"), ("m-2", "openstack:///vm-2")]


@pytest.mark.parametrize(
    ("mode", "cloud", "target", "writes"),
    [
        pytest.param(
            "resize",
            state(0),
            2,
            [
                (
                    "machinedeployments",
                    MD,
                    {"spec": {"replicas": 2}, "metadata": {"annotations": CAPACITY_ANNOTATIONS}},
                )
            ],
            id="resize-from-zero",
        ),
        pytest.param(
            "resize",
            state(2, max_nodes=2),
            3,
            [
                ("machinedeployments", MD, {"metadata": {"annotations": {**CAPACITY_ANNOTATIONS, MAX: "3"}}}),
                (
                    "machinedeployments",
                    MD,
                    {"spec": {"replicas": 3}, "metadata": {"annotations": CAPACITY_ANNOTATIONS}},
                ),
            ],
            id="resize-above-the-autoscaler-max",
        ),
        pytest.param(
            "raise-min",
            state(1, min_nodes=1, max_nodes=4),
            2,
            [
                (
                    "machinedeployments",
                    MD,
                    {"spec": {"replicas": 2}, "metadata": {"annotations": CAPACITY_ANNOTATIONS}},
                ),
                ("machinedeployments", MD, {"metadata": {"annotations": {**CAPACITY_ANNOTATIONS, MIN: "2"}}}),
            ],
            id="raise-min-after-replicas",
        ),
    ],
)
def test_growth_writes(mode, cloud, target, writes):
    store = Store()
    backend.grow(ClusterAPIGroups(store, MD, CAPACITY), scaled(mode), cloud, target)
    assert store.patches == writes


def test_growth_beyond_the_catalog_ceiling_writes_nothing():
    store = Store()
    with pytest.raises(CeilingReached):
        backend.grow(ClusterAPIGroups(store, MD), scaled(max_nodes=2), state(2), 3)
    assert store.patches == []


MARK = {"metadata": {"annotations": {DELETE: "2026-12-03T22:00:00+00:00"}}}


@pytest.mark.parametrize(
    ("mode", "cloud", "target", "remove", "writes"),
    [
        pytest.param(
            "resize",
            state(3),
            1,
            ["vm-2", "vm-0"],
            [
                ("machines", "m-2", MARK),
                ("machines", "m-0", MARK),
                ("machinedeployments", MD, {"spec": {"replicas": 1}}),
            ],
            id="resize-marks-the-chosen-machines-first",
        ),
        pytest.param(
            "raise-min",
            state(3, min_nodes=3),
            1,
            ["vm-2"],
            [
                ("machinedeployments", MD, {"metadata": {"annotations": {MIN: "1"}}}),
            ],
            id="raise-min-lowers-min-only",
        ),
        pytest.param("raise-min", state(3, min_nodes=0), 0, ["vm-2"], [], id="raise-min-already-low"),
    ],
)
def test_shrink_writes(mode, cloud, target, remove, writes):
    store = Store(replicas=cloud.node_count, machines=MACHINES)
    backend.shrink(ClusterAPIGroups(store, MD, clock=lambda: NOW), scaled(mode), cloud, target, remove)
    assert store.patches == writes


def test_a_chosen_node_without_a_machine_stops_the_shrink_before_any_write():
    store = Store(replicas=3, machines=MACHINES)
    with pytest.raises(PermanentError, match="not a machine of this node group"):
        backend.shrink(
            ClusterAPIGroups(store, MD, clock=lambda: NOW), scaled(), state(3), 1, ["vm-1", "vm-9"]
        )
    assert store.patches == []


@pytest.mark.parametrize(
    ("deployment", "expected"),
    [
        pytest.param(
            {
                "metadata": {"generation": 3},
                "spec": {"replicas": 2},
                "status": {"observedGeneration": 3, "phase": "Running"},
            },
            GroupState("g", 2, 0, None, "RUNNING", ""),
            id="running-no-autoscaler",
        ),
        pytest.param(
            {
                "metadata": {"generation": 4, "annotations": {MIN: "1", MAX: "5"}},
                "spec": {"replicas": 3},
                "status": {"observedGeneration": 3, "phase": "Running"},
            },
            GroupState("g", 3, 1, 5, "UPDATE_IN_PROGRESS", "", autoscaled=True),
            id="write-not-yet-observed",
        ),
        pytest.param(
            {"metadata": {}, "spec": {"replicas": 2}, "status": {"phase": "ScalingUp"}},
            GroupState("g", 2, 0, None, "SCALINGUP_IN_PROGRESS", ""),
            id="scaling-up",
        ),
        pytest.param(
            {
                "metadata": {},
                "spec": {"replicas": 1},
                "status": {"phase": "Failed", "failureMessage": "no flavor"},
            },
            GroupState("g", 1, 0, None, "UPDATE_FAILED", "no flavor"),
            id="failed",
        ),
        pytest.param(
            {"metadata": {"annotations": {MIN: "0"}}, "spec": {}, "status": {"replicas": 1}},
            GroupState("g", 1, 0, None, "UNKNOWN", ""),
            id="no-replicas-field",
        ),
    ],
)
def test_group_state(deployment, expected):
    assert group_state("g", deployment) == expected


@pytest.mark.parametrize(
    ("capacity", "annotations"),
    [
        pytest.param(Capacity(), {}, id="nothing-known"),
        pytest.param(
            Capacity(
                cpu="8",
                memory="64Gi",
                gpu_type="nvidia.com/gpu",
                gpu_count=2,
                taints=(
                    {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"},
                    {"key": "x", "effect": "NoExecute"},
                ),
                labels={"node.cluster.x-k8s.io/nodegroup": "gpu-a100"},
            ),
            {
                CAP + "cpu": "8",
                CAP + "memory": "64Gi",
                CAP + "gpu-type": "nvidia.com/gpu",
                CAP + "gpu-count": "2",
                CAP + "taints": "nvidia.com/gpu=present:NoSchedule,x:NoExecute",
                CAP + "labels": "node.cluster.x-k8s.io/nodegroup=gpu-a100",
            },
            id="everything",
        ),
    ],
)
def test_capacity_annotations(capacity, annotations):
    assert capacity_annotations(capacity) == annotations


@pytest.mark.parametrize(
    ("annotations", "writes"),
    [
        pytest.param(
            {},
            [("machinedeployments", MD, {"metadata": {"annotations": CAPACITY_ANNOTATIONS}})],
            id="missing",
        ),
        pytest.param({**CAPACITY_ANNOTATIONS, MIN: "0"}, [], id="current"),
        pytest.param(
            {**CAPACITY_ANNOTATIONS, CAP + "gpu-count": "2"},
            [("machinedeployments", MD, {"metadata": {"annotations": {CAP + "gpu-count": "4"}}})],
            id="changed",
        ),
    ],
)
def test_reading_restores_the_capacity_annotations(annotations, writes):
    store = Store(replicas=1, annotations=annotations)
    assert ClusterAPIGroups(store, MD, CAPACITY).state("gpu-a100").node_count == 1
    assert store.patches == writes


@pytest.mark.parametrize(
    ("error", "kind", "words"),
    [
        pytest.param(
            ApiException(status=401, reason="Unauthorized"), PermanentError, "credentials", id="401"
        ),
        pytest.param(ApiException(status=403, reason="Forbidden"), NotAllowed, "RBAC", id="403"),
        pytest.param(
            ApiException(status=404, reason="Not Found"), PermanentError, "does not exist", id="404"
        ),
        pytest.param(
            ApiException(status=409, reason="Conflict"), TemporaryError, "changed meanwhile", id="409"
        ),
        pytest.param(ApiException(status=422, reason="Invalid"), PermanentError, "refused", id="422"),
        pytest.param(ApiException(status=503, reason="Unavailable"), TemporaryError, "failing", id="503"),
        pytest.param(
            ConnectionRefusedError(111, "refused"), TemporaryError, "cannot be reached", id="refused"
        ),
    ],
)
def test_errors_are_wrapped_at_the_edge(error, kind, words):
    class Failing(Store):
        def get(self, plural, name):
            raise error

    with pytest.raises(kind, match=words) as raised:
        ClusterAPIGroups(Failing(), MD).state("gpu-a100")
    assert raised.value.__cause__ is error
    assert type(translate(error, "x")) is kind


# -- the catalog ------------------------------------------------------------------------------------
def with_scaling(block: str) -> str:
    return edited("    gpu: {per_node: 4}\n", f"    gpu: {{per_node: 4}}\n    scaling:\n{block}")


CAPI = (
    "      backend: clusterapi\n      namespace: capi\n      machine_deployment: gpu-a100-md\n"
    "      max_nodes: 3\n"
)


def test_a_cluster_api_group_reaches_the_controller(tmp_path):
    block = CAPI + "      mode: raise-min\n      capacity: {cpu: '16', memory: 128Gi}\n"
    catalog = load_catalog([write(tmp_path, {"a.yaml": with_scaling(block)})])
    (group,) = scaled_groups(catalog)
    assert (group.cluster, group.mode, group.max_nodes) == ("clusterapi:capi/gpu-a100-md", "raise-min", 3)
    assert capacity_annotations(machine_deployment_capacity(catalog.node_groups["gpu-v100"])) == {
        CAP + "cpu": "16",
        CAP + "memory": "128Gi",
        CAP + "gpu-type": "nvidia.com/gpu",
        CAP + "gpu-count": "4",
        CAP + "taints": "nvidia.com/gpu=present:NoSchedule",
        CAP + "labels": "magnum.openstack.org/nodegroup=gpu-v100",
    }


@pytest.mark.parametrize(
    ("block", "path", "message"),
    [
        pytest.param(
            CAPI.replace("      machine_deployment: gpu-a100-md\n", ""),
            "node_groups.gpu-v100.scaling",
            "backend clusterapi needs scaling.machine_deployment",
            id="no-machine-deployment",
        ),
        pytest.param(
            CAPI + "      cluster: c\n",
            "node_groups.gpu-v100.scaling.cluster",
            "scaling.cluster does not apply to backend clusterapi",
            id="magnum-key",
        ),
        pytest.param(
            "      backend: magnum\n      namespace: capi\n      max_nodes: 2\n",
            "node_groups.gpu-v100.scaling",
            "backend magnum needs scaling.cluster",
            id="magnum-without-cluster",
        ),
    ],
)
def test_bad_backend_blocks(tmp_path, block, path, message):
    problems = problems_of(tmp_path, {"a.yaml": with_scaling(block)})
    assert (path, message) in [(p.path, p.message) for p in problems]


@pytest.mark.parametrize(
    ("call_it", "call"),
    [
        pytest.param(lambda g: g.state("gpu-a100"), "get_node_group", id="read"),
        pytest.param(lambda g: g.resize("gpu-a100", 2), "resize", id="replicas"),
        pytest.param(lambda g: g.patch("gpu-a100", state(1), min_node_count=1), "patch_node_group", id="min"),
    ],
)
def test_cluster_api_calls_are_timed_apart_from_magnums(call_it, call):
    from prometheus_client import REGISTRY

    def count(backend_name):
        labels = {"backend": backend_name, "call": call, "result": "ok"}
        return REGISTRY.get_sample_value("cern_spawner_cloud_request_duration_seconds_count", labels) or 0

    before = count("clusterapi"), count("magnum")
    call_it(
        ClusterAPIGroups(Store(replicas=1, annotations=CAPACITY_ANNOTATIONS), MD, CAPACITY, clock=lambda: NOW)
    )
    assert (count("clusterapi"), count("magnum")) == (before[0] + 1, before[1])

"""The picker for MIG slices and time-sliced GPUs: availability per resource, and the card's words."""

from __future__ import annotations

import pytest

from cern_spawner.catalog import load_catalog
from cern_spawner.scaling.capacity import GroupSelector, summarize
from cern_spawner.scaling.hub import scaled_groups
from cern_spawner.scaling.magnum import GroupState
from cern_spawner.scaling.state import GroupStatus
from cern_spawner.web.availability import report
from cern_spawner.web.cards import card
from tests.unit.test_catalog_gpu_sharing import SHARED

pytestmark = pytest.mark.unit
LABEL = "magnum.openstack.org/nodegroup"
SMALL, MEDIUM = "nvidia.com/mig-1g.10gb", "nvidia.com/mig-2g.20gb"
# Both sharing groups grow through Magnum, up to 2 nodes.
TEXT = SHARED.replace(
    "    taint: {key: nvidia.com/gpu, value: present, effect: NoSchedule}\n",
    "    taint: {key: nvidia.com/gpu, value: present, effect: NoSchedule}\n"
    "    scaling: {backend: magnum, cluster: c, max_nodes: 2}\n",
).replace(
    "time_slicing: {replicas: 4}}\n",
    "time_slicing: {replicas: 4}}\n    scaling: {backend: magnum, cluster: c, max_nodes: 2}\n",
)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    directory = tmp_path_factory.mktemp("catalog")
    (directory / "a.yaml").write_text(TEXT)
    return load_catalog([directory])


def node(name, group, allocatable):
    return {
        "metadata": {"name": name, "labels": {LABEL: group}},
        "status": {"allocatable": allocatable, "conditions": [{"type": "Ready", "status": "True"}]},
    }


def pod(name, group, resource, node_name=None):
    spec = {
        "containers": [{"name": "notebook", "resources": {"limits": {resource: "1"}}}],
        "nodeSelector": {LABEL: group},
        **({"nodeName": node_name} if node_name else {}),
    }
    return {"metadata": {"name": name, "namespace": "hub"}, "spec": spec, "status": {"phase": "Running"}}


def statuses(catalog, nodes, pods):
    result = {}
    for group in scaled_groups(catalog):
        selector = GroupSelector(group.name, group.label, group.gpu_resource, group.resources)
        capacity = summarize(nodes, pods, [selector], {group.name: group.gpus_per_node}, "hub")[group.name]
        cloud = GroupState(group.name, capacity.nodes, 0, 2, "UPDATE_COMPLETE", "")
        result[group.name] = GroupStatus(capacity=capacity, cloud=cloud)
    return result


MIG_NODE = node("m0", "a100-mig", {SMALL: "3", MEDIUM: "2"})
T4_NODE = node("t0", "t4-shared", {"nvidia.com/gpu": "8"})


@pytest.mark.parametrize(
    "nodes, pods, slug, state, text",
    [
        ([MIG_NODE], [pod("a", "a100-mig", SMALL, "m0")], "mig-small", "free", "2 of 3 1g.10gb slices free"),
        (
            [MIG_NODE],
            [pod(f"p{i}", "a100-mig", SMALL, "m0") for i in range(3)],
            "mig-small",
            "grow",
            "No 1g.10gb slice free now: a new GPU node will be started (several minutes)",
        ),
        (
            [MIG_NODE],
            [pod(f"p{i}", "a100-mig", SMALL, "m0") for i in range(2)] + [pod("w", "a100-mig", SMALL)],
            "mig-small",
            "grow",
            "No 1g.10gb slice free now: a new GPU node will be started (several minutes)",
        ),
        (
            [],
            [],
            "mig-small",
            "grow",
            "No 1g.10gb slice free now: a new GPU node will be started (several minutes)",
        ),
        (
            [T4_NODE],
            [pod(f"p{i}", "t4-shared", "nvidia.com/gpu", "t0") for i in range(6)],
            "t4-share",
            "free",
            "Shared GPU: 2 of 8 free",
        ),
        (
            [T4_NODE, node("t1", "t4-shared", {"nvidia.com/gpu": "8"})],
            [pod(f"p{i}", "t4-shared", "nvidia.com/gpu", f"t{i % 2}") for i in range(16)],
            "t4-share",
            "blocked",
            "Unavailable: GPU limit reached",
        ),
    ],
    ids=[
        "slices-free",
        "slices-used-up",
        "last-slice-promised",
        "mig-group-at-zero",
        "shares-free",
        "shares-at-ceiling",
    ],
)
def test_availability_per_resource(catalog, nodes, pods, slug, state, text):
    body = report(catalog, [], statuses(catalog, nodes, pods), scaled_groups(catalog))
    verdict = body["profiles"][slug]
    assert (verdict["state"], verdict["text"]) == (state, text)


def test_free_slices_of_another_type_do_not_count(catalog):
    pods = [pod(f"p{i}", "a100-mig", SMALL, "m0") for i in range(3)]  # both 2g.20gb slices still free
    verdict = report(catalog, [], statuses(catalog, [MIG_NODE], pods), scaled_groups(catalog))["profiles"][
        "mig-small"
    ]
    assert (verdict["free_gpus"], verdict["total_gpus"]) == (0, 3)


@pytest.mark.parametrize(
    "slug, gpu, gpus",
    [
        ("mig-small", "1 MIG slice (1g.10gb), NVIDIA A100 SXM4 80GB", 1),
        ("t4-share", "1 shared GPU (time-sliced), Tesla T4", 1),
        ("t4-renamed", "1 shared GPU (time-sliced)", 1),
        ("v100", "2 GPUs", 2),
    ],
    ids=["mig-slice", "time-sliced", "time-sliced-no-product", "whole"],
)
def test_card_words(catalog, slug, gpu, gpus):
    shown = card(catalog.profile(slug), catalog)
    assert (shown["gpu"], shown["gpus"]) == (gpu, gpus)


def test_sharing_groups_scale_in_what_their_nodes_advertise(catalog):
    groups = {g.name: (g.gpu_resource, g.gpus_per_node, g.resources) for g in scaled_groups(catalog)}
    assert groups == {
        "a100-mig": (SMALL, 5, ((SMALL, 3), (MEDIUM, 2))),
        "t4-shared": ("nvidia.com/gpu", 8, (("nvidia.com/gpu", 8),)),
    }

"""MIG-partitioned and time-sliced GPU groups in the catalog: their checks, resources and pod specs."""

import pytest

from cern_spawner.catalog import Problem, load_catalog, to_profile_list
from cern_spawner.catalog.gpu_sharing import layout_problem, mig_resource, mig_table
from tests.unit.catalog_samples import problems_of, write

pytestmark = pytest.mark.unit

# Line numbers matter: the problem cases below point into this text.
SHARED = """\
node_groups:
  a100-mig:
    gpu:
      per_node: 1
      product: NVIDIA-A100-SXM4-80GB
      mig: {slices: {1g.10gb: 3, 2g.20gb: 2}, config: custom-mixed}
    taint: {key: nvidia.com/gpu, value: present, effect: NoSchedule}
  t4-shared:
    gpu: {per_node: 2, product: Tesla-T4, time_slicing: {replicas: 4}}
  t4-renamed:
    gpu: {per_node: 1, time_slicing: {replicas: 8, rename_by_default: true}}
  v100: {gpu: {per_node: 4}}
profiles:
  - slug: mig-small
    display_name: Small slice
    kind: shared
    cpu: {guarantee: 1, limit: 2}
    memory: {guarantee: 2G, limit: 4G}
    mig_slice: 1g.10gb
    node_group: a100-mig
  - slug: t4-share
    display_name: Shared T4
    kind: shared
    cpu: {guarantee: 1, limit: 2}
    memory: {guarantee: 2G, limit: 4G}
    shared_gpu: true
    node_group: t4-shared
  - slug: t4-renamed
    display_name: Shared T4 (renamed)
    kind: dedicated
    cpu: 2
    memory: 4G
    shared_gpu: true
    node_group: t4-renamed
  - slug: v100
    display_name: Whole V100
    kind: dedicated
    cpu: 2
    memory: 4G
    gpus: 2
    node_group: v100
"""


def edited(old, new):
    assert old in SHARED, old
    return SHARED.replace(old, new)


def test_each_group_advertises_its_resources(tmp_path):
    catalog = load_catalog([write(tmp_path, {"a.yaml": SHARED})])
    resources = {name: group.gpu.node_resources for name, group in catalog.node_groups.items()}
    assert resources == {
        "a100-mig": (("nvidia.com/mig-1g.10gb", 3), ("nvidia.com/mig-2g.20gb", 2)),
        "t4-shared": (("nvidia.com/gpu", 8),),
        "t4-renamed": (("nvidia.com/gpu.shared", 8),),
        "v100": (("nvidia.com/gpu", 4),),
    }
    assert [catalog.node_groups[n].gpu.sharing for n in resources] == [
        "mig",
        "time-sliced",
        "time-sliced",
        "whole",
    ]
    assert [p.gpu_units for p in catalog.profiles] == [1, 1, 1, 2]


@pytest.mark.parametrize(
    "slug, limits, selector, tolerations",
    [
        (
            "mig-small",
            {"nvidia.com/mig-1g.10gb": "1"},
            {"magnum.openstack.org/nodegroup": "a100-mig", "nvidia.com/mig.config": "custom-mixed"},
            [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        ),
        ("t4-share", {"nvidia.com/gpu": "1"}, {"magnum.openstack.org/nodegroup": "t4-shared"}, None),
        (
            "t4-renamed",
            {"nvidia.com/gpu.shared": "1"},
            {"magnum.openstack.org/nodegroup": "t4-renamed"},
            None,
        ),
        ("v100", {"nvidia.com/gpu": "2"}, {"magnum.openstack.org/nodegroup": "v100"}, None),
    ],
    ids=["mig-slice", "time-sliced", "time-sliced-renamed", "whole-gpus"],
)
def test_profile_asks_for_its_resource(tmp_path, slug, limits, selector, tolerations):
    catalog = load_catalog([write(tmp_path, {"a.yaml": SHARED})])
    (entry,) = to_profile_list(catalog, [catalog.profile(slug)])
    override = entry["kubespawner_override"]
    assert override["extra_resource_limits"] == limits
    assert override["extra_resource_guarantees"] == limits  # extended resources: requests = limits
    assert override["node_selector"] == selector
    assert override.get("tolerations") == tolerations


# name, text, expected problems: (line, path, message, hint)
BROKEN = [
    (
        "slice-not-in-layout",
        edited("mig_slice: 1g.10gb", "mig_slice: 3g.40gb"),
        [
            (
                19,
                "profiles[0].mig_slice",
                "mig-small asks for a 3g.40gb MIG slice but a a100-mig node has only 1g.10gb, 2g.20gb",
                "ask for one of those, or add 3g.40gb to the group's gpu.mig.slices",
            )
        ],
    ),
    (
        "slice-on-group-without-mig",
        edited(
            "    mig_slice: 1g.10gb\n    node_group: a100-mig", "    mig_slice: 1g.10gb\n    node_group: v100"
        ),
        [
            (
                19,
                "profiles[0].mig_slice",
                "mig-small asks for a 1g.10gb MIG slice but node group 'v100' has no MIG slices",
                "pick a node group with gpu.mig: (a100-mig), or give 'v100' one",
            )
        ],
    ),
    (
        "shared-gpu-on-whole-group",
        edited(
            "    shared_gpu: true\n    node_group: t4-shared", "    shared_gpu: true\n    node_group: v100"
        ),
        [
            (
                26,
                "profiles[1].shared_gpu",
                "t4-share asks for a shared GPU but node group 'v100' does not time-slice its GPUs",
                "pick a node group with gpu.time_slicing: (t4-shared, t4-renamed)",
            )
        ],
    ),
    (
        "whole-gpus-on-mig-group",
        edited("    gpus: 2\n    node_group: v100", "    gpus: 1\n    node_group: a100-mig"),
        [
            (
                40,
                "profiles[3].gpus",
                "v100 asks for whole GPUs but the GPUs of 'a100-mig' are MIG slices",
                "ask for one slice instead: mig_slice: one of 1g.10gb, 2g.20gb",
            )
        ],
    ),
    (
        "whole-gpus-on-time-sliced-group",
        edited("    gpus: 2\n    node_group: v100", "    gpus: 1\n    node_group: t4-shared"),
        [
            (
                40,
                "profiles[3].gpus",
                "v100 asks for whole GPUs but the GPUs of 't4-shared' are time-sliced",
                "ask for a share instead: shared_gpu: true (and no gpus:)",
            )
        ],
    ),
    (
        "two-kinds-of-gpu",
        edited("    mig_slice: 1g.10gb\n", "    mig_slice: 1g.10gb\n    shared_gpu: true\n"),
        [
            (
                20,
                "profiles[0].shared_gpu",
                "mig-small asks for mig_slice and shared_gpu: a profile holds one kind of GPU",
                "keep one of mig_slice, shared_gpu",
            )
        ],
    ),
    (
        "no-gpu-on-mig-group",
        edited("    mig_slice: 1g.10gb\n", ""),
        [
            (
                19,
                "profiles[0].node_group",
                "mig-small asks for no GPUs but 'a100-mig' is a GPU node group",
                "set mig_slice: (one of 1g.10gb, 2g.20gb), or pick a node group without gpu:",
            )
        ],
    ),
    (
        "not-a-profile-of-the-product",
        edited("1g.10gb: 3, 2g.20gb: 2", "1g.10gb: 3, 2g.10gb: 2").replace(
            "mig_slice: 1g.10gb", "mig_slice: 2g.10gb"
        ),
        [
            (
                6,
                "node_groups.a100-mig.gpu.mig.slices.2g.10gb",
                "'2g.10gb' is not a MIG profile of the A100-80GB (NVIDIA-A100-SXM4-80GB)",
                "its profiles: 1g.10gb, 1g.20gb, 2g.20gb, 3g.40gb, 4g.40gb, 7g.80gb",
            )
        ],
    ),
    (
        "layout-too-big",
        edited("1g.10gb: 3, 2g.20gb: 2", "1g.10gb: 4, 2g.20gb: 2"),
        [
            (
                6,
                "node_groups.a100-mig.gpu.mig.slices",
                "a node's MIG layout (4 × 1g.10gb, 2 × 2g.20gb) cannot be made: the slices need 8 compute "
                "slices but 1 GPU(s) of 7 each cannot hold them",
                "lower the counts, or raise per_node if the nodes have more GPUs",
            )
        ],
    ),
    (
        "mig-without-product",
        edited("      product: NVIDIA-A100-SXM4-80GB\n", ""),
        [
            (
                5,
                "node_groups.a100-mig.gpu.mig",
                "a MIG node group needs gpu.product, to check its slices against the GPU model",
                "set product: to the nodes' nvidia.com/gpu.product label, e.g. NVIDIA-A100-SXM4-80GB",
            )
        ],
    ),
    (
        "mig-and-time-slicing",
        edited("config: custom-mixed}\n", "config: custom-mixed}\n      time_slicing: {replicas: 2}\n"),
        [
            (
                7,
                "node_groups.a100-mig.gpu.time_slicing",
                "a node group's GPUs are either MIG slices or time-sliced, not both",
                "keep mig: or time_slicing:, or make two node groups",
            )
        ],
    ),
]


@pytest.mark.parametrize("text, expected", [case[1:] for case in BROKEN], ids=[case[0] for case in BROKEN])
def test_broken_sharing(tmp_path, text, expected):
    file = str(tmp_path / "a.yaml")
    assert problems_of(tmp_path, {"a.yaml": text}) == [Problem(file, *problem) for problem in expected]


@pytest.mark.parametrize(
    "text, line, path, message",
    [
        (
            edited("mig_slice: 1g.10gb", "mig_slice: 1g.10GB"),
            19,
            "profiles[0].mig_slice",
            "'1g.10GB' is not a valid name here",
        ),
        (
            edited("{replicas: 4}", "{replicas: 1}"),
            9,
            "node_groups.t4-shared.gpu.time_slicing.replicas",
            "must be at least 2, not 1",
        ),
        (
            edited("config: custom-mixed", "layout: custom-mixed"),
            6,
            "node_groups.a100-mig.gpu.mig.layout",
            "unknown key 'layout'",
        ),
        (
            edited("2g.20gb: 2}", "2g.20gb: 0}"),
            6,
            "node_groups.a100-mig.gpu.mig.slices.2g.20gb",
            "must be at least 1, not 0",
        ),
    ],
    ids=["slice-name-shape", "one-replica", "unknown-mig-key", "zero-slices"],
)
def test_schema_refuses(tmp_path, text, line, path, message):
    (problem,) = problems_of(tmp_path, {"a.yaml": text})
    assert (problem.line, problem.path, problem.message) == (line, path, message)


@pytest.mark.parametrize(
    "product, model",
    [
        ("NVIDIA-A100-SXM4-40GB", "A100-40GB"),
        ("NVIDIA-A100-PCIE-40GB", "A100-40GB"),
        ("NVIDIA-A100-SXM4-80GB", "A100-80GB"),
        ("NVIDIA-A100-80GB-PCIe", "A100-80GB"),
        ("NVIDIA-H100-80GB-HBM3", "H100-80GB"),
        ("NVIDIA-H100-NVL", None),
        ("NVIDIA-A30", "A30-24GB"),
        ("Tesla-T4", None),
        (None, None),
    ],
    ids=[
        "a100-sxm-40",
        "a100-pcie-40",
        "a100-sxm-80",
        "a100-pcie-80",
        "h100-80",
        "h100-nvl",
        "a30",
        "t4",
        "none",
    ],
)
def test_mig_table_of_product(product, model):
    table = mig_table(product)
    assert (table.model if table else None) == model


@pytest.mark.parametrize(
    "slices, per_node, product, fits",
    [
        ({"1g.10gb": 7}, 1, "A100-80GB", True),
        ({"1g.10gb": 8}, 1, "A100-80GB", False),
        ({"3g.40gb": 2}, 1, "A100-80GB", True),
        ({"4g.40gb": 1, "3g.40gb": 1}, 1, "A100-80GB", True),
        ({"4g.40gb": 2}, 1, "A100-80GB", False),  # 8 compute slices
        ({"1g.20gb": 4, "1g.10gb": 1}, 1, "A100-80GB", False),  # 9 memory slices
        ({"7g.80gb": 1, "1g.10gb": 7}, 2, "A100-80GB", True),
        ({"4g.40gb": 2}, 2, "A100-80GB", True),
        ({"4g.24gb": 1}, 1, "A30", True),
        ({"2g.12gb": 3}, 1, "A30", False),
        ({"2g.99gb": 3}, 1, None, True),  # unknown product: compute slices only
    ],
    ids=[
        "seven-small",
        "eight-small",
        "two-halves",
        "four-plus-three",
        "two-fours",
        "memory-over",
        "two-gpus",
        "a-four-per-gpu",
        "a30-whole",
        "a30-over",
        "unknown-product",
    ],
)
def test_layout_fits(slices, per_node, product, fits):
    table = mig_table({"A100-80GB": "NVIDIA-A100-SXM4-80GB", "A30": "NVIDIA-A30"}.get(product))
    assert (layout_problem(slices, per_node, table) is None) == fits


def test_mig_resource_keeps_the_vendor_domain():
    assert mig_resource("nvidia.com/gpu", "3g.40gb") == "nvidia.com/mig-3g.40gb"

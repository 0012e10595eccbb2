"""Loading profile YAML: the shipped catalog, merging files, sources and version, optional fields."""

import hashlib
from pathlib import Path

import pytest

from cern_spawner.catalog import GPU, NodeGroup, load_catalog
from tests.unit.catalog_samples import BASE, edited, write

pytestmark = pytest.mark.unit

PROFILES_DIR = Path(__file__).resolve().parents[2] / "profiles"


# The shipped catalog's profiles, written out literally (the former hard-coded seed's values).
# slug, display_name, kind, (cpu guarantee, limit), (mem guarantee, limit), gpus, node group, default, roles
DEFAULT_PROFILES = [
    (
        "shared-1g",
        "Shared, 1 GB memory, 0.5 CPU core",
        "shared",
        (0.1, 0.5),
        ("512M", "1G"),
        0,
        "default-worker",
        False,
        (),
    ),
    (
        "shared-2g",
        "Shared, 2 GB memory, 1 CPU core",
        "shared",
        (0.2, 1),
        ("1G", "2G"),
        0,
        "default-worker",
        True,
        (),
    ),
    (
        "shared-4g",
        "Shared, 4 GB memory, 2 CPU cores",
        "shared",
        (0.5, 2),
        ("2G", "4G"),
        0,
        "default-worker",
        False,
        (),
    ),
    (
        "gpu-1",
        "Dedicated 1 GPU, 4GB memory, 2 CPU cores",
        "dedicated",
        (2, 2),
        ("4G", "4G"),
        1,
        "gpu-v100",
        False,
        ("gpu-users",),
    ),
]
DEFAULT_SLUGS = [row[0] for row in DEFAULT_PROFILES]


def test_default_yaml_has_the_profiles_in_order():
    catalog = load_catalog([PROFILES_DIR])
    assert [p.slug for p in catalog.profiles] == DEFAULT_SLUGS
    assert catalog.default_profile.slug == "shared-2g"


@pytest.mark.parametrize(
    "slug, display_name, kind, cpu, mem, gpus, node_group, is_default, allowed_roles",
    DEFAULT_PROFILES,
    ids=DEFAULT_SLUGS,
)
def test_default_yaml_profile(
    slug, display_name, kind, cpu, mem, gpus, node_group, is_default, allowed_roles
):
    profile = load_catalog([PROFILES_DIR]).profile(slug)
    assert profile.display_name == display_name
    assert profile.description
    assert profile.kind == kind
    assert (profile.cpu_guarantee, profile.cpu_limit) == cpu
    assert (profile.mem_guarantee, profile.mem_limit) == mem
    assert profile.gpus == gpus
    assert profile.node_group == node_group
    assert profile.default is is_default
    assert profile.allowed_roles == allowed_roles


def test_default_yaml_node_groups():
    catalog = load_catalog([PROFILES_DIR])
    assert catalog.node_groups["default-worker"] == NodeGroup(
        name="default-worker", zones=("cern-geneva-a", "cern-geneva-b")
    )
    gpu_group = catalog.node_groups["gpu-v100"]
    assert gpu_group.label == "magnum.openstack.org/nodegroup"
    assert gpu_group.gpu == GPU(resource="nvidia.com/gpu", per_node=4, product="Tesla-V100-PCIE-32GB")
    assert dict(gpu_group.taint) == {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
    assert dict(gpu_group.scaling) == {
        "backend": "magnum",
        "cluster": "sandbox",
        "mode": "resize",
        "min_nodes": 0,
        "max_nodes": 4,
    }


def test_sources_and_version(tmp_path):
    write(tmp_path, {"b.yaml": "profiles: []\n", "a.yaml": BASE, "notes.txt": "ignored", ".#a.yaml": "x: ["})
    catalog = load_catalog([tmp_path])
    assert catalog.sources == (str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml"))
    assert catalog.version == hashlib.sha256(BASE.encode() + b"profiles: []\n").hexdigest()
    # Argument order does not matter; a file named directly is read like one found in a directory.
    assert load_catalog([tmp_path / "b.yaml", tmp_path / "a.yaml"]) == catalog
    assert load_catalog(str(tmp_path)) == catalog


def test_version_changes_with_any_edit(tmp_path):
    before = load_catalog([write(tmp_path, {"a.yaml": BASE})]).version
    after = load_catalog([write(tmp_path, {"a.yaml": BASE + "# a comment\n"})]).version
    assert before != after


def test_files_merge_node_groups_and_concatenate_profiles(tmp_path):
    groups, _, profiles = BASE.partition("profiles:\n")
    extra = """\
node_groups:
  highmem: {zones: [a]}
profiles:
  - {slug: highmem-64g, display_name: H, kind: dedicated, cpu: 8, memory: 64G, node_group: highmem}
"""
    write(tmp_path, {"1-groups.yaml": groups, "2-base.yaml": "profiles:\n" + profiles, "3-extra.yaml": extra})
    catalog = load_catalog([tmp_path])
    assert list(catalog.node_groups) == ["default-worker", "gpu-v100", "highmem"]
    assert [p.slug for p in catalog.profiles] == ["shared-2g", "gpu-1", "highmem-64g"]


def test_empty_file_contributes_nothing(tmp_path):
    catalog = load_catalog([write(tmp_path, {"a.yaml": BASE, "empty.yaml": "", "comments.yaml": "# only\n"})])
    assert len(catalog.profiles) == 2
    assert len(catalog.sources) == 3


def test_without_default_the_first_profile_is_default(tmp_path):
    catalog = load_catalog([write(tmp_path, {"a.yaml": edited("    default: true\n", "")})])
    assert [p.default for p in catalog.profiles] == [True, False]
    assert catalog.default_profile.slug == "shared-2g"


def test_optional_fields_are_read(tmp_path):
    extra = """\
    image: img/a:1
    image_choices:
      a: {display_name: A, image: img/a:1}
      b: {display_name: B, image: img/b:1}
    env: {NVIDIA_VISIBLE_DEVICES: all, OMP_NUM_THREADS: 2}
    allowed_roles: [gpu-users, admins]
    start_timeout: 900
    idle_timeout: 3600
"""
    profile = load_catalog([write(tmp_path, {"a.yaml": BASE + extra})]).profile("gpu-1")
    assert profile.image == "img/a:1"
    assert profile.image_choices == (("a", "A", "img/a:1"), ("b", "B", "img/b:1"))
    assert dict(profile.env) == {"NVIDIA_VISIBLE_DEVICES": "all", "OMP_NUM_THREADS": "2"}
    assert profile.allowed_roles == ("gpu-users", "admins")
    assert (profile.start_timeout, profile.idle_timeout) == (900, 3600)


@pytest.mark.parametrize(
    "cpu, memory, cores, mem_text",
    [
        ("500m", "1.5Gi", 0.5, "1.5Gi"),
        ('"2"', "1073741824", 2.0, "1073741824"),
        ("0.25", "512M", 0.25, "512M"),
    ],
    ids=["millicores-gi", "string-cores-bytes", "fraction-m"],
)
def test_quantity_forms(tmp_path, cpu, memory, cores, mem_text):
    text = edited("    cpu: 2\n    memory: 4G\n", f"    cpu: {cpu}\n    memory: {memory}\n")
    profile = load_catalog([write(tmp_path, {"a.yaml": text})]).profile("gpu-1")
    assert (profile.cpu_guarantee, profile.cpu_limit) == (cores, cores)
    assert (profile.mem_guarantee, profile.mem_limit) == (mem_text, mem_text)


def test_dedicated_may_use_an_equal_guarantee_and_limit(tmp_path):
    text = edited("    memory: 4G\n", "    memory: {guarantee: 4Gi, limit: 4G}\n")
    assert load_catalog([write(tmp_path, {"a.yaml": text})]).profile("gpu-1").mem_limit == "4G"

"""The pure mapping from catalog profiles to KubeSpawner profile_list entries, and KubeSpawner applying it."""

import copy
import dataclasses
import json
from pathlib import Path
from types import MappingProxyType

import pytest
from kubespawner import KubeSpawner
from traitlets.config import Config

from cern_spawner.catalog import GPU, Catalog, NodeGroup, Profile, load_catalog, to_profile_list
from cern_spawner.catalog.model import ImageChoice
from cern_spawner.catalog.to_kubespawner import ProfileEntry, ProfileList

pytestmark = pytest.mark.unit

PROFILES_DIR = Path(__file__).resolve().parents[2] / "profiles"
GOLDEN = Path(__file__).resolve().parent / "data" / "default_profile_list.json"
GPU_TAINT = MappingProxyType({"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"})
CPU_GROUP = NodeGroup(name="cpu", zones=("a", "b"))
GPU_GROUP = NodeGroup(name="gpu-v100", gpu=GPU(per_node=4), taint=GPU_TAINT)
SHARED = Profile(
    slug="shared",
    display_name="Shared",
    kind="shared",
    cpu_guarantee=0.5,
    cpu_limit=2,
    mem_guarantee="1G",
    mem_limit="2G",
    node_group="cpu",
    default=True,
)
DEDICATED = Profile(
    slug="gpu-2",
    display_name="Two GPUs",
    kind="dedicated",
    cpu_guarantee=4,
    cpu_limit=4,
    mem_guarantee="8G",
    mem_limit="8G",
    gpus=2,
    node_group="gpu-v100",
)
SPREAD = {
    "topologySpreadConstraints": [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"cern-spawner/node-group": "cpu"}},
        }
    ]
}


def catalog(*profiles, groups=(CPU_GROUP, GPU_GROUP)):
    return Catalog(node_groups={g.name: g for g in groups}, profiles=profiles or (SHARED, DEDICATED))


def override(profile, groups=(CPU_GROUP, GPU_GROUP), **kwargs):
    (entry,) = to_profile_list(catalog(profile, groups=groups), **kwargs)
    return entry["kubespawner_override"]


def test_default_yaml_maps_exactly_like_the_golden_file():
    # The golden file was generated once from the former hard-coded seed profiles (written
    # independently of the catalog): the shipped catalog must keep producing exactly those entries.
    assert to_profile_list(load_catalog([PROFILES_DIR])) == json.loads(GOLDEN.read_text())


def test_shared_entry():
    assert to_profile_list(catalog(SHARED)) == [
        {
            "display_name": "Shared",
            "slug": "shared",
            "description": "",
            "default": True,
            "kubespawner_override": {
                "cpu_guarantee": 0.5,
                "cpu_limit": 2,
                "mem_guarantee": "1G",
                "mem_limit": "2G",
                "node_selector": {"magnum.openstack.org/nodegroup": "cpu"},
                "extra_labels": {"cern-spawner/profile": "shared", "cern-spawner/node-group": "cpu"},
                "extra_pod_config": SPREAD,
            },
        }
    ]


def test_gpu_entry_has_gpus_and_toleration_but_no_spread():
    o = override(DEDICATED)
    assert o["extra_resource_guarantees"] == o["extra_resource_limits"] == {"nvidia.com/gpu": "2"}
    assert o["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert o["node_selector"] == {"magnum.openstack.org/nodegroup": "gpu-v100"}
    assert "extra_pod_config" not in o


def test_cpu_entry_has_no_gpu_keys_or_tolerations():
    assert not {"extra_resource_guarantees", "extra_resource_limits", "tolerations"} & set(override(SHARED))


@pytest.mark.parametrize(
    "label",
    ["capi.stackhpc.com/node-group", "node.cluster.x-k8s.io/nodegroup"],
    ids=["stackhpc", "vexxhost"],
)
def test_node_selector_uses_the_group_label(label):
    o = override(SHARED, groups=(dataclasses.replace(CPU_GROUP, label=label),))
    assert o["node_selector"] == {label: "cpu"}
    assert o["extra_labels"]["cern-spawner/node-group"] == "cpu"


def test_gpu_resource_comes_from_the_group():
    group = dataclasses.replace(GPU_GROUP, gpu=GPU(resource="amd.com/gpu", per_node=8))
    assert override(DEDICATED, groups=(group,))["extra_resource_limits"] == {"amd.com/gpu": "2"}


def test_equal_toleration_carries_the_taint_value():
    o = override(DEDICATED, gpu_toleration_operator="Equal")
    assert o["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}
    ]


def test_untainted_gpu_group_needs_no_toleration():
    assert "tolerations" not in override(DEDICATED, groups=(dataclasses.replace(GPU_GROUP, taint=None),))


@pytest.mark.parametrize(
    "group, spread",
    [
        (CPU_GROUP, True),
        (dataclasses.replace(CPU_GROUP, zones=()), True),
        (dataclasses.replace(CPU_GROUP, zones=("a",)), False),
        (dataclasses.replace(CPU_GROUP, spread_zones=False), False),
    ],
    ids=["two-zones", "zones-unknown", "one-zone", "spread-off"],
)
def test_spread_for_shared_profiles(group, spread):
    assert ("extra_pod_config" in override(SHARED, groups=(group,))) is spread


def test_dedicated_cpu_profile_is_not_spread():
    dedicated_cpu = dataclasses.replace(DEDICATED, gpus=0, node_group="cpu")
    assert "extra_pod_config" not in override(dedicated_cpu)


def test_spread_can_be_hard():
    o = override(SHARED, spread_when_unsatisfiable="DoNotSchedule")
    assert o["extra_pod_config"]["topologySpreadConstraints"][0]["whenUnsatisfiable"] == "DoNotSchedule"


@pytest.mark.parametrize(
    "kwargs",
    [{"spread_when_unsatisfiable": "Sometimes"}, {"gpu_toleration_operator": "Maybe"}],
    ids=["spread", "operator"],
)
def test_bad_options_are_refused(kwargs):
    with pytest.raises(ValueError):
        to_profile_list(catalog(), **kwargs)


def test_optional_overrides():
    profile = dataclasses.replace(
        SHARED,
        image="img/base:1",
        env=MappingProxyType({"A": "1"}),
        start_timeout=900,
        idle_timeout=3600,
    )
    o = override(profile)
    assert o["image"] == "img/base:1"
    assert o["environment"] == {"A": "1"}
    assert o["start_timeout"] == 900
    assert o["extra_annotations"] == {"cern-spawner/idle-timeout": "3600"}


def test_optional_overrides_absent_by_default():
    assert not {"image", "environment", "start_timeout", "extra_annotations"} & set(override(SHARED))
    assert "profile_options" not in to_profile_list(catalog(SHARED))[0]


def test_image_choices_become_profile_options():
    profile = dataclasses.replace(
        SHARED, image_choices=(ImageChoice("scipy", "SciPy", "img/scipy:1"), ImageChoice("r", "R", "img/r:1"))
    )
    (entry,) = to_profile_list(catalog(profile))
    assert entry["profile_options"] == {
        "image": {
            "display_name": "Image",
            "choices": {
                "scipy": {
                    "display_name": "SciPy",
                    "default": True,
                    "kubespawner_override": {"image": "img/scipy:1"},
                },
                "r": {"display_name": "R", "default": False, "kubespawner_override": {"image": "img/r:1"}},
            },
        }
    }


@pytest.mark.parametrize(
    "profiles, default",
    [((SHARED, DEDICATED), "shared"), ((DEDICATED,), "gpu-2"), ((DEDICATED, SHARED), "shared")],
    ids=["default-first", "default-filtered-out", "default-second"],
)
def test_exactly_one_entry_is_default(profiles, default):
    entries = to_profile_list(catalog(), profiles)
    assert [e["slug"] for e in entries if e["default"]] == [default]


def test_profiles_subset_keeps_its_order():
    assert [e["slug"] for e in to_profile_list(catalog(), [DEDICATED, SHARED])] == ["gpu-2", "shared"]


def test_unknown_node_group_is_refused():
    with pytest.raises(ValueError, match="node group 'gpu-v100' is not in the catalog"):
        to_profile_list(catalog(DEDICATED, groups=(CPU_GROUP,)))


def test_calls_return_equal_but_independent_dicts():
    cat = catalog()
    first, second = to_profile_list(cat), to_profile_list(cat)
    assert first == second
    first[0]["kubespawner_override"]["node_selector"]["x"] = "y"
    first[0]["kubespawner_override"]["extra_pod_config"]["topologySpreadConstraints"][0]["maxSkew"] = 9
    first[1]["kubespawner_override"]["tolerations"][0]["key"] = "x"
    first[1]["kubespawner_override"]["extra_resource_limits"]["nvidia.com/gpu"] = "9"
    assert to_profile_list(cat) == second
    assert dict(GPU_GROUP.taint) == dict(GPU_TAINT)


@pytest.fixture
def no_kube_config(monkeypatch):
    # KubeSpawner's constructor loads a kube config; applying overrides never talks to an API server.
    monkeypatch.setattr("kubespawner.spawner.load_config", lambda **kwargs: None)


@pytest.mark.asyncio(loop_scope="function")
@pytest.mark.parametrize(
    "user_options, expected",
    [
        ({"profile": "shared"}, {"mem_limit": 2 * 1024**3, "cpu_limit": 2.0, "image": "img/scipy:1"}),
        ({"profile": "shared", "image": "r"}, {"image": "img/r:1", "start_timeout": 900}),
        ({}, {"mem_guarantee": 1536 * 1024**2, "cpu_guarantee": 0.5}),
        (
            {"profile": "gpu-2"},
            {
                "extra_resource_limits": {"nvidia.com/gpu": "2"},
                "mem_limit": 8 * 1024**3,
                "cpu_guarantee": 4.0,
            },
        ),
    ],
    ids=["default-choice", "picked-choice", "default-profile", "gpu"],
)
async def test_kubespawner_applies_the_entries(no_kube_config, user_options, expected):
    shared = dataclasses.replace(
        SHARED,
        mem_guarantee="1.5Gi",
        image_choices=(ImageChoice("scipy", "SciPy", "img/scipy:1"), ImageChoice("r", "R", "img/r:1")),
        start_timeout=900,
        env=MappingProxyType({"A": "1"}),
        idle_timeout=60,
    )
    c = Config()
    c.KubeSpawner.profile_list = to_profile_list(catalog(shared, DEDICATED))
    spawner = KubeSpawner(_mock=True, config=c)
    spawner.user_options = user_options
    await spawner.load_user_options()
    assert {name: getattr(spawner, name) for name in expected} == expected


# --- copying: KubeSpawner deep-copies the offered list at every start and form ----------------


def test_a_deep_copy_is_equal_and_shares_nothing():
    entries = to_profile_list(catalog())
    entries[0]["kubespawner_override"]["odd"] = {("a", "tuple"): {1, 2}}  # not JSON: copied the usual way
    copied = copy.deepcopy(entries)
    assert copied == entries
    assert (type(copied), [type(entry) for entry in copied]) == (ProfileList, [ProfileEntry] * len(entries))

    def containers(value, path=()):
        if isinstance(value, dict | list | set):
            yield path, value
        if isinstance(value, dict):
            for key, item in value.items():
                yield from containers(item, (*path, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                yield from containers(item, (*path, index))

    originals = dict(containers(entries))
    shared = [path for path, value in containers(copied) if value is originals[path]]
    assert shared == []


@pytest.mark.parametrize(
    "entries",
    [
        pytest.param(lambda cat: ProfileList([{"slug": "plain", "default": True}]), id="plain-dict-entry"),
        pytest.param(lambda cat: [*to_profile_list(cat)], id="plain-list-of-entries"),
    ],
)
def test_other_shapes_still_deep_copy(entries):
    original = entries(catalog())
    copied = copy.deepcopy(original)
    assert copied == original
    assert all(a is not b for a, b in zip(copied, original, strict=True))

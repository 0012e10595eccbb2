"""The pure mapping from the seed's profiles to KubeSpawner profile_list entries."""

import dataclasses

import pytest

from cern_spawner.seed_profiles import (
    DEFAULT_GPU_TOLERATION,
    SEED_PROFILES,
    SeedProfile,
    to_profile_list,
)

pytestmark = pytest.mark.unit

MAGNUM_LABEL = "magnum.openstack.org/nodegroup"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}

# What each seed profile must map to, written out independently of the data under test.
# slug, display_name, node_group, (cpu guarantee, limit), (mem guarantee, limit), gpus, default
EXPECTED = [
    (
        "shared-1g",
        "Shared, 1 GB memory, 0.5 CPU core",
        "default-worker",
        (0.1, 0.5),
        ("512M", "1G"),
        0,
        False,
    ),
    ("shared-2g", "Shared, 2 GB memory, 1 CPU core", "default-worker", (0.2, 1), ("1G", "2G"), 0, True),
    ("shared-4g", "Shared, 4 GB memory, 2 CPU cores", "default-worker", (0.5, 2), ("2G", "4G"), 0, False),
    ("gpu-1", "Dedicated 1 GPU, 4GB memory, 2 CPU cores", "gpu-v100", (2, 2), ("4G", "4G"), 1, False),
]
SLUGS = [row[0] for row in EXPECTED]


def entries(**kwargs):
    return {entry["slug"]: entry for entry in to_profile_list(SEED_PROFILES, **kwargs)}


def test_seed_has_exactly_the_expected_profiles_in_order():
    assert [entry["slug"] for entry in to_profile_list(SEED_PROFILES)] == SLUGS


@pytest.mark.parametrize("slug, display_name, node_group, cpu, mem, gpus, is_default", EXPECTED, ids=SLUGS)
def test_entry_matches_table(slug, display_name, node_group, cpu, mem, gpus, is_default):
    entry = entries()[slug]
    override = entry["kubespawner_override"]

    assert set(entry) == {"display_name", "slug", "description", "default", "kubespawner_override"}
    assert entry["display_name"] == display_name
    assert entry["description"]
    assert entry["default"] is is_default
    assert (override["cpu_guarantee"], override["cpu_limit"]) == cpu
    assert (override["mem_guarantee"], override["mem_limit"]) == mem
    assert override["node_selector"] == {MAGNUM_LABEL: node_group}
    assert override["extra_labels"] == {"cern-spawner/profile": slug, "cern-spawner/node-group": node_group}
    if gpus:
        assert override["extra_resource_guarantees"] == {"nvidia.com/gpu": str(gpus)}
        assert override["extra_resource_limits"] == {"nvidia.com/gpu": str(gpus)}
    else:
        assert "extra_resource_guarantees" not in override
        assert "extra_resource_limits" not in override


def test_exactly_one_default():
    defaults = [entry["slug"] for entry in to_profile_list(SEED_PROFILES) if entry["default"]]
    assert defaults == ["shared-2g"]


@pytest.mark.parametrize("slug", SLUGS, ids=SLUGS)
def test_tolerations_only_on_gpu_profiles(slug):
    profile = next(p for p in SEED_PROFILES if p.slug == slug)
    override = entries()[slug]["kubespawner_override"]
    if profile.gpus:
        assert override["tolerations"] == [GPU_TOLERATION]
    else:
        assert "tolerations" not in override


@pytest.mark.parametrize("slug", SLUGS, ids=SLUGS)
def test_dedicated_guarantees_equal_limits_shared_do_not(slug):
    profile = next(p for p in SEED_PROFILES if p.slug == slug)
    o = entries()[slug]["kubespawner_override"]
    if profile.kind == "dedicated":
        assert o["cpu_guarantee"] == o["cpu_limit"]
        assert o["mem_guarantee"] == o["mem_limit"]
        assert o["extra_resource_guarantees"] == o["extra_resource_limits"]
    else:
        assert o["cpu_guarantee"] < o["cpu_limit"]
        assert o["mem_guarantee"] != o["mem_limit"]


@pytest.mark.parametrize("slug", SLUGS, ids=SLUGS)
def test_zone_spread_on_shared_profiles_only(slug):
    profile = next(p for p in SEED_PROFILES if p.slug == slug)
    override = entries()[slug]["kubespawner_override"]
    if profile.kind == "shared":
        assert override["extra_pod_config"] == {
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": {"cern-spawner/node-group": profile.node_group}},
                }
            ]
        }
    else:
        assert "extra_pod_config" not in override


@pytest.mark.parametrize(
    "kwargs, slug, key, expected",
    [
        (
            {"node_group_label": "node.cluster.x-k8s.io/nodegroup"},
            "shared-2g",
            "node_selector",
            {"node.cluster.x-k8s.io/nodegroup": "default-worker"},
        ),
        (
            {"node_group_label": "capi.stackhpc.com/node-group"},
            "gpu-1",
            "node_selector",
            {"capi.stackhpc.com/node-group": "gpu-v100"},
        ),
        ({"gpu_resource": "amd.com/gpu"}, "gpu-1", "extra_resource_limits", {"amd.com/gpu": "1"}),
        ({"gpu_resource": "amd.com/gpu"}, "gpu-1", "extra_resource_guarantees", {"amd.com/gpu": "1"}),
        (
            {"gpu_toleration": {"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}},
            "gpu-1",
            "tolerations",
            [{"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}],
        ),
    ],
    ids=[
        "capi-vexxhost-label",
        "capi-stackhpc-label",
        "gpu-resource-limits",
        "gpu-resource-requests",
        "toleration",
    ],
)
def test_mapping_parameters(kwargs, slug, key, expected):
    assert entries(**kwargs)[slug]["kubespawner_override"][key] == expected


def test_mapping_is_pure():
    first = to_profile_list(SEED_PROFILES)
    first[0]["kubespawner_override"]["node_selector"]["x"] = "y"
    next(e for e in first if e["slug"] == "gpu-1")["kubespawner_override"]["tolerations"][0]["key"] = "x"

    second = to_profile_list(SEED_PROFILES)
    assert "x" not in second[0]["kubespawner_override"]["node_selector"]
    assert dict(DEFAULT_GPU_TOLERATION) == GPU_TOLERATION
    assert second == to_profile_list(SEED_PROFILES)


def _seed(slug):
    return next(p for p in SEED_PROFILES if p.slug == slug)


@pytest.mark.parametrize(
    "profiles, message",
    [
        ((_seed("shared-1g"), _seed("shared-1g"), _seed("shared-2g")), "duplicate profile slugs: shared-1g"),
        ((_seed("shared-1g"), _seed("gpu-1")), "exactly one profile must be the default, found 0"),
        (
            (_seed("shared-2g"), dataclasses.replace(_seed("shared-1g"), default=True)),
            "exactly one profile must be the default, found 2",
        ),
    ],
    ids=["duplicate-slug", "no-default", "two-defaults"],
)
def test_rejects_ambiguous_lists(profiles, message):
    with pytest.raises(ValueError, match=message):
        to_profile_list(profiles)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"cpu_guarantee": 1}, "guarantees equal to limits"),
        ({"mem_guarantee": "2G"}, "guarantees equal to limits"),
        ({"kind": "exclusive"}, "kind must be"),
        ({"gpus": -1}, "must not be negative"),
    ],
    ids=["dedicated-cpu-burst", "dedicated-mem-burst", "unknown-kind", "negative-gpus"],
)
def test_invalid_profiles_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(_seed("gpu-1"), **changes)


def test_profiles_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SEED_PROFILES[0].slug = "other"  # type: ignore[misc]
    assert all(isinstance(p, SeedProfile) for p in SEED_PROFILES)

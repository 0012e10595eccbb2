"""A node group's placement: GPU pods pack onto nodes already running the group's pods."""

import pytest
from kubespawner import KubeSpawner
from traitlets.config import Config

from cern_spawner.catalog import load_catalog, to_profile_list
from tests.unit.catalog_samples import problems_of, write

pytestmark = pytest.mark.unit

CATALOG = """\
node_groups:
  cpu: {zones: [a, b]}
  v100: {gpu: {per_node: 4}, taint: {key: nvidia.com/gpu, effect: NoSchedule}}
  a100-mig:
    gpu: {per_node: 1, product: NVIDIA-A100-SXM4-80GB, mig: {slices: {1g.10gb: 7}, config: all-1g}}
  t4-shared:
    gpu: {per_node: 2, time_slicing: {replicas: 4}}
profiles:
  - {slug: shared, display_name: S, kind: shared, cpu: 1, memory: 1G, node_group: cpu}
  - {slug: cpu-4, display_name: C, kind: dedicated, cpu: 4, memory: 8G, node_group: cpu}
  - {slug: gpu-2, display_name: G, kind: dedicated, cpu: 2, memory: 4G, gpus: 2, node_group: v100}
  - {slug: mig, display_name: M, kind: shared, cpu: 1, memory: 1G, mig_slice: 1g.10gb, node_group: a100-mig}
  - {slug: t4, display_name: T, kind: shared, cpu: 1, memory: 1G, shared_gpu: true, node_group: t4-shared}
"""


def packed_to(group):
    return {
        "cern-spawner-pack": {
            "weight": 100,
            "podAffinityTerm": {
                "labelSelector": {"matchLabels": {"cern-spawner/node-group": group}},
                "topologyKey": "kubernetes.io/hostname",
            },
        }
    }


def overrides(tmp_path, text=CATALOG):
    catalog = load_catalog([write(tmp_path, {"catalog.yaml": text})])
    return {e["slug"]: e["kubespawner_override"] for e in to_profile_list(catalog)}


V100 = "  v100: {gpu: {per_node: 4}, taint: {key: nvidia.com/gpu, effect: NoSchedule}}"
CPU = "  cpu: {zones: [a, b]}"


@pytest.mark.parametrize(
    "old, new, expected",
    [
        # Default: GPU groups pack (whole, MIG and time-sliced GPUs alike), CPU groups do not.
        (CPU, CPU, {"shared": None, "cpu-4": None, "gpu-2": "v100", "mig": "a100-mig", "t4": "t4-shared"}),
        (V100, V100[:-1] + ", placement: spread}", {"gpu-2": None, "mig": "a100-mig"}),
        (CPU, CPU[:-1] + ", placement: pack}", {"shared": "cpu", "cpu-4": "cpu", "gpu-2": "v100"}),
        (V100, V100[:-1] + ", placement: pack}", {"gpu-2": "v100", "shared": None}),
    ],
    ids=["defaults", "gpu-group-spread", "cpu-group-pack", "gpu-group-pack-stated"],
)
def test_pack_affinity_per_group(tmp_path, old, new, expected):
    assert old in CATALOG
    found = overrides(tmp_path, CATALOG.replace(old, new))
    assert {slug: found[slug].get("pod_affinity_preferred") for slug in expected} == {
        slug: packed_to(group) if group else None for slug, group in expected.items()
    }


def test_shared_cpu_profile_keeps_its_zone_spread(tmp_path):
    shared = overrides(tmp_path)["shared"]
    assert (
        shared["extra_pod_config"]["topologySpreadConstraints"][0]["topologyKey"]
        == "topology.kubernetes.io/zone"
    )


@pytest.mark.parametrize(
    "value, fragment",
    [("packed", "placement"), (True, "placement")],
    ids=["unknown-word", "boolean"],
)
def test_bad_placement_is_refused(tmp_path, value, fragment):
    text = CATALOG.replace(CPU, CPU[:-1] + f", placement: {str(value).lower()}}}")
    problems = problems_of(tmp_path, {"catalog.yaml": text})
    assert any(fragment in str(p) and p.line == 2 for p in problems), problems


@pytest.fixture
def no_kube_config(monkeypatch):
    monkeypatch.setattr("kubespawner.spawner.load_config", lambda **kwargs: None)


@pytest.mark.asyncio(loop_scope="function")
@pytest.mark.parametrize(
    "hub_affinity, expected_terms",
    [
        ({}, [packed_to("v100")["cern-spawner-pack"]]),
        (
            {"site": {"weight": 5, "podAffinityTerm": {"topologyKey": "zone", "labelSelector": {}}}},
            [
                packed_to("v100")["cern-spawner-pack"],
                {"weight": 5, "podAffinityTerm": {"topologyKey": "zone", "labelSelector": {}}},
            ],
        ),
    ],
    ids=["alone", "merged-with-the-hubs-own"],
)
async def test_the_pod_prefers_nodes_with_the_groups_pods(
    tmp_path, no_kube_config, hub_affinity, expected_terms
):
    c = Config()
    c.KubeSpawner.profile_list = to_profile_list(load_catalog([write(tmp_path, {"catalog.yaml": CATALOG})]))
    if hub_affinity:
        c.KubeSpawner.pod_affinity_preferred = hub_affinity
    spawner = KubeSpawner(_mock=True, config=c)
    spawner.user_options = {"profile": "gpu-2"}
    await spawner.load_user_options()
    pod = spawner.api.api_client.sanitize_for_serialization(await spawner.get_pod_manifest())
    assert pod["metadata"]["labels"]["cern-spawner/node-group"] == "v100"
    terms = pod["spec"]["affinity"]["podAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert sorted(terms, key=lambda t: -t["weight"]) == expected_terms

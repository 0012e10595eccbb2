"""A profile's extra volumes (EOS, CVMFS, a claim): schema, semantic checks, mapping to KubeSpawner,
and the pod KubeSpawner then builds (the hub's home claim kept, Pod Security "restricted" kept)."""

import pytest
from kubespawner import KubeSpawner
from traitlets.config import Config

from cern_spawner.catalog import load_catalog, to_profile_list
from tests.unit.catalog_samples import BASE, problems_of, write

pytestmark = pytest.mark.unit

CVMFS = """\
      - name: cvmfs
        mount_path: /cvmfs
        read_only: true
        mount_propagation: HostToContainer
        source: {pvc: {claim_name: cvmfs}}
"""
EOS = """\
      - name: eos
        mount_path: /eos
        mount_propagation: HostToContainer
        source: {host_path: {path: /eos}}
"""
ATLAS = """\
      - name: atlas
        mount_path: /opt/atlas
        read_only: true
        source: {csi: {driver: cvmfs.csi.cern.ch, volume_attributes: {repository: atlas.cern.ch}}}
"""


def with_volumes(text: str) -> str:
    """BASE with `text` as the shared profile's volumes list."""
    anchor = "    default: true\n"
    assert anchor in BASE
    return BASE.replace(anchor, anchor + "    volumes:\n" + text)


# name, volumes, expected (path, message fragment, hint fragment)
BROKEN = [
    (
        "duplicate-name",
        CVMFS + CVMFS.replace("/cvmfs\n", "/cvmfs2\n"),
        ("profiles[0].volumes[1].name", "duplicate volume name 'cvmfs'", "its own name"),
    ),
    (
        "nested-mount",
        CVMFS + EOS.replace("mount_path: /eos", "mount_path: /cvmfs/eos"),
        ("profiles[0].volumes[1].mount_path", "'/cvmfs/eos' overlaps '/cvmfs'", "not inside one another"),
    ),
    (
        "same-mount",
        CVMFS + EOS.replace("mount_path: /eos", "mount_path: /cvmfs"),
        ("profiles[0].volumes[1].mount_path", "'/cvmfs' overlaps '/cvmfs'", "not inside one another"),
    ),
    (
        "inside-home",
        EOS.replace("mount_path: /eos", "mount_path: /home/jovyan/eos"),
        ("profiles[0].volumes[0].mount_path", "inside the home directory /home/jovyan", "inside_home: true"),
    ),
    (
        "over-home",
        EOS.replace("mount_path: /eos", "mount_path: /home/jovyan"),
        ("profiles[0].volumes[0].mount_path", "inside the home directory", "mount it elsewhere"),
    ),
    (
        "dot-dot",
        EOS.replace("mount_path: /eos", "mount_path: /eos/../etc"),
        ("profiles[0].volumes[0].mount_path", "not a plain absolute path", "without '.', '..'"),
    ),
    (
        "relative-path",
        EOS.replace("mount_path: /eos", "mount_path: eos"),
        ("profiles[0].volumes[0].mount_path", "", ""),
    ),
    (
        "two-sources",
        EOS.replace("{host_path: {path: /eos}}", "{host_path: {path: /eos}, pvc: {claim_name: eos}}"),
        ("profiles[0].volumes[0].source", "", ""),
    ),
    (
        "no-source",
        EOS.replace("{host_path: {path: /eos}}", "{}"),
        ("profiles[0].volumes[0].source", "", ""),
    ),
    (
        "unknown-key",
        EOS.replace("mount_path: /eos", "mount_path: /eos\n        readonly: true"),
        ("profiles[0].volumes[0].readonly", "unknown key 'readonly'", "did you mean 'read_only'?"),
    ),
    (
        "unknown-source",
        EOS.replace("{host_path: {path: /eos}}", "{nfs: {server: a, path: /b}}"),
        ("profiles[0].volumes[0].source.nfs", "unknown key 'nfs'", ""),
    ),
    (
        "bad-propagation",
        EOS.replace("HostToContainer", "Bidirectional"),
        ("profiles[0].volumes[0].mount_propagation", "", ""),
    ),
    (
        "bad-name",
        EOS.replace("name: eos", "name: EOS_home"),
        ("profiles[0].volumes[0].name", "", ""),
    ),
]


@pytest.mark.parametrize("name, volumes, expected", BROKEN, ids=[case[0] for case in BROKEN])
def test_broken_volumes_are_refused_with_where_and_why(tmp_path, name, volumes, expected):
    path, message, hint = expected
    problems = problems_of(tmp_path, {"a.yaml": with_volumes(volumes)})
    matching = [p for p in problems if p.path == path]
    assert matching, [str(p) for p in problems]
    assert message in matching[0].message and hint in matching[0].hint, str(matching[0])


ALLOWED = [
    (
        "inside-home-intended",
        EOS.replace("mount_path: /eos", "mount_path: /home/jovyan/eos\n        inside_home: true"),
    ),
    ("siblings", CVMFS + EOS + ATLAS),
    ("prefix-is-not-parent", CVMFS + EOS.replace("mount_path: /eos", "mount_path: /cvmfs-extra")),
]


@pytest.mark.parametrize("name, volumes", ALLOWED, ids=[case[0] for case in ALLOWED])
def test_sound_volumes_load(tmp_path, name, volumes):
    catalog = load_catalog([write(tmp_path, {"a.yaml": with_volumes(volumes)})])
    assert catalog.profile("shared-2g").volumes
    assert catalog.profile("gpu-1").volumes == ()


# source as written -> the pod's volume (name aside) and the container's mount (name aside)
MAPPED = [
    (
        "pvc-cvmfs-automount",
        CVMFS,
        {"persistentVolumeClaim": {"claimName": "cvmfs", "readOnly": True}},
        {"mountPath": "/cvmfs", "readOnly": True, "mountPropagation": "HostToContainer"},
    ),
    (
        "host-path-eos",
        EOS,
        {"hostPath": {"path": "/eos", "type": "Directory"}},
        {"mountPath": "/eos", "readOnly": False, "mountPropagation": "HostToContainer"},
    ),
    (
        "csi-inline-cvmfs-repository",
        ATLAS,
        {
            "csi": {
                "driver": "cvmfs.csi.cern.ch",
                "readOnly": True,
                "volumeAttributes": {"repository": "atlas.cern.ch"},
            }
        },
        {"mountPath": "/opt/atlas", "readOnly": True},
    ),
    (
        "sub-path",
        CVMFS.replace("mount_path: /cvmfs", "mount_path: /atlas\n        sub_path: atlas.cern.ch"),
        {"persistentVolumeClaim": {"claimName": "cvmfs", "readOnly": True}},
        {
            "mountPath": "/atlas",
            "readOnly": True,
            "subPath": "atlas.cern.ch",
            "mountPropagation": "HostToContainer",
        },
    ),
]


@pytest.mark.parametrize("name, volumes, volume, mount", MAPPED, ids=[case[0] for case in MAPPED])
def test_volumes_map_to_kubespawner_dicts(tmp_path, name, volumes, volume, mount):
    catalog = load_catalog([write(tmp_path, {"a.yaml": with_volumes(volumes)})])
    shared, gpu = to_profile_list(catalog)
    override = shared["kubespawner_override"]
    ((key, got_volume),) = override["volumes"].items()
    ((mount_key, got_mount),) = override["volume_mounts"].items()
    assert key == mount_key == got_volume["name"] == got_mount["name"] == f"profile-{volumes.split()[2]}"
    assert {k: v for k, v in got_volume.items() if k != "name"} == volume
    assert {k: v for k, v in got_mount.items() if k != "name"} == mount
    assert "volumes" not in gpu["kubespawner_override"]


@pytest.fixture
def no_kube_config(monkeypatch):
    # Building a manifest never talks to an API server: skip loading a kube config.
    monkeypatch.setattr("kubespawner.spawner.load_config", lambda **kwargs: None)


@pytest.mark.asyncio(loop_scope="function")
async def test_profile_volumes_extend_the_home_claim(tmp_path, no_kube_config):
    """As the chart configures the hub (volumes as dicts, a claim per user): the profile's volumes are
    added next to the home claim, which stays; another profile's pod has the home claim only."""
    catalog = load_catalog([write(tmp_path, {"a.yaml": with_volumes(CVMFS + ATLAS)})])
    c = Config()
    c.KubeSpawner.volumes = {"home": {"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}}
    c.KubeSpawner.volume_mounts = {"home": {"name": "home", "mountPath": "/home/jovyan"}}
    c.KubeSpawner.profile_list = to_profile_list(catalog)

    async def pod(slug):
        spawner = KubeSpawner(_mock=True, config=c)
        spawner.user_options = {"profile": slug}
        await spawner.load_user_options()
        manifest = await spawner.get_pod_manifest()
        return spawner.api.api_client.sanitize_for_serialization(manifest)

    shared = await pod("shared-2g")
    volumes = {v["name"]: v for v in shared["spec"]["volumes"]}
    assert volumes["home"]["persistentVolumeClaim"]["claimName"].startswith("claim-")
    assert volumes["profile-cvmfs"]["persistentVolumeClaim"]["claimName"] == "cvmfs"
    assert volumes["profile-atlas"]["csi"]["driver"] == "cvmfs.csi.cern.ch"
    mounts = {m["name"]: m["mountPath"] for m in shared["spec"]["containers"][0]["volumeMounts"]}
    assert mounts == {"home": "/home/jovyan", "profile-cvmfs": "/cvmfs", "profile-atlas": "/opt/atlas"}
    gpu = await pod("gpu-1")
    assert [v["name"] for v in gpu["spec"]["volumes"]] == ["home"]

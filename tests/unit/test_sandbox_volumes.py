"""The node agent's volumes as a kubelet lays them out (`..data` swap, token renewal) and the
PersistentVolume it provisions for a claim."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from kubernetes import client

from sandbox.config import load_topology
from sandbox.errors import SandboxError
from sandbox.nodeagent import storage, volumes

pytestmark = pytest.mark.unit
OWNER = (os.getuid(), os.getgid())


def listing(directory: Path) -> dict[str, str]:
    """What a reader in the pod sees: each visible name, read through its symlink."""
    seen = {}
    for entry in sorted(directory.iterdir()):
        if entry.name.startswith(".."):
            continue
        if entry.is_dir():
            for path in sorted(entry.rglob("*")):
                if path.is_file():
                    seen[str(path.relative_to(directory))] = path.read_text()
        else:
            seen[entry.name] = entry.read_text()
    return seen


def test_first_write_is_laid_out_as_the_kubelet_does(tmp_path):
    target = tmp_path / "config"
    assert volumes.write_atomic(target, {"a.yaml": b"one", "conf/b.yaml": b"two"}, 0o640, OWNER)
    data = target / volumes.DATA
    assert data.is_symlink() and os.readlink(data).startswith("..")
    assert (target / os.readlink(data)).is_dir()
    assert os.readlink(target / "a.yaml") == "..data/a.yaml"
    assert os.readlink(target / "conf") == "..data/conf"  # a nested path: one link for its top directory
    assert listing(target) == {"a.yaml": "one", "conf/b.yaml": "two"}
    assert (target / "a.yaml").stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in target.iterdir() if p.name.startswith("..")) == sorted(
        [volumes.DATA, os.readlink(data)]
    )


@pytest.mark.parametrize(
    ("before", "after", "mode", "changed"),
    [
        ({"a": b"1"}, {"a": b"1"}, 0o644, False),
        ({"a": b"1"}, {"a": b"2"}, 0o644, True),
        ({"a": b"1"}, {"a": b"1"}, 0o600, True),
        ({"a": b"1", "b": b"2"}, {"b": b"3"}, 0o644, True),
        ({"a": b"1"}, {"a": b"1", "c/d": b"4"}, 0o644, True),
        ({"a": b"1"}, {}, 0o644, True),
    ],
    ids=["same", "edited", "mode", "key-removed", "key-added", "emptied"],
)
def test_an_update_swaps_data_and_leaves_one_timestamped_directory(tmp_path, before, after, mode, changed):
    target = tmp_path / "config"
    volumes.write_atomic(target, before, 0o644, OWNER)
    old = os.readlink(target / volumes.DATA)
    assert volumes.write_atomic(target, after, mode, OWNER) is changed
    new = os.readlink(target / volumes.DATA)
    assert (new != old) is changed
    assert listing(target) == {name: content.decode() for name, content in after.items()}
    hidden = sorted(p.name for p in target.iterdir() if p.name.startswith(".."))
    assert hidden == sorted([volumes.DATA, new])  # no ..data_tmp, the old directory is gone


def test_an_open_file_keeps_its_content_while_the_path_shows_the_new_one(tmp_path):
    target = tmp_path / "config"
    volumes.write_atomic(target, {"profiles.yaml": b"old"}, 0o644, OWNER)
    with open(target / "profiles.yaml") as reader:
        volumes.write_atomic(target, {"profiles.yaml": b"new"}, 0o644, OWNER)
        assert reader.read() == "old"
    assert (target / "profiles.yaml").read_text() == "new"


def test_a_stale_data_tmp_from_an_interrupted_swap_is_replaced(tmp_path):
    target = tmp_path / "config"
    volumes.write_atomic(target, {"a": b"1"}, 0o644, OWNER)
    (target / volumes.DATA_TMP).symlink_to("..gone")
    assert volumes.write_atomic(target, {"a": b"2"}, 0o644, OWNER)
    assert listing(target) == {"a": "2"}
    assert not (target / volumes.DATA_TMP).is_symlink()


def jwt(iat: float, exp: float) -> bytes:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part({'iat': iat, 'exp': exp})}.sig".encode()


HOUR, DAY, YEAR = 3600, 86400, 365 * 86400


@pytest.mark.parametrize(
    ("token", "now", "requested", "due"),
    [
        (jwt(1000, 1000 + HOUR), 1000, HOUR, False),
        (jwt(1000, 1000 + HOUR), 3879, HOUR, False),
        (jwt(1000, 1000 + HOUR), 3880, HOUR, True),  # 80 % of one hour
        (jwt(0, YEAR), 2879, HOUR, False),
        (jwt(0, YEAR), 2880, HOUR, True),  # extended by the API server: the request counts
        (jwt(0, 600), 480, HOUR, True),  # shortened by the API server: its exp counts
        (jwt(0, 7 * DAY), DAY - 1, 7 * DAY, False),
        (jwt(0, 7 * DAY), DAY, 7 * DAY, True),  # a week-long token is renewed after a day
        (b"not-a-jwt", 0, HOUR, True),
        (b"a.!!!.c", 0, HOUR, True),
    ],
    ids=[
        "fresh",
        "before-80",
        "at-80",
        "extended-before-80",
        "extended-at-80",
        "shortened-at-80",
        "long-before-24h",
        "long-at-24h",
        "garbage",
        "bad-base64",
    ],
)
def test_projected_tokens_are_renewed_as_the_kubelet_does(token, now, requested, due):
    assert volumes.token_due(token, now, requested) is due


def claim(**annotations) -> client.V1PersistentVolumeClaim:
    return client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name="home", namespace="users", uid="u-1", annotations=annotations),
        spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"],
            storage_class_name=storage.CLASS_NAME,
            resources=client.V1VolumeResourceRequirements(requests={"storage": "2Gi"}),
        ),
    )


OURS = {storage.STORAGE_PROVISIONER[0]: storage.PROVISIONER}
NODE = {storage.SELECTED_NODE: "sandbox-default-worker-node-1"}


@pytest.mark.parametrize(
    ("annotations", "node"),
    [
        ({**OURS, **NODE}, "sandbox-default-worker-node-1"),
        ({storage.STORAGE_PROVISIONER[1]: storage.PROVISIONER, **NODE}, "sandbox-default-worker-node-1"),
        (OURS, None),
        (NODE, None),
        ({storage.STORAGE_PROVISIONER[0]: "cinder.csi.openstack.org", **NODE}, None),
    ],
    ids=["selected", "beta-annotation", "no-node-yet", "class-not-processed", "other-provisioner"],
)
def test_a_claim_is_provisioned_once_the_scheduler_and_pv_controller_marked_it(annotations, node):
    assert storage.wanted_node(claim(**annotations)) == node


def test_a_bound_claim_is_not_provisioned_again():
    bound = claim(**OURS, **NODE)
    bound.spec.volume_name = "pvc-u-1"
    assert storage.wanted_node(bound) is None


def test_the_volume_is_a_local_directory_on_the_selected_node_pre_bound_to_the_claim(tmp_path):
    pv = storage.persistent_volume(claim(), "node-1", tmp_path / "pv" / "pvc-u-1", "Delete")
    assert pv["metadata"] == {"name": "pvc-u-1", "annotations": {storage.PROVISIONED_BY: storage.PROVISIONER}}
    spec = pv["spec"]
    assert spec["capacity"] == {"storage": "2Gi"}
    assert spec["accessModes"] == ["ReadWriteOnce"]
    assert spec["persistentVolumeReclaimPolicy"] == "Delete"
    assert spec["storageClassName"] == storage.CLASS_NAME
    assert spec["local"] == {"path": str(tmp_path / "pv" / "pvc-u-1")}
    term = spec["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]
    assert term == {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-1"]}
    assert spec["claimRef"] == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "namespace": "users",
        "name": "home",
        "uid": "u-1",
    }


@pytest.mark.parametrize(
    ("annotations", "policy", "phase", "deletable"),
    [
        ({storage.PROVISIONED_BY: storage.PROVISIONER}, "Delete", "Released", True),
        ({storage.PROVISIONED_BY: storage.PROVISIONER}, "Delete", "Failed", True),
        ({storage.PROVISIONED_BY: storage.PROVISIONER}, "Delete", "Bound", False),
        ({storage.PROVISIONED_BY: storage.PROVISIONER}, "Retain", "Released", False),
        ({storage.PROVISIONED_BY: "someone-else"}, "Delete", "Released", False),
        (None, "Delete", "Released", False),
    ],
    ids=["released", "failed", "bound", "retain", "other-provisioner", "manual"],
)
def test_only_our_released_volumes_with_delete_policy_are_removed(annotations, policy, phase, deletable):
    volume = client.V1PersistentVolume(
        metadata=client.V1ObjectMeta(name="pvc-u-1", annotations=annotations),
        spec=client.V1PersistentVolumeSpec(persistent_volume_reclaim_policy=policy),
        status=client.V1PersistentVolumeStatus(phase=phase),
    )
    assert storage.deletable(volume) is deletable


def test_the_default_class_binds_on_first_consumer_and_deletes():
    cls = storage.storage_class()
    assert cls["metadata"]["annotations"] == {"storageclass.kubernetes.io/is-default-class": "true"}
    assert (cls["volumeBindingMode"], cls["reclaimPolicy"], cls["allowVolumeExpansion"]) == (
        "WaitForFirstConsumer",
        "Delete",
        False,
    )


@pytest.mark.parametrize(
    ("line", "seconds"),
    [("", 5.0), ("volume_sync_seconds: 2\n", 2.0), ("volume_sync_seconds: 0.5\n", 0.5)],
    ids=["default", "two", "half"],
)
def test_the_volume_sync_period_comes_from_the_topology(tmp_path, line, seconds):
    path = tmp_path / "topology.yaml"
    path.write_text(line + "node_groups:\n  w: {nodes: 1}\n")
    assert load_topology(path).volume_sync_seconds == seconds


@pytest.mark.parametrize("value", ["0", "-1", "61", "soon"], ids=["zero", "negative", "too-long", "word"])
def test_a_bad_volume_sync_period_is_refused_with_its_value(tmp_path, value):
    path = tmp_path / "topology.yaml"
    path.write_text(f"volume_sync_seconds: {value}\nnode_groups:\n  w: {{nodes: 1}}\n")
    with pytest.raises(SandboxError, match=f"volume_sync_seconds must be in .*{value}"):
        load_topology(path)


class CountingApi:
    """Answers reads by name and counts them; "missing" is a 404."""

    def __init__(self):
        self.calls: list[tuple[str, str, str]] = []

    def read_namespaced_config_map(self, name, namespace):
        self.calls.append(("config_map", namespace, name))
        if name == "missing":
            raise client.ApiException(status=404)
        return client.V1ConfigMap(data={"k": name})

    def create_namespaced_service_account_token(self, *args):
        return "passed through"


def test_a_sync_round_reads_each_source_once_and_passes_the_rest_through():
    api = CountingApi()
    reads = volumes.RoundReads(api)
    for _ in range(3):
        assert reads.read_namespaced_config_map("conf", "users").data == {"k": "conf"}
        with pytest.raises(client.ApiException):
            reads.read_namespaced_config_map("missing", "users")
    assert reads.read_namespaced_config_map("conf", "other").data == {"k": "conf"}
    assert api.calls == [
        ("config_map", "users", "conf"),
        ("config_map", "users", "missing"),
        ("config_map", "other", "conf"),
    ]
    assert reads.create_namespaced_service_account_token() == "passed through"


class ClaimApi:
    """A claim bound (or not) to one PersistentVolume."""

    def __init__(self, volume_name: str | None, volume: client.V1PersistentVolume):
        self.volume_name, self.volume = volume_name, volume

    def read_namespaced_persistent_volume_claim(self, name, namespace):
        return client.V1PersistentVolumeClaim(
            spec=client.V1PersistentVolumeClaimSpec(volume_name=self.volume_name)
        )

    def read_persistent_volume(self, name):
        return self.volume


@pytest.mark.parametrize(
    ("source", "provisioned", "exists", "bound", "outcome"),
    [
        ("local", True, True, True, 0o2775),
        ("hostPath", False, False, True, 0o2775),
        ("hostPath", False, True, True, 0o700),
        ("local", False, True, True, 0o700),
        ("local", True, False, True, "is missing"),
        ("hostPath:Directory", False, False, True, "is missing"),
        ("local", True, True, False, "is not bound"),
    ],
    ids=[
        "provisioned",
        "new-host-path-created",
        "existing-host-path-untouched",
        "manual-local-untouched",
        "provisioned-but-gone",
        "host-path-must-exist",
        "unbound",
    ],
)
def test_a_claim_mounts_its_volumes_directory(tmp_path, source, provisioned, exists, bound, outcome):
    path = tmp_path / "data"
    if exists:
        path.mkdir(mode=0o700)
        path.chmod(0o700)
    kind, _, host_type = source.partition(":")
    spec = client.V1PersistentVolumeSpec()
    if kind == "local":
        spec.local = client.V1LocalVolumeSource(path=str(path))
    else:
        spec.host_path = client.V1HostPathVolumeSource(path=str(path), type=host_type or None)
    annotations = {storage.PROVISIONED_BY: storage.PROVISIONER} if provisioned else None
    volume = client.V1PersistentVolume(
        metadata=client.V1ObjectMeta(name="pv", annotations=annotations), spec=spec
    )
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="p", namespace="users", uid="u"),
        spec=client.V1PodSpec(
            containers=[],
            volumes=[
                client.V1Volume(
                    name="home",
                    persistent_volume_claim=client.V1PersistentVolumeClaimVolumeSource(claim_name="home"),
                )
            ],
        ),
    )
    api = ClaimApi("pv" if bound else None, volume)
    if isinstance(outcome, str):
        with pytest.raises(volumes.VolumeError, match=outcome):
            volumes.materialize(api, pod, tmp_path / "pod", OWNER)
        return
    assert volumes.materialize(api, pod, tmp_path / "pod", OWNER) == {"home": path}
    assert path.stat().st_mode & 0o7777 == outcome

"""Dynamic provisioning for the sandbox's default StorageClass: claims become directories.

The StorageClass `sandbox-local` (created by `sandbox up`) binds on first consumer. The chain is
the real one: the scheduler's VolumeBinding plugin picks a node for a pod with an unbound claim and
writes it into the claim's `volume.kubernetes.io/selected-node` annotation; kube-controller-manager's
PV controller sees that the class's provisioner is external and marks the claim with
`volume.kubernetes.io/storage-provisioner`; this provisioner (in the node agent, as an external
provisioner would run in the cluster) then creates a `local` PersistentVolume on a fresh directory
under `<state>/pv/`, pinned to that node and pre-bound to the claim; the PV controller binds the
two and the scheduler, which waited in PreBind, binds the pod. When the claim goes, the PV
controller releases the volume and, the reclaim policy being Delete, this provisioner removes the
directory, then the PersistentVolume.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from kubernetes import client, watch

log = logging.getLogger("sandbox.storage")
CLASS_NAME = "sandbox-local"
PROVISIONER = "sandbox.cern-spawner/local"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
STORAGE_PROVISIONER = (
    "volume.kubernetes.io/storage-provisioner",
    "volume.beta.kubernetes.io/storage-provisioner",
)
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
DEFAULT_SIZE = "1Gi"
RESYNC_SECONDS = 30  # a watch ends and everything is listed again: failed provisions are retried


def data_root(state: Path) -> Path:
    return state / "pv"


def storage_class() -> dict:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": CLASS_NAME, "annotations": {DEFAULT_CLASS: "true"}},
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
        "allowVolumeExpansion": False,
    }


def ensure_storage_class(api: client.ApiClient) -> None:
    """Create the default StorageClass (at `sandbox up`); an existing one is left as it is."""
    try:
        client.StorageV1Api(api).create_storage_class(storage_class())
    except client.ApiException as e:
        if e.status != 409:
            raise


def provisioned_here(volume: client.V1PersistentVolume) -> bool:
    return (volume.metadata.annotations or {}).get(PROVISIONED_BY) == PROVISIONER


def volume_name(claim: client.V1PersistentVolumeClaim) -> str:
    return f"pvc-{claim.metadata.uid}"  # the external-provisioner's naming


def wanted_node(claim: client.V1PersistentVolumeClaim) -> str | None:
    """The node to provision the claim's volume on, or None when the claim is not ours to serve yet."""
    annotations = claim.metadata.annotations or {}
    if claim.spec.volume_name or claim.metadata.deletion_timestamp:
        return None
    if PROVISIONER not in {annotations.get(key) for key in STORAGE_PROVISIONER}:
        return None
    return annotations.get(SELECTED_NODE)


def persistent_volume(claim: client.V1PersistentVolumeClaim, node: str, path: Path, reclaim: str) -> dict:
    """The PersistentVolume for `claim`: a local directory on `node`, pre-bound to the claim."""
    requests = (claim.spec.resources.requests if claim.spec.resources else None) or {}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": volume_name(claim), "annotations": {PROVISIONED_BY: PROVISIONER}},
        "spec": {
            "capacity": {"storage": requests.get("storage", DEFAULT_SIZE)},
            "accessModes": claim.spec.access_modes or ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": reclaim,
            "storageClassName": claim.spec.storage_class_name,
            "volumeMode": "Filesystem",
            "local": {"path": str(path)},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}
                            ]
                        }
                    ]
                }
            },
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": claim.metadata.namespace,
                "name": claim.metadata.name,
                "uid": claim.metadata.uid,
            },
        },
    }


def deletable(volume: client.V1PersistentVolume) -> bool:
    """A volume of ours whose claim is gone and whose reclaim policy says to delete it."""
    phase = volume.status.phase if volume.status else None
    return (
        provisioned_here(volume)
        and volume.spec.persistent_volume_reclaim_policy == "Delete"
        and phase in ("Released", "Failed")
    )


class Provisioner:
    """Follows claims and volumes; `nodes()` are the node names this agent plays."""

    def __init__(self, core: client.CoreV1Api, state: Path, nodes: Callable[[], set[str]], stopping):
        self.core = core
        self.storage = client.StorageV1Api(core.api_client)
        self.root = data_root(state)
        self.nodes = nodes
        self.stopping: threading.Event = stopping

    def start(self) -> None:
        for name, lister, handler in (
            ("claims", self.core.list_persistent_volume_claim_for_all_namespaces, self.claim),
            ("volumes", self.core.list_persistent_volume, self.volume),
        ):
            threading.Thread(
                target=self.follow, args=(lister, handler), name=f"storage-{name}", daemon=True
            ).start()

    def follow(self, lister, handler) -> None:
        while not self.stopping.is_set():
            try:
                listing = lister()
                for item in listing.items:
                    handler(item)
                stream = watch.Watch().stream(
                    lister, resource_version=listing.metadata.resource_version, timeout_seconds=RESYNC_SECONDS
                )
                for event in stream:
                    if event["type"] in ("ADDED", "MODIFIED"):
                        handler(event["object"])
            except client.ApiException as e:
                if e.status != 410:  # 410: our resourceVersion expired, the next round lists again
                    log.warning("storage watch failed: %s %s", e.status, e.reason)
                    time.sleep(1)
            except Exception:
                log.exception("storage watch failed")
                time.sleep(1)

    def claim(self, claim: client.V1PersistentVolumeClaim) -> None:
        node = wanted_node(claim)
        if node is None or node not in self.nodes():
            return
        where = f"{claim.metadata.namespace}/{claim.metadata.name}"
        if claim.spec.volume_mode == "Block":
            log.warning("claim %s: block volumes are not provisioned by the sandbox", where)
            return
        try:
            cls = self.storage.read_storage_class(claim.spec.storage_class_name)
            path = self.root / volume_name(claim)
            path.mkdir(parents=True, exist_ok=True)
            self.core.create_persistent_volume(
                persistent_volume(claim, node, path, cls.reclaim_policy or "Delete")
            )
        except client.ApiException as e:
            if e.status != 409:  # 409: provisioned already (a repeated event)
                log.warning("claim %s not provisioned: %s %s", where, e.status, e.reason)
            return
        log.info("claim %s: provisioned %s on %s at %s", where, volume_name(claim), node, path)

    def volume(self, volume: client.V1PersistentVolume) -> None:
        if not deletable(volume) or volume.metadata.deletion_timestamp:
            return  # not ours to delete, or deleted already (its finalizer is being removed)
        path = Path(volume.spec.local.path if volume.spec.local else "")
        # Only a directory of ours is ever removed, whatever a volume object says.
        if path.parent != self.root:
            log.warning("volume %s: %s is outside %s; not removed", volume.metadata.name, path, self.root)
            return
        shutil.rmtree(path, ignore_errors=True)
        if path.exists():
            log.warning("volume %s: %s could not be removed; the volume stays", volume.metadata.name, path)
            return
        try:
            self.core.delete_persistent_volume(volume.metadata.name)
        except client.ApiException as e:
            if e.status != 404:
                log.warning("volume %s not deleted: %s %s", volume.metadata.name, e.status, e.reason)
                return
        log.info("volume %s deleted with its directory %s", volume.metadata.name, path)

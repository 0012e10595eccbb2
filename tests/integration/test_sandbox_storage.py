"""Storage as a node gives it: volumes that follow their ConfigMap and Secret in running pods, and
claims of the default StorageClass provisioned on first use, kept across pods, deleted with the claim."""

from __future__ import annotations

import os

import pytest
from kubernetes import client

from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.shares("cluster-storage")]

SECURE = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
POD_SECURE = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "runAsGroup": 100,
    "fsGroup": 100,
    "seccompProfile": {"type": "RuntimeDefault"},
}
# Prints what the volumes show whenever it changes, read through the names the pod sees; the
# subPath mount binds the file resolved at start and keeps it, as in a kubelet.
WATCHER = """
import os, time
print("started", os.getpid(), flush=True)
last = None
while True:
    now = [open(path).read() for path in ("/etc/conf/greeting", "/etc/creds/token", "/etc/one/greeting")]
    if now != last:
        print("seen", *now, flush=True)
        last = now
    time.sleep(0.2)
"""


def pod(name: str, code: str, mounts: list[dict], volumes: list[dict], restart: str = "Never") -> dict:
    container = {
        "name": "main",
        "image": "sandbox",
        "command": ["python3", "-c", code],
        "securityContext": SECURE,
        "volumeMounts": mounts,
    }
    return {
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": restart,
            "securityContext": POD_SECURE,
            "containers": [container],
            "volumes": volumes,
        },
    }


def phase(core, namespace: str, name: str) -> str:
    return core.read_namespaced_pod(name, namespace).status.phase


def finished(core, namespace: str, name: str) -> str:
    return wait_until(
        lambda: phase(core, namespace, name) in ("Succeeded", "Failed") and phase(core, namespace, name),
        timeout=60,
        what=f"pod {name} to finish",
    )


def gone(read) -> bool:
    try:
        read()
        return False
    except client.ApiException as e:
        return e.status == 404


def test_configmap_and_secret_edits_reach_a_running_pod(core, namespace, sandbox):
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "conf"}, "data": {"greeting": "hello"}}
    )
    core.create_namespaced_secret(namespace, {"metadata": {"name": "creds"}, "stringData": {"token": "one"}})
    body = pod(
        "watcher",
        WATCHER,
        [
            {"name": "conf", "mountPath": "/etc/conf", "readOnly": True},
            {"name": "creds", "mountPath": "/etc/creds", "readOnly": True},
            {"name": "conf", "mountPath": "/etc/one/greeting", "subPath": "greeting", "readOnly": True},
        ],
        [
            {"name": "conf", "configMap": {"name": "conf"}},
            {"name": "creds", "secret": {"secretName": "creds"}},
        ],
        restart="Always",
    )
    core.create_namespaced_pod(namespace, body)

    def log() -> str:
        try:
            # The client hands back None, not "", for some empty answers (seen in CI before the first line).
            return core.read_namespaced_pod_log("watcher", namespace) or ""
        except client.ApiException:
            return ""

    wait_until(lambda: "seen hello one hello" in log(), timeout=60, what="the pod to read the first content")
    core.patch_namespaced_config_map("conf", namespace, {"data": {"greeting": "bonjour"}})
    core.patch_namespaced_secret("creds", namespace, {"stringData": {"token": "two"}})
    # The kubelet's promise: an edit shows within its sync period (plus the time to write it).
    wait_until(
        lambda: "seen bonjour two hello" in log(),
        timeout=sandbox["volume_sync_seconds"] + 5,
        what="the edits to show at the same paths",
    )
    status = core.read_namespaced_pod("watcher", namespace).status.container_statuses[0]
    assert status.restart_count == 0
    assert log().count("started") == 1  # the same process saw both versions


def test_a_pod_whose_configmap_comes_later_waits_for_it_then_starts(core, namespace):
    """As a kubelet retries a failed mount: no ConfigMap yet is FailedMount (an event, the pod
    Pending), not a pod that never starts (kube-root-ca.crt too is published after its namespace)."""
    body = pod(
        "late-conf",
        "print(open('/etc/late/greeting').read(), flush=True)",
        [{"name": "late", "mountPath": "/etc/late", "readOnly": True}],
        [{"name": "late", "configMap": {"name": "late"}}],
    )
    core.create_namespaced_pod(namespace, body)

    def failed_mount():
        events = core.list_namespaced_event(namespace, field_selector="involvedObject.name=late-conf").items
        return any(e.reason == "FailedMount" and "late" in (e.message or "") for e in events)

    wait_until(failed_mount, timeout=30, what="the FailedMount event")
    assert phase(core, namespace, "late-conf") == "Pending"
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "late"}, "data": {"greeting": "at last"}}
    )
    assert finished(core, namespace, "late-conf") == "Succeeded"
    assert core.read_namespaced_pod_log("late-conf", namespace) == "at last\n"


def test_a_claim_of_the_default_class_is_provisioned_kept_and_deleted_with_its_data(core, namespace):
    storage = client.StorageV1Api(core.api_client)
    core.create_namespaced_persistent_volume_claim(
        namespace,
        {
            "metadata": {"name": "home"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        },
    )
    claim = core.read_namespaced_persistent_volume_claim("home", namespace)
    assert claim.spec.storage_class_name == "sandbox-local"  # the default class, by admission
    assert storage.read_storage_class("sandbox-local").volume_binding_mode == "WaitForFirstConsumer"
    assert claim.status.phase == "Pending"  # nothing is provisioned before a pod needs it

    mount = [{"name": "home", "mountPath": "/data"}]
    volume = [{"name": "home", "persistentVolumeClaim": {"claimName": "home"}}]
    core.create_namespaced_pod(
        namespace, pod("writer", "open('/data/note', 'w').write('kept')", mount, volume)
    )
    assert finished(core, namespace, "writer") == "Succeeded"
    claim = core.read_namespaced_persistent_volume_claim("home", namespace)
    assert claim.status.phase == "Bound"
    pv = core.read_persistent_volume(claim.spec.volume_name)
    node = core.read_namespaced_pod("writer", namespace).spec.node_name
    term = pv.spec.node_affinity.required.node_selector_terms[0].match_expressions[0]
    assert (term.key, term.values) == ("kubernetes.io/hostname", [node])
    directory = pv.spec.local.path
    assert os.path.isfile(os.path.join(directory, "note"))

    core.delete_namespaced_pod("writer", namespace)
    wait_until(
        lambda: gone(lambda: core.read_namespaced_pod("writer", namespace)), timeout=30, what="writer gone"
    )
    check = "assert open('/data/note').read() == 'kept', 'the file is gone'"
    core.create_namespaced_pod(namespace, pod("reader", check, mount, volume))
    assert finished(core, namespace, "reader") == "Succeeded"
    assert core.read_namespaced_pod("reader", namespace).spec.node_name == node  # the volume's node

    core.delete_namespaced_pod("reader", namespace)
    core.delete_namespaced_persistent_volume_claim("home", namespace)
    wait_until(
        lambda: gone(lambda: core.read_persistent_volume(pv.metadata.name)) and not os.path.exists(directory),
        timeout=30,
        what="the volume and its directory to be deleted with the claim",
    )

"""The sandbox is a real cluster: upstream API server, scheduler and admission, and honest pods."""

from __future__ import annotations

import pytest
from kubernetes import client

from sandbox.binaries import KUBERNETES
from sandbox.config import load_topology
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.shares("gpu-v100")]

GPU_GROUP = "gpu-v100"
SECURE = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
POD_SECURE = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "runAsGroup": 100,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def pod(name: str, command: list[str], *, restart: str = "Never", gpus: int = 0, **spec) -> dict:
    container = {"name": "main", "image": "sandbox", "command": command, "securityContext": SECURE}
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
        spec["nodeSelector"] = {"magnum.openstack.org/nodegroup": GPU_GROUP}
        spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    body = {
        "metadata": {"name": name},
        "spec": {"restartPolicy": restart, "securityContext": POD_SECURE, "containers": [container], **spec},
    }
    return body


def phase(core, namespace, name):
    return core.read_namespaced_pod(name, namespace).status.phase


def test_version_answers_from_the_built_api_server(api_client):
    version = client.VersionApi(api_client).get_code()
    assert version.git_version == KUBERNETES.version
    assert version.platform == "linux/amd64"


def test_nodes_carry_magnum_labels(core):
    nodes = {n.metadata.name: n for n in core.list_node().items}
    groups = {n.metadata.labels["magnum.openstack.org/nodegroup"] for n in nodes.values()}
    # The topology's standing groups; modules running beside this one may have grown empty ones.
    assert {"default-worker", GPU_GROUP} <= groups
    assert groups <= {g.name for g in load_topology().node_groups}
    gpu = [n for n in nodes.values() if n.metadata.labels["magnum.openstack.org/nodegroup"] == GPU_GROUP]
    assert len(gpu) == 1
    assert gpu[0].status.allocatable["nvidia.com/gpu"] == "4"
    assert gpu[0].metadata.labels["nvidia.com/gpu.present"] == "true"
    assert [t.key for t in gpu[0].spec.taints] == ["nvidia.com/gpu"]
    zones = {n.metadata.labels["topology.kubernetes.io/zone"] for n in nodes.values()}
    assert len(zones) == 2


def test_scheduler_fills_the_gpu_node_then_leaves_a_pod_unschedulable(core, namespace):
    for index in range(5):
        core.create_namespaced_pod(namespace, pod(f"gpu-{index}", ["sleep", "600"], gpus=1))

    def placed():
        pods = core.list_namespaced_pod(namespace).items
        running = [p for p in pods if p.status.phase == "Running"]
        return running if len(running) == 4 else None

    running = wait_until(placed, timeout=60, what="four GPU pods Running")
    assert {p.spec.node_name for p in running} == {f"sandbox-{GPU_GROUP}-node-0"}
    assert all(p.status.pod_ip for p in running)
    pending = [p for p in core.list_namespaced_pod(namespace).items if p.status.phase == "Pending"]
    assert len(pending) == 1

    def unschedulable():
        conditions = core.read_namespaced_pod(pending[0].metadata.name, namespace).status.conditions or []
        return [c for c in conditions if c.type == "PodScheduled" and c.reason == "Unschedulable"]

    condition = wait_until(unschedulable, timeout=30, what="PodScheduled=False/Unschedulable")[0]
    assert condition.status == "False"
    assert "nvidia.com/gpu" in condition.message


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"securityContext": {"runAsNonRoot": False, "runAsUser": 0}}, id="runs-as-root"),
        pytest.param({"hostNetwork": True}, id="host-network"),
        pytest.param({"volumes": [{"name": "host", "hostPath": {"path": "/etc"}}]}, id="host-path"),
    ],
)
def test_pod_security_restricted_refuses_unsafe_pods(core, namespace, overrides):
    body = pod("unsafe", ["sleep", "1"])
    body["spec"].update(overrides)
    with pytest.raises(client.ApiException) as refused:
        core.create_namespaced_pod(namespace, body)
    assert refused.value.status == 403
    assert "violates PodSecurity" in refused.value.body


@pytest.mark.parametrize(
    ("command", "expected_phase", "exit_code"),
    [
        pytest.param(["python3", "-c", "raise SystemExit(3)"], "Failed", 3, id="exit-3"),
        pytest.param(["python3", "-c", "pass"], "Succeeded", 0, id="exit-0"),
        pytest.param(["no-such-command-here"], "Failed", 127, id="missing-command"),
    ],
)
def test_exit_codes_are_reported(core, namespace, command, expected_phase, exit_code):
    core.create_namespaced_pod(namespace, pod("once", command))
    wait_until(lambda: phase(core, namespace, "once") == expected_phase, timeout=60, what=expected_phase)
    status = core.read_namespaced_pod("once", namespace).status.container_statuses[0]
    assert status.state.terminated.exit_code == exit_code
    assert status.ready is False


def test_container_sees_its_volumes_env_and_user(core, namespace):
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "creds"}, "stringData": {"token": "s3cret"}}
    )
    check = (
        "import os, sys; "
        "assert open('/etc/creds/token').read() == 's3cret', 'secret file'; "
        "assert os.environ['POD_NAME'] == 'inspect', 'downward env'; "
        "assert os.getuid() == 1000 and 100 in os.getgroups(), 'user'; "
        "open('/scratch/x', 'w').write('ok'); "
        "assert not os.path.exists('/root/.local'), 'host /root hidden'"
    )
    body = pod("inspect", ["python3", "-c", check])
    body["spec"]["securityContext"]["fsGroup"] = 100
    container = body["spec"]["containers"][0]
    container["env"] = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    container["volumeMounts"] = [
        {"name": "creds", "mountPath": "/etc/creds", "readOnly": True},
        {"name": "scratch", "mountPath": "/scratch"},
    ]
    body["spec"]["volumes"] = [
        {"name": "creds", "secret": {"secretName": "creds"}},
        {"name": "scratch", "emptyDir": {}},
    ]
    core.create_namespaced_pod(namespace, body)
    final = wait_until(
        lambda: (
            phase(core, namespace, "inspect") in ("Succeeded", "Failed") and phase(core, namespace, "inspect")
        ),
        timeout=60,
        what="the check pod to finish",
    )
    assert final == "Succeeded"


def test_deletion_sends_sigterm_then_removes_the_pod(core, namespace):
    # The process exits 0 on SIGTERM after writing a marker the agent cannot fake: its exit code.
    handler = (
        "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: sys.exit(0)); time.sleep(600)"
    )
    core.create_namespaced_pod(
        namespace, pod("graceful", ["python3", "-c", handler], terminationGracePeriodSeconds=30)
    )
    wait_until(lambda: phase(core, namespace, "graceful") == "Running", timeout=60, what="Running")
    core.delete_namespaced_pod("graceful", namespace)

    def gone():
        try:
            core.read_namespaced_pod("graceful", namespace)
            return False
        except client.ApiException as e:
            return e.status == 404

    # Far less than the 30 s grace period: the process honoured SIGTERM.
    wait_until(gone, timeout=20, what="the pod object to be removed")


def test_restart_policy_on_failure_restarts_the_container(core, namespace):
    core.create_namespaced_pod(
        namespace, pod("flaky", ["python3", "-c", "raise SystemExit(1)"], restart="OnFailure")
    )

    def restarted():
        statuses = core.read_namespaced_pod("flaky", namespace).status.container_statuses or []
        return statuses and statuses[0].restart_count >= 1 and statuses[0]

    status = wait_until(restarted, timeout=60, what="a restart")
    assert status.last_state.terminated.exit_code == 1
    assert phase(core, namespace, "flaky") == "Running"

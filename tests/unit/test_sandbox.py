"""The sandbox's pure parts: topology → nodes, tool versions, pod addresses, waiting."""

from __future__ import annotations

import ipaddress
import tempfile
from pathlib import Path

import pytest

from sandbox import binaries
from sandbox.config import load_topology
from sandbox.errors import SandboxError
from sandbox.nodeagent.network import PodNetwork
from sandbox.nodeagent.nodes import node_specs
from sandbox.nodeagent.podexec import untraversable_ancestor
from sandbox.procs import wait_for

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def specs():
    return {spec["name"]: spec for spec in node_specs(load_topology())}


@pytest.mark.parametrize(
    ("node", "label", "value"),
    [
        ("sandbox-default-worker-node-0", "magnum.openstack.org/nodegroup", "default-worker"),
        ("sandbox-default-worker-node-0", "magnum.openstack.org/role", "worker"),
        ("sandbox-default-worker-node-0", "topology.kubernetes.io/zone", "cern-geneva-a"),
        ("sandbox-default-worker-node-1", "topology.kubernetes.io/zone", "cern-geneva-b"),
        ("sandbox-default-worker-node-2", "topology.kubernetes.io/zone", "cern-geneva-a"),
        ("sandbox-default-worker-node-0", "node.kubernetes.io/instance-type", "m2.xlarge"),
        ("sandbox-gpu-v100-node-0", "nvidia.com/gpu.present", "true"),
        ("sandbox-gpu-v100-node-0", "nvidia.com/gpu.product", "Tesla-V100-PCIE-32GB"),
        ("sandbox-gpu-v100-node-0", "kubernetes.io/hostname", "sandbox-gpu-v100-node-0"),
    ],
    ids=lambda value: str(value).rsplit("/", 1)[-1],
)
def test_default_topology_labels_nodes_as_magnum_does(specs, node, label, value):
    assert specs[node]["labels"][label] == value


def test_only_gpu_nodes_have_gpus_and_the_taint(specs):
    gpu = specs["sandbox-gpu-v100-node-0"]
    assert gpu["capacity"]["nvidia.com/gpu"] == "4"
    assert gpu["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    cpu = specs["sandbox-default-worker-node-0"]
    assert "nvidia.com/gpu" not in cpu["capacity"]
    assert cpu["taints"] == []
    assert sorted(spec["index"] for spec in specs.values()) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param("node_groups: [a, b]\n", "malformed", id="list-not-mapping"),
        pytest.param("cluster: x\n", "malformed", id="no-node-groups"),
        pytest.param("node_groups: {a: {nodes: many}}\n", "malformed", id="bad-count"),
        pytest.param("node_groups: {a: [\n", "cannot read", id="broken-yaml"),
    ],
)
def test_bad_topology_is_one_clear_error(tmp_path, text, problem):
    path = tmp_path / "topology.yaml"
    path.write_text(text)
    with pytest.raises(SandboxError) as error:
        load_topology(path)
    assert problem in str(error.value)
    assert str(path) in str(error.value)


@pytest.mark.parametrize(
    ("toolset", "module", "programs"),
    [
        (
            binaries.KUBERNETES,
            "k8s.io/kubernetes",
            ["kube-apiserver", "kube-scheduler", "kube-controller-manager", "kubectl"],
        ),
        (
            binaries.KUBERNETES_PREVIOUS,
            "k8s.io/kubernetes",
            ["kube-apiserver", "kube-scheduler", "kube-controller-manager"],
        ),
        (binaries.ETCD, "go.etcd.io/etcd/server/v3", ["etcd"]),
    ],
    ids=["kubernetes", "kubernetes-previous", "etcd"],
)
def test_toolsets_read_their_pinned_version_from_go_mod(toolset, module, programs):
    go_mod = (toolset.module_dir / "go.mod").read_text()
    assert toolset.module == module
    assert f"{module} {toolset.version}" in go_mod
    assert toolset.programs == programs
    assert toolset.cache.name.startswith(f"{toolset.module_dir.name}-{toolset.version}-r")


@pytest.mark.parametrize("toolset", binaries.KUBERNETES_TOOLSETS, ids=["current", "previous"])
def test_kubernetes_staging_modules_are_pinned_to_the_matching_version(toolset):
    go_mod = (toolset.module_dir / "go.mod").read_text()
    minor_patch = toolset.version.removeprefix("v1.")
    replaces = [line.split() for line in go_mod.splitlines() if "=>" in line]
    assert len(replaces) > 20
    assert all(parts[-1] == f"v0.{minor_patch}" for parts in replaces)
    assert "-X k8s.io/component-base/version.gitVersion=" + toolset.version in toolset.ldflags()


def test_the_two_kubernetes_versions_are_consecutive_minors_with_their_own_caches():
    current, previous = (binaries.minor(t) for t in binaries.KUBERNETES_TOOLSETS)
    assert (current.split(".")[0], int(current.split(".")[1]) - 1) == (
        previous.split(".")[0],
        int(previous.split(".")[1]),
    )
    assert binaries.KUBERNETES.cache != binaries.KUBERNETES_PREVIOUS.cache


@pytest.mark.parametrize(
    ("wanted", "environment", "expected"),
    [
        (None, None, binaries.KUBERNETES),
        ("", "", binaries.KUBERNETES),
        (binaries.minor(binaries.KUBERNETES_PREVIOUS), None, binaries.KUBERNETES_PREVIOUS),
        ("v" + binaries.minor(binaries.KUBERNETES_PREVIOUS), None, binaries.KUBERNETES_PREVIOUS),
        (binaries.KUBERNETES_PREVIOUS.version, None, binaries.KUBERNETES_PREVIOUS),
        (None, binaries.minor(binaries.KUBERNETES_PREVIOUS), binaries.KUBERNETES_PREVIOUS),
        (
            binaries.minor(binaries.KUBERNETES),
            binaries.minor(binaries.KUBERNETES_PREVIOUS),
            binaries.KUBERNETES,
        ),
        (None, "previous", binaries.KUBERNETES_PREVIOUS),
    ],
    ids=[
        "default",
        "empty",
        "previous-minor",
        "v-prefix",
        "full-version",
        "from-env",
        "argument-wins",
        "alias",
    ],
)
def test_kubernetes_toolset_picks_a_supported_version(monkeypatch, wanted, environment, expected):
    if environment is None:
        monkeypatch.delenv(binaries.ENV_KUBERNETES, raising=False)
    else:
        monkeypatch.setenv(binaries.ENV_KUBERNETES, environment)
    assert binaries.kubernetes_toolset(wanted) is expected


@pytest.mark.parametrize(
    "wanted", ["1.33", "1.36", "v1.34.0", "latest"], ids=["older", "newer", "other-patch", "word"]
)
def test_an_unsupported_kubernetes_version_is_one_clear_error(wanted):
    with pytest.raises(SandboxError) as error:
        binaries.kubernetes_toolset(wanted)
    assert repr(wanted.lstrip("v")) in str(error.value)
    assert all(t.version in str(error.value) for t in binaries.KUBERNETES_TOOLSETS)


@pytest.mark.parametrize(
    ("node_index", "first", "last"),
    [(0, "10.244.1.2", "10.244.1.254"), (3, "10.244.4.2", "10.244.4.254")],
    ids=["first-node", "fourth-node"],
)
def test_each_node_owns_a_slash_24_of_pod_addresses(node_index, first, last):
    network = PodNetwork("csb0", "10.244.0.0/16", "csb")
    pool = network.node_pool(node_index)
    assert (pool[0], pool[-1], len(pool)) == (first, last, 253)
    assert network.gateway == "10.244.0.1"
    assert network.namespace(first) == "csb-" + first.replace(".", "-")


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_wait_for_gives_up_after_the_timeout_with_a_hint():
    clock = FakeClock()
    with pytest.raises(SandboxError, match=r"etcd not ready after 5s — see etcd.log"):
        wait_for(lambda: False, timeout=5, what="etcd", hint="see etcd.log", clock=clock, sleep=clock.sleep)
    assert 5 <= clock.now < 7


def test_wait_for_stops_early_when_the_daemon_died():
    clock = FakeClock()
    with pytest.raises(SandboxError, match="kube-apiserver failed: exited"):
        wait_for(
            lambda: False,
            timeout=60,
            what="kube-apiserver",
            give_up=lambda: "exited",
            clock=clock,
            sleep=clock.sleep,
        )
    assert clock.now == 0


def test_wait_for_returns_once_ready():
    clock = FakeClock()
    answers = iter([False, False, True])
    wait_for(lambda: next(answers), timeout=60, what="x", clock=clock, sleep=clock.sleep)
    assert clock.now == pytest.approx(0.15)


def test_untraversable_ancestor_finds_the_closed_directory():
    # Not tmp_path: pytest's own base directory is closed (0700) and would be found first.
    with tempfile.TemporaryDirectory() as base:
        Path(base).chmod(0o755)
        closed = Path(base) / "closed"
        inner = closed / "inner" / "python"
        inner.mkdir(parents=True)
        closed.chmod(0o700)
        assert untraversable_ancestor(str(inner)) == str(closed)
        closed.chmod(0o755)
        assert untraversable_ancestor(str(inner)) is None


def test_sandboxes_with_other_state_directories_get_their_own_pod_network(tmp_path, monkeypatch):
    from sandbox.cluster import DEFAULT_NETWORK, network_for
    from sandbox.config import default_state_dir

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert network_for(default_state_dir()) == DEFAULT_NETWORK
    one, two = network_for(tmp_path / "one"), network_for(tmp_path / "two")
    assert one != two
    for network in (one, two):
        assert len(network["bridge"]) <= 15
        assert network["cidr"] != DEFAULT_NETWORK["cidr"]
        assert PodNetwork(**network).network.subnet_of(ipaddress.IPv4Network("10.128.0.0/10"))


@pytest.mark.parametrize(
    ("running_version", "wanted", "refused"),
    [
        (binaries.KUBERNETES.version, None, False),
        (None, None, False),  # a sandbox from before the setting ran the current version
        (binaries.KUBERNETES.version, "previous", True),
        (binaries.KUBERNETES_PREVIOUS.version, None, True),
        (binaries.KUBERNETES_PREVIOUS.version, "previous", False),
    ],
    ids=["same", "unrecorded-is-current", "asks-previous", "asks-current", "same-previous"],
)
def test_up_reuses_a_running_sandbox_only_of_the_asked_version(
    monkeypatch, tmp_path, running_version, wanted, refused
):
    from sandbox import cluster

    monkeypatch.setenv("CERN_SANDBOX_STATE", str(tmp_path))
    monkeypatch.delenv(binaries.ENV_KUBERNETES, raising=False)
    current = {"topology": str(tmp_path / "topology.yaml")}
    if running_version:
        current["kubernetes"] = running_version
    monkeypatch.setattr(cluster, "running", lambda state: True)
    monkeypatch.setattr(cluster, "settings", lambda state=None: current)
    monkeypatch.setattr(cluster, "status", lambda: {"reused": True})
    if refused:
        with pytest.raises(SandboxError) as error:
            cluster.up(kubernetes=wanted)
        assert (running_version or "") in str(error.value) and str(tmp_path) in str(error.value)
    else:
        assert cluster.up(kubernetes=wanted) == {"reused": True}

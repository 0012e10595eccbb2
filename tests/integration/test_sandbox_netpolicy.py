"""NetworkPolicies bite on the sandbox's pod network: a denied connection fails, an allowed one works.

Connections start inside a pod's own network namespace (`ip netns exec`), so they leave from its
address through the bridge exactly as its processes' do. The node agent's rules (nftables) follow
the policies live; each step waits until the agent's table names the policies it has created.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from kubernetes import client

from tests.conftest import PSA_RESTRICTED
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.shares("cluster-network")]

SECURE = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
POD_SECURE = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "runAsGroup": 100,
    "seccompProfile": {"type": "RuntimeDefault"},
}
PORT = 8080


def pod_body(name: str, labels: dict, serve: bool = False) -> dict:
    container = {"name": "main", "image": "sandbox", "securityContext": SECURE}
    if serve:
        # On "::" with IPv4 mapped: reachable at its IPv4 address and at its IPv6 link-local one.
        container["command"] = ["python3", "-m", "http.server", "--bind", "::", str(PORT)]
        container["ports"] = [{"name": "http", "containerPort": PORT}]
        # The node's probe passes whatever the policies say, as kubelet's does.
        container["readinessProbe"] = {"httpGet": {"path": "/", "port": PORT}, "periodSeconds": 1}
    else:
        container["command"] = ["sleep", "600"]
    spec = {"securityContext": POD_SECURE, "containers": [container], "terminationGracePeriodSeconds": 0}
    return {"metadata": {"name": name, "labels": labels}, "spec": spec}


def policy(name: str, selector: dict, types: list[str], ingress=None, egress=None) -> dict:
    spec = {"podSelector": {"matchLabels": selector}, "policyTypes": types}
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    return {"metadata": {"name": name}, "spec": spec}


class Net:
    def __init__(self, sandbox, core, networking):
        settings = json.loads((Path(sandbox["state_dir"]) / "sandbox.json").read_text())["network"]
        self.prefix = settings["prefix"]
        self.host = str(ipaddress.ip_network(settings["cidr"]).network_address + 1)
        self.core, self.networking = core, networking
        self.ips: dict[str, str] = {}

    def connects(self, source: str, address: str, port: int = PORT) -> bool:
        """Whether a TCP connection from the pod `source` ("ns/name") to address:port opens."""
        netns = f"{self.prefix}-{self.ips[source].replace('.', '-')}"
        code = f"import socket; socket.create_connection(({address!r}, {port}), timeout=1).close()"
        command = ["ip", "netns", "exec", netns, sys.executable, "-c", code]
        result = subprocess.run(command, capture_output=True)
        return result.returncode == 0

    def link_local(self, pod: str) -> str:
        """The pod's IPv6 link-local address on its eth0 (every veth gets one)."""
        netns = f"{self.prefix}-{self.ips[pod].replace('.', '-')}"
        shown = subprocess.run(
            ["ip", "-n", netns, "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        return shown[shown.index("inet6") + 1].split("/")[0] + "%eth0"

    def host_connects(self, address: str, port: int = PORT) -> bool:
        try:
            socket.create_connection((address, port), timeout=1).close()
            return True
        except OSError:
            return False

    def enforced(self, *policies: str, pods: tuple[str, ...]) -> None:
        """Wait until the agent's table has these policies (namespace/name) and pods' addresses."""

        def listed():
            listing = ["nft", "list", "table", "inet", f"csb_policy_{self.prefix}"]
            out = subprocess.run(listing, capture_output=True, text=True).stdout
            named = all(re.search(rf'[ "]{re.escape(p)}[ "]', out) for p in policies)
            return named and all(self.ips[p] in out for p in pods)

        wait_until(listed, timeout=15, what=f"the node agent to enforce {policies}")

    def apply(self, namespace: str, body: dict) -> str:
        self.networking.create_namespaced_network_policy(namespace, body)
        return f"{namespace}/{body['metadata']['name']}"


@pytest.fixture(scope="module")
def net(sandbox, core, api_client):
    """Namespace A: server (http on 8080, port named http), friend, stranger; namespace B (labelled):
    visitor. Server ingress: deny by default, then from friend (named port) and from namespace B."""
    tag = uuid.uuid4().hex[:6]
    a, b = f"npa-{tag}", f"npb-{tag}"
    net = Net(sandbox, core, client.NetworkingV1Api(api_client))
    core.create_namespace({"metadata": {"name": a, "labels": PSA_RESTRICTED}})
    core.create_namespace({"metadata": {"name": b, "labels": {**PSA_RESTRICTED, "np-test": tag}}})
    try:
        for namespace in (a, b):
            wait_until(
                lambda n=namespace: core.list_namespaced_service_account(n).items,
                timeout=30,
                what=f"the default service account in {namespace}",
            )
        pods = [
            (a, pod_body("server", {"app": "server"}, serve=True)),
            (a, pod_body("friend", {"role": "friend"})),
            (a, pod_body("stranger", {"role": "stranger"})),
            (b, pod_body("visitor", {"role": "visitor"})),
        ]
        for namespace, body in pods:
            core.create_namespaced_pod(namespace, body)
        for namespace, body in pods:
            name = body["metadata"]["name"]

            def ready(namespace=namespace, name=name):
                status = core.read_namespaced_pod(name, namespace).status
                statuses = status.container_statuses or []
                return statuses and all(c.ready for c in statuses) and status.pod_ip

            net.ips[f"{namespace}/{name}"] = wait_until(ready, timeout=30, what=f"pod {name} Ready")
        server = {"app": "server"}
        applied = [
            net.apply(a, policy("deny", server, ["Ingress"])),
            net.apply(a, policy("from-friend", server, ["Ingress"], ingress=[{
                "from": [{"podSelector": {"matchLabels": {"role": "friend"}}}],
                "ports": [{"port": "http", "protocol": "TCP"}],
            }])),
            net.apply(a, policy("from-b", server, ["Ingress"], ingress=[{
                "from": [{"namespaceSelector": {"matchLabels": {"np-test": tag}}}],
                "ports": [{"port": PORT}],
            }])),
        ]  # fmt: skip
        net.enforced(*applied, pods=(f"{a}/server", f"{a}/friend", f"{b}/visitor"))
        net.a, net.b = a, b
        net.server = net.ips[f"{a}/server"]
        yield net
    finally:
        core.delete_namespace(a)
        core.delete_namespace(b)


def test_default_deny_ingress_lets_in_only_the_labelled_pod(net):
    assert net.connects(f"{net.a}/friend", net.server)
    assert not net.connects(f"{net.a}/stranger", net.server)
    # Nor around the policy through IPv6 on the shared bridge (pods are IPv4-only to policies).
    assert not net.connects(f"{net.a}/stranger", net.link_local(f"{net.a}/server"))
    # The host counts as outside the cluster: no ipBlock lets it in.
    assert not net.host_connects(net.server)


def test_namespace_selector_lets_in_pods_of_the_labelled_namespace(net):
    assert net.connects(f"{net.b}/visitor", net.server)


def test_egress_ip_block_except_denies_the_excepted_address(net):
    """Egress to everywhere but the server's /32: the server (which would let the visitor in) is
    unreachable, the host (outside the cluster, inside the block) is reached."""
    listener = socket.create_server((net.host, 0))
    try:
        applied = net.apply(net.b, policy("not-server", {"role": "visitor"}, ["Egress"], egress=[{
            "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [f"{net.server}/32"]}}],
        }]))  # fmt: skip
        net.enforced(applied, pods=(f"{net.b}/visitor",))
        assert not net.connects(f"{net.b}/visitor", net.server)
        assert net.connects(f"{net.b}/visitor", net.host, listener.getsockname()[1])
        assert net.connects(f"{net.a}/friend", net.server)  # the visitor's egress only
    finally:
        listener.close()

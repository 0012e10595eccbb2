"""The sandbox's NetworkPolicy compiler: policies, pods and namespaces → an nftables table.

Each case compiles a small cluster and asks what the table does to one new connection, read by a
tiny evaluator of the nft subset the compiler writes (the sandbox's integration test runs the real
nft). Semantics: https://kubernetes.io/docs/concepts/services-networking/network-policies/
"""

from __future__ import annotations

import ipaddress
import re

import pytest

from sandbox.nodeagent.netpolicy import NODE_MARK
from sandbox.nodeagent.netpolicy_rules import StandIn, compile_ruleset, running_pods, transaction

pytestmark = pytest.mark.unit

MARK = NODE_MARK
HOST = "10.244.0.1"


def pod(namespace, name, ip, labels=None, ports=None, **status):
    container = {"name": "main", "ports": [{"name": n, "containerPort": p, "protocol": proto}
                                           for n, p, proto in ports or []]}  # fmt: skip
    return {
        "metadata": {"namespace": namespace, "name": name, "labels": labels or {}},
        "spec": {"containers": [container], **status.pop("spec", {})},
        "status": {"podIP": ip, "phase": "Running", **status},
    }


def ns(name, **labels):
    return {"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, **labels}}}


def policy(namespace, name, selector=None, types=None, ingress=None, egress=None):
    spec = {"podSelector": selector or {}}
    if types is not None:
        spec["policyTypes"] = types
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    return {"metadata": {"namespace": namespace, "name": name}, "spec": spec}


PODS = [
    pod("shop", "web", "10.244.1.2", {"app": "web"}, ports=[("http", 8080, "TCP")]),
    pod("shop", "client", "10.244.1.3", {"app": "client"}),
    pod("shop", "other", "10.244.1.4", {"app": "other"}),
    pod("tools", "probe", "10.244.2.2", {"app": "client"}),
    pod("kube-system", "dns", "10.244.2.3", {"k8s-app": "kube-dns"}, ports=[("dns", 53, "UDP")]),
    pod("shop", "done", "10.244.1.9", {"app": "client"}, phase="Succeeded"),
]
NAMESPACES = [ns("shop"), ns("tools", team="ops"), ns("kube-system")]
WEB, CLIENT, OTHER, TOOLS, DNS = "10.244.1.2", "10.244.1.3", "10.244.1.4", "10.244.2.2", "10.244.2.3"
DENY_WEB = policy("shop", "deny", {"matchLabels": {"app": "web"}}, ["Ingress"])
FROM_CLIENT = policy("shop", "from-client", {"matchLabels": {"app": "web"}},
                     ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}])  # fmt: skip


def chains(ruleset: str) -> dict[str, list[str]]:
    found, current = {}, None
    for raw in ruleset.splitlines():
        line = raw.split("#")[0].strip()
        if m := re.match(r"chain (\S+) \{", line):
            current = found.setdefault(m.group(1), [])
        elif line and line != "}" and not line.startswith(("type ", "comment ")) and current is not None:
            current.append(re.sub(r' comment "[^"]*"', "", line))
    return found


def in_set(value: str, text: str, kind) -> bool:
    items = [i.strip() for i in text.strip("{} ").split(",")]
    for item in items:
        if "-" in item and kind is int:
            low, high = item.split("-")
            if int(low) <= int(value) <= int(high):
                return True
        elif kind is int and int(item) == int(value):
            return True
        elif kind is not int and ipaddress.ip_address(value) in ipaddress.ip_network(item):
            return True
    return False


TOKEN = re.compile(
    r"(ip (saddr|daddr) (!= )?(\{[^}]*\}|\S+)|meta l4proto (\w+)|th dport (\{[^}]*\})|meta mark \S+)"
)


def run(table: dict, chain: str, packet: dict) -> str:
    """The verdict of `chain` for packet (src, dst, proto, port, mark): accept, drop or return."""
    for line in table[chain]:
        verdict = line.split()[-1] if not line.startswith(("ct ", "ip saddr vmap", "ip daddr vmap")) else None
        if line.startswith("ct state"):
            continue  # a new connection
        if m := re.match(r"ip (saddr|daddr) vmap \{(.*)\}", line):
            targets = dict(t.split(" : jump ") for t in m.group(2).strip().split(", "))
            address = packet["src" if m.group(1) == "saddr" else "dst"]
            if address in targets:
                answer = run(table, targets[address].strip(), packet)
                if answer != "return":
                    return answer
            continue
        matched = True
        for token in TOKEN.finditer(line):
            whole, field, negated, value, proto, ports = token.groups()
            if whole.startswith("meta mark"):
                matched &= packet.get("mark") == int(whole.split()[-1], 16)
            elif field:
                hit = in_set(packet["src" if field == "saddr" else "dst"], value, str)
                matched &= hit != bool(negated)
            elif proto:
                matched &= packet["proto"] == proto
            elif ports:
                matched &= in_set(packet["port"], ports, int)
        if matched:
            return verdict
    return "return" if not chain.startswith(("forward", "input", "output")) else "accept"


def verdict(policies, src, dst, port=80, proto="tcp", hook="forward", mark=None) -> str:
    text = compile_ruleset("t", policies, PODS, NAMESPACES, MARK)
    packet = {"src": src, "dst": dst, "port": port, "proto": proto, "mark": mark}
    return run(chains(text), hook, packet)


DNS_ONLY = policy("shop", "dns-only", {"matchLabels": {"app": "client"}}, ["Egress"], egress=[{
    "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
    "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
}])  # fmt: skip
NOT_METADATA = policy("shop", "internet", {"matchLabels": {"app": "client"}}, ["Egress"], egress=[
    {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.0.0/16", "10.0.0.0/8"]}}]},
])  # fmt: skip
FROM_OPS = policy("shop", "from-ops", {"matchLabels": {"app": "web"}},
                  ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"team": "ops"}}}]}])  # fmt: skip
OPS_CLIENTS_ONLY = policy("shop", "ops-clients", {"matchLabels": {"app": "web"}}, ingress=[{"from": [
    {"namespaceSelector": {"matchLabels": {"team": "ops"}},
     "podSelector": {"matchLabels": {"app": "client"}}},
]}])  # fmt: skip
NAMED = policy("shop", "named", {"matchLabels": {"app": "web"}},
               ingress=[{"ports": [{"port": "http"}]}])  # fmt: skip
RANGE = policy("shop", "range", {"matchLabels": {"app": "web"}},
               ingress=[{"ports": [{"port": 9000, "endPort": 9010, "protocol": "TCP"}]}])  # fmt: skip
FROM_HOST = policy("shop", "from-host", {"matchLabels": {"app": "web"}}, ingress=[
    {"from": [{"ipBlock": {"cidr": f"{HOST}/32"}}], "ports": [{"port": 8080}]},
])  # fmt: skip
EGRESS_NAMED = policy("shop", "egress-named", {"matchLabels": {"app": "client"}}, ["Egress"],
                      egress=[{"ports": [{"port": "http"}]}])  # fmt: skip
WEB_BY_EXPRESSION = {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}
EXPRESSIONS = policy("shop", "expr", WEB_BY_EXPRESSION,
                     ingress=[{"from": [{"podSelector": {"matchExpressions": [
                         {"key": "app", "operator": "NotIn", "values": ["other"]}]}}]}])  # fmt: skip


@pytest.mark.parametrize(
    "policies, src, dst, kwargs, expected",
    [
        # No policy: everything open.
        ([], CLIENT, WEB, {}, "accept"),
        # A policy with no rules isolates the pods it selects: default deny.
        ([DENY_WEB], CLIENT, WEB, {}, "drop"),
        ([DENY_WEB], WEB, CLIENT, {}, "accept"),  # ingress-only: web's egress stays open
        ([DENY_WEB], CLIENT, OTHER, {}, "accept"),  # not selected
        ([policy("shop", "all", types=["Ingress"])], CLIENT, OTHER, {}, "drop"),  # podSelector {}: all
        # podSelector peers: the policy's namespace only.
        ([DENY_WEB, FROM_CLIENT], CLIENT, WEB, {}, "accept"),
        ([DENY_WEB, FROM_CLIENT], OTHER, WEB, {}, "drop"),
        ([DENY_WEB, FROM_CLIENT], TOOLS, WEB, {}, "drop"),  # app=client, but in another namespace
        # namespaceSelector alone: every pod there; with a podSelector in the same peer: both must hold.
        ([FROM_OPS], TOOLS, WEB, {}, "accept"),
        ([FROM_OPS], CLIENT, WEB, {}, "drop"),
        ([OPS_CLIENTS_ONLY], TOOLS, WEB, {}, "accept"),
        ([OPS_CLIENTS_ONLY], DNS, WEB, {}, "drop"),
        # ipBlock with except, for egress (and to another pod's address too).
        ([NOT_METADATA], CLIENT, "8.8.8.8", {"port": 443}, "accept"),
        ([NOT_METADATA], CLIENT, "169.254.169.254", {}, "drop"),
        ([NOT_METADATA], CLIENT, WEB, {}, "drop"),
        ([NOT_METADATA], CLIENT, HOST, {"hook": "input"}, "drop"),  # the host is subject to egress rules
        # Ports: named (resolved at the destination pod), ranges, protocols.
        ([NAMED], CLIENT, WEB, {"port": 8080}, "accept"),
        ([NAMED], CLIENT, WEB, {"port": 80}, "drop"),
        ([NAMED], CLIENT, WEB, {"port": 8080, "proto": "udp"}, "drop"),
        ([RANGE], CLIENT, WEB, {"port": 9005}, "accept"),
        ([RANGE], CLIENT, WEB, {"port": 9011}, "drop"),
        ([EGRESS_NAMED], CLIENT, WEB, {"port": 8080}, "accept"),
        ([EGRESS_NAMED], CLIENT, OTHER, {"port": 8080}, "drop"),  # "http" means nothing at other
        ([EGRESS_NAMED], CLIENT, "8.8.8.8", {"port": 8080}, "drop"),
        # Egress to the cluster DNS only.
        ([DNS_ONLY], CLIENT, DNS, {"port": 53, "proto": "udp"}, "accept"),
        ([DNS_ONLY], CLIENT, DNS, {"port": 53}, "accept"),
        ([DNS_ONLY], CLIENT, DNS, {"port": 80}, "drop"),
        ([DNS_ONLY], CLIENT, WEB, {"port": 53, "proto": "udp"}, "drop"),
        ([DNS_ONLY], CLIENT, "8.8.8.8", {"port": 53, "proto": "udp"}, "drop"),
        # Both ends decide: client's egress allows web, web's ingress does not.
        ([DNS_ONLY, policy("shop", "e", {"matchLabels": {"app": "client"}}, ["Egress"], egress=[{}])],
         CLIENT, WEB, {}, "accept"),
        ([NOT_METADATA, DENY_WEB, FROM_OPS], TOOLS, WEB, {}, "accept"),
        ([policy("tools", "out", types=["Egress"]), FROM_OPS], TOOLS, WEB, {}, "drop"),
        # Two policies add up.
        ([NAMED, RANGE], CLIENT, WEB, {"port": 8080}, "accept"),
        ([NAMED, RANGE], CLIENT, WEB, {"port": 9001}, "accept"),
        ([NAMED, RANGE], CLIENT, WEB, {"port": 22}, "drop"),
        # policyTypes Egress only: ingress stays open.
        ([DNS_ONLY], WEB, CLIENT, {}, "accept"),
        # The host: outside the cluster for ingress (an ipBlock may let it in), but the node's probes pass.
        ([DENY_WEB], HOST, WEB, {"hook": "output"}, "drop"),
        ([DENY_WEB], HOST, WEB, {"hook": "output", "mark": MARK}, "accept"),
        ([FROM_HOST], HOST, WEB, {"hook": "output", "port": 8080}, "accept"),
        ([FROM_HOST], HOST, WEB, {"hook": "output", "port": 22}, "drop"),
        ([FROM_HOST], CLIENT, WEB, {"port": 8080}, "drop"),
        # matchExpressions.
        ([EXPRESSIONS], CLIENT, WEB, {}, "accept"),
        ([EXPRESSIONS], OTHER, WEB, {}, "drop"),
        # An empty rule allows everything; empty `from` means every source.
        ([policy("shop", "any", {"matchLabels": {"app": "web"}}, ingress=[{}])], TOOLS, WEB, {}, "accept"),
        ([policy("shop", "any", {"matchLabels": {"app": "web"}}, ingress=[{"from": []}])], TOOLS, WEB, {},
         "accept"),
        # The default of policyTypes: Egress too when egress rules exist.
        ([policy("shop", "d", {"matchLabels": {"app": "client"}}, egress=[{"ports": [{"port": 53}]}])],
         CLIENT, WEB, {}, "drop"),
        ([policy("shop", "d", {"matchLabels": {"app": "client"}}, egress=[{"ports": [{"port": 53}]}])],
         OTHER, CLIENT, {}, "drop"),
    ],
    ids=[
        "no-policy-open", "default-deny-ingress", "ingress-only-egress-open", "unselected-open",
        "empty-selector-selects-all", "allow-from-podSelector", "podSelector-others-denied",
        "podSelector-own-namespace-only", "namespaceSelector", "namespaceSelector-others-denied",
        "both-selectors-in-one-peer", "both-selectors-other-pod-denied", "ipBlock-internet",
        "ipBlock-except-metadata", "ipBlock-except-pod", "ipBlock-except-host", "named-port",
        "named-port-other-port", "named-port-other-protocol", "endPort-inside", "endPort-outside",
        "egress-named-port", "egress-named-port-undefined-there", "egress-named-port-external",
        "egress-dns-only-udp", "egress-dns-only-tcp", "egress-dns-only-other-port",
        "egress-dns-only-other-pod", "egress-dns-only-external", "egress-and-ingress-both-needed",
        "ingress-allowed-egress-open", "egress-default-deny", "two-policies-additive-first",
        "two-policies-additive-second", "two-policies-additive-neither", "egress-only-leaves-ingress-open",
        "host-is-outside", "node-probe-passes", "host-by-ipBlock", "host-by-ipBlock-other-port",
        "ipBlock-host-not-pods", "matchExpressions", "matchExpressions-NotIn", "empty-rule-allows-all",
        "empty-from-allows-all", "default-types-egress", "default-types-ingress",
    ],
)  # fmt: skip
def test_verdict(policies, src, dst, kwargs, expected):
    assert verdict(policies, src, dst, **kwargs) == expected


def test_finished_and_host_network_pods_are_not_policed():
    pods = [*PODS, pod("shop", "host", "10.244.1.7", {"app": "web"}, spec={"hostNetwork": True})]
    assert {p.name for p in running_pods(pods)} == {"web", "client", "other", "probe", "dns"}


def test_an_address_reused_by_a_newer_pod_belongs_to_it():
    old = pod("shop", "old", "10.244.1.5")
    new = pod("shop", "new", "10.244.1.5")
    old["metadata"]["creationTimestamp"], new["metadata"]["creationTimestamp"] = (
        "2026-01-01T00:00:00Z",
        "2026-01-02T00:00:00Z",
    )
    assert [p.name for p in running_pods([new, old])] == ["new"]


def test_the_table_is_replaced_in_one_transaction():
    text = transaction("t", compile_ruleset("t", [DENY_WEB], PODS, NAMESPACES, MARK))
    lines = text.splitlines()
    assert lines[:3] == ["table inet t {}", "delete table inet t", "table inet t {"]
    assert "ct state established,related accept" in chains(text)["forward"]


DNS_HOST_PORT = 40053
DNS_PORTS = {("UDP", 53): DNS_HOST_PORT, ("TCP", 53): DNS_HOST_PORT}
STAND_INS = (StandIn("kube-system", {"k8s-app": "kube-dns"}, HOST, DNS_PORTS),)
TO_ANYONE_53 = policy("shop", "any-53", {"matchLabels": {"app": "client"}}, ["Egress"],
                      egress=[{"ports": [{"port": 53, "protocol": "UDP"}]}])  # fmt: skip


@pytest.mark.parametrize(
    "policies, port, proto, expected",
    [
        ([DNS_ONLY], DNS_HOST_PORT, "udp", "return"),  # the DNS the Service sends pods to, on the host
        ([DNS_ONLY], DNS_HOST_PORT, "tcp", "return"),
        ([DNS_ONLY], 80, "tcp", "drop"),  # not the rest of the host
        ([TO_ANYONE_53], DNS_HOST_PORT, "udp", "return"),
        ([TO_ANYONE_53], DNS_HOST_PORT, "tcp", "drop"),
        ([NOT_METADATA], DNS_HOST_PORT, "udp", "drop"),  # an ipBlock names addresses, not kube-dns
    ],
    ids=["dns-peer-udp", "dns-peer-tcp", "dns-peer-not-other-ports", "any-peer-port-53",
         "any-peer-port-53-udp-only", "ipBlock-not-stand-in"],
)  # fmt: skip
def test_cluster_dns_served_by_the_host_stands_for_kube_dns_pods(policies, port, proto, expected):
    text = compile_ruleset("t", policies, PODS, NAMESPACES, MARK, STAND_INS)
    packet = {"src": CLIENT, "dst": HOST, "port": port, "proto": proto, "mark": None}
    assert run(chains(text), f"egress_{CLIENT.replace('.', '_')}", packet) == expected


TO_HOST = policy("shop", "to-host", {"matchLabels": {"app": "client"}}, ["Egress"], egress=[
    {"to": [{"ipBlock": {"cidr": f"{HOST}/32"}}], "ports": [{"port": 6443}]},
])  # fmt: skip


@pytest.mark.parametrize(
    "policies, expected",
    [([NOT_METADATA], "drop"), ([TO_HOST], "return"), ([DNS_ONLY], "drop")],
    ids=["internet-not-the-api-server", "host-block-reaches-it", "no-block"],
)
def test_an_endpoint_on_loopback_counts_as_the_host(policies, expected):
    """The API server's endpoint is the host's address, served on 127.0.0.1 behind its Service."""
    text = compile_ruleset("t", policies, PODS, NAMESPACES, MARK, (), HOST)
    packet = {"src": CLIENT, "dst": "127.0.0.1", "port": 6443, "proto": "tcp", "mark": None}
    assert run(chains(text), f"egress_{CLIENT.replace('.', '_')}", packet) == expected


def test_ipv6_from_the_bridge_is_dropped_since_policies_name_ipv4_only():
    """Pods have IPv6 link-local addresses on the shared bridge: left open, they would go around
    every policy, to other pods (forward) and to the host (input)."""
    table = chains(compile_ruleset("t", [], PODS, NAMESPACES, MARK, (), HOST, "csb0"))
    for hook in ("forward", "input"):
        assert 'meta nfproto ipv6 iifname "csb0" drop' in table[hook]
    assert not any("ipv6" in line for line in table["output"])

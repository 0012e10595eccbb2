"""The node agent's Services, DNS answers and pod /etc files: the pure parts, table-driven."""

from __future__ import annotations

import ipaddress
import struct
import subprocess

import pytest

from sandbox.nodeagent import dns, podfiles
from sandbox.nodeagent.services import Endpoint, Host, build, pod_env, render

pytestmark = pytest.mark.unit

HOST = Host(
    table="csb_services_t",
    bridge="csbt",
    loopback="127.97.3.1",
    local_endpoints={("10.244.0.1", 6443): "127.0.0.1"},
    free_ports=frozenset({80}),
)


def service(name, *, ns="ns", kind="ClusterIP", ip="10.97.0.5", ports=None):
    ports = ports if ports is not None else [{"name": "http", "port": 80, "protocol": "TCP"}]
    return {
        "metadata": {"namespace": ns, "name": name},
        "spec": {"type": kind, "clusterIP": ip, "ports": ports},
    }


def endpoint_slice(*addresses, ports=None, ready=True, hostname=None):
    ports = ports if ports is not None else [{"name": "http", "port": 8000, "protocol": "TCP"}]
    return {
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": [
            {"addresses": [a], "conditions": {"ready": ready}, **({"hostname": hostname} if hostname else {})}
            for a in addresses
        ],
    }


# -- joining Services with EndpointSlices ----------------------------------------------------


@pytest.mark.parametrize(
    "slices, expected",
    [
        ([endpoint_slice("10.244.1.3", "10.244.1.2")], [("10.244.1.2", 8000), ("10.244.1.3", 8000)]),
        ([endpoint_slice("10.244.1.2", ready=False)], []),
        ([endpoint_slice("10.244.1.2", ports=[{"name": "metrics", "port": 9000}])], []),
        ([endpoint_slice("10.244.1.2"), endpoint_slice("10.244.1.2")], [("10.244.1.2", 8000)]),
        ([{**endpoint_slice("fd00::1"), "addressType": "IPv6"}], []),
        ([], []),
    ],
    ids=[
        "sorted-ready",
        "not-ready-dropped",
        "port-name-must-match",
        "duplicates-once",
        "ipv6-ignored",
        "none",
    ],
)
def test_a_port_gets_the_ready_endpoints_of_its_name(slices, expected):
    built = build(service("web"), slices)
    assert [(e.ip, e.port) for e in built.ports[0].endpoints] == expected


# -- rules ----------------------------------------------------------------------------------


def rules_for(*pairs):
    return render([build(s, slices) for s, slices in pairs], HOST)


@pytest.mark.parametrize(
    "pairs, present, absent",
    [
        (
            [(service("web"), [endpoint_slice("10.244.1.2")])],
            [
                'ip daddr 10.97.0.5 tcp dport 80 jump svc0 comment "ns/web:http/tcp"',
                "meta l4proto tcp dnat to 10.244.1.2:8000",
                "ip saddr 10.244.1.2 meta mark set meta mark | 0x4000",
            ],
            ["127.97.3.1 tcp dport"],
        ),
        (
            [(service("web"), [endpoint_slice("10.244.1.2", "10.244.1.3")])],
            ["numgen random mod 2 map { 0 : 10.244.1.2 . 8000, 1 : 10.244.1.3 . 8000 }"],
            ["dnat to 10.244.1.2:8000"],
        ),
        (
            [(service("web"), [])],
            ['ip daddr 10.97.0.5 tcp dport 80 reject with tcp reset comment "ns/web:http/tcp has no ready'],
            ["chain svc0"],
        ),
        (
            [(service("dns", ports=[{"port": 53, "protocol": "UDP"}]), [])],
            ["ip daddr 10.97.0.5 udp dport 53 reject comment"],
            ["tcp reset"],
        ),
        (
            [(service("web", ip="None"), [endpoint_slice("10.244.1.2")])],
            [],
            ["ip daddr 10.97", "jump svc0"],
        ),
        (
            [
                (
                    service(
                        "np",
                        kind="NodePort",
                        ports=[{"name": "http", "port": 8080, "protocol": "TCP", "nodePort": 31000}],
                    ),
                    [endpoint_slice("10.244.1.2")],
                )
            ],
            ["ip daddr 127.97.3.1 tcp dport 31000 jump svc0"],
            ['tcp dport 8080 jump svc0 comment "ns/np:http/tcp"\n    ip daddr 127'],
        ),
        (
            [
                (
                    service(
                        "lb",
                        kind="LoadBalancer",
                        ports=[{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 31001}],
                    ),
                    [endpoint_slice("10.244.1.2")],
                )
            ],
            ["ip daddr 127.97.3.1 tcp dport 31001 jump svc0", "ip daddr 127.97.3.1 tcp dport 80 jump svc0"],
            [],
        ),
        (
            [
                (
                    service(
                        "lb",
                        kind="LoadBalancer",
                        ports=[{"name": "http", "port": 8443, "protocol": "TCP", "nodePort": 31002}],
                    ),
                    [endpoint_slice("10.244.1.2")],
                )
            ],
            ["ip daddr 127.97.3.1 tcp dport 31002 jump svc0"],
            ["127.97.3.1 tcp dport 8443"],
        ),
        (
            [
                (
                    service(
                        "kubernetes", ns="default", ip="10.97.0.1", ports=[{"name": "https", "port": 443}]
                    ),
                    [endpoint_slice("10.244.0.1", ports=[{"name": "https", "port": 6443}])],
                )
            ],
            ["meta l4proto tcp dnat to 127.0.0.1:6443"],
            ["dnat to 10.244.0.1"],
        ),
    ],
    ids=[
        "clusterip-one-endpoint",
        "clusterip-random-over-two",
        "no-endpoint-tcp-reset",
        "no-endpoint-udp-reject",
        "headless-no-rules",
        "nodeport-on-loopback",
        "loadbalancer-free-port-too",
        "loadbalancer-busy-port-nodeport-only",
        "apiserver-listens-on-loopback",
    ],
)
def test_rules(pairs, present, absent):
    script = rules_for(*pairs)
    for text in present:
        assert text in script
    for text in absent:
        assert text not in script


def test_the_script_replaces_our_table_only_and_hooks_pods_and_host():
    script = rules_for((service("web"), [endpoint_slice("10.244.1.2")]))
    assert script.startswith("table ip csb_services_t {}\ndelete table ip csb_services_t\n")
    assert 'iifname "csbt" jump services' in script
    assert 'oifname "csbt" ip saddr 127.0.0.0/8 masquerade' in script


def test_two_load_balancers_on_one_port_the_first_keeps_it():
    lb = [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 31001}]
    other = [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 31002}]
    script = rules_for(
        (service("b", kind="LoadBalancer", ip="10.97.0.6", ports=other), [endpoint_slice("10.244.1.3")]),
        (service("a", kind="LoadBalancer", ports=lb), [endpoint_slice("10.244.1.2")]),
    )
    assert script.count("ip daddr 127.97.3.1 tcp dport 80 ") == 1
    assert 'tcp dport 80 jump svc0 comment "ns/a:http/tcp"' in script
    assert "ip daddr 127.97.3.1 tcp dport 31002 jump svc1" in script


@pytest.mark.parametrize(
    "default, cidr, loopback, kubernetes_ip, dns_ip",
    [
        (True, "10.96.0.0/16", "127.0.0.1", "10.96.0.1", "10.96.0.10"),
        (False, "10.97.{4k}.0/22", "127.97.{k}.1", "10.97.{4k}.1", "10.97.{4k}.10"),
    ],
    ids=["default-state-kubeadm-range", "other-state-own-range"],
)
def test_each_sandbox_has_its_own_service_range(
    tmp_path, monkeypatch, default, cidr, loopback, kubernetes_ip, dns_ip
):
    from sandbox import cluster

    monkeypatch.setattr(cluster, "default_state_dir", lambda: tmp_path if default else tmp_path / "default")
    settings = cluster.services_for(tmp_path)
    k = int(settings["loopback"].split(".")[2])
    assert 0 <= k < 64
    expected = {"cidr": cidr, "loopback": loopback, "kubernetes_ip": kubernetes_ip, "dns_ip": dns_ip}
    for key, value in expected.items():
        assert settings[key] == value.replace("{4k}", str(4 * k)).replace("{k}", str(k))
    assert ipaddress.IPv4Address(settings["dns_ip"]) in ipaddress.IPv4Network(settings["cidr"])


def test_nft_accepts_the_script():
    script = rules_for(
        (service("web"), [endpoint_slice("10.244.1.2", "10.244.1.3")]),
        (service("dns", ip="10.97.0.10", ports=[{"port": 53, "protocol": "UDP"}]), []),
    )
    checked = subprocess.run(["nft", "-c", "-f", "-"], input=script, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


# -- environment -------------------------------------------------------------------------------


def test_service_links_as_the_kubelet_writes_them():
    services = [
        build(service("my-web", ports=[{"name": "http", "port": 80}, {"name": "metrics", "port": 9090}]), []),
        build(
            service("kubernetes", ns="default", ip="10.97.0.1", ports=[{"name": "https", "port": 443}]), []
        ),
        build(service("headless", ip="None"), []),
        build(service("elsewhere", ns="other"), []),
    ]
    env = pod_env(services, "ns", service_links=True)
    assert env["MY_WEB_SERVICE_HOST"] == "10.97.0.5"
    assert env["MY_WEB_SERVICE_PORT"] == "80"
    assert env["MY_WEB_SERVICE_PORT_METRICS"] == "9090"
    assert env["MY_WEB_PORT"] == "tcp://10.97.0.5:80"
    assert env["MY_WEB_PORT_9090_TCP_ADDR"] == "10.97.0.5"
    assert env["KUBERNETES_SERVICE_HOST"] == "10.97.0.1"
    assert env["KUBERNETES_SERVICE_PORT"] == env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    assert not [k for k in env if k.startswith(("HEADLESS_", "ELSEWHERE_"))]
    quiet = pod_env(services, "ns", service_links=False)
    assert sorted({k.split("_")[0] for k in quiet}) == ["KUBERNETES"]


# -- DNS ----------------------------------------------------------------------------------------

MODEL = [
    build(
        service("web", ports=[{"name": "http", "port": 80, "protocol": "TCP"}]),
        [endpoint_slice("10.244.1.2")],
    ),
    build(service("db", ip="None"), [endpoint_slice("10.244.1.7", "10.244.1.8", hostname=None)]),
    build(service("db0", ip="None"), [endpoint_slice("10.244.1.9", hostname="db-0")]),
]


def a(*ips):
    return [ipaddress.IPv4Address(ip).packed for ip in ips]


@pytest.mark.parametrize(
    "name, qtype, rcode, rdata",
    [
        ("web.ns.svc.cluster.local", dns.A, dns.NOERROR, a("10.97.0.5")),
        ("WEB.ns.svc.cluster.local.", dns.A, dns.NOERROR, a("10.97.0.5")),
        ("web.ns.svc.cluster.local", dns.AAAA, dns.NOERROR, []),
        ("nope.ns.svc.cluster.local", dns.A, dns.NXDOMAIN, []),
        ("web.other.svc.cluster.local", dns.A, dns.NXDOMAIN, []),
        ("db.ns.svc.cluster.local", dns.A, dns.NOERROR, a("10.244.1.7", "10.244.1.8")),
        ("10-244-1-8.db.ns.svc.cluster.local", dns.A, dns.NOERROR, a("10.244.1.8")),
        ("db-0.db0.ns.svc.cluster.local", dns.A, dns.NOERROR, a("10.244.1.9")),
        ("10-244-1-5.ns.pod.cluster.local", dns.A, dns.NOERROR, a("10.244.1.5")),
        ("bad.ns.pod.cluster.local", dns.A, dns.NXDOMAIN, []),
        ("cluster.local", dns.A, dns.NXDOMAIN, []),
        (
            "_http._tcp.web.ns.svc.cluster.local",
            dns.SRV,
            dns.NOERROR,
            [struct.pack("!HHH", 0, 100, 80) + dns.encode_name("web.ns.svc.cluster.local")],
        ),
        ("5.0.97.10.in-addr.arpa", dns.PTR, dns.NOERROR, [dns.encode_name("web.ns.svc.cluster.local")]),
    ],
    ids=[
        "clusterip",
        "case-and-dot",
        "aaaa-nodata",
        "unknown-service",
        "wrong-namespace",
        "headless-endpoints",
        "headless-dashed-ip",
        "headless-hostname",
        "pod-record",
        "pod-bad-ip",
        "zone-apex",
        "srv-named-port",
        "ptr-clusterip",
    ],
)
def test_cluster_names(name, qtype, rcode, rdata):
    found = dns.resolve(name, qtype, MODEL)
    assert found is not None
    assert found[0] == rcode
    assert [record[2] for record in found[1]] == rdata


@pytest.mark.parametrize(
    "name",
    ["example.org", "1.1.168.192.in-addr.arpa", "cluster.local.example.org"],
    ids=["public", "ptr", "suffix"],
)
def test_other_names_are_forwarded(name):
    assert dns.resolve(name, dns.A, MODEL) is None


def test_a_query_gets_an_answer_on_the_wire():
    query = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + dns.encode_name("web.ns.svc.cluster.local")
    query += struct.pack("!HH", dns.A, 1)
    reply = dns.response(query, *dns.resolve("web.ns.svc.cluster.local", dns.A, MODEL))
    ident, flags, qd, an = struct.unpack("!HHHH", reply[:8])
    assert (ident, flags & 0x8000, flags & 0x0400, flags & 0x0100, flags & 0xF, qd, an) == (
        0x1234,
        0x8000,
        0x0400,
        0x0100,
        dns.NOERROR,
        1,
        1,
    )
    assert reply.endswith(ipaddress.IPv4Address("10.97.0.5").packed)


@pytest.mark.parametrize(
    "message",
    [b"", b"\x00" * 11, struct.pack("!HHHHHH", 1, 0, 2, 0, 0, 0), b"\x00" * 12 + b"\xc0\x0c"],
    ids=["empty", "short-header", "two-questions", "pointer-loop"],
)
def test_malformed_queries_are_refused(message):
    with pytest.raises(dns.Malformed):
        dns.parse_query(message)


# -- /etc files ---------------------------------------------------------------------------------

CLUSTER_SEARCH = "search ns.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
HOST_RESOLV = "# host\nnameserver 10.255.255.53\nsearch corp.example\noptions edns0\n"


@pytest.mark.parametrize(
    "spec, expected",
    [
        (
            {},
            "nameserver 10.97.0.10\n" + CLUSTER_SEARCH + "options ndots:5\n",
        ),
        ({"dnsPolicy": "Default"}, "nameserver 10.255.255.53\nsearch corp.example\noptions edns0\n"),
        ({"hostNetwork": True}, "nameserver 10.255.255.53\nsearch corp.example\noptions edns0\n"),
        (
            {"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"], "searches": ["a.example"]}},
            "nameserver 1.1.1.1\nsearch a.example\n",
        ),
        (
            {"dnsConfig": {"options": [{"name": "ndots", "value": "2"}, {"name": "single-request"}]}},
            "nameserver 10.97.0.10\n" + CLUSTER_SEARCH + "options ndots:2 single-request\n",
        ),
    ],
    ids=["cluster-first", "default-is-the-hosts", "host-network", "none-with-config", "options-override"],
)
def test_resolv_conf(spec, expected):
    assert podfiles.resolv_conf(spec, "ns", "10.97.0.10", HOST_RESOLV) == expected


@pytest.mark.parametrize(
    "spec, own_line",
    [
        ({}, "10.244.1.2\tweb-0"),
        ({"hostname": "box", "subdomain": "sub"}, "10.244.1.2\tbox.sub.ns.svc.cluster.local\tbox"),
    ],
    ids=["pod-name", "hostname-subdomain"],
)
def test_hosts_file(spec, own_line):
    text = podfiles.hosts(
        {**spec, "hostAliases": [{"ip": "10.0.0.9", "hostnames": ["a", "b"]}]}, "web-0", "ns", "10.244.1.2"
    )
    lines = text.splitlines()
    assert lines[0] == "# Kubernetes-managed hosts file."
    assert "127.0.0.1\tlocalhost" in lines
    assert own_line in lines
    assert lines[-1] == "10.0.0.9\ta\tb"


def test_an_endpoint_is_a_value():
    assert Endpoint("10.0.0.1", 80) == Endpoint("10.0.0.1", 80)

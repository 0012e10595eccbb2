"""What the chart's NetworkPolicies and TLS settings let through, read from `helm template` renders.

No cluster is involved (NetworkPolicies are not enforced in the sandbox): each egress policy is
evaluated here as a CNI would, rule by rule, for an address and port, so that a table can say what
notebooks, the hub and build pods may reach.
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import json
from pathlib import Path

import pytest

from tests.integration.chart import BINDER_VALUES, CHART, DEFAULT_VALUES, find, render, resolve_helm

pytestmark = pytest.mark.integration

GPU_VALUES = CHART / "ci" / "gpu-magnum-existing-secrets-values.yaml"
INGRESS_VALUES = CHART / "ci" / "ingress-values.yaml"
PRIVATE = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16"]
PRIVATE_V6 = ["fc00::/7", "fe80::/10"]
DNS_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}
HUB_LABELS = {"app.kubernetes.io/name": "cern-spawner", "app.kubernetes.io/instance": "hub"}


@pytest.fixture(scope="module")
def helm() -> Path:
    return resolve_helm()


@functools.cache
def rendered(helm: Path, values: Path, settings: tuple[str, ...]) -> list[dict]:
    """One `helm template` per combination: the tables ask the same renders many questions."""
    return render(helm, values, "hub", *(("--set", ",".join(settings)) if settings else ()))


def policy(helm, values: Path, name: str, *settings: str) -> dict:
    docs = rendered(helm, values, settings)
    return copy.deepcopy(find(docs, "NetworkPolicy", f"hub-cern-spawner-{name}")["spec"])


def reachable(spec: dict, address: str, port: int) -> bool:
    """Whether an egress rule lets a pod this policy selects open TCP to address:port (ipBlock peers
    only: selector peers never match a bare address)."""
    ip = ipaddress.ip_address(address)
    for rule in spec.get("egress", []):
        ports = rule.get("ports")
        if ports and not any(p["port"] == port and p.get("protocol", "TCP") == "TCP" for p in ports):
            continue
        for peer in rule.get("to", []):
            block = peer.get("ipBlock")
            if not block:
                continue
            inside = ip in ipaddress.ip_network(block["cidr"])
            if inside and not any(ip in ipaddress.ip_network(e) for e in block.get("except", [])):
                return True
    return False


GPU_SETTINGS = (GPU_VALUES, [])
REGISTRY = [
    "binder.builder.networkPolicy.egressAllowed[0].to[0].ipBlock.cidr=10.0.5.7/32",
    "binder.builder.networkPolicy.egressAllowed[0].ports[0].port=5000",
]
PROXY = {"podSelector": {"matchLabels": {**HUB_LABELS, "app.kubernetes.io/component": "proxy"}}}
BINDER = (BINDER_VALUES, [])
DEFAULTS = (DEFAULT_VALUES, [])


@pytest.mark.parametrize(
    "name, values, settings, address, port, allowed",
    [
        # Notebooks: the internet, not the metadata service, the cluster or the site's private networks.
        ("singleuser", *DEFAULTS, "169.254.169.254", 80, False),
        ("singleuser", *DEFAULTS, "10.254.0.1", 443, False),  # the API server's Service address
        ("singleuser", *DEFAULTS, "10.0.0.12", 10250, False),  # a node's kubelet
        ("singleuser", *DEFAULTS, "172.20.1.5", 5432, False),
        ("singleuser", *DEFAULTS, "192.168.1.1", 22, False),
        ("singleuser", *DEFAULTS, "100.64.0.10", 53, False),
        ("singleuser", *DEFAULTS, "fd00:ec2::254", 80, False),  # the IPv6 metadata service
        ("singleuser", *DEFAULTS, "fe80::1", 80, False),
        ("singleuser", *DEFAULTS, "188.184.21.108", 443, True),  # a public host (CERN's web)
        ("singleuser", *DEFAULTS, "8.8.8.8", 443, True),
        ("singleuser", *DEFAULTS, "2001:1458:201::1", 443, True),
        # ... through egressAllowed only what it names.
        ("singleuser", *GPU_SETTINGS, "10.100.3.4", 1094, True),
        ("singleuser", *GPU_SETTINGS, "10.100.3.4", 22, False),
        ("singleuser", *GPU_SETTINGS, "169.254.169.254", 80, False),
        # The list is configurable: a site that denies only the metadata service says so.
        ("singleuser", DEFAULT_VALUES, ["singleuser.networkPolicy.egressDeniedCidrs={169.254.169.254/32}"],
         "10.0.0.12", 443, True),
        ("singleuser", DEFAULT_VALUES, ["singleuser.networkPolicy.egressDeniedCidrs={169.254.169.254/32}"],
         "169.254.169.254", 80, False),
        # The hub: SSO, OpenStack, git hosts and the registry on the internet; nothing private.
        ("hub", *DEFAULTS, "169.254.169.254", 80, False),
        ("hub", *DEFAULTS, "10.0.0.5", 22, False),
        ("hub", *DEFAULTS, "192.168.0.1", 80, False),
        ("hub", *DEFAULTS, "188.184.21.108", 443, True),
        # ... the API server where the values say it is, on its port only.
        ("hub", *GPU_SETTINGS, "10.0.0.5", 6443, True),
        ("hub", *GPU_SETTINGS, "10.0.0.5", 10250, False),
        ("hub", *GPU_SETTINGS, "10.0.1.5", 6443, False),
        ("hub", DEFAULT_VALUES, ["networkPolicy.hub.egressAllowed[0].to[0].ipBlock.cidr=10.9.9.9/32"],
         "10.9.9.9", 8443, True),
        # Build pods: git hosts and registries on the internet; private ranges only where opened.
        ("binder-build", *BINDER, "169.254.169.254", 80, False),
        ("binder-build", *BINDER, "10.0.0.12", 2375, False),  # a node's Docker API
        ("binder-build", *BINDER, "172.17.0.1", 80, False),
        ("binder-build", *BINDER, "140.82.121.4", 443, True),  # github.com
        ("binder-build", BINDER_VALUES, REGISTRY, "10.0.5.7", 5000, True),  # an in-cluster registry
        ("binder-build", BINDER_VALUES, REGISTRY, "10.0.5.8", 5000, False),
    ],
    ids=lambda v: v.name if isinstance(v, Path) else None,
)  # fmt: skip
def test_egress(helm, name, values, settings, address, port, allowed):
    assert reachable(policy(helm, values, name, *settings), address, port) is allowed


@pytest.mark.parametrize("name, values", [("singleuser", DEFAULT_VALUES), ("hub", DEFAULT_VALUES),
                                          ("binder-build", BINDER_VALUES)])  # fmt: skip
def test_private_ranges_denied_by_default(helm, name, values):
    spec = policy(helm, values, name)
    assert "Egress" in spec["policyTypes"]
    blocks = {peer["ipBlock"]["cidr"]: peer["ipBlock"].get("except") for rule in spec["egress"]
              for peer in rule.get("to", []) if "ipBlock" in peer and "ports" not in rule}  # fmt: skip
    assert blocks == {"0.0.0.0/0": PRIVATE, "::/0": PRIVATE_V6}


@pytest.mark.parametrize(
    "name, values, peer, ports",
    [
        ("singleuser", DEFAULT_VALUES, DNS_PEER, [53]),
        ("hub", DEFAULT_VALUES, DNS_PEER, [53]),
        ("binder-build", BINDER_VALUES, DNS_PEER, [53]),
        # Notebooks reach the hub's API, by label in the release's namespace.
        ("singleuser", DEFAULT_VALUES, {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "hub"}},
            "podSelector": {"matchLabels": {**HUB_LABELS, "app.kubernetes.io/component": "hub"}},
        }, [8081]),
        # The hub reaches the proxy's API and the notebook servers.
        ("hub", DEFAULT_VALUES, PROXY, [8001]),
        ("hub", DEFAULT_VALUES, {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "hub"}},
            "podSelector": {"matchLabels": {"component": "singleuser-server"}},
        }, [8888]),
        # A BuildKit daemon in its own namespace, opened by the values.
        ("binder-build", BINDER_VALUES, {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "buildkit"}},
            "podSelector": {"matchLabels": {"app": "buildkitd"}},
        }, [1234]),
    ],
    ids=["notebooks-dns", "hub-dns", "builds-dns", "notebooks-hub", "hub-proxy-api", "hub-notebooks",
         "builds-buildkit"],
)  # fmt: skip
def test_egress_by_selector(helm, name, values, peer, ports):
    rules = policy(helm, values, name)["egress"]
    matching = [r for r in rules if peer in r.get("to", [])]
    assert matching, rules
    assert sorted({p["port"] for r in matching for p in r["ports"]}) == ports


def test_hub_egress_policy_can_be_left_out(helm):
    spec = policy(helm, DEFAULT_VALUES, "hub", "networkPolicy.hub.egressEnabled=false")
    assert spec["policyTypes"] == ["Ingress"] and "egress" not in spec


def ports_of(service: dict) -> dict[str, tuple[int, str]]:
    return {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}


@pytest.mark.parametrize(
    "values, settings, service_ports, serves_tls, https",
    [
        # TLS at the proxy: 443 with the Secret's certificate; 80 only redirects.
        (DEFAULT_VALUES, [], {"https": (443, "https"), "http": (80, "http")}, True, True),
        # TLS at Octavia: 443 on the load balancer, which forwards HTTP to the proxy.
        (DEFAULT_VALUES, ["proxy.https.terminate=loadBalancer",
                          "proxy.https.loadBalancerTlsContainerRef=https://kv.cern.ch/v1/containers/c1"],
         {"https": (443, "http")}, False, True),
        # TLS at the ingress controller.
        (INGRESS_VALUES, [], {"http": (80, "http")}, False, True),
        # Plain HTTP, asked for in so many words.
        (DEFAULT_VALUES, ["proxy.https.enabled=false", "proxy.allowInsecureHttp=true"],
         {"http": (80, "http")}, False, False),
    ],
    ids=["proxy", "octavia", "ingress", "insecure"],
)  # fmt: skip
def test_tls_termination(helm, values, settings, service_ports, serves_tls, https):
    docs = render(helm, values, "hub", *(("--set", ",".join(settings)) if settings else ()))
    service = find(docs, "Service", "proxy-public")
    assert ports_of(service) == service_ports
    pod = find(docs, "Deployment", "hub-cern-spawner-proxy")["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    tls_args = {
        "--port=8443",
        "--ssl-key=/etc/cern-spawner/tls/tls.key",
        "--ssl-cert=/etc/cern-spawner/tls/tls.crt",
        "--redirect-port=8000",
        "--redirect-to=443",
    }
    if serves_tls:
        assert tls_args <= set(args)
        assert {"name": "tls", "secret": {"secretName": "hub-tls", "defaultMode": 0o440}} in pod["volumes"]
    else:
        assert "--port=8000" in args and not any(a.startswith("--ssl") for a in args)
    annotations = service["metadata"].get("annotations", {})
    octavia = "loadbalancer.openstack.org/default-tls-container-ref"
    assert (octavia in annotations) == (
        "https" in service_ports and not serves_tls and values != INGRESS_VALUES
    )
    settings_json = json.loads(
        find(docs, "ConfigMap", "hub-cern-spawner-hub-config")["data"]["settings.json"]
    )
    assert (
        settings_json["https"] is https
    )  # the hub's cookies are Secure with it (files/jupyterhub_config.py)


def test_octavia_annotations(helm):
    settings = "proxy.https.terminate=loadBalancer,proxy.https.loadBalancerTlsContainerRef=https://kv/v1/containers/c1"
    docs = render(helm, DEFAULT_VALUES, "hub", "--set", settings)
    annotations = find(docs, "Service", "proxy-public")["metadata"]["annotations"]
    assert annotations == {
        "loadbalancer.openstack.org/default-tls-container-ref": "https://kv/v1/containers/c1",
        # An HTTP-aware listener; with the container ref, TERMINATED_HTTPS.
        "loadbalancer.openstack.org/x-forwarded-for": "true",
    }

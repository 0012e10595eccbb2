"""Services as kube-proxy makes them, written as one nftables table per sandbox (pure part).

From Services and EndpointSlices (API JSON, camelCase) this module computes: the nft ruleset
(ClusterIP → a random ready endpoint by DNAT, for pods entering from the bridge and for the
host's own traffic; NodePort and LoadBalancer ports on the sandbox's loopback address; hairpin
masquerade; reject when a Service has no ready endpoint), the Docker-links environment a kubelet
gives containers, and the addresses cluster DNS answers with. svcproxy.py applies it live.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

HAIRPIN_MARK = 0x4000  # the bit kube-proxy uses: masquerade a pod reaching itself through its Service
CLUSTER_DOMAIN = "cluster.local"


@dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int
    hostname: str | None = None


@dataclass
class Port:
    name: str
    protocol: str  # TCP, UDP (SCTP is not modelled)
    port: int
    node_port: int | None
    endpoints: list[Endpoint] = field(default_factory=list)


@dataclass
class Service:
    namespace: str
    name: str
    type: str
    cluster_ip: str | None  # None for headless and ExternalName
    ports: list[Port]
    load_balancer: bool = False
    # Every ready endpoint, whatever its ports: what DNS answers for a headless Service.
    endpoints: list[Endpoint] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Host:
    """What the rules need to know about this sandbox's host side."""

    table: str  # e.g. csb_services_csb
    bridge: str
    loopback: str  # where NodePort/LoadBalancer ports are reachable from the host
    # An endpoint the host serves only on loopback (the API server binds 127.0.0.1): (ip, port) → ip.
    local_endpoints: dict = field(default_factory=dict)
    free_ports: frozenset = frozenset()  # LoadBalancer ports found free on `loopback`


def _ready(endpoint: dict) -> bool:
    conditions = endpoint.get("conditions") or {}
    return conditions.get("ready") is not False  # unset means ready, as the API says


def build(service: dict, slices: list[dict]) -> Service:
    """Join a Service with its EndpointSlices: each service port gets its ready endpoints, matched
    by port name as kube-proxy does (the slice carries the resolved target port)."""
    meta, spec = service["metadata"], service.get("spec") or {}
    cluster_ip = spec.get("clusterIP")
    if not cluster_ip or cluster_ip == "None":
        cluster_ip = None
    ports = []
    for entry in spec.get("ports") or []:
        name, protocol = entry.get("name") or "", entry.get("protocol") or "TCP"
        endpoints: list[Endpoint] = []
        for piece in slices:
            if piece.get("addressType", "IPv4") != "IPv4":
                continue
            target = next(
                (
                    p.get("port")
                    for p in piece.get("ports") or []
                    if (p.get("name") or "") == name and (p.get("protocol") or "TCP") == protocol
                ),
                None,
            )
            if target is None:
                continue
            for endpoint in piece.get("endpoints") or []:
                if _ready(endpoint) and endpoint.get("addresses"):
                    found = Endpoint(endpoint["addresses"][0], int(target), endpoint.get("hostname"))
                    if found not in endpoints:
                        endpoints.append(found)
        endpoints.sort(key=lambda e: (ipaddress.ip_address(e.ip), e.port))
        ports.append(Port(name, protocol, int(entry["port"]), entry.get("nodePort"), endpoints))
    everyone: dict[str, Endpoint] = {}
    for piece in slices:
        if piece.get("addressType", "IPv4") == "IPv4":
            for endpoint in piece.get("endpoints") or []:
                if _ready(endpoint) and endpoint.get("addresses"):
                    address = endpoint["addresses"][0]
                    everyone.setdefault(address, Endpoint(address, 0, endpoint.get("hostname")))
    kind = spec.get("type") or "ClusterIP"
    return Service(
        meta["namespace"],
        meta["name"],
        kind,
        cluster_ip,
        ports,
        load_balancer=kind == "LoadBalancer",
        endpoints=sorted(everyone.values(), key=lambda e: ipaddress.ip_address(e.ip)),
    )


def _proto(port: Port) -> str | None:
    return {"TCP": "tcp", "UDP": "udp"}.get(port.protocol)


def render(services: list[Service], host: Host) -> str:
    """The complete nft script: replaces the table atomically (`nft -f`)."""
    chains: list[str] = []
    dispatch: list[str] = []  # ClusterIP matches, for pods and the host
    loopback: list[str] = []  # NodePort/LoadBalancer on the loopback address, host only
    rejects: list[str] = []
    claimed: set[tuple[str, int]] = set()  # loopback ports: node ports are unique, Service ports not
    for service in sorted(services, key=lambda s: s.key):
        for port in service.ports:
            proto = _proto(port)
            if proto is None:
                continue
            label = f"{service.key}:{port.name or port.port}/{proto}"
            chain = f"svc{len(chains)}"
            targets = [(host.local_endpoints.get((e.ip, e.port), e.ip), e) for e in port.endpoints]
            if targets:
                chains.append(_service_chain(chain, proto, targets, label))
            matches = []
            if service.cluster_ip:
                matches.append((dispatch, f"ip daddr {service.cluster_ip} {proto} dport {port.port}"))
            if port.node_port and service.type in ("NodePort", "LoadBalancer"):
                matches.append((loopback, f"ip daddr {host.loopback} {proto} dport {port.node_port}"))
            if (
                service.load_balancer
                and port.port in host.free_ports
                and (proto, port.port) not in claimed
                and port.port != port.node_port
            ):
                claimed.add((proto, port.port))  # the first LoadBalancer by namespace/name keeps it
                matches.append((loopback, f"ip daddr {host.loopback} {proto} dport {port.port}"))
            for rules, match in matches:
                if targets:
                    rules.append(f'{match} jump {chain} comment "{label}"')
                else:
                    verdict = "reject with tcp reset" if proto == "tcp" else "reject"
                    rejects.append(f'{match} {verdict} comment "{label} has no ready endpoint"')
    body = [
        "  chain prerouting {",
        "    type nat hook prerouting priority dstnat; policy accept;",
        f'    iifname "{host.bridge}" jump services',
        "  }",
        "  chain output {",
        "    type nat hook output priority -100; policy accept;",
        "    jump services",
        f"    ip daddr {host.loopback} jump loopback",
        "  }",
        "  chain postrouting {",
        "    type nat hook postrouting priority srcnat; policy accept;",
        f"    meta mark & {HAIRPIN_MARK:#x} == {HAIRPIN_MARK:#x} masquerade",
        # The host reaching a pod from a loopback address: the pod must answer the bridge's address.
        f'    oifname "{host.bridge}" ip saddr 127.0.0.0/8 masquerade',
        "  }",
        "  chain filter-output {",
        "    type filter hook output priority filter; policy accept;",
        "    jump rejects",
        "  }",
        "  chain filter-forward {",
        "    type filter hook forward priority filter; policy accept;",
        "    jump rejects",
        "  }",
        "  chain services {",
        *(f"    {rule}" for rule in dispatch),
        "  }",
        "  chain loopback {",
        *(f"    {rule}" for rule in loopback),
        "  }",
        "  chain rejects {",
        *(f"    {rule}" for rule in rejects),
        "  }",
        *chains,
    ]
    return "\n".join(
        [
            f"table ip {host.table} {{}}",
            f"delete table ip {host.table}",
            f"table ip {host.table} {{",
            *body,
            "}",
            "",
        ]
    )


def _service_chain(chain: str, proto: str, targets: list[tuple[str, Endpoint]], label: str) -> str:
    lines = [f"  chain {chain} {{"]
    for _, endpoint in targets:
        lines.append(f"    ip saddr {endpoint.ip} meta mark set meta mark | {HAIRPIN_MARK:#x}")
    if len(targets) == 1:
        address, endpoint = targets[0]
        lines.append(f'    meta l4proto {proto} dnat to {address}:{endpoint.port} comment "{label}"')
    else:
        picks = ", ".join(f"{i} : {a} . {e.port}" for i, (a, e) in enumerate(targets))
        lines.append(
            f"    meta l4proto {proto} dnat ip addr . port to numgen random mod {len(targets)} "
            f'map {{ {picks} }} comment "{label}"'
        )
    lines.append("  }")
    return "\n".join(lines)


def _env_name(name: str) -> str:
    return re.sub(r"[^A-Z0-9_]", "_", name.upper().replace("-", "_"))


def links_env(services: list[Service]) -> dict[str, str]:
    """Docker-links variables for Services with a ClusterIP, as the kubelet writes them."""
    env: dict[str, str] = {}
    for service in services:
        if not service.cluster_ip or not service.ports:
            continue
        prefix, ip = _env_name(service.name), service.cluster_ip
        first = service.ports[0]
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(first.port)
        for port in service.ports:
            if port.name:
                env[f"{prefix}_SERVICE_PORT_{_env_name(port.name)}"] = str(port.port)
        env[f"{prefix}_PORT"] = f"{first.protocol.lower()}://{ip}:{first.port}"
        for port in service.ports:
            proto = port.protocol.lower()
            base = f"{prefix}_PORT_{port.port}_{port.protocol.upper()}"
            env[base] = f"{proto}://{ip}:{port.port}"
            env[f"{base}_PROTO"] = proto
            env[f"{base}_PORT"] = str(port.port)
            env[f"{base}_ADDR"] = ip
    return env


def pod_env(services: list[Service], namespace: str, service_links: bool) -> dict[str, str]:
    """The kubelet's service variables: the API server's always, the namespace's own when
    enableServiceLinks is not false (its default)."""
    chosen = [s for s in services if s.namespace == namespace] if service_links else []
    master = [s for s in services if s.key == "default/kubernetes"]
    env = links_env(chosen)
    env.update(links_env(master))
    return env

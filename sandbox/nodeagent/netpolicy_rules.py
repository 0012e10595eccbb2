"""NetworkPolicies, pods and namespaces → one nftables table: the pure part of the sandbox's enforcement.

Inputs are API objects as JSON dicts (camelCase, as kubectl or `ApiClient.sanitize_for_serialization`
give them). Semantics follow https://kubernetes.io/docs/concepts/services-networking/network-policies/:
a pod is isolated for ingress (egress) once a policy selecting it lists that type; the rules of all
policies selecting it add up; a connection needs the source's egress and the destination's ingress
to allow it; replies of allowed connections pass (conntrack). See docs/sandbox.md for what the
sandbox's host counts as.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

MAX_COMMENT = 120  # nft keeps at most 127 bytes of a comment
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    ip: str
    labels: dict = field(hash=False)
    ports: dict = field(hash=False)  # (port name, protocol) -> container port, for named ports

    @property
    def key(self) -> str:
        return self.ip.replace(".", "_")


@dataclass(frozen=True)
class StandIn:
    """A cluster component the sandbox serves from the host, for policies to name as if it were its
    pods: the DNS server stands for kube-system's k8s-app=kube-dns pods. Its Service sends clients
    to the host's `ip` at other ports: `ports` maps (protocol, the pod's port) to the host's."""

    namespace: str
    labels: dict = field(hash=False)
    ip: str
    ports: dict = field(hash=False)


def table_name(prefix: str) -> str:
    """The sandbox's own table: another sandbox's (another prefix) is never touched."""
    return f"csb_policy_{prefix}"


def running_pods(pods: list[dict]) -> list[Pod]:
    """The pods that own their IP now: not host-network ones (no policy applies to them), not
    finished ones (their address may already belong to a new pod)."""
    found: dict[str, tuple[str, Pod]] = {}
    for pod in pods:
        spec, status, meta = pod.get("spec") or {}, pod.get("status") or {}, pod.get("metadata") or {}
        ip = status.get("podIP")
        if not ip or spec.get("hostNetwork") or status.get("phase") in ("Succeeded", "Failed"):
            continue
        if ipaddress.ip_address(ip).version != 4:
            continue
        ports = {}
        for container in spec.get("containers") or []:
            for port in container.get("ports") or []:
                if port.get("name"):
                    ports[(port["name"], port.get("protocol") or "TCP")] = int(port["containerPort"])
        # A lost node's pod object keeps its address until it goes: the newer pod holds it now.
        created = meta.get("creationTimestamp") or ""
        if ip not in found or found[ip][0] <= created:
            found[ip] = (
                created,
                Pod(meta["namespace"], meta["name"], ip, dict(meta.get("labels") or {}), ports),
            )
    return sorted((p for _, p in found.values()), key=lambda p: ipaddress.ip_address(p.ip))


def selects(selector: dict | None, labels: dict) -> bool:
    """A LabelSelector: matchLabels and matchExpressions all hold; an empty selector selects all."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def policy_types(spec: dict) -> set[str]:
    """As the API server defaults them: Ingress always, Egress when there are egress rules."""
    if spec.get("policyTypes"):
        return set(spec["policyTypes"])
    return {"Ingress"} | ({"Egress"} if spec.get("egress") else set())


@dataclass
class _Peers:
    """Who a rule's from/to names: everyone, or these pods and address blocks."""

    anyone: bool = False
    pods: list[Pod] = field(default_factory=list)
    stand_ins: list[StandIn] = field(default_factory=list)
    blocks: list[tuple[ipaddress.IPv4Network, list[ipaddress.IPv4Network]]] = field(default_factory=list)

    def holds(self, pod: Pod) -> bool:
        address = ipaddress.ip_address(pod.ip)
        return (
            self.anyone
            or pod in self.pods
            or any(address in net and not any(address in e for e in excepts) for net, excepts in self.blocks)
        )


def _peers(
    entries: list[dict] | None, namespace: str, pods: list[Pod], ns_labels: dict, stand_ins=()
) -> _Peers:
    if not entries:  # missing or empty: every source (destination)
        return _Peers(anyone=True, stand_ins=list(stand_ins))
    peers = _Peers()
    for entry in entries:
        block = entry.get("ipBlock")
        if block:
            cidr = ipaddress.ip_network(block["cidr"], strict=False)
            if cidr.version != 4:
                continue  # pods have IPv4 addresses only
            excepts = [ipaddress.ip_network(e, strict=False) for e in block.get("except") or []]
            excepts = list(ipaddress.collapse_addresses(e for e in excepts if e.version == 4))
            peers.blocks.append((cidr, excepts))
            continue
        pod_selector, ns_selector = entry.get("podSelector"), entry.get("namespaceSelector")
        for pod in pods:
            if ns_selector is None:
                in_scope = pod.namespace == namespace  # a podSelector alone: the policy's namespace
            else:
                labels = ns_labels.get(pod.namespace, {"kubernetes.io/metadata.name": pod.namespace})
                in_scope = selects(ns_selector, labels)
            if in_scope and selects(pod_selector, pod.labels) and pod not in peers.pods:
                peers.pods.append(pod)
        for stand_in in stand_ins:
            if ns_selector is None:
                in_scope = stand_in.namespace == namespace
            else:
                labels = ns_labels.get(
                    stand_in.namespace, {"kubernetes.io/metadata.name": stand_in.namespace}
                )
                in_scope = selects(ns_selector, labels)
            if in_scope and selects(pod_selector, stand_in.labels) and stand_in not in peers.stand_ins:
                peers.stand_ins.append(stand_in)
    return peers


def _stand_in_lines(peers: _Peers, ports_entries: list[dict] | None) -> list[str]:
    """Egress to a stand-in: its host address at the host ports of the pod ports the rule allows."""
    lines = []
    for stand_in in peers.stand_ins:
        for (protocol, port), real in sorted(stand_in.ports.items()):
            allowed = not ports_entries or any(
                (entry.get("protocol") or "TCP") == protocol
                and (
                    entry.get("port") is None
                    or str(entry["port"]).isdigit()
                    and int(entry["port"]) <= port <= int(entry.get("endPort") or entry["port"])
                )
                for entry in ports_entries
            )
            if allowed and protocol in PROTOCOLS:
                proto = PROTOCOLS[protocol]
                lines.append(f"ip daddr {stand_in.ip} meta l4proto {proto} th dport {{ {real} }}")
    return lines


def _ports(entries: list[dict] | None, target: Pod | None) -> list[str] | None:
    """nft matches for a rule's ports at `target` (named ports resolve against it; a destination
    that is no pod has none). None: all ports and protocols; an empty list: nothing matches."""
    if not entries:
        return None
    by_protocol: dict[str, list[str]] = {}
    whole: set[str] = set()
    for entry in entries:
        protocol = entry.get("protocol") or "TCP"
        if protocol not in PROTOCOLS:
            continue
        port = entry.get("port")
        if port is None:
            whole.add(protocol)
            continue
        if isinstance(port, str) and not port.isdigit():
            if target is None or (port, protocol) not in target.ports:
                continue
            port = target.ports[(port, protocol)]
        span = f"{int(port)}-{int(entry['endPort'])}" if entry.get("endPort") else str(int(port))
        by_protocol.setdefault(protocol, []).append(span)
    matches = [f"meta l4proto {PROTOCOLS[p]}" for p in sorted(whole)]
    for protocol, spans in sorted(by_protocol.items()):
        if protocol not in whole:
            matches.append(
                f"meta l4proto {PROTOCOLS[protocol]} th dport {{ {', '.join(dict.fromkeys(spans))} }}"
            )
    return matches


def _named(entries: list[dict] | None) -> bool:
    return any(isinstance(e.get("port"), str) and not e["port"].isdigit() for e in entries or [])


def _address_matches(peers: _Peers, field_: str) -> list[str]:
    if peers.anyone:
        return [""]
    found = []
    if peers.pods:
        found.append(f"ip {field_} {{ {', '.join(p.ip for p in peers.pods)} }}")
    for cidr, excepts in peers.blocks:
        text = f"ip {field_} {cidr}"
        if excepts:
            text += f" ip {field_} != {{ {', '.join(str(e) for e in excepts)} }}"
        found.append(text)
    return found


def _host_behind_loopback(peers: _Peers, host: str | None) -> _Peers:
    """A pod reaches 127.0.0.1 only through a Service whose endpoint the host serves on loopback
    (the API server's, advertised at the host's address): egress ipBlocks judge it as that address."""
    if host is None or not peers.blocks:
        return peers
    blocks = []
    address = ipaddress.ip_address(host)
    for cidr, excepts in peers.blocks:
        if address in cidr and not any(address in e for e in excepts):
            blocks.append((LOOPBACK, []))
        if cidr.overlaps(LOOPBACK):
            excepts = list(ipaddress.collapse_addresses([*excepts, LOOPBACK]))
        blocks.append((cidr, excepts))
    return _Peers(peers.anyone, peers.pods, peers.stand_ins, blocks)


def _rule_lines(peers, ports_entries, field_, verdict, target, pods, comment) -> list[str]:
    lines = []

    def line(*parts: str) -> None:
        lines.append(" ".join(p for p in (*parts, verdict, f'comment "{comment}"') if p))

    if field_ == "saddr" or not _named(ports_entries):
        # Ingress: the ports are the selected pod's own. Egress without names: the same for all.
        ports = _ports(ports_entries, target)
        for address in _address_matches(peers, field_):
            for port in [""] if ports is None else ports:
                line(address, port)
        return lines
    # Egress through a named port: it means a port of each destination pod, resolved there.
    named = [e for e in ports_entries if _named([e])]
    numbered = [e for e in ports_entries if not _named([e])]
    if numbered:
        for address in _address_matches(peers, field_):
            for port in _ports(numbered, None):
                line(address, port)
    for pod in pods:
        if peers.holds(pod):
            for port in _ports(named, pod):
                line(f"ip daddr {pod.ip}", port)
    return lines


def compile_ruleset(
    table: str,
    policies: list[dict],
    pods: list[dict],
    namespaces: list[dict],
    node_mark: int,
    stand_ins: tuple[StandIn, ...] = (),
    host: str | None = None,
    bridge: str | None = None,
) -> str:
    """The whole table, ready for `nft -f` after a delete of the old one (one transaction).

    forward: pod↔pod (bridged, through br_netfilter) and pod↔elsewhere; input: a pod to the host;
    output: the host to a pod, where the node's own probes (socket mark node_mark) always pass.
    `host` is the host's address on the pod network. Pods have IPv4 addresses only; IPv6 from the
    `bridge` (their link-local addresses, to each other or to the host) is dropped, or it would go
    around every policy.
    """
    running = running_pods(pods)
    ns_labels = {
        n["metadata"]["name"]: dict(n["metadata"].get("labels") or {})
        for n in namespaces
        if n.get("metadata")
    }
    ingress: dict[Pod, list[str]] = {}
    egress: dict[Pod, list[str]] = {}
    selected_by: dict[tuple[str, Pod], list[str]] = {}  # who isolates the pod: the chain's comment
    ordered = sorted(policies, key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]))
    for policy in ordered:
        meta, spec = policy["metadata"], policy.get("spec") or {}
        namespace, comment = meta["namespace"], f"{meta['namespace']}/{meta['name']}"
        types = policy_types(spec)
        for pod in running:
            if pod.namespace != namespace or not selects(spec.get("podSelector"), pod.labels):
                continue
            for kind in types & {"Ingress", "Egress"}:
                selected_by.setdefault((kind.lower(), pod), []).append(comment)
            if "Ingress" in types:
                lines = ingress.setdefault(pod, [])
                for rule in spec.get("ingress") or []:
                    peers = _peers(rule.get("from"), namespace, running, ns_labels)
                    lines += _rule_lines(peers, rule.get("ports"), "saddr", "accept", pod, running, comment)
            if "Egress" in types:
                lines = egress.setdefault(pod, [])
                for rule in spec.get("egress") or []:
                    peers = _peers(rule.get("to"), namespace, running, ns_labels, stand_ins)
                    peers = _host_behind_loopback(peers, host)
                    lines += _rule_lines(peers, rule.get("ports"), "daddr", "return", None, running, comment)
                    lines += [
                        f'{m} return comment "{comment}"' for m in _stand_in_lines(peers, rule.get("ports"))
                    ]

    def dispatch(chains: dict[Pod, list[str]], field_: str, kind: str) -> list[str]:
        if not chains:
            return []
        targets = ", ".join(f"{pod.ip} : jump {kind}_{pod.key}" for pod in chains)
        return [f"ip {field_} vmap {{ {targets} }}"]

    established = "ct state established,related accept"
    out = [f"table inet {table} {{"]
    link_local = [f'meta nfproto ipv6 iifname "{bridge}" drop'] if bridge else []
    base = {
        "forward": [
            established,
            *link_local,
            *dispatch(egress, "saddr", "egress"),
            *dispatch(ingress, "daddr", "ingress"),
        ],
        "input": [established, *link_local, *dispatch(egress, "saddr", "egress")],
        "output": [established, f"meta mark {node_mark:#x} accept", *dispatch(ingress, "daddr", "ingress")],
    }
    for hook, lines in base.items():
        out.append(f"\tchain {hook} {{")
        out.append(f"\t\ttype filter hook {hook} priority filter; policy accept;")
        out += [f"\t\t{line}" for line in lines]
        out.append("\t}")
    for kind, chains, final in (("egress", egress, "drop"), ("ingress", ingress, "drop")):
        for pod, lines in chains.items():
            names = " ".join(selected_by[(kind, pod)])
            out.append(f"\tchain {kind}_{pod.key} {{")
            text = f"{pod.namespace}/{pod.name}: {names} "[:MAX_COMMENT]
            out.append(f'\t\tcomment "{text}"')
            out += [f"\t\t{line}" for line in lines]
            out.append(f"\t\t{final}")
            out.append("\t}")
    out.append("}")
    return "\n".join(out) + "\n"


def transaction(table: str, ruleset: str) -> str:
    """Replace the table atomically: nft applies one file as one transaction."""
    return f"table inet {table} {{}}\ndelete table inet {table}\n{ruleset}"

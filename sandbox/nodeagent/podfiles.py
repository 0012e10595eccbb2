"""The /etc/resolv.conf, /etc/hosts and /etc/hostname a kubelet writes for each pod (pure)."""

from __future__ import annotations

from .services import CLUSTER_DOMAIN

MAX_NAMESERVERS = 3
MAX_SEARCHES = 32


def parse_resolv_conf(text: str) -> tuple[list[str], list[str], list[str]]:
    nameservers, searches, options = [], [], []
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith(("#", ";")):
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            nameservers.append(fields[1])
        elif fields[0] in ("search", "domain"):
            searches = fields[1:]  # the last one wins, as in glibc
        elif fields[0] == "options":
            options.extend(fields[1:])
    return nameservers, searches, options


def _merge_options(options: list[str], extra: list[dict]) -> list[str]:
    merged: dict[str, str | None] = {}
    for option in options:
        name, _, value = option.partition(":")
        merged[name] = value or None
    for entry in extra:  # dnsConfig.options override by name
        merged[entry["name"]] = entry.get("value")
    return [name if value is None else f"{name}:{value}" for name, value in merged.items()]


def resolv_conf(pod_spec: dict, namespace: str, cluster_dns: str, host_text: str) -> str:
    """The pod's resolv.conf per dnsPolicy (ClusterFirst by default, Default = the host's, None =
    dnsConfig only) and dnsConfig. pod_spec is the API JSON (camelCase)."""
    policy = pod_spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "ClusterFirst" and pod_spec.get("hostNetwork"):
        policy = "Default"  # as the kubelet: a host-network pod keeps the host's resolver
    host_servers, host_searches, host_options = parse_resolv_conf(host_text)
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet"):
        servers = [cluster_dns]
        searches = [f"{namespace}.svc.{CLUSTER_DOMAIN}", f"svc.{CLUSTER_DOMAIN}", CLUSTER_DOMAIN]
        searches += host_searches
        options = ["ndots:5"]
    elif policy == "Default":
        servers, searches, options = host_servers, host_searches, host_options
    else:  # None
        servers, searches, options = [], [], []
    config = pod_spec.get("dnsConfig") or {}
    servers = servers + [s for s in config.get("nameservers") or [] if s not in servers]
    for search in config.get("searches") or []:
        if search not in searches:
            searches.append(search)
    options = _merge_options(options, config.get("options") or [])
    lines = [f"nameserver {s}" for s in servers[:MAX_NAMESERVERS]]
    if searches:
        lines.append("search " + " ".join(searches[:MAX_SEARCHES]))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def hostname(pod_spec: dict, pod_name: str) -> str:
    return (pod_spec.get("hostname") or pod_name)[:63]


def hosts(pod_spec: dict, pod_name: str, namespace: str, pod_ip: str) -> str:
    """The kubelet's managed hosts file: loopback entries, the pod's own names, hostAliases."""
    name = hostname(pod_spec, pod_name)
    subdomain = pod_spec.get("subdomain")
    own = f"{name}.{subdomain}.{namespace}.svc.{CLUSTER_DOMAIN}\t{name}" if subdomain else name
    lines = [
        "# Kubernetes-managed hosts file.",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "fe00::0\tip6-mcastprefix",
        "fe00::1\tip6-allnodes",
        "fe00::2\tip6-allrouters",
        f"{pod_ip}\t{own}",
    ]
    aliases = pod_spec.get("hostAliases") or []
    if aliases:
        lines += ["", "# Entries added by HostAliases."]
        lines += ["\t".join([a["ip"], *(a.get("hostnames") or [])]) for a in aliases]
    return "\n".join(lines) + "\n"

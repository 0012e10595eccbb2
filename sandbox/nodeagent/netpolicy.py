"""Enforce NetworkPolicies on the sandbox's pod network, as a CNI's policy agent does.

Three watches (NetworkPolicies, Pods, Namespaces) keep a copy of what the rules depend on; after any
change the whole nftables table is compiled again (netpolicy_rules) and, when it differs, replaced
in one `nft -f` transaction, so a packet never meets a half-written table. Needs root.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import subprocess
import threading
import time
from pathlib import Path

from kubernetes import client, watch

from .netpolicy_rules import StandIn, compile_ruleset, table_name, transaction

log = logging.getLogger("sandbox.netpolicy")

# The kubelet's probes come from the node, whose traffic to its pods policies never block; in the
# sandbox the host is also "outside the cluster" (tests, the hub run there), so probes are told apart
# by this socket mark.
NODE_MARK = 0x0B75  # clear of the bits kube-proxy (and services.py) use: 0x4000, 0x8000
SETTLE_SECONDS = 0.05  # a burst of events (a Deployment's pods, a helm install) becomes one rewrite


class PolicyError(Exception):
    pass


def nft(script: str) -> None:
    result = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True)
    if result.returncode != 0:
        raise PolicyError(f"nft -f: {result.stderr.strip()}")


def remove_table(prefix: str) -> None:
    """Drop the sandbox's policy table, if any (agent shutdown, `sandbox down`)."""
    table = table_name(prefix)
    subprocess.run(["nft", "delete", "table", "inet", table], capture_output=True, text=True)


def node_connection(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection from the node (a probe): marked so that no policy drops it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, NODE_MARK)
        except PermissionError:
            pass  # not root: no pod network nor policies either
        sock.settimeout(timeout)
        sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


class _NodeHTTPConnection(http.client.HTTPConnection):
    def connect(self) -> None:
        self.sock = node_connection(self.host, self.port, self.timeout)


def http_probe(host: str, port: int, path: str, timeout: float) -> bool:
    """kubelet's httpGet probe: a status from 200 to 399 passes (redirects are not followed)."""
    connection = _NodeHTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path)
        status = connection.getresponse().status
    except http.client.HTTPException:
        return False
    finally:
        connection.close()
    return 200 <= status < 400


def stand_ins(state: Path, gateway: str) -> tuple[StandIn, ...]:
    """The cluster DNS the node agent serves on the host, as the kube-dns pods policies name
    (kube-system, k8s-app=kube-dns, port 53); none when this sandbox has no DNS settings."""
    try:
        port = json.loads((state / "sandbox.json").read_text())["services"]["dns_port"]
    except (OSError, ValueError, KeyError, TypeError):
        return ()
    ports = {("UDP", 53): int(port), ("TCP", 53): int(port)}
    return (StandIn("kube-system", {"k8s-app": "kube-dns"}, gateway, ports),)


class PolicyEnforcer:
    def __init__(self, api: client.ApiClient, state: Path, network, stopping: threading.Event):
        self.api = api
        self.prefix = network.prefix
        self.table = table_name(self.prefix)
        self.stand_ins = stand_ins(state, network.gateway)
        self.host = network.gateway
        self.bridge = network.bridge
        self.stopping = stopping
        self.lock = threading.Lock()
        self.changed = threading.Event()
        core, networking = client.CoreV1Api(api), client.NetworkingV1Api(api)
        self.sources = {
            "policies": networking.list_network_policy_for_all_namespaces,
            "pods": core.list_pod_for_all_namespaces,
            "namespaces": core.list_namespace,
        }
        self.objects: dict[str, dict[str, dict]] = {kind: {} for kind in self.sources}
        self.synced: set[str] = set()
        self.applied: str | None = None

    def start(self) -> None:
        for kind in self.sources:
            threading.Thread(target=self._mirror, args=(kind,), name=f"netpol-{kind}", daemon=True).start()
        threading.Thread(target=self._keep, name="netpol-apply", daemon=True).start()

    def _mirror(self, kind: str) -> None:
        lister, version = self.sources[kind], None
        while not self.stopping.is_set():
            try:
                if version is None:
                    listing = lister()
                    items = {o.metadata.uid: self.api.sanitize_for_serialization(o) for o in listing.items}
                    with self.lock:
                        self.objects[kind] = items
                        self.synced.add(kind)
                    self.changed.set()
                    version = listing.metadata.resource_version
                for event in watch.Watch().stream(lister, resource_version=version, timeout_seconds=60):
                    item = event["object"]
                    version = item.metadata.resource_version
                    with self.lock:
                        if event["type"] == "DELETED":
                            self.objects[kind].pop(item.metadata.uid, None)
                        else:
                            self.objects[kind][item.metadata.uid] = self.api.sanitize_for_serialization(item)
                    self.changed.set()
                    if self.stopping.is_set():
                        return
            except client.ApiException as e:
                if e.status == 410:  # our resourceVersion expired: list again
                    version = None
                else:
                    log.warning("%s watch failed: %s %s", kind, e.status, e.reason)
                    self.stopping.wait(1)
            except Exception:
                log.exception("%s watch failed", kind)
                self.stopping.wait(1)

    def _keep(self) -> None:
        while not self.stopping.is_set():
            if not self.changed.wait(1):
                continue
            time.sleep(SETTLE_SECONDS)
            self.changed.clear()
            with self.lock:
                if len(self.synced) < len(self.sources):
                    continue  # half the picture would open (or close) what it should not
                snapshot = {kind: list(items.values()) for kind, items in self.objects.items()}
            try:
                self.apply(snapshot)
            except Exception:
                log.exception("network policies not applied; the previous rules stay")

    def apply(self, snapshot: dict[str, list[dict]]) -> None:
        ruleset = compile_ruleset(
            self.table,
            snapshot["policies"],
            snapshot["pods"],
            snapshot["namespaces"],
            NODE_MARK,
            self.stand_ins,
            self.host,
            self.bridge,
        )
        if ruleset == self.applied:
            return
        nft(transaction(self.table, ruleset))
        self.applied = ruleset
        log.info(
            "network policies applied: %d lines for %d policies",
            ruleset.count("\n"),
            len(snapshot["policies"]),
        )

    def remove(self) -> None:
        remove_table(self.prefix)

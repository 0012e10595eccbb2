"""The node agent's kube-proxy: follow Services and EndpointSlices, keep the nft table in step.

One table per sandbox (`ip csb_services_<prefix>`), replaced atomically at every change; the
host's sysctls it needs are per bridge (forwarding, route_localnet) so other interfaces keep
theirs. LoadBalancer Services get `status.loadBalancer.ingress[0].ip` = the sandbox's loopback
address, where their ports answer (k3s's service load balancer does the same with a node IP).
"""

from __future__ import annotations

import logging
import socket
import subprocess
import threading
import time
from pathlib import Path

from kubernetes import client, watch

from . import podfiles
from . import services as rules
from .dns import DnsServer

log = logging.getLogger("sandbox.services")
DEBOUNCE_SECONDS = 0.05  # a rollout changes several slices at once: one rewrite for them


class ServiceError(Exception):
    pass


def table_name(prefix: str) -> str:
    return f"csb_services_{prefix}"


def delete_table(prefix: str) -> None:
    try:
        subprocess.run(["nft", "delete", "table", "ip", table_name(prefix)], capture_output=True)
    except OSError:
        pass  # no nft, so no table


def _sysctl(path: str, value: str) -> None:
    target = Path("/proc/sys") / path
    try:
        if target.exists() and target.read_text().strip() != value:
            target.write_text(value)
    except OSError as e:
        log.warning("sysctl %s=%s not set: %s", path, value, e)


def port_free(address: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError:
            return False
    return True


class ServiceProxy:
    def __init__(self, api: client.ApiClient, network, settings: dict, apiserver_port: int):
        self.core = client.CoreV1Api(api)
        self.discovery = client.DiscoveryV1Api(api)
        self.serialize = api.sanitize_for_serialization
        self.network = network
        self.cidr = settings["cidr"]
        self.host = rules.Host(
            table=table_name(network.prefix),
            bridge=network.bridge,
            loopback=settings["loopback"],
            # The API server advertises the gateway but listens on loopback only.
            local_endpoints={(network.gateway, apiserver_port): "127.0.0.1"},
        )
        self.raw_services: dict[str, dict] = {}
        self.raw_slices: dict[str, dict] = {}  # by namespace/slice name
        self.built: dict[str, rules.Service] = {}
        self.lock = threading.Lock()
        self.changed = threading.Event()
        self.synced = {"services": threading.Event(), "slices": threading.Event()}
        self.stopping = threading.Event()
        self._applied: str | None = None
        self._lb_written: dict[str, str] = {}

    # -- host setup ------------------------------------------------------------------
    def setup(self) -> None:
        bridge = self.network.bridge
        # Pod → ClusterIP → another pod is routed back out of the bridge; a loopback source
        # (NodePort on 127.x) may leave through it only with route_localnet.
        _sysctl(f"net/ipv4/conf/{bridge}/forwarding", "1")
        _sysctl(f"net/ipv4/conf/{bridge}/route_localnet", "1")
        # Replies between two pods of one bridge are bridged, not routed: conntrack must see them
        # to undo the DNAT (kube-proxy requires the same).
        _sysctl("net/bridge/bridge-nf-call-iptables", "1")
        # The host reaches ClusterIPs through the bridge, from the gateway address.
        result = subprocess.run(
            ["ip", "route", "replace", self.cidr, "dev", bridge, "src", self.network.gateway],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise ServiceError(f"route to the service range {self.cidr}: {result.stderr.strip()}")
        self.apply()

    def teardown(self) -> None:
        delete_table(self.network.prefix)

    # -- following the API -----------------------------------------------------------
    def start(self) -> None:
        threading.Thread(target=self._follow, args=("services",), name="svc-watch", daemon=True).start()
        threading.Thread(target=self._follow, args=("slices",), name="slice-watch", daemon=True).start()
        threading.Thread(target=self._sync_loop, name="svc-sync", daemon=True).start()

    def wait_synced(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return all(e.wait(max(0.0, deadline - time.monotonic())) for e in self.synced.values())

    def _follow(self, kind: str) -> None:
        lister = (
            self.core.list_service_for_all_namespaces
            if kind == "services"
            else self.discovery.list_endpoint_slice_for_all_namespaces
        )
        store = self.raw_services if kind == "services" else self.raw_slices
        version = None
        while not self.stopping.is_set():
            try:
                if version is None:
                    listing = lister(_request_timeout=30)
                    with self.lock:
                        store.clear()
                        for item in listing.items:
                            store[self._key(item)] = self.serialize(item)
                    version = listing.metadata.resource_version
                    self.synced[kind].set()
                    self.changed.set()
                for event in watch.Watch().stream(lister, resource_version=version, timeout_seconds=60):
                    item = event["object"]
                    version = item.metadata.resource_version
                    with self.lock:
                        if event["type"] == "DELETED":
                            store.pop(self._key(item), None)
                        else:
                            store[self._key(item)] = self.serialize(item)
                    self.changed.set()
            except client.ApiException as e:
                if e.status == 410:
                    version = None
                else:
                    log.warning("%s watch failed: %s %s", kind, e.status, e.reason)
                    self.stopping.wait(1)
            except Exception:
                log.exception("%s watch failed", kind)
                version = None
                self.stopping.wait(1)

    @staticmethod
    def _key(item) -> str:
        return f"{item.metadata.namespace}/{item.metadata.name}"

    def _sync_loop(self) -> None:
        while not self.stopping.is_set():
            if not self.changed.wait(5.0):
                continue
            self.stopping.wait(DEBOUNCE_SECONDS)
            self.changed.clear()
            try:
                self.apply()
                self.write_load_balancer_status()
            except Exception:
                log.exception("service rules not updated")
                self.changed.set()
                self.stopping.wait(1)

    # -- the model ---------------------------------------------------------------------
    def rebuild(self) -> list[rules.Service]:
        with self.lock:
            by_service: dict[str, list[dict]] = {}
            for piece in self.raw_slices.values():
                labels = piece["metadata"].get("labels") or {}
                owner = labels.get("kubernetes.io/service-name")
                if owner:
                    by_service.setdefault(f"{piece['metadata']['namespace']}/{owner}", []).append(piece)
            built = {
                key: rules.build(service, by_service.get(key, []))
                for key, service in self.raw_services.items()
            }
            self.built = built
        return list(built.values())

    def snapshot(self) -> list[rules.Service]:
        with self.lock:
            return list(self.built.values())

    def apply(self) -> None:
        built = self.rebuild()
        free = {
            port.port
            for service in built
            if service.load_balancer
            for port in service.ports
            if port.protocol == "TCP" and port_free(self.host.loopback, port.port)
        }
        host = rules.Host(
            self.host.table, self.host.bridge, self.host.loopback, self.host.local_endpoints, frozenset(free)
        )
        script = rules.render(built, host)
        if script == self._applied:
            return
        result = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True)
        if result.returncode != 0:
            raise ServiceError(f"nft refused the service rules: {result.stderr.strip()}")
        self._applied = script
        log.info("service rules written: %d services", len(built))

    def write_load_balancer_status(self) -> None:
        with self.lock:
            balancers = [
                (key, s)
                for key, s in self.raw_services.items()
                if (s.get("spec") or {}).get("type") == "LoadBalancer"
            ]
        for key, service in balancers:
            ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            if [i.get("ip") for i in ingress] == [self.host.loopback]:
                continue
            if self._lb_written.get(key) == service["metadata"].get("resourceVersion"):
                continue  # written; the watch will bring the new version
            namespace, name = key.split("/", 1)
            body = {"status": {"loadBalancer": {"ingress": [{"ip": self.host.loopback, "ipMode": "VIP"}]}}}
            try:
                self.core.patch_namespaced_service_status(name, namespace, body, _request_timeout=10)
                self._lb_written[key] = service["metadata"].get("resourceVersion")
            except client.ApiException as e:
                if e.status != 404:
                    log.warning("load balancer status of %s not written: %s", key, e.reason)


class NodeServices:
    """What the node gives its pods besides processes: Service rules, cluster DNS, and the
    environment, resolv.conf and hosts file that point at them."""

    def __init__(self, api: client.ApiClient, network, settings: dict):
        self.settings = settings["services"]
        self.network = network
        self.proxy = ServiceProxy(api, network, self.settings, settings["ports"]["apiserver"])
        self.dns: DnsServer | None = None

    @classmethod
    def start_for(cls, api: client.ApiClient, network, settings: dict) -> NodeServices | None:
        if "services" not in settings:  # a sandbox.json of an older `up`
            return None
        node = cls(api, network, settings)
        try:
            node.proxy.setup()
        except (ServiceError, OSError) as e:
            # Pods still run, as on a node whose kube-proxy is down; say what to fix.
            log.error("Services and cluster DNS are off (is `nft` installed? `make deps`): %s", e)
            node.proxy.teardown()
            return None
        node.proxy.start()
        try:
            node.dns = DnsServer(network.gateway, node.settings["dns_port"], node.proxy.snapshot)
            node.dns.start()
        except OSError:
            log.exception("cluster DNS not started: pods resolve no Service names")
        return node

    def stop(self) -> None:
        self.proxy.stopping.set()
        if self.dns is not None:
            self.dns.stop()
        self.proxy.teardown()

    def env(self, pod: client.V1Pod) -> dict[str, str]:
        self.proxy.wait_synced(10)
        links = pod.spec.enable_service_links is not False
        return rules.pod_env(self.proxy.snapshot(), pod.metadata.namespace, links)

    def pod_files(self, pod: client.V1Pod, pod_ip: str, directory: Path) -> list[dict]:
        """Write the pod's resolv.conf, hosts and hostname; returns the container mounts."""
        spec = self.proxy.serialize(pod.spec)
        namespace, name = pod.metadata.namespace, pod.metadata.name
        try:
            host_resolv = Path("/etc/resolv.conf").read_text()
        except OSError:
            host_resolv = ""
        files = {
            "resolv.conf": podfiles.resolv_conf(spec, namespace, self.settings["dns_ip"], host_resolv),
            "hosts": podfiles.hosts(spec, name, namespace, pod_ip),
            "hostname": podfiles.hostname(spec, name) + "\n",
        }
        directory.mkdir(parents=True, exist_ok=True)
        mounts = []
        for file_name, content in files.items():
            path = directory / file_name
            path.write_text(content)
            path.chmod(0o644)
            mounts.append({"source": str(path), "target": f"/etc/{file_name}", "read_only": True})
        return mounts

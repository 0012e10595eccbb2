"""Wire the node keeper and the pod workers to the API server."""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path

from kubernetes import client, config, watch

from . import kubelet, storage, volumes
from .netpolicy import PolicyEnforcer, remove_table
from .network import PodNetwork
from .nodes import NodeKeeper, load_specs
from .pods import PodWorker
from .svcproxy import NodeServices

log = logging.getLogger("sandbox.agent")
HEARTBEAT_SECONDS = 10.0
NODES_POLL_SECONDS = 1.0  # how soon a node added to nodes.json registers
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Agent:
    def __init__(self, state: Path):
        self.state = state
        settings = json.loads((state / "sandbox.json").read_text())
        self.fake = bool(settings["fake"])
        self.volume_sync_seconds = float(settings.get("volume_sync_seconds", 5))
        net = settings["network"]
        self.network = PodNetwork(net["bridge"], net["cidr"], net["prefix"])
        api = config.new_client_from_config(str(state / "kubeconfig"))
        self.settings = settings
        self.services: NodeServices | None = None  # Services, DNS: process mode only
        self.core = client.CoreV1Api(api)
        # Without processes there is no bridge: the kubelet API listens on loopback, and nodes say so.
        self.host_ip = "127.0.0.1" if self.fake else self.network.gateway
        self.keeper = NodeKeeper(self.core, client.CoordinationV1Api(api), self.host_ip)
        self.kubelet: kubelet.KubeletServer | None = None
        self.workers: dict[str, PodWorker] = {}
        self.free_ips: dict[str, list[str]] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        # The pod's command runs from this environment (the sandbox has no images), so its
        # interpreter and packages must be reachable for the container's unprivileged user.
        self.source_root = str(Path(__file__).resolve().parents[2])
        # The checkout too: the project is installed in editable mode, so its packages load from here.
        self.runtime_paths = sorted(
            {
                sys.prefix,
                sys.base_prefix,
                os.path.dirname(os.path.realpath(sys.executable)),
                self.source_root,
            }
        )
        # The project's configurable-http-proxy (package.json) stands for the proxy image's.
        node_bin = os.path.join(self.source_root, "node_modules", ".bin")
        self.bin_path = os.path.join(sys.prefix, "bin") + ":" + node_bin + ":" + DEFAULT_PATH

    # -- nodes -----------------------------------------------------------------------
    def keep_nodes(self) -> None:
        while not self.stopping.is_set():
            specs = load_specs(self.state)
            if specs is None:
                log.warning("nodes.json unreadable; keeping the current nodes")
                self.stopping.wait(NODES_POLL_SECONDS)
                continue
            try:
                # A node's pod IPs before its Node object: the scheduler binds pods to it at once.
                with self.lock:
                    for spec in specs:
                        self.free_ips.setdefault(spec["name"], self.network.node_pool(spec["index"]))
                self.keeper.reconcile(specs, time.time(), HEARTBEAT_SECONDS)
                self.stop_lost_pods()
            except client.ApiException as e:
                log.warning("node heartbeat failed: %s %s", e.status, e.reason)
            except Exception:
                log.exception("node heartbeat failed")
            self.stopping.wait(NODES_POLL_SECONDS)

    def stop_lost_pods(self) -> None:
        """A deleted VM takes its processes with it; the pod objects stay until the Node goes."""
        with self.lock:
            lost = [w for w in self.workers.values() if w.pod.spec.node_name in self.keeper.gone]
        for worker in lost:
            worker.gone.set()

    # -- pods ------------------------------------------------------------------------
    def allocate(self, node: str) -> str:
        with self.lock:
            pool = self.free_ips[node]
            if not pool:
                raise RuntimeError(f"node {node} has no free pod IP")
            return pool.pop(0)

    def release(self, worker: PodWorker) -> None:
        with self.lock:
            if self.workers.get(worker.uid) is worker:
                del self.workers[worker.uid]
                self.free_ips.setdefault(worker.pod.spec.node_name, []).append(worker.ip)

    def grace_period(self, uid: str, pod: client.V1Pod) -> float:
        seconds = pod.metadata.deletion_grace_period_seconds
        if seconds is None:
            seconds = pod.spec.termination_grace_period_seconds
        return float(30 if seconds is None else seconds)

    def handle(self, kind: str, pod: client.V1Pod) -> None:
        node = pod.spec.node_name
        if node not in self.keeper.registered or node in self.keeper.gone:
            return
        uid = pod.metadata.uid
        with self.lock:
            worker = self.workers.get(uid)
        if kind == "DELETED":
            if worker:
                worker.gone.set()
                worker.deleting.set()
            return
        if worker:
            worker.pod = pod
            if pod.metadata.deletion_timestamp:
                worker.deleting.set()
            return
        phase = pod.status.phase if pod.status else None
        if pod.metadata.deletion_timestamp and phase != "Running":
            self._remove(pod)  # nothing of it runs here
            return
        if phase in ("Succeeded", "Failed"):
            return
        worker = PodWorker(self, pod, self.allocate(node))
        with self.lock:
            self.workers[uid] = worker
        worker.start()

    def _remove(self, pod: client.V1Pod) -> None:
        try:
            self.core.delete_namespaced_pod(
                pod.metadata.name,
                pod.metadata.namespace,
                body=client.V1DeleteOptions(
                    grace_period_seconds=0, preconditions=client.V1Preconditions(uid=pod.metadata.uid)
                ),
            )
        except client.ApiException as e:
            if e.status not in (404, 409):
                log.warning("pod %s not removed: %s", pod.metadata.name, e.reason)

    def watch_pods(self) -> None:
        version = None
        while not self.stopping.is_set():
            try:
                if version is None:
                    listing = self.core.list_pod_for_all_namespaces()
                    for pod in listing.items:
                        self.handle("ADDED", pod)
                    version = listing.metadata.resource_version
                stream = watch.Watch().stream(
                    self.core.list_pod_for_all_namespaces, resource_version=version, timeout_seconds=60
                )
                for event in stream:
                    pod = event["object"]
                    version = pod.metadata.resource_version
                    self.handle(event["type"], pod)
            except client.ApiException as e:
                if e.status == 410:  # our resourceVersion expired: list again
                    version = None
                else:
                    log.warning("pod watch failed: %s %s", e.status, e.reason)
                    time.sleep(1)
            except Exception:
                log.exception("pod watch failed")
                time.sleep(1)

    # -- volumes -----------------------------------------------------------------------
    def sync_volumes(self) -> None:
        """The kubelet's periodic sync of secret, configMap, downwardAPI and projected volumes."""
        while not self.stopping.wait(self.volume_sync_seconds):
            with self.lock:
                workers = list(self.workers.values())
            reads = volumes.RoundReads(self.core)
            for worker in workers:
                paths = getattr(worker, "volume_paths", None)  # set once the pod's volumes exist
                if not paths or worker.deleting.is_set() or worker.gone.is_set():
                    continue
                try:
                    changed = volumes.refresh(reads, worker.pod, paths)
                except Exception:
                    log.exception("pod %s: volume sync failed", worker.name)
                    continue
                if changed:
                    log.info("pod %s: volumes %s updated", worker.name, ", ".join(changed))

    # -- kubelet API ------------------------------------------------------------------
    def start_kubelet_api(self) -> None:
        # Several fake sandboxes share loopback: each takes a free port (the nodes advertise it).
        port = 0 if self.fake else kubelet.PORT
        try:
            self.kubelet = kubelet.serve(
                self.state / "pki", self.host_ip, self.container_log, self.stopping, port=port
            )
        except Exception:
            # Pods still run without it; only their logs are unreadable.
            log.exception("kubelet API not started: pod logs will not be served")
            return
        self.keeper.kubelet_port = self.kubelet.port

    def container_log(self, namespace: str, name: str, container: str) -> kubelet.LogSource:
        """The log of a container of a pod on our nodes, for the kubelet API."""
        try:
            pod = self.core.read_namespaced_pod(name, namespace, _request_timeout=10)
        except client.ApiException as e:
            if e.status == 404:
                raise kubelet.LogError(404, f'pod "{name}" does not exist') from None
            raise
        if container not in {c.name for c in pod.spec.containers}:
            raise kubelet.LogError(404, f'container "{container}" not found in pod "{name}"')
        if self.fake:
            return kubelet.LogSource(None, lambda: False)  # nothing runs, so nothing was printed
        uid = pod.metadata.uid
        with self.lock:
            worker = self.workers.get(uid)
        waiting = f'container "{container}" in pod "{name}" is waiting to start'
        if worker is None:
            # Finished before this agent started, or not picked up yet: only a file can answer.
            # The path is the one PodWorker writes (its `logs` directory).
            path = self.state / "logs" / "pods" / f"{namespace}_{name}_{uid}" / f"{container}.log"
            if path.exists():
                return kubelet.LogSource(path, lambda: False)
            raise kubelet.LogError(400, f"{waiting}: ContainerCreating")
        entry = next(c for c in worker.containers if c.name == container)
        if entry.log_file is None:
            raise kubelet.LogError(400, f"{waiting}: {(worker.failure or ('ContainerCreating',))[0]}")

        def running() -> bool:
            process = entry.process
            with self.lock:
                current = self.workers.get(uid) is worker
            return current and not worker.gone.is_set() and process is not None and process.poll() is None

        return kubelet.LogSource(entry.log_file, running)

    # -- container environment -------------------------------------------------------
    def environment(self, pod: client.V1Pod, container: client.V1Container, pod_ip: str) -> dict[str, str]:
        env = {"PATH": self.bin_path, "HOSTNAME": pod.metadata.name}
        if self.services is not None:  # the kubelet's service variables; the container's own win
            env.update(self.services.env(pod))
        namespace = pod.metadata.namespace
        for source in container.env_from or []:
            prefix = source.prefix or ""
            if source.config_map_ref is not None:
                data = self.core.read_namespaced_config_map(source.config_map_ref.name, namespace).data or {}
            else:
                secret = self.core.read_namespaced_secret(source.secret_ref.name, namespace)
                data = {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}
            env.update({prefix + key: value for key, value in data.items()})
        for var in container.env or []:
            if var.value_from is None:
                env[var.name] = var.value or ""
                continue
            ref = var.value_from
            if ref.field_ref is not None:
                path = ref.field_ref.field_path
                fields = {
                    "metadata.name": pod.metadata.name,
                    "metadata.namespace": namespace,
                    "metadata.uid": pod.metadata.uid,
                    "spec.nodeName": pod.spec.node_name,
                    "spec.serviceAccountName": pod.spec.service_account_name or "",
                    "status.podIP": pod_ip,
                    "status.hostIP": self.network.gateway,
                }
                env[var.name] = fields.get(path, "")
            elif ref.secret_key_ref is not None:
                secret = self.core.read_namespaced_secret(ref.secret_key_ref.name, namespace)
                env[var.name] = base64.b64decode((secret.data or {})[ref.secret_key_ref.key]).decode()
            elif ref.config_map_key_ref is not None:
                data = self.core.read_namespaced_config_map(ref.config_map_key_ref.name, namespace).data or {}
                env[var.name] = data[ref.config_map_key_ref.key]
            elif ref.resource_field_ref is not None:
                limits = (container.resources.limits if container.resources else None) or {}
                env[var.name] = str(limits.get(ref.resource_field_ref.resource.split(".", 1)[-1], "0"))
        return env

    # -- main ------------------------------------------------------------------------
    def run(self) -> None:
        if not self.fake:
            self.network.ensure_bridge()
        self.start_kubelet_api()
        if not self.fake:
            self.services = NodeServices.start_for(self.core.api_client, self.network, self.settings)
        threading.Thread(target=self.watch_pods, name="pod-watch", daemon=True).start()
        if not self.fake:  # NetworkPolicies, as nftables rules on the pod network
            PolicyEnforcer(self.core.api_client, self.state, self.network, self.stopping).start()
        if not self.fake:  # fake pods mount nothing: their volumes are never written
            threading.Thread(target=self.sync_volumes, name="volume-sync", daemon=True).start()
        storage.Provisioner(self.core, self.state, lambda: set(self.keeper.registered), self.stopping).start()
        self.keep_nodes()

    def shutdown(self) -> None:
        self.stopping.set()
        if self.services is not None:
            self.services.stop()
        if self.kubelet is not None:
            self.kubelet.shutdown()
            self.kubelet.server_close()
        with self.lock:
            workers = list(self.workers.values())
        for worker in workers:
            worker.gone.set()  # stop the processes; the pod objects stay for the next agent
        for worker in workers:
            worker.join(timeout=15)
        if not self.fake:
            remove_table(self.network.prefix)

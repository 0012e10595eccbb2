"""Register the sandbox's nodes as Magnum labels them and keep them Ready.

Desired nodes come from `nodes.json` in the state directory, re-read every second, so the
OpenStack simulator adds and removes nodes by rewriting that file (atomically: write, then rename).
A node spec may carry `gpu_ready_at` (epoch seconds): its GPUs become allocatable only then.
GPU nodes advertise what the NVIDIA device plugin and GPU feature discovery would: whole GPUs, a
MIG layout's slices per type ("mixed" strategy), or time-sliced replicas (see `gpu_advertised`).
`server_id` is the Nova server of the VM: the Node's `spec.providerID` is `openstack:///<server_id>`,
as openstack-cloud-controller-manager sets it. `never_join` marks a VM that never registers.
`gone_at` (epoch seconds) marks a VM the cloud deleted: from then on the node stops heartbeating
(posted NotReady once, its pods stop); its Node object goes at `delete_at`, as the cloud controller
manager deletes the Node of a vanished server a little later.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import uuid
from pathlib import Path

from kubernetes import client

log = logging.getLogger("sandbox.nodes")
STRATEGIC = "application/strategic-merge-patch+json"
LEASE_SECONDS = 40
KUBELET_VERSION = "v1.35.4-sandbox"


def node_spec(topology, group, position: int, index: int, server_id: str | None = None) -> dict:
    """One node of `group` as Magnum would label it; `index` picks its pod-address range.

    `position` is the VM's index in its Heat ResourceGroup (the `-node-<position>` of its name);
    `server_id` its Nova server UUID (stable per name unless given: the cloud passes a new one).
    """
    labels = {
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": group.flavor,
        "topology.kubernetes.io/region": "cern",
        "topology.kubernetes.io/zone": group.zones[position % len(group.zones)],
        topology.node_group_label: group.name,
        "magnum.openstack.org/role": group.role,
    }
    capacity = {"cpu": group.cpu, "memory": group.memory, "pods": "110", "ephemeral-storage": "100Gi"}
    taints = []
    if group.gpus_per_node:
        resources, gpu_labels = gpu_advertised(group)
        labels.update(gpu_labels)
        capacity.update(resources)
        if group.gpu_taint:
            taints.append(dict(group.gpu_taint))
    name = f"{topology.cluster}-{group.name}-node-{position}"
    labels["kubernetes.io/hostname"] = name
    server_id = server_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"nova-server/{name}"))
    return {
        "name": name,
        "index": index,
        "position": position,
        "server_id": server_id,
        "labels": labels,
        "capacity": capacity,
        "taints": taints,
    }


def gpu_advertised(group) -> tuple[dict[str, str], dict[str, str]]:
    """(extended resources, labels) of one GPU node of `group`, as the GPU operator's parts set them.

    - whole GPUs: <resource> = per_node.
    - MIG, "mixed" strategy: one resource per slice type, nvidia.com/mig-<profile> = its count, and
      no nvidia.com/gpu for MIG-enabled GPUs; GPU feature discovery labels nvidia.com/mig.strategy
      and nvidia.com/mig-<profile>.count, MIG manager nvidia.com/mig.config(.state).
      https://docs.nvidia.com/datacenter/cloud-native/gpu-operator/latest/gpu-operator-mig.html
    - time-slicing: <resource> = per_node × replicas, or <resource>.shared with renameByDefault (the
      product label then keeps its name; without it, the product gets a -SHARED suffix), and
      nvidia.com/gpu.replicas. https://docs.nvidia.com/datacenter/cloud-native/gpu-operator/latest/gpu-sharing.html
    """
    resource = group.gpu_resource or "nvidia.com/gpu"
    domain = resource.split("/", 1)[0]
    labels = {"nvidia.com/gpu.present": "true", "nvidia.com/gpu.count": str(group.gpus_per_node)}
    product = group.gpu_product
    mig, sliced = group.gpu_mig or {}, group.gpu_time_slicing or {}
    if mig:
        resources = {f"{domain}/mig-{name}": str(count) for name, count in mig["slices"].items()}
        labels["nvidia.com/mig.strategy"] = "mixed"
        labels.update({f"nvidia.com/mig-{name}.count": str(n) for name, n in mig["slices"].items()})
        if mig.get("config"):
            labels["nvidia.com/mig.config"] = mig["config"]
            labels["nvidia.com/mig.config.state"] = "success"
    elif sliced:
        replicas = int(sliced["replicas"])
        renamed = bool(sliced.get("rename_by_default"))
        resources = {resource + (".shared" if renamed else ""): str(group.gpus_per_node * replicas)}
        labels["nvidia.com/gpu.replicas"] = str(replicas)
        labels["nvidia.com/gpu.sharing-strategy"] = "time-slicing"
        if product and not renamed:
            product += "-SHARED"
    else:
        resources = {resource: str(group.gpus_per_node)}
    if product:
        labels["nvidia.com/gpu.product"] = product
    return resources, labels


def provider_id(spec: dict) -> str | None:
    """What openstack-cloud-controller-manager writes into the Node's spec.providerID."""
    return f"openstack:///{spec['server_id']}" if spec.get("server_id") else None


def node_specs(topology) -> list[dict]:
    """The nodes of a topology as plain data (written to nodes.json by `up`)."""
    specs = []
    for group in topology.node_groups:
        for position in range(group.nodes):
            specs.append(node_spec(topology, group, position, len(specs)))
    return specs


def load_specs(state: Path) -> list[dict] | None:
    """The desired nodes, or None when the file cannot be read (then nothing changes)."""
    try:
        specs = json.loads((state / "nodes.json").read_text())
    except (OSError, ValueError):
        return None
    return specs if isinstance(specs, list) else None


def save_specs(state: Path, specs: list[dict]) -> None:
    """Replace nodes.json atomically, so the agent never reads half a file."""
    staging = state / "nodes.json.tmp"
    staging.write_text(json.dumps(specs, indent=1))
    os.replace(staging, state / "nodes.json")


def joined(specs: list[dict], now: float) -> list[dict]:
    """The specs that have (or still have) a Node object: not `never_join`, not past `delete_at`."""
    return [
        spec
        for spec in specs
        if not spec.get("never_join") and (spec.get("delete_at") is None or now < spec["delete_at"])
    ]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _stamp(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class NodeKeeper:
    def __init__(self, core: client.CoreV1Api, coordination: client.CoordinationV1Api, host_ip: str):
        self.core = core
        self.coordination = coordination
        self.host_ip = host_ip
        self.kubelet_port = 10250  # where the agent's kubelet API listens (kube-apiserver reads logs there)
        self.registered: dict[str, dict] = {}
        self.last_heartbeat: dict[str, float] = {}
        self.posted_gpus: dict[str, bool] = {}
        self.gone: set[str] = set()  # nodes whose VM is deleted (Node object kept until delete_at)
        self.started = _stamp(_now())

    def reconcile(self, specs: list[dict], now: float, heartbeat_every: float) -> None:
        """Register new nodes, remove gone ones, and post status when due or when the spec changed."""
        wanted = {spec["name"]: spec for spec in joined(specs, now)}
        for name in list(self.registered):
            if name not in wanted:
                self.unregister(name)
        for name, spec in wanted.items():
            if name not in self.registered:
                if spec.get("gone_at") is not None and now >= spec["gone_at"]:
                    continue  # the VM went before its node was ever seen
                self.register(spec)
            if spec.get("gone_at") is not None and now >= spec["gone_at"]:
                if name not in self.gone:
                    self.gone.add(name)
                    self.registered[name] = spec
                    self.post_lost(name)
                continue
            gpus_due = (
                spec.get("gpu_ready_at") and now >= spec["gpu_ready_at"] and not self.posted_gpus.get(name)
            )
            if (
                now - self.last_heartbeat.get(name, 0) >= heartbeat_every
                or self.registered[name] != spec
                or gpus_due
            ):
                self.registered[name] = spec
                self.heartbeat(spec, now)
                self.last_heartbeat[name] = now

    def post_lost(self, name: str) -> None:
        """The VM is gone: no more heartbeats; Ready turns Unknown, as the node-lifecycle controller
        marks a node whose kubelet stopped posting (done at once here instead of after its grace)."""
        moment = _stamp(_now())
        conditions = [
            {
                "type": kind,
                "status": "Unknown",
                "reason": "NodeStatusUnknown",
                "message": "Kubelet stopped posting node status.",
                "lastHeartbeatTime": moment,
                "lastTransitionTime": moment,
            }
            for kind in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
        ]
        try:
            self.core.patch_node_status(name, {"status": {"conditions": conditions}}, _content_type=STRATEGIC)
        except client.ApiException as e:
            if e.status != 404:
                raise
        log.info("node %s lost its VM", name)

    def register(self, spec: dict) -> None:
        node_spec = {"taints": spec["taints"]} if spec["taints"] else {}
        if provider_id(spec):
            node_spec["providerID"] = provider_id(spec)
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": spec["name"], "labels": spec["labels"]},
            "spec": node_spec,
        }
        try:
            self.core.create_node(body)
        except client.ApiException as e:
            if e.status != 409:
                raise
            patch = {
                "metadata": {"labels": spec["labels"]},
                "spec": {**node_spec, "taints": spec["taints"] or None},
            }
            try:
                self.core.patch_node(spec["name"], patch, _content_type="application/merge-patch+json")
            except client.ApiException as e:
                if e.status != 422:  # providerID is immutable: a Node left from another VM
                    raise
                self.core.delete_node(spec["name"])
                self.core.create_node(body)
        self.registered[spec["name"]] = spec
        log.info("registered node %s", spec["name"])

    def unregister(self, name: str) -> None:
        try:
            self.core.delete_node(name)
        except client.ApiException as e:
            if e.status != 404:
                raise
        self.registered.pop(name, None)
        self.last_heartbeat.pop(name, None)
        self.posted_gpus.pop(name, None)
        self.gone.discard(name)
        log.info("removed node %s", name)

    def heartbeat(self, spec: dict, now: float) -> None:
        name, moment = spec["name"], _now()
        capacity = dict(spec["capacity"])
        # A new GPU node's device plugin takes a while: until gpu_ready_at its GPUs are not allocatable.
        ready_at = spec.get("gpu_ready_at")
        gpus_ready = not ready_at or now >= ready_at
        if not gpus_ready:
            for resource in [r for r in capacity if r.startswith("nvidia.com/")]:
                capacity[resource] = "0"
        self.posted_gpus[name] = gpus_ready
        conditions = [
            ("Ready", "True", "KubeletReady", "sandbox node agent is posting ready status"),
            ("MemoryPressure", "False", "KubeletHasSufficientMemory", "sandbox"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", "sandbox"),
            ("PIDPressure", "False", "KubeletHasSufficientPID", "sandbox"),
        ]
        status = {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [
                {
                    "type": kind,
                    "status": value,
                    "reason": reason,
                    "message": message,
                    "lastHeartbeatTime": _stamp(moment),
                    "lastTransitionTime": self.started,
                }
                for kind, value, reason, message in conditions
            ],
            "addresses": [
                {"type": "InternalIP", "address": self.host_ip},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
            "nodeInfo": {
                "machineID": name,
                "systemUUID": name,
                "bootID": self.started,
                "kernelVersion": "sandbox",
                "osImage": "cern-spawner sandbox",
                "containerRuntimeVersion": "sandbox://0.1",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }
        self.core.patch_node_status(name, {"status": status}, _content_type=STRATEGIC)
        self._renew_lease(name, moment)

    def _renew_lease(self, name: str, moment: datetime.datetime) -> None:
        renew = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": renew},
        }
        try:
            self.coordination.patch_namespaced_lease(
                name, "kube-node-lease", {"spec": body["spec"]}, _content_type="application/merge-patch+json"
            )
        except client.ApiException as e:
            if e.status != 404:
                raise
            self.coordination.create_namespaced_lease("kube-node-lease", body)

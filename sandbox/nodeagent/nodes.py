"""Register the sandbox's nodes as Magnum labels them and keep them Ready.

Desired nodes come from `nodes.json` in the state directory, re-read at every heartbeat, so a
later OpenStack simulator can add and remove nodes by rewriting that file.
"""

from __future__ import annotations

import datetime
import json
import logging
from pathlib import Path

from kubernetes import client

log = logging.getLogger("sandbox.nodes")
STRATEGIC = "application/strategic-merge-patch+json"
LEASE_SECONDS = 40
KUBELET_VERSION = "v1.35.4-sandbox"


def node_specs(topology) -> list[dict]:
    """The nodes of a topology as plain data (written to nodes.json by `up`)."""
    specs = []
    index = 0
    for group in topology.node_groups:
        for position in range(group.nodes):
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
                labels["nvidia.com/gpu.present"] = "true"
                labels["nvidia.com/gpu.count"] = str(group.gpus_per_node)
                if group.gpu_product:
                    labels["nvidia.com/gpu.product"] = group.gpu_product
                capacity[group.gpu_resource or "nvidia.com/gpu"] = str(group.gpus_per_node)
                if group.gpu_taint:
                    taints.append(dict(group.gpu_taint))
            name = f"{topology.cluster}-{group.name}-node-{position}"
            labels["kubernetes.io/hostname"] = name
            specs.append(
                {"name": name, "index": index, "labels": labels, "capacity": capacity, "taints": taints}
            )
            index += 1
    return specs


def load_specs(state: Path) -> list[dict]:
    try:
        return json.loads((state / "nodes.json").read_text())
    except (OSError, ValueError):
        return []


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _stamp(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class NodeKeeper:
    def __init__(self, core: client.CoreV1Api, coordination: client.CoordinationV1Api, host_ip: str):
        self.core = core
        self.coordination = coordination
        self.host_ip = host_ip
        self.registered: dict[str, dict] = {}
        self.started = _stamp(_now())

    def reconcile(self, specs: list[dict]) -> None:
        wanted = {spec["name"]: spec for spec in specs}
        for name in list(self.registered):
            if name not in wanted:
                self.unregister(name)
        for name, spec in wanted.items():
            if name not in self.registered:
                self.register(spec)
            self.heartbeat(spec)

    def register(self, spec: dict) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": spec["name"], "labels": spec["labels"]},
            "spec": {"taints": spec["taints"]} if spec["taints"] else {},
        }
        try:
            self.core.create_node(body)
        except client.ApiException as e:
            if e.status != 409:
                raise
            patch = {"metadata": {"labels": spec["labels"]}, "spec": {"taints": spec["taints"] or None}}
            self.core.patch_node(spec["name"], patch, _content_type="application/merge-patch+json")
        self.registered[spec["name"]] = spec
        log.info("registered node %s", spec["name"])

    def unregister(self, name: str) -> None:
        try:
            self.core.delete_node(name)
        except client.ApiException as e:
            if e.status != 404:
                raise
        self.registered.pop(name, None)
        log.info("removed node %s", name)

    def heartbeat(self, spec: dict) -> None:
        name, moment = spec["name"], _now()
        conditions = [
            ("Ready", "True", "KubeletReady", "sandbox node agent is posting ready status"),
            ("MemoryPressure", "False", "KubeletHasSufficientMemory", "sandbox"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", "sandbox"),
            ("PIDPressure", "False", "KubeletHasSufficientPID", "sandbox"),
        ]
        status = {
            "capacity": spec["capacity"],
            "allocatable": spec["capacity"],
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
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
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

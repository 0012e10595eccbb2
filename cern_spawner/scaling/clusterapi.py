"""Cluster API node groups: a GPU node group is a MachineDeployment in a management cluster.

The calls of `backend.NodeGroups`, on one MachineDeployment:
- `resize` writes `spec.replicas` (mode resize; in mode raise-min `backend.grow` writes it too, then
  the min size, so the cluster-autoscaler does not take the nodes back);
- `patch` writes the cluster-autoscaler's node-group size annotations (min_node_count, max_node_count);
- a shrink first marks the chosen empty nodes' Machines with `cluster.x-k8s.io/delete-machine`, then
  lowers the replicas: Cluster API's MachineSet deletes annotated Machines first, whatever its
  deletion policy (https://cluster-api.sigs.k8s.io/tasks/automated-machine-management/scaling).
  A chosen node without a Machine of this MachineDeployment stops the shrink: lowering replicas
  without the mark lets Cluster API pick any machine, busy or not.
- every write also carries the capacity annotations, and `state` restores them when they differ, so
  the cluster-autoscaler can grow the group from zero too (its clusterapi provider's "Scale from
  zero support": https://github.com/kubernetes/autoscaler/blob/master/cluster-autoscaler/cloudprovider/clusterapi/README.md).

Synchronous like magnum.py: the controller runs each call in a worker thread with a deadline. The
API calls go through `store` (an object with get/list/patch of custom objects); `KubeStore` is the
real one, over kubernetes_asyncio (the client the rest of the hub uses), one short event loop per call.
Errors are wrapped at this boundary into `errors`.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from .. import metrics
from .backend import GroupState
from .errors import NotAllowed, PermanentError, ScalingError, TemporaryError

log = logging.getLogger(__name__)

GROUP = "cluster.x-k8s.io"
VERSION = "v1beta1"
MIN_SIZE = "cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size"
MAX_SIZE = "cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size"
DELETE_MACHINE = "cluster.x-k8s.io/delete-machine"
DEPLOYMENT_NAME_LABEL = "cluster.x-k8s.io/deployment-name"  # on the MachineSets and Machines of an MD
CAPACITY = "capacity.cluster-autoscaler.kubernetes.io/"
MERGE = "application/merge-patch+json"


class Store(Protocol):
    """Custom objects of the Cluster API group in one namespace (plural: machinedeployments, machines)."""

    def get(self, plural: str, name: str) -> dict: ...

    def list(self, plural: str, label_selector: str) -> list[dict]: ...

    def patch(self, plural: str, name: str, body: dict) -> dict: ...


@dataclass(frozen=True)
class Capacity:
    """What one node of the group has, for the cluster-autoscaler's scale-from-zero annotations."""

    cpu: str = ""  # a quantity, "16"
    memory: str = ""  # a quantity, "128G"
    gpu_type: str = ""  # the GPU resource, "nvidia.com/gpu"
    gpu_count: int = 0
    taints: tuple[Mapping[str, str], ...] = ()  # {key, value?, effect}
    labels: Mapping[str, str] = field(default_factory=dict)


def capacity_annotations(capacity: Capacity) -> dict[str, str]:
    """The annotations the clusterapi provider reads; taints and labels as comma-separated lists
    (`key=value:Effect`, `key=value`), as its README documents. Unknown values are left out."""
    annotations = {}
    if capacity.cpu:
        annotations[CAPACITY + "cpu"] = str(capacity.cpu)
    if capacity.memory:
        annotations[CAPACITY + "memory"] = str(capacity.memory)
    if capacity.gpu_count:
        annotations[CAPACITY + "gpu-type"] = capacity.gpu_type or "nvidia.com/gpu"
        annotations[CAPACITY + "gpu-count"] = str(capacity.gpu_count)
    if capacity.taints:
        annotations[CAPACITY + "taints"] = ",".join(
            f"{t['key']}{'=' + t['value'] if t.get('value') else ''}:{t['effect']}" for t in capacity.taints
        )
    if capacity.labels:
        annotations[CAPACITY + "labels"] = ",".join(f"{k}={v}" for k, v in sorted(capacity.labels.items()))
    return annotations


# -- reading ---------------------------------------------------------------------------------------
def _int(value, default):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def group_state(name: str, deployment: Mapping) -> GroupState:
    """A MachineDeployment as the controller sees a node group. Busy while Cluster API has not
    caught up with the last write (observedGeneration) or is scaling; failed in phase Failed."""
    meta = deployment.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    phase = status.get("phase") or "Unknown"
    if _int(status.get("observedGeneration"), 0) < _int(meta.get("generation"), 0):
        state = "UPDATE_IN_PROGRESS"
    elif phase in ("ScalingUp", "ScalingDown"):
        state = f"{phase.upper()}_IN_PROGRESS"
    elif phase == "Failed":
        state = "UPDATE_FAILED"
    else:
        state = phase.upper()
    reason = status.get("failureMessage") or ""
    return GroupState(
        name=name,
        node_count=_int(spec.get("replicas"), _int(status.get("replicas"), 0)),
        min_nodes=_int(annotations.get(MIN_SIZE), 0),
        max_nodes=_int(annotations.get(MAX_SIZE), None),
        status=state,
        status_reason=reason,
        # The autoscaler takes a MachineDeployment as a node group only with both size annotations.
        autoscaled=MIN_SIZE in annotations and MAX_SIZE in annotations,
    )


def stale_annotations(deployment: Mapping, wanted: Mapping[str, str]) -> dict[str, str]:
    current = (deployment.get("metadata") or {}).get("annotations") or {}
    return {k: v for k, v in wanted.items() if current.get(k) != v}


# -- writing (pure: the bodies of the merge patches) -----------------------------------------------
def replicas_patch(node_count: int, annotations: Mapping[str, str]) -> dict:
    body: dict = {"spec": {"replicas": node_count}}
    if annotations:
        body["metadata"] = {"annotations": dict(annotations)}
    return body


def size_patch(changes: Mapping[str, int | None], annotations: Mapping[str, str]) -> dict:
    """min_node_count / max_node_count as the autoscaler's annotations; max None removes it."""
    keys = {"min_node_count": MIN_SIZE, "max_node_count": MAX_SIZE}
    unknown = set(changes) - set(keys)
    if unknown:
        raise ValueError(f"a MachineDeployment's node group has no {sorted(unknown)}")
    written: dict[str, str | None] = dict(annotations)
    for name, value in changes.items():
        written[keys[name]] = None if value is None else str(value)
    return {"metadata": {"annotations": written}}


def delete_mark(now: datetime.datetime) -> dict:
    # Cluster API looks only at the annotation's presence; the time says when we chose the machine.
    return {"metadata": {"annotations": {DELETE_MACHINE: now.isoformat(timespec="seconds")}}}


def server_id(machine: Mapping) -> str:
    """The VM id of a Machine's providerID, as capacity.server_id reads a Node's (openstack:///<id>)."""
    provider = (machine.get("spec") or {}).get("providerID") or ""
    return provider.rsplit("/", 1)[-1] if provider else ""


def machines_to_delete(machines: list[Mapping], server_ids: list[str]) -> tuple[list[str], list[str]]:
    """(names of the Machines of these VMs, server ids with no Machine)."""
    by_id = {server_id(m): m["metadata"]["name"] for m in machines if server_id(m)}
    return [by_id[i] for i in server_ids if i in by_id], [i for i in server_ids if i not in by_id]


# -- errors ------------------------------------------------------------------------------------------
def translate(error: Exception, action: str) -> ScalingError:
    """A Kubernetes client error (or a failed connection) as one of ours, with what to do about it."""
    status = getattr(error, "status", None)
    if isinstance(status, int) and status:
        detail = f"{action}: HTTP {status}: {getattr(error, 'reason', '')} {getattr(error, 'body', '') or ''}"
        detail = detail.strip()
        if status == 401:
            return PermanentError("The hub's credentials for the Cluster API cluster were rejected.", detail)
        if status == 403:
            return NotAllowed("The hub may not change this MachineDeployment (RBAC).", detail)
        if status == 404:
            return PermanentError("The MachineDeployment does not exist in the management cluster.", detail)
        if status == 409:
            return TemporaryError("The MachineDeployment was changed meanwhile.", detail, delay=2)
        if status in (400, 422):
            return PermanentError("The management cluster refused the new node group size.", detail)
        return TemporaryError("The management cluster's API is failing.", detail)
    if type(error).__name__ == "ConfigException":  # kubernetes_asyncio's kubeconfig loading
        return PermanentError(
            "The hub's kubeconfig for the Cluster API cluster is unusable.", f"{action}: {error}"
        )
    if isinstance(error, OSError | TimeoutError) or type(error).__module__.startswith("aiohttp"):
        return TemporaryError("The management cluster cannot be reached.", f"{action}: {error!r}")
    return TemporaryError("Unexpected error talking to the management cluster.", f"{action}: {error!r}")


# -- the backend -------------------------------------------------------------------------------------
def _call_result(error: BaseException | None) -> str:
    return "ok" if error is None else metrics.scaling_reason(error)


class ClusterAPIGroups:
    """One MachineDeployment, as the node group `backend.NodeGroups` calls by its catalog name."""

    def __init__(self, store: Store, machine_deployment: str, capacity: Capacity | None = None, clock=None):
        self.store = store
        self.machine_deployment = machine_deployment
        self.annotations = capacity_annotations(capacity or Capacity())
        self.clock = clock or (lambda: datetime.datetime.now(datetime.UTC))

    def _do(self, action: str, call: str, fn, *args):
        with metrics.timed(metrics.CLOUD_REQUEST_SECONDS, _call_result, "clusterapi", call):
            try:
                return fn(*args)
            except ScalingError:
                raise
            except Exception as e:
                raise translate(e, action) from e

    def _read(self, group: str) -> dict:
        return self._do(
            f"get MachineDeployment {self.machine_deployment} ({group})",
            "get_node_group",
            self.store.get,
            "machinedeployments",
            self.machine_deployment,
        )

    def _write(self, action: str, call: str, plural: str, name: str, body: dict) -> None:
        self._do(action, call, self.store.patch, plural, name, body)

    def state(self, group: str) -> GroupState:
        deployment = self._read(group)
        stale = stale_annotations(deployment, self.annotations)
        if stale:  # so that the cluster-autoscaler can grow it from zero even before we do
            log.info("%s: writing capacity annotations %s", self.machine_deployment, stale)
            self._write(
                "annotate capacity",
                "patch_node_group",
                "machinedeployments",
                self.machine_deployment,
                {"metadata": {"annotations": stale}},
            )
        return group_state(group, deployment)

    def patch(self, group: str, current: GroupState, **changes) -> None:
        self._write(
            f"set {changes} on MachineDeployment {self.machine_deployment}",
            "patch_node_group",
            "machinedeployments",
            self.machine_deployment,
            size_patch(changes, self.annotations),
        )

    def resize(self, group: str, node_count: int, nodes_to_remove: list[str] | None = None) -> None:
        if nodes_to_remove:
            machines = self._do(
                f"list Machines of {self.machine_deployment}",
                "get_node_group",
                self.store.list,
                "machines",
                f"{DEPLOYMENT_NAME_LABEL}={self.machine_deployment}",
            )
            names, missing = machines_to_delete(machines, nodes_to_remove)
            if missing:
                raise PermanentError(
                    "A node chosen for removal is not a machine of this node group.",
                    f"{self.machine_deployment}: no Machine with providerID server id {missing}",
                )
            mark = delete_mark(self.clock())
            for name in names:
                self._write(f"mark Machine {name} for deletion", "patch_node_group", "machines", name, mark)
        self._write(
            f"scale MachineDeployment {self.machine_deployment} to {node_count}",
            "resize",
            "machinedeployments",
            self.machine_deployment,
            replicas_patch(node_count, self.annotations),
        )


class KubeStore:
    """`Store` over kubernetes_asyncio: a kubeconfig file (empty: the in-cluster service account)."""

    def __init__(self, kubeconfig: str, namespace: str, version: str = VERSION):
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.version = version
        self._configuration = None

    async def _api(self):
        from kubernetes_asyncio import client, config

        if self._configuration is None:
            configuration = client.Configuration()
            if self.kubeconfig:
                await config.load_kube_config(config_file=self.kubeconfig, client_configuration=configuration)
            else:
                config.load_incluster_config(client_configuration=configuration)
            self._configuration = configuration
        return client.ApiClient(self._configuration)

    def _run(self, method: str, plural: str, **kwargs):
        from kubernetes_asyncio import client

        async def call():
            async with await self._api() as api:
                fn = getattr(client.CustomObjectsApi(api), method)
                return await fn(GROUP, self.version, self.namespace, plural, **kwargs)

        return asyncio.run(call())  # in the controller's worker thread: a loop of its own

    def get(self, plural: str, name: str) -> dict:
        return self._run("get_namespaced_custom_object", plural, name=name)

    def list(self, plural: str, label_selector: str) -> list[dict]:
        return self._run("list_namespaced_custom_object", plural, label_selector=label_selector)["items"]

    def patch(self, plural: str, name: str, body: dict) -> dict:
        return self._run("patch_namespaced_custom_object", plural, name=name, body=body, _content_type=MERGE)

"""What Cluster API does with a MachineDeployment's replicas, as pure functions (controller.py applies them).

- A MachineSet creates Machines up to its replicas and deletes the surplus. Machines annotated
  `cluster.x-k8s.io/delete-machine` go first, whatever the deletion policy
  (https://cluster-api.sigs.k8s.io/tasks/automated-machine-management/scaling); among the rest the
  sandbox deletes the newest (deletePolicy Newest), since Cluster API's default, Random, cannot be
  reproduced in a test.
- A MachineDeployment's status: replicas (Machines), readyReplicas (their nodes joined),
  observedGeneration, and phase ScalingUp/ScalingDown until its ready Machines match spec.replicas,
  then Running (Cluster API v1beta1's MachineDeploymentPhase values).
"""

from __future__ import annotations

from collections.abc import Mapping

DELETE_MACHINE = "cluster.x-k8s.io/delete-machine"
DEPLOYMENT_NAME = "cluster.x-k8s.io/deployment-name"
SET_NAME = "cluster.x-k8s.io/set-name"
# On a MachineDeployment of the sandbox: the topology node group whose flavor, GPUs and zones its
# machines get (what an OpenStackMachineTemplate says in a real cluster).
SHAPE = "sandbox.cern.ch/node-shape"


def _annotations(obj: Mapping) -> Mapping:
    return (obj.get("metadata") or {}).get("annotations") or {}


def live(machines: list[Mapping]) -> list[Mapping]:
    return [m for m in machines if not (m.get("metadata") or {}).get("deletionTimestamp")]


def victims(machines: list[Mapping], count: int) -> list[str]:
    """Names of the `count` Machines a MachineSet deletes when scaled down."""
    newest_first = sorted(
        machines,
        key=lambda m: (m["metadata"].get("creationTimestamp") or "", m["metadata"]["name"]),
        reverse=True,
    )
    ordered = sorted(newest_first, key=lambda m: DELETE_MACHINE not in _annotations(m))  # stable
    return [m["metadata"]["name"] for m in ordered[: max(count, 0)]]


def scale(machines: list[Mapping], replicas: int) -> tuple[int, list[str]]:
    """(Machines to create, names of Machines to delete) to reach `replicas`."""
    current = live(machines)
    if len(current) < replicas:
        return replicas - len(current), []
    return 0, victims(current, len(current) - replicas)


def deployment_status(deployment: Mapping, machines: int, ready: int) -> dict:
    replicas = int((deployment.get("spec") or {}).get("replicas") or 0)
    if machines > replicas or ready > replicas:
        phase = "ScalingDown"
    elif ready < replicas:
        phase = "ScalingUp"
    else:
        phase = "Running"
    return {
        "replicas": machines,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "observedGeneration": (deployment.get("metadata") or {}).get("generation", 0),
        "phase": phase,
    }

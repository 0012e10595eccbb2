"""The Cluster API backend against the sandbox's API server and its Cluster API controller: growth
by replicas brings a node of the MachineDeployment, and a shrink that names one empty node removes
that node's Machine (the delete-machine annotation) rather than the one Cluster API would pick."""

from __future__ import annotations

import uuid

import pytest

from cern_spawner.scaling import backend
from cern_spawner.scaling.clusterapi import GROUP, Capacity, ClusterAPIGroups, KubeStore, server_id
from cern_spawner.scaling.state import ScaledGroup
from tests.waiting import wait_until

# Its own MachineDeployment, namespace and node label value: no other module grows it.
pytestmark = [pytest.mark.integration, pytest.mark.shares("gpu-capi")]

LABEL = "magnum.openstack.org/nodegroup"  # the sandbox topology's node-group label
SHAPE = "sandbox.cern.ch/node-shape"


@pytest.fixture
def deployment(api_client, core):
    from kubernetes import client

    namespace = f"capi-{uuid.uuid4().hex[:6]}"
    name = f"gpu-capi-{namespace[-6:]}"
    core.create_namespace({"metadata": {"name": namespace}})
    objects = client.CustomObjectsApi(api_client)
    body = {
        "apiVersion": f"{GROUP}/v1beta1",
        "kind": "MachineDeployment",
        "metadata": {"name": name, "annotations": {SHAPE: "gpu-t4"}},
        "spec": {"clusterName": "sandbox", "replicas": 0},
    }
    objects.create_namespaced_custom_object(GROUP, "v1beta1", namespace, "machinedeployments", body)
    yield namespace, name, objects
    objects.patch_namespaced_custom_object(
        GROUP, "v1beta1", namespace, "machinedeployments", name, {"spec": {"replicas": 0}}
    )
    # Machines gone: the sandbox has marked their nodes gone, and they leave on their own.
    wait_until(
        lambda: not objects.list_namespaced_custom_object(GROUP, "v1beta1", namespace, "machines")["items"],
        timeout=30,
        what="the machines gone",
    )
    core.delete_namespace(namespace)


def test_grow_by_replicas_then_remove_the_chosen_machine(sandbox, core, deployment):
    namespace, name, objects = deployment
    groups = ClusterAPIGroups(
        KubeStore(sandbox["kubeconfig"], namespace), name, Capacity(cpu="8", memory="32Gi")
    )
    group = ScaledGroup(name, LABEL, "nvidia.com/gpu", 2, f"clusterapi:{namespace}/{name}", "resize", 0, 2)

    cloud = groups.state(name)
    assert (cloud.node_count, cloud.max_nodes) == (0, None)
    backend.grow(groups, group, cloud, 2)

    def joined():
        nodes = core.list_node(label_selector=f"{LABEL}={name}").items
        return nodes if len(nodes) == 2 and not groups.state(name).busy else None

    nodes = wait_until(joined, timeout=60, what="two nodes of the MachineDeployment")
    machines = objects.list_namespaced_custom_object(GROUP, "v1beta1", namespace, "machines")["items"]
    assert sorted(server_id(m) for m in machines) == sorted(
        n.spec.provider_id.rsplit("/", 1)[-1] for n in nodes
    )
    annotations = objects.get_namespaced_custom_object(
        GROUP, "v1beta1", namespace, "machinedeployments", name
    )["metadata"]["annotations"]
    assert annotations["capacity.cluster-autoscaler.kubernetes.io/cpu"] == "8"

    # The oldest machine: the sandbox's MachineSet (deletePolicy Newest) would never pick it itself.
    oldest = min(machines, key=lambda m: (m["metadata"]["creationTimestamp"], m["metadata"]["name"]))
    backend.shrink(groups, group, groups.state(name), 1, [server_id(oldest)])

    def removed():
        left = objects.list_namespaced_custom_object(GROUP, "v1beta1", namespace, "machines")["items"]
        return left if len(left) == 1 else None

    (kept,) = wait_until(removed, timeout=30, what="one machine left")
    assert kept["metadata"]["name"] != oldest["metadata"]["name"]
    assert groups.state(name).node_count == 1

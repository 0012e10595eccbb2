"""The sandbox's Cluster API controller: MachineDeployment replicas → Machines → nodes.

Runs as a task of the OpenStack simulator (`sandbox.openstack`), the one writer of nodes.json: API
calls go to a worker thread, while every read-modify-write of nodes.json happens on the event loop,
between the simulator's own. Each round (every `INTERVAL` s) reconciles every MachineDeployment that
names a topology group in its `sandbox.cern.ch/node-shape` annotation (rules.py says what Cluster
API would do). Timings are the simulator's settings of that shape group: `boot_delay` from a
Machine's creation to its node registering, `gpu_delay` to its GPUs, `node_removal_lag` from a
deletion to the Node object going. Nodes are labelled `<node_group_label>=<MachineDeployment name>`
and their providerID is openstack:///<server id>, as with Cluster API Provider OpenStack.
"""

from __future__ import annotations

import asyncio
import calendar
import dataclasses
import logging
import time
import uuid
from pathlib import Path

import yaml

from ..nodeagent.nodes import load_specs, node_spec, save_specs
from . import rules

log = logging.getLogger("sandbox.clusterapi")
GROUP, VERSION = "cluster.x-k8s.io", "v1beta1"
CRDS = Path(__file__).with_name("crds.yaml")
INTERVAL = 0.5


def install_crds(api_client) -> None:
    """Create the CRDs (already there: fine) and wait until the API server serves them."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    extensions = client.ApiextensionsV1Api(api_client)
    for crd in yaml.safe_load_all(CRDS.read_text()):
        try:
            extensions.create_custom_resource_definition(crd)
        except ApiException as e:
            if e.status != 409:
                raise
    objects = client.CustomObjectsApi(api_client)
    for _ in range(100):
        try:
            objects.list_cluster_custom_object(GROUP, VERSION, "machines", limit=1)
            return
        except ApiException:
            time.sleep(0.1)
    raise RuntimeError("the Cluster API CRDs were not served within 10 s")


class ClusterAPI:
    def __init__(self, state: Path, cloud, api_client):
        from kubernetes import client

        self.state = state
        self.cloud = cloud  # the OpenStack simulator: topology, settings, pod-address indices
        self.objects = client.CustomObjectsApi(api_client)
        self.unknown_shapes: set[str] = set()

    def _list(self, plural: str) -> list[dict]:
        return self.objects.list_cluster_custom_object(GROUP, VERSION, plural)["items"]

    def _shape(self, deployment: dict):
        name = (deployment["metadata"].get("annotations") or {}).get(rules.SHAPE)
        shape = next((g for g in self.cloud.topology.node_groups if g.name == name), None)
        if shape is None and deployment["metadata"]["name"] not in self.unknown_shapes:
            self.unknown_shapes.add(deployment["metadata"]["name"])
            log.warning(
                "MachineDeployment %s: annotation %s names no topology group: ignored",
                deployment["metadata"]["name"],
                rules.SHAPE,
            )
        return shape

    async def round(self) -> None:
        deployments, machines = await asyncio.gather(
            asyncio.to_thread(self._list, "machinedeployments"), asyncio.to_thread(self._list, "machines")
        )
        for deployment in deployments:
            shape = self._shape(deployment)
            if shape is not None:
                await self._reconcile(deployment, shape, machines)

    async def _reconcile(self, deployment: dict, shape, all_machines: list[dict]) -> None:
        namespace, name = deployment["metadata"]["namespace"], deployment["metadata"]["name"]
        mine = [
            m
            for m in all_machines
            if m["metadata"]["namespace"] == namespace
            and (m["metadata"].get("labels") or {}).get(rules.DEPLOYMENT_NAME) == name
        ]
        replicas = int(deployment["spec"].get("replicas") or 0)
        await asyncio.to_thread(self._ensure_machine_set, namespace, name, replicas)
        create, delete = rules.scale(mine, replicas)
        for _ in range(create):
            mine.append(await asyncio.to_thread(self._create_machine, namespace, name, deployment))
        if delete:
            self._nodes_gone(set(delete), shape.name)  # on the loop: nodes.json is the simulator's too
            for machine in delete:
                await asyncio.to_thread(
                    self.objects.delete_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    namespace,
                    "machines",
                    machine,
                )
            mine = [m for m in mine if m["metadata"]["name"] not in delete]
        joined = self._boot(mine, shape, name)
        for machine in mine:
            await asyncio.to_thread(
                self._machine_status, namespace, machine, machine["metadata"]["name"] in joined
            )
        status = rules.deployment_status(deployment, len(mine), len(joined))
        if status != {k: (deployment.get("status") or {}).get(k) for k in status}:
            await asyncio.to_thread(
                self.objects.patch_namespaced_custom_object_status,
                GROUP,
                VERSION,
                namespace,
                "machinedeployments",
                name,
                {"status": status},
            )

    def _ensure_machine_set(self, namespace: str, deployment: str, replicas: int) -> None:
        from kubernetes.client.exceptions import ApiException

        name = f"{deployment}-ms"
        body = {"spec": {"replicas": replicas}}
        try:
            self.objects.patch_namespaced_custom_object(GROUP, VERSION, namespace, "machinesets", name, body)
        except ApiException as e:
            if e.status != 404:
                raise
            self.objects.create_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                "machinesets",
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "MachineSet",
                    "metadata": {"name": name, "labels": {rules.DEPLOYMENT_NAME: deployment}},
                    "spec": {"replicas": replicas, "deletePolicy": "Newest"},
                },
            )

    def _create_machine(self, namespace: str, deployment: str, md: dict) -> dict:
        server = str(uuid.uuid4())
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Machine",
            "metadata": {
                "name": f"{deployment}-{server[:8]}",
                "labels": {rules.DEPLOYMENT_NAME: deployment, rules.SET_NAME: f"{deployment}-ms"},
            },
            "spec": {
                "clusterName": (md["spec"].get("clusterName") or "sandbox"),
                "providerID": f"openstack:///{server}",
            },
        }
        return self.objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "machines", body)

    def _machine_status(self, namespace: str, machine: dict, joined: bool) -> None:
        phase = "Running" if joined else "Provisioned"
        status = {
            "phase": phase,
            **({"nodeRef": {"kind": "Node", "name": machine["metadata"]["name"]}} if joined else {}),
        }
        if (machine.get("status") or {}).get("phase") != phase:
            self.objects.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, "machines", machine["metadata"]["name"], {"status": status}
            )

    def _boot(self, machines: list[dict], shape, deployment: str) -> set[str]:
        """Register the nodes of Machines past their boot delay; the names of those joined."""
        specs = load_specs(self.state)
        if specs is None:
            return set()
        present = {s["name"] for s in specs if s.get("gone_at") is None}
        now, added = time.time(), False
        boot_delay = self.cloud.setting("boot_delay", shape.name)
        group = dataclasses.replace(shape, name=deployment)  # labelled with the MachineDeployment's name
        for machine in machines:
            name = machine["metadata"]["name"]
            created = machine["metadata"].get("creationTimestamp")
            if name in present or created is None:
                continue
            born = calendar.timegm(time.strptime(created, "%Y-%m-%dT%H:%M:%SZ"))
            if now - born < boot_delay:
                continue
            index = self.cloud._next_free_index({s["index"] for s in specs})
            if index is None:
                log.warning("no pod-address range left for machine %s", name)
                continue
            server = machine["spec"]["providerID"].rsplit("/", 1)[-1]
            spec = node_spec(self.cloud.topology, group, len(present), index, server_id=server)
            spec["name"] = name
            spec["labels"]["kubernetes.io/hostname"] = name
            if shape.gpus_per_node:
                spec["gpu_ready_at"] = now + self.cloud.setting("gpu_delay", shape.name)
            specs.append(spec)
            present.add(name)
            added = True
        if added:
            save_specs(self.state, specs)
        return {m["metadata"]["name"] for m in machines} & present

    def _nodes_gone(self, names: set[str], shape: str) -> None:
        specs = load_specs(self.state)
        if specs is None:
            return
        now, lag = time.time(), self.cloud.setting("node_removal_lag", shape)
        for spec in specs:
            if spec["name"] in names and spec.get("gone_at") is None:
                spec["gone_at"], spec["delete_at"] = now, now + lag
        save_specs(self.state, specs)
        asyncio.get_running_loop().call_later(lag + 0.05, self.cloud._prune)


async def run(state: Path, cloud) -> None:
    from kubernetes import config

    api_client = config.new_client_from_config(str(state / "kubeconfig"))
    await asyncio.to_thread(install_crds, api_client)
    controller = ClusterAPI(state, cloud, api_client)
    log.info("Cluster API controller running")
    while True:
        try:
            await controller.round()
        except Exception:
            log.exception("Cluster API round failed")
        await asyncio.sleep(INTERVAL)

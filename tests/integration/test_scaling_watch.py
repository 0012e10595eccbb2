"""The hub's one pod watch against the sandbox's API server: it is KubeSpawner's pod reflector,
follows pods of every namespace, and keeps capacity per event; of the nodes, only the scaled
groups' are watched."""

from __future__ import annotations

import asyncio
import logging

import pytest
from traitlets.config import Config

from cern_spawner.scaling.capacity import GroupSelector
from cern_spawner.scaling.watch import ClusterView, kubespawner_pods
from cern_spawner.waiting import until

pytestmark = pytest.mark.integration

LABEL = "magnum.openstack.org/nodegroup"
GROUP = GroupSelector("gpu-v100", LABEL, "nvidia.com/gpu")  # the sandbox's one GPU node, 4 GPUs


def notebook(name: str, component: str) -> dict:
    # Never scheduled (no node carries this label): its GPU counts as waiting, in its namespace.
    return {
        "metadata": {"name": name, "labels": {"component": component}},
        "spec": {
            "nodeSelector": {LABEL: "gpu-v100", "cern-spawner.test/never": "true"},
            "containers": [
                {
                    "name": "nb",
                    "image": "sandbox",
                    "resources": {"limits": {"nvidia.com/gpu": "1", "cpu": "10m", "memory": "16Mi"}},
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                }
            ],
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 1000,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
        },
    }


async def within_20s(predicate, what: str) -> None:
    async def check():
        return predicate()

    await until(check, within=20, what=what, first=0.05, cap=0.2)


def test_one_raw_watch_serves_kubespawner_and_capacity(sandbox, core, namespace):
    from kubernetes_asyncio import client as aclient
    from kubernetes_asyncio import config as aconfig
    from kubespawner import KubeSpawner

    async def scenario():
        api = await aconfig.new_client_from_config(sandbox["kubeconfig"])
        saved = dict(KubeSpawner.reflectors)
        async with api:
            view = ClusterView(
                aclient.CoreV1Api(api), logging.getLogger("test"), **kubespawner_pods(Config(), namespace)
            )
            view.start(groups=lambda: [(LABEL, "gpu-v100")])
            try:
                reflector = KubeSpawner.reflectors[("pods", namespace)]  # what KubeSpawner will use
                await asyncio.wait_for(reflector.first_load_future, 30)
                await asyncio.wait_for(view.synced.wait(), 30)
                # Only the scaled group's nodes are watched (the sandbox has CPU workers too).
                watched = {n["metadata"]["labels"].get(LABEL) for n in view.nodes.values()}
                before = view.capacity(GROUP, 4, namespace=namespace).pending_gpus
                await asyncio.to_thread(
                    core.create_namespaced_pod, namespace, notebook("nb", "singleuser-server")
                )
                await asyncio.to_thread(core.create_namespaced_pod, namespace, notebook("other", "batch"))
                key = f"{namespace}/nb"
                await within_20s(lambda: key in reflector.pods, "the hub's pod in KubeSpawner's reflector")
                await within_20s(
                    lambda: view.capacity(GROUP, 4, namespace=namespace).pending_gpus == before + 2,
                    "both pods' GPUs counted as waiting",
                )
                served = sorted(k for k in reflector.pods if k.startswith(f"{namespace}/"))
                await asyncio.to_thread(core.delete_namespaced_pod, "nb", namespace, grace_period_seconds=0)
                await within_20s(lambda: key not in reflector.pods, "the deleted pod gone from the reflector")
                await within_20s(
                    lambda: view.capacity(GROUP, 4, namespace=namespace).pending_gpus == before + 1,
                    "the deleted pod's GPU no longer waiting",
                )
                return served, watched
            finally:
                await view.stop()
                KubeSpawner.reflectors.clear()
                KubeSpawner.reflectors.update(saved)

    # The non-notebook pod is counted for capacity but never handed to KubeSpawner.
    served, watched = asyncio.run(asyncio.wait_for(scenario(), 90))
    assert served == [f"{namespace}/nb"]
    assert watched == {"gpu-v100"}

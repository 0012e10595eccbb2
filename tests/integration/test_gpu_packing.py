"""`placement: pack` packs GPU notebooks on the real kube-scheduler, and `spread` spreads them.

Each case: the hub grows its group to two nodes for five plain pods holding one GPU each and labelled
as the group's notebooks are (the controller counts every pod bound to a node, whoever started it);
all but one go, so one node holds one of the group's pods and the other none. Then a real notebook
starts through the hub on the group's 1-GPU profile. Packed, it joins the pod (its preferred pod
affinity outweighs the scheduler's least-allocated and balanced-allocation scores), so the other
node stays empty for the safe shrink; spread, it goes to the empty node (least allocated first).

Why the two must be told apart this way: with one node, or with both groups' pods on shared nodes,
a spread notebook also lands beside a pod (no choice, or the emptier node is then the one its own
group uses); with the removed pods still terminating, their GPUs are still held and the used node
is the only one with room; with pods requesting no CPU or memory, least-allocated scores differ by
about a point and the scheduler's random tie-break decides. Any of these passes whether or not pack
packs. Hence nodes of each group's own, removed pods gone, and a notebook's requests on every pod.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from cern_spawner.catalog.to_kubespawner import NODE_GROUP_LABEL
from tests.integration.growth import (
    A40_GROUP,
    H100_GROUP,
    RestartableHub,
    dedicated_catalog,
    gpu_holder_pod,
    no_nodes_in,
    start,
)
from tests.waiting import wait_until

# The groups of test_safe_shrink and test_hub_restart/test_helm_serves: never at the same time as them.
pytestmark = [pytest.mark.integration, pytest.mark.shares(H100_GROUP, A40_GROUP)]
PACKED, SPREAD = H100_GROUP, A40_GROUP
GROUPS = [PACKED, SPREAD]
# A GPU notebook's share of a 16-CPU, 64 GiB node: with requests this size the least-allocated
# score tells a used node from an empty one by ~25 points (with none, by ~1, and the scheduler's
# random tie-break decides), so spread is decisive and pack has something to outweigh.
CPU, MEMORY = "4", "16Gi"
CATALOG = {
    # A GPU group packs by default: the packed group says nothing, as an operator's catalog would.
    "packed.yaml": dedicated_catalog(PACKED, 4, "NVIDIA-H100-80GB-HBM3", "resize", 2, "packed-1"),
    "spread.yaml": dedicated_catalog(SPREAD, 4, "NVIDIA-A40", "resize", 2, "spread-1").replace(
        "    scaling:", "    placement: spread\n    scaling:"
    ),
}
CATALOG = {
    k: v.replace("cpu: 0.5", f"cpu: {CPU}").replace("memory: 1G", f"memory: {MEMORY}")
    for k, v in CATALOG.items()
}
# Long enough that the emptied node is still there when the notebook comes (a few seconds later).
# The groups' nodes are left empty at the end: every module on these groups waits for them to be
# at 0 first, and its hub returns empty nodes after its own grace (waiting here would add ~40 s:
# Magnum resizes one at a time).
EXTRA = "c.GPUScaling.interval = 1\nc.GPUScaling.grace_period = 20\n"


@pytest.fixture(scope="module")
def hub(sandbox, catalog, cloud, tmp_path_factory):
    hubs = RestartableHub(tmp_path_factory.mktemp("packing-hub"), EXTRA, catalog)
    hub = hubs.launch()
    yield hub
    hubs.close()


def group_pods(core, namespace, group) -> dict[str, str]:
    """pod name -> node, for the group's pods bound to a node, terminating ones included: until a
    pod object is gone the scheduler still counts its GPUs on the node."""
    pods = core.list_namespaced_pod(namespace, label_selector=f"{NODE_GROUP_LABEL}={group}").items
    return {p.metadata.name: p.spec.node_name for p in pods if p.spec.node_name}


# group, its profile, the user, whether the notebook must join the node holding the group's pod.
CASES = [
    (PACKED, "packed-1", "packer", True),
    (SPREAD, "spread-1", "spreader", False),
]


def test_a_gpu_notebook_goes_where_its_groups_placement_says(hub, core, sandbox):
    """Both groups at once (one growth and one start each, side by side), each checked on its own."""
    namespace = sandbox["user_namespace"]
    holders = {group: [f"{group}-hold-{i}" for i in range(5)] for group, *_ in CASES}
    try:
        for group, names in holders.items():
            wait_until(lambda g=group: no_nodes_in(core, g), timeout=120, what=f"{group} at 0 nodes")
            # Labelled as the group's notebooks are, with a notebook's CPU and memory.
            labels = {"app": "packing-test", NODE_GROUP_LABEL: group}
            for name in names:
                pod = gpu_holder_pod(name, group, labels, requests={"cpu": CPU, "memory": MEMORY})
                core.create_namespaced_pod(namespace, pod)
        placed = {
            group: wait_until(
                lambda g=group: (
                    (p := group_pods(core, namespace, g)) and len(p) == 5 and len(set(p.values())) == 2 and p
                ),
                timeout=90,
                what=f"5 GPU pods on 2 new {group} nodes",
            )
            for group in holders
        }
        for names in holders.values():
            for name in names[1:]:
                core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
        for group, names in holders.items():
            # Gone, not only terminating: a terminating pod still holds its GPU, and the notebook
            # would have no choice but the used node.
            wait_until(
                lambda g=group, n=names: list(group_pods(core, namespace, g)) == n[:1],
                timeout=30,
                what=f"4 {group} pods gone",
            )
        with ThreadPoolExecutor(len(CASES)) as starts:  # each start's request waits for its server
            list(starts.map(lambda case: start(hub, case[2], profile=case[1]), CASES))
        found = {}
        for group, _, user, _ in CASES:
            used = placed[group][holders[group][0]]
            (empty,) = set(placed[group].values()) - {used}
            pod = f"jupyter-{user}"
            node = wait_until(
                lambda g=group, p=pod: group_pods(core, namespace, g).get(p), timeout=60, what=f"{pod} bound"
            )
            affinity = core.read_namespaced_pod(pod, namespace).spec.affinity
            found[group] = {
                "joined the used node": node == used,
                "took the empty node": node == empty,
                "pod affinity": affinity is not None and affinity.pod_affinity is not None,
            }
        assert found == {
            group: {"joined the used node": joins, "took the empty node": not joins, "pod affinity": joins}
            for group, _, _, joins in CASES
        }
    finally:  # a group's nodes go back only once its pods are gone
        for _, _, user, _ in CASES:
            hub.api("DELETE", f"/users/{user}/server")
        for group, names in holders.items():
            for name in names:
                if name in group_pods(core, namespace, group):
                    core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)

"""The hub's one pod watch: what wakes the controller, the capacity index kept per event, and
the hub's own pods served to KubeSpawner as its pod reflector."""

from __future__ import annotations

import asyncio
import copy
import json
import logging

import pytest
from traitlets.config import Config

from cern_spawner.scaling.capacity import GroupSelector, summarize
from cern_spawner.scaling.watch import ClusterView, Gone, kubespawner_pods, relevant

pytestmark = pytest.mark.unit

LABEL = "magnum.openstack.org/nodegroup"
GROUP = GroupSelector("gpu-v100", LABEL, "nvidia.com/gpu")
NODE = {
    "metadata": {"name": "n0", "labels": {LABEL: "gpu-v100"}},
    "spec": {"providerID": "openstack:///id"},
    "status": {
        "allocatable": {"nvidia.com/gpu": "4"},
        "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-12-03T12:00:00Z"}],
    },
}
POD = {
    "metadata": {"name": "p", "namespace": "hub"},
    "spec": {"nodeName": None, "containers": [{"resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
    "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "lastTransitionTime": "t0"}]},
}


def changed(obj, path, value):
    new = copy.deepcopy(obj)
    target = new
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return new


@pytest.mark.parametrize(
    ("before", "path", "value", "wakes"),
    [
        pytest.param(
            NODE, ("status", "conditions", 0, "lastHeartbeatTime"), "later", False, id="node-heartbeat"
        ),
        pytest.param(NODE, ("status", "conditions", 0, "status"), "Unknown", True, id="node-lost"),
        pytest.param(NODE, ("status", "allocatable"), {"nvidia.com/gpu": "0"}, True, id="gpus-gone"),
        pytest.param(NODE, ("spec", "unschedulable"), True, True, id="cordoned"),
        pytest.param(
            POD, ("status", "conditions", 0, "lastTransitionTime"), "t1", False, id="pod-condition-time"
        ),
        pytest.param(POD, ("spec", "nodeName"), "n0", True, id="pod-bound"),
        pytest.param(POD, ("status", "phase"), "Succeeded", True, id="pod-finished"),
        pytest.param(POD, ("status", "phase"), "Running", False, id="pod-running-changes-no-capacity"),
    ],
)
def test_what_wakes_the_controller(before, path, value, wakes):
    assert (relevant(before) != relevant(changed(before, path, value))) == wakes


def pod(name, namespace="hub", node=None, gpus=1, phase="Pending", component="singleuser-server"):
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": {"component": component}},
        "spec": {
            "nodeName": node,
            "nodeSelector": {LABEL: "gpu-v100"},
            "containers": [{"resources": {"limits": {"nvidia.com/gpu": str(gpus)}} if gpus else {}}],
        },
        "status": {"phase": phase},
    }


def view():
    return ClusterView(
        None, logging.getLogger("test"), hub_namespace="hub", hub_labels={"component": "singleuser-server"}
    )


def key(obj):
    return f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"


# Event sequences; after each event the index must give what a recount of every pod gives.
SEQUENCES = {
    "wait-bind-run-finish-delete": [
        ("ADDED", pod("a")),
        ("MODIFIED", pod("a", node="n0")),
        ("MODIFIED", pod("a", node="n0", phase="Running")),
        ("MODIFIED", pod("a", node="n0", phase="Succeeded")),
        ("DELETED", pod("a", node="n0", phase="Succeeded")),
    ],
    "deleted-while-running": [
        ("ADDED", pod("a", node="n0", phase="Running", gpus=2)),
        ("ADDED", pod("b", node="n0", phase="Running")),
        ("DELETED", pod("a", node="n0", phase="Running", gpus=2)),
    ],
    "other-namespace-holds-gpus-but-is-no-demand": [
        ("ADDED", pod("batch", namespace="ml", node="n0", phase="Running", gpus=3, component="job")),
        ("ADDED", pod("queued", namespace="ml", gpus=1, component="job")),
        ("ADDED", pod("mine")),
    ],
    "cpu-pod-on-the-node-is-a-workload": [
        ("ADDED", pod("cpu", node="n0", phase="Running", gpus=0)),
        ("MODIFIED", pod("cpu", node="n0", phase="Failed", gpus=0)),
    ],
}


@pytest.mark.parametrize("events", list(SEQUENCES.values()), ids=list(SEQUENCES))
def test_capacity_kept_per_event_equals_a_recount(events):
    cluster = view()
    cluster._reset_nodes([NODE])
    current = {}
    for kind, obj in events:
        cluster._pod(kind, obj)
        if kind == "DELETED":
            current.pop(key(obj), None)
        else:
            current[key(obj)] = obj
        kept = cluster.capacity(GROUP, 4, namespace="hub")
        recount = summarize([NODE], current.values(), [GROUP], {"gpu-v100": 4}, namespace="hub")["gpu-v100"]
        assert kept == recount, (kind, obj["metadata"]["name"])
    # KubeSpawner reads the hub's notebook pods, whole, and nothing else.
    assert cluster.hub_pods == {k: v for k, v in current.items() if k.startswith("hub/")}


CPU_POD = pod("c", gpus=0)
CPU_POD_ON_N0 = pod("c", gpus=0, node="n0", phase="Running")
CPU_POD_ELSEWHERE = pod("c", gpus=0, node="cpu-1", phase="Running")


@pytest.mark.parametrize(
    ("known", "event", "wakes"),
    [
        pytest.param(pod("a"), ("ADDED", pod("a")), True, id="new-waiting-pod"),
        pytest.param(pod("a"), ("MODIFIED", pod("a", phase="Pending")), False, id="same-use"),
        pytest.param(pod("a"), ("DELETED", pod("never-seen")), False, id="unknown-deleted"),
        pytest.param(pod("a"), ("MODIFIED", pod("a", node="n0")), True, id="bound"),
        pytest.param(CPU_POD, ("ADDED", CPU_POD), False, id="new-cpu-pod"),
        pytest.param(
            CPU_POD, ("MODIFIED", pod("c", gpus=0, node="cpu-1")), False, id="cpu-pod-bound-elsewhere"
        ),
        pytest.param(CPU_POD, ("MODIFIED", CPU_POD_ON_N0), True, id="cpu-pod-bound-to-a-scaled-node"),
        pytest.param(CPU_POD_ON_N0, ("DELETED", CPU_POD_ON_N0), True, id="cpu-pod-leaves-a-scaled-node"),
        pytest.param(CPU_POD, ("DELETED", CPU_POD), False, id="cpu-pod-deleted-unbound"),
    ],
)
def test_an_event_wakes_the_controller_only_when_what_it_reads_changes(known, event, wakes):
    cluster = view()
    cluster._reset_nodes([NODE])
    cluster._reset_pods([known] if event[0] != "ADDED" else [])
    cluster.changed.clear()
    cluster._pod(*event)
    assert cluster.changed.is_set() == wakes


@pytest.mark.parametrize(
    ("obj", "arrives"),
    [(pod("a"), True), (CPU_POD, False), (pod("a", node="n0"), False)],
    ids=["waiting-gpu-pod", "cpu-pod", "already-bound"],
)
def test_only_a_waiting_gpu_pod_counts_as_an_arrival_for_the_burst_hold(obj, arrives):
    cluster = view()
    cluster._pod("ADDED", obj)
    assert (cluster.last_arrival is not None) == arrives


def test_a_start_arrives_when_it_begins_and_its_pod_does_not_arrive_again():
    cluster = view()
    cluster.expect("hub/a", "gpu-v100")
    assert cluster.last_arrival is not None
    assert (cluster.in_flight("gpu-v100"), cluster.in_flight("gpu-a100")) == (1, 0)
    cluster.last_arrival = 0.0  # long ago: the pod's event must not make it an arrival again
    cluster.changed.clear()
    cluster._pod("ADDED", pod("a"))
    assert (cluster.last_arrival, cluster.in_flight("gpu-v100")) == (0.0, 0)
    assert cluster.changed.is_set()  # a waiting GPU pod: the held round decides again
    cluster.changed.clear()
    cluster.unexpect("hub/a")  # its start ends later: nothing was still expected
    assert not cluster.changed.is_set()


def test_a_start_that_ends_before_its_pod_exists_releases_the_growth_it_held():
    cluster = view()
    cluster.expect("hub/a", "gpu-v100")
    cluster.changed.clear()
    cluster.unexpect("hub/a")
    assert cluster.changed.is_set() and cluster.in_flight("gpu-v100") == 0


def test_a_listing_counts_the_expected_pods_it_finds_as_seen():
    cluster = view()
    cluster.expect("hub/a", "gpu-v100")
    cluster._reset_pods([pod("a")])
    assert cluster.in_flight("gpu-v100") == 0


@pytest.mark.parametrize(
    ("line", "outcome"),
    [
        pytest.param(
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}}, "9", id="bookmark"
        ),
        pytest.param(
            {
                "type": "ADDED",
                "object": pod("a") | {"metadata": {**pod("a")["metadata"], "resourceVersion": "7"}},
            },
            "7",
            id="added",
        ),
        pytest.param({"type": "ERROR", "object": {"code": 410, "message": "too old"}}, Gone, id="gone"),
    ],
)
def test_raw_event_lines(line, outcome):
    cluster = view()
    seen = []
    if outcome is Gone:
        with pytest.raises(Gone):
            cluster._event(json.dumps(line).encode(), "1", lambda *a: seen.append(a))
        return
    assert cluster._event(json.dumps(line).encode(), "1", lambda *a: seen.append(a)) == outcome
    assert len(seen) == (line["type"] != "BOOKMARK")


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        pytest.param({}, ("hub", "singleuser-server", ("pods", "hub")), id="defaults"),
        pytest.param(
            {"KubeSpawner": {"component_label": "nb"}}, ("hub", "nb", ("pods", "hub")), id="kubespawner-label"
        ),
        pytest.param(
            {"KubeSpawner": {"component_label": "nb"}, "CERNSpawner": {"component_label": "cern"}},
            ("hub", "cern", ("pods", "hub")),
            id="subclass-wins",
        ),
        pytest.param(
            {"CERNSpawner": {"enable_user_namespaces": True}},
            (None, "singleuser-server", ("pods", None)),
            id="namespace-per-user",
        ),
    ],
)
def test_the_pods_kubespawner_would_watch(settings, expected):
    kwargs = kubespawner_pods(Config(settings), "hub")
    assert (kwargs["hub_namespace"], kwargs["hub_labels"]["component"], kwargs["share_as"]) == expected


def test_the_view_is_kubespawners_pod_reflector_once_listed():
    from kubespawner import KubeSpawner

    async def scenario():
        cluster = ClusterView(None, logging.getLogger("test"), **kubespawner_pods(Config(), "unit-test-ns"))
        saved = dict(KubeSpawner.reflectors)
        try:
            cluster._share_with_kubespawner()
            reflector = KubeSpawner.reflectors[("pods", "unit-test-ns")]
            assert not reflector.first_load_future.done()  # spawns wait for the first listing
            cluster._reset_pods([pod("a", namespace="unit-test-ns"), pod("b", namespace="other")])
            await asyncio.wait_for(reflector.first_load_future, 1)
            return dict(reflector.pods)
        finally:
            KubeSpawner.reflectors.clear()
            KubeSpawner.reflectors.update(saved)

    assert list(asyncio.run(scenario())) == ["unit-test-ns/a"]


@pytest.mark.parametrize(
    ("groups", "selector"),
    [
        pytest.param(None, None, id="not-told-every-node"),
        pytest.param([], "cern-spawner.cern.ch/no-group-is-scaled", id="nothing-scaled-no-node"),
        pytest.param(
            [(LABEL, "gpu-v100"), (LABEL, "gpu-a100"), (LABEL, "gpu-a100")],
            f"{LABEL} in (gpu-a100,gpu-v100)",
            id="the-scaled-groups-only",
        ),
        pytest.param([(LABEL, "gpu-v100"), ("other.org/pool", "gpus")], None, id="two-labels-every-node"),
    ],
)
def test_only_the_scaled_groups_nodes_are_watched(groups, selector):
    cluster = view()
    cluster.groups = None if groups is None else (lambda: groups)
    assert cluster.node_selector() == selector

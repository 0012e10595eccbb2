"""The sandbox's Cluster API rules: which Machines a scale-down deletes, and a MachineDeployment's status."""

from __future__ import annotations

import pytest

from sandbox.clusterapi.rules import DELETE_MACHINE, deployment_status, scale

pytestmark = pytest.mark.unit


def machine(name, created, marked=False, deleting=False):
    meta = {"name": name, "creationTimestamp": created}
    if marked:
        meta["annotations"] = {DELETE_MACHINE: "2026-12-03T22:00:00+00:00"}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-03T22:00:01Z"
    return {"metadata": meta}


OLD, MID, NEW = "2026-12-03T20:00:00Z", "2026-12-03T21:00:00Z", "2026-12-03T22:00:00Z"


@pytest.mark.parametrize(
    ("machines", "replicas", "expected"),
    [
        pytest.param([machine("a", OLD)], 3, (2, []), id="grow"),
        pytest.param([machine("a", OLD), machine("b", NEW)], 2, (0, []), id="steady"),
        pytest.param(
            [machine("a", OLD), machine("b", MID), machine("c", NEW)], 2, (0, ["c"]), id="newest-first"
        ),
        pytest.param(
            [machine("a", OLD, marked=True), machine("b", MID), machine("c", NEW)],
            2,
            (0, ["a"]),
            id="annotated-before-newest",
        ),
        pytest.param(
            [machine("a", OLD, marked=True), machine("b", MID), machine("c", NEW, marked=True)],
            0,
            (0, ["c", "a", "b"]),
            id="all-annotated-first",
        ),
        pytest.param(
            [machine("a", OLD), machine("b", NEW, deleting=True)], 1, (0, []), id="deleting-not-counted"
        ),
    ],
)
def test_scale(machines, replicas, expected):
    assert scale(machines, replicas) == expected


@pytest.mark.parametrize(
    ("replicas", "machines", "ready", "phase"),
    [
        pytest.param(2, 2, 1, "ScalingUp", id="booting"),
        pytest.param(2, 2, 2, "Running", id="ready"),
        pytest.param(1, 2, 2, "ScalingDown", id="surplus"),
        pytest.param(0, 0, 0, "Running", id="empty"),
    ],
)
def test_deployment_status(replicas, machines, ready, phase):
    status = deployment_status(
        {"metadata": {"generation": 7}, "spec": {"replicas": replicas}}, machines, ready
    )
    assert status == {
        "replicas": machines,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "observedGeneration": 7,
        "phase": phase,
    }

"""What of a Node or Pod event wakes the scaling controller."""

from __future__ import annotations

import copy

import pytest

from cern_spawner.scaling.watch import relevant

pytestmark = pytest.mark.unit

NODE = {
    "metadata": {"name": "n0", "labels": {"magnum.openstack.org/nodegroup": "gpu-v100"}},
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
    ],
)
def test_what_wakes_the_controller(before, path, value, wakes):
    assert (relevant(before) != relevant(changed(before, path, value))) == wakes

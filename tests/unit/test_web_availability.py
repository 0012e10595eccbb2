"""The picker's availability verdict: a table of controller states and what a user is told."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cern_spawner.catalog import load_catalog
from cern_spawner.scaling import capacity as capacity_module
from cern_spawner.scaling.capacity import Capacity
from cern_spawner.scaling.errors import CeilingReached, PermanentError, QuotaExceeded
from cern_spawner.scaling.magnum import GroupState
from cern_spawner.scaling.state import GroupStatus, ScaledGroup
from cern_spawner.web.availability import availability, report

pytestmark = pytest.mark.unit

CATALOG = load_catalog([Path(__file__).resolve().parents[2] / "profiles"])
GPU = CATALOG.profile("gpu-1")
SHARED = CATALOG.profile("shared-2g")
GROUP = ScaledGroup("gpu-v100", "magnum.openstack.org/nodegroup", "nvidia.com/gpu", 4, "c", "resize", 0, 4)


def members(ready: int, alloc: int, used: int) -> dict:
    """Per-node capacity, where Capacity counts free GPUs per node (the controller's rewrite)."""
    if "members" not in {f.name for f in dataclasses.fields(Capacity)}:
        return {}
    node_info = capacity_module.NodeInfo
    nodes, per_node = [], alloc // ready if ready else 0
    for index in range(ready):
        taken = min(per_node, used)
        used -= taken
        nodes.append(node_info(f"n{index}", "True", per_node, taken, taken, False, False, ""))
    return {"members": tuple(nodes)}


def status(nodes=1, ready=None, alloc=4, used=0, pending=0, booting=0, cloud_nodes=None, blocker=None):
    capacity = Capacity(
        group="gpu-v100",
        nodes=nodes,
        ready_nodes=nodes if ready is None else ready,
        allocatable_gpus=alloc,
        used_gpus=used,
        pending_gpus=pending,
        booting_gpus=booting,
        gpus_per_node=4,
        **members(nodes if ready is None else ready, alloc, used),
    )
    cloud = GroupState("gpu-v100", nodes if cloud_nodes is None else cloud_nodes, 0, 4, "UPDATE_COMPLETE", "")
    return GroupStatus(capacity=capacity, cloud=cloud, blocker=blocker)


CEILING = CeilingReached("No GPU is free in gpu-v100 and it is at its maximum of 4 node(s): try again later.")


@pytest.mark.parametrize(
    ("profile", "group_status", "scaled", "state", "text", "disabled"),
    [
        pytest.param(SHARED, None, None, "available", "Available", False, id="shared-always-available"),
        pytest.param(GPU, None, GROUP, "unknown", "GPU availability not known yet", False, id="no-round-yet"),
        pytest.param(
            GPU, GroupStatus(), GROUP, "unknown", "GPU availability not known yet", False, id="empty-status"
        ),
        pytest.param(GPU, status(used=1), GROUP, "free", "3 of 4 GPUs free", False, id="three-free"),
        pytest.param(
            GPU, status(used=2, pending=1), GROUP, "free", "1 of 4 GPUs free", False, id="pending-subtracted"
        ),
        pytest.param(
            GPU,
            status(used=4),
            GROUP,
            "grow",
            "No GPU free now: a new GPU node will be started (several minutes)",
            False,
            id="full-room-to-grow",
        ),
        pytest.param(
            GPU,
            status(nodes=0, alloc=0),
            GROUP,
            "grow",
            "No GPU free now: a new GPU node will be started (several minutes)",
            False,
            id="empty-group",
        ),
        pytest.param(
            GPU,
            status(nodes=0, alloc=0, pending=1, cloud_nodes=1),
            GROUP,
            "starting",
            "No GPU free now: a GPU node is already starting (several minutes)",
            False,
            id="requested-node-has-room",
        ),
        pytest.param(
            GPU,
            status(nodes=2, ready=1, used=4, booting=4, pending=1),
            GROUP,
            "starting",
            "No GPU free now: a GPU node is already starting (several minutes)",
            False,
            id="joined-node-booting",
        ),
        pytest.param(
            GPU,
            status(nodes=4, alloc=16, used=16),
            GROUP,
            "blocked",
            "Unavailable: GPU limit reached",
            True,
            id="at-ceiling-none-free",
        ),
        pytest.param(
            GPU,
            status(nodes=3, alloc=12, used=12, pending=4, cloud_nodes=3),
            GROUP,
            "blocked",
            "Unavailable: GPU limit reached",
            True,
            id="last-node-promised-to-others",
        ),
        pytest.param(
            GPU,
            status(nodes=4, alloc=16, used=15),
            GROUP,
            "free",
            "1 of 16 GPUs free",
            False,
            id="at-ceiling-one-free",
        ),
        pytest.param(
            GPU,
            status(used=4, pending=1, blocker=CEILING),
            GROUP,
            "blocked",
            "Unavailable: GPU limit reached",
            True,
            id="blocker-ceiling",
        ),
        pytest.param(
            GPU,
            status(used=4, pending=1, blocker=QuotaExceeded("The project's quota is used up.")),
            GROUP,
            "blocked",
            "Unavailable: the cloud's GPU quota is used up",
            True,
            id="blocker-quota",
        ),
        pytest.param(
            GPU,
            status(used=4, pending=1, blocker=PermanentError("The cloud failed to add the node.")),
            GROUP,
            "blocked",
            "Unavailable: no GPU node can be added now",
            True,
            id="blocker-cloud-failed",
        ),
        pytest.param(
            GPU,
            status(used=4),
            None,
            "wait",
            "No GPU free — your server will wait until one is released",
            False,
            id="not-scaled-full",
        ),
        pytest.param(GPU, status(used=3), None, "free", "1 of 4 GPUs free", False, id="not-scaled-one-free"),
    ],
)
def test_availability(profile, group_status, scaled, state, text, disabled):
    verdict = availability(profile, group_status, scaled)
    assert (verdict.state, verdict.text, verdict.disabled) == (state, text, disabled)
    if disabled:
        assert verdict.reason  # a disabled card always says why


@pytest.mark.parametrize(
    ("group_status", "text"),
    [
        (status(used=4), "No GPU free now: a new node takes about 7 min"),
        (
            status(nodes=0, alloc=0, pending=1, cloud_nodes=1),
            "No GPU free now: a GPU node is already starting (about 7 min)",
        ),
        (status(used=1), "3 of 4 GPUs free"),
    ],
    ids=["grow", "starting", "free-needs-no-boot-time"],
)
def test_the_measured_boot_time_is_on_the_card(group_status, text):
    assert availability(GPU, group_status, GROUP, expected_boot=430.0).text == text


def test_a_full_group_is_explained_by_the_profile_not_the_node_group():
    verdict = availability(GPU, status(nodes=4, alloc=16, used=16), GROUP)
    assert GPU.display_name in verdict.reason and "gpu-v100" not in verdict.reason


def test_blocked_reason_is_the_controllers_message():
    verdict = availability(GPU, status(used=4, pending=1, blocker=CEILING), GROUP)
    assert verdict.reason == CEILING.user_message


def test_counts_never_negative():
    verdict = availability(GPU, status(used=4, pending=3), GROUP)
    assert (verdict.free_gpus, verdict.total_gpus) == (0, 4)


@pytest.mark.parametrize(
    ("roles", "slugs"),
    [
        pytest.param((), ["shared-1g", "shared-2g", "shared-4g"], id="no-roles"),
        pytest.param(("gpu-users",), ["shared-1g", "shared-2g", "shared-4g", "gpu-1"], id="gpu-users"),
    ],
)
def test_report_lists_only_the_users_profiles(roles, slugs):
    body = report(CATALOG, roles, {"gpu-v100": status(used=1)}, [GROUP], {"gpu-v100": 600.0})
    assert list(body["profiles"]) == slugs
    assert body["catalog_version"] == CATALOG.version
    if "gpu-1" in slugs:
        assert body["profiles"]["gpu-1"]["text"] == "3 of 4 GPUs free"


def test_a_card_on_a_group_holding_standby_gpus_says_ready_now():
    standby = dataclasses.replace(status(), standby_gpus=4)
    verdict = availability(GPU, standby, GROUP)
    assert (verdict.state, verdict.text) == ("free", "Ready now: 4 of 4 GPUs free")
    assert availability(GPU, status(), GROUP).text == "4 of 4 GPUs free"  # outside the window

"""The node agent's NodeKeeper follows nodes.json: providerID, VMs that never join, lost VMs."""

from __future__ import annotations

from unittest import mock

import pytest

from sandbox.config import load_topology
from sandbox.nodeagent.nodes import NodeKeeper, node_specs

pytestmark = pytest.mark.unit


def spec(**marks):
    gpu = next(s for s in node_specs(load_topology()) if "gpu-v100" in s["name"])
    return {**gpu, **marks}


@pytest.mark.parametrize(
    ("marks", "now", "created", "lost", "deleted"),
    [
        pytest.param({}, 0.0, True, False, False, id="joins"),
        pytest.param({"never_join": True}, 0.0, False, False, False, id="never-joins"),
        pytest.param({"gone_at": 5.0, "delete_at": 10.0}, 6.0, False, True, False, id="vm-gone-node-kept"),
        pytest.param(
            {"gone_at": 5.0, "delete_at": 10.0}, 11.0, False, False, True, id="node-deleted-after-lag"
        ),
    ],
)
def test_node_keeper(marks, now, created, lost, deleted):
    core = mock.Mock()
    keeper = NodeKeeper(core, mock.Mock(), "127.0.0.1")
    if "gone_at" in marks:
        keeper.reconcile([spec()], 0.0, 10)  # the node as it joined, before its VM went
        core.reset_mock()
    keeper.reconcile([spec(**marks)], now, 10)
    assert core.create_node.called == created
    if created:
        body = core.create_node.call_args.args[0]
        assert body["spec"]["providerID"] == f"openstack:///{spec()['server_id']}"
    assert (spec()["name"] in keeper.gone) == lost
    conditions = [c.args[1]["status"].get("conditions", []) for c in core.patch_node_status.call_args_list]
    assert any(c and c[0]["status"] == "Unknown" for c in conditions) == lost
    assert core.delete_node.called == deleted

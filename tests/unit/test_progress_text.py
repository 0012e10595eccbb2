"""The scheduler's verdict on a waiting GPU pod, in plain words."""

from __future__ import annotations

import pytest

from cern_spawner.progress_text import plain_scheduling_message

pytestmark = pytest.mark.unit
WAITING = "Waiting for a free GPU in gpu-a100: no node can take the server yet."


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        pytest.param(
            "2026-11-27T03:10:40Z [Warning] 0/5 nodes are available: 1 Insufficient nvidia.com/gpu, "
            "4 node(s) didn't match Pod's node affinity/selector. preemption: 0/5 nodes are available: "
            "5 Preemption is not helpful for scheduling.",
            WAITING,
            id="insufficient-gpu",
        ),
        pytest.param(
            "2026-11-27T03:10:44Z [Warning] 0/4 nodes are available: 1 node(s) had untolerated taint(s), "
            "3 node(s) didn't match Pod's node affinity/selector.",
            WAITING,
            id="no-node-of-the-group",
        ),
        pytest.param(
            "2026-11-27T03:10:44Z [Normal] Successfully assigned cern-users/jupyter-bob to node-0",
            None,
            id="scheduled-is-kept",
        ),
        pytest.param("Server requested", None, id="hub-message"),
        pytest.param("", None, id="empty"),
    ],
)
def test_plain_scheduling_message(message, expected):
    assert plain_scheduling_message(message, "gpu-a100") == expected

"""A hub restart in the middle of GPU growth neither repeats nor loses it, and the spawn completes.

The hub is stopped the way a rolling update stops it (SIGTERM, user servers left running) and
started again on the same database. The controller recomputes everything from the cluster and
the cloud, so the restarted hub asks for nothing twice and still returns what was raised; the
spawner waits again for a pod that was still waiting for its node.
"""

from __future__ import annotations

import time

import pytest

from tests.integration.growth import (
    A40,
    A40_GROUP,
    FAST,
    RestartableHub,
    group_state,
    log_mark,
    no_nodes_in,
    set_timings,
    start,
    writes,
)
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.shares("gpu-a40")]
GRACE = 5
# A group of its own, so that this module runs beside the other GPU modules.
GROUP = A40_GROUP
GROUPS = [GROUP]
CATALOG = {"a40.yaml": A40}
# Servers survive the hub, as in production. The 5 s http_timeout is shorter than the node's boot:
# a server resumed after the restart must not depend on JupyterHub's own start-up check waiting.
EXTRA = (
    f"c.GPUScaling.interval = 1\nc.GPUScaling.grace_period = {GRACE}\n"
    "c.JupyterHub.cleanup_servers = False\nc.CERNSpawner.http_timeout = 5\n"
)


@pytest.fixture
def restartable(sandbox, catalog, tmp_path):
    hubs = RestartableHub(tmp_path / "hub", EXTRA, catalog)
    yield hubs.launch
    hubs.close()


def gpu_pods(core, sandbox) -> list:
    return core.list_namespaced_pod(
        sandbox["user_namespace"], label_selector=f"cern-spawner/node-group={GROUP}"
    ).items


def no_group_nodes(core) -> bool:
    return no_nodes_in(core, GROUP)


def test_restart_while_a_node_boots_asks_nothing_twice_and_the_spawn_completes(
    restartable,
    cloud,
    core,
    sandbox,
):
    hub = restartable()  # its controller returns whatever an earlier test left grown
    wait_until(
        lambda: group_state(cloud, GROUP)["node_count"] == 0 and no_group_nodes(core),
        timeout=90,
        what="0 nodes",
    )
    user = "restart-while-booting"
    set_timings(cloud, GROUP, boot_delay=15)
    try:
        mark = log_mark(cloud)
        _, events, _ = start(hub, user, profile="a40-1")
        wait_until(
            lambda: group_state(cloud, GROUP)["node_count"] == 1, timeout=60, what="the resize to be accepted"
        )
        assert group_state(cloud, GROUP)["status"] == "UPDATE_IN_PROGRESS"  # the node is still booting
        # Before the restart the user reads that a node is starting, without the node group's name.
        wait_until(
            lambda: any(e.get("message", "").startswith("A new GPU node is starting") for e in events),
            timeout=30,
            what="the progress to say a node is starting",
        )
        assert not [e for e in events if GROUP in e.get("message", "")], events
        hub.stop()
        assert len(gpu_pods(core, sandbox)) == 1  # the pending pod outlives the hub

        hub = restartable()
        # The restarted hub waits for the pod again (longer than its http_timeout): the node boots,
        # the pod runs, the notebook answers — the spawn completes, from the one resize made before.
        wait_until(
            lambda: hub.api("GET", f"/users/{user}").json()["servers"].get("", {}).get("ready"),
            timeout=180,
            what="the spawn to complete after the restart",
        )
        status = hub.session.get(f"{hub.url}/user/{user}/api/status", timeout=10)
        assert status.status_code == 200, status.text[:300]
        changes = writes(cloud, mark, GROUP)
        assert [r["path"].endswith("/actions/resize") for r in changes] == [True], changes

        hub.api("DELETE", f"/users/{user}/server")
        wait_until(
            lambda: group_state(cloud, GROUP)["node_count"] == 0, timeout=90, what="the group back at 0"
        )
        assert len(writes(cloud, mark, GROUP)) == 2  # the grow, then one shrink
        wait_until(lambda: no_group_nodes(core), timeout=60, what="the node to leave the cluster")
    finally:
        set_timings(cloud, GROUP, **FAST)


def test_restart_keeps_a_running_server_and_its_grown_node(restartable, cloud, core, sandbox):
    hub = restartable()  # its controller returns whatever an earlier test left grown
    wait_until(
        lambda: group_state(cloud, GROUP)["node_count"] == 0 and no_group_nodes(core),
        timeout=90,
        what="0 nodes",
    )
    user = "runs-across-a-restart"
    start(hub, user, profile="a40-1")

    def ready(hub):
        return hub.api("GET", f"/users/{user}").json()["servers"].get("", {}).get("ready")

    wait_until(lambda: ready(hub), timeout=180, what="the notebook on a new GPU node")
    mark = log_mark(cloud)
    hub.stop()

    hub = restartable()
    wait_until(lambda: ready(hub), timeout=60, what="the server known to the restarted hub")
    # Several controller rounds past the grace period: a node running a notebook is never returned.
    time.sleep(GRACE + 5)
    assert group_state(cloud, GROUP)["node_count"] == 1
    assert writes(cloud, mark, GROUP) == []
    status = hub.session.get(f"{hub.url}/user/{user}/api/status", timeout=10)
    assert status.status_code == 200, status.text[:300]

    hub.api("DELETE", f"/users/{user}/server")
    wait_until(lambda: group_state(cloud, GROUP)["node_count"] == 0, timeout=90, what="the group back at 0")
    assert len(writes(cloud, mark, GROUP)) == 1

"""A hub restart in the middle of GPU growth neither repeats nor loses it, and the spawn completes.

The hub is stopped the way a rolling update stops it (SIGTERM, user servers left running) and
started again on the same database. The controller recomputes everything from the cluster and
the cloud, so the restarted hub asks for nothing twice and still returns what was raised; the
spawner waits again for a pod that was still waiting for its node.
"""

from __future__ import annotations

import re
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
# A GPU quota (one GPU at a time) makes the hub account GPU sessions in its database; the test
# then lowers one user's GPU-hours below what they used to prove the refusals.
QUOTAS = "quotas:\n  window: 7d\n  default: {gpus: 1}\n"
CATALOG = {"a40.yaml": A40, "quotas.yaml": QUOTAS}
# carol holds the hub-admins role in the sandbox's single sign-on: she may use the admin spawn form.
ADMIN, PASSWORD = "carol", "cern-demo"
# Servers survive the hub, as in production. The 5 s http_timeout is shorter than the node's boot:
# a server resumed after the restart must not depend on JupyterHub's own start-up check waiting.
EXTRA = (
    f"c.GPUScaling.interval = 1\nc.GPUScaling.grace_period = {GRACE}\n"
    "c.JupyterHub.cleanup_servers = False\nc.CERNSpawner.http_timeout = 5\n"
)
# For the hub that refuses over quota only: the form's refusal comes from inside JupyterHub's spawn,
# and on a loaded machine it must not become the redirect to the pending page JupyterHub sends after
# 10 s. Not for the others: a start request then waits for the whole spawn, node boot included.
PATIENT = "c.JupyterHub.tornado_settings = {'slow_spawn_timeout': 600}\n"


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
        # Its GPU session opened when the start completed, in the restarted hub.
        assert [(s["profile"], s["stop"]) for s in quota(hub, user)["sessions"]] == [("a40-1", None)]
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
    [session] = quota(hub, user)["sessions"]  # its GPU session, opened when the notebook answered
    assert (session["profile"], session["gpus"], session["stop"]) == ("a40-1", 1, None)
    mark = log_mark(cloud)
    hub.stop()
    stopped_at = time.time()

    hub = restartable(PATIENT)
    wait_until(lambda: ready(hub), timeout=60, what="the server known to the restarted hub")
    # The restarted hub reads the same session from its database, still running and still counted.
    after = quota(hub, user)
    assert after["sessions"] == [session]
    assert after["gpus_in_use"] == 1
    assert after["gpu_hours_used"] * 3600 >= stopped_at - session["start"]
    # Several controller rounds past the grace period: a node running a notebook is never returned.
    time.sleep(GRACE + 5)
    assert group_state(cloud, GROUP)["node_count"] == 1
    assert writes(cloud, mark, GROUP) == []
    status = hub.session.get(f"{hub.url}/user/{user}/api/status", timeout=10)
    assert status.status_code == 200, status.text[:300]

    hub.api("DELETE", f"/users/{user}/server")
    wait_until(lambda: not hub.api("GET", f"/users/{user}").json()["servers"], timeout=60, what="the stop")
    [ended] = quota(hub, user)["sessions"]
    assert ended["start"] == session["start"] and ended["stop"] > stopped_at
    refuse_over_quota(hub, user, core, sandbox, (ended["stop"] - ended["start"]) / 3600)
    wait_until(lambda: group_state(cloud, GROUP)["node_count"] == 0, timeout=90, what="the group back at 0")
    assert len(writes(cloud, mark, GROUP)) == 1


def quota(hub, user) -> dict:
    answer = hub.api("GET", f"/cern/quota/{user}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def refuse_over_quota(hub, user, core, sandbox, used: float) -> None:
    """An admin gives `user` half the GPU-hours they used: a GPU start is refused with 403 and the
    numbers through the REST API and through the (admin's) spawn form, and nothing is created."""
    raised = hub.api("PUT", f"/cern/quota/{user}", json={"gpu_hours": used / 2, "reason": "test"})
    assert raised.status_code == 200, raised.text
    words = re.compile(
        r"You have used ([0-9.]+) of ([0-9.]+) GPU-hours in the last 7 days; "
        r"[0-9.]+ GPU-hours? frees at \d\d:\d\d UTC \w+"
    )
    refused = hub.api("POST", f"/users/{user}/server", json={"profile": "a40-1"})
    assert refused.status_code == 403, refused.text
    numbers = words.match(refused.json()["message"])
    assert numbers, refused.json()["message"]
    assert float(numbers[1]) == pytest.approx(used, rel=0.01) and float(numbers[2]) == pytest.approx(
        used / 2, rel=0.01
    )
    admin = hub.login(ADMIN, PASSWORD)
    form = admin.get(f"{hub.url}/hub/spawn/{user}", timeout=30)
    assert 'data-slug="a40-1" data-kind="dedicated" data-quota-off="1"' in form.text  # disabled, with why
    assert words.search(form.text), form.text[-2000:]
    posted = admin.post(
        f"{hub.url}/hub/spawn/{user}",
        data={"profile": "a40-1", "_xsrf": admin.cookies.get("_xsrf")},
        timeout=30,
    )
    assert posted.status_code == 403 and words.search(posted.text), posted.text[-2000:]
    assert hub.api("GET", f"/users/{user}").json()["servers"] == {}
    assert gpu_pods(core, sandbox) == []

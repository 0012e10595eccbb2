"""A hub restart (a rolling update) in the middle of an image build: the build pod is not lost, and
launching again joins it instead of building twice.

JupyterHub records a server only once `start` returns, so the restarted hub shows the launch as
stopped; the build is the expensive part, and it carries on.
"""

from __future__ import annotations

import pytest

from cern_spawner.binder.images import image_name
from sandbox.controlplane import free_port
from sandbox.hubrunner import start_hub
from tests.integration.test_binder_launch import (
    BUILD_SELECTOR,
    PROFILE,
    files_in_server,
    forget_image,
    pod_of,
    progress,
    spawn,
    stop,
)
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.shares("binder-builds")]
EXTRA = "c.JupyterHub.cleanup_servers = False\nc.JupyterHub.slow_spawn_timeout = 0\n"


def build_pods(core, namespace: str) -> list:
    return core.list_namespaced_pod(namespace, label_selector=BUILD_SELECTOR).items


def ours(core, namespace: str, commit: str) -> list:
    """Build pods of this test's commit (other tests' pods in the namespace are theirs)."""
    return [p for p in build_pods(core, namespace) if commit in str(p.metadata.annotations)]


def test_a_hub_restart_during_a_build_keeps_the_build_and_the_next_launch_joins_it(sandbox, core, tmp_path):
    namespace = sandbox["user_namespace"]
    repo = sandbox["git"]["repos"]["slow"]  # its build takes 45 s
    forget_image(sandbox, image_name(sandbox["registry"]["host"], "binder-", repo["url"], repo["commit"]))
    assert not ours(core, namespace, repo["commit"]), (
        "a build pod of this commit from an earlier run is still there"
    )
    # The same ports each time: as a rolling update keeps the hub's address.
    ports = {name: str(free_port()) for name in ("CERN_PROXY_PORT", "CERN_PROXY_API_PORT", "CERN_HUB_PORT")}
    options = {"profile": PROFILE, "binder_repo": repo["url"], "binder_ref": "main"}
    user = "binder-restart"

    def launch():
        try:
            return start_hub(tmp_path / "hub", EXTRA, env=ports)
        except RuntimeError as e:
            pytest.fail(str(e), pytrace=False)

    hub = launch()
    try:
        assert spawn(hub, user, options).status_code == 202
        running = wait_until(
            lambda: [p for p in ours(core, namespace, repo["commit"]) if p.status.phase == "Running"],
            timeout=120,
            what="the build pod to run",
        )
        uid = running[0].metadata.uid
    finally:
        hub.stop()

    # The build outlives the hub that started it.
    assert [p.metadata.uid for p in ours(core, namespace, repo["commit"])] == [uid]
    hub = launch()
    try:
        assert not hub.api("GET", f"/users/{user}").json()["servers"]  # the launch itself is forgotten
        assert spawn(hub, user, options).status_code == 202
        messages, last = progress(hub, user)
        assert last.get("ready"), messages
        assert any(m.startswith("Joining the build already running") for m in messages), messages
        assert not any(m.startswith("Building the image (build pod") for m in messages), messages
        assert pod_of(core, namespace, user).spec.containers[0].image.endswith(f":{repo['commit']}")
        assert "README.md" in files_in_server(hub, user)
        wait_until(
            lambda: not ours(core, namespace, repo["commit"]), timeout=60, what="the joined build pod removed"
        )
        stop(hub, core, namespace, user)
    finally:
        hub.stop()

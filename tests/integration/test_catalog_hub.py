"""The profile catalog in a running hub: role-gated on the server, spread over zones, hot-reloaded."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sandbox.hubrunner import start_hub
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.shares("sso-roles")]
PROFILES = Path(__file__).resolve().parents[2] / "profiles"
# carol holds the hub-admins role in the sandbox's single sign-on, which makes her a hub admin.
ADMIN, PASSWORD = "carol", "cern-demo"
NEW_PROFILE = """
profiles:
  - slug: shared-8g
    display_name: "Shared, 8 GB memory, 4 CPU cores"
    kind: shared
    cpu: {guarantee: 1, limit: 4}
    memory: {guarantee: 4G, limit: 8G}
    node_group: default-worker
"""


@pytest.fixture(scope="module")
def catalog_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("profiles")
    shutil.copy(PROFILES / "default.yaml", directory / "default.yaml")
    return directory


@pytest.fixture(scope="module")
def edit_hub(sandbox, tmp_path_factory, catalog_dir):
    """A hub of its own, serving a catalog directory this module edits."""
    try:
        hub = start_hub(
            tmp_path_factory.mktemp("edit-hub"),
            "c.JupyterHub.allow_named_servers = True\n",
            env={"CERN_PROFILES": str(catalog_dir)},
        )
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    yield hub
    hub.stop()


def user_pods(core, namespace, user):
    return core.list_namespaced_pod(namespace, label_selector=f"hub.jupyter.org/username={user}").items


def stop_and_wait(hub, core, namespace, user):
    hub.api("DELETE", f"/users/{user}/server")
    wait_until(lambda: not user_pods(core, namespace, user), timeout=60, what=f"{user}'s pod removed")


def test_gpu_profile_is_refused_through_the_rest_api_without_the_role(hub, core, sandbox):
    user = "no-gpu-role"
    hub.api("POST", f"/users/{user}")
    refused = hub.api("POST", f"/users/{user}/server", json={"profile": "gpu-1"})
    assert refused.status_code == 403
    assert "gpu-users" in refused.json()["message"]
    assert not user_pods(core, sandbox["user_namespace"], user)
    assert not hub.api("GET", f"/users/{user}").json()["servers"]


@pytest.mark.parametrize(
    ("options", "status", "words"),
    [
        pytest.param({"profile": "shared-3g"}, 400, "no profile 'shared-3g'", id="unknown-profile"),
        pytest.param({"profile": "shared-2g", "image": "x"}, 400, "no option 'image'", id="unknown-option"),
        pytest.param({"profile": ["shared-2g"]}, 400, "string", id="forged-type"),
    ],
)
def test_bad_options_are_a_clean_4xx_and_create_nothing(hub, core, sandbox, options, status, words):
    user = "forger"
    hub.api("POST", f"/users/{user}")
    refused = hub.api("POST", f"/users/{user}/server", json=options)
    assert refused.status_code == status, refused.text
    assert words in refused.json()["message"]
    assert not user_pods(core, sandbox["user_namespace"], user)


def test_a_forged_option_is_logged_as_one_escaped_warning(hub, core, sandbox):
    """Refused input reaches the log quoted, on one line, without a traceback (REST and form paths)."""
    forged = "nope\nERROR forged-by-the-user"
    user = "log-forger"
    hub.api("POST", f"/users/{user}")
    start = len(hub.log.read_text())
    refused = hub.api("POST", f"/users/{user}/server", json={"profile": forged})
    assert refused.status_code == 400, refused.text
    admin = hub.login(ADMIN, PASSWORD)
    form = admin.post(
        f"{hub.url}/hub/spawn/{ADMIN}",
        data={"profile": forged, "_xsrf": admin.cookies.get("_xsrf")},
        timeout=30,
    )
    assert "There is no profile" in form.text  # the form drawn again with the reason
    assert not user_pods(core, sandbox["user_namespace"], user)
    log = hub.log.read_text()[start:]
    assert "Traceback" not in log
    assert not any(line.startswith("ERROR forged") for line in log.splitlines())
    quoted = [line for line in log.splitlines() if "'nope\\x0aERROR forged-by-the-user'" in line]
    assert len(quoted) >= 2, log[-3000:]  # at least one line per path
    assert not any(line.startswith("[E") for line in quoted), quoted


def test_an_admin_starting_a_server_for_a_user_is_held_to_the_users_roles(hub, core, sandbox):
    admin = hub.login(ADMIN, PASSWORD)
    user = "admin-starts-for-me"
    hub.api("POST", f"/users/{user}")
    refused = admin.post(
        f"{hub.url}/hub/api/users/{user}/server",
        json={"profile": "gpu-1"},
        headers={"X-XSRFToken": admin.cookies.get("_xsrf")},
        timeout=30,
    )
    assert refused.status_code == 403, refused.text
    assert not user_pods(core, sandbox["user_namespace"], user)


def test_shared_pods_of_several_users_spread_over_both_zones(hub, core, sandbox):
    namespace = sandbox["user_namespace"]
    users = [f"spread-{index}" for index in range(4)]
    for user in users:
        hub.api("POST", f"/users/{user}")

    def spawn(user):
        response = hub.api("POST", f"/users/{user}/server", json={"profile": "shared-1g"})
        assert response.status_code in (201, 202), response.text

    with ThreadPoolExecutor(len(users)) as pool:
        list(pool.map(spawn, users))
    try:
        pods = wait_until(
            lambda: (
                (found := [p for u in users for p in user_pods(core, namespace, u) if p.spec.node_name])
                and len(found) == len(users)
                and found
            ),
            timeout=120,
            what="all spread pods scheduled",
        )
        zones = {
            core.read_node(p.spec.node_name).metadata.labels["topology.kubernetes.io/zone"] for p in pods
        }
        groups = {
            core.read_node(p.spec.node_name).metadata.labels["magnum.openstack.org/nodegroup"] for p in pods
        }
        assert zones == {"cern-geneva-a", "cern-geneva-b"}
        assert groups == {"default-worker"}
    finally:
        for user in users:
            stop_and_wait(hub, core, namespace, user)


def test_named_servers_are_held_to_the_same_roles(edit_hub, core, sandbox):
    user = "named-server-user"
    edit_hub.api("POST", f"/users/{user}")
    refused = edit_hub.api("POST", f"/users/{user}/servers/training", json={"profile": "gpu-1"})
    assert refused.status_code == 403, refused.text
    assert "gpu-users" in refused.json()["message"]
    assert not user_pods(core, sandbox["user_namespace"], user)


def form_for(hub, browser) -> str:
    response = browser.get(f"{hub.url}/hub/spawn", timeout=30)
    response.raise_for_status()
    return response.text


def test_a_valid_edit_appears_in_the_form_and_a_broken_one_is_refused(edit_hub, catalog_dir):
    alice = edit_hub.login("alice", PASSWORD)
    admin = edit_hub.login(ADMIN, PASSWORD)
    assert "Shared, 2 GB memory, 1 CPU core" in form_for(edit_hub, alice)
    assert "Shared, 8 GB memory" not in form_for(edit_hub, alice)
    assert "Dedicated 1 GPU" not in form_for(edit_hub, alice)  # alice has no gpu-users role

    (catalog_dir / "extra.yaml").write_text(NEW_PROFILE)
    # The catalog promises edits within 5 s; the wait is that promise, not a benchmark.
    wait_until(lambda: "Shared, 8 GB memory" in form_for(edit_hub, alice), timeout=5, what="the new profile")

    (catalog_dir / "extra.yaml").write_text(
        NEW_PROFILE.replace("node_group: default-worker", "node_group: gpu-v10")
    )

    def refused():
        status = admin.get(f"{edit_hub.url}/hub/api/cern/catalog", timeout=10).json()["catalogs"][0]
        return status["refused_edit"] and status

    status = wait_until(refused, timeout=5, what="the broken edit to be refused")
    problems = status["refused_edit"]["problems"]
    assert any("extra.yaml:" in p and "gpu-v10" in p and "gpu-v100" in p for p in problems), problems
    assert "shared-8g" in status["profiles"]  # the last good catalog is still served
    assert "Shared, 8 GB memory" in form_for(edit_hub, alice)
    assert "Profile catalog edit refused" in form_for(edit_hub, admin)
    assert "Profile catalog edit refused" not in form_for(edit_hub, alice)
    # Only admins may see the status.
    assert alice.get(f"{edit_hub.url}/hub/api/cern/catalog", timeout=10).status_code == 403


def test_a_spawn_uses_an_edited_profile(edit_hub, core, sandbox, catalog_dir):
    (catalog_dir / "extra.yaml").write_text(NEW_PROFILE)
    user = "edited-profile-user"
    edit_hub.api("POST", f"/users/{user}")

    def started():
        response = edit_hub.api("POST", f"/users/{user}/server", json={"profile": "shared-8g"})
        return response.status_code in (201, 202) and response

    wait_until(started, timeout=5, what="shared-8g to be accepted")
    namespace = sandbox["user_namespace"]
    try:
        pod = wait_until(lambda: user_pods(core, namespace, user), timeout=60, what="the pod")[0]
        limits = pod.spec.containers[0].resources.limits
        assert limits["cpu"] == "4"
        assert pod.metadata.labels["cern-spawner/profile"] == "shared-8g"
    finally:
        stop_and_wait(edit_hub, core, namespace, user)

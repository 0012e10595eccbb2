"""Spawning each seed profile through the hub's REST API, on the sandbox, through the real proxy."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client

from cern_spawner.catalog import load_catalog
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.shares("gpu-v100")]
PROFILES = load_catalog([Path(__file__).resolve().parents[2] / "profiles"]).profiles


@pytest.mark.parametrize("profile", PROFILES, ids=[p.slug for p in PROFILES])
def test_profile_spawns_serves_through_proxy_and_stops(hub, core, sandbox, profile):
    user = f"spawn-{profile.slug}"
    assert hub.api("POST", f"/users/{user}").status_code in (201, 409)
    # Roles are JupyterHub groups (single sign-on fills them at login); this user never logs in,
    # so an admin grants the role through the API.
    for role in profile.allowed_roles[:1]:
        assert hub.api("POST", f"/groups/{role}").status_code in (201, 409)
        assert hub.api("POST", f"/groups/{role}/users", json={"users": [user]}).status_code == 200
    started = hub.api("POST", f"/users/{user}/server", json={"profile": profile.slug})
    assert started.status_code in (201, 202), started.text

    def ready():
        model = hub.api("GET", f"/users/{user}").json()
        server = model["servers"].get("", {})
        return server.get("ready") and server

    wait_until(ready, timeout=120, what=f"{user}'s server to be ready")
    status = hub.session.get(f"{hub.url}/user/{user}/api/status", timeout=10)
    assert status.status_code == 200, status.text[:300]
    assert "started" in status.json()

    namespace = sandbox["user_namespace"]
    pods = core.list_namespaced_pod(namespace, label_selector=f"hub.jupyter.org/username={user}").items
    assert len(pods) == 1
    pod = pods[0]
    assert pod.metadata.labels["cern-spawner/profile"] == profile.slug
    node = core.read_node(pod.spec.node_name)
    assert node.metadata.labels["magnum.openstack.org/nodegroup"] == profile.node_group
    limits = pod.spec.containers[0].resources.limits
    if profile.gpus:
        assert limits["nvidia.com/gpu"] == str(profile.gpus)
        assert pod.status.qos_class == "Guaranteed"
    else:
        assert "nvidia.com/gpu" not in limits
        assert pod.status.qos_class == "Burstable"

    stopped = hub.api("DELETE", f"/users/{user}/server")
    assert stopped.status_code in (202, 204)

    def pod_gone():
        try:
            core.read_namespaced_pod(pod.metadata.name, namespace)
            return False
        except client.ApiException as e:
            return e.status == 404

    wait_until(pod_gone, timeout=60, what=f"{pod.metadata.name} to be removed")
    assert not hub.api("GET", f"/users/{user}").json()["servers"]

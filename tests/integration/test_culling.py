"""Per-profile culling on the sandbox: of two servers started together, the idle GPU one is stopped
after its profile's short idle_timeout while the shared one stays; its owner saw the warning on the
hub's home page first, and the hub's metrics count the cull."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from sandbox import keycloak
from sandbox.hubrunner import start_hub
from tests.waiting import wait_until

# user-bob: its pods carry bob's username label in the shared user namespace, where other modules
# find bob's pod by that label (a run failed when a binder test met this module's bob pod).
pytestmark = [pytest.mark.integration, pytest.mark.shares("gpu-v100", "user-bob")]

GPU_IDLE = 15  # seconds: the GPU profile's idle_timeout in this test's catalog
CATALOG = f"""
node_groups:
  default-worker: {{zones: [cern-geneva-a, cern-geneva-b]}}
  gpu-v100:
    gpu: {{resource: nvidia.com/gpu, per_node: 4, product: Tesla-V100-PCIE-32GB}}
    taint: {{key: nvidia.com/gpu, value: present, effect: NoSchedule}}
culling:
  shared: {{idle_timeout: 28800}}
  dedicated: {{idle_timeout: 3600, max_age: 86400}}
profiles:
  - slug: cull-shared
    display_name: Shared
    kind: shared
    cpu: {{guarantee: 0.1, limit: 0.5}}
    memory: {{guarantee: 256M, limit: 512M}}
    node_group: default-worker
  - slug: cull-v100
    display_name: One V100, culled soon
    kind: dedicated
    cpu: 0.5
    memory: 1G
    gpus: 1
    node_group: gpu-v100
    idle_timeout: {GPU_IDLE}
"""
# Rounds every second; activity protects for 1 s only (the GPU profile's 15 s is the short timeout).
EXTRA = "c.Culling.interval = 1\nc.Culling.recent = 1\nc.JupyterHub.allow_named_servers = True\n"
USER = "bob"  # a single sign-on user (he logs in to read the warning)


@pytest.fixture(scope="module")
def culling_hub(sandbox, tmp_path_factory):
    directory = tmp_path_factory.mktemp("culling-hub")
    catalog = directory / "profiles.yaml"
    catalog.write_text(CATALOG)
    try:
        hub = start_hub(directory, EXTRA, env={"CERN_PROFILES": str(catalog)})
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    yield hub
    for server in ("gpu", "cpu"):
        hub.api("DELETE", f"/users/{USER}/servers/{server}")
    hub.stop()


def servers(hub) -> dict:
    return hub.api("GET", f"/users/{USER}").json()["servers"]


def test_idle_gpu_server_is_culled_and_the_shared_one_of_the_same_age_stays(culling_hub):
    hub = culling_hub
    assert hub.api("POST", f"/users/{USER}").status_code in (201, 409)  # before its first login
    # The two servers at once (each POST waits up to 10 s for its start), so they are of the same
    # age; the owner logs in (single sign-on) meanwhile, to read the warning within the 15 s.
    with ThreadPoolExecutor(3) as pool:
        login = pool.submit(hub.login, USER, keycloak.DEMO_PASSWORD)
        answers = [
            pool.submit(hub.api, "POST", f"/users/{USER}/servers/{server}", json={"profile": profile})
            for server, profile in (("gpu", "cull-v100"), ("cpu", "cull-shared"))
        ]
        browser = login.result()
        answers = [answer.result() for answer in answers]
    assert [a.status_code in (201, 202) for a in answers] == [True, True], [a.text for a in answers]

    def gpu_ready():
        return servers(hub).get("gpu", {}).get("ready")

    wait_until(gpu_ready, timeout=120, what="the GPU server to be ready")
    home = browser.get(f"{hub.url}/hub/home", timeout=30).text
    assert re.search(r"Your GPU server &#39;gpu&#39; will be stopped in (less than a minute|\d+ min)", home)
    assert "server &#39;cpu&#39;" not in home  # 8 hours away: no warning

    def gpu_culled_cpu_idle_as_long():
        """The GPU server gone, and the shared one idle for longer than the GPU timeout (and two
        culler rounds): it would have been culled too under the GPU profile's policy."""
        cpu = servers(hub).get("cpu", {})
        if "gpu" in servers(hub) or not cpu.get("ready"):
            return None
        idle = datetime.now(UTC) - datetime.fromisoformat(cpu["last_activity"])
        return idle.total_seconds() > GPU_IDLE + 2 and cpu

    cpu = wait_until(
        gpu_culled_cpu_idle_as_long, timeout=120, what="the GPU cull, the shared server idle as long"
    )
    assert servers(hub)["cpu"]["ready"]  # still there: its profile's 8 hours apply
    assert cpu["user_options"] == {"profile": "cull-shared"}
    metrics = hub.session.get(f"{hub.url}/hub/metrics", timeout=30).text
    assert 'cern_spawner_culls_total{profile="cull-v100",reason="idle"} 1.0' in metrics
    assert 'cern_spawner_culls_total{profile="cull-shared"' not in metrics

"""The operator guide's "existing hub" snippet, as written: docs/operator/z2jh-values.yaml's
`hub.extraConfig` added to a hub of the sandbox that has nothing of cern-spawner in its configuration
(KubeSpawner's and the SSO's settings only, as a z2jh hub would), then a profile started through the
hub's API and served through its proxy."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sandbox.hubrunner import start_hub
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

DOCS = Path(__file__).resolve().parents[2] / "docs" / "operator"
VALUES = DOCS / "z2jh-values.yaml"
USER = "existing-hub"
# The ConfigMap's stand-in: one shared profile, no scaled node group (this hub grows nothing).
CATALOG = """\
node_groups:
  default-worker: {}
profiles:
  - slug: snippet-shared
    display_name: "Shared, from the existing hub's catalog"
    kind: shared
    cpu: {guarantee: 0.1, limit: 0.5}
    memory: {guarantee: 256M, limit: 512M}
    node_group: default-worker
"""


@pytest.fixture(scope="module")
def existing_hub(sandbox, tmp_path_factory):
    snippets = yaml.safe_load(VALUES.read_text())["hub"]["extraConfig"]
    assert snippets, f"{VALUES} has no hub.extraConfig"
    # The page shows the same lines first, for hubs without z2jh.
    assert all(code.strip() in (DOCS / "existing-hub.md").read_text() for code in snippets.values())
    profiles = tmp_path_factory.mktemp("profiles")
    (profiles / "catalog.yaml").write_text(CATALOG)
    # z2jh's own configuration sets KubeSpawner as the spawner; the ConfigMap is mounted at
    # CERNSpawner.profiles_path, here a folder of this test. Then extraConfig, in key order as z2jh runs it.
    extra = (
        "c.JupyterHub.spawner_class = 'kubespawner.KubeSpawner'\n"
        f"c.CERNSpawner.profiles_path = [{str(profiles)!r}]\n"
        + "".join(snippets[key] + "\n" for key in sorted(snippets))
    )
    try:
        hub = start_hub(tmp_path_factory.mktemp("existing-hub"), extra, env={"CERN_HUB_UNWIRED": "1"})
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    yield hub
    hub.stop()


def test_the_snippet_makes_a_plain_hub_spawn_a_catalog_profile(existing_hub, core, sandbox):
    hub = existing_hub
    assert hub.api("POST", f"/users/{USER}").status_code in (201, 409)
    started = hub.api("POST", f"/users/{USER}/server", json={"profile": "snippet-shared"})
    assert started.status_code in (201, 202), started.text

    def ready():
        server = hub.api("GET", f"/users/{USER}").json()["servers"].get("", {})
        return server.get("ready") and server

    wait_until(ready, timeout=120, what=f"{USER}'s server to be ready")
    status = hub.session.get(f"{hub.url}/user/{USER}/api/status", timeout=10)
    assert status.status_code == 200, status.text[:300]
    (pod,) = core.list_namespaced_pod(
        sandbox["user_namespace"], label_selector=f"hub.jupyter.org/username={USER}"
    ).items
    # CERNSpawner made it, from the mounted catalog's profile.
    assert pod.metadata.labels["cern-spawner/profile"] == "snippet-shared"
    assert pod.spec.security_context.run_as_non_root is True
    # The snippet's other parts: CERN SSO as the authenticator, and the cern handlers, mounted (a
    # 404 otherwise) and refusing this service token, which lacks read:hub.
    login = hub.session.get(f"{hub.url}/hub/oauth_login", allow_redirects=False, timeout=10)
    assert login.status_code == 302 and "/protocol/openid-connect/auth" in login.headers["Location"]
    catalog = hub.api("GET", "/cern/catalog")
    assert catalog.status_code == 403 and "profile catalog" in catalog.json()["message"], catalog.text
    assert hub.api("DELETE", f"/users/{USER}/server").status_code in (202, 204)
    wait_until(
        lambda: not hub.api("GET", f"/users/{USER}").json()["servers"], timeout=60, what=f"{USER}'s stop"
    )

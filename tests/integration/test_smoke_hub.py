"""`cern-spawner smoke` against the session's hub on the sandbox: a shared profile starts, answers
through the real proxy and stops; the GPU profile is refused to a smoke user without the GPU role,
and its row says so. The smoke runs as the hub service cern-smoke, registered as the chart does:
four scopes on its own user only (docs/operator/smoke.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cern_spawner.catalog import load_catalog

pytestmark = [pytest.mark.integration, pytest.mark.shares("user-cern-smoke")]
ROOT = Path(__file__).resolve().parents[2]
USER = "cern-smoke"


@pytest.fixture(scope="module")
def token_file(hub):
    """The token of the session hub's cern-smoke service (tests/conftest.py registers it with
    cern_spawner.smoke.service, as the chart does): the user exists from the hub's start."""
    assert hub.api("GET", f"/users/{USER}").status_code == 200
    return Path(hub.log).parent / "smoke-token"


def test_smoke_reports_each_profile(hub, core, sandbox, token_file, tmp_path):
    catalog = load_catalog([ROOT / "profiles"])
    # One shared profile: each start takes seconds, and test_hub_spawn starts every profile already;
    # this proves the command, its service's scopes and its report.
    shared = [p.slug for p in catalog.profiles if p.kind == "shared"][:1]
    gpu = next(p for p in catalog.profiles if p.gpus)
    chosen = [arg for slug in [*shared, gpu.slug] for arg in ("--profile", slug)]
    done = subprocess.run(
        [sys.executable, "-m", "cern_spawner", "smoke", "--url", hub.url, "--token-file", str(token_file)]
        + ["--user", USER, "--catalog", str(ROOT / "profiles"), "--out", str(tmp_path), "--label", "run=test"]
        + chosen,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1, done.stderr  # the GPU profile was not ready
    report = json.loads((tmp_path / "smoke.json").read_text())
    rows = {row["profile"]: row for row in report["rows"]}
    assert list(rows) == [*shared, gpu.slug]
    assert (report["ok"], report["run"], report["user"]) == (False, "test", USER)
    for slug in shared:
        row = rows[slug]
        assert row["result"] == "ready", row
        assert row["seconds_to_ready"] > 0
        node = core.read_node(row["node"])  # a real node of the profile's group
        assert node.metadata.labels["magnum.openstack.org/nodegroup"] == catalog.profile(slug).node_group
    # The smoke user lacks the GPU role: the hub refuses before anything starts, and says why.
    assert rows[gpu.slug]["result"] == "refused"
    assert gpu.slug in rows[gpu.slug]["message"]
    assert rows[gpu.slug]["node"] is None
    page = (tmp_path / "smoke.html").read_text()
    assert page.count('<tr class="ready">') == len(shared) and page.count('<tr class="bad">') == 1
    assert f"| {gpu.slug} | refused |" in (tmp_path / "smoke.md").read_text()
    assert not hub.api("GET", f"/users/{USER}").json()["servers"]  # everything stopped


def test_the_smoke_token_reaches_its_own_user_only(hub, token_file):
    headers = {"Authorization": f"token {token_file.read_text()}"}
    other = hub.session.post(f"{hub.url}/hub/api/users/spawn-shared-1g/server", headers=headers, timeout=10)
    assert other.status_code in (403, 404), other.text
    assert hub.session.get(f"{hub.url}/hub/api/users", headers=headers, timeout=10).status_code == 403

"""The chart's optional smoke CronJob, checked on `helm template` output (no cluster): off by default;
on, the hub registers the service cern-smoke with only the four server scopes on the smoke user, and
the job runs `cern-spawner smoke` with that service's token mounted as a file, never in the
environment, without a Kubernetes API token."""

from __future__ import annotations

import pytest

from tests.integration.chart import DEFAULT_VALUES, find, names, render, resolve_helm
from tests.integration.test_helm import RESTRICTED_CONTAINER, run_hub_config, settings_of

pytestmark = pytest.mark.integration
ON = ["--set", "smoke.enabled=true"]
SCOPES = ["read:servers", "start:servers", "delete:servers", "access:servers"]


@pytest.fixture(scope="module")
def helm():
    return resolve_helm()


def hub_mounts(docs) -> dict[str, str]:
    pod = find(docs, "Deployment", "hub-cern-spawner-hub")["spec"]["template"]["spec"]
    return {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}


def job_pod(docs) -> dict:
    return find(docs, "CronJob", "hub-cern-spawner-smoke")["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def test_off_by_default(helm):
    docs = render(helm, DEFAULT_VALUES)
    assert not [d for d in docs if d["kind"] == "CronJob"]
    assert "hub-cern-spawner-smoke" not in names(docs, "Secret")
    assert "smoke" not in hub_mounts(docs)
    assert settings_of(docs)["smoke"] is None


def test_the_job_smokes_as_a_service_with_four_scopes_on_its_user(helm, tmp_path):
    docs = render(
        helm,
        DEFAULT_VALUES,
        "hub",
        *ON,
        *["--set", "smoke.user=probe", "--set", "smoke.profiles={shared-1g,shared-2g}"],
        *["--set", "smoke.labels.kubernetes=1.31", "--set", "smoke.schedule=*/30 * * * *"],
    )
    cron = find(docs, "CronJob", "hub-cern-spawner-smoke")["spec"]
    assert (cron["schedule"], cron["concurrencyPolicy"]) == ("*/30 * * * *", "Forbid")
    pod = job_pod(docs)
    (container,) = pod["containers"]
    assert container["args"][:2] == ["cern-spawner", "smoke"]
    args = set(container["args"][2:])
    assert {"--user=probe", "--profile=shared-1g", "--profile=shared-2g", "--label=kubernetes=1.31"} <= args
    assert {
        "--token-file=/etc/cern-smoke/token",
        "--catalog=/etc/cern-spawner/profiles",
        "--out=/reports",
    } <= args
    assert any(a.startswith("--url=http://proxy-public:") for a in args)
    assert not [
        e for e in container.get("env", []) if "token" in str(e).lower()
    ]  # a file, never the environment
    assert pod["automountServiceAccountToken"] is False
    assert RESTRICTED_CONTAINER.items() <= container["securityContext"].items()
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["token"]["secret"]["secretName"] == "hub-cern-spawner-smoke"
    assert volumes["reports"] == {"name": "reports", "emptyDir": {}}
    # The hub holds the same token, as the service cern-smoke with only these scopes on the user.
    assert hub_mounts(docs)["smoke"] == "/etc/cern-spawner/secrets/smoke"
    config, secrets = run_hub_config(docs, tmp_path)
    token = (secrets / "smoke" / "token").read_text()
    assert len(token) > 40
    assert {"name": "cern-smoke", "api_token": token} in config.JupyterHub.services
    roles = {r["name"]: r for r in config.JupyterHub.load_roles}
    assert roles["cern-smoke"] == {
        "name": "cern-smoke",
        "scopes": [f"{scope}!user=probe" for scope in SCOPES],
        "services": ["cern-smoke"],
    }
    assert roles["cern-smoke-user"]["users"] == ["probe"]  # JupyterHub creates the user at startup


def test_reports_go_to_the_given_volume(helm):
    docs = render(
        helm, DEFAULT_VALUES, "hub", *ON, "--set", "smoke.reportVolume.persistentVolumeClaim.claimName=r"
    )
    reports = {v["name"]: v for v in job_pod(docs)["volumes"]}["reports"]
    assert reports == {"name": "reports", "persistentVolumeClaim": {"claimName": "r"}}

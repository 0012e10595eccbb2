"""`cern-spawner doctor` against the sandbox: it passes on the sandbox's own hub config, and each
check fails, naming itself and the fix, when its part of the world is broken (a node group the cloud
lacks, an image tag the registry lacks, a wrong issuer, an unreachable git host, rejected cloud
credentials, and a service account missing a permission the chart's RBAC would grant).

Only reads: the doctor changes nothing in the sandbox. gpu-v100 is shared because its GPUs and the
cloud's size of it are what the checks read (other modules grow and fill it)."""

from __future__ import annotations

import base64
import json
import uuid
from itertools import takewhile
from pathlib import Path

import kubernetes_asyncio.config.kube_config as kube_config
import pytest
import requests
import yaml

from cern_spawner.cli import main
from cern_spawner.doctor import report
from cern_spawner.doctor.access import BUILDS, NOTEBOOKS, check_access, required
from cern_spawner.doctor.cloud import Cloud, check_login
from cern_spawner.doctor.command import kube_client
from cern_spawner.doctor.plan import Clients, examine
from cern_spawner.doctor.settings import SSO, Binder, DoctorSettings, from_config
from cern_spawner.doctor.web import check_sso
from sandbox.binaries import resolve as resolve_binaries
from sandbox.builder import oci
from sandbox.controlplane import free_port
from tests.conftest import PSA_RESTRICTED, ROOT
from tests.integration.chart import BINDER_VALUES, render, resolve_helm, run
from tests.integration.test_helm import run_hub_config, settings_of

pytestmark = [pytest.mark.integration, pytest.mark.shares("gpu-v100")]

REPOSITORY = "doctor/notebook"


def catalog(image: str, extra: str = "") -> str:
    return f"""
node_groups:
  default-worker: {{zones: [cern-geneva-a, cern-geneva-b]}}
  gpu-v100:
    gpu: {{resource: nvidia.com/gpu, per_node: 4}}
    taint: {{key: nvidia.com/gpu, value: present, effect: NoSchedule}}
    scaling: {{backend: magnum, cluster: sandbox, mode: resize, min_nodes: 1, max_nodes: 4}}
{extra}
profiles:
  - {{slug: shared, display_name: Shared, kind: shared, cpu: 0.5, memory: 1G, node_group: default-worker,
     image: "{image}"}}
  - {{slug: v100, display_name: V100, kind: dedicated, cpu: 1, memory: 2G, gpus: 1, node_group: gpu-v100,
     image: "{image}"}}
"""


@pytest.fixture(scope="module")
def image(sandbox) -> str:
    """A one-layer image pushed to the sandbox's registry, as the profiles' image."""
    host = sandbox["registry"]["host"]
    layer = b"doctor"
    config = oci.encode(oci.image_config(oci.sha256(layer), {}, "2026-01-01T00:00:00Z"))
    manifest = oci.encode(oci.image_manifest(config, [layer]))
    oci.push(requests.Session(), oci.Reference(host, REPOSITORY, "1"), config, [layer], manifest)
    return f"{host}/{REPOSITORY}:1"


def test_doctor_passes_on_the_sandbox_hub_config(sandbox, image, tmp_path, monkeypatch, capsys):
    """The command as an operator runs it: the hub's config file (the sandbox's jupyterhub_config.py,
    its profiles from CERN_PROFILES), every check, the JSON, exit status 0. In this process: the
    config file sets $KUBECONFIG and kubernetes_asyncio's default, put back afterwards."""
    (tmp_path / "profiles.yaml").write_text(catalog(image))
    monkeypatch.setenv("CERN_PROFILES", str(tmp_path))
    monkeypatch.setenv("CERN_SANDBOX_STATE", sandbox["state_dir"])
    monkeypatch.setenv("KUBECONFIG", sandbox["kubeconfig"])
    monkeypatch.setenv("CERN_HUB_DIR", str(tmp_path / "hub"))  # where the config keeps its key file
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", kube_config.KUBE_CONFIG_DEFAULT_LOCATION)
    status = main(["doctor", "--config", str(ROOT / "jupyterhub_config.py"), "--json"])
    out = capsys.readouterr().out
    assert status == 0, out
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    git = sandbox["git"]["url"].split("://")[1]
    expected = {
        "catalog", "node group default-worker", "node group gpu-v100", "GPUs gpu-v100", "cloud login",
        f"image {image}", "SSO discovery", "permissions", "Binder registry", f"git {git}",
    }  # fmt: skip
    assert set(checks) == expected
    assert {c["result"] for c in checks.values()} == {"ok"}, checks
    assert "3 usable nodes" in checks["node group default-worker"]["detail"]
    assert "Magnum cluster sandbox has it (1 node, min 1, max 4" in checks["node group gpu-v100"]["detail"]


def sandbox_settings(sandbox, profiles: Path, **changes) -> DoctorSettings:
    """The settings the sandbox's hub config makes, given explicitly."""
    state = Path(sandbox["state_dir"])
    values = dict(
        profiles=(str(profiles),),
        namespace=sandbox["user_namespace"],
        default_image="unused",
        openstack_cloud="sandbox",
        clouds_yaml=str(state / "clouds.yaml"),
        sso=SSO(sandbox["keycloak"]["issuer"]),
        binder=Binder(
            registry=sandbox["registry"]["host"],
            http_registries=(sandbox["registry"]["host"],),
            build_namespace=sandbox["user_namespace"],
            insecure_origins=(sandbox["git"]["url"],),
        ),
    )
    return DoctorSettings(**{**values, **changes})


async def test_each_check_fails_for_its_own_cause_and_says_the_fix(sandbox, image, tmp_path):
    """One run with four things broken at once: each failing row names its check and its fix, and
    the checks whose part still works pass."""
    (tmp_path / "profiles.yaml").write_text(
        catalog(
            image.replace(":1", ":nope"),
            extra="  gpu-missing:\n    gpu: {per_node: 1}\n"
            "    scaling: {backend: magnum, cluster: sandbox, min_nodes: 0, max_nodes: 2}",
        )
    )
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    good = sandbox_settings(sandbox, tmp_path)
    settings = sandbox_settings(
        sandbox,
        tmp_path,
        sso=SSO(sandbox["keycloak"]["issuer"] + "-typo"),
        binder=Binder(**{**good.binder.__dict__, "insecure_origins": (sandbox["git"]["url"], closed)}),
    )
    api, why = await kube_client(sandbox["kubeconfig"], "")
    try:
        results = await examine(settings, Clients(api, why), per_check=8)
    finally:
        await api.close()
    table = report.table(results, width=120)
    status = {r.name: r.status for r in results}
    wrong_image = image.replace(":1", ":nope")
    failing = {"node group gpu-missing", f"image {wrong_image}", "SSO discovery", f"git {closed[7:]}"}
    assert {name for name, s in status.items() if s == "FAIL"} == failing, table
    assert status["GPUs gpu-missing"] == "skip"
    assert report.exit_status(results) == 1
    assert table.splitlines()[-1].startswith("4 of ")
    fixes = {
        "node group gpu-missing": "openstack coe nodegroup create sandbox gpu-missing",
        f"image {wrong_image}": "push the image, or correct its name or tag",
        "SSO discovery": "CERNAuthenticator.issuer_url",
        f"git {closed[7:]}": "BinderConfig.allowed_hosts",
    }
    by_name = {r.name: r for r in results}
    for name, words in fixes.items():
        assert words in by_name[name].fix, by_name[name]
        lines = table[table.index(f"\n{name} ") + 1 :].splitlines()
        row = [lines[0], *takewhile(lambda line: line.startswith(" "), lines[1:])]
        assert any(line.strip().startswith("fix: ") for line in row), (
            f"{name}'s fix is not in its row:\n{table}"
        )
    assert "does not exist in the cloud" in by_name["node group gpu-missing"].detail
    assert f"has no {REPOSITORY}:nope" in by_name[f"image {wrong_image}"].detail


async def test_rejected_cloud_credentials_fail_the_login(sandbox, tmp_path):
    clouds = yaml.safe_load((Path(sandbox["state_dir"]) / "clouds.yaml").read_text())
    clouds["clouds"]["sandbox"]["auth"]["application_credential_secret"] = "wrong"
    (tmp_path / "clouds.yaml").write_text(yaml.safe_dump(clouds))
    result = await check_login(Cloud("sandbox", str(tmp_path / "clouds.yaml"), api_timeout=8))
    assert result.status == "FAIL"
    assert "credentials were rejected" in result.detail
    assert "application credential" in result.fix


@pytest.mark.parametrize("keys, status", [("certs", "ok"), ("nothing-here", "FAIL")], ids=["keys", "no-keys"])
async def test_explicit_sso_endpoints_check_the_signing_keys(sandbox, keys, status):
    """With authorize, token and jwks set, the hub never reads the discovery document: the keys are
    checked instead, and a wrong jwks URL is named with its own fix."""
    issuer = sandbox["keycloak"]["issuer"]
    endpoints = f"{issuer}/protocol/openid-connect"
    sso = SSO(issuer, f"{endpoints}/auth", f"{endpoints}/token", f"{endpoints}/{keys}")
    result = await check_sso(sso, request_timeout=8)
    assert (result.name, result.status) == ("SSO keys", status), result
    if status == "FAIL":
        assert "CERNAuthenticator.jwks_uri" in result.fix


@pytest.fixture
def chart_rbac(sandbox, core):
    """The chart's hub RBAC (Binder launches on) applied for a release, and a kubeconfig of its
    service account; deleted after the test."""
    kubectl = [str(resolve_binaries()["kubectl"]), "--kubeconfig", sandbox["kubeconfig"]]
    made = {role: f"doc-{role[:5]}-{uuid.uuid4().hex[:6]}" for role in ("release", "users", "builds")}
    for name in made.values():
        core.create_namespace({"metadata": {"name": name, "labels": PSA_RESTRICTED}})
    settings = (
        f"singleuser.namespace={made['users']},binder.builder.namespace={made['builds']},"
        "binder.builder.createNamespace=false"
    )
    docs = render(resolve_helm(), BINDER_VALUES, made["release"], "--set", settings)
    rbac = [
        d
        for d in docs
        if d["kind"] in ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")
    ]
    for doc in rbac:
        if doc["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            doc["metadata"].setdefault("namespace", made["release"])
    run(*kubectl, "apply", "-f", "-", input=yaml.safe_dump_all(rbac))
    account = next(d["metadata"]["name"] for d in rbac if d["kind"] == "ServiceAccount")
    token = core.create_namespaced_service_account_token(
        account, made["release"], {"spec": {"expirationSeconds": 600}}
    ).status.token
    admin = yaml.safe_load(Path(sandbox["kubeconfig"]).read_text())
    cluster = admin["clusters"][0]["cluster"]
    if "certificate-authority" in cluster:  # inline it: the new file lives elsewhere
        cluster = {"server": cluster["server"], "certificate-authority-data": base64.b64encode(
            Path(cluster["certificate-authority"]).read_bytes()).decode()}  # fmt: skip
    kubeconfig = Path(sandbox["state_dir"]) / f"doctor-{made['release']}.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "hub",
        "clusters": [{"name": "sandbox", "cluster": cluster}],
        "users": [{"name": "hub", "user": {"token": token}}],
        "contexts": [{"name": "hub", "context": {"cluster": "sandbox", "user": "hub"}}],
    }))  # fmt: skip
    yield made, kubeconfig, kubectl, rbac
    kubeconfig.unlink()
    cluster_scoped = [
        f"{d['kind'].lower()}/{d['metadata']['name']}" for d in rbac if d["kind"].startswith("Cluster")
    ]
    run(*kubectl, "delete", "--ignore-not-found", *cluster_scoped)
    for name in made.values():
        core.delete_namespace(name)


async def test_the_chart_grants_what_the_doctor_asks_and_a_missing_grant_is_named(chart_rbac):
    """HUB_ACCESS is the one list: the chart's RBAC grants all of it (Binder and GPU growth on), and
    without the notebooks' RoleBinding the permissions check fails naming what is denied."""
    made, kubeconfig, kubectl, rbac = chart_rbac
    namespaces = {NOTEBOOKS: made["users"], BUILDS: made["builds"]}
    wanted = required(binder=True, scaling=True)
    api, why = await kube_client(str(kubeconfig), "")
    assert api is not None, why
    try:
        granted = await check_access(api, wanted, namespaces, "permissions")
        assert granted.status == "ok", granted
        assert f"as system:serviceaccount:{made['release']}:" in granted.detail
        binding = next(
            d for d in rbac if d["kind"] == "RoleBinding" and d["metadata"]["namespace"] == made["users"]
        )
        run(*kubectl, "--namespace", made["users"], "delete", "rolebinding", binding["metadata"]["name"])
        denied = await check_access(api, wanted, namespaces, "permissions")
    finally:
        await api.close()
    assert denied.status == "FAIL"
    assert (
        f"create pods in namespace {made['users']} (KubeSpawner starts and follows notebooks)"
        in denied.detail
    )
    assert "list nodes" not in denied.detail  # the ClusterRole's grants are still there
    assert "templates/rbac.yaml" in denied.fix


def test_settings_from_the_charts_hub_config(tmp_path):
    """Inside the hub's pod the doctor reads what the chart's jupyterhub_config.py makes of the
    chart's values and mounted secrets: the same catalog, namespace, clouds.yaml, SSO, registry
    credentials and git hosts as the hub."""
    docs = render(
        resolve_helm(), BINDER_VALUES, "hub", "--set", "openstack.cloud=cern,openstack.cloudsYaml=x: 1"
    )
    config, secrets = run_hub_config(docs, tmp_path)
    settings = from_config(config)
    values = yaml.safe_load(BINDER_VALUES.read_text())
    assert settings.profiles == ("/etc/cern-spawner/profiles",)
    assert settings.namespace == settings_of(docs)["namespace"]
    assert (settings.openstack_cloud, settings.clouds_yaml) == (
        "cern",
        str(secrets / "openstack" / "clouds.yaml"),
    )
    assert settings.sso.issuer == "https://auth.cern.ch/auth/realms/cern"
    assert settings.binder.registry == values["binder"]["registry"]
    assert settings.registry_auth == str(secrets / "registry" / ".dockerconfigjson")
    assert settings.binder.allowed_hosts == tuple(values["binder"]["allowedHosts"])

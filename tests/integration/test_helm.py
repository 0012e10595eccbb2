"""The Helm chart (helm/cern-spawner) against helm itself and the sandbox's real kube-apiserver.

helm is built from its Go module and cached (sandbox/helm.py); a helm that cannot be built fails
these tests, never skips them.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from cern_spawner.catalog.loader import load_catalog
from sandbox import binaries
from sandbox import helm as helm_build
from sandbox.errors import SandboxError
from tests.conftest import PSA_RESTRICTED, ROOT
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

CHART = ROOT / "helm" / "cern-spawner"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
RESTRICTED_CONTAINER = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


@pytest.fixture(scope="module")
def helm() -> Path:
    try:
        return helm_build.resolve()
    except SandboxError as error:
        pytest.fail(f"helm could not be built: {error}", pytrace=False)


@pytest.fixture(scope="module")
def kubectl(sandbox) -> list[str]:
    """The sandbox's kubectl (the control plane's build) as the cluster admin."""
    return [str(binaries.resolve()["kubectl"]), "--kubeconfig", sandbox["kubeconfig"]]


def run(*command, check=True, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=120, **kwargs)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, command))} failed:\n{result.stdout}\n{result.stderr}", pytrace=False)
    return result


def render(helm: Path, values: Path | None, namespace: str = "hub", *extra: str) -> list[dict]:
    args = ["-f", values] if values else []
    out = run(helm, "template", "hub", CHART, "--namespace", namespace, *args, *extra).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def find(docs: list[dict], kind: str, name: str) -> dict:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name} not rendered exactly once"
    return matches[0]


def names(docs: list[dict], kind: str) -> set[str]:
    return {d["metadata"]["name"] for d in docs if d["kind"] == kind}


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda v: v.stem if v else "chart-defaults")
def test_lint_strict(helm, values):
    run(helm, "lint", "--strict", CHART, *(["-f", values] if values else []))


def test_hub_and_proxy_deployments(helm):
    docs = render(helm, CHART / "ci" / "default-values.yaml")
    hub = find(docs, "Deployment", "hub-cern-spawner-hub")["spec"]
    assert hub["replicas"] == 1 and hub["strategy"] == {"type": "Recreate"}
    pod = hub["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/hub/health"
    assert container["livenessProbe"]["httpGet"]["path"] == "/hub/health"
    assert container["resources"]["requests"]
    assert "env" not in container, "the hub gets its secrets as files, never through the environment"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["profiles"] == "/etc/cern-spawner/profiles"
    assert mounts["crypt-key"] == "/etc/cern-spawner/secrets/crypt-key"
    assert all("subPath" not in m for m in container["volumeMounts"]), "subPath mounts never update"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "hub-cern-spawner-hub-db"
    proxy = find(docs, "Deployment", "hub-cern-spawner-proxy")["spec"]["template"]["spec"]
    assert proxy["containers"][0]["image"].startswith("quay.io/jupyterhub/configurable-http-proxy:")
    for spec in (pod, proxy):
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in spec["containers"]:
            assert RESTRICTED_CONTAINER.items() <= c["securityContext"].items()
    service = find(docs, "Service", "proxy-public")
    assert service["spec"]["type"] == "LoadBalancer"
    assert {"hub-cern-spawner-hub", "hub-cern-spawner-proxy"} <= names(docs, "PodDisruptionBudget")
    assert len(names(docs, "NetworkPolicy")) == 3


def test_hub_config_reads_mounted_files(helm):
    docs = render(helm, CHART / "ci" / "default-values.yaml")
    config = find(docs, "ConfigMap", "hub-cern-spawner-hub-config")["data"]
    text = config["jupyterhub_config.py"]
    compile(text, "jupyterhub_config.py", "exec")
    for needed in (
        "start_with_hub(c)",
        "HUB_TEMPLATE_DIR",
        "extra_handlers = handlers",
        "c.CryptKeeper.keys = [secret(",
        'profiles_path = ["/etc/cern-spawner/profiles"]',
    ):
        assert needed in text
    assert "os.environ" not in text


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda v: v.stem)
def test_profiles_configmap_is_a_valid_catalog(helm, values, tmp_path):
    docs = render(helm, values)
    files = find(docs, "ConfigMap", "hub-cern-spawner-profiles")["data"]
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert load_catalog([tmp_path]).profiles


def test_existing_secrets_are_referenced_not_made(helm):
    docs = render(helm, CHART / "ci" / "gpu-magnum-existing-secrets-values.yaml")
    assert names(docs, "Secret") == {"hub-cern-spawner-hub"}  # only the generated proxy token
    volumes = find(docs, "Deployment", "hub-cern-spawner-hub")["spec"]["template"]["spec"]["volumes"]
    secrets = {v["name"]: v["secret"]["secretName"] for v in volumes if "secret" in v}
    assert secrets == {
        "hub-secret": "hub-cern-spawner-hub",
        "crypt-key": "hub-crypt-key",
        "oidc": "hub-oidc",
        "openstack": "hub-openstack",
        "registry": "hub-registry",
        "db": "hub-db",
    }
    service = find(docs, "Service", "proxy-public")["metadata"]["annotations"]
    assert service["loadbalancer.openstack.org/load-balancer-id"] == "3f1c9a52-6a8e-4c2b-9d3e-1b2c3d4e5f60"
    role = find(docs, "Role", "hub-cern-spawner-hub")
    assert role["metadata"]["namespace"] == "jupyter-users"


def test_ingress(helm):
    docs = render(helm, CHART / "ci" / "ingress-values.yaml")
    ingress = find(docs, "Ingress", "hub-cern-spawner")["spec"]
    assert ingress["rules"][0]["host"] == "hub.example.cern.ch"
    assert ingress["tls"][0]["secretName"] == "hub-tls"
    assert find(docs, "Service", "proxy-public")["spec"]["type"] == "ClusterIP"


@pytest.mark.parametrize(
    "setting, message",
    [
        ("hub.db.type=mysql", "'sqlite-pvc'"),
        ("hub.db.type=postgres", "set hub.db.postgres.existingSecret"),
        ("hub.cryptKey.value=short", "/hub/cryptKey/value"),
        ("ingress.enabled=true", "set ingress.host"),
        ("ingress.enabled=true,ingress.host=h.cern.ch", "set proxy.service.type=ClusterIP"),
        ("openstack.cloud=cern", "set openstack.existingSecret"),
        ("hub.replicas=2", "additional properties 'replicas'"),
    ],
)
def test_schema_says_how_to_fix_a_mistake(helm, setting, message):
    result = run(helm, "template", "hub", CHART, "--set", setting, check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


@pytest.fixture
def user_namespace(core):
    name = f"u-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name, "labels": PSA_RESTRICTED}})
    yield name
    core.delete_namespace(name)


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda v: v.stem)
def test_api_server_accepts_the_manifests(helm, kubectl, namespace, user_namespace, values):
    docs = render(helm, values, namespace, "--set", f"singleuser.namespace={user_namespace}")
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding"}
    for doc in docs:  # as `helm install` does: namespaced objects without one go to the release's
        if doc["kind"] not in cluster_scoped:
            doc["metadata"].setdefault("namespace", namespace)
    manifests = yaml.safe_dump_all(docs)
    applied = run(*kubectl, "apply", "--dry-run=server", "-f", "-", input=manifests).stdout
    assert applied.count("(server dry run)") == len(docs)
    assert "deployment.apps/hub-cern-spawner-hub created (server dry run)" in applied
    assert "role.rbac.authorization.k8s.io/hub-cern-spawner-hub created (server dry run)" in applied


@pytest.fixture(scope="module")
def installed(helm, sandbox, core):
    """A real `helm install` of the defaults into a fresh namespace enforcing Pod Security `restricted`."""
    namespace = f"helm-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": namespace, "labels": PSA_RESTRICTED}})
    # The sandbox provisions no volumes: a volume bound in advance to the hub's database claim.
    volume = f"{namespace}-hub-db"
    core.create_persistent_volume(
        {
            "metadata": {"name": volume},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "hostPath": {"path": f"/tmp/{volume}"},
                "claimRef": {"namespace": namespace, "name": "hub-cern-spawner-hub-db"},
            },
        }
    )
    kube = ["--kubeconfig", sandbox["kubeconfig"], "--namespace", namespace]
    try:
        run(helm, "install", "hub", CHART, *kube, "-f", CHART / "ci" / "default-values.yaml")
        yield namespace
        run(helm, "uninstall", "hub", *kube, "--wait", "--timeout", "60s")
    finally:
        core.delete_namespace(namespace)
        core.delete_persistent_volume(volume)


def test_helm_install(kubectl, installed, core):
    kubectl = [*kubectl, "--namespace", installed]
    kinds = "deploy,svc,sa,role,rolebinding,pvc,cm,secret,pdb,netpol"
    listed = run(*kubectl, "--namespace", installed, "get", kinds, "-o", "name").stdout
    for expected in (
        "deployment.apps/hub-cern-spawner-hub",
        "deployment.apps/hub-cern-spawner-proxy",
        "service/proxy-public",
        "service/hub-cern-spawner-hub",
        "serviceaccount/hub-cern-spawner-hub",
        "role.rbac.authorization.k8s.io/hub-cern-spawner-hub",
        "persistentvolumeclaim/hub-cern-spawner-hub-db",
        "configmap/hub-cern-spawner-profiles",
        "secret/hub-cern-spawner-crypt-key",
        "poddisruptionbudget.policy/hub-cern-spawner-hub",
        "networkpolicy.networking.k8s.io/hub-cern-spawner-singleuser",
    ):
        assert expected in listed
    # The ReplicaSets' pods passed Pod Security `restricted` (the namespace enforces it): they exist.
    for component in ("hub", "proxy"):
        wait_until(
            lambda c=component: (
                core.list_namespaced_pod(installed, label_selector=f"app.kubernetes.io/component={c}").items
            ),
            timeout=30,
            what=f"the {component} pod created under Pod Security restricted",
        )


def test_hub_starts_with_the_production_config(sandbox, installed, core):
    """The hub pod runs jupyterhub with the chart's config, mounted files and database volume.

    It cannot become Ready in the sandbox (no Service DNS nor in-cluster API address for pods, and
    the proxy's image entrypoint is not modelled): this checks how far it gets.
    """
    (pod,) = wait_until(
        lambda: core.list_namespaced_pod(installed, label_selector="app.kubernetes.io/component=hub").items,
        timeout=30,
        what="the hub pod",
    )
    pod_dir = f"{installed}_{pod.metadata.name}_{pod.metadata.uid}"
    logs = Path(sandbox["state_dir"]) / "logs" / "pods" / pod_dir

    def started():
        log = logs / "hub.log"
        text = log.read_text() if log.is_file() else ""
        return "Not starting proxy" in text and text

    text = wait_until(started, timeout=60, what="the hub to load its config and open its database")
    assert "Using Spawner: cern_spawner.spawner.CERNSpawner" in text
    assert "Using Authenticator: cern_spawner.auth.authenticator.CERNAuthenticator" in text
    assert "Running stamp_revision" in text  # a new sqlite database on the claim


@pytest.mark.parametrize(
    "verb, resource, where, allowed",
    [
        ("create", "pods", "user", True),
        ("delete", "pods", "user", True),
        ("watch", "pods", "user", True),
        ("create", "persistentvolumeclaims", "user", True),
        ("update", "secrets", "user", True),
        ("create", "services", "user", True),
        ("list", "events", "user", True),
        ("list", "nodes", None, True),
        ("watch", "nodes", None, True),
        ("delete", "nodes", None, False),
        ("patch", "nodes", None, False),
        ("get", "secrets", "kube-system", False),
        ("create", "pods", "kube-system", False),
        ("create", "clusterroles", None, False),
        ("create", "rolebindings", "user", False),
        ("create", "deployments", "user", False),
        ("get", "configmaps", "user", False),
        ("create", "pods --subresource=exec", "user", False),
        ("list", "secrets", "all", False),
    ],
)
def test_hub_service_account_permissions(kubectl, installed, verb, resource, where, allowed):
    account = f"system:serviceaccount:{installed}:hub-cern-spawner-hub"
    scope = {None: [], "all": ["--all-namespaces"], "user": ["--namespace", installed]}.get(where)
    scope = ["--namespace", where] if scope is None else scope
    result = run(
        *kubectl, "auth", "can-i", verb, resource,
        f"--as={account}", *scope, check=False,
    )  # fmt: skip
    assert result.stdout.strip() == ("yes" if allowed else "no"), (verb, resource, where, result.stderr)


def test_generated_secrets_survive_an_upgrade(helm, sandbox, core, installed):
    def generated():
        hub = core.read_namespaced_secret("hub-cern-spawner-hub", installed).data
        crypt = core.read_namespaced_secret("hub-cern-spawner-crypt-key", installed).data
        return hub["proxy-token"], hub["cookie-secret"], crypt["crypt-key"]

    before = generated()
    kube = ["--kubeconfig", sandbox["kubeconfig"], "--namespace", installed]
    values = CHART / "ci" / "default-values.yaml"
    run(helm, "upgrade", "hub", CHART, *kube, "-f", values, "--set", "hub.extraConfig=# changed")
    assert generated() == before, "an upgrade must keep the proxy token, cookie secret and crypt key"

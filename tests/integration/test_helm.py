"""The Helm chart (helm/cern-spawner) against helm itself and the sandbox's real kube-apiserver.

helm is built from its Go module and cached (sandbox/helm.py); a helm that cannot be built fails
these tests, never skips them.
"""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from cern_spawner.binder.build import build_pod_manifest
from cern_spawner.binder.config import RESTRICTED_CONTEXT, BinderConfig
from cern_spawner.binder.launch import registry_client
from cern_spawner.catalog.loader import load_catalog
from sandbox import binaries
from sandbox import helm as helm_build
from sandbox.errors import SandboxError
from tests.conftest import PSA_RESTRICTED, ROOT
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

CHART = ROOT / "helm" / "cern-spawner"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
BINDER_VALUES = CHART / "ci" / "binder-values.yaml"
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
        ("binder.registry=registry.cern.ch", "there are no push credentials: set registry.existingSecret"),
        ("binder.registry=https://registry.cern.ch", "at '/binder/registry'"),
        ("binder.imagePrefix=Binder/", "at '/binder/imagePrefix'"),
        ("binder.allowedHosts[0]=https://github.com", "at '/binder/allowedHosts/0'"),
        ("binder.perUserBuildLimit=0", "at '/binder/perUserBuildLimit'"),
        ("binder.buildTimeout=0", "at '/binder/buildTimeout'"),
        ("binder.builder.image=repo2docker", "at '/binder/builder/image'"),
        ("binder.builder.engineSocket=docker.sock", "at '/binder/builder/engineSocket'"),
        ("binder.builder.privileged=true", "additional properties 'privileged'"),
        (
            "binder.registry=r.cern.ch,registry.existingSecret=reg,binder.builder.buildkitAddress=tcp://bk:1234",
            'set binder.builder.engineSocket=""',
        ),
        (
            "binder.registry=r.cern.ch,registry.existingSecret=reg,binder.defaultProfile=gpu-9",
            'binder.defaultProfile "gpu-9" is not a profile slug in profiles.files (slugs: shared-2g)',
        ),
        (
            "binder.registry=r.cern.ch,registry.dockerConfigJson=not-json",
            "registry.dockerConfigJson has no entry for binder.registry r.cern.ch",
        ),
    ],
)
def test_schema_says_how_to_fix_a_mistake(helm, setting, message):
    result = run(helm, "template", "hub", CHART, "--set", setting, check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def settings_of(docs: list[dict]) -> dict:
    return json.loads(find(docs, "ConfigMap", "hub-cern-spawner-hub-config")["data"]["settings.json"])


def rules_of(role: dict) -> dict[str, list[str]]:
    return {resource: rule["verbs"] for rule in role["rules"] for resource in rule["resources"]}


def test_binder_is_off_by_default(helm):
    docs = render(helm, CHART / "ci" / "ingress-values.yaml")  # push credentials alone turn nothing on
    assert settings_of(docs)["binder"] is None
    assert "pods/log" not in rules_of(find(docs, "Role", "hub-cern-spawner-hub"))
    assert "hub-cern-spawner-binder-build" not in names(docs, "NetworkPolicy")
    assert [
        d["metadata"].get("namespace")
        for d in docs
        if d["kind"] == "Secret" and "registry" in d["metadata"]["name"]
    ] == [None]


def run_hub_config(docs: list[dict], root: Path, existing: dict | None = None):
    """The chart's jupyterhub_config.py run on the rendered settings, with the mounted files under
    root: the chart's Secrets, and `existing` ({name: {key: text}}) for those it only names."""
    from traitlets.config import Config

    data = find(docs, "ConfigMap", "hub-cern-spawner-hub-config")["data"]
    config_dir, secrets = root / "etc-jupyterhub", root / "secrets"
    config_dir.mkdir()
    (config_dir / "settings.json").write_text(data["settings.json"])
    made = {
        d["metadata"]["name"]: {
            key: base64.b64decode(value).decode() for key, value in d.get("data", {}).items()
        }
        for d in docs
        if d["kind"] == "Secret" and "namespace" not in d["metadata"]
    }
    made.update(existing or {})
    pod = find(docs, "Deployment", "hub-cern-spawner-hub")["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    for volume in pod["volumes"]:
        if "secret" in volume:  # as the kubelet mounts them: one file per key
            where = secrets / Path(mounts[volume["name"]]).relative_to("/etc/cern-spawner/secrets")
            where.mkdir(parents=True)
            for key, text in made[volume["secret"]["secretName"]].items():
                (where / key).write_text(text)
    (secrets / "hub" / "cookie-secret").write_text("ab" * 32)  # generated at install, not by template
    (secrets / "hub" / "proxy-token").write_text("token")
    text = data["jupyterhub_config.py"]
    for fixed, local in (("/etc/jupyterhub", config_dir), ("/etc/cern-spawner/secrets", secrets)):
        assert f'Path("{fixed}")' in text
        text = text.replace(f'Path("{fixed}")', f'Path("{local}")')
    config = Config()
    exec(
        compile(text, "jupyterhub_config.py", "exec"), {"get_config": lambda: config, "load_subconfig": print}
    )
    return config, secrets


def test_binder_values_reach_binder_config(helm, tmp_path):
    docs = render(helm, BINDER_VALUES)
    settings = settings_of(docs)["binder"]
    assert settings["registry"] == "registry.example.cern.ch"
    config, secrets = run_hub_config(docs, tmp_path)
    binder = BinderConfig(config=config)  # its validators run here, as in the hub
    assert binder.enabled
    assert binder.registry == "registry.example.cern.ch"
    assert binder.image_prefix == "cern-spawner/binder-"
    assert binder.allowed_hosts == ["github.com", "gitlab.cern.ch", "*.web.cern.ch"]
    assert binder.default_profile == "shared-2g"
    assert binder.per_user_build_limit == 2
    assert binder.build_timeout == 1800
    assert binder.builder_image == "registry.example.cern.ch/cern-spawner/builder:2025.12.0"
    assert binder.engine_socket == ""
    assert binder.buildkit_address == "tcp://buildkitd.binder-builds.svc:1234"
    assert binder.build_security_context == RESTRICTED_CONTEXT  # no socket: no root
    assert binder.build_resources == {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"cpu": "4", "memory": "8Gi"},
    }
    assert binder.build_node_selector == {"magnum.openstack.org/nodegroup": "default-worker"}
    assert binder.build_tolerations == [{"key": "builds", "operator": "Exists", "effect": "NoSchedule"}]
    # Build pods run (and mount the push Secret) in the notebooks' namespace.
    assert binder.build_namespace == "jupyter-users"
    assert binder.push_secret == "hub-cern-spawner-registry"
    # The hub's lookups read the mounted push Secret: Docker's config.json, with this registry's entry.
    assert binder.registry_credentials_path == str(secrets / "registry" / ".dockerconfigjson")
    client = registry_client(binder)
    assert (client.username, client.password) == ("robot", "not-a-real-token")
    routes = [pattern for pattern, *_ in config.JupyterHub.extra_handlers]
    assert r"/binder/v2/(.+)" in routes and len(routes) > 1, routes  # the admin handlers are kept
    hub = find(docs, "Deployment", "hub-cern-spawner-hub")["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in hub["containers"][0]["volumeMounts"]}
    assert mounts["registry"] == "/etc/cern-spawner/secrets/registry"


def test_binder_defaults_leave_the_hub_defaults(helm, tmp_path):
    setting = "auth.clientSecret=x,binder.registry=r.cern.ch,registry.existingSecret=reg"
    docs = render(helm, None, "hub", "--set", setting)
    config, _ = run_hub_config(docs, tmp_path, existing={"reg": {".dockerconfigjson": '{"auths": {}}'}})
    binder, defaults = BinderConfig(config=config), BinderConfig()
    assert binder.builder_image == defaults.builder_image  # the hub's pinned repo2docker release
    assert binder.build_resources == defaults.build_resources
    assert binder.engine_socket == "/var/run/docker.sock"
    assert binder.build_security_context == {"runAsUser": 0, "runAsNonRoot": False}
    assert binder.allowed_hosts == ["github.com", "gitlab.cern.ch"]
    assert (binder.push_secret, binder.build_namespace) == ("reg", "hub")


def test_binder_rbac_in_the_notebooks_namespace(helm):
    docs = render(helm, BINDER_VALUES)
    role = find(docs, "Role", "hub-cern-spawner-hub")
    assert role["metadata"]["namespace"] == "jupyter-users"
    assert rules_of(role)["pods/log"] == ["get"]
    assert "hub-cern-spawner-hub-builds" not in names(docs, "Role")


def test_binder_rbac_in_a_build_namespace(helm):
    docs = render(helm, BINDER_VALUES, "hub", "--set", "binder.builder.namespace=binder-builds")
    assert "pods/log" not in rules_of(find(docs, "Role", "hub-cern-spawner-hub"))
    builds = find(docs, "Role", "hub-cern-spawner-hub-builds")
    assert builds["metadata"]["namespace"] == "binder-builds"
    assert rules_of(builds) == {"pods": ["get", "list", "create", "delete"], "pods/log": ["get"]}
    binding = find(docs, "RoleBinding", "hub-cern-spawner-hub-builds")
    assert binding["metadata"]["namespace"] == "binder-builds"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "hub-cern-spawner-hub", "namespace": "hub"}
    ]
    assert settings_of(docs)["binder"]["buildNamespace"] == "binder-builds"
    policy = find(docs, "NetworkPolicy", "hub-cern-spawner-binder-build")
    assert policy["metadata"]["namespace"] == "binder-builds"


def test_binder_push_secret_where_build_pods_run(helm):
    docs = render(helm, BINDER_VALUES)
    made = [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == "hub-cern-spawner-registry"]
    # One for the hub's mount (release namespace), one for the build pods' (notebooks' namespace).
    assert sorted(d["metadata"].get("namespace", "") for d in made) == ["", "jupyter-users"]
    assert made[0]["data"] == made[1]["data"] and {d["type"] for d in made} == {
        "kubernetes.io/dockerconfigjson"
    }
    # Build pods in the release namespace: the one Secret serves both.
    docs = render(helm, BINDER_VALUES, "hub", "--set", "singleuser.namespace=")
    assert [
        d["metadata"].get("namespace") for d in docs if d["metadata"]["name"] == "hub-cern-spawner-registry"
    ] == [None]
    # An existing Secret is named, never made: you create it in both namespaces.
    docs = render(
        helm, BINDER_VALUES, "hub", "--set", "registry.dockerConfigJson=,registry.existingSecret=hub-registry"
    )
    assert not [d for d in docs if d["kind"] == "Secret" and "registry" in d["metadata"]["name"]]
    assert settings_of(docs)["binder"]["pushSecret"] == "hub-registry"


def test_binder_build_pods_network_policy(helm):
    docs = render(helm, BINDER_VALUES)
    policy = find(docs, "NetworkPolicy", "hub-cern-spawner-binder-build")
    assert policy["metadata"]["namespace"] == "jupyter-users"
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": {"app.kubernetes.io/component": "binder-build"}}
    assert spec["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in spec  # nothing connects to them
    internet = spec["egress"][1]["to"][0]["ipBlock"]
    assert internet == {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32", "172.16.0.0/12"]}
    assert {"port": 53, "protocol": "UDP"} in spec["egress"][0]["ports"]
    # Against the labels the hub gives build pods: this policy selects them, the notebooks' one
    # (and the hub's ingress from notebooks) does not, so it neither blocks nor opens them.
    manifest = build_pod_manifest(
        BinderConfig(registry="r.cern.ch"), repo_url="https://github.com/a/b", ref="HEAD",
        commit="0" * 40, image="r.cern.ch/binder-b:" + "0" * 40, user="alice", namespace="jupyter-users",
    )  # fmt: skip
    labels = manifest["metadata"]["labels"].items()

    def selects(selector):
        return selector["matchLabels"].items() <= labels

    assert selects(spec["podSelector"])
    assert not selects(find(docs, "NetworkPolicy", "hub-cern-spawner-singleuser")["spec"]["podSelector"])
    hub_from = find(docs, "NetworkPolicy", "hub-cern-spawner-hub")["spec"]["ingress"][0]["from"]
    assert not any(selects(peer["podSelector"]) for peer in hub_from)
    docs = render(helm, BINDER_VALUES, "hub", "--set", "binder.builder.networkPolicy.enabled=false")
    assert "hub-cern-spawner-binder-build" not in names(docs, "NetworkPolicy")


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


@contextmanager
def helm_installed(helm, sandbox, core, values: Path, *extra: str):
    """A real `helm install` into a fresh namespace enforcing Pod Security `restricted`; its name."""
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
        run(helm, "install", "hub", CHART, *kube, "-f", values, *extra)
        yield namespace
        run(helm, "uninstall", "hub", *kube, "--wait", "--timeout", "60s")
    finally:
        core.delete_namespace(namespace)
        core.delete_persistent_volume(volume)


@pytest.fixture(scope="module")
def installed(helm, sandbox, core):
    """The defaults, installed."""
    with helm_installed(helm, sandbox, core, CHART / "ci" / "default-values.yaml") as namespace:
        yield namespace


def hub_log_until_proxy(sandbox, core, namespace: str) -> str:
    """The hub pod's log once the hub has loaded its config and opened its database.

    It cannot become Ready in the sandbox (no Service DNS nor in-cluster API address for pods, and
    the proxy's image entrypoint is not modelled): this is how far it gets.
    """
    (pod,) = wait_until(
        lambda: core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/component=hub").items,
        timeout=30,
        what="the hub pod",
    )
    logs = (
        Path(sandbox["state_dir"]) / "logs" / "pods" / f"{namespace}_{pod.metadata.name}_{pod.metadata.uid}"
    )

    def started():
        log = logs / "hub.log"
        text = log.read_text() if log.is_file() else ""
        return "Not starting proxy" in text and text

    return wait_until(started, timeout=60, what="the hub to load its config and open its database")


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
    """The hub pod runs jupyterhub with the chart's config, mounted files and database volume."""
    text = hub_log_until_proxy(sandbox, core, installed)
    assert "Using Spawner: cern_spawner.spawner.CERNSpawner" in text
    assert "Using Authenticator: cern_spawner.auth.authenticator.CERNAuthenticator" in text
    assert "Running stamp_revision" in text  # a new sqlite database on the claim


def test_hub_starts_with_binder_launches(helm, sandbox, core, kubectl):
    """With Binder launches on, the same hub loads its config (BinderConfig, the binder handlers,
    the mounted push Secret) as far as the sandbox lets it, and its account may read build logs."""
    with helm_installed(helm, sandbox, core, BINDER_VALUES, "--set", "singleuser.namespace=") as namespace:
        # Past the config (an error in it stops jupyterhub before this point).
        text = hub_log_until_proxy(sandbox, core, namespace)
        assert "Using Spawner: cern_spawner.spawner.CERNSpawner" in text
        account = f"system:serviceaccount:{namespace}:hub-cern-spawner-hub"
        assert can_i(kubectl, account, "get", "pods --subresource=log", ["--namespace", namespace])
        policies = run(*kubectl, "--namespace", namespace, "get", "netpol", "-o", "name").stdout.split()
        assert "networkpolicy.networking.k8s.io/hub-cern-spawner-binder-build" in policies


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
        ("patch", "nodes", None, True),  # to cordon a node it is about to give back, and undo it
        ("list", "pods", "all", True),  # a GPU held by any namespace's pod is not free
        ("delete", "pods", "all", False),
        ("get", "secrets", "kube-system", False),
        ("create", "pods", "kube-system", False),
        ("create", "clusterroles", None, False),
        ("create", "rolebindings", "user", False),
        ("create", "deployments", "user", False),
        ("get", "configmaps", "user", False),
        ("create", "pods --subresource=exec", "user", False),
        ("get", "pods --subresource=log", "user", False),  # build logs only with Binder launches on
        ("list", "secrets", "all", False),
    ],
)
def test_hub_service_account_permissions(kubectl, installed, verb, resource, where, allowed):
    account = f"system:serviceaccount:{installed}:hub-cern-spawner-hub"
    scope = {None: [], "all": ["--all-namespaces"], "user": ["--namespace", installed]}.get(where)
    scope = ["--namespace", where] if scope is None else scope
    assert can_i(kubectl, account, verb, resource, scope) == allowed


def can_i(kubectl, account: str, verb: str, resource: str, scope: list[str]) -> bool:
    """A SubjectAccessReview through `kubectl auth can-i`; resource may carry --subresource=…"""
    result = run(
        *kubectl, "auth", "can-i", verb, *resource.split(),
        f"--as={account}", *scope, check=False,
    )  # fmt: skip
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), (verb, resource, scope, result.stdout, result.stderr)
    return answer == "yes"


@pytest.fixture
def binder_namespaces(core):
    """Release, notebooks' and builds' namespaces, deleted after the test."""
    made = {role: f"{role[:5]}-{uuid.uuid4().hex[:8]}" for role in ("release", "users", "builds")}
    for name in made.values():
        core.create_namespace({"metadata": {"name": name, "labels": PSA_RESTRICTED}})
    yield made
    for name in made.values():
        core.delete_namespace(name)


@pytest.mark.parametrize("own_build_namespace", [False, True], ids=["builds-with-notebooks", "own-namespace"])
def test_binder_hub_permissions(helm, kubectl, binder_namespaces, own_build_namespace):
    """The hub's RBAC with Binder launches, applied for real and asked through SubjectAccessReviews."""
    ns = binder_namespaces
    builds = ns["builds"] if own_build_namespace else ns["users"]
    settings = (
        f"singleuser.namespace={ns['users']},binder.builder.namespace={builds if own_build_namespace else ''}"
    )
    docs = render(helm, BINDER_VALUES, ns["release"], "--set", settings)
    for doc in docs:
        if doc["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            doc["metadata"].setdefault("namespace", ns["release"])
    # Everything, build namespace's Secret, Role and NetworkPolicy included, passes the API server.
    applied = run(*kubectl, "apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(docs)).stdout
    assert applied.count("(server dry run)") == len(docs)
    rbac = [d for d in docs if d["kind"] in ("ServiceAccount", "Role", "RoleBinding")]
    run(*kubectl, "apply", "-f", "-", input=yaml.safe_dump_all(rbac))
    account = f"system:serviceaccount:{ns['release']}:hub-cern-spawner-hub"

    def allowed(verb, resource, namespace):
        return can_i(kubectl, account, verb, resource, ["--namespace", namespace])

    for verb in ("get", "list", "create", "delete"):
        assert allowed(verb, "pods", builds), verb
    assert allowed("get", "pods --subresource=log", builds)
    assert not allowed("create", "pods --subresource=exec", builds)
    assert not allowed("create", "pods --subresource=attach", builds)
    assert not allowed("get", "pods --subresource=log", ns["release"])
    assert allowed("create", "pods", ns["users"])  # notebooks, as before
    if own_build_namespace:
        assert not allowed("get", "pods --subresource=log", ns["users"])  # notebooks' logs stay unread
        assert not allowed("watch", "pods", builds)  # the hub polls its build pods
        assert not allowed("get", "secrets", builds)  # the push Secret is only mounted by the pods


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

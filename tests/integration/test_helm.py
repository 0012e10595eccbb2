"""The Helm chart (helm/cern-spawner) against helm itself and the sandbox's real kube-apiserver.

helm is built from its Go module and cached (sandbox/helm.py); a helm that cannot be built fails
these tests, never skips them.
"""

from __future__ import annotations

import base64
import datetime
import json
import socket
import ssl
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cern_spawner.binder.build import build_pod_manifest
from cern_spawner.binder.config import RESTRICTED_CONTEXT, BinderConfig
from cern_spawner.binder.launch import registry_client
from cern_spawner.catalog.loader import load_catalog
from sandbox import binaries
from tests.conftest import PSA_RESTRICTED
from tests.integration.chart import (
    BINDER_VALUES,
    CHART,
    CI_VALUES,
    DEFAULT_VALUES,
    find,
    names,
    render,
    resolve_helm,
    run,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

RESTRICTED_CONTAINER = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


@pytest.fixture(scope="module")
def helm() -> Path:
    return resolve_helm()


@pytest.fixture(scope="module")
def kubectl(sandbox) -> list[str]:
    """The sandbox's kubectl (the control plane's build) as the cluster admin."""
    return [str(binaries.resolve()["kubectl"]), "--kubeconfig", sandbox["kubeconfig"]]


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
    # The script only reads settings.json and hands the mounted secrets' directory to the package.
    for needed in (
        'Path("/etc/jupyterhub")',
        "apply_chart_settings(c, json.loads(",
        'Path("/etc/cern-spawner/secrets")',
        "load_subconfig(",
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
        ("binder.tokenLaunches[0]=https://github.com/cern/*", "at '/binder/tokenLaunches/0'"),
        ("binder.perUserBuildLimit=0", "at '/binder/perUserBuildLimit'"),
        ("binder.maxConcurrentBuilds=0", "at '/binder/maxConcurrentBuilds'"),
        ("binder.buildTimeout=0", "at '/binder/buildTimeout'"),
        ("binder.builder.image=repo2docker", "at '/binder/builder/image'"),
        ("binder.builder.engineSocket=docker.sock", "at '/binder/builder/engineSocket'"),
        ("binder.builder.privileged=true", "additional properties 'privileged'"),
        (
            "binder.registry=r.cern.ch,registry.existingSecret=reg,binder.builder.buildkitAddress=tcp://bk:1234,"
            "binder.builder.engineSocket=/run/docker.sock,binder.builder.nodeSelector.pool=builds,"
            "binder.builder.tolerations[0].key=builds",
            'set binder.builder.engineSocket=""',
        ),
        # A node's engine in build pods only on a dedicated, tainted pool.
        (
            "binder.registry=r.cern.ch,registry.existingSecret=reg,binder.builder.engineSocket=/run/docker.sock",
            "run build pods on a dedicated, tainted node pool by setting both binder.builder.nodeSelector",
        ),
        (
            "binder.registry=r.cern.ch,registry.existingSecret=reg,binder.builder.engineSocket=/run/docker.sock,"
            "binder.builder.nodeSelector.pool=builds",
            "run build pods on a dedicated, tainted node pool by setting both binder.builder.nodeSelector",
        ),
        # Build pods in their own namespace, never with the notebooks nor the hub.
        (
            "binder.registry=r.cern.ch,registry.existingSecret=reg,binder.builder.namespace=default",
            "binder.builder.namespace default is the notebooks' namespace",
        ),
        (
            "binder.registry=r.cern.ch,registry.existingSecret=reg,binder.builder.namespace=default,"
            "singleuser.namespace=users",
            "binder.builder.namespace default is the release's namespace",
        ),
        ("binder.builder.networkPolicy.egressDeniedCidrs[0]=10.0.0.0", "at '/binder/builder/networkPolicy"),
        ("singleuser.networkPolicy.egressDeniedCidrs[0]=private", "at '/singleuser/networkPolicy"),
        # TLS by default: plain HTTP only when asked for in so many words.
        ("auth.clientSecret=x", "there is no certificate: set proxy.https.secretName to a kubernetes.io/tls"),
        ("proxy.https.enabled=false", "or confirm plain HTTP with proxy.allowInsecureHttp=true"),
        ("proxy.allowInsecureHttp=true,proxy.https.secretName=t", "set proxy.https.enabled=false as well"),
        (
            "ingress.enabled=true,ingress.host=h.cern.ch,proxy.service.type=ClusterIP",
            "ingress.tlsSecretName is empty: the hub would be served over plain HTTP",
        ),
        ("proxy.https.terminate=loadBalancer", "proxy.https.loadBalancerTlsContainerRef is empty"),
        (
            "proxy.https.terminate=loadBalancer,proxy.service.type=NodePort",
            "TLS at Octavia needs proxy.service.type=LoadBalancer",
        ),
        (
            "proxy.https.terminate=loadBalancer,proxy.https.loadBalancerTlsContainerRef=https://kv/v1/containers/1,"
            "proxy.service.openstackLoadBalancerId=3f1c9a52-6a8e-4c2b-9d3e-1b2c3d4e5f60",
            "joins an existing load balancer",
        ),
        ("proxy.https.terminate=ingress", "at '/proxy/https/terminate'"),
        ("proxy.https.secretName=t,hub.publicUrl=http://hub.cern.ch", "write it with https://"),
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
    """What the chart's jupyterhub_config.py makes of the rendered settings (its
    `apply_chart_settings` call), with the mounted files under root: the chart's Secrets, and
    `existing` ({name: {key: text}}) for those it only names."""
    from traitlets.config import Config

    from cern_spawner.chart_settings import apply_chart_settings

    data = find(docs, "ConfigMap", "hub-cern-spawner-hub-config")["data"]
    secrets = root / "secrets"
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
    config = Config()
    apply_chart_settings(config, json.loads(data["settings.json"]), secrets)  # as the chart's script does
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
    assert binder.token_launches == ["gitlab.cern.ch/cern-notebooks/*"]
    assert binder.default_profile == "shared-2g"
    assert binder.per_user_build_limit == 2
    assert binder.max_concurrent_builds == 6
    assert binder.build_timeout == 1800
    assert binder.builder_image == "registry.example.cern.ch/cern-spawner/builder:2025.12.0"
    assert binder.engine_socket == ""
    assert binder.buildkit_address == "tcp://buildkitd.buildkit.svc:1234"
    assert binder.build_security_context == RESTRICTED_CONTEXT  # no socket: no root
    assert binder.build_resources == {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"cpu": "4", "memory": "8Gi"},
    }
    assert binder.build_node_selector == {"magnum.openstack.org/nodegroup": "default-worker"}
    assert binder.build_tolerations == [{"key": "builds", "operator": "Exists", "effect": "NoSchedule"}]
    # Build pods run (and mount the push Secret) in their own namespace, made by the chart.
    assert binder.build_namespace == "hub-builds"
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
    # Served over https: every cookie the hub sets is Secure (its handlers read these settings).
    assert config.JupyterHub.tornado_settings == {"cookie_options": {"secure": True}}


def test_binder_defaults_build_rootless_in_their_own_namespace(helm, tmp_path):
    """Binder launches on with the chart's defaults: no engine socket (build pods "restricted"), in a
    namespace of their own that the chart makes "restricted", the hub's RBAC there and nowhere else."""
    setting = (
        "auth.clientSecret=x,proxy.https.secretName=t,binder.registry=r.cern.ch,registry.existingSecret=reg"
    )
    docs = render(helm, None, "hub", "--set", setting)
    config, _ = run_hub_config(docs, tmp_path, existing={"reg": {".dockerconfigjson": '{"auths": {}}'}})
    binder, defaults = BinderConfig(config=config), BinderConfig()
    assert binder.builder_image == defaults.builder_image  # the hub's pinned repo2docker release
    assert binder.build_resources == defaults.build_resources
    assert binder.engine_socket == ""
    assert binder.build_security_context == RESTRICTED_CONTEXT
    assert binder.allowed_hosts == ["github.com", "gitlab.cern.ch"]
    assert (binder.push_secret, binder.build_namespace) == ("reg", "hub-builds")
    namespace = find(docs, "Namespace", "hub-builds")["metadata"]["labels"]
    assert namespace["pod-security.kubernetes.io/enforce"] == "restricted"
    assert "pods/log" not in rules_of(find(docs, "Role", "hub-cern-spawner-hub"))  # the notebooks' namespace
    assert find(docs, "Role", "hub-cern-spawner-hub-builds")["metadata"]["namespace"] == "hub-builds"
    assert (
        find(docs, "NetworkPolicy", "hub-cern-spawner-binder-build")["metadata"]["namespace"] == "hub-builds"
    )


def test_binder_engine_socket_on_a_tainted_pool_in_a_privileged_namespace(helm):
    pool = "binder.builder.nodeSelector.pool=builds,binder.builder.tolerations[0].key=builds"
    docs = render(
        helm,
        BINDER_VALUES,
        "hub",
        "--set",
        f"binder.builder.buildkitAddress=,binder.builder.engineSocket=/run/docker.sock,{pool}",
    )
    namespace = find(docs, "Namespace", "hub-builds")["metadata"]["labels"]
    assert namespace["pod-security.kubernetes.io/enforce"] == "privileged"  # only that namespace
    docs = render(helm, BINDER_VALUES, "hub", "--set", "binder.builder.createNamespace=false")
    assert not names(docs, "Namespace")


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
    # One for the hub's mount (release namespace), one for the build pods' (their own namespace).
    assert sorted(d["metadata"].get("namespace", "") for d in made) == ["", "hub-builds"]
    assert made[0]["data"] == made[1]["data"] and {d["type"] for d in made} == {
        "kubernetes.io/dockerconfigjson"
    }
    # An existing Secret is named, never made: you create it in both namespaces.
    docs = render(
        helm, BINDER_VALUES, "hub", "--set", "registry.dockerConfigJson=,registry.existingSecret=hub-registry"
    )
    assert not [d for d in docs if d["kind"] == "Secret" and "registry" in d["metadata"]["name"]]
    assert settings_of(docs)["binder"]["pushSecret"] == "hub-registry"


def test_binder_build_pods_network_policy(helm):
    """What the build pods' policy allows is in test_helm_policies.py; here, whom it holds."""
    docs = render(helm, BINDER_VALUES)
    policy = find(docs, "NetworkPolicy", "hub-cern-spawner-binder-build")
    assert policy["metadata"]["namespace"] == "hub-builds"
    spec = policy["spec"]
    assert spec["podSelector"] == {}  # every pod of the build namespace
    assert spec["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in spec  # nothing connects to them
    # Against the labels the hub gives build pods: the notebooks' policy (another namespace) and the
    # hub's ingress from notebooks do not select them, so they neither block nor open them.
    manifest = build_pod_manifest(
        BinderConfig(registry="r.cern.ch"), repo_url="https://github.com/a/b", ref="HEAD",
        commit="0" * 40, image="r.cern.ch/binder-b:" + "0" * 40, user="alice", namespace="hub-builds",
    )  # fmt: skip
    labels = manifest["metadata"]["labels"].items()

    def selects(selector):
        return selector["matchLabels"].items() <= labels

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
def test_api_server_accepts_the_manifests(helm, kubectl, core, namespace, user_namespace, values):
    docs = render(helm, values, namespace, "--set", f"singleuser.namespace={user_namespace}")
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "Namespace"}
    for doc in docs:  # as `helm install` does: namespaced objects without one go to the release's
        if doc["kind"] not in cluster_scoped:
            doc["metadata"].setdefault("namespace", namespace)
    # The namespaces the chart makes (build pods'), made for real: a dry run cannot fill them.
    made = [d for d in docs if d["kind"] == "Namespace"]
    if made:
        run(*kubectl, "apply", "-f", "-", input=yaml.safe_dump_all(made))
    try:
        manifests = yaml.safe_dump_all(docs)
        applied = run(*kubectl, "apply", "--dry-run=server", "-f", "-", input=manifests).stdout
    finally:
        for doc in made:
            core.delete_namespace(doc["metadata"]["name"])
    assert applied.count("(server dry run)") == len(docs)
    assert "deployment.apps/hub-cern-spawner-hub created (server dry run)" in applied
    assert "role.rbac.authorization.k8s.io/hub-cern-spawner-hub created (server dry run)" in applied


TLS_HOST = "hub.example.cern.ch"


@pytest.fixture(scope="module")
def tls_certificate() -> dict[str, bytes]:
    """A self-signed certificate for TLS_HOST: what the install's Secret hub-tls holds (as cert-manager
    writes it: tls.crt, tls.key) and the proxy must serve."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, TLS_HOST)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(TLS_HOST)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return {
        "tls.crt": cert.public_bytes(serialization.Encoding.PEM),
        "tls.key": key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        "der": cert.public_bytes(serialization.Encoding.DER),
    }


@contextmanager
def helm_installed(helm, sandbox, core, values: Path, *extra: str, tls: dict[str, bytes], wait=True):
    """A real `helm install` into a fresh namespace enforcing Pod Security `restricted`, with the TLS
    Secret hub-tls the ci values name; the namespace's name."""
    namespace = f"helm-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": namespace, "labels": PSA_RESTRICTED}})
    core.create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "hub-tls"},
            "type": "kubernetes.io/tls",
            "data": {key: base64.b64encode(tls[key]).decode() for key in ("tls.crt", "tls.key")},
        },
    )
    # The hub's database claim gets a volume of the sandbox's default StorageClass, deleted with
    # the namespace (docs/sandbox.md, "Storage").
    kube = ["--kubeconfig", sandbox["kubeconfig"], "--namespace", namespace]
    try:
        # No image pre-pull: the sandbox's nodes run commands, and fetch nothing but its registry's images.
        run(helm, "install", "hub", CHART, *kube, "-f", values, "--set", "prePuller.enabled=false", *extra)
        yield namespace
        # Waiting for a namespace the chart made (the build pods') to be finalized adds seconds and
        # proves nothing here: the namespace controller finishes it on its own.
        run(helm, "uninstall", "hub", *kube, *(["--wait", "--timeout", "60s"] if wait else []))
    finally:
        core.delete_namespace(namespace)


@pytest.fixture(scope="module")
def installed(helm, sandbox, core, tls_certificate):
    """The defaults, installed."""
    with helm_installed(helm, sandbox, core, DEFAULT_VALUES, tls=tls_certificate) as namespace:
        yield namespace


def hub_log_until_proxy(sandbox, core, namespace: str) -> str:
    """The hub pod's log once the hub has loaded its config and opened its database.

    It cannot become Ready in the sandbox (no Service DNS nor in-cluster API address for pods, so it
    cannot reach the proxy's API): this is how far it gets.
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


def proxy_pod_ip(core, namespace: str) -> str:
    def address():
        pods = core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/component=proxy").items
        return next((p.status.pod_ip for p in pods if p.status.pod_ip), None)

    return wait_until(address, timeout=30, what="the proxy pod's IP")


def exchange(sock, request: bytes) -> bytes:
    sock.sendall(request)
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    return answer


def test_proxy_serves_https_with_the_secrets_certificate(core, installed, tls_certificate):
    """The proxy pod the chart deploys (configurable-http-proxy, the release the tests run) speaks TLS
    on its pod address with the certificate of Secret hub-tls, answers a request through it, and its
    plain-HTTP port only redirects to https."""
    ip = proxy_pod_ip(core, installed)
    context = ssl.create_default_context(cadata=tls_certificate["tls.crt"].decode())

    def handshake():
        try:
            raw = socket.create_connection((ip, 8443), timeout=5)
        except OSError:
            return None  # not listening yet
        return context.wrap_socket(raw, server_hostname=TLS_HOST)  # verifies the chain and the name

    with wait_until(handshake, timeout=30, what="configurable-http-proxy to listen on 8443") as tls:
        assert tls.getpeercert(binary_form=True) == tls_certificate["der"]
        # HTTP inside the TLS session, answered by the proxy's own server: a request it refuses
        # itself (no Host), since a routed one would wait on the hub's Service name, which pods
        # cannot resolve in the sandbox.
        answer = exchange(tls, b"GET /hub/health HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:300]
    with socket.create_connection((ip, 8000), timeout=5) as plain:
        answer = exchange(
            plain, f"GET /hub/login HTTP/1.1\r\nHost: {TLS_HOST}\r\nConnection: close\r\n\r\n".encode()
        )
    head = answer.split(b"\r\n\r\n", 1)[0].decode()
    assert head.startswith("HTTP/1.1 301"), head
    assert f"location: https://{TLS_HOST}:443/hub/login" in head.lower(), head


@pytest.mark.parametrize(
    "settings, warned",
    [("proxy.https.enabled=false,proxy.allowInsecureHttp=true", True), ("proxy.https.secretName=t", False)],
    ids=["insecure", "tls"],
)
def test_install_notes_warn_about_plain_http(helm, sandbox, settings, warned):
    """What `helm install` prints (NOTES.txt), from a client-side dry run against the sandbox."""
    kube = ["--kubeconfig", sandbox["kubeconfig"], "--namespace", "hub"]
    out = run(
        helm, "install", "hub", CHART, *kube, "--dry-run=client", "-f", DEFAULT_VALUES, "--set", settings
    )
    assert ("WARNING: the hub is served over PLAIN HTTP" in out.stdout) is warned, out.stdout


def test_hub_starts_with_binder_launches(helm, sandbox, core, kubectl, tls_certificate):
    """With Binder launches on, the same hub loads its config (BinderConfig, the binder handlers,
    the mounted push Secret) as far as the sandbox lets it, and its account may read build logs in
    the build pods' own namespace, which the chart made "restricted" with their NetworkPolicy."""
    extra = ("--set", "singleuser.namespace=")
    with helm_installed(
        helm, sandbox, core, BINDER_VALUES, *extra, tls=tls_certificate, wait=False
    ) as namespace:
        # Past the config (an error in it stops jupyterhub before this point).
        text = hub_log_until_proxy(sandbox, core, namespace)
        assert "Using Spawner: cern_spawner.spawner.CERNSpawner" in text
        builds = f"{namespace}-builds"
        labels = core.read_namespace(builds).metadata.labels
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        account = f"system:serviceaccount:{namespace}:hub-cern-spawner-hub"
        assert can_i(kubectl, account, "get", "pods --subresource=log", ["--namespace", builds])
        assert not can_i(kubectl, account, "get", "pods --subresource=log", ["--namespace", namespace])
        policies = run(*kubectl, "--namespace", builds, "get", "netpol", "-o", "name").stdout.split()
        assert policies == ["networkpolicy.networking.k8s.io/hub-cern-spawner-binder-build"]


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


def test_binder_hub_permissions(helm, kubectl, binder_namespaces):
    """The hub's RBAC with Binder launches, applied for real and asked through SubjectAccessReviews."""
    ns = binder_namespaces
    builds = ns["builds"]
    settings = (
        f"singleuser.namespace={ns['users']},binder.builder.namespace={builds},"
        "binder.builder.createNamespace=false"
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
    values = DEFAULT_VALUES
    run(
        helm,
        "upgrade",
        "hub",
        CHART,
        *kube,
        "-f",
        values,
        "--set",
        "hub.extraConfig=# changed,prePuller.enabled=false",
    )
    assert generated() == before, "an upgrade must keep the proxy token, cookie secret and crypt key"

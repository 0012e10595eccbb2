"""What the chart gives users and operators, checked on `helm template` output (no cluster): home
storage, image pre-pull per node group, z2jh-style extension points, the production profiles example.

helm is built from its Go module and cached (sandbox/helm.py); a helm that cannot be built fails
these tests, never skips them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from kubespawner import KubeSpawner

from cern_spawner import CERNSpawner
from cern_spawner.catalog.loader import load_catalog
from tests.integration.chart import CHART, DEFAULT_VALUES, find, render, resolve_helm, run
from tests.integration.test_helm import RESTRICTED_CONTAINER, run_hub_config, settings_of

pytestmark = pytest.mark.integration

PRODUCTION = CHART.parents[1] / "profiles" / "examples" / "production.yaml"
GPU_VALUES = CHART / "ci" / "gpu-magnum-existing-secrets-values.yaml"
APP_VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]


@pytest.fixture(scope="module")
def helm() -> Path:
    return resolve_helm()


@pytest.fixture(autouse=True)
def no_kube_config(monkeypatch):
    # Spawners here only build manifests, never talk to an API server: skip loading a kube config.
    monkeypatch.setattr("kubespawner.spawner.load_config", lambda **kwargs: None)


def sets(*settings: str) -> list[str]:
    return [arg for setting in settings for arg in ("--set", setting)]


def values_file(tmp_path: Path, values: dict) -> Path:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def pod_spec(docs: list[dict], kind: str, name: str) -> dict:
    return find(docs, kind, name)["spec"]["template"]["spec"]


# -- home storage -----------------------------------------------------------------------------

STORAGE = [
    ("default", [], {"type": "dynamic", "capacity": "10Gi", "class": None, "mount": "/home/jovyan"}),
    (
        "cinder-class",
        ["singleuser.storage.storageClass=csi-cinder-sc-delete", "singleuser.storage.capacity=20Gi"],
        {"type": "dynamic", "capacity": "20Gi", "class": "csi-cinder-sc-delete", "mount": "/home/jovyan"},
    ),
    ("elsewhere", ["singleuser.storage.homeMountPath=/srv/home"], {"type": "dynamic", "mount": "/srv/home"}),
    ("none", ["singleuser.storage.type=none"], {"type": "none"}),
]


@pytest.mark.asyncio(loop_scope="function")  # KubeSpawner's API client wants a running loop
@pytest.mark.parametrize("name, settings, expected", STORAGE, ids=[s[0] for s in STORAGE])
async def test_home_storage_reaches_kubespawner(helm, tmp_path, name, settings, expected):
    config, _ = run_hub_config(render(helm, DEFAULT_VALUES, "hub", *sets(*settings)), tmp_path)
    spawner = KubeSpawner(config=config, _mock=True)
    if expected["type"] == "none":
        assert spawner.storage_pvc_ensure is False
        assert spawner.volumes == {} and spawner.volume_mounts == {}
        return
    assert spawner.storage_pvc_ensure is True
    assert spawner.storage_capacity == expected.get("capacity", "10Gi")
    assert spawner.storage_class == expected.get("class")  # None: the cluster default class
    assert spawner.storage_access_modes == ["ReadWriteOnce"]
    assert spawner.volumes == {"home": {"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}}
    assert spawner.volume_mounts == {"home": {"name": "home", "mountPath": expected["mount"]}}


@pytest.mark.asyncio(loop_scope="function")
async def test_notebook_pod_with_home_and_profile_volumes_is_restricted(helm, tmp_path):
    """CERNSpawner, configured by the chart's jupyterhub_config.py with the production profiles: the
    user's claim at /home/jovyan next to the profile's CVMFS claim, fsGroup set (the claim is the
    notebook user's), and the pod still Pod Security "restricted" but for the EOS hostPath."""
    production = PRODUCTION.read_text().replace(
        "# cluster: <your Magnum cluster's name or UUID>", "cluster: c1"
    )
    (tmp_path / "production.yaml").write_text(production)
    docs = render(
        helm, DEFAULT_VALUES, "hub", "--set-file", f"profiles.files.default\\.yaml={tmp_path}/production.yaml"
    )
    config, _ = run_hub_config(docs, tmp_path)
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    for file, text in find(docs, "ConfigMap", "hub-cern-spawner-profiles")["data"].items():
        (profiles / file).write_text(text)
    config.CERNSpawner.profiles_path = [str(profiles)]
    spawner = CERNSpawner(config=config, _mock=True)
    spawner.user.groups, spawner.user.admin = [], False

    async def get_auth_state():
        return None

    spawner.user.get_auth_state = get_auth_state
    spawner.user_options = {"profile": "shared-2g"}
    await spawner._check_user_options(spawner, spawner.user_options)
    await spawner.load_user_options()
    pod = spawner.api.api_client.sanitize_for_serialization(await spawner.get_pod_manifest())
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["home"]["persistentVolumeClaim"]["claimName"] == spawner.pvc_name
    assert volumes["profile-cvmfs"]["persistentVolumeClaim"] == {"claimName": "cvmfs", "readOnly": True}
    mounts = {m["name"]: m for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["home"]["mountPath"] == "/home/jovyan"
    assert mounts["profile-cvmfs"]["mountPropagation"] == "HostToContainer"
    assert pod["spec"]["securityContext"]["fsGroup"] == spawner.gid
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert RESTRICTED_CONTAINER.items() <= pod["spec"]["containers"][0]["securityContext"].items()
    assert [name for name, v in volumes.items() if "hostPath" in v] == ["profile-eos"]


def test_singleuser_image_is_the_hubs_jupyterhub():
    """jupyterhub-singleuser in the default notebook image talks to this hub: same release."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())["singleuser"]["image"]
    pins = (CHART.parents[1] / "constraints.txt").read_text().splitlines()
    assert values["repository"] == "quay.io/jupyterhub/singleuser"
    assert f"jupyterhub=={values['tag']}" in pins


# -- image pre-pull ---------------------------------------------------------------------------

CATALOG = """\
node_groups:
  cpu: {}
  gpu-a100:
    label: node.cluster.x-k8s.io/nodegroup
    gpu: {per_node: 2}
    taint: {key: nvidia.com/gpu, effect: NoSchedule}
  idle: {}
profiles:
  - {slug: plain, display_name: P, kind: shared, cpu: 1, memory: 1G, node_group: cpu}
  - {slug: own, display_name: O, kind: shared, cpu: 1, memory: 1G, node_group: cpu, image: "r.cern.ch/own:1"}
  - slug: gpu
    display_name: G
    kind: dedicated
    cpu: 2
    memory: 4G
    gpus: 1
    node_group: gpu-a100
    image: "r.cern.ch/unused:1"
    image_choices:
      torch: {display_name: T, image: "r.cern.ch/torch:2"}
      tf: {display_name: F, image: "r.cern.ch/tf:2"}
"""

PREPULL = [
    (
        "from-profiles",
        {},
        {
            "cpu": ["quay.io/jupyterhub/singleuser:6.1.1", "r.cern.ch/own:1"],
            "gpu-a100": ["r.cern.ch/tf:2", "r.cern.ch/torch:2"],
        },
    ),
    (
        "extra-images",
        {"extraImages": ["r.cern.ch/extra:1"], "imagePullSecrets": ["pull"]},
        {
            "cpu": ["quay.io/jupyterhub/singleuser:6.1.1", "r.cern.ch/own:1", "r.cern.ch/extra:1"],
            "gpu-a100": ["r.cern.ch/tf:2", "r.cern.ch/torch:2", "r.cern.ch/extra:1"],
            "idle": ["r.cern.ch/extra:1"],
        },
    ),
    ("off", {"enabled": False}, {}),
]


@pytest.mark.parametrize("name, prepuller, expected", PREPULL, ids=[p[0] for p in PREPULL])
def test_prepuller_per_node_group(helm, tmp_path, name, prepuller, expected):
    values = values_file(tmp_path, {"prePuller": prepuller, "profiles": {"files": {"default.yaml": CATALOG}}})
    docs = render(helm, DEFAULT_VALUES, "hub", "-f", str(values))
    daemonsets = {
        d["metadata"]["labels"]["cern-spawner/prepull-group"]: d for d in docs if d["kind"] == "DaemonSet"
    }
    assert {
        group: [c["image"] for c in d["spec"]["template"]["spec"]["initContainers"]]
        for group, d in daemonsets.items()
    } == expected
    for group, daemonset in daemonsets.items():
        spec = daemonset["spec"]["template"]["spec"]
        label = "node.cluster.x-k8s.io/nodegroup" if group == "gpu-a100" else "magnum.openstack.org/nodegroup"
        assert spec["nodeSelector"] == {label: group}
        taint = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        assert spec.get("tolerations") == (taint if group == "gpu-a100" else None)
        (pause,) = spec["containers"]  # last, idling once every init container has pulled its image
        assert pause["image"] == "registry.k8s.io/pause:3.10"
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True
        for container in spec["initContainers"] + spec["containers"]:
            assert RESTRICTED_CONTAINER.items() <= container["securityContext"].items()
            assert container["resources"]["limits"]["memory"]
        assert [s["name"] for s in spec.get("imagePullSecrets", [])] == prepuller.get("imagePullSecrets", [])


CLASHING = """
node_groups:
  gpu-a100: {}
  GPU-A100: {}
  gpu_a100: {}
  gpu-a100-with-a-name-long-enough-to-be-cut-by-the-sixty-three-limit-a: {}
  gpu-a100-with-a-name-long-enough-to-be-cut-by-the-sixty-three-limit-b: {}
profiles:
"""


def test_prepuller_names_stay_apart_for_groups_that_differ_in_case_or_length(helm, tmp_path):
    """DaemonSet names are DNS labels: groups whose names differ only in case, in "_" for "-", or
    after the 63rd character each get their own puller; a plain name stays readable."""
    groups = [g.split(":")[0].strip() for g in CLASHING.splitlines() if g.endswith("{}")]
    catalog = CLASHING + "".join(
        f"  - {{slug: p{i}, display_name: P, kind: shared, cpu: {{guarantee: 0.1, limit: 1}},"
        f" memory: {{guarantee: 1G, limit: 1G}}, node_group: {g}}}\n"
        for i, g in enumerate(groups)
    )
    values = values_file(tmp_path, {"profiles": {"files": {"default.yaml": catalog}}})
    docs = render(helm, DEFAULT_VALUES, "hub", "-f", str(values))
    names = {
        d["metadata"]["labels"]["cern-spawner/prepull-group"]: d["metadata"]["name"]
        for d in docs
        if d["kind"] == "DaemonSet"
    }
    assert set(names) == set(groups)
    assert len(set(names.values())) == len(groups)
    assert all(re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", n) for n in names.values()), names
    assert names["gpu-a100"] == "hub-cern-spawner-prepull-gpu-a100"


# -- extension points -------------------------------------------------------------------------

EXTENDED = {
    "extraEnv": {
        "HTTPS_PROXY": "http://proxy.cern.ch:8080",
        "NODE": {"valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
    },
    "extraVolumes": [{"name": "site", "secret": {"secretName": "site-config"}}],
    "extraVolumeMounts": [{"name": "site", "mountPath": "/etc/site", "readOnly": True}],
    "nodeSelector": {"magnum.openstack.org/role": "worker"},
    "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}},
    "tolerations": [{"key": "infra", "operator": "Exists", "effect": "NoSchedule"}],
    "podAnnotations": {"backup.velero.io/backup-volumes": "data"},
    "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
}


@pytest.mark.parametrize("component", ["hub", "proxy"])
def test_extension_points(helm, tmp_path, component):
    values = values_file(tmp_path, {component: EXTENDED})
    docs = render(helm, DEFAULT_VALUES, "hub", "-f", str(values))
    deployment = find(docs, "Deployment", f"hub-cern-spawner-{component}")["spec"]["template"]
    spec = deployment["spec"]
    container = spec["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["HTTPS_PROXY"]["value"] == "http://proxy.cern.ch:8080"
    assert env["NODE"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert {"name": "site", "secret": {"secretName": "site-config"}} in spec["volumes"]
    assert {"name": "site", "mountPath": "/etc/site", "readOnly": True} in container["volumeMounts"]
    for key in ("nodeSelector", "affinity", "tolerations"):
        assert spec[key] == EXTENDED[key]
    assert EXTENDED["podAnnotations"].items() <= deployment["metadata"]["annotations"].items()
    assert container["resources"] == EXTENDED["resources"]
    if component == "proxy":  # the chart's own variable and mount are kept
        assert "CONFIGPROXY_AUTH_TOKEN" in env
        assert {m["name"] for m in container["volumeMounts"]} == {"tls", "site"}


def test_version_label_on_everything(helm):
    docs = render(helm, GPU_VALUES)
    for doc in docs:
        assert doc["metadata"]["labels"]["app.kubernetes.io/version"] == APP_VERSION, doc["metadata"]["name"]
        template = doc.get("spec", {}).get("template")
        if template:
            assert template["metadata"]["labels"]["app.kubernetes.io/version"] == APP_VERSION


CONFIG = [
    ("sets-a-trait", {"KubeSpawner": {"start_timeout": 900}}, ("KubeSpawner", "start_timeout", 900)),
    (
        "over-the-charts-own",
        {"KubeSpawner": {"default_url": "/tree"}},
        ("KubeSpawner", "default_url", "/tree"),
    ),
    (
        "a-map",
        {"CERNSpawner": {"extra_labels": {"team": "atlas"}}},
        ("CERNSpawner", "extra_labels", {"team": "atlas"}),
    ),
]


@pytest.mark.parametrize("name, config, expected", CONFIG, ids=[c[0] for c in CONFIG])
def test_hub_config_passthrough(helm, tmp_path, name, config, expected):
    values = values_file(tmp_path, {"hub": {"config": config}})
    docs = render(helm, DEFAULT_VALUES, "hub", "-f", str(values))
    hub_config, _ = run_hub_config(docs, tmp_path)
    cls, trait, value = expected
    assert hub_config[cls][trait] == value


CULLING = [
    ("on-by-default", {}, {"interval": 60, "warn_before": 900, "recent": 300}),
    (
        "timing",
        {"interval": 30, "warnBefore": 600, "recent": 120},
        {"interval": 30, "warn_before": 600, "recent": 120},
    ),
    ("off", {"enabled": False}, None),
]


@pytest.mark.parametrize("name, culling, expected", CULLING, ids=[c[0] for c in CULLING])
def test_culling_values_reach_the_hub(helm, tmp_path, name, culling, expected):
    """culling.enabled registers the cern-culler service (its role, its handlers); the timing
    values become c.Culling's traits."""
    values = values_file(tmp_path, {"culling": culling})
    docs = render(helm, DEFAULT_VALUES, "hub", "-f", str(values))
    hub_config, _ = run_hub_config(docs, tmp_path)
    services = [service["name"] for service in hub_config.JupyterHub.get("services", [])]
    routes = [route for route, *_ in hub_config.JupyterHub.extra_handlers]
    if expected is None:
        assert "cern-culler" not in services and "/api/cern/notices" not in routes
        return
    assert services == ["cern-culler"] and "/api/cern/notices" in routes
    assert {trait: hub_config.Culling[trait] for trait in expected} == expected


SSO = "https://sso.example.org/auth/realms/cern/protocol/openid-connect"
INTERNAL = "http://keycloak.sso.svc:8080/auth/realms/cern/protocol/openid-connect"
ENDPOINTS = [
    ("none-discovery", {}, {}, {}),
    (
        "back-channel",
        {"authorize": f"{SSO}/auth", "token": f"{INTERNAL}/token", "jwks": f"{INTERNAL}/certs"},
        {},
        {"authorize_url": f"{SSO}/auth", "token_url": f"{INTERNAL}/token", "jwks_uri": f"{INTERNAL}/certs"},
    ),
    (
        "hub-config-wins",
        {"token": f"{INTERNAL}/token", "endSession": f"{SSO}/logout"},
        {"CERNAuthenticator": {"token_url": "http://other/token"}},
        {"token_url": "http://other/token", "end_session_url": f"{SSO}/logout"},
    ),
]


@pytest.mark.parametrize("name, endpoints, config, expected", ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
def test_auth_endpoints_become_authenticator_traits(helm, tmp_path, name, endpoints, config, expected):
    """auth.endpoints set CERNAuthenticator's endpoint traits (explicit ones win over discovery);
    hub.config still wins over them; unset ones are left to discovery."""
    values = values_file(tmp_path, {"auth": {"endpoints": endpoints}, "hub": {"config": config}})
    docs = render(helm, DEFAULT_VALUES, "hub", "-f", str(values))
    hub_config, _ = run_hub_config(docs, tmp_path)
    traits = ("authorize_url", "token_url", "jwks_uri", "end_session_url")
    assert {
        t: hub_config.CERNAuthenticator[t] for t in traits if t in hub_config.CERNAuthenticator
    } == expected


def test_hub_config_refuses_a_non_identifier_at_start(helm, tmp_path):
    """The schema refuses such names; a ConfigMap edited by hand still gets a clear error."""
    docs = render(helm, DEFAULT_VALUES)
    data = find(docs, "ConfigMap", "hub-cern-spawner-hub-config")["data"]
    settings = settings_of(docs)
    settings["config"] = {"KubeSpawner": {"start-timeout": 1}}
    data["settings.json"] = json.dumps(settings)
    with pytest.raises(ValueError, match=r"hub.config: 'KubeSpawner'.'start-timeout' is not a Class.trait"):
        run_hub_config(docs, tmp_path)


REFUSED = [
    ("hub.config.Kube-Spawner.a=1", 'hub.config: "Kube-Spawner" is not a class name (a Python identifier'),
    ("hub.config.KubeSpawner.start-timeout=1", 'hub.config.KubeSpawner: "start-timeout" is not a trait name'),
    ("hub.config.KubeSpawner=3", "at '/hub/config/KubeSpawner'"),
    ("hub.extraEnv.GITLAB_TOKEN=x", "hub.extraEnv.GITLAB_TOKEN looks like a secret"),
    ("proxy.extraEnv.DB_PASSWORD=x", "proxy.extraEnv.DB_PASSWORD looks like a secret"),
    ("hub.extraEnv.A.valueFrom.secretKeyRef.name=s", "additional properties 'secretKeyRef' not allowed"),
    ("singleuser.storage.type=nfs", "at '/singleuser/storage/type'"),
    ("singleuser.storage.capacity=lots", "at '/singleuser/storage/capacity'"),
    ("prePuller.extraImages[0]=a b", "at '/prePuller/extraImages/0'"),
    ("culling.interval=0", "at '/culling/interval'"),
]


@pytest.mark.parametrize("setting, message", REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_values_say_how_to_fix(helm, setting, message):
    result = run(helm, "template", "hub", CHART, "-f", DEFAULT_VALUES, "--set", setting, check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


# -- the production profiles example ----------------------------------------------------------


def test_production_example_needs_its_cluster(helm, tmp_path):
    """What docs/deploy.md installs: not the sandbox's catalog, and refused until the operator names
    the Magnum cluster; then a valid catalog."""
    text = PRODUCTION.read_text()
    assert "cluster: sandbox" not in text
    result = run(
        helm,
        "template",
        "hub",
        CHART,
        "-f",
        DEFAULT_VALUES,
        "--set-file",
        f"profiles.files.default\\.yaml={PRODUCTION}",
        check=False,
    )
    assert result.returncode != 0
    assert (
        "node group gpu-v100 grows through Magnum (scaling) but scaling.cluster is not set" in result.stderr
    )
    assert "openstack coe cluster list" in result.stderr
    (tmp_path / "production.yaml").write_text(
        text.replace("# cluster: <your Magnum cluster's name or UUID>", "cluster: c1")
    )
    docs = render(
        helm, DEFAULT_VALUES, "hub", "--set-file", f"profiles.files.default\\.yaml={tmp_path}/production.yaml"
    )
    files = find(docs, "ConfigMap", "hub-cern-spawner-profiles")["data"]
    catalog_dir = tmp_path / "catalog"
    catalog_dir.mkdir()
    for file, content in files.items():
        (catalog_dir / file).write_text(content)
    catalog = load_catalog([catalog_dir])
    assert catalog.node_groups["gpu-v100"].scaling["cluster"] == "c1"
    assert {v.name for v in catalog.profile("gpu-1").volumes} == {"cvmfs", "eos"}


CLUSTER_API = [
    ("off-by-default", {}, None),
    ("kubeconfig-secret", {"kubeconfigSecret": "capi-mgmt"}, "v1beta1"),
    ("version", {"kubeconfigSecret": "capi-mgmt", "version": "v1beta2"}, "v1beta2"),
]


@pytest.mark.parametrize("name, cluster_api, version", CLUSTER_API, ids=[c[0] for c in CLUSTER_API])
def test_cluster_api_kubeconfig_is_a_mounted_file(helm, tmp_path, name, cluster_api, version):
    """gpuScaling.clusterAPI.kubeconfigSecret (an existing Secret) is mounted read-only as a file
    whose path becomes GPUScaling.cluster_api_kubeconfig; the kubeconfig never reaches the env."""
    values = values_file(tmp_path, {"gpuScaling": {"clusterAPI": cluster_api}})
    docs = render(helm, DEFAULT_VALUES, "hub", "-f", str(values))
    existing = {"capi-mgmt": {"kubeconfig": "apiVersion: v1\nkind: Config\n"}}
    hub_config, secrets = run_hub_config(docs, tmp_path, existing)
    pod = pod_spec(docs, "Deployment", "hub-cern-spawner-hub")
    mounted = [v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v]
    env = json.dumps([c.get("env", []) + c.get("envFrom", []) for c in pod["containers"]])
    assert "capi-mgmt" not in env and "kubeconfig" not in env.lower()
    if version is None:
        assert "capi-mgmt" not in mounted and "cluster_api_kubeconfig" not in hub_config.GPUScaling
        return
    assert "capi-mgmt" in mounted
    path = hub_config.GPUScaling.cluster_api_kubeconfig
    assert path == str(secrets / "cluster-api" / "kubeconfig") and Path(path).read_text().startswith(
        "apiVersion"
    )
    assert hub_config.GPUScaling.cluster_api_version == version

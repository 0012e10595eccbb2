"""The pod manifest KubeSpawner would create for each profile, built without a cluster."""

import pytest
from kubespawner import KubeSpawner
from traitlets.config import Config

from cern_spawner import CERNSpawner

# Own event loop per test: kubespawner caches API clients per running loop, and these clients are
# built without a kube config, so they must never be shared with integration tests.
pytestmark = [pytest.mark.unit, pytest.mark.asyncio(loop_scope="function")]

GIB = 1024**3
MIB = 1024**2

# Volume types Pod Security Admission "restricted" allows.
RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


@pytest.fixture(autouse=True)
def no_kube_config(monkeypatch):
    # KubeSpawner's constructor loads a kube config (in-cluster or ~/.kube/config) and caches it for
    # the whole process. Building a manifest never talks to an API server, so skip loading it.
    monkeypatch.setattr("kubespawner.spawner.load_config", lambda **kwargs: None)


async def pod_for(user_options, spawner_class=CERNSpawner, **config):
    """The pod manifest (as the JSON sent to the API server) for a user choosing user_options."""
    c = Config()
    for name, value in config.items():
        setattr(c[spawner_class.__name__], name, value)
    spawner = spawner_class(_mock=True, config=c)
    spawner.user_options = user_options
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    return spawner.api.api_client.sanitize_for_serialization(pod)


def restricted_violations(pod):
    """What in a pod manifest breaks Pod Security Admission "restricted".

    Stricter than the admission controller in one way: runAsNonRoot and the seccomp profile must be set
    on the pod *and* on every container (restricted accepts either), which is what CERNSpawner promises.
    """
    spec = pod["spec"]
    psc = spec.get("securityContext") or {}
    problems = []
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            problems.append(f"pod: {field}")
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            problems.append(f"volume {volume['name']}: {sorted(kinds)}")
    if psc.get("runAsNonRoot") is not True:
        problems.append("pod: runAsNonRoot is not true")
    if psc.get("runAsUser") == 0:
        problems.append("pod: runAsUser 0")
    if (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        problems.append("pod: seccompProfile is not RuntimeDefault")

    containers = [
        *(spec.get("initContainers") or []),
        *spec["containers"],
        *(spec.get("ephemeralContainers") or []),
    ]
    for container in containers:
        name = container["name"]
        sc = container.get("securityContext") or {}
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        capabilities = sc.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            problems.append(f"{name}: capabilities do not drop ALL")
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: capabilities add {capabilities['add']}")
        if sc.get("runAsNonRoot") is not True:
            problems.append(f"{name}: runAsNonRoot is not true")
        if sc.get("runAsUser") == 0:
            problems.append(f"{name}: runAsUser 0")
        if (sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.append(f"{name}: seccompProfile is not RuntimeDefault")
        if any(port.get("hostPort") for port in container.get("ports") or []):
            problems.append(f"{name}: hostPort")
    return problems


def notebook(pod):
    (container,) = [c for c in pod["spec"]["containers"] if c["name"] == "notebook"]
    return container


PROFILES = [
    # slug, node group, requests, limits
    ("shared-1g", "default-worker", {"cpu": 0.1, "memory": 512 * MIB}, {"cpu": 0.5, "memory": GIB}),
    ("shared-2g", "default-worker", {"cpu": 0.2, "memory": GIB}, {"cpu": 1.0, "memory": 2 * GIB}),
    ("shared-4g", "default-worker", {"cpu": 0.5, "memory": 2 * GIB}, {"cpu": 2.0, "memory": 4 * GIB}),
    (
        "gpu-1",
        "gpu-v100",
        {"cpu": 2.0, "memory": 4 * GIB, "nvidia.com/gpu": "1"},
        {"cpu": 2.0, "memory": 4 * GIB, "nvidia.com/gpu": "1"},
    ),
]
SLUGS = [row[0] for row in PROFILES]


@pytest.mark.parametrize("slug, node_group, requests, limits", PROFILES, ids=SLUGS)
async def test_profile_pod(slug, node_group, requests, limits):
    pod = await pod_for({"profile": slug})
    spec = pod["spec"]
    container = notebook(pod)

    assert restricted_violations(pod) == []
    assert container["resources"] == {"requests": requests, "limits": limits}
    assert spec["nodeSelector"] == {"magnum.openstack.org/nodegroup": node_group}
    labels = pod["metadata"]["labels"]
    assert labels["cern-spawner/profile"] == slug
    assert labels["cern-spawner/node-group"] == node_group
    assert container["securityContext"]["runAsUser"] == 1000
    assert container["securityContext"]["runAsGroup"] == 100
    assert spec["securityContext"]["fsGroup"] == 100
    assert spec["automountServiceAccountToken"] is False
    # The server is started explicitly (as Zero to JupyterHub does), not by each image's CMD.
    assert container["args"][0] == "jupyterhub-singleuser"
    assert "command" not in container


async def test_gpu_pod_has_guaranteed_qos_and_gpu_toleration():
    pod = await pod_for({"profile": "gpu-1"})
    resources = notebook(pod)["resources"]
    assert resources["requests"] == resources["limits"]
    assert resources["limits"]["nvidia.com/gpu"] == "1"
    assert pod["spec"]["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert "topologySpreadConstraints" not in pod["spec"]


@pytest.mark.parametrize("slug", ["shared-1g", "shared-2g", "shared-4g"], ids=str)
async def test_shared_pod_spreads_over_zones_without_gpu(slug):
    pod = await pod_for({"profile": slug})
    spec = pod["spec"]
    assert "tolerations" not in spec
    assert "nvidia.com/gpu" not in notebook(pod)["resources"]["limits"]
    (constraint,) = spec["topologySpreadConstraints"]
    assert constraint["topologyKey"] == "topology.kubernetes.io/zone"
    assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"
    assert constraint["maxSkew"] == 1
    assert constraint["labelSelector"] == {"matchLabels": {"cern-spawner/node-group": "default-worker"}}
    # The spread constraint selects pods by a label the pod itself carries.
    assert pod["metadata"]["labels"]["cern-spawner/node-group"] == "default-worker"


async def test_no_choice_gets_the_default_profile():
    pod = await pod_for({})
    assert pod["metadata"]["labels"]["cern-spawner/profile"] == "shared-2g"


@pytest.mark.parametrize(
    "config, check",
    [
        (
            {"node_group_label": "node.cluster.x-k8s.io/nodegroup"},
            lambda pod: pod["spec"]["nodeSelector"] == {"node.cluster.x-k8s.io/nodegroup": "gpu-v100"},
        ),
        (
            {"service_account": "notebook"},
            lambda pod: pod["spec"]["automountServiceAccountToken"] is False,
        ),
        (
            {"service_account": "notebook", "automount_service_account_token": True},
            lambda pod: pod["spec"]["automountServiceAccountToken"] is True,
        ),
        (
            {"uid": 1234},
            lambda pod: (
                notebook(pod)["securityContext"]["runAsUser"] == 1234 and not restricted_violations(pod)
            ),
        ),
    ],
    ids=["node-group-label", "service-account-no-token", "token-when-asked", "uid"],
)
async def test_configuration_is_honoured(config, check):
    assert check(await pod_for({"profile": "gpu-1"}, **config))


@pytest.mark.parametrize(
    "spawner_class, config, expected",
    [
        (KubeSpawner, {}, "pod: runAsNonRoot is not true"),
        (KubeSpawner, {}, "notebook: capabilities do not drop ALL"),
        (CERNSpawner, {"privileged": True, "container_security_context": {}}, "notebook: privileged"),
        (
            CERNSpawner,
            {"volumes": [{"name": "host", "hostPath": {"path": "/"}}]},
            "volume host: ['hostPath']",
        ),
        (CERNSpawner, {"extra_pod_config": {"hostNetwork": True}}, "pod: hostNetwork"),
        (
            CERNSpawner,
            {"pod_security_context": {"seccompProfile": {"type": "Unconfined"}}},
            "pod: seccompProfile is not RuntimeDefault",
        ),
    ],
    ids=[
        "plain-kubespawner-root",
        "plain-kubespawner-caps",
        "privileged",
        "host-path",
        "host-network",
        "seccomp",
    ],
)
async def test_checker_catches_violations(spawner_class, config, expected):
    pod = await pod_for({}, spawner_class=spawner_class, **config)
    assert expected in restricted_violations(pod)

"""The pod manifest KubeSpawner would create for each profile, built without a cluster."""

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from kubespawner import KubeSpawner
from tornado import web
from traitlets.config import Config

from cern_spawner import CERNSpawner
from cern_spawner.bounded import Bounded
from cern_spawner.catalog.to_kubespawner import ProfileEntry, ProfileList

# Own event loop per test: kubespawner caches API clients per running loop, and these clients are
# built without a kube config, so they must never be shared with integration tests.
pytestmark = [pytest.mark.unit, pytest.mark.asyncio(loop_scope="function")]

PROFILES_DIR = Path(__file__).resolve().parents[2] / "profiles"
GPU_ROLE = "gpu-users"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}

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


def make_spawner(spawner_class=CERNSpawner, roles=(), auth_state=None, **config):
    """A spawner for a mock user holding JupyterHub groups named `roles` (and `auth_state`)."""
    c = Config()
    c.CERNSpawner.profiles_path = [str(PROFILES_DIR)]
    for name, value in config.items():
        setattr(c[spawner_class.__name__], name, value)
    spawner = spawner_class(_mock=True, config=c)
    # KubeSpawner's _mock user is a bare MockObject: give it what JupyterHub's User has and
    # CERNSpawner reads (groups with a .name, admin, get_auth_state).
    spawner.user.groups = [SimpleNamespace(name=role) for role in roles]
    spawner.user.admin = False

    async def get_auth_state():
        return auth_state

    spawner.user.get_auth_state = get_auth_state
    return spawner


async def spawn(spawner, user_options):
    """The pod manifest (as the JSON sent to the API server) for `spawner` starting user_options.

    As JupyterHub does: its apply_user_options hook (CERNSpawner's checks) runs first, then
    KubeSpawner's load_user_options applies the chosen profile.
    """
    spawner.user_options = user_options
    if isinstance(spawner, CERNSpawner):
        await spawner._check_user_options(spawner, user_options)
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    return spawner.api.api_client.sanitize_for_serialization(pod)


async def pod_for(user_options, spawner_class=CERNSpawner, roles=(), **config):
    """The pod manifest for a fresh spawner whose user has `roles` choosing user_options."""
    return await spawn(make_spawner(spawner_class, roles=roles, **config), user_options)


def roles_for(slug):
    return (GPU_ROLE,) if slug.startswith("gpu") else ()


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
    pod = await pod_for({"profile": slug}, roles=roles_for(slug))
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
    pod = await pod_for({"profile": "gpu-1"}, roles=[GPU_ROLE])
    resources = notebook(pod)["resources"]
    assert resources["requests"] == resources["limits"]
    assert resources["limits"]["nvidia.com/gpu"] == "1"
    assert pod["spec"]["tolerations"] == [GPU_TOLERATION]
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
    ids=["service-account-no-token", "token-when-asked", "uid"],
)
async def test_configuration_is_honoured(config, check):
    assert check(await pod_for({"profile": "gpu-1"}, roles=[GPU_ROLE], **config))


async def test_node_group_label_comes_from_the_catalog(tmp_path):
    text = (PROFILES_DIR / "default.yaml").read_text()
    old = "  gpu-v100:\n"
    assert old in text
    (tmp_path / "default.yaml").write_text(
        text.replace(old, old + "    label: node.cluster.x-k8s.io/nodegroup\n")
    )
    pod = await pod_for({"profile": "gpu-1"}, roles=[GPU_ROLE], profiles_path=[str(tmp_path)])
    assert pod["spec"]["nodeSelector"] == {"node.cluster.x-k8s.io/nodegroup": "gpu-v100"}


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


# -- who may start what: CERNSpawner's apply_user_options hook --------------------------------


async def test_the_check_is_the_apply_user_options_hook():
    spawner = make_spawner()
    assert spawner.apply_user_options == spawner._check_user_options


@pytest.mark.parametrize(
    "roles, user_options, status, named",
    [
        ((), {"profile": "gpu-1"}, 403, GPU_ROLE),
        (("physics",), {"profile": "gpu-1"}, 403, GPU_ROLE),
        ((), {"profile": "gpu-9"}, 400, "gpu-9"),
        ((GPU_ROLE,), {"profile": "no-such-profile"}, 400, "no-such-profile"),
        ((GPU_ROLE,), {"profile": "gpu-1", "image": "x"}, 400, "image"),
    ],
    ids=[
        "gpu-without-role",
        "gpu-with-other-role",
        "unknown-gpu-profile",
        "unknown-profile",
        "unknown-option",
    ],
)
async def test_refused_options(roles, user_options, status, named):
    spawner = make_spawner(roles=roles)
    with pytest.raises(web.HTTPError) as raised:
        await spawner._check_user_options(spawner, user_options)
    assert raised.value.status_code == status
    assert named in raised.value.log_message
    # Refused before KubeSpawner applied anything.
    assert spawner.node_selector == {}
    assert spawner.extra_resource_limits == {}


# -- overrides of one spawn never leak into the next (the same spawner object serves them all) --

PROFILE_ROWS = {row[0]: row for row in PROFILES}


def assert_pod_is(pod, slug):
    """The pod is exactly what `slug` alone gives: nothing left over from an earlier profile."""
    _, node_group, requests, limits = PROFILE_ROWS[slug]
    spec = pod["spec"]
    resources = notebook(pod)["resources"]
    assert resources == {"requests": requests, "limits": limits}
    assert spec["nodeSelector"] == {"magnum.openstack.org/nodegroup": node_group}
    assert pod["metadata"]["labels"]["cern-spawner/profile"] == slug
    if slug.startswith("gpu"):
        assert resources["requests"] == resources["limits"]
        assert resources["limits"]["nvidia.com/gpu"] == "1"
        assert spec["tolerations"] == [GPU_TOLERATION]
        assert "topologySpreadConstraints" not in spec
    else:
        assert "nvidia.com/gpu" not in resources["requests"]
        assert "nvidia.com/gpu" not in resources["limits"]
        assert GPU_TOLERATION not in (spec.get("tolerations") or [])
        assert resources["requests"] != resources["limits"]  # burstable QoS, not guaranteed
        assert len(spec["topologySpreadConstraints"]) == 1


@pytest.mark.parametrize(
    "slugs",
    [
        ("gpu-1", "shared-2g", "gpu-1"),
        ("shared-4g", "shared-1g"),
        ("shared-1g", "gpu-1", "shared-4g", "shared-4g", "gpu-1", "shared-1g"),
    ],
    ids=["gpu-shared-gpu", "4g-1g", "mixed"],
)
async def test_overrides_never_leak_between_spawns(slugs):
    spawner = make_spawner(roles=[GPU_ROLE])
    for slug in slugs:
        assert_pod_is(await spawn(spawner, {"profile": slug}), slug)


async def test_default_after_gpu_is_the_plain_default():
    spawner = make_spawner(roles=[GPU_ROLE])
    assert_pod_is(await spawn(spawner, {"profile": "gpu-1"}), "gpu-1")
    assert_pod_is(await spawn(spawner, {}), "shared-2g")


async def test_configured_values_survive_profile_overrides():
    # What a profile overrides goes back to the admin's configured value, not to the trait default.
    spawner = make_spawner(roles=[GPU_ROLE], tolerations=[{"key": "site", "operator": "Exists"}])
    gpu = await spawn(spawner, {"profile": "gpu-1"})
    assert gpu["spec"]["tolerations"] == [GPU_TOLERATION]
    shared = await spawn(spawner, {"profile": "shared-2g"})
    assert shared["spec"]["tolerations"] == [{"key": "site", "operator": "Exists"}]


# -- roles, from groups or auth_state; the offered profile_list ---------------------------------


@pytest.mark.parametrize(
    "roles_source, groups, auth_state, offered",
    [
        ("groups", (GPU_ROLE,), None, True),
        ("groups", (), {"roles": [GPU_ROLE]}, False),
        ("auth_state", (), {"roles": [GPU_ROLE]}, True),
        ("auth_state", (), {"roles": ["physics", GPU_ROLE]}, True),
        ("auth_state", (), {"roles": GPU_ROLE}, False),
        ("auth_state", (), {"roles": [GPU_ROLE, 7]}, False),
        ("auth_state", (), {"roles": {GPU_ROLE: True}}, False),
        ("auth_state", (), {}, False),
        ("auth_state", (), None, False),
        ("auth_state", (GPU_ROLE,), {"roles": []}, False),
    ],
    ids=[
        "groups",
        "groups-ignore-auth-state",
        "auth-state",
        "auth-state-several",
        "auth-state-string",
        "auth-state-non-string-item",
        "auth-state-mapping",
        "auth-state-no-key",
        "no-auth-state",
        "auth-state-ignores-groups",
    ],
)
async def test_gpu_offered_by_role(roles_source, groups, auth_state, offered):
    spawner = make_spawner(roles=groups, auth_state=auth_state, roles_source=roles_source)
    slugs = [entry["slug"] for entry in await spawner.profile_list(spawner)]
    assert ("gpu-1" in slugs) is offered
    assert slugs[:3] == ["shared-1g", "shared-2g", "shared-4g"]
    if offered:
        assert_pod_is(await spawn(spawner, {"profile": "gpu-1"}), "gpu-1")
    else:  # fail closed: not offered means refused, whatever the form showed
        with pytest.raises(web.HTTPError) as raised:
            await spawner._check_user_options(spawner, {"profile": "gpu-1"})
        assert raised.value.status_code == 403


@pytest.mark.parametrize(
    "fixed, groups, offered",
    [
        ({"mock@name": [GPU_ROLE]}, (), True),
        ({"mock@name": ["physics"]}, (GPU_ROLE,), True),
        ({"someone-else": [GPU_ROLE]}, (), False),
        ({}, (), False),
    ],
    ids=["fixed-role", "added-to-sso-roles", "another-users", "none"],
)
async def test_fixed_roles_add_to_the_sso_roles_of_that_user_only(fixed, groups, offered):
    spawner = make_spawner(roles=groups, fixed_roles=fixed)
    assert spawner.user.name == "mock@name"  # KubeSpawner's mock user
    assert ("gpu-1" in [entry["slug"] for entry in await spawner.profile_list(spawner)]) is offered


async def test_auth_state_roles_key_is_configurable():
    spawner = make_spawner(
        auth_state={"groups": [GPU_ROLE]}, roles_source="auth_state", auth_state_roles_key="groups"
    )
    assert "gpu-1" in [entry["slug"] for entry in await spawner.profile_list(spawner)]


@pytest.mark.parametrize(
    "roles, slugs",
    [
        ((), ["shared-1g", "shared-2g", "shared-4g"]),
        (("physics",), ["shared-1g", "shared-2g", "shared-4g"]),
        ((GPU_ROLE,), ["shared-1g", "shared-2g", "shared-4g", "gpu-1"]),
    ],
    ids=["no-roles", "other-role", "gpu-role"],
)
async def test_offered_profile_list(roles, slugs):
    spawner = make_spawner(roles=roles)
    assert callable(spawner.profile_list)
    first = await spawner.profile_list(spawner)
    second = await spawner.profile_list(spawner)
    assert [entry["slug"] for entry in first] == slugs
    assert [entry["slug"] for entry in first if entry["default"]] == ["shared-2g"]
    # Equal, but fresh objects: KubeSpawner mutates the entries it applies.
    assert first == second
    assert first is not second
    assert all(a is not b for a, b in zip(first, second, strict=True))
    assert first[0]["kubespawner_override"] is not second[0]["kubespawner_override"]
    first[0]["kubespawner_override"]["node_selector"]["x"] = "y"
    assert "x" not in (await spawner.profile_list(spawner))[0]["kubespawner_override"]["node_selector"]


def checked_profiles(form: str) -> list[str]:
    return re.findall(r'value="([^"]+)"\s+checked', form)


@pytest.mark.parametrize(
    ("saved", "roles", "checked"),
    [
        pytest.param({}, (), ["shared-2g"], id="nothing-saved"),
        pytest.param({"profile": "shared-4g"}, (), ["shared-4g"], id="saved-profile"),
        pytest.param({"profile": "removed-from-yaml"}, (), ["shared-2g"], id="saved-profile-removed"),
        pytest.param({"profile": "gpu-1"}, (), ["shared-2g"], id="saved-profile-role-lost"),
        pytest.param({"profile": "gpu-1"}, ("gpu-users",), ["gpu-1"], id="saved-gpu-with-role"),
    ],
)
async def test_the_form_preselects_a_valid_saved_choice_or_the_default(saved, roles, checked):
    spawner = make_spawner(roles=roles)
    spawner.user_options = saved
    form = await spawner._render_options_form_dynamically(spawner)
    assert checked_profiles(form) == checked
    assert spawner.user_options == saved  # rendering does not change what was saved


async def test_a_start_copies_only_the_profile_it_applies(monkeypatch):
    # Each copy of a 1,000-profile list costs milliseconds: the checks and the form read the
    # shared list, and a start deep-copies only the entry KubeSpawner applies (KubeSpawner's own
    # load_user_options copies the whole list, and profile_list hands out a copy of it first).
    monkeypatch.setattr(CERNSpawner, "_form_cache", Bounded(max_entries=1024))
    copies = []
    copy_list, copy_entry = ProfileList.__deepcopy__, ProfileEntry.__deepcopy__

    def counted_list(self, memo):
        copies.append(len(self))
        return copy_list(self, memo)

    def counted_entry(self, memo):
        copies.append(self["slug"])
        return copy_entry(self, memo)

    monkeypatch.setattr(ProfileList, "__deepcopy__", counted_list)
    monkeypatch.setattr(ProfileEntry, "__deepcopy__", counted_entry)
    spawner = make_spawner(roles=(GPU_ROLE,))
    await spawner._render_options_form_dynamically(spawner)
    assert copies == []
    await spawn(spawner, {"profile": "gpu-1"})
    assert copies == ["gpu-1"]


TEMPLATES = {
    "no-field": "cern-spawner/node-group",
    "dash-ended": "keep-this-",
    "empty": "",
    "field": "jupyter-{username}",
    "fields-dashes": "{username}--{servername}",
    "escaped-braces": "a{{literal}}b",
}


@pytest.mark.parametrize("template", TEMPLATES.values(), ids=TEMPLATES.keys())
async def test_strings_are_expanded_as_kubespawner_expands_them(template):
    # CERNSpawner skips KubeSpawner's per-string work for strings without a field: same result.
    ours, theirs = make_spawner(), make_spawner(KubeSpawner)
    for spawner in (ours, theirs):
        spawner.user.name = "Alice.Smith"
    assert ours._expand_user_properties(template) == theirs._expand_user_properties(template)

"""The doctor's verdicts, pure: node groups against nodes and the cloud, GPUs, permissions, image
names, git hosts, the catalog, and the settings read from a hub config."""

from __future__ import annotations

import json
from types import MappingProxyType

import keystoneauth1.exceptions as ks_exceptions
import pytest
import requests
from openstack import exceptions as os_exceptions
from traitlets.config import Config

from cern_spawner.catalog import GPU, NodeGroup
from cern_spawner.cli import main
from cern_spawner.doctor import access, cloud, cluster, plan, web
from cern_spawner.doctor.command import kube_client
from cern_spawner.doctor.settings import SSO, Binder, DoctorSettings, from_config
from cern_spawner.scaling.errors import PermanentError
from cern_spawner.scaling.magnum import GroupState, translate
from sandbox.controlplane import free_port

pytestmark = pytest.mark.unit

LABEL = "magnum.openstack.org/nodegroup"


def group(name="gpu-a100", *, gpu=True, mode="resize", low=0, high=4, scaled=True) -> NodeGroup:
    scaling = {"backend": "magnum", "cluster": "hub", "mode": mode, "min_nodes": low}
    if high is not None:
        scaling["max_nodes"] = high
    return NodeGroup(
        name=name,
        gpu=GPU(per_node=4) if gpu else None,
        scaling=MappingProxyType(scaling) if scaled else None,
    )


def node(name, group_name="gpu-a100", *, gpus="4", ready=True, cordoned=False) -> cluster.NodeFacts:
    return cluster.NodeFacts(
        name=name,
        labels={LABEL: group_name},
        allocatable={"cpu": "16", **({"nvidia.com/gpu": gpus} if gpus is not None else {})},
        ready=ready,
        schedulable=not cordoned,
    )


def state(nodes=0, low=0, high=4, status="UPDATE_COMPLETE", autoscaled=False) -> GroupState:
    return GroupState("gpu-a100", nodes, low, high, status, "", autoscaled)


@pytest.mark.parametrize(
    "catalog_group, cloud_state, expected",
    [
        (group(), state(), []),
        (group(high=None), state(), [("max_nodes is 0", True)]),
        (group(mode="raise-min"), state(autoscaled=True), []),
        (group(mode="raise-min"), state(), [("no autoscaler", True)]),
        (group(), state(autoscaled=True), [("autoscaler removes idle nodes", True)]),
        (group(), state(low=1), [("min_node_count 1 is above min_nodes 0", False)]),
        (group(mode="raise-min"), state(low=1, autoscaled=True), []),
        (group(), state(high=2), []),  # growth raises the cloud's max itself
        (group(), state(status="UPDATE_FAILED"), [("UPDATE_FAILED", False)]),
    ],
    ids=[
        "fits",
        "no-max",
        "raise-min-autoscaled",
        "raise-min-without-autoscaler",
        "resize-on-autoscaled",
        "cloud-min-above-ours",
        "raise-min-lowers-the-cloud-min",
        "cloud-max-below-ours",
        "cloud-group-failed",
    ],
)
def test_min_max_and_mode_fit_the_cloud(catalog_group, cloud_state, expected):
    problems = cloud.fit(catalog_group, cloud_state)
    assert [(p.fatal) for p in problems] == [fatal for _, fatal in expected]
    for problem, (words, _) in zip(problems, expected, strict=True):
        assert words in problem.text
        assert problem.fix


def cloud_error(status: int) -> PermanentError:
    try:
        try:
            response = requests.Response()
            response.status_code, response._content = status, b'{"errors": [{"detail": "nope"}]}'
            raise os_exceptions.HttpException(message="nope", response=response)
        except os_exceptions.HttpException as e:
            raise translate(e, "get node group gpu-a100") from e
    except PermanentError as error:
        return error


@pytest.mark.parametrize(
    "catalog_group, nodes, answer, growth_on, status, words",
    [
        (group(scaled=False), [node("n1")], None, True, "ok", "1 usable node labelled"),
        (group(scaled=False), [], None, True, "FAIL", f"no node is labelled {LABEL}=gpu-a100"),
        (group(scaled=False), [node("n1", "other")], None, True, "FAIL", "no node is labelled"),
        (group(scaled=False), [node("n1", ready=False), node("n2", cordoned=True)], None, True, "FAIL",
         "n1, n2) are all not Ready or cordoned"),
        (group(), [], cloud.CloudGroup(group(), state()), True, "ok", "Magnum cluster hub has it (0 nodes"),
        (group(), [], cloud.CloudGroup(group(), error=cloud_error(404)), True, "FAIL",
         "The node group does not exist in the cloud"),
        (group(), [], cloud.CloudGroup(group(), state(autoscaled=True)), True, "FAIL", "autoscaler"),
        (group(), [node("n1")], cloud.CloudGroup(group(), state(1, low=1)), True, "warn",
         "never shrinks below 1"),
        (group(), [], None, False, "FAIL", "GPU growth is off"),
        (group(), [node("n1")], None, False, "warn", "GPU growth is off"),
    ],
    ids=[
        "labelled-nodes",
        "no-nodes",
        "nodes-of-another-group",
        "none-usable",
        "scalable-from-zero",
        "cloud-has-no-such-group",
        "mode-does-not-fit",
        "cloud-min-above-ours",
        "growth-off-and-empty",
        "growth-off-with-nodes",
    ],
)  # fmt: skip
def test_node_group_verdict(catalog_group, nodes, answer, growth_on, status, words):
    result = cluster.node_group_verdict(catalog_group, ["a100-1"], nodes, answer, growth_on)
    assert result.name == "node group gpu-a100"
    assert (result.status, words in result.detail) == (status, True), result
    if status != "ok":
        assert result.fix


def test_a_missing_cloud_group_says_how_to_create_it():
    result = cluster.node_group_verdict(
        group(), [], [], cloud.CloudGroup(group(), error=cloud_error(404)), growth_on=True
    )
    assert "openstack coe nodegroup create hub gpu-a100" in result.fix


@pytest.mark.parametrize(
    "nodes, status, words",
    [
        ([node("n1"), node("n2")], "ok", "2 nodes offer 4 nvidia.com/gpu each"),
        ([node("n1"), node("n2", gpus="2")], "FAIL", "n2 offers 2"),
        ([node("n1", gpus=None)], "FAIL", "n1 offers 0"),
        ([], "skip", "no nodes yet"),
    ],
    ids=["all-offer", "one-short", "no-device-plugin", "empty-group"],
)
def test_gpu_verdict(nodes, status, words):
    result = cluster.gpu_verdict(group(), nodes)
    assert (result.status, words in result.detail) == (status, True), result


MIG = GPU(
    per_node=1,
    product="NVIDIA-A100-SXM4-40GB",
    mig_slices=MappingProxyType({"1g.5gb": 7}),
    mig_config="all-1g.5gb",
)
MIG_RESOURCE = "nvidia.com/mig-1g.5gb"


def mig_node(name, slices="7", layout="all-1g.5gb") -> cluster.NodeFacts:
    labels = {LABEL: "gpu-a100", **({"nvidia.com/mig.config": layout} if layout else {})}
    return cluster.NodeFacts(name, labels, {MIG_RESOURCE: slices, "nvidia.com/gpu": "0"}, True, True)


@pytest.mark.parametrize(
    "gpu, nodes, status, words",
    [
        (
            MIG,
            [mig_node("n1")],
            "ok",
            f"1 node offers 7 {MIG_RESOURCE} (nvidia.com/mig.config=all-1g.5gb) each",
        ),
        (MIG, [mig_node("n1", slices="3")], "FAIL", f"n1 offers 3 {MIG_RESOURCE}"),
        (MIG, [mig_node("n1", layout=None)], "FAIL", "n1 has nvidia.com/mig.config=(none)"),
        (GPU(per_node=4, replicas=4), [node("n1", gpus="16")], "ok", "offers 16 nvidia.com/gpu each"),
        (GPU(per_node=4, replicas=4), [node("n1", gpus="4")], "FAIL", "n1 offers 4 nvidia.com/gpu"),
    ],
    ids=["mig", "mig-slices-missing", "mig-layout-missing", "time-sliced", "time-slicing-off"],
)
def test_partitioned_gpus_are_checked_as_the_nodes_advertise_them(gpu, nodes, status, words):
    partitioned = NodeGroup(name="gpu-a100", gpu=gpu)
    result = cluster.gpu_verdict(partitioned, nodes)
    assert (result.status, words in result.detail) == (status, True), result


def test_catalog_warnings_make_a_warning(tmp_path):
    """A catalog that loads with warnings (here a max_age shorter than the idle timeout) is served,
    so the row passes, as a warning quoting them."""
    ages = "node_group: default-worker,\n     idle_timeout: 3600, max_age: 600}"
    odd = CATALOG.replace("node_group: default-worker}", ages, 1)
    (tmp_path / "p.yaml").write_text(odd)
    result, catalog = plan.catalog_result((str(tmp_path),))
    assert catalog is not None and catalog.warnings
    assert result.status == "warn"
    assert str(catalog.warnings[0]) in result.detail


def test_node_facts_from_the_api_servers_json():
    facts = cluster.node_facts(
        {
            "metadata": {"name": "n1", "labels": {LABEL: "gpu-v100"}},
            "spec": {"unschedulable": True},
            "status": {
                "allocatable": {"nvidia.com/gpu": "4"},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }
    )
    assert facts == cluster.NodeFacts("n1", {LABEL: "gpu-v100"}, {"nvidia.com/gpu": "4"}, True, False)


NAMESPACES = {access.NOTEBOOKS: "users", access.BUILDS: "builds"}


@pytest.mark.parametrize(
    "binder, scaling, has, lacks",
    [
        (False, False, ("create", "pods", "notebooks"), ("patch", "nodes", "cluster")),
        (False, True, ("patch", "nodes", "cluster"), ("create", "pods", "builds")),
        (True, False, ("create", "pods", "builds"), ("patch", "nodes", "cluster")),
    ],
    ids=["plain", "gpu-growth", "binder"],
)
def test_required_access_follows_the_features(binder, scaling, has, lacks):
    wanted = {(a.verb, a.resource, a.where) for a in access.required(binder=binder, scaling=scaling)}
    assert has in wanted and lacks not in wanted


@pytest.mark.parametrize(
    "entry, attributes",
    [
        (access.Access("create", "pods", access.NOTEBOOKS, ""), {"namespace": "users"}),
        (access.Access("list", "pods", access.CLUSTER, ""), {}),
        (access.Access("get", "pods", access.BUILDS, "", subresource="log"),
         {"namespace": "builds", "subresource": "log"}),
    ],
    ids=["namespaced", "every-namespace", "subresource"],
)  # fmt: skip
def test_review_asks_for_exactly_the_access(entry, attributes):
    spec = access.review(entry, NAMESPACES)["spec"]["resourceAttributes"]
    assert spec == {"verb": entry.verb, "resource": "pods", "group": "", **attributes}


def test_access_verdict_lists_what_is_denied_and_why():
    wanted = access.required(binder=False, scaling=True)
    allowed = [not (a.resource == "nodes" and a.verb == "list") for a in wanted]
    result = access.verdict("permissions", wanted, allowed, NAMESPACES, "system:serviceaccount:hub:hub")
    assert result.status == "FAIL"
    assert (
        f"1 of {len(wanted)} permissions denied as system:serviceaccount:hub:hub: list nodes (free GPUs"
        in (result.detail)
    )
    assert "templates/rbac.yaml" in result.fix
    ok = access.verdict("permissions", wanted, [True] * len(wanted), NAMESPACES, "")
    assert ok.status == "ok"


@pytest.mark.parametrize(
    "image, registry, repository, reference",
    [
        ("registry.cern.ch/swan/notebook:2026.1", "registry.cern.ch", "swan/notebook", "2026.1"),
        ("10.0.0.1:5000/doctor/nb:1", "10.0.0.1:5000", "doctor/nb", "1"),
        ("localhost/nb", "localhost", "nb", "latest"),
        ("jupyter/scipy-notebook:2024-05-27", "registry-1.docker.io", "jupyter/scipy-notebook", "2024-05-27"),
        ("python", "registry-1.docker.io", "library/python", "latest"),
        ("docker.io/library/python:3.12", "registry-1.docker.io", "library/python", "3.12"),
        ("quay.io/jupyter/base@sha256:" + "a" * 64, "quay.io", "jupyter/base", "sha256:" + "a" * 64),
    ],
    ids=["tag", "host-port", "localhost", "docker-hub-org", "docker-hub-official", "docker-io", "digest"],
)
def test_image_names_as_a_runtime_reads_them(image, registry, repository, reference):
    ref = web.image_ref(image)
    assert (ref.registry, ref.repository, ref.tag) == (registry, repository, reference)


@pytest.mark.parametrize(
    "image", ["Jupyter/Base", "quay.io/x@sha256:zz", "quay.io/x:"], ids=["case", "digest", "tag"]
)
def test_bad_image_names_are_refused(image):
    with pytest.raises(ValueError):
        web.image_ref(image)


def test_docker_config_credentials_per_registry(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"auths": {"https://registry.cern.ch": {"auth": "dXNlcjpwYXNz"}}}')
    assert web.docker_credentials(str(path), "registry.cern.ch") == ("user", "pass")
    assert web.docker_credentials(str(path), "quay.io") == (None, None)
    assert web.docker_credentials("", "quay.io") == (None, None)


def test_git_origins_ask_each_host_and_set_wildcards_aside():
    origins, wildcards = web.git_origins(
        ["github.com", "*.cern.ch", "git.example:8443"], ["http://10.0.0.1:9418/"]
    )
    assert origins == ["https://github.com", "https://git.example:8443", "http://10.0.0.1:9418"]
    assert wildcards == ["*.cern.ch"]


def test_a_keystone_refusal_says_the_credentials_were_rejected():
    error = translate(
        ks_exceptions.Unauthorized("The request you have made requires authentication."), "log in"
    )
    assert isinstance(error, PermanentError)
    assert error.user_message == "The hub's OpenStack credentials were rejected."
    assert "clouds.yaml" in cloud.fix_for(error)


CATALOG = """
node_groups:
  default-worker: {}
profiles:
  - {slug: a, display_name: A, kind: shared, cpu: 1, memory: 1G, node_group: default-worker}
  - {slug: b, display_name: B, kind: shared, cpu: 1, memory: 1G, node_group: default-worker,
     image: "quay.io/x:1"}
  - slug: c
    display_name: C
    kind: shared
    cpu: 1
    memory: 1G
    node_group: default-worker
    image_choices:
      one: {display_name: One, image: "quay.io/x:1"}
      two: {display_name: Two, image: "quay.io/y:2"}
"""


def test_catalog_result_and_the_images_profiles_use(tmp_path):
    (tmp_path / "p.yaml").write_text(CATALOG)
    result, catalog = plan.catalog_result((str(tmp_path),))
    assert (result.status, result.detail) == ("ok", f"3 profiles, 1 node groups from {tmp_path}")
    settings = from_config(_config(tmp_path))
    assert plan.images(settings, catalog) == {
        "default/image:1": ["a"],
        "quay.io/x:1": ["b", "c"],
        "quay.io/y:2": ["c"],
    }


def test_catalog_problems_are_the_detail(tmp_path):
    (tmp_path / "p.yaml").write_text(
        CATALOG.replace("memory: 1G, node_group: default-worker}", "memory: 1G}", 1)
    )
    result, catalog = plan.catalog_result((str(tmp_path),))
    assert catalog is None and result.status == "FAIL"
    assert "p.yaml:5" in result.detail and "node_group" in result.detail
    assert "cern-spawner profiles validate" in result.fix


def _config(profiles) -> Config:
    c = Config()
    c.JupyterHub.authenticator_class = "cern"
    c.CERNSpawner.profiles_path = [str(profiles)]
    c.KubeSpawner.namespace = "users"
    c.KubeSpawner.image = "default/image:1"
    c.CERNAuthenticator.issuer_url = "https://sso.example/realms/cern"
    c.GPUScaling.openstack_cloud = "cern"
    c.BinderConfig.registry = "registry.example"
    c.BinderConfig.insecure_origins = ["http://git.example:8080"]
    return c


def test_settings_are_the_hubs_own(tmp_path):
    settings = from_config(_config(tmp_path))
    assert settings.profiles == (str(tmp_path),)
    assert (settings.namespace, settings.default_image, settings.openstack_cloud) == (
        "users",
        "default/image:1",
        "cern",
    )
    assert settings.sso.issuer == "https://sso.example/realms/cern" and not settings.sso.explicit
    assert settings.binder.registry == "registry.example"
    assert settings.binder.allowed_hosts == ("github.com", "gitlab.cern.ch")  # BinderConfig's default
    assert settings.binder.insecure_origins == ("http://git.example:8080",)


def test_settings_without_cern_sso_or_binder(tmp_path):
    c = _config(tmp_path)
    c.JupyterHub.authenticator_class = "dummy"
    c.BinderConfig.registry = ""
    settings = from_config(c)
    assert settings.sso is None and settings.binder is None and settings.registry_auth == ""


def _plan_settings(tmp_path, **changes) -> DoctorSettings:
    values = dict(profiles=(str(tmp_path),), namespace="users", default_image="quay.io/x:1")
    return DoctorSettings(**{**values, **changes})


@pytest.mark.parametrize(
    "changes, names",
    [
        ({}, ["node group default-worker", "image quay.io/x:1", "image quay.io/y:2", "permissions"]),
        (
            {"openstack_cloud": "cern", "sso": SSO("https://sso.example/realms/cern")},
            ["node group default-worker", "cloud login", "image quay.io/x:1", "image quay.io/y:2",
             "SSO discovery", "permissions"],
        ),
        (
            {"binder": Binder("registry.example", allowed_hosts=("github.com", "*.cern.ch"))},
            ["node group default-worker", "image quay.io/x:1", "image quay.io/y:2", "permissions",
             "Binder registry", "git github.com", "git wildcards"],
        ),
    ],
    ids=["plain", "growth-and-sso", "binder"],
)  # fmt: skip
def test_the_plan_follows_the_features_on(tmp_path, changes, names):
    every_image_named = CATALOG.replace(
        "node_group: default-worker}", 'node_group: default-worker, image: "quay.io/x:1"}', 1
    )
    (tmp_path / "p.yaml").write_text(every_image_named)
    settings = _plan_settings(tmp_path, **changes)
    _, catalog = plan.catalog_result(settings.profiles)
    checks = plan.plan(settings, catalog, plan.Clients(None, "no kubeconfig"), timeout=1)
    assert [check.name for check in checks] == names


async def test_without_a_kubernetes_api_its_checks_fail_saying_how_to_give_one(tmp_path):
    (tmp_path / "p.yaml").write_text(CATALOG)
    settings = _plan_settings(tmp_path)
    _, catalog = plan.catalog_result(settings.profiles)
    checks = plan.plan(settings, catalog, plan.Clients(None, "no kubeconfig (none found)"), timeout=1)
    kube = [check for check in checks if check.name in ("node group default-worker", "permissions")]
    for result in [await check.run() for check in kube]:
        assert result.status == "FAIL"
        assert result.detail == "no Kubernetes API: no kubeconfig (none found)"
        assert "--kubeconfig" in result.fix


def test_a_hub_config_that_does_not_load_is_one_failed_row(tmp_path, capsys):
    broken = tmp_path / "jupyterhub_config.py"
    broken.write_text("c = get_config()\nc.KubeSpawner.namespace = undefined_name\n")
    assert main(["doctor", "--config", str(broken), "--json"]) == 1
    (row,) = json.loads(capsys.readouterr().out)["checks"]
    assert (row["name"], row["result"]) == ("hub config", "fail")
    assert "NameError" in row["detail"] and str(broken) in row["detail"]


@pytest.mark.parametrize("content", [None, "not: a kubeconfig\n"], ids=["missing", "not-a-kubeconfig"])
async def test_a_kubeconfig_that_does_not_load_is_said(tmp_path, content):
    path = tmp_path / "kubeconfig"
    if content is not None:
        path.write_text(content)
    api, why = await kube_client(str(path), "")
    assert api is None and why.startswith("no Kubernetes configuration (")


async def test_an_unreachable_registry_says_nodes_may_still_pull():
    closed = f"127.0.0.1:{free_port()}"
    result = await web.check_image(f"{closed}/x:1", ["a"], http_registries=[closed], request_timeout=5)
    assert result.status == "FAIL" and result.detail.startswith(f"Could not reach the registry {closed}")
    assert "networkPolicy.hub.egressAllowed" in result.fix

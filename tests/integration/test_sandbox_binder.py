"""The sandbox's Binder pieces on a running sandbox: the git server and the registry that `sandbox
up` starts, the sandbox builder (on the host and as a build pod) and the node agent pulling a built
image's content into the container's home directory."""

from __future__ import annotations

import ast
import ipaddress
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests

from sandbox.builder import oci
from tests.integration.test_cluster import pod
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
LIST_HOME = (
    "import os; home = os.environ['HOME']; print('HOME', home, sorted(os.listdir(home))); "
    "print('README', open(os.path.join(home, 'README.md')).readline().strip())"
)


def image_for(sandbox, repo: str) -> str:
    """A fresh image name in the sandbox registry per call: tests never see each other's pushes."""
    commit = sandbox["git"]["repos"][repo]["commit"]
    return f"{sandbox['registry']['host']}/binder-test/{repo}-{uuid.uuid4().hex[:8]}:{commit}"


def build(sandbox, repo: str, image: str) -> subprocess.CompletedProcess:
    spec = sandbox["git"]["repos"][repo]
    command = ["--repo", spec["url"], "--ref", spec["commit"], "--image", image]
    return subprocess.run(
        [sys.executable, "-m", "sandbox.builder", *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def manifest_status(image: str) -> int:
    host, _, rest = image.partition("/")
    name, _, tag = rest.rpartition(":")
    response = requests.head(
        f"http://{host}/v2/{name}/manifests/{tag}", headers={"Accept": OCI_MANIFEST}, timeout=10
    )
    return response.status_code


def finished(core, namespace: str, name: str):
    current = core.read_namespaced_pod(name, namespace)
    return current if current.status.phase in ("Succeeded", "Failed") else None


def pod_log(sandbox, current) -> str:
    """What the container printed, from the node agent's log file (pod logs via the API aside)."""
    meta = current.metadata
    directory = f"{meta.namespace}_{meta.name}_{meta.uid}"
    return (Path(sandbox["state_dir"]) / "logs" / "pods" / directory / "main.log").read_text()


def events(core, namespace: str, name: str) -> list[tuple[str, str]]:
    found = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
    return [(e.reason, e.message) for e in found]


@pytest.fixture(scope="module")
def pushed(sandbox):
    """The `requirements` repository built on the host into the sandbox registry."""
    image = image_for(sandbox, "requirements")
    result = build(sandbox, "requirements", image)
    assert result.returncode == 0, result.stdout + result.stderr
    return image, result.stdout


def test_settings_name_the_git_server_and_the_registry(sandbox):
    gateway = str(ipaddress.IPv4Network(sandbox["pod_network"]["cidr"]).network_address + 1)
    assert sandbox["registry"]["host"].startswith(f"{gateway}:"), "pods reach the registry at the gateway"
    assert sandbox["registry"]["url"] == f"http://{sandbox['registry']['host']}"
    assert sandbox["git"]["url"].startswith(f"http://{gateway}:")
    assert set(sandbox["git"]["repos"]) == {"requirements", "conda", "broken", "slow"}
    for name, repo in sandbox["git"]["repos"].items():
        assert repo["url"] == f"{sandbox['git']['url']}/{name}.git"
        assert len(repo["commit"]) == 40


@pytest.mark.parametrize("repo", ["requirements", "conda", "broken"])
def test_git_ls_remote_lists_main_and_the_tag(sandbox, repo):
    spec = sandbox["git"]["repos"][repo]
    out = subprocess.run(
        ["git", "ls-remote", "--", spec["url"]],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"},
    )
    assert out.returncode == 0, out.stderr
    refs = {name: sha for sha, name in (line.split("\t") for line in out.stdout.splitlines())}
    assert refs["refs/heads/main"] == refs["refs/tags/v1^{}"] == spec["commit"]


def test_builder_pushes_an_oci_manifest_the_registry_answers(sandbox, pushed):
    image, output = pushed
    assert "repo2docker 2026.4.0 would use the PythonBuildPack" in output
    assert output.strip().splitlines()[-1].startswith(f"Pushed {image} (sha256:")
    assert manifest_status(image) == 200
    missing = image.rsplit(":", 1)[0] + ":" + "0" * 40
    assert manifest_status(missing) == 404


def test_a_pushed_image_can_be_deleted_so_the_next_launch_builds(sandbox):
    image = image_for(sandbox, "requirements")  # its own: the module's `pushed` image stays
    assert build(sandbox, "requirements", image).returncode == 0
    session = requests.Session()
    assert oci.delete(session, oci.parse_reference(image)) is True
    assert manifest_status(image) == 404
    assert oci.delete(session, oci.parse_reference(image)) is False


def test_broken_repository_fails_with_the_reason_last(sandbox):
    image = image_for(sandbox, "broken")
    result = build(sandbox, "broken", image)
    assert result.returncode == 1
    tail = "\n".join(result.stdout.strip().splitlines()[-6:])
    assert "cannot build this repository with its CondaBuildPack" in tail
    assert 'in "environment.yml", line 1' in tail
    assert manifest_status(image) == 404


def test_pod_of_a_built_image_sees_the_repository_in_its_home(sandbox, pushed, core, namespace):
    image, _ = pushed
    body = pod("binder", ["python3", "-c", LIST_HOME])
    body["spec"]["containers"][0]["image"] = image
    core.create_namespaced_pod(namespace, body)
    current = wait_until(lambda: finished(core, namespace, "binder"), timeout=60, what="the pod to finish")
    output = pod_log(sandbox, current)
    assert current.status.phase == "Succeeded", output
    home = next(line for line in output.splitlines() if line.startswith("HOME "))
    assert home.startswith("HOME /home/jovyan ")
    assert ast.literal_eval(home.split(" ", 2)[2]) == ["README.md", "hello.ipynb", "requirements.txt"]
    assert "README # requirements" in output
    reasons = dict(events(core, namespace, "binder"))
    assert reasons["Pulling"] == f'Pulling image "{image}"'
    assert reasons["Pulled"].startswith(f'Successfully pulled image "{image}"')


def waiting_reason(core, namespace: str, name: str, reason: str):
    statuses = core.read_namespaced_pod(name, namespace).status.container_statuses or []
    state = statuses[0].state.waiting if statuses else None
    return state if state and state.reason == reason else None


def test_missing_image_is_err_image_pull_then_back_off(sandbox, core, namespace):
    image = f"{sandbox['registry']['host']}/binder-test/nothing-here:{'0' * 40}"
    body = pod("missing", ["python3", "-c", "print('never')"])
    body["spec"]["containers"][0]["image"] = image
    core.create_namespaced_pod(namespace, body)
    state = wait_until(
        lambda: waiting_reason(core, namespace, "missing", "ErrImagePull"), timeout=60, what="ErrImagePull"
    )
    assert f'Failed to pull image "{image}"' in state.message and "not found" in state.message
    state = wait_until(
        lambda: waiting_reason(core, namespace, "missing", "ImagePullBackOff"),
        timeout=30,
        what="ImagePullBackOff",
    )
    assert state.message == f'Back-off pulling image "{image}"'
    assert core.read_namespaced_pod("missing", namespace).status.phase == "Pending"
    failed = [message for reason, message in events(core, namespace, "missing") if reason == "Failed"]
    assert failed and "not found" in failed[0]


def test_pod_waiting_for_an_image_starts_once_it_is_pushed(sandbox, core, namespace):
    image = image_for(sandbox, "requirements")
    body = pod("later", ["python3", "-c", LIST_HOME])
    body["spec"]["containers"][0]["image"] = image
    core.create_namespaced_pod(namespace, body)
    wait_until(
        lambda: waiting_reason(core, namespace, "later", "ImagePullBackOff"), timeout=60, what="a back-off"
    )
    assert build(sandbox, "requirements", image).returncode == 0
    current = wait_until(lambda: finished(core, namespace, "later"), timeout=60, what="the pod to finish")
    output = pod_log(sandbox, current)
    assert current.status.phase == "Succeeded", output
    assert "'hello.ipynb'" in output


def test_builder_runs_as_a_build_pod_on_the_pod_network(sandbox, core, namespace):
    """git and the registry are reached from the pod's network namespace, as the unprivileged user."""
    spec = sandbox["git"]["repos"]["conda"]
    image = image_for(sandbox, "conda")
    command = [
        part.format(repo_url=spec["url"], commit=spec["commit"], image=image)
        for part in sandbox["builder"]["command"]
    ]
    core.create_namespaced_pod(namespace, pod("build", command))
    current = wait_until(lambda: finished(core, namespace, "build"), timeout=120, what="the build pod")
    output = pod_log(sandbox, current)
    assert current.status.phase == "Succeeded", output
    assert "repo2docker 2026.4.0 would use the CondaBuildPack" in output
    assert manifest_status(image) == 200

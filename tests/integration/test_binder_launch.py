"""Repository launches end to end on the sandbox: a real hub, Keycloak login, the sandbox's git
server and OCI registry, build pods run by the node agent, and the notebook showing the files.

The proofs of issues 7 and 14: a link shows a confirmation page and starts nothing, a hand-made
/hub/spawn query is refused, the confirmed POST (XSRF) starts it without the user's tokens; build
once then reuse (another user, no build pod), two simultaneous launches of one commit share one
build pod, a broken repository fails with its log tail shown, a forged `image` is refused, a
disallowed host is refused before anything is created.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from html.parser import HTMLParser

import pytest
import requests
import urllib3
from kubernetes import client, watch

from cern_spawner.binder.images import image_name
from cern_spawner.binder.resolve import git_env
from sandbox import keycloak
from sandbox.builder import oci
from sandbox.hubrunner import start_hub
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.shares("user-bob", "user-alice", "binder-builds")]

BUILD_SELECTOR = "app.kubernetes.io/component=binder-build"
PROFILE = "shared-1g"


@pytest.fixture(scope="module")
def git_server(sandbox):
    assert sandbox.get("git"), f"the sandbox records no git server: {sorted(sandbox)}"
    return sandbox["git"]


@pytest.fixture(scope="module")
def binder_hub(sandbox, git_server, tmp_path_factory):
    # The sandbox hub config turns repository launches on when the sandbox has git and a registry.
    # slow_spawn_timeout 0: the REST API answers at once, so the progress stream sees every message.
    extra = f"c.BinderConfig.default_profile = {PROFILE!r}\nc.JupyterHub.slow_spawn_timeout = 0\n"
    try:
        hub = start_hub(tmp_path_factory.mktemp("binder-hub"), extra)
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    yield hub
    hub.stop()


class BuildPods:
    """Every build pod created while the module runs: ADDED events of a real watch, resumed where
    it stopped when the API server ends it, and relisted when that version has expired (410) —
    bookmarks keep the version fresh, so a relist is rare; it still finds a pod created meanwhile
    unless that pod was also gone again."""

    def __init__(self, core, namespace: str):
        self.created: list[str] = []
        self._uids: set[str] = set()
        self._stopped = threading.Event()
        self._watch = watch.Watch()
        self._core, self._namespace = core, namespace
        version = self._relist()
        self._thread = threading.Thread(
            target=self._run, args=(version,), name="build-pod-watch", daemon=True
        )
        self._thread.start()

    def _note(self, pod) -> None:
        if pod.metadata.uid not in self._uids:
            self._uids.add(pod.metadata.uid)
            self.created.append(pod.metadata.name)

    def _relist(self, note: bool = False) -> str:
        listed = self._core.list_namespaced_pod(self._namespace, label_selector=BUILD_SELECTOR)
        for pod in listed.items:
            if note:
                self._note(pod)
            else:
                self._uids.add(pod.metadata.uid)  # there before the module: not created by it
        return listed.metadata.resource_version

    def _run(self, version):
        while not self._stopped.is_set():
            try:
                for event in self._watch.stream(
                    self._core.list_namespaced_pod,
                    self._namespace,
                    label_selector=BUILD_SELECTOR,
                    resource_version=version,
                    allow_watch_bookmarks=True,
                    timeout_seconds=30,
                ):
                    obj = event["object"]
                    if isinstance(obj, dict):  # an ERROR (or raw BOOKMARK) event
                        if event["type"] == "ERROR":
                            raise client.ApiException(status=obj.get("code"), reason=obj.get("message"))
                        version = obj.get("metadata", {}).get("resourceVersion", version)
                        continue
                    version = obj.metadata.resource_version
                    if event["type"] == "ADDED":
                        self._note(obj)
            except client.ApiException as e:
                if e.status != 410:
                    raise
                version = self._relist(note=True)
            except (urllib3.exceptions.HTTPError, OSError):
                continue  # the watch ended early: resume where it stopped

    def count(self) -> int:
        # A watcher that died would make "no new build pod" pass for nothing.
        assert self._thread.is_alive(), "the build pod watch stopped"
        return len(self.created)

    def stop(self):
        self._stopped.set()
        self._watch.stop()


@pytest.fixture(scope="module")
def build_pods(core, sandbox):
    pods = BuildPods(core, sandbox["user_namespace"])
    yield pods
    pods.stop()


def repo_url(git_server, name: str) -> str:
    return f"{git_server['url'].rstrip('/')}/{name}.git"


def link(hub, url: str, ref: str, **query) -> str:
    spec = f"git/{urllib.parse.quote(url, safe='')}/{ref}"
    return f"{hub.url}/hub/binder/v2/{spec}" + (f"?{urllib.parse.urlencode(query)}" if query else "")


def commit_of(url: str, ref: str) -> str:
    import subprocess

    out = subprocess.run(
        ["git", "ls-remote", "--", url, ref],
        env=git_env(urllib.parse.urlsplit(url).scheme),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()[0]


def progress(hub, user: str, timeout: float = 600) -> tuple[list[str], dict]:
    """The spawn's progress messages, and its last event (ready or failed)."""
    messages: list[str] = []
    last: dict = {}
    with hub.session.get(
        f"{hub.url}/hub/api/users/{user}/server/progress", stream=True, timeout=timeout
    ) as response:
        assert response.status_code == 200, response.text[:300]
        for line in response.iter_lines(decode_unicode=True):
            if not line or not line.startswith("data:"):
                continue
            last = json.loads(line[len("data:") :])
            messages.append(last.get("message", ""))
            if last.get("ready") or last.get("failed"):
                break
    return messages, last


def forget_image(sandbox, image: str) -> None:
    """Delete the image's manifest from the sandbox registry, so the launch must build it (the
    registry outlives test runs on a reused sandbox)."""
    oci.delete(requests.Session(), oci.parse_reference(image))


def spawn(hub, user: str, options: dict) -> requests.Response:
    assert hub.api("POST", f"/users/{user}").status_code in (201, 409)
    return hub.api("POST", f"/users/{user}/server", json=options)


def pod_of(core, namespace: str, user: str):
    pods = core.list_namespaced_pod(namespace, label_selector=f"hub.jupyter.org/username={user}").items
    return pods[0] if pods else None


def stop(hub, core, namespace: str, user: str) -> None:
    hub.api("DELETE", f"/users/{user}/server")
    wait_until(lambda: pod_of(core, namespace, user) is None, timeout=60, what=f"{user}'s pod to go")


class ConfirmationForm(HTMLParser):
    """The confirmation page's form: its action and the values it posts (a browser's view)."""

    def __init__(self, html: str):
        super().__init__()
        self.action, self.fields = "", {}
        self.feed(html)
        assert self.action, html[:500]

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and attrs.get("id") == "cern-confirm-form":
            self.action = attrs["action"]
        if tag == "input" and attrs.get("name") and (attrs.get("type") != "checkbox" or "checked" in attrs):
            self.fields[attrs["name"]] = attrs.get("value") or ""


def assert_nothing_started(hub, core, namespace: str, user: str, build_pods, before: int) -> None:
    model = hub.api("GET", f"/users/{user}").json()
    assert not model["servers"] and model["pending"] is None, model
    assert pod_of(core, namespace, user) is None
    assert build_pods.count() == before, build_pods.created


def files_in_server(hub, user: str) -> set[str]:
    response = hub.session.get(f"{hub.url}/user/{user}/api/contents", timeout=30)
    assert response.status_code == 200, response.text[:300]
    return {item["name"] for item in response.json()["content"]}


def test_a_link_builds_once_and_the_notebook_shows_the_repository(
    binder_hub, git_server, build_pods, core, sandbox
):
    hub, namespace = binder_hub, sandbox["user_namespace"]
    url = repo_url(git_server, "requirements")
    commit = commit_of(url, "main")
    expected = image_name(sandbox["registry"]["host"], "binder-", url, commit)
    forget_image(sandbox, expected)
    browser = hub.login("bob", keycloak.DEMO_PASSWORD)
    before = build_pods.count()

    # The link shows what would run, and starts nothing.
    page = browser.get(link(hub, url, "main", labpath="hello.ipynb"), timeout=60)
    assert page.status_code == 200, page.text[:500]
    assert "The repository's code will run as you." in page.text and url in page.text
    form = ConfirmationForm(page.text)
    assert form.fields["binder_repo"] == url and form.fields["binder_ref"] == "main"
    assert form.fields["profile"] == PROFILE
    assert "binder_tokens" not in form.fields  # an unticked checkbox posts nothing
    assert_nothing_started(hub, core, namespace, "bob", build_pods, before)

    # The same launch as a hand-made /hub/spawn link (a GET any page can send): refused.
    query = {"opt-profile": PROFILE, "opt-binder_repo": url, "opt-binder_ref": "main"}
    refused = browser.get(f"{hub.url}/hub/spawn/bob?{urllib.parse.urlencode(query)}", timeout=60)
    assert refused.status_code == 403, refused.text[:500]
    assert "must be confirmed" in refused.text and "/hub/binder/v2/git/" in refused.text
    assert_nothing_started(hub, core, namespace, "bob", build_pods, before)

    # Confirmed: the page's POST, with JupyterHub's XSRF token, starts it.
    launched = browser.post(hub.url + form.action, data=form.fields, timeout=60)
    assert launched.status_code == 200, launched.text[:500]
    messages, last = progress(hub, "bob")
    assert last.get("ready"), messages
    assert any(commit[:12] in m for m in messages), messages
    assert any("Building the image" in m for m in messages), messages
    # The build pod's log streamed into the progress, before the server was ready.
    cloning = next(i for i, m in enumerate(messages) if m.strip().startswith("Cloning") or "Cloning " in m)
    assert cloning < len(messages) - 1, messages
    assert build_pods.count() == before + 1, build_pods.created
    pod = pod_of(core, namespace, "bob")
    assert pod.spec.containers[0].image == expected
    # bob has exchanged tokens, but did not tick the box: none reach the repository's code.
    assert hub.api("GET", "/users/bob").json()["auth_state"]["exchanged_tokens"]
    assert "cern-tokens" not in {volume.name for volume in pod.spec.volumes or []}
    assert "cern-tokens" not in str(pod.spec)
    assert {"README.md", "hello.ipynb", "requirements.txt"} <= files_in_server(hub, "bob")
    wait_until(
        lambda: not core.list_namespaced_pod(namespace, label_selector=BUILD_SELECTOR).items,
        timeout=60,
        what="the finished build pod to be removed",
    )

    # Another user, the same commit: the image is reused, no build pod.
    answer = spawn(hub, "binder-other", {"profile": PROFILE, "binder_repo": url, "binder_ref": commit})
    assert answer.status_code in (201, 202), answer.text
    messages, last = progress(hub, "binder-other")
    assert last.get("ready"), messages
    # A reuse is quick: its progress may be over before the stream connects; the hub's log is not.
    reused = [line for line in hub.log.read_text().splitlines() if expected in line and "(reused)" in line]
    assert any("binder-other" in line for line in reused), reused
    assert build_pods.count() == before + 1, build_pods.created
    assert pod_of(core, namespace, "binder-other").spec.containers[0].image == expected
    stop(hub, core, namespace, "bob")
    stop(hub, core, namespace, "binder-other")


def test_simultaneous_launches_of_one_commit_share_one_build_pod(
    binder_hub, git_server, build_pods, core, sandbox
):
    hub, namespace = binder_hub, sandbox["user_namespace"]
    url = repo_url(git_server, "conda")
    users = ["binder-twin-1", "binder-twin-2"]
    forget_image(
        sandbox,
        image_name(sandbox["registry"]["host"], "binder-", url, git_server["repos"]["conda"]["commit"]),
    )
    before = build_pods.count()
    for user in users:
        answer = spawn(hub, user, {"profile": PROFILE, "binder_repo": url, "binder_ref": "v1"})
        assert answer.status_code in (201, 202), answer.text
    results = {user: progress(hub, user) for user in users}
    for user, (messages, last) in results.items():
        assert last.get("ready"), (user, messages)
    assert build_pods.count() == before + 1, build_pods.created
    images = {pod_of(core, namespace, user).spec.containers[0].image for user in users}
    assert len(images) == 1
    for user in users:
        assert "environment.yml" in files_in_server(hub, user)
        stop(hub, core, namespace, user)


def test_a_broken_repository_fails_with_its_log_tail_and_leaves_nothing(
    binder_hub, git_server, build_pods, core, sandbox
):
    hub, namespace = binder_hub, sandbox["user_namespace"]
    url = repo_url(git_server, "broken")
    answer = spawn(hub, "binder-broken", {"profile": PROFILE, "binder_repo": url, "binder_ref": "main"})
    if answer.status_code in (201, 202):  # failed after the REST call returned: the progress says why
        messages, last = progress(hub, "binder-broken")
        assert last.get("failed"), messages
        reason = last["message"]
    else:
        assert answer.status_code == 422, answer.text  # the repository's fault, not the hub's
        reason = answer.json()["message"]
    assert "The image build failed" in reason, reason
    # The log tail: repo2docker's own words about the broken file.
    assert "environment.yml" in reason and "CondaBuildPack" in reason, reason
    wait_until(
        lambda: not core.list_namespaced_pod(namespace, label_selector=BUILD_SELECTOR).items,
        timeout=60,
        what="the failed build pod to be removed",
    )
    assert pod_of(core, namespace, "binder-broken") is None
    assert not hub.api("GET", "/users/binder-broken").json()["servers"]


@pytest.mark.parametrize(
    "options",
    [
        {
            "profile": PROFILE,
            "binder_repo": "REPO",
            "binder_ref": "main",
            "image": "evil.example/miner:latest",
        },
        {"profile": PROFILE, "image": "evil.example/miner:latest"},
    ],
    ids=["image-with-repository", "image-alone"],
)
def test_a_forged_image_is_refused(binder_hub, git_server, build_pods, core, sandbox, options):
    hub, namespace = binder_hub, sandbox["user_namespace"]
    options = {k: (repo_url(git_server, "requirements") if v == "REPO" else v) for k, v in options.items()}
    before = build_pods.count()
    answer = spawn(hub, "binder-forger", options)
    assert answer.status_code == 400, answer.text
    assert "image" in answer.json()["message"].lower()
    assert pod_of(core, namespace, "binder-forger") is None
    assert build_pods.count() == before


@pytest.mark.parametrize(
    "spec",
    ["gh/jupyterhub/zero-to-jupyterhub-k8s/main", "git/https%3A%2F%2Fevil.example%2Frepo.git/main"],
    ids=["github-not-allowed-here", "unknown-host"],
)
def test_a_disallowed_host_is_refused_before_anything_is_created(binder_hub, build_pods, core, sandbox, spec):
    hub, namespace = binder_hub, sandbox["user_namespace"]
    browser = hub.login("alice", keycloak.DEMO_PASSWORD)
    before = build_pods.count()
    answer = browser.get(f"{hub.url}/hub/binder/v2/{spec}", timeout=30)
    assert answer.status_code == 403, answer.text[:300]
    assert "not allowed" in answer.text.lower() or "allow" in answer.text.lower()
    assert pod_of(core, namespace, "alice") is None
    assert not hub.api("GET", "/users/alice").json()["servers"]
    assert build_pods.count() == before


def test_the_link_asks_for_a_login_first(binder_hub, git_server):
    url = link(binder_hub, repo_url(git_server, "requirements"), "main")
    answer = requests.get(url, allow_redirects=False, timeout=30)
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert "/hub/login" in location
    assert urllib.parse.quote(
        "/hub/binder/v2/", safe=""
    ) in location or "/hub/binder/v2/" in urllib.parse.unquote(location)

"""resolve.py and registry.py against real servers started by the test (not by `sandbox up`):
git's own smart-HTTP server (git http-backend, served as sandbox/gitserver.py serves it) and
distribution's registry built from its Go module.

No Kubernetes here; marked integration because real programs run. A registry that cannot be built
fails these tests, never skips them.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from cern_spawner.binder.errors import RegistryError, ResolveError
from cern_spawner.binder.images import image_name, split_image
from cern_spawner.binder.refs import check_repo_url
from cern_spawner.binder.registry import RegistryClient
from cern_spawner.binder.resolve import resolve_ref
from sandbox.errors import SandboxError
from sandbox.gitserver import server as git_http_server

pytestmark = pytest.mark.integration


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    identity = ["-c", "user.name=Test", "-c", "user.email=test@example.org"]
    return subprocess.run(
        ["git", *identity, *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def git_server(tmp_path_factory):
    """A served bare repository `demo.git` with a branch, a nested branch and two kinds of tags."""
    root = tmp_path_factory.mktemp("git")
    work = root / "work"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    (work / "requirements.txt").write_text("numpy\n")
    git(work, "add", "requirements.txt")
    git(work, "commit", "-q", "-m", "first")
    first = git(work, "rev-parse", "HEAD")
    git(work, "tag", "-a", "v1", "-m", "release 1")
    git(work, "tag", "light")
    git(work, "checkout", "-q", "-b", "feature/x")
    git(work, "commit", "-q", "--allow-empty", "-m", "feature")
    feature = git(work, "rev-parse", "HEAD")
    git(work, "checkout", "-q", "main")
    git(root, "clone", "-q", "--bare", str(work), "demo.git")
    server = git_http_server(root, "127.0.0.1", 0, quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    commits = {"first": first, "feature": feature, "v1-object": git(work, "rev-parse", "v1")}
    yield f"http://127.0.0.1:{server.server_port}", commits
    server.shutdown()


@pytest.mark.parametrize(
    "ref, commit",
    [("main", "first"), ("HEAD", "first"), ("v1", "first"), ("light", "first"), ("feature/x", "feature")],
    ids=["branch", "head", "annotated-tag-peeled", "lightweight-tag", "nested-branch"],
)
async def test_resolve_against_git_http_backend(git_server, ref, commit):
    base, commits = git_server
    resolved = await resolve_ref(f"{base}/demo.git", ref, time_limit=20)
    assert resolved == commits[commit]
    assert resolved != commits["v1-object"]


@pytest.mark.parametrize(
    "path, ref, words",
    [
        ("/demo.git", "nope", "has no branch or tag named 'nope'"),
        ("/missing.git", "main", "Could not read the repository"),
        ("/private/demo.git", "main", "Could not read the repository"),
    ],
    ids=["missing-ref", "missing-repository", "credentials-asked-no-prompt"],
)
async def test_resolve_failures_against_git_http_backend(git_server, path, ref, words):
    base, _ = git_server
    started = time.monotonic()
    with pytest.raises(ResolveError, match=words):
        await resolve_ref(f"{base}{path}", ref, time_limit=20)
    assert time.monotonic() - started < 10  # failed at once: no prompt waited for input


async def test_a_file_url_never_reaches_git(git_server, tmp_path_factory):
    bare = next(p for p in tmp_path_factory.getbasetemp().rglob("demo.git") if p.is_dir())
    with pytest.raises(ResolveError, match="Could not read the repository file://"):
        await resolve_ref(f"file://{bare}", "main", time_limit=20)


def http_server(answer) -> tuple[ThreadingHTTPServer, list[str]]:
    """A loopback HTTP server calling `answer(handler)` for every GET; returns it and the paths seen."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            answer(self)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


async def test_a_redirect_to_an_internal_service_is_not_followed(git_server, caplog):
    """An allowed (insecure) origin answering 302 to a "metadata service" on another loopback port:
    git must not go there, and the user's message must not name it."""
    base, _ = git_server

    def metadata(handler):  # answers what git wants, so a followed redirect would even succeed
        upstream = requests.get(f"{base}/demo.git/info/refs?service=git-upload-pack", timeout=10)
        handler.send_response(upstream.status_code)
        handler.send_header("Content-Type", upstream.headers["Content-Type"])
        handler.send_header("Content-Length", str(len(upstream.content)))
        handler.end_headers()
        handler.wfile.write(upstream.content)

    internal, internal_seen = http_server(metadata)
    internal_address = f"127.0.0.1:{internal.server_port}"

    def redirect(handler):
        handler.send_response(302)
        handler.send_header("Location", f"http://{internal_address}/latest/meta-data{handler.path}")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    hostile, hostile_seen = http_server(redirect)
    origin = f"http://127.0.0.1:{hostile.server_port}"
    try:
        repo_url = check_repo_url(f"{origin}/o/r.git", [], [origin])
        with pytest.raises(ResolveError) as failed:
            await resolve_ref(repo_url, "main", time_limit=20)
    finally:
        hostile.shutdown()
        internal.shutdown()
    assert hostile_seen, "git did not even ask the allowed origin"
    assert internal_seen == []
    message = str(failed.value)
    assert message.startswith(f"Could not read the repository {origin}/o/r.git:")
    assert internal_address not in message and "meta-data" not in message
    assert repr(repo_url) in caplog.text  # the details are in the log


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def registry_server(tmp_path_factory):
    """distribution's registry with htpasswd auth; yields (host:port, username, password)."""
    from sandbox.registry import resolve

    try:
        program = resolve()
    except SandboxError as e:
        pytest.fail(f"the registry could not be built: {e}", pytrace=False)
    root = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = {
        "version": 0.1,
        "log": {"level": "info", "formatter": "json"},
        "storage": {"filesystem": {"rootdirectory": str(root / "data")}},
        "http": {"addr": f"127.0.0.1:{port}"},
        # A missing htpasswd file is provisioned by the registry with user "docker" and a random
        # password it logs: a real bcrypt entry without a bcrypt library here.
        "auth": {"htpasswd": {"realm": "binder-test", "path": str(root / "htpasswd")}},
    }
    (root / "config.yml").write_text(json.dumps(config))  # JSON is YAML
    log = root / "registry.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [program, "serve", root / "config.yml"], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        password = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            for line in log.read_text().splitlines():
                entry = json.loads(line) if line.startswith("{") else {}
                if entry.get("user") == "docker" and entry.get("password"):
                    password = entry["password"]
            try:
                up = requests.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 401
            except requests.ConnectionError:
                up = False
            if up and password:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"the registry did not start: {log.read_text()[-2000:]}", pytrace=False)
        yield f"127.0.0.1:{port}", "docker", password
    finally:
        process.terminate()
        process.wait(10)


def push(host: str, repository: str, tag: str, auth: tuple[str, str]) -> None:
    """Push a one-layer OCI image with plain HTTP calls (the distribution API)."""
    session = requests.Session()
    session.auth = auth
    base = f"http://{host}/v2/{repository}"

    def blob(data: bytes) -> dict:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        started = session.post(f"{base}/blobs/uploads/", timeout=10)
        assert started.status_code == 202, started.text
        location = started.headers["Location"]
        location = location if location.startswith("http") else f"http://{host}{location}"
        separator = "&" if "?" in location else "?"
        done = session.put(f"{location}{separator}digest={digest}", data=data, timeout=10)
        assert done.status_code == 201, done.text
        return {"digest": digest, "size": len(data)}

    config = blob(json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}).encode())
    layer = blob(b"repository content")
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}],
    }
    put = session.put(
        f"{base}/manifests/{tag}",
        data=json.dumps(manifest),
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        timeout=10,
    )
    assert put.status_code == 201, put.text


async def test_resolve_name_push_and_find(git_server, registry_server):
    """The groundwork end to end: ref → commit → image name → absent → pushed → present."""
    base, commits = git_server
    host, user, password = registry_server
    repo_url = f"{base}/demo.git"
    commit = await resolve_ref(repo_url, "v1", time_limit=20)
    image = image_name(host, "binder/", repo_url, commit)
    client = RegistryClient(user, password, http_registries=[host], timeout=10)
    assert await client.manifest_exists(image) is False
    ref = split_image(image)
    push(host, ref.repository, ref.tag, (user, password))
    assert await client.manifest_exists(image) is True
    other = image_name(host, "binder/", repo_url, commits["feature"])
    assert await client.manifest_exists(other) is False


@pytest.mark.parametrize(
    "credentials, words",
    [((None, None), "anonymously (HTTP 401)"), (("docker", "wrong"), "as 'docker' (HTTP 401)")],
    ids=["anonymous", "wrong-password"],
)
async def test_registry_refuses_bad_credentials(registry_server, credentials, words):
    host, _, _ = registry_server
    client = RegistryClient(*credentials, http_registries=[host], timeout=10)
    with pytest.raises(RegistryError, match=words.replace("(", r"\(").replace(")", r"\)")):
        await client.manifest_exists(f"{host}/binder/x-000000:{'0' * 40}")

"""The registry client against an in-process stand-in speaking the distribution API's auth dance.

The real registry (distribution) is exercised in tests/integration/test_binder_servers.py.
"""

from __future__ import annotations

import base64
import json

import pytest
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port
from tornado.web import Application, RequestHandler

from cern_spawner.binder.errors import RegistryError
from cern_spawner.binder.registry import MANIFEST_TYPES, RegistryClient, parse_challenge

pytestmark = pytest.mark.unit

PRESENT = "binder/org-repo-abc123"
BASIC = "Basic " + base64.b64encode(b"hub:secret").decode()


class State:
    def __init__(self):
        self.mode = "anonymous"
        self.calls: list[tuple[str, str, str | None]] = []  # (method, path, Authorization)
        self.token_calls: list[tuple[dict, str | None]] = []


class Manifests(RequestHandler):
    def initialize(self, state: State, port: int):
        self.state = state
        self.port = port

    def _answer(self, name: str, tag: str) -> None:
        auth = self.request.headers.get("Authorization")
        self.state.calls.append((self.request.method, self.request.path, auth))
        mode = self.state.mode
        if self.request.headers.get("Accept") != MANIFEST_TYPES:
            return self.send_error(406)
        if mode == "head-405" and self.request.method == "HEAD":
            return self.send_error(405)
        if mode == "error":
            return self.send_error(503)
        if mode == "basic" and auth != BASIC:
            return self._challenge('Basic realm="registry"')
        if mode == "bearer" and auth != "Bearer tok-" + name:
            realm = f"http://127.0.0.1:{self.port}/token"
            scope = f"repository:{name}:pull"
            return self._challenge(f'Bearer realm="{realm}",service="reg",scope="{scope}"')
        if name != PRESENT or tag != "c0ffee":
            return self.send_error(404)
        self.set_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        if self.request.method == "GET":
            self.write("{}")

    def _challenge(self, header: str) -> None:
        # Not send_error: it clears the headers, the challenge included.
        self.set_status(401)
        self.set_header("WWW-Authenticate", header)
        self.finish()

    def head(self, name, tag):
        self._answer(name, tag)

    def get(self, name, tag):
        self._answer(name, tag)


class Token(RequestHandler):
    def initialize(self, state: State, port: int):
        self.state = state

    def get(self):
        auth = self.request.headers.get("Authorization")
        args = {k: self.get_argument(k) for k in self.request.arguments}
        self.state.token_calls.append((args, auth))
        if self.state.mode == "bearer" and auth not in (None, BASIC):
            return self.send_error(401)
        name = args["scope"].split(":")[1]
        self.write(json.dumps({"token": "tok-" + name, "expires_in": 300}))


@pytest.fixture
async def registry():
    sock, port = bind_unused_port()
    state = State()
    app = Application(
        [
            (r"/v2/(.+)/manifests/([^/]+)", Manifests, {"state": state, "port": port}),
            (r"/token", Token, {"state": state, "port": port}),
        ]
    )
    server = HTTPServer(app)
    server.add_sockets([sock])
    yield state, f"127.0.0.1:{port}"
    server.stop()


def client(host, **kwargs) -> RegistryClient:
    return RegistryClient(http_registries=[host], timeout=5, **kwargs)


@pytest.mark.parametrize("mode", ["anonymous", "basic", "bearer", "head-405"])
@pytest.mark.parametrize("tag, expected", [("c0ffee", True), ("0ther", False)], ids=["present", "absent"])
async def test_manifest_exists(registry, mode, tag, expected):
    state, host = registry
    state.mode = mode
    reg = client(host, username="hub", password="secret")
    assert await reg.manifest_exists(f"{host}/{PRESENT}:{tag}") is expected


async def test_bearer_challenge_is_followed_and_the_token_reused(registry):
    state, host = registry
    state.mode = "bearer"
    reg = client(host, username="hub", password="secret")
    assert await reg.manifest_exists(f"{host}/{PRESENT}:c0ffee")
    assert await reg.manifest_exists(f"{host}/{PRESENT}:other") is False
    assert state.token_calls == [({"service": "reg", "scope": f"repository:{PRESENT}:pull"}, BASIC)]
    # First try anonymous, then with the token; the second lookup sends the cached token at once.
    assert [auth for _, _, auth in state.calls] == [None, f"Bearer tok-{PRESENT}", f"Bearer tok-{PRESENT}"]


async def test_anonymous_bearer_token(registry):
    state, host = registry
    state.mode = "bearer"
    assert await client(host).manifest_exists(f"{host}/{PRESENT}:c0ffee")
    assert state.token_calls[0][1] is None


async def test_head_falls_back_to_get(registry):
    state, host = registry
    state.mode = "head-405"
    assert await client(host).manifest_exists(f"{host}/{PRESENT}:c0ffee")
    assert [method for method, _, _ in state.calls] == ["HEAD", "GET"]


@pytest.mark.parametrize(
    "mode, kwargs, words",
    [
        ("basic", {}, "refused to let the hub read binder/org-repo-abc123 anonymously (HTTP 401)"),
        ("basic", {"username": "hub", "password": "wrong"}, "as 'hub' (HTTP 401)"),
        ("bearer", {"username": "hub", "password": "wrong"}, "token service"),
        ("error", {}, "answered HTTP 503"),
    ],
    ids=["basic-without-credentials", "basic-wrong-password", "token-refused", "server-error"],
)
async def test_failures_are_registry_errors(registry, mode, kwargs, words):
    state, host = registry
    state.mode = mode
    with pytest.raises(RegistryError, match=words.replace("(", r"\(").replace(")", r"\)")):
        await client(host, **kwargs).manifest_exists(f"{host}/{PRESENT}:c0ffee")


async def test_unreachable_registry():
    sock, port = bind_unused_port()
    sock.close()  # nothing listens there any more
    with pytest.raises(RegistryError, match=f"Could not reach the registry 127.0.0.1:{port}") as raised:
        await client(f"127.0.0.1:{port}").manifest_exists(f"127.0.0.1:{port}/a/b:c")
    assert raised.value.__cause__ is not None


async def test_https_is_the_default(registry):
    _, host = registry  # the stand-in speaks plain http, so an https client fails to talk to it
    with pytest.raises(RegistryError, match="Could not reach"):
        await RegistryClient(timeout=0.5).manifest_exists(f"{host}/{PRESENT}:c0ffee")


async def test_bad_image_name():
    with pytest.raises(RegistryError, match="<registry>/<repository>:<tag>"):
        await RegistryClient().manifest_exists("ubuntu")


@pytest.mark.parametrize(
    "header, expected",
    [
        (
            'Bearer realm="https://auth.example/token",service="reg.example",scope="repository:a/b:pull"',
            (
                "bearer",
                {
                    "realm": "https://auth.example/token",
                    "service": "reg.example",
                    "scope": "repository:a/b:pull",
                },
            ),
        ),
        ('Basic realm="Registry Realm"', ("basic", {"realm": "Registry Realm"})),
        ("Bearer realm=https://a/t, service=s", ("bearer", {"realm": "https://a/t", "service": "s"})),
        ("", ("", {})),
    ],
    ids=["bearer", "basic", "unquoted", "empty"],
)
def test_parse_challenge(header, expected):
    assert parse_challenge(header) == expected

"""Token exchange requests and the per-user Secret the exchanged tokens are mounted from."""

from __future__ import annotations

import base64
import json
import logging

import pytest
from kubernetes_asyncio.client import ApiClient, Configuration
from tornado import web
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from cern_spawner.auth.errors import ProviderUnavailable
from cern_spawner.auth.exchange import exchange_all, exchange_request, exchanged_token
from cern_spawner.auth.provider import fetch_json
from cern_spawner.auth.token_secret import (
    TokenSecretError,
    apply_token_secret,
    token_file_name,
    token_secret_manifest,
    token_secret_name,
    tokens_from_auth_state,
)
from tests.unit.auth_idp import FakeIdP

pytestmark = pytest.mark.unit


def test_exchange_request_body():
    assert exchange_request("AT", "eos-service", {"client_id": "hub", "client_secret": "s"}) == {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": "AT",
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "audience": "eos-service",
        "client_id": "hub",
        "client_secret": "s",
    }


def test_exchange_request_sends_the_audience_scope_when_given():
    form = exchange_request("AT", "eos-service", {}, "eos-service-audience")
    assert form["scope"] == "eos-service-audience" and form["audience"] == "eos-service"
    assert "scope" not in exchange_request("AT", "eos-service", {}, "")


RESPONSES = {
    "with-expiry": (
        {"access_token": "x", "expires_in": 60, "refresh_token": "r"},
        {"access_token": "x", "expires_at": 1060},
    ),
    "no-expiry": ({"access_token": "x"}, {"access_token": "x", "expires_at": None}),
}


@pytest.mark.parametrize("response, kept", RESPONSES.values(), ids=RESPONSES.keys())
def test_exchanged_token_keeps_no_refresh_token(response, kept):
    assert exchanged_token(response, now=1000) == kept


async def test_exchange_all_over_http_skips_failed_audiences(caplog):
    idp = await FakeIdP().start()
    try:
        idp.exchange_error_for = {"forbidden"}
        client = AsyncHTTPClient(force_instance=True)

        async def post(form):
            return await fetch_json(client, f"{idp.base}/token", request_timeout=5, form=form)

        with caplog.at_level(logging.WARNING):
            tokens = await exchange_all(
                post,
                "AT",
                ["eos-service", "forbidden"],
                {"client_id": "hub"},
                now=1000,
                log=logging.getLogger("t"),
            )
        assert list(tokens) == ["eos-service"]
        assert tokens["eos-service"]["access_token"].startswith("exchanged-eos-service-")
        assert tokens["eos-service"]["expires_at"] == 1120
        assert "forbidden" in caplog.text
        assert [r["audience"] for r in idp.token_requests] == ["eos-service", "forbidden"]
        assert all(r["subject_token"] == "AT" for r in idp.token_requests)
    finally:
        await idp.stop()


async def test_unreachable_token_endpoint_is_a_provider_error():
    client = AsyncHTTPClient(force_instance=True)
    with pytest.raises(ProviderUnavailable):
        await fetch_json(client, "http://127.0.0.1:9/token", request_timeout=2, form={"a": "b"})


NAMES = {
    "plain": ("alice", "cern-tokens-alice"),
    "upper-and-dot": ("Alice.Smith", None),
    "at-sign": ("alice@cern.ch", None),
    "double-dash": ("a--b", None),
    "very-long": ("x" * 80, None),
}


@pytest.mark.parametrize("username, expected", NAMES.values(), ids=NAMES.keys())
def test_secret_name_is_a_dns_label(username, expected):
    name = token_secret_name(username)
    if expected:
        assert name == expected
    assert len(name) <= 63 and name.startswith("cern-tokens-")
    assert all(c.islower() or c.isdigit() or c == "-" for c in name) and not name.endswith("-")


def test_escaped_names_do_not_collide():
    assert token_secret_name("Alice") != token_secret_name("alice")
    assert token_secret_name("a.b") != token_secret_name("a-b")


def test_secret_manifest_holds_only_exchanged_tokens():
    auth_state = {
        "access_token": "hub-access",
        "refresh_token": "hub-refresh",
        "exchanged_tokens": {
            "eos-service": {"access_token": "eos-token", "expires_at": 1},
            "odd/aud ience": {"access_token": "odd-token", "expires_at": None},
            "broken": {"expires_at": 1},
        },
    }
    manifest = token_secret_manifest("Alice@CERN", "jupyter-users", tokens_from_auth_state(auth_state))
    assert manifest["metadata"]["name"] == token_secret_name("Alice@CERN")
    assert manifest["metadata"]["namespace"] == "jupyter-users"
    assert manifest["kind"] == "Secret" and manifest["type"] == "Opaque"
    data = {k: base64.b64decode(v).decode() for k, v in manifest["data"].items()}
    assert data == {"eos-service.token": "eos-token", "odd_aud_ience.token": "odd-token"}
    text = repr(manifest)
    assert "hub-refresh" not in text and "hub-access" not in text


@pytest.mark.parametrize(
    "audience, key",
    [("eos-service", "eos-service.token"), ("a b/c", "a_b_c.token")],
    ids=["plain", "escaped"],
)
def test_token_file_name(audience, key):
    assert token_file_name(audience) == key


def test_no_tokens_without_auth_state():
    assert tokens_from_auth_state(None) == {}
    assert token_secret_manifest("bob", "ns", {})["data"] == {}


class _Secrets(web.RequestHandler):
    """The two Secret endpoints of the Kubernetes API that apply_token_secret uses."""

    def initialize(self, store, calls):
        self.store, self.calls = store, calls

    def check_xsrf_cookie(self):
        pass

    def post(self, namespace):
        body = json.loads(self.request.body)
        self.calls.append(("create", namespace, body["metadata"]["name"]))
        if namespace == "forbidden":
            self.set_status(403)
            self.write({"kind": "Status", "code": 403, "reason": "Forbidden"})
            return
        key = (namespace, body["metadata"]["name"])
        if key in self.store:
            self.set_status(409)
            self.write({"kind": "Status", "code": 409, "reason": "AlreadyExists"})
            return
        self.store[key] = body
        self.set_status(201)
        self.write(body)

    def put(self, namespace, name):
        self.calls.append(("replace", namespace, name))
        self.store[(namespace, name)] = json.loads(self.request.body)
        self.write(self.request.body)


async def test_apply_token_secret_creates_then_replaces():
    store, calls = {}, []
    sock, port = bind_unused_port()
    server = HTTPServer(
        web.Application(
            [
                (r"/api/v1/namespaces/([^/]+)/secrets", _Secrets, {"store": store, "calls": calls}),
                (r"/api/v1/namespaces/([^/]+)/secrets/([^/]+)", _Secrets, {"store": store, "calls": calls}),
            ]
        )
    )
    server.add_sockets([sock])
    configuration = Configuration(host=f"http://127.0.0.1:{port}")
    try:
        async with ApiClient(configuration) as api:
            await apply_token_secret(api, token_secret_manifest("alice", "users", {"eos-service": "t1"}))
            await apply_token_secret(api, token_secret_manifest("alice", "users", {"eos-service": "t2"}))
            with pytest.raises(TokenSecretError, match="forbidden/cern-tokens-alice: HTTP 403"):
                await apply_token_secret(
                    api, token_secret_manifest("alice", "forbidden", {"eos-service": "t"})
                )
    finally:
        server.stop()
    assert calls[:3] == [
        ("create", "users", "cern-tokens-alice"),
        ("create", "users", "cern-tokens-alice"),
        ("replace", "users", "cern-tokens-alice"),
    ]
    stored = store[("users", "cern-tokens-alice")]
    assert base64.b64decode(stored["data"]["eos-service.token"]) == b"t2"

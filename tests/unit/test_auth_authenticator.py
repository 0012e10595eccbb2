"""CERNAuthenticator against a local OpenID provider over real HTTP: login, roles, refresh, logout."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlparse

import pytest
from oauthenticator.oauth2 import _serialize_state
from tornado import web

from cern_spawner.auth import CERNAuthenticator
from cern_spawner.auth.authenticator import NOT_FOR_THIS_HUB, SSO_DOWN, crypt_key_problem
from tests.unit.auth_idp import CLIENT_ID, FakeIdP, KeyPair

pytestmark = pytest.mark.unit
CALLBACK = "https://hub.example/hub/oauth_callback"


class Handler:
    """What OAuthenticator reads from the callback request: the code and the PKCE state cookie."""

    def __init__(self):
        self.state = _serialize_state({"state_id": "s1", "code_verifier": "verifier-123"})
        self.settings = {"login_url": "/hub/login"}
        self.request = type("Request", (), {"protocol": "https", "host": "hub.example"})()

    def get_argument(self, name, default=None):
        return {"code": "code-1"}.get(name, default)

    def get_state_cookie(self):
        return self.state


class User:
    def __init__(self, name, auth_state):
        self.name, self.auth_state = name, auth_state

    async def get_auth_state(self):
        return self.auth_state


@pytest.fixture
async def idp():
    server = await FakeIdP().start()
    yield server
    await server.stop()


@pytest.fixture
def make(idp, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_CRYPT_KEY", "0" * 64)

    def make(**config):
        config = {"issuer_url": idp.issuer, "client_id": CLIENT_ID, "client_secret": "s3cret", **config}
        return CERNAuthenticator(oauth_callback_url=CALLBACK, **config)

    return make


async def login(auth):
    return await auth.get_authenticated_user(Handler(), None)


def test_cern_defaults(monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_CRYPT_KEY", "0" * 64)
    auth = CERNAuthenticator(client_id="hub")
    assert auth.issuer_url == "https://auth.cern.ch/auth/realms/cern"
    assert auth.scope == ["openid", "profile", "email", "offline_access"]
    assert auth.username_claim == "cern_upn"
    assert auth.enable_pkce and auth.enable_auth_state and auth.manage_groups
    assert auth.auth_state_groups_key == "roles"
    assert CERNAuthenticator(client_id="hub", enable_refresh=False).scope == ["openid", "profile", "email"]


BAD_CONFIG = {
    "issuer-not-url": ("issuer_url", "auth.cern.ch"),
    "issuer-trailing-slash": ("issuer_url", "https://auth.cern.ch/auth/realms/cern/"),
    "jwks-query": ("jwks_uri", "https://x/certs?a=1"),
    "negative-margin": ("refresh_margin", -1.0),
    "zero-timeout": ("http_timeout", 0.0),
    "roles-claim-empty-segment": ("roles_claim", "resource_access..roles"),
    "duplicate-audiences": ("exchange_audiences", ["eos", "eos"]),
}


@pytest.mark.parametrize("trait, value", BAD_CONFIG.values(), ids=BAD_CONFIG.keys())
def test_bad_config_names_trait_and_value(trait, value, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_CRYPT_KEY", "0" * 64)
    with pytest.raises(Exception) as raised:
        CERNAuthenticator(client_id="hub", **{trait: value})
    assert f"CERNAuthenticator.{trait}" in str(raised.value) and repr(value) in str(raised.value)


CRYPT_CASES = {
    "auth-state-no-key": (True, {}, False, True),
    "auth-state-blank-key": (True, {"JUPYTERHUB_CRYPT_KEY": " "}, False, True),
    "auth-state-env-key": (True, {"JUPYTERHUB_CRYPT_KEY": "ab" * 32}, False, False),
    "auth-state-configured-keys": (True, {}, True, False),
    "no-auth-state": (False, {}, False, False),
}


@pytest.mark.parametrize(
    "enabled, environ, configured, problem", CRYPT_CASES.values(), ids=CRYPT_CASES.keys()
)
def test_crypt_key_problem(enabled, environ, configured, problem):
    found = crypt_key_problem(enable_auth_state=enabled, environ=environ, configured_keys=configured)
    assert bool(found) is problem
    if found:
        assert "JUPYTERHUB_CRYPT_KEY" in found


def test_missing_crypt_key_fails_at_construction(monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_CRYPT_KEY", raising=False)
    with pytest.raises(ValueError, match="JUPYTERHUB_CRYPT_KEY"):
        CERNAuthenticator(client_id="hub")
    with pytest.raises(ValueError, match="enable_auth_state"):
        CERNAuthenticator(client_id="hub", enable_auth_state=False)
    CERNAuthenticator(client_id="hub", enable_refresh=False)  # nothing to keep: no key needed


async def test_endpoints_discovered_explicit_ones_win(idp, make):
    auth = make(token_url="http://127.0.0.1:9/explicit-token")
    provider = await auth.provider()
    assert provider.authorization_endpoint == f"{idp.base}/auth"
    assert provider.jwks_uri == f"{idp.base}/certs"
    assert provider.end_session_endpoint == f"{idp.base}/logout"
    assert provider.token_endpoint == auth.token_url == "http://127.0.0.1:9/explicit-token"
    assert auth.authorize_url == f"{idp.base}/auth"


async def test_discovery_with_another_issuer_is_a_503(idp, make):
    idp.discovery_overrides = {"issuer": "https://evil.example"}
    with pytest.raises(web.HTTPError) as raised:
        await make().resolve_provider_for_user()
    assert raised.value.status_code == 503


async def test_unreachable_issuer_is_a_503_then_retried(idp, make):
    auth = make(issuer_url="http://127.0.0.1:9/realms/cern")
    for _ in range(2):
        with pytest.raises(web.HTTPError) as raised:
            await auth.resolve_provider_for_user()
        assert raised.value.status_code == 503


async def test_login_takes_verified_claims(idp, make):
    auth = make(exchange_audiences=["eos-service"])
    model = await login(auth)
    assert model["name"] == "alice"
    assert model["groups"] == ["gpu-users"]
    state = model["auth_state"]
    assert state["roles"] == ["gpu-users"]
    assert state["refresh_token"] == "refresh-1"
    assert "refresh_token" not in state["token_response"]
    assert state["access_token_expires_at"] > 0
    assert state["oauth_user"]["preferred_username"] == "Alice"
    assert state["exchanged_tokens"]["eos-service"]["access_token"].startswith("exchanged-eos-service")
    code_request, exchange = idp.token_requests
    assert code_request["grant_type"] == "authorization_code"
    assert code_request["code_verifier"] == "verifier-123"
    assert code_request["redirect_uri"] == CALLBACK
    assert "data" not in code_request
    assert exchange["subject_token"] == state["access_token"] and exchange["audience"] == "eos-service"


async def test_username_from_configured_claim(idp, make):
    model = await login(make(username_claim="sub"))
    assert model["name"] == "f2c5e0e4-0000-4000-8000-000000000001"


async def test_roles_from_cern_roles(idp, make):
    model = await login(make(roles_claim="cern_roles"))
    assert model["groups"] == ["default-role"]


BAD_LOGINS = {
    "wrong-issuer": {"iss": "https://evil.example/realms/cern"},
    "other-client": {"azp": "other-client"},
    "expired": {"exp": 1000},
}


@pytest.mark.parametrize("claims", BAD_LOGINS.values(), ids=BAD_LOGINS.keys())
async def test_login_with_bad_token_is_refused(idp, make, claims):
    idp.access_claims = claims
    with pytest.raises(web.HTTPError) as raised:
        await login(make())
    assert raised.value.status_code == 403
    assert "evil" not in str(raised.value.log_message)


SWAPPED = {
    "exchanged-as-access-token": "access_token",
    "exchanged-as-id-token": "id_token",
}


@pytest.mark.parametrize("field", SWAPPED.values(), ids=SWAPPED.keys())
async def test_token_for_another_audience_is_refused(idp, make, field, caplog):
    # The user's own token, signed by the issuer, but exchanged for eos-service (azp: this hub).
    idp.token_overrides = {field: idp.exchanged("eos-service")}
    with pytest.raises(web.HTTPError) as raised:
        await login(make())
    assert (raised.value.status_code, raised.value.log_message) == (403, NOT_FOR_THIS_HUB)
    assert "'eos-service' does not include 'jupyterhub'" in caplog.text


async def test_access_token_as_id_token_is_refused(idp, make):
    idp.token_overrides = {"id_token": idp.tokens()["access_token"]}
    with pytest.raises(web.HTTPError) as raised:
        await login(make())
    assert raised.value.status_code == 403


REALM_WITHOUT_AUDIENCE = {
    "audience-required-by-default": ({}, False),
    "audience-not-required": ({"access_token_audience_required": False}, True),
}


@pytest.mark.parametrize(
    "config, accepted", REALM_WITHOUT_AUDIENCE.values(), ids=REALM_WITHOUT_AUDIENCE.keys()
)
async def test_realm_without_audience_mapper(idp, make, config, accepted):
    idp.access_claims = {"aud": "account"}  # azp is still this hub
    if accepted:
        assert (await login(make(**config)))["name"] == "alice"
    else:
        with pytest.raises(web.HTTPError) as raised:
            await login(make(**config))
        assert raised.value.status_code == 403


async def test_jwks_outage_is_a_503_until_the_keys_can_be_fetched(idp, make):
    auth = make()
    clock = [1000.0]
    auth.clock = lambda: clock[0]
    idp.jwks_error = 503
    for _ in range(2):  # the second within the refetch interval: still "unavailable", not "invalid"
        with pytest.raises(web.HTTPError) as raised:
            await login(auth)
        assert (raised.value.status_code, raised.value.log_message) == (503, SSO_DOWN)
    assert idp.jwks_fetches == 1
    idp.jwks_error = None
    clock[0] += auth.jwks_min_refetch_interval
    assert (await login(auth))["name"] == "alice"


async def test_refused_code_is_a_short_403(idp, make):
    idp.token_error = (400, {"error": "invalid_grant", "error_description": "Code not valid"})
    with pytest.raises(web.HTTPError) as raised:
        await login(make())
    assert raised.value.status_code == 403


ACCESS = {
    "any-user-by-default": ({}, ["gpu-users"], True, None),
    "allowed-role-held": ({"allowed_roles": {"gpu-users"}}, ["gpu-users"], True, None),
    "allowed-role-missing": ({"allowed_roles": {"hub-users"}}, ["gpu-users"], False, None),
    "no-roles-claim": ({"allowed_roles": {"gpu-users"}}, None, False, None),
    "admin-role-held": ({"allowed_roles": {"x"}, "admin_roles": {"gpu-users"}}, ["gpu-users"], True, True),
    "admin-role-missing": ({"admin_roles": {"hub-admins"}}, ["gpu-users"], True, False),
    "allowed-users-only": ({"allowed_users": {"bob"}}, ["gpu-users"], False, None),
}


@pytest.mark.parametrize("config, roles, allowed, admin", ACCESS.values(), ids=ACCESS.keys())
async def test_access_by_role(idp, make, config, roles, allowed, admin):
    idp.access_claims = {"resource_access": {CLIENT_ID: {"roles": roles}} if roles is not None else None}
    model = await login(make(**config))
    assert (model is not None) is allowed
    if model:
        assert model["admin"] is admin


async def logged_in(idp, make, **config):
    auth = make(**config)
    clock = [1000.0]
    auth.clock = lambda: clock[0]
    model = await login(auth)
    user = User(model["name"], model["auth_state"])
    expires_at = model["auth_state"]["access_token_expires_at"]
    return auth, user, clock, expires_at


async def test_refresh_not_needed_before_the_margin(idp, make):
    auth, user, clock, expires_at = await logged_in(idp, make)
    clock[0] = expires_at - 120
    assert await auth.refresh_user(user) is True
    assert len(idp.token_requests) == 1


async def test_refresh_near_expiry_rereads_roles_and_exchanges(idp, make):
    auth, user, clock, expires_at = await logged_in(idp, make, exchange_audiences=["eos-service"])
    clock[0] = expires_at - 30
    idp.access_claims = {"resource_access": {CLIENT_ID: {"roles": ["gpu-users", "hub-admins"]}}}
    model = await auth.refresh_user(user)
    assert model["groups"] == ["gpu-users", "hub-admins"]
    assert model["auth_state"]["refresh_token"] == "refresh-2"
    grants = [r["grant_type"].rsplit(":", 1)[-1] for r in idp.token_requests]
    assert grants == ["authorization_code", "token-exchange", "refresh_token", "token-exchange"]
    refresh = idp.token_requests[2]
    assert refresh["refresh_token"] == "refresh-1" and refresh["client_id"] == CLIENT_ID


async def test_refresh_refused_requires_login(idp, make):
    auth, user, clock, expires_at = await logged_in(idp, make)
    clock[0] = expires_at - 30
    idp.token_error = (400, {"error": "invalid_grant", "error_description": "Session not active"})
    assert await auth.refresh_user(user) is False


async def test_refresh_dropping_the_allowed_role_requires_login(idp, make):
    auth, user, clock, expires_at = await logged_in(idp, make, allowed_roles={"gpu-users"})
    clock[0] = expires_at + 5
    idp.access_claims = {"resource_access": {CLIENT_ID: {"roles": []}}}
    assert await auth.refresh_user(user) is False


@pytest.mark.parametrize("offset, kept", [(-30, True), (+30, False)], ids=["before-expiry", "after-expiry"])
async def test_provider_down_keeps_the_user_until_expiry(idp, make, offset, kept):
    auth, user, clock, expires_at = await logged_in(idp, make)
    await idp.stop()
    clock[0] = expires_at + offset
    assert await auth.refresh_user(user) is kept


async def test_jwks_outage_keeps_sessions_until_their_tokens_expire(idp, make):
    auth, user, clock, expires_at = await logged_in(idp, make)
    # The issuer rotates its key and its JWKS cannot be fetched; the token endpoint still answers.
    idp.key = KeyPair("key-2")
    idp.published = [idp.key]
    idp.jwks_error = 503
    for offset in (-50, -40):  # the second refresh falls within the JWKS refetch interval
        clock[0] = expires_at + offset
        assert await auth.refresh_user(user) is True
    clock[0] = expires_at + 1
    assert await auth.refresh_user(user) is False


async def test_a_key_rotated_in_within_the_refetch_interval_keeps_the_session(idp, make):
    auth = make()
    clock = [time.time() + idp.lifetime - 100]  # logged in (keys fetched) 100 s before expiry
    auth.clock = lambda: clock[0]
    model = await login(auth)
    user, expires_at = (
        User(model["name"], model["auth_state"]),
        model["auth_state"]["access_token_expires_at"],
    )
    idp.key = KeyPair("key-2")  # rotation: the refreshed token names a key the hub has not fetched
    idp.published = [idp.key]
    clock[0] = expires_at - 50  # within refresh_margin; the keys were fetched 50 s ago
    assert await auth.refresh_user(user) is True
    clock[0] = expires_at - 35  # 65 s after the fetch: the new key is fetched and verifies
    refreshed = await auth.refresh_user(user)
    assert refreshed["auth_state"]["refresh_token"] == "refresh-3"
    assert idp.jwks_fetches == 2


async def test_logout_ends_the_sso_session(idp, make):
    auth = make()
    url = await auth.sso_logout_url(Handler(), "the-id-token")
    parsed = urlparse(url)
    assert url.startswith(f"{idp.base}/logout?")
    assert parse_qs(parsed.query) == {
        "client_id": [CLIENT_ID],
        "post_logout_redirect_uri": ["https://hub.example/hub/login"],
        "id_token_hint": ["the-id-token"],
    }
    no_hint = await make(post_logout_redirect_uri="https://hub.cern.ch/").sso_logout_url(Handler(), None)
    assert parse_qs(urlparse(no_hint).query) == {
        "client_id": [CLIENT_ID],
        "post_logout_redirect_uri": ["https://hub.cern.ch/"],
    }


async def test_explicit_logout_redirect_url_wins(idp, make):
    assert (
        await make(logout_redirect_url="https://cern.ch").sso_logout_url(Handler(), "t") == "https://cern.ch"
    )
    assert await make(sso_logout=False).sso_logout_url(Handler(), "t") == ""

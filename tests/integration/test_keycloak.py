"""The sandbox's Keycloak: realm `cern` as the hub sees it — discovery, keys, a full code-flow login,
the CERN claims, refresh, and standard token exchange to another audience."""

from __future__ import annotations

import secrets
import urllib.parse

import jwt
import pytest
import requests

from sandbox import keycloak
from sandbox.controlplane import free_port

pytestmark = [pytest.mark.integration, pytest.mark.shares("sso-roles")]

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


@pytest.fixture(scope="module")
def kc(sandbox):
    assert sandbox.get("keycloak"), "the sandbox records no Keycloak"
    return sandbox["keycloak"]


@pytest.fixture(scope="module")
def secret(sandbox, kc):
    return keycloak.client_secret(sandbox["state_dir"])


@pytest.fixture(scope="module")
def discovery(kc):
    response = requests.get(f"{kc['issuer']}/.well-known/openid-configuration", timeout=10)
    response.raise_for_status()
    return response.json()


@pytest.fixture(scope="module")
def redirect_uri(sandbox, kc):
    """A callback on a port nobody listens on, registered as a test hub would register its own."""
    uri = f"http://127.0.0.1:{free_port()}/hub/oauth_callback"
    keycloak.allow_redirect(sandbox["state_dir"], uri)
    return uri


@pytest.fixture(scope="module")
def jwks(discovery):
    return jwt.PyJWKClient(discovery["jwks_uri"])


def login(kc, discovery, redirect_uri, secret, username, scope="openid") -> dict:
    """Authorization-code login with PKCE through Keycloak's form; the token endpoint's answer."""
    verifier, challenge = keycloak.pkce()
    state = secrets.token_urlsafe(8)
    url = keycloak.authorize_url(kc, redirect_uri, challenge, state, scope)
    with requests.Session() as session:
        location = keycloak.login_code_flow(session, url, username, keycloak.DEMO_PASSWORD)
    assert location.startswith(redirect_uri + "?"), location
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    assert query["state"] == [state]
    response = requests.post(
        discovery["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
        auth=(kc["client_id"], secret),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


def claims(jwks, kc, token: str, audience: str = "jupyterhub") -> dict:
    key = jwks.get_signing_key_from_jwt(token)
    return jwt.decode(token, key.key, algorithms=["RS256"], audience=audience, issuer=kc["issuer"])


def test_discovery_names_the_issuer_under_auth(kc, discovery):
    issuer = kc["issuer"]
    assert issuer.startswith("http://127.0.0.1:") and issuer.endswith("/auth/realms/cern")
    assert discovery["issuer"] == issuer
    for endpoint in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"):
        assert discovery[endpoint].startswith(f"{issuer}/protocol/openid-connect/"), endpoint
    assert discovery["end_session_endpoint"] == f"{issuer}/protocol/openid-connect/logout"
    assert "S256" in discovery["code_challenge_methods_supported"]
    assert TOKEN_EXCHANGE in discovery["grant_types_supported"]


def test_jwks_has_an_rs256_signing_key(discovery):
    keys = requests.get(discovery["jwks_uri"], timeout=10).json()["keys"]
    assert any(k["kty"] == "RSA" and k.get("alg") == "RS256" and k.get("use") == "sig" for k in keys)


def test_bob_logs_in_and_carries_the_gpu_role(kc, discovery, redirect_uri, secret, jwks):
    tokens = login(kc, discovery, redirect_uri, secret, "bob")
    assert tokens["expires_in"] == 1200  # CERN's 20-minute access tokens
    access = claims(jwks, kc, tokens["access_token"])
    assert access["cern_upn"] == "bob"
    assert access["cern_roles"] == ["gpu-users"]
    assert access["resource_access"]["jupyterhub"]["roles"] == ["gpu-users"]
    assert access["azp"] == "jupyterhub"
    assert access["email"] == "bob@cern.ch" and access["email_verified"] is True
    identity = claims(jwks, kc, tokens["id_token"])
    assert identity["cern_roles"] == ["gpu-users"] and identity["cern_upn"] == "bob"
    userinfo = requests.get(
        discovery["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=10,
    ).json()
    assert userinfo["cern_roles"] == ["gpu-users"] and userinfo["cern_upn"] == "bob"
    assert userinfo["preferred_username"] == "bob" and userinfo["given_name"] == "Bob"


def test_alice_has_no_roles_and_carol_is_an_admin(kc, discovery, redirect_uri, secret, jwks):
    alice = claims(jwks, kc, login(kc, discovery, redirect_uri, secret, "alice")["access_token"])
    assert alice["cern_upn"] == "alice"
    assert alice.get("cern_roles", []) == []  # Keycloak leaves an empty claim out
    assert "jupyterhub" not in alice.get("resource_access", {})
    carol = claims(jwks, kc, login(kc, discovery, redirect_uri, secret, "carol")["access_token"])
    assert carol["cern_roles"] == ["hub-admins"]


def test_refresh_grant_renews_the_access_token(kc, discovery, redirect_uri, secret, jwks):
    tokens = login(kc, discovery, redirect_uri, secret, "bob")
    response = requests.post(
        discovery["token_endpoint"],
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(kc["client_id"], secret),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    renewed = response.json()
    assert renewed["access_token"] != tokens["access_token"]
    assert claims(jwks, kc, renewed["access_token"])["cern_roles"] == ["gpu-users"]


def test_token_exchange_to_eos_service(kc, discovery, redirect_uri, secret, jwks):
    tokens = login(kc, discovery, redirect_uri, secret, "bob")
    response = requests.post(
        discovery["token_endpoint"],
        data={
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": tokens["access_token"],
            "subject_token_type": ACCESS_TOKEN_TYPE,
            "requested_token_type": ACCESS_TOKEN_TYPE,
            "audience": kc["exchange_audience"],
            "scope": "eos-service-audience",
        },
        auth=(kc["client_id"], secret),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    exchanged = claims(jwks, kc, response.json()["access_token"], audience="eos-service")
    original = claims(jwks, kc, tokens["access_token"])
    assert exchanged["sub"] == original["sub"] and exchanged["cern_upn"] == "bob"
    assert exchanged["azp"] == "jupyterhub"


def test_wrong_password_and_unknown_redirect_are_refused(kc, redirect_uri):
    _, challenge = keycloak.pkce()
    with (
        requests.Session() as session,
        pytest.raises(keycloak.LoginError, match="Invalid username or password"),
    ):
        url = keycloak.authorize_url(kc, redirect_uri, challenge, "s")
        keycloak.login_code_flow(session, url, "bob", "not-the-password")
    with requests.Session() as session, pytest.raises(keycloak.LoginError):
        url = keycloak.authorize_url(kc, "http://127.0.0.1:9/elsewhere", challenge, "s")
        keycloak.login_code_flow(session, url, "bob", keycloak.DEMO_PASSWORD)

"""The sandbox's Keycloak: realm `cern` as the hub sees it — discovery, keys, a full code-flow login,
the CERN claims, refresh, and standard token exchange to another audience — and the tokens the hub's
CERNAuthenticator must refuse from it: tampered, meant for another audience, signed with a key the
realm rotated out, expired; and a login without PKCE, which the realm refuses.

Key rotation and short-lived tokens use clients the module adds to realm `cern` (removed at its end)
and an RS512 key only those clients sign with: the hub's client keeps the realm's RS256 key, so the
logins of other modules running at the same time are untouched."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
import urllib.parse

import jwt
import pytest
import requests

from cern_spawner.auth import CERNAuthenticator
from cern_spawner.auth.errors import TokenInvalid, WrongAudience
from sandbox import keycloak
from sandbox.controlplane import free_port
from sandbox.keycloak.admin import admin_token

pytestmark = [pytest.mark.integration, pytest.mark.shares("sso-roles", "sso-keys")]

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
    access = claims(jwks, kc, tokens["access_token"])
    # CERN's 20-minute access tokens. (`expires_in` is counted from the response's second, 1199
    # when a second boundary passes between issuing and answering: the token's own claims say it.)
    assert access["exp"] - access["iat"] == 1200
    assert 0 < tokens["expires_in"] <= 1200
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


# --- what the hub's authenticator refuses, with tokens from the real Keycloak ---------------------


def authenticator(issuer: str, client_id: str, secret: str, **config) -> CERNAuthenticator:
    """The hub's authenticator for `issuer`, without auth_state (nothing is stored here)."""
    return CERNAuthenticator(
        issuer_url=issuer, client_id=client_id, client_secret=secret, enable_refresh=False, **config
    )


@pytest.fixture(scope="module")
def bob_tokens(kc, discovery, redirect_uri, secret) -> dict:
    """bob's tokens from a code-flow login, and his access token exchanged for eos-service."""
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
    return {**tokens, "exchanged": response.json()["access_token"]}


async def test_the_realms_tokens_pass_the_hubs_checks(kc, secret, bob_tokens):
    """The control for the refusals below; the access token's aud names the hub (the realm's audience
    mapper), so the hub's default access_token_audience_required holds against this realm."""
    auth = authenticator(kc["issuer"], kc["client_id"], secret)
    claims = await auth.verified_claims(bob_tokens)
    assert claims["cern_upn"] == "bob" and kc["client_id"] in claims["aud"]


@pytest.mark.parametrize("field", ["access_token", "id_token"])
async def test_a_token_exchanged_for_another_audience_is_refused(kc, secret, bob_tokens, field):
    exchanged = jwt.decode(bob_tokens["exchanged"], options={"verify_signature": False})
    assert (exchanged["aud"], exchanged["azp"]) == (kc["exchange_audience"], kc["client_id"])
    swapped = {**bob_tokens, field: bob_tokens["exchanged"]}
    with pytest.raises(WrongAudience, match="does not include 'jupyterhub'"):
        await authenticator(kc["issuer"], kc["client_id"], secret).verified_claims(swapped)


def tampered(token: str) -> str:
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["cern_roles"] = ["hub-admins"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{signature}"


async def test_a_tampered_token_is_refused(kc, secret, bob_tokens):
    forged = {**bob_tokens, "access_token": tampered(bob_tokens["access_token"])}
    with pytest.raises(TokenInvalid, match="Signature verification failed"):
        await authenticator(kc["issuer"], kc["client_id"], secret).verified_claims(forged)


def test_a_login_without_pkce_is_refused(kc, redirect_uri):
    query = {
        "client_id": kc["client_id"],
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "scope": "openid",
        "state": "s",
    }
    url = f"{kc['issuer']}/protocol/openid-connect/auth?{urllib.parse.urlencode(query)}"
    with requests.Session() as session:
        location = keycloak.login_code_flow(session, url, "bob", keycloak.DEMO_PASSWORD)
    answer = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
    assert "code" not in answer
    assert answer["error"] == "invalid_request" and "code_challenge" in answer["error_description"]


class Probes:
    """Clients of their own in realm cern, whose service accounts get tokens at once (no login):
    `probe` signs its access tokens with RS512, a key of its own the test rotates, and `short` issues
    tokens for one second. Every other client keeps signing with the realm's RS256 key, so logins of
    other modules are untouched; everything added here is removed at the end."""

    def __init__(self, kc: dict):
        tag = secrets.token_hex(4)
        self.url = f"{kc['base_url']}/admin/realms/{kc['realm']}"
        self.issuer = kc["issuer"]
        self.headers = {"Authorization": f"Bearer {admin_token(kc)}"}
        self.probe, self.short = f"negatives-{tag}", f"negatives-short-{tag}"
        self.secrets = {self.probe: secrets.token_urlsafe(16), self.short: secrets.token_urlsafe(16)}
        self.key_name = f"negatives-key-{tag}"
        self.created: list[str] = []  # admin API paths to delete at the end
        self.first_key = ""

    def call(self, method: str, path: str = "", **kwargs) -> requests.Response:
        response = requests.request(method, self.url + path, headers=self.headers, timeout=30, **kwargs)
        assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
        return response

    def add_client(self, client_id: str, **attributes) -> None:
        created = self.call(
            "POST",
            "/clients",
            json={
                "clientId": client_id,
                "secret": self.secrets[client_id],
                "publicClient": False,
                "standardFlowEnabled": False,
                "serviceAccountsEnabled": True,
                "attributes": attributes,
                # As for the hub's client: its own id in its access tokens' audience.
                "protocolMappers": [
                    {
                        "name": "own audience",
                        "protocol": "openid-connect",
                        "protocolMapper": "oidc-audience-mapper",
                        "config": {"included.client.audience": client_id, "access.token.claim": "true"},
                    }
                ],
            },
        )
        self.created.append("/clients/" + created.headers["Location"].rsplit("/", 1)[-1])

    def add_key(self, priority: int) -> str:
        """A new RS512 signing key (only `probe` signs with RS512); its component's admin path."""
        realm_id = self.call("GET").json()["id"]
        created = self.call(
            "POST",
            "/components",
            json={
                "name": self.key_name,
                "providerId": "rsa-generated",
                "providerType": "org.keycloak.keys.KeyProvider",
                "parentId": realm_id,
                "config": {"priority": [str(priority)], "keySize": ["2048"], "algorithm": ["RS512"]},
            },
        )
        path = "/components/" + created.headers["Location"].rsplit("/", 1)[-1]
        self.created.append(path)
        return path

    def token(self, client_id: str) -> str:
        response = requests.post(
            f"{self.issuer}/protocol/openid-connect/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, self.secrets[client_id]),
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def remove(self, path: str) -> None:
        self.call("DELETE", path)
        self.created.remove(path)

    def clean_up(self) -> None:
        for path in reversed(self.created):
            response = requests.delete(self.url + path, headers=self.headers, timeout=30)
            assert response.status_code in (204, 404), f"DELETE {path}: {response.status_code}"


@pytest.fixture(scope="module")
def probes(kc):
    probes = Probes(kc)
    try:
        # The key first: a client asking for RS512 without one makes Keycloak add a lasting fallback key.
        probes.first_key = probes.add_key(priority=200)
        probes.add_client(probes.probe, **{"access.token.signed.response.alg": "RS512"})
        probes.add_client(probes.short, **{"access.token.lifespan": "1"})
        yield probes
    finally:
        probes.clean_up()


async def test_another_clients_token_is_refused(kc, secret, probes):
    token = probes.token(probes.probe)
    own = authenticator(kc["issuer"], probes.probe, probes.secrets[probes.probe])
    assert (await own.verified_claims({"access_token": token}))["azp"] == probes.probe  # the control
    with pytest.raises(WrongAudience, match=f"issued to client '{probes.probe}'"):
        await authenticator(kc["issuer"], kc["client_id"], secret).verified_claims({"access_token": token})


async def test_a_key_rotated_out_of_the_realm_stops_verifying(kc, probes):
    auth = authenticator(kc["issuer"], probes.probe, probes.secrets[probes.probe])
    now = [1000.0]
    auth.clock = lambda: now[0]
    before = probes.token(probes.probe)
    await auth.verified_claims({"access_token": before})
    # Rotation as an SSO administrator does it: a new key of higher priority, the old one removed.
    probes.add_key(priority=300)
    probes.remove(probes.first_key)
    after = probes.token(probes.probe)
    assert jwt.get_unverified_header(after)["kid"] != jwt.get_unverified_header(before)["kid"]
    # Once the fetched key set is older than jwks_max_age the hub fetches it again: the old kid is gone.
    now[0] += auth.jwks_max_age
    with pytest.raises(TokenInvalid, match="no key"):
        await auth.verified_claims({"access_token": before})
    assert (await auth.verified_claims({"access_token": after}))["azp"] == probes.probe
    # A hub that never saw the old key refuses it at once.
    fresh = authenticator(kc["issuer"], probes.probe, probes.secrets[probes.probe])
    with pytest.raises(TokenInvalid, match="no key"):
        await fresh.verified_claims({"access_token": before})


async def test_an_expired_token_is_refused(kc, probes):
    token = probes.token(probes.short)  # valid for one second
    # The control: with a minute of tolerated clock skew it is still good.
    tolerant = authenticator(kc["issuer"], probes.short, probes.secrets[probes.short], token_leeway=60)
    await tolerant.verified_claims({"access_token": token})
    await asyncio.sleep(
        max(0.0, jwt.decode(token, options={"verify_signature": False})["exp"] - time.time() + 0.1)
    )
    strict = authenticator(kc["issuer"], probes.short, probes.secrets[probes.short], token_leeway=0)
    with pytest.raises(TokenInvalid, match="expired"):
        await strict.verified_claims({"access_token": token})

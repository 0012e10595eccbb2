"""Single sign-on in a real hub against the sandbox's real Keycloak: the authorization-code login
through Keycloak's form, roles as groups, role-gated profiles, refresh, revocation, exchanged tokens
in the notebook pod, and logout ending the SSO session."""

from __future__ import annotations

import base64
import re
import time
import urllib.parse
from pathlib import Path

import jwt
import pytest
import requests
from kubernetes import client

from sandbox import keycloak
from sandbox.hubrunner import start_hub
from sandbox.keycloak.admin import admin_token
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.shares("sso-roles", "gpu-v100", "user-bob", "user-alice")]

PASSWORD = keycloak.DEMO_PASSWORD
GPU_PROFILE = "Dedicated 1 GPU"
# The service may read auth_state, to see which tokens the hub holds.
READ_AUTH_STATE = "c.JupyterHub.load_roles[0]['scopes'].append('admin:auth_state')\n"
# Any access token counts as near expiry (they live 20 minutes): every check, at most once a
# second, refreshes — what the hub does once a token really nears its expiry.
ALWAYS_REFRESH = "c.CERNAuthenticator.refresh_margin = 3600\nc.CERNAuthenticator.auth_refresh_age = 1\n"


def launch(sandbox, directory: Path, extra: str):
    try:
        return start_hub(directory, READ_AUTH_STATE + extra)
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="module")
def sso_hub(sandbox, tmp_path_factory):
    hub = launch(sandbox, tmp_path_factory.mktemp("sso-hub"), "")
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def refresh_hub(sandbox, tmp_path_factory):
    hub = launch(sandbox, tmp_path_factory.mktemp("refresh-hub"), ALWAYS_REFRESH)
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def kc(sandbox):
    assert sandbox.get("keycloak"), "the sandbox records no Keycloak"
    return sandbox["keycloak"]


class Realm:
    """The realm's admin REST API, for what an SSO administrator would change."""

    def __init__(self, kc: dict):
        self.url = f"{kc['base_url']}/admin/realms/{kc['realm']}"
        self.headers = {"Authorization": f"Bearer {admin_token(kc)}"}
        self.client_id = kc["client_id"]
        self.client = self.get(f"/clients?clientId={kc['client_id']}")[0]["id"]

    def call(self, method: str, path: str, **kwargs):
        response = requests.request(method, self.url + path, headers=self.headers, timeout=30, **kwargs)
        assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def get(self, path: str):
        return self.call("GET", path)

    def user(self, name: str) -> str:
        return self.get(f"/users?username={name}&exact=true")[0]["id"]

    def set_role(self, username: str, role: str, held: bool) -> None:
        representation = self.get(f"/clients/{self.client}/roles/{role}")
        path = f"/users/{self.user(username)}/role-mappings/clients/{self.client}"
        self.call("POST" if held else "DELETE", path, json=[representation])

    def revoke(self, username: str) -> None:
        """End the user's SSO sessions and revoke the hub's offline token (scope offline_access),
        which outlives a logout of the sessions alone."""
        user = self.user(username)
        self.call("POST", f"/users/{user}/logout")
        self.call("DELETE", f"/users/{user}/consents/{self.client_id}")


@pytest.fixture(scope="module")
def realm(kc):
    return Realm(kc)


def user_model(hub, name: str) -> dict:
    return hub.api("GET", f"/users/{name}").json()


def xsrf(browser) -> dict:
    return {"X-XSRFToken": browser.cookies.get("_xsrf")}


def trust_loopback(browser) -> None:
    # Keycloak's cookies are Secure even on http; browsers send them to 127.0.0.1 anyway.
    for cookie in browser.cookies:
        if cookie.domain == "127.0.0.1":
            cookie.secure = False


def follow(browser, url: str, stay_on: str) -> requests.Response:
    """GET `url` and its redirects one at a time, failing on any that leaves `stay_on`."""
    for _ in range(10):
        assert url.startswith(stay_on + "/"), f"redirected off {stay_on}: {url}"
        response = browser.get(url, allow_redirects=False, timeout=30)
        trust_loopback(browser)
        if response.status_code not in (301, 302, 303, 307, 308):
            return response
        url = urllib.parse.urljoin(url, response.headers["Location"])
    raise AssertionError(f"too many redirects, last {url}")


def start_oauth(hub, browser, next_url: str | None = None) -> str:
    """The hub's redirect to Keycloak (with the state it expects back)."""
    params = {"next": next_url} if next_url else {}
    response = browser.get(f"{hub.url}/hub/oauth_login", params=params, allow_redirects=False, timeout=30)
    assert response.status_code == 302, response.text[:300]
    return response.headers["Location"]


def logged_in_as(hub, browser) -> str | None:
    response = browser.get(f"{hub.url}/hub/api/user", timeout=30)
    return response.json()["name"] if response.status_code == 200 else None


def requires_password(hub, browser, username: str) -> bool:
    """A new login at the hub shows Keycloak's form again (no SSO session answers for the user)."""
    with pytest.raises(keycloak.LoginError) as refused:
        keycloak.login_code_flow(browser, start_oauth(hub, browser), username, "not-the-password")
    return "Invalid username or password" in str(refused.value)


def test_login_through_keycloak_shows_the_user_logged_in(sso_hub):
    browser = sso_hub.login("bob", PASSWORD)
    assert logged_in_as(sso_hub, browser) == "bob"
    home = browser.get(f"{sso_hub.url}/hub/home", timeout=30)
    assert home.url == f"{sso_hub.url}/hub/home" and "bob" in home.text


def test_roles_become_groups_and_admin(sso_hub):
    for name in ("alice", "bob", "carol"):
        sso_hub.login(name, PASSWORD)
    bob, carol, alice = (user_model(sso_hub, n) for n in ("bob", "carol", "alice"))
    assert (bob["groups"], bob["admin"]) == (["gpu-users"], False)
    assert (carol["groups"], carol["admin"]) == (["hub-admins"], True)
    assert (alice["groups"], alice["admin"]) == ([], False)


def test_only_gpu_users_are_offered_and_granted_the_gpu_profile(sso_hub, core, sandbox):
    namespace = sandbox["user_namespace"]
    alice = sso_hub.login("alice", PASSWORD)
    assert GPU_PROFILE not in alice.get(f"{sso_hub.url}/hub/spawn", timeout=30).text
    # alice's own API token: what she could script against the hub.
    created = alice.post(
        f"{sso_hub.url}/hub/api/users/alice/tokens", json={"note": "test"}, headers=xsrf(alice), timeout=30
    )
    assert created.status_code == 201, created.text
    refused = requests.post(
        f"{sso_hub.url}/hub/api/users/alice/server",
        json={"profile": "gpu-1"},
        headers={"Authorization": f"token {created.json()['token']}"},
        timeout=30,
    )
    assert refused.status_code == 403, refused.text
    assert not core.list_namespaced_pod(namespace, label_selector="hub.jupyter.org/username=alice").items

    bob = sso_hub.login("bob", PASSWORD)
    assert GPU_PROFILE in bob.get(f"{sso_hub.url}/hub/spawn", timeout=30).text
    try:
        started = bob.post(
            f"{sso_hub.url}/hub/api/users/bob/server",
            json={"profile": "gpu-1"},
            headers=xsrf(bob),
            timeout=30,
        )
        assert started.status_code in (201, 202), started.text
        wait_until(
            lambda: user_model(sso_hub, "bob")["servers"].get("", {}).get("ready"),
            timeout=120,
            what="bob's GPU server",
        )
        (pod,) = core.list_namespaced_pod(namespace, label_selector="hub.jupyter.org/username=bob").items
        assert pod.spec.containers[0].resources.limits["nvidia.com/gpu"] == "1"
        assert (
            core.read_node(pod.spec.node_name).metadata.labels["magnum.openstack.org/nodegroup"] == "gpu-v100"
        )
        on_call_sees_it(sso_hub, alice, pod.spec.node_name)
    finally:
        stop_server(sso_hub, core, namespace, "bob")


def on_call_sees_it(hub, alice, node: str) -> None:
    """The admin page shows the GPU group (watched) and bob's server on its node to an admin only,
    and /hub/metrics has the new series after the spawn."""
    carol = hub.login("carol", PASSWORD)
    page = carol.get(f"{hub.url}/hub/cern/admin", timeout=30)
    assert page.status_code == 200, page.text[:500]
    (group,) = re.findall(r'<tr class="cern-group" id="group-gpu-v100">(.*?)</tr>', page.text, re.DOTALL)
    assert "Tesla-V100" in group and "not watched" not in group, group
    (server,) = re.findall(r'<tr class="cern-server">(.*?)</tr>', page.text, re.DOTALL)
    assert "<td>bob</td>" in server and "(gpu-1)" in server and f"<td>{node}</td>" in server, server
    refused = alice.get(f"{hub.url}/hub/cern/admin", timeout=30)
    assert refused.status_code == 403 and "Service status" not in refused.text
    metrics = hub.session.get(f"{hub.url}/hub/metrics", timeout=30).text
    for series in (
        r'cern_spawner_spawn_duration_seconds_count\{profile="gpu-1",result="success"\} [1-9]',
        r"cern_spawner_cloud_request_duration_seconds_count"
        r'\{backend="magnum",call="get_node_group",result="ok"\} [1-9]',
        r"cern_spawner_catalog_applied_timestamp_seconds [1-9]",
        r'cern_spawner_sso_token_exchanges_total\{audience="[^"]+"\} [1-9]',
    ):
        assert re.search(series, metrics), series


def stop_server(hub, core, namespace: str, user: str) -> None:
    hub.api("DELETE", f"/users/{user}/server")
    wait_until(
        lambda: (
            not core.list_namespaced_pod(namespace, label_selector=f"hub.jupyter.org/username={user}").items
        ),
        timeout=60,
        what=f"{user}'s pod removed",
    )


def test_the_hub_asks_for_a_code_with_pkce(sso_hub):
    """The realm requires PKCE of the hub's client (test_keycloak shows a login without it fails)."""
    authorize = start_oauth(sso_hub, requests.Session())
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(authorize).query))
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) >= 43


def test_an_admins_notebook_token_reads_no_cern_endpoint(sso_hub):
    """The cern endpoints go by the token's JupyterHub scopes, not by its owner being an admin."""
    carol = sso_hub.login("carol", PASSWORD)

    def new_token(scopes: list[str] | None) -> dict:
        body = {"note": "scopes test", **({"scopes": scopes} if scopes else {})}
        created = carol.post(
            f"{sso_hub.url}/hub/api/users/carol/tokens", json=body, headers=xsrf(carol), timeout=30
        )
        assert created.status_code == 201, created.text
        return {"Authorization": f"token {created.json()['token']}"}

    api_token = new_token(None)  # the owner's permissions: an admin's script
    # What a notebook server gets as JUPYTERHUB_API_TOKEN (the 'server' role, for carol's server).
    server_token = new_token(["access:servers!server=carol/", "users:activity!user=carol"])
    for endpoint in ("catalog", "availability"):
        url = f"{sso_hub.url}/hub/api/cern/{endpoint}"
        assert carol.get(url, timeout=30).status_code == 200, endpoint  # her browser session
        assert requests.get(url, headers=api_token, timeout=30).status_code == 200, endpoint
        refused = requests.get(url, headers=server_token, timeout=30)
        assert refused.status_code == 403, (endpoint, refused.text)
        assert "notebook server's token" in refused.json()["message"]


def test_a_callback_with_a_forged_state_is_refused(sso_hub, kc):
    browser = requests.Session()
    callback = keycloak.login_code_flow(browser, start_oauth(sso_hub, browser), "bob", PASSWORD)
    parts = urllib.parse.urlsplit(callback)
    query = dict(urllib.parse.parse_qsl(parts.query))
    query["state"] = "forged" + query["state"][6:]
    forged = parts._replace(query=urllib.parse.urlencode(query)).geturl()
    answer = browser.get(forged, allow_redirects=False, timeout=30)
    assert 400 <= answer.status_code < 500, answer.status_code
    assert logged_in_as(sso_hub, browser) is None


@pytest.mark.parametrize("target", ["//evil.example", "https://evil.example/steal", "/\\evil.example"])
def test_next_leaving_the_hub_is_not_followed(sso_hub, target):
    browser = requests.Session()
    callback = keycloak.login_code_flow(browser, start_oauth(sso_hub, browser, target), "alice", PASSWORD)
    landed = follow(browser, callback, stay_on=sso_hub.url)  # fails on a redirect leaving the hub
    # JupyterHub drops a foreign host and keeps the path: /steal is then a 404 of the hub itself.
    assert landed.status_code in (200, 404) and landed.url.startswith(f"{sso_hub.url}/hub/")
    assert logged_in_as(sso_hub, browser) == "alice"


def test_expired_tokens_are_refreshed_and_a_removed_role_leaves_the_groups(refresh_hub, realm):
    browser = refresh_hub.login("carol", PASSWORD)
    before = user_model(refresh_hub, "carol")
    assert (before["groups"], before["admin"]) == (["hub-admins"], True)
    try:
        realm.set_role("carol", "hub-admins", held=False)
        time.sleep(1.2)  # auth_refresh_age
        home = browser.get(f"{refresh_hub.url}/hub/home", timeout=30)
        # Transparent: the page is served, not a login.
        assert home.status_code == 200 and home.url == f"{refresh_hub.url}/hub/home"
        after = user_model(refresh_hub, "carol")
        assert after["auth_state"]["access_token"] != before["auth_state"]["access_token"]
        assert (
            after["auth_state"]["access_token_expires_at"] >= before["auth_state"]["access_token_expires_at"]
        )
        assert (after["groups"], after["admin"]) == ([], False)
    finally:
        realm.set_role("carol", "hub-admins", held=True)


def test_a_revoked_sso_session_sends_the_user_to_log_in_again(refresh_hub, realm):
    browser = refresh_hub.login("alice", PASSWORD)
    realm.revoke("alice")
    time.sleep(1.2)
    home = browser.get(f"{refresh_hub.url}/hub/home", allow_redirects=False, timeout=30)
    assert home.status_code == 302, home.status_code
    assert urllib.parse.urlsplit(home.headers["Location"]).path == "/hub/login"
    assert requires_password(refresh_hub, browser, "alice")


def read_secret(core, namespace: str, name: str) -> dict[str, str] | None:
    try:
        secret = core.read_namespaced_secret(name, namespace)
    except client.ApiException as e:
        if e.status == 404:
            return None
        raise
    return {key: base64.b64decode(value).decode() for key, value in (secret.data or {}).items()}


def start_server(hub, browser, user: str, profile: str) -> None:
    started = browser.post(
        f"{hub.url}/hub/api/users/{user}/server", json={"profile": profile}, headers=xsrf(browser), timeout=30
    )
    assert started.status_code in (201, 202), started.text
    wait_until(
        lambda: user_model(hub, user)["servers"].get("", {}).get("ready"),
        timeout=120,
        what=f"{user}'s server",
    )


def test_the_exchanged_token_is_a_file_in_the_pod_and_nothing_else_is(sso_hub, core, sandbox, kc):
    namespace, name = sandbox["user_namespace"], "cern-tokens-bob"
    bob = sso_hub.login("bob", PASSWORD)
    try:
        start_server(sso_hub, bob, "bob", "shared-1g")
        auth_state = user_model(sso_hub, "bob")["auth_state"]
        secret = read_secret(core, namespace, name)
        assert set(secret) == {"eos-service.token"}
        token = secret["eos-service.token"]
        assert token == auth_state["exchanged_tokens"]["eos-service"]["access_token"]
        jwks = jwt.PyJWKClient(f"{kc['issuer']}/protocol/openid-connect/certs")
        claims = jwt.decode(
            token,
            jwks.get_signing_key_from_jwt(token).key,
            algorithms=["RS256"],
            audience="eos-service",
            issuer=kc["issuer"],
        )
        assert claims["cern_upn"] == "bob" and claims["typ"] == "Bearer"
        hub_tokens = {auth_state["refresh_token"], auth_state["access_token"], auth_state["id_token"]}
        assert not hub_tokens & set(secret.values())

        (pod,) = core.list_namespaced_pod(namespace, label_selector="hub.jupyter.org/username=bob").items
        volume = next(v for v in pod.spec.volumes if v.secret and v.secret.secret_name == name)
        notebook = pod.spec.containers[0]
        mount = next(m for m in notebook.volume_mounts if m.name == volume.name)
        assert mount.mount_path == "/run/secrets/cern-tokens" and mount.read_only
        env = [f"{e.name}={e.value}" for e in notebook.env or []]
        assert not any(t in e for t in (token, *hub_tokens) for e in env)
        # What the notebook reads at /run/secrets/cern-tokens: the node agent's copy of the volume
        # (bind-mounted into the pod's mount namespace; the sandbox has no exec).
        (file,) = Path(sandbox["state_dir"]).glob(
            f"pods/{namespace}_{pod.metadata.name}_*/volumes/{volume.name}/eos-service.token"
        )
        assert file.read_text() == token
    finally:
        stop_server(sso_hub, core, namespace, "bob")
    wait_until(lambda: read_secret(core, namespace, name) is None, timeout=30, what=f"{name} deleted")


def test_a_refresh_while_the_server_runs_renews_the_token_secret(refresh_hub, core, sandbox):
    namespace, name = sandbox["user_namespace"], "cern-tokens-bob"
    bob = refresh_hub.login("bob", PASSWORD)
    try:
        start_server(refresh_hub, bob, "bob", "shared-1g")
        token = read_secret(core, namespace, name)["eos-service.token"]
        time.sleep(1.2)  # auth_refresh_age
        assert bob.get(f"{refresh_hub.url}/hub/home", timeout=30).status_code == 200
        wait_until(
            lambda: read_secret(core, namespace, name)["eos-service.token"] != token,
            timeout=10,
            what="the Secret's token renewed",
        )

        def secret_matches_auth_state():
            held = user_model(refresh_hub, "bob")["auth_state"]["exchanged_tokens"]["eos-service"]
            return read_secret(core, namespace, name)["eos-service.token"] == held["access_token"]

        # The server's own API calls refresh too (every second here): poll until both agree.
        wait_until(secret_matches_auth_state, timeout=10, what="the Secret to hold the hub's exchanged token")
    finally:
        stop_server(refresh_hub, core, namespace, "bob")
    wait_until(lambda: read_secret(core, namespace, name) is None, timeout=30, what=f"{name} deleted")


def test_logout_ends_the_sso_session(sso_hub, kc):
    browser = sso_hub.login("bob", PASSWORD)
    logout = browser.get(f"{sso_hub.url}/hub/logout", allow_redirects=False, timeout=30)
    assert logout.status_code == 302
    target = urllib.parse.urlsplit(logout.headers["Location"])
    assert (
        f"{target.scheme}://{target.netloc}{target.path}" == f"{kc['issuer']}/protocol/openid-connect/logout"
    )
    query = dict(urllib.parse.parse_qsl(target.query))
    assert query["post_logout_redirect_uri"] == f"{sso_hub.url}/hub/login"
    assert query["client_id"] == kc["client_id"] and query["id_token_hint"]
    trust_loopback(browser)
    back = browser.get(logout.headers["Location"], allow_redirects=False, timeout=30)
    trust_loopback(browser)
    assert back.status_code == 302 and back.headers["Location"].startswith(f"{sso_hub.url}/hub/login")
    assert logged_in_as(sso_hub, browser) is None
    assert requires_password(sso_hub, browser, "bob")

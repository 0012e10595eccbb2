"""The Helm-installed hub serves on the sandbox: one release of helm/cern-spawner, installed with
ci/sandbox-values.yaml plus what only the running sandbox knows (its Keycloak issuer, back channel
and client secret, the OpenStack simulator's clouds.yaml, hub egress to the host's bridge address),
proved from the host as a user would see it: users log in through Keycloak's page, start servers
from the form, and a GPU profile grows its node group through the simulator.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import secrets
import socket
import ssl
import time
import uuid

import pytest
import requests
import yaml
from requests.adapters import HTTPAdapter

from sandbox.keycloak import DEMO_PASSWORD, allow_redirect, client_secret, login_code_flow
from tests.conftest import PSA_RESTRICTED
from tests.integration.chart import CHART, run
from tests.integration.growth import (
    A40_GROUP,
    FAST,
    group_state,
    log_mark,
    reset_timings,
    set_timings,
    writes,
)
from tests.integration.test_helm import (  # noqa: F401 (fixtures)
    TLS_HOST,
    helm,
    kubectl,
    tls_certificate,
)
from tests.waiting import wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.shares("helm-release", "user-alice", A40_GROUP),
]

SANDBOX_VALUES = CHART / "ci" / "sandbox-values.yaml"
TOKEN = secrets.token_hex(32)
USER = "alice"
RELEASE_VALUES: dict = {}  # namespace -> the test's values file, for upgrades
ALICE_POD = f"component=singleuser-server,hub.jupyter.org/username={USER}"
READER = "catalog-reader"  # a hub user allowed read:hub, to read the catalog's status
GPU_GROUP = A40_GROUP  # empty at rest; test_hub_restart is the other module growing it (shares)
# The release's catalog: the chart's shared profile, and a GPU profile on an empty, scaled group.
PROFILES = f"""
node_groups:
  default-worker: {{}}
  {GPU_GROUP}:
    gpu: {{resource: nvidia.com/gpu, per_node: 4, product: NVIDIA-A40}}
    taint: {{key: nvidia.com/gpu, value: present, effect: NoSchedule}}
    scaling: {{backend: magnum, cluster: sandbox, mode: resize, min_nodes: 0, max_nodes: 4}}
profiles:
  - slug: shared-2g
    display_name: "Shared, 2 GB memory, 1 CPU core"
    kind: shared
    cpu: {{guarantee: 0.2, limit: 1}}
    memory: {{guarantee: 1G, limit: 2G}}
    node_group: default-worker
    default: true
  - slug: a40-1
    display_name: "Dedicated 1 A40 GPU"
    kind: dedicated
    cpu: 0.5
    memory: 1G
    gpus: 1
    node_group: {GPU_GROUP}
    allowed_roles: [gpu-users]
    start_timeout: 300
"""


@pytest.fixture(scope="module")
def release(helm, sandbox, core, tls_certificate, tmp_path_factory):  # noqa: F811
    """The release's namespace, once the hub pod is Ready (its /hub/health readiness probe)."""
    gateway = ipaddress.ip_network(sandbox["pod_network"]["cidr"])[1]
    kc = sandbox["keycloak"]
    # Browsers go to Keycloak at 127.0.0.1 (its issuer: its Secure cookies travel over http only
    # to loopback); the hub in its pod posts codes and reads keys at the gateway (the back channel,
    # sandbox/keycloak/relay.py), as a production hub may reach its SSO by an internal URL.
    backchannel = f"{kc['backchannel_url']}/realms/{kc['realm']}/protocol/openid-connect"
    frontchannel = f"{kc['issuer']}/protocol/openid-connect"
    known = {
        "auth": {
            "issuerUrl": kc["issuer"],
            "clientSecret": client_secret(sandbox["state_dir"]),
            "endpoints": {
                "authorize": f"{frontchannel}/auth",
                "token": f"{backchannel}/token",
                "jwks": f"{backchannel}/certs",
                "endSession": f"{frontchannel}/logout",
            },
        },
        # The simulator's clouds.yaml as the hub in a pod reaches it: its `internal` endpoints.
        "openstack": {"cloud": "sandbox", "cloudsYaml": clouds_yaml_for_pods(sandbox)},
        "profiles": {"files": {"default.yaml": PROFILES}},
        # The host's bridge address, where the sandbox's services listen (inside the denied 10/8).
        "networkPolicy": {"hub": {"egressAllowed": [{"to": [{"ipBlock": {"cidr": f"{gateway}/32"}}]}]}},
        "hub": {
            "config": {
                # A grown GPU node goes back soon after bob's server stops, while later tests run.
                "GPUScaling": {"interval": 1, "grace_period": 5},
                # An API token for the test, to follow and stop servers as an operator would.
                "JupyterHub": {
                    "services": [{"name": "automation", "api_token": TOKEN}],
                    "load_roles": [
                        {
                            "name": "automation",
                            "scopes": ["admin:users", "admin:servers", "access:servers", "tokens"],
                            "services": ["automation"],
                        },
                        {"name": "catalog-reader", "scopes": ["read:hub"], "users": [READER]},
                    ],
                },
            }
        },
    }
    values = tmp_path_factory.mktemp("release") / "sandbox-known.yaml"
    values.write_text(yaml.safe_dump(known))
    namespace = f"helm-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": namespace, "labels": PSA_RESTRICTED}})
    tls = {key: base64.b64encode(tls_certificate[key]).decode() for key in ("tls.crt", "tls.key")}
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "hub-tls"}, "type": "kubernetes.io/tls", "data": tls}
    )
    kube = ["--kubeconfig", sandbox["kubeconfig"], "--namespace", namespace]
    try:
        run(helm, "install", "hub", CHART, *kube, "-f", SANDBOX_VALUES, "-f", values)
        wait_until(lambda: hub_ready(core, namespace), timeout=90, what="the hub pod to be Ready")
        # A Ready pod joins its Service's EndpointSlice moments later (kube-controller-manager), and
        # the nodes' service rules and DNS follow the API by moments more: as in any cluster, the
        # proxy (whose targets are that Service) reaches the hub only then, as a deploy pipeline
        # waiting for the release to serve would see.
        wait_until(lambda: hub_endpoint_ready(core, namespace), timeout=30, what="the hub's Service endpoint")
        wait_until(
            lambda: health_served(core, namespace, tls_certificate),
            timeout=60,
            what="proxy-public to route /hub/health to the hub",
        )
        RELEASE_VALUES[namespace] = values
        yield namespace
        run(helm, "uninstall", "hub", *kube, "--ignore-not-found")  # the last test uninstalls it
    finally:
        core.delete_namespace(namespace)


def clouds_yaml_for_pods(sandbox) -> str:
    """The sandbox's application-credential cloud, at the simulator's address on the gateway."""
    clouds = yaml.safe_load(open(sandbox["openstack"]["clouds_yaml"]).read())
    cloud = clouds["clouds"]["sandbox"]
    cloud["auth"]["auth_url"] = sandbox["openstack"]["internal_auth_url"]
    cloud["interface"] = "internal"
    return yaml.safe_dump({"clouds": {"sandbox": cloud}})


def hub_ready(core, namespace: str) -> bool:
    pods = core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/component=hub").items
    return any(c.type == "Ready" and c.status == "True" for p in pods for c in (p.status.conditions or []))


def health_served(core, namespace: str, certificate: dict) -> bool:
    ip, port = public_address(core, namespace)
    try:
        return https_get(ip, port, "/hub/health", certificate)[1].startswith(b"HTTP/1.1 200 ")
    except OSError:
        return False


def hub_endpoint_ready(core, namespace: str) -> bool:
    from kubernetes import client

    slices = client.DiscoveryV1Api(core.api_client).list_namespaced_endpoint_slice(
        namespace, label_selector="kubernetes.io/service-name=hub-cern-spawner-hub"
    )
    return any(e.conditions and e.conditions.ready for s in slices.items for e in (s.endpoints or []))


def public_address(core, namespace: str) -> tuple[str, int]:
    """proxy-public's status.loadBalancer address and its https node port: port 443 there goes to
    the first LoadBalancer asking for it by namespace/name (docs/sandbox.md), which may be another
    module's release; the node port is this Service's own."""

    def address():
        service = core.read_namespaced_service("proxy-public", namespace)
        ingress = (service.status.load_balancer and service.status.load_balancer.ingress) or []
        return ingress and ingress[0].ip

    ip = wait_until(address, timeout=30, what="proxy-public's status.loadBalancer")
    (port,) = [
        p.node_port
        for p in core.read_namespaced_service("proxy-public", namespace).spec.ports
        if p.name == "https"
    ]
    return ip, port


def https_get(ip: str, port: int, path: str, certificate: dict) -> tuple[bytes, bytes]:
    """GET path on ip:port over TLS verified against the test's certificate and TLS_HOST; the
    certificate the server showed (DER) and its whole answer."""
    context = ssl.create_default_context(cadata=certificate["tls.crt"].decode())
    with socket.create_connection((ip, port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=TLS_HOST) as tls:
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {TLS_HOST}\r\nConnection: close\r\n\r\n".encode())
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
            return tls.getpeercert(binary_form=True), answer


def test_hub_ready_and_proxy_public_serves_https(core, release, tls_certificate):  # noqa: F811
    """The hub passed its readiness probe and the release serves (the fixture waited for both);
    proxy-public answers https at its status.loadBalancer address with the Secret's certificate,
    routing /hub/health to the hub."""
    ip, port = public_address(core, release)
    served, answer = https_get(ip, port, "/hub/health", tls_certificate)
    assert served == tls_certificate["der"]
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:500]


class _TlsHost(HTTPAdapter):
    """Connects to the Service's address but checks the certificate against TLS_HOST, the name a
    user's browser would have resolved to it."""

    def init_poolmanager(self, *args, **kwargs):
        kwargs.update(server_hostname=TLS_HOST, assert_hostname=TLS_HOST)
        super().init_poolmanager(*args, **kwargs)


@pytest.fixture(scope="module")
def public(core, release, tls_certificate, tmp_path_factory):  # noqa: F811
    """(base URL of proxy-public, a session sending the automation service's token)."""
    ip, port = public_address(core, release)
    ca = tmp_path_factory.mktemp("ca") / "hub-tls.crt"
    ca.write_bytes(tls_certificate["tls.crt"])
    session = https_session(str(ca))
    session.headers["Authorization"] = f"token {TOKEN}"
    return f"https://{ip}:{port}", session


def https_session(ca: str) -> requests.Session:
    """A session that reaches proxy-public by its address and trusts the test's certificate."""
    session = requests.Session()
    session.mount("https://", _TlsHost())
    session.trust_env = False  # or REQUESTS_CA_BUNDLE would replace the CA below
    session.verify = ca
    return session


@pytest.fixture(scope="module")
def callback(sandbox, public):
    """The hub's OAuth callback at proxy-public's address, allowed by the realm's client (the
    address, a load balancer's, is known only once the release is installed)."""
    base, _ = public
    uri = f"{base}/hub/oauth_callback"
    allow_redirect(sandbox["state_dir"], uri)
    return uri


def log_in(public, callback: str, username: str) -> requests.Session:
    """A browser-like session of `username`, logged in through proxy-public: the hub's redirect to
    Keycloak's login page (127.0.0.1), the form, and the hub's callback, which exchanges the code
    at Keycloak's back channel."""
    base, automation = public
    browser = https_session(automation.verify)
    start = browser.get(f"{base}/hub/oauth_login", allow_redirects=False, timeout=30)
    assert start.status_code == 302, start.text[:300]
    back = login_code_flow(browser, start.headers["Location"], username, DEMO_PASSWORD)
    assert back.startswith(f"{callback}?"), back
    answer = browser.get(back, allow_redirects=False, timeout=30)
    assert answer.status_code == 302, answer.text[:300]  # not the hub's 403/503 pages
    home = browser.get(f"{base}/hub/home", timeout=30)  # sets the _xsrf cookie form posts need
    assert home.status_code == 200 and "/hub/login" not in home.url, home.url
    return browser


@pytest.fixture(scope="module")
def alice_browser(public, callback):
    return log_in(public, callback, USER)


def spawn_form(public, browser) -> str:
    base, _ = public
    form = browser.get(f"{base}/hub/spawn", timeout=30)
    assert form.status_code == 200 and "/hub/spawn" in form.url, form.url
    return form.text


def submit_form(public, browser, profile: str) -> None:
    """Start the user's server from the spawn form, as the browser submits it."""
    base, _ = public
    answer = browser.post(
        f"{base}/hub/spawn",
        data={"profile": profile, "_xsrf": browser.cookies.get("_xsrf")},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 302, answer.text[:300]


def server_state(public, user: str = USER) -> dict | None:
    base, session = public
    answer = session.get(f"{base}/hub/api/users/{user}", timeout=10)
    answer.raise_for_status()
    return answer.json()["servers"].get("")


def start_server(public) -> None:
    base, session = public
    answer = session.post(f"{base}/hub/api/users/{USER}/server", json={"profile": "shared-2g"}, timeout=30)
    assert answer.status_code in (201, 202), answer.text
    wait_until(lambda: (server_state(public) or {}).get("ready"), timeout=60, what=f"{USER}'s server")


def stop_server(public, user: str = USER) -> None:
    base, session = public
    answer = session.delete(f"{base}/hub/api/users/{user}/server", timeout=30)
    assert answer.status_code in (202, 204), answer.text
    wait_until(lambda: server_state(public, user) is None, timeout=60, what=f"{user}'s server to stop")


@pytest.fixture(scope="module")
def bob_gpu(sandbox, public, callback):
    """bob (role gpu-users) logged in and submitted the GPU profile from his form: (the simulator's
    URL, its request log's mark before the submission). Started early in the module, so that the
    node's boot overlaps the tests that come before test_bob_grows_an_empty_gpu_group."""
    cloud = sandbox["openstack"]["url"]
    wait_until(
        lambda: group_state(cloud, GPU_GROUP)["node_count"] == 0, timeout=90, what=f"{GPU_GROUP} empty"
    )
    set_timings(cloud, GPU_GROUP, **FAST)
    try:
        bob = log_in(public, callback, "bob")
        assert 'value="a40-1"' in spawn_form(public, bob)  # offered to his role
        mark = log_mark(cloud)
        submit_form(public, bob, "a40-1")
        yield cloud, mark
    finally:
        reset_timings(cloud, GPU_GROUP)


def test_bob_starts_a_gpu_profile_from_his_form(public, bob_gpu):
    """The form offered bob the GPU profile of his role and accepted his submission (bob_gpu);
    the growth it starts is checked in test_bob_grows_an_empty_gpu_group."""
    state = server_state(public, "bob")
    assert state is not None and state["pending"] in ("spawn", None), state  # starting, or ready


def test_profile_edits_reach_the_installed_hub(sandbox, core, kubectl, release, public, alice_browser):  # noqa: F811
    """A profiles ConfigMap edited with kubectl is in the installed hub's spawn form, as alice sees
    it logged in, within the sandbox's volume sync period + 5 s; a broken edit is refused (the
    catalog's status says so) while the form still offers the edited catalog."""
    base, session = public
    made = session.post(
        f"{base}/hub/api/users/{READER}/tokens", json={"expires_in": 600, "scopes": ["read:hub"]}, timeout=10
    )
    assert made.status_code == 201, made.text
    reader = {"Authorization": f"token {made.json()['token']}"}

    def catalog() -> dict:
        answer = session.get(f"{base}/hub/api/cern/catalog", headers=reader, timeout=10)
        assert answer.status_code == 200, answer.text[:300]
        (store,) = answer.json()["catalogs"]
        return store

    def offered(slug: str) -> bool:
        return f'value="{slug}"' in spawn_form(public, alice_browser)

    assert catalog()["profiles"] == ["shared-2g", "a40-1"]
    assert offered("shared-2g") and not offered("shared-edited")
    configmap = yaml.safe_load(
        run(*kubectl, "-n", release, "get", "configmap", "hub-cern-spawner-profiles", "-o", "yaml").stdout
    )
    for stale in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
        configmap["metadata"].pop(stale, None)  # or the second apply conflicts with the first
    # One more shared profile: alice's and bob's profiles stay for the tests after this one.
    edited = configmap["data"]["default.yaml"] + (
        "  - {slug: shared-edited, display_name: Edited, kind: shared, node_group: default-worker,"
        " cpu: {guarantee: 0.1, limit: 0.5}, memory: {guarantee: 512M, limit: 1G}}\n"
    )
    within = sandbox["volume_sync_seconds"] + 5

    def apply(text: str) -> None:
        configmap["data"] = {"default.yaml": text}
        run(*kubectl, "-n", release, "apply", "-f", "-", input=yaml.safe_dump(configmap))

    apply(edited)
    wait_until(lambda: offered("shared-edited"), timeout=within, what="the edited catalog in alice's form")
    apply(edited.replace("kind: shared", "kind: no-such-kind"))
    refused = wait_until(lambda: catalog()["refused_edit"], timeout=within, what="the broken edit's refusal")
    assert "previous catalog is still served" in refused["message"]
    assert offered("shared-edited") and offered("shared-2g")


@pytest.fixture(scope="module")
def alice(public, alice_browser):
    """alice's shared-profile server, started from the spawn form with her login cookie."""
    base, _ = public
    submit_form(public, alice_browser, "shared-2g")
    wait_until(lambda: (server_state(public) or {}).get("ready"), timeout=60, what=f"{USER}'s server")
    return f"{base}/user/{USER}"


def test_alice_server_answers_through_proxy_public(public, alice_browser, alice):
    """alice reaches her own server with her browser's cookies (the hub's OAuth to the server)."""
    answer = alice_browser.get(f"{alice}/lab", timeout=30)
    assert answer.status_code == 200 and answer.url.startswith(alice), answer.url
    _, session = public
    status = session.get(f"{alice}/api/status", timeout=10)
    assert status.status_code == 200, status.text[:300]
    assert "started" in status.json()


def test_bob_grows_an_empty_gpu_group(core, release, public, bob_gpu):
    """bob's GPU profile is on an empty node group, so the installed hub grew it through the
    OpenStack simulator, with the clouds.yaml from its Secret, and his server runs on the new node."""
    cloud, mark = bob_gpu
    wait_until(lambda: (server_state(public, "bob") or {}).get("ready"), timeout=90, what="bob's GPU server")
    (resize,) = writes(cloud, mark, GPU_GROUP)
    assert resize["path"].endswith("/actions/resize"), resize
    assert group_state(cloud, GPU_GROUP)["node_count"] == 1
    (pod,) = core.list_namespaced_pod(
        release, label_selector="component=singleuser-server,hub.jupyter.org/username=bob"
    ).items
    node = core.read_node(pod.spec.node_name)
    assert node.metadata.labels["magnum.openstack.org/nodegroup"] == GPU_GROUP  # sandbox/topology.yaml
    # Stopped without waiting: the hub returns the node after its grace period, while later tests run.
    base, session = public
    assert session.delete(f"{base}/hub/api/users/bob/server", timeout=30).status_code in (202, 204)


def test_home_survives_stop_and_start(core, release, public, alice):
    """A file written through the Jupyter contents API is on alice's home claim after a restart."""
    _, session = public
    (pod,) = core.list_namespaced_pod(release, label_selector=ALICE_POD).items
    (claim,) = [v.persistent_volume_claim.claim_name for v in pod.spec.volumes if v.name == "home"]
    assert core.read_namespaced_persistent_volume_claim(claim, release).status.phase == "Bound"
    text = f"written at {time.time()}"
    put = session.put(
        f"{alice}/api/contents/proof.txt",
        json={"type": "file", "format": "text", "content": text},
        timeout=10,
    )
    assert put.status_code in (200, 201), put.text[:300]
    stop_server(public)
    start_server(public)
    read = session.get(f"{alice}/api/contents/proof.txt", timeout=10)
    assert read.status_code == 200, read.text[:300]
    assert read.json()["content"] == text
    (again,) = core.list_namespaced_pod(release, label_selector=ALICE_POD).items
    assert again.metadata.uid != pod.metadata.uid  # a new pod, the same claim


# Run in a pod with a notebook's labels; prints what it reached: True (connected/answered) or False.
PROBE = """
import json, socket, urllib.request
def connects(host, port):
    try:
        socket.create_connection((host, port), timeout=2).close()
        return True
    except OSError:
        return False
def answers(url):
    try:
        return urllib.request.urlopen(url, timeout=5).status == 200
    except OSError:
        return False
print(json.dumps({
    "dns": bool(socket.gethostbyname("hub-cern-spawner-hub")),
    "hub_api": answers("http://hub-cern-spawner-hub:8081/hub/api"),
    "proxy_api": connects("hub-cern-spawner-proxy-api", 8001),
    "metadata": connects("169.254.169.254", 80),
}))
"""


def test_notebook_network(core, release, alice):
    """From the notebooks' network (a pod with their labels, next to alice's): the cluster DNS and
    the hub's API through its Service, as jupyterhub-singleuser needs; not the proxy's API (it
    would let a user reroute others' traffic) nor the cloud's metadata service."""
    restricted = {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    core.create_namespaced_pod(
        release,
        {
            "metadata": {"name": "notebook-probe", "labels": {"component": "singleuser-server"}},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "probe",
                        "image": "probe",
                        "command": ["python", "-c", PROBE],
                        "securityContext": restricted,
                    }
                ],
            },
        },
    )
    wait_until(
        lambda: core.read_namespaced_pod("notebook-probe", release).status.phase in ("Succeeded", "Failed"),
        timeout=30,
        what="the probe pod to finish",
    )
    reached = json.loads(core.read_namespaced_pod_log("notebook-probe", release).strip().splitlines()[-1])
    core.delete_namespaced_pod("notebook-probe", release)
    assert reached == {"dns": True, "hub_api": True, "proxy_api": False, "metadata": False}


def test_upgrade_keeps_alices_server(helm, sandbox, core, release, public, alice):  # noqa: F811
    """`helm upgrade` with a harmless change restarts the hub (its config checksum changed); alice's
    pod keeps running and still answers through proxy-public, and the hub knows it again."""
    _, session = public
    (before,) = core.list_namespaced_pod(release, label_selector=ALICE_POD).items
    (hub,) = core.list_namespaced_pod(release, label_selector="app.kubernetes.io/component=hub").items
    kube = ["--kubeconfig", sandbox["kubeconfig"], "--namespace", release]
    run(helm, "upgrade", "hub", CHART, *kube, "-f", SANDBOX_VALUES, "-f", RELEASE_VALUES[release],
        "--set", "hub.extraConfig=# upgraded by the test")  # fmt: skip

    def new_hub_ready():
        pods = core.list_namespaced_pod(release, label_selector="app.kubernetes.io/component=hub").items
        if not (all(p.metadata.uid != hub.metadata.uid for p in pods) and hub_ready(core, release)):
            return False
        # Ready is not yet reachable: the hub Service's rules follow the new endpoint a moment later
        # (kube-proxy's lag, modelled), and meanwhile the proxy answers 503.
        base, session = public
        return session.get(f"{base}/hub/health", timeout=10).status_code == 200

    wait_until(new_hub_ready, timeout=60, what="the upgraded hub to be Ready")
    wait_until(
        lambda: (server_state(public) or {}).get("ready"), timeout=30, what=f"{USER}'s server, known again"
    )
    (after,) = core.list_namespaced_pod(release, label_selector=ALICE_POD).items
    assert after.metadata.uid == before.metadata.uid
    assert session.get(f"{alice}/api/status", timeout=10).status_code == 200


def test_uninstall_stops_the_users_servers(helm, sandbox, core, release, alice):  # noqa: F811
    """`helm uninstall` leaves no notebook pod of the release behind (its pre-delete hook)."""
    assert core.list_namespaced_pod(release, label_selector=ALICE_POD).items
    kube = ["--kubeconfig", sandbox["kubeconfig"], "--namespace", release]
    run(helm, "uninstall", "hub", *kube, "--wait", "--timeout", "60s")
    assert not core.list_namespaced_pod(release, label_selector="component=singleuser-server").items

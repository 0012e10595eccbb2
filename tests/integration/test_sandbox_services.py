"""What a node gives its pods: Services (ClusterIP, headless, LoadBalancer), cluster DNS, and
in-cluster API access with the pod's service-account token — on the real sandbox."""

from __future__ import annotations

import json
import urllib.request

import pytest
from kubernetes import client

from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.shares("cluster-network")]

SECURE = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
POD_SECURE = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "runAsGroup": 100,
    "seccompProfile": {"type": "RuntimeDefault"},
}
# Answers every GET with the pod's hostname: which endpoint served a request.
SERVER = (
    "import http.server, socket\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        body = socket.gethostname().encode()\n"
    "        self.send_response(200)\n"
    "        self.send_header('Content-Length', str(len(body)))\n"
    "        self.end_headers()\n"
    "        self.wfile.write(body)\n"
    "    def log_message(self, *args): pass\n"
    "http.server.ThreadingHTTPServer(('', 8000), H).serve_forever()\n"
)
# What the client pod checks from inside, printed as JSON for the test to read in its log.
CLIENT = """
import http.server, json, os, socket, ssl, threading, time, urllib.error, urllib.request
out = {}
class Me(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"me")
    def log_message(self, *args): pass
server = http.server.ThreadingHTTPServer(("", 8000), Me)
threading.Thread(target=server.serve_forever, daemon=True).start()
def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode()
    except Exception as e:
        return repr(e)
out["short"] = get("http://web/")
out["fqdn"] = get("http://web.%(ns)s.svc.cluster.local/")
out["headless"] = sorted({a[4][0] for a in socket.getaddrinfo("web-headless", 8000, socket.AF_INET)})
out["resolv"] = open("/etc/resolv.conf").read()
out["hostname"] = socket.gethostname()
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
token = open(sa + "/token").read()
out["namespace_file"] = open(sa + "/namespace").read()
context = ssl.create_default_context(cafile=sa + "/ca.crt")
api = "https://%%s:%%s" %% (os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"])
for key, path in (("api", "/api"), ("pods", "/api/v1/namespaces/kube-system/pods")):
    request = urllib.request.Request(api + path, headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(request, context=context, timeout=5) as r:
            out[key] = r.status
    except urllib.error.HTTPError as e:
        out[key] = e.code
out["links"] = os.environ.get("WEB_SERVICE_HOST")
# Hairpin: this pod through its own Service (refused until the agent has its endpoint).
for _ in range(40):
    out["hairpin"] = get("http://myself/")
    if out["hairpin"] == "me":
        break
    time.sleep(0.25)
print(json.dumps(out))
"""


def pod(name: str, script: str, labels: dict | None = None, restart: str = "Always", probe=True) -> dict:
    container = {
        "name": "main",
        "image": "sandbox",
        "command": ["python", "-c", script],
        "securityContext": SECURE,
    }
    if labels and probe:
        container["readinessProbe"] = {"tcpSocket": {"port": 8000}, "periodSeconds": 1}
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"restartPolicy": restart, "securityContext": POD_SECURE, "containers": [container]},
    }


def service(name: str, app: str = "web", **spec) -> dict:
    ports = [{"name": "http", "port": 80, "targetPort": 8000, "protocol": "TCP"}]
    return {"metadata": {"name": name}, "spec": {"selector": {"app": app}, "ports": ports, **spec}}


def fetch(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def answer(url: str) -> str:
    """Who answered, or the error: while the rules change, a request may meet the leaving pod."""
    try:
        return fetch(url, timeout=1)
    except OSError as e:
        return repr(e)


@pytest.fixture
def web(core, namespace):
    for name in ("web-a", "web-b"):
        core.create_namespaced_pod(namespace, pod(name, SERVER, {"app": "web"}))
    core.create_namespaced_service(namespace, service("web"))
    core.create_namespaced_service(namespace, service("web-headless", clusterIP="None"))
    core.create_namespaced_service(namespace, service("web-lb", type="LoadBalancer"))
    discovery = client.DiscoveryV1Api(core.api_client)

    def ready_endpoints(name: str = "web"):
        slices = discovery.list_namespaced_endpoint_slice(
            namespace, label_selector=f"kubernetes.io/service-name={name}"
        ).items
        endpoints = [e for s in slices for e in s.endpoints or []]
        return sorted(e.target_ref.name for e in endpoints if e.conditions and e.conditions.ready)

    # Each Service has its own slices, updated one after the other.
    for name in ("web", "web-headless", "web-lb"):
        wait_until(
            lambda name=name: ready_endpoints(name) == ["web-a", "web-b"],
            timeout=30,
            what=f"{name}'s endpoints",
        )
    return ready_endpoints


def test_pods_and_host_reach_services_dns_and_the_api(core, namespace, web):
    core.create_namespaced_service(namespace, service("myself", app="client"))
    client_pod = pod("client", CLIENT % {"ns": namespace}, {"app": "client"}, restart="Never", probe=False)
    core.create_namespaced_pod(namespace, client_pod)
    wait_until(
        lambda: core.read_namespaced_pod("client", namespace).status.phase in ("Succeeded", "Failed"),
        timeout=30,
        what="the client pod to finish",
    )
    log = core.read_namespaced_pod_log("client", namespace)
    seen = json.loads(log.strip().splitlines()[-1])
    pods = {p.metadata.name: p.status.pod_ip for p in core.list_namespaced_pod(namespace).items}
    # Short name (search path) and full name both reach an endpoint through the ClusterIP.
    assert seen["short"] in ("web-a", "web-b")
    assert seen["fqdn"] in ("web-a", "web-b")
    assert seen["headless"] == sorted([pods["web-a"], pods["web-b"]])
    assert f"search {namespace}.svc.cluster.local svc.cluster.local cluster.local" in seen["resolv"]
    assert "options ndots:5" in seen["resolv"]
    assert seen["hostname"] == "client"
    # The API through KUBERNETES_SERVICE_HOST, TLS checked against the mounted CA: the default
    # service account may discover the API but not list another namespace's pods (RBAC).
    assert seen["namespace_file"] == namespace
    assert (seen["api"], seen["pods"]) == (200, 403)
    assert seen["links"] == core.read_namespaced_service("web", namespace).spec.cluster_ip
    assert seen["hairpin"] == "me"

    # From the host: the LoadBalancer's address, its port and its node port.
    lb = wait_until(
        lambda: (core.read_namespaced_service("web-lb", namespace).status.load_balancer.ingress or [None])[0],
        timeout=10,
        what="status.loadBalancer",
    )
    node_port = core.read_namespaced_service("web-lb", namespace).spec.ports[0].node_port
    assert fetch(f"http://{lb.ip}:80/") in ("web-a", "web-b")
    assert fetch(f"http://{lb.ip}:{node_port}/") in ("web-a", "web-b")


def test_rules_follow_the_endpoints(core, namespace, web):
    cluster_ip = core.read_namespaced_service("web", namespace).spec.cluster_ip
    seen: list[set] = []

    def answers_are(expected: set, tries: int):
        seen.append({answer(f"http://{cluster_ip}/") for _ in range(tries)})
        return seen[-1] == expected

    # Random over both (2**-19 to miss one in 20) once the agent has the slice's second endpoint.
    wait_until(lambda: answers_are({"web-a", "web-b"}, 20), timeout=5, what="both endpoints answering")
    core.delete_namespaced_pod("web-b", namespace, grace_period_seconds=0)
    wait_until(lambda: web() == ["web-a"], timeout=20, what="web-b to leave the endpoints")
    # The test may see the slice before the agent does: until the agent rewrites the rules, a
    # request can still be sent to web-b's dead address.
    wait_until(lambda: answers_are({"web-a"}, 10), timeout=10, what="only web-a answering")
    core.delete_namespaced_pod("web-a", namespace, grace_period_seconds=0)
    wait_until(lambda: web() == [], timeout=20, what="no endpoint left")

    wait_until(
        lambda: "Connection refused" in answer(f"http://{cluster_ip}/"),
        timeout=10,
        what="a Service without endpoints to refuse at once (TCP reset)",
    )

"""The Helm-installed hub serves on the sandbox: one release of helm/cern-spawner, installed with
ci/sandbox-values.yaml plus what only the running sandbox knows (its Keycloak issuer and client
secret, hub egress to the host's bridge address), proved from the host as a user would see it.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl

import pytest
import yaml

from sandbox.keycloak import client_secret
from tests.integration.chart import CHART
from tests.integration.test_helm import (  # noqa: F401 (fixtures)
    TLS_HOST,
    helm,
    helm_installed,
    tls_certificate,
)
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.shares("helm-release", "user-alice")]

SANDBOX_VALUES = CHART / "ci" / "sandbox-values.yaml"


@pytest.fixture(scope="module")
def release(helm, sandbox, core, tls_certificate, tmp_path_factory):  # noqa: F811
    """The release's namespace, once the hub pod is Ready (its /hub/health readiness probe)."""
    gateway = ipaddress.ip_network(sandbox["pod_network"]["cidr"])[1]
    known = {
        "auth": {
            "issuerUrl": sandbox["keycloak"]["issuer"],
            "clientSecret": client_secret(sandbox["state_dir"]),
        },
        # The host's bridge address, where the sandbox's services listen (inside the denied 10/8).
        "networkPolicy": {"hub": {"egressAllowed": [{"to": [{"ipBlock": {"cidr": f"{gateway}/32"}}]}]}},
    }
    values = tmp_path_factory.mktemp("release") / "sandbox-known.yaml"
    values.write_text(yaml.safe_dump(known))
    with helm_installed(helm, sandbox, core, SANDBOX_VALUES, "-f", values, tls=tls_certificate) as namespace:
        wait_until(lambda: hub_ready(core, namespace), timeout=90, what="the hub pod to be Ready")
        yield namespace


def hub_ready(core, namespace: str) -> bool:
    pods = core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/component=hub").items
    return any(c.type == "Ready" and c.status == "True" for p in pods for c in (p.status.conditions or []))


def public_address(core, namespace: str) -> tuple[str, int]:
    """proxy-public's status.loadBalancer address and its https port."""

    def address():
        service = core.read_namespaced_service("proxy-public", namespace)
        ingress = (service.status.load_balancer and service.status.load_balancer.ingress) or []
        return ingress and ingress[0].ip

    ip = wait_until(address, timeout=30, what="proxy-public's status.loadBalancer")
    (port,) = [
        p.port
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
    """The hub passed its readiness probe (the fixture waited for it); proxy-public answers https at
    its status.loadBalancer address with the Secret's certificate, routing /hub/health to the hub."""
    ip, port = public_address(core, release)
    served, answer = https_get(ip, port, "/hub/health", tls_certificate)
    assert served == tls_certificate["der"]
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:500]

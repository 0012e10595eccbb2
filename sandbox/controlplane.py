"""Run the upstream control plane: etcd, kube-apiserver, kube-scheduler, kube-controller-manager."""

from __future__ import annotations

import socket
import ssl
import urllib.error
import urllib.request
from pathlib import Path

from .errors import SandboxError
from .nodeagent import kubelet
from .procs import Registry, alive, wait_for

SERVICE_CIDR = "10.96.0.0/16"
ISSUER = "https://kubernetes.default.svc.cluster.local"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_port_free(port: int, what: str) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as e:
            raise SandboxError(f"port {port} for {what} is in use: stop what holds it or pick another") from e


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _insecure() -> ssl.SSLContext:
    # Only for scheduler/controller-manager /healthz, which serve self-signed certificates.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def admin_context(pki: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    return context


def start(
    registry: Registry,
    binaries: dict[str, Path],
    state: Path,
    ports: dict[str, int],
    kubeconfig: Path,
    service_cidr: str = SERVICE_CIDR,
    advertise_address: str = "127.0.0.1",
) -> None:
    """advertise_address: what the `kubernetes` Service's endpoints say; a loopback address is
    refused there, so process mode gives the pod network's gateway (see svcproxy.py)."""
    pki = state / "pki"

    def watch(daemon):
        return lambda: None if alive(daemon) else f"{daemon.name} exited — see {daemon.log}"

    etcd = registry.start(
        "etcd",
        [
            str(binaries["etcd"]),
            "--name=sandbox",
            f"--data-dir={state / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{ports['etcd']}",
            f"--advertise-client-urls=http://127.0.0.1:{ports['etcd']}",
            f"--listen-peer-urls=http://127.0.0.1:{ports['etcd_peer']}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{ports['etcd_peer']}",
            f"--initial-cluster=sandbox=http://127.0.0.1:{ports['etcd_peer']}",
            # A throwaway cluster: durability is not worth the fsync latency.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ],
    )
    wait_for(
        lambda: _http_ok(f"http://127.0.0.1:{ports['etcd']}/health"),
        timeout=60,
        what="etcd",
        give_up=watch(etcd),
    )

    # kube-apiserver reads pod logs from the node agent's kubelet API with this client certificate.
    kubelet_cert, kubelet_key = kubelet.write_apiserver_client(pki)
    apiserver = registry.start(
        "kube-apiserver",
        [
            str(binaries["kube-apiserver"]),
            f"--etcd-servers=http://127.0.0.1:{ports['etcd']}",
            "--bind-address=127.0.0.1",
            f"--advertise-address={advertise_address}",
            f"--secure-port={ports['apiserver']}",
            f"--cert-dir={pki}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-issuer={ISSUER}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={service_cidr}",
            f"--kubelet-client-certificate={kubelet_cert}",
            f"--kubelet-client-key={kubelet_key}",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}",
            # Nodes name themselves by node name, which no resolver knows; their InternalIP is real.
            "--kubelet-preferred-address-types=InternalIP",
            "--authorization-mode=Node,RBAC",
            # PodSecurity and the rest of the default admission chain stay on; add the node guard.
            "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true",
            "--v=1",
        ],
    )
    wait_for(
        lambda: _http_ok(f"https://127.0.0.1:{ports['apiserver']}/readyz", admin_context(pki)),
        timeout=120,
        what="kube-apiserver",
        hint=f"see {apiserver.log}",
        give_up=watch(apiserver),
    )

    common = [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        "--leader-elect=false",
        "--v=1",
    ]
    scheduler = registry.start(
        "kube-scheduler",
        [str(binaries["kube-scheduler"]), *common, f"--secure-port={ports['scheduler']}"],
    )
    controllers = registry.start(
        "kube-controller-manager",
        [
            str(binaries["kube-controller-manager"]),
            *common,
            f"--secure-port={ports['controller_manager']}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--service-cluster-ip-range={service_cidr}",
            "--use-service-account-credentials=true",
        ],
    )
    for daemon, port in ((scheduler, ports["scheduler"]), (controllers, ports["controller_manager"])):
        wait_for(
            lambda port=port: _http_ok(f"https://127.0.0.1:{port}/healthz", _insecure()),
            timeout=60,
            what=daemon.name,
            give_up=watch(daemon),
        )

"""`up`, `down` and `status` of the sandbox: the control plane plus the node agent."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import secrets
import shutil
import sys
import time
from pathlib import Path

import yaml

from . import binaries, controlplane, gitserver, keycloak, pki
from . import registry as oci_registry
from .config import DEFAULT_TOPOLOGY, default_state_dir, load_topology, state_dir
from .errors import SandboxError
from .nodeagent import svcproxy
from .nodeagent.netpolicy import remove_table as remove_policy_table
from .nodeagent.network import PodNetwork
from .nodeagent.nodes import node_specs, save_specs
from .procs import Registry, alive, wait_for

USER_NAMESPACE = "cern-users"
# What a build pod runs in the sandbox (no container engine): see sandbox/builder/. The
# placeholders are c.BinderConfig.builder_command's; the sandbox hub config uses this list as it is.
BUILDER_COMMAND = [
    "python",
    "-m",
    "sandbox.builder",
    "--repo",
    "{repo_url}",
    "--ref",
    "{commit}",
    "--image",
    "{image}",
]
DEFAULT_NETWORK = {"bridge": "csb0", "cidr": "10.244.0.0/16", "prefix": "csb"}


def network_for(state: Path) -> dict:
    """The default state directory gets 10.244.0.0/16; any other its own bridge and /16 in 10.128-191,
    so that sandboxes with different state directories (a fresh clone's CI beside a developer's) coexist."""
    if state == default_state_dir():
        return DEFAULT_NETWORK
    digest = hashlib.sha256(str(state.resolve()).encode()).digest()
    tag = digest[:2].hex()
    return {"bridge": f"csb{tag}", "cidr": f"10.{128 + digest[2] % 64}.0.0/16", "prefix": f"cs{tag}"}


def services_for(state: Path) -> dict:
    """The Service range and the loopback address of NodePort/LoadBalancer ports. Several sandboxes
    share the host's nftables hooks, so each gets its own range (a /22 in 10.97/16, picked like its
    pod network) and loopback address; the default state directory keeps kubeadm's 10.96.0.0/16."""
    if state == default_state_dir():
        cidr, loopback = controlplane.SERVICE_CIDR, "127.0.0.1"
    else:
        index = hashlib.sha256(str(state.resolve()).encode()).digest()[2] % 64
        cidr, loopback = f"10.97.{4 * index}.0/22", f"127.97.{index}.1"
    base = ipaddress.IPv4Network(cidr).network_address
    return {
        "cidr": cidr,
        "loopback": loopback,
        "kubernetes_ip": str(base + 1),  # the API server takes the first address
        "dns_ip": str(base + 10),
        "dns_port": controlplane.free_port(),
    }


PSA_RESTRICTED = {
    f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")
} | {"pod-security.kubernetes.io/enforce-version": "latest"}


def settings(state: Path | None = None) -> dict | None:
    state = state or state_dir()
    try:
        return json.loads((state / "sandbox.json").read_text())
    except (OSError, ValueError):
        return None


def kube_client(state: Path):
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(str(state / "kubeconfig")))


def running(state: Path) -> bool:
    current = settings(state)
    daemons = Registry(state).load()
    if not current or not daemons or not all(alive(d) for d in daemons):
        return False
    return controlplane._http_ok(f"{current['server']}/readyz", controlplane.admin_context(state / "pki"))


def up(topology_path: str | None = None, fake: bool = False, kubernetes: str | None = None) -> dict:
    """kubernetes: a supported minor ("1.34"); None: CERN_SANDBOX_KUBERNETES, else the current one."""
    state = state_dir()
    toolset = binaries.kubernetes_toolset(kubernetes)  # an unsupported version stops here
    if running(state):
        current = settings(state)
        if topology_path and Path(topology_path).resolve() != Path(current["topology"]):
            raise SandboxError(
                f"a sandbox with topology {current['topology']} is running: `python -m sandbox down` first"
            )
        # A sandbox from before this setting existed ran the current version.
        running_version = current.get("kubernetes", binaries.KUBERNETES.version)
        if running_version != toolset.version:
            raise SandboxError(
                f"a sandbox with Kubernetes {running_version} is running in {state}, not {toolset.version}: "
                "`python -m sandbox down` first, or use another CERN_SANDBOX_STATE"
            )
        return status()
    down(quiet=True)  # whatever a crashed `up` left behind
    if not fake and os.geteuid() != 0:
        raise SandboxError(
            "the node agent needs root for pod network namespaces: run as root, or `up --fake`"
        )
    if not fake and not shutil.which("ip"):
        raise SandboxError(
            "the `ip` command (iproute2) is missing: install it, e.g. `apt-get install iproute2`"
        )
    topology = load_topology(topology_path)
    programs = binaries.resolve(toolset)
    try:
        return _start(state, topology, topology_path, programs, fake, toolset.version)
    except BaseException:
        down(quiet=True)
        raise


def _start(state: Path, topology, topology_path, programs, fake: bool, version: str) -> dict:
    state.mkdir(parents=True, exist_ok=True)
    ports = {
        name: controlplane.free_port()
        for name in ("etcd", "etcd_peer", "apiserver", "scheduler", "controller_manager")
    }
    network_settings = network_for(state)
    network = PodNetwork(**network_settings)
    service_settings = services_for(state)
    pki.write_pki(
        state / "pki",
        [
            "127.0.0.1",
            "localhost",
            network.gateway,
            service_settings["kubernetes_ip"],
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ],
    )
    server = f"https://127.0.0.1:{ports['apiserver']}"
    kubeconfig = state / "kubeconfig"
    pki.write_kubeconfig(kubeconfig, state / "pki", server)
    current = {
        "server": server,
        "kubeconfig": str(kubeconfig),
        "ports": ports,
        "fake": fake,
        "network": network_settings,
        "services": service_settings,
        "topology": str(Path(topology_path).resolve() if topology_path else DEFAULT_TOPOLOGY),
        "node_group_label": topology.node_group_label,
        "volume_sync_seconds": topology.volume_sync_seconds,
        "user_namespace": USER_NAMESPACE,
        "kubectl": str(programs["kubectl"]),
        "kubernetes": version,  # the pinned version of the programs started; /version says the same
        "started": time.time(),
    }
    (state / "sandbox.json").write_text(json.dumps(current, indent=1))
    specs = node_specs(topology)
    save_specs(state, specs)

    registry = Registry(state)
    controlplane.start(
        registry,
        programs,
        state,
        ports,
        kubeconfig,
        service_cidr=service_settings["cidr"],
        advertise_address="127.0.0.1" if fake else network.gateway,
    )
    core = kube_client(state)
    bootstrap(core)
    if not fake:
        create_kube_dns(core, service_settings, network.gateway)
    agent = registry.start(
        "node-agent",
        [sys.executable, "-m", "sandbox.nodeagent", "--state", str(state)],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    names = {spec["name"] for spec in specs}
    wait_for(
        lambda: ready_nodes(core) >= names,
        timeout=60,
        what="sandbox nodes",
        hint=f"see {agent.log}",
        give_up=lambda: None if alive(agent) else f"the node agent exited — see {agent.log}",
    )
    wait_for(
        lambda: _has_default_account(core, USER_NAMESPACE),
        timeout=60,
        what="service accounts",
        hint=f"see {state / 'logs' / 'kube-controller-manager.log'}",
    )
    # Pods reach the host at the pod network's gateway; the hub on the host reaches it there too,
    # so one address serves both (a fake sandbox has no pod network: loopback).
    address = "127.0.0.1" if fake else network.gateway
    current["registry"] = start_registry(registry, state, address)
    current["git"] = gitserver.start(registry, state, address)
    current["builder"] = {"command": BUILDER_COMMAND}
    (state / "sandbox.json").write_text(json.dumps(current, indent=1))
    current["openstack"] = start_openstack(
        registry, state, topology.cluster, None if fake else network.gateway
    )
    (state / "sandbox.json").write_text(json.dumps(current, indent=1))
    # CERN SSO: realm `cern` under /auth; pods reach it at the gateway (sandbox/keycloak/relay.py).
    current["keycloak"] = keycloak.start(registry, state, None if fake else network.gateway)
    (state / "sandbox.json").write_text(json.dumps(current, indent=1))
    return status()


def start_registry(registry: Registry, state: Path, address: str) -> dict:
    """distribution's registry for Binder images, with filesystem storage in the state directory.
    No authentication and plain HTTP: it listens on the pod network's gateway only, reachable from
    this machine and its pods, and holds nothing but images built from the test repositories."""
    program = oci_registry.resolve()
    port = controlplane.free_port()
    root = state / "registry"
    root.mkdir(parents=True, exist_ok=True)
    config = {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text"},
        "storage": {"filesystem": {"rootdirectory": str(root / "data")}, "delete": {"enabled": True}},
        "http": {"addr": f"{address}:{port}"},
    }
    (root / "config.yml").write_text(json.dumps(config))  # JSON is YAML
    daemon = registry.start("registry", [str(program), "serve", str(root / "config.yml")])
    url = f"http://{address}:{port}"
    wait_for(
        lambda: controlplane._http_ok(f"{url}/v2/"),
        timeout=30,
        what="the image registry",
        give_up=lambda: None if alive(daemon) else f"it exited — see {daemon.log}",
    )
    return {"host": f"{address}:{port}", "url": url}


def start_openstack(
    registry: Registry, state: Path, cluster: str, internal_address: str | None = None
) -> dict:
    """The OpenStack simulator, and the clouds.yaml through which the hub reaches it. With
    `internal_address` (the pod network's gateway) it listens there too, for hubs in pods:
    `internal_auth_url`, with clouds.yaml's `interface: internal` (docs/sandbox.md)."""
    port = controlplane.free_port()
    credentials = {
        "password": secrets.token_urlsafe(16),
        "application_credential_id": secrets.token_hex(16),
        "application_credential_secret": secrets.token_urlsafe(24),
    }
    path = state / "openstack-credentials.json"
    path.write_text(json.dumps(credentials))
    path.chmod(0o600)
    internal = ["--internal-address", internal_address] if internal_address else []
    simulator = registry.start(
        "openstack",
        [sys.executable, "-m", "sandbox.openstack", "--state", str(state), "--port", str(port), *internal],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(
        lambda: controlplane._http_ok(f"{url}/identity/v3"),
        timeout=30,
        what="the OpenStack simulator",
        give_up=lambda: None if alive(simulator) else f"it exited — see {simulator.log}",
    )
    auth_url = f"{url}/identity/v3"
    common = {"region_name": "RegionOne", "interface": "public", "identity_api_version": 3}
    clouds = {
        "clouds": {
            "sandbox": {
                "auth_type": "v3applicationcredential",
                "auth": {
                    "auth_url": auth_url,
                    "application_credential_id": credentials["application_credential_id"],
                    "application_credential_secret": credentials["application_credential_secret"],
                },
                **common,
            },
            "sandbox-password": {
                "auth_type": "password",
                "auth": {
                    "auth_url": auth_url,
                    "username": "hub",
                    "password": credentials["password"],
                    "project_name": "cern-spawner",
                    "user_domain_name": "Default",
                    "project_domain_name": "Default",
                },
                **common,
            },
        }
    }
    clouds_yaml = state / "clouds.yaml"
    clouds_yaml.write_text(yaml.safe_dump(clouds))
    clouds_yaml.chmod(0o600)
    found = {"url": url, "auth_url": auth_url, "cluster": cluster, "clouds_yaml": str(clouds_yaml)}
    if internal_address:
        found["internal_auth_url"] = f"http://{internal_address}:{port}/identity/v3"
    return found


def _has_default_account(core, namespace: str) -> bool:
    from kubernetes import client

    try:
        core.read_namespaced_service_account("default", namespace)
        return True
    except client.ApiException:
        return False


def bootstrap(core) -> None:
    """The namespace for users' pods, enforcing Pod Security Admission `restricted`, and the default
    StorageClass, whose claims the node agent provisions (sandbox/nodeagent/storage.py)."""
    from kubernetes import client

    from .nodeagent import storage

    body = {"metadata": {"name": USER_NAMESPACE, "labels": PSA_RESTRICTED}}
    try:
        core.create_namespace(body)
    except client.ApiException as e:
        if e.status != 409:
            raise
    storage.ensure_storage_class(core.api_client)  # claims without a class get it


def create_kube_dns(core, services: dict, gateway: str) -> None:
    """kube-system/kube-dns as clusters have it, pointing at the node agent's DNS server (on the
    gateway, so every pod reaches it) through an EndpointSlice of our own."""
    from kubernetes import client

    port = services["dns_port"]
    service = {
        "metadata": {"name": "kube-dns", "labels": {"k8s-app": "kube-dns"}},
        "spec": {
            "clusterIP": services["dns_ip"],
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": port},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": port},
            ],
        },
    }
    endpoints = {
        "metadata": {
            "name": "kube-dns-sandbox",
            "labels": {
                "kubernetes.io/service-name": "kube-dns",
                "endpointslice.kubernetes.io/managed-by": "sandbox",
            },
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [gateway], "conditions": {"ready": True}}],
        "ports": [
            {"name": "dns", "port": port, "protocol": "UDP"},
            {"name": "dns-tcp", "port": port, "protocol": "TCP"},
        ],
    }
    core.create_namespaced_service("kube-system", service)
    client.DiscoveryV1Api(core.api_client).create_namespaced_endpoint_slice("kube-system", endpoints)


def ready_nodes(core) -> set[str]:
    ready = set()
    for node in core.list_node().items:
        for condition in (node.status.conditions if node.status else None) or []:
            if condition.type == "Ready" and condition.status == "True":
                ready.add(node.metadata.name)
    return ready


def down(quiet: bool = False) -> list[str]:
    state = state_dir()
    stopped = Registry(state).stop_all()
    current = settings(state)
    # Only a process-mode sandbox made a pod network; another sandbox's must stay untouched.
    if current and not current.get("fake") and os.geteuid() == 0 and shutil.which("ip"):
        PodNetwork(**current["network"]).teardown()  # the route to the Service range goes with it
        if shutil.which("nft"):
            svcproxy.delete_table(current["network"]["prefix"])
        remove_policy_table(current["network"]["prefix"])
    for leftover in (
        "etcd",
        "pods",
        "pki",
        "sandbox.json",
        "nodes.json",
        "kubeconfig",
        "daemons.json",
        "clouds.yaml",
        "openstack-credentials.json",
        "openstack-state.json",
        "keycloak",
        "registry",
        "git",
        "pv",  # provisioned volumes: their PersistentVolumes went with etcd
    ):
        path = state / leftover
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()
    if not quiet:
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    return stopped


def status() -> dict:
    state = state_dir()
    current = settings(state) or {}
    daemons = Registry(state).load()
    report = {
        "running": running(state),
        "state_dir": str(state),
        "kubeconfig": current.get("kubeconfig"),
        "server": current.get("server"),
        "kubernetes": current.get("kubernetes"),
        "user_namespace": current.get("user_namespace"),
        "fake": current.get("fake"),
        "pod_network": current.get("network"),
        "openstack": current.get("openstack"),
        "keycloak": current.get("keycloak"),
        "registry": current.get("registry"),
        "git": current.get("git"),
        "builder": current.get("builder"),
        "volume_sync_seconds": current.get("volume_sync_seconds"),
        "daemons": {d.name: {"pid": d.pid, "alive": alive(d), "log": d.log} for d in daemons},
        "nodes": [],
    }
    if report["running"]:
        core = kube_client(state)
        ready = ready_nodes(core)
        for node in core.list_node().items:
            labels = node.metadata.labels or {}
            report["nodes"].append(
                {
                    "name": node.metadata.name,
                    "ready": node.metadata.name in ready,
                    "node_group": labels.get(current.get("node_group_label", "")),
                    "zone": labels.get("topology.kubernetes.io/zone"),
                    "gpus": (node.status.allocatable or {}).get("nvidia.com/gpu", "0"),
                }
            )
    return report

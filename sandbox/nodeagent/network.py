"""Pod networking: one Linux bridge on the host, one network namespace and veth pair per pod.

The hub, the proxy and the tests on the host reach a pod at its own IP, and a pod reaches the
host at the bridge's address, as on a real cluster network. Needs root (CAP_NET_ADMIN).
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

NETNS_DIR = Path("/var/run/netns")


class NetworkError(Exception):
    pass


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


@dataclass(frozen=True)
class PodNetwork:
    """Addresses of the sandbox's pod network: node i owns 10.244.(i+1).0/24 by default."""

    bridge: str
    cidr: str  # e.g. 10.244.0.0/16; the first address is the host's (the gateway)
    prefix: str  # namespace and veth name prefix, unique per sandbox

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.cidr)

    @property
    def gateway(self) -> str:
        return str(self.network.network_address + 1)

    def node_pool(self, node_index: int) -> list[str]:
        base = self.network.network_address + (node_index + 1) * 256
        return [str(base + host) for host in range(2, 255)]

    def ensure_bridge(self) -> None:
        if _ip("link", "show", self.bridge, check=False).returncode != 0:
            _ip("link", "add", self.bridge, "type", "bridge")
        existing = _ip("-4", "addr", "show", "dev", self.bridge).stdout
        if f"{self.gateway}/" not in existing:
            _ip("addr", "add", f"{self.gateway}/{self.network.prefixlen}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def namespace(self, pod_ip: str) -> str:
        return f"{self.prefix}-{pod_ip.replace('.', '-')}"

    def create_pod(self, pod_ip: str) -> str:
        """A network namespace with eth0 = pod_ip on the bridge; returns the namespace's name."""
        name = self.namespace(pod_ip)
        self.delete_pod(pod_ip)  # a leftover from a crashed agent
        octets = pod_ip.split(".")
        veth = f"{self.prefix}v{int(octets[2]):02x}{int(octets[3]):02x}"[:15]
        # A namespace dies only when its last process is gone; until then a dead pod's veth can
        # linger under the name this address maps to. Deleting our end removes the pair.
        _ip("link", "del", veth, check=False)
        _ip("netns", "add", name)
        try:
            _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name)
            _ip("link", "set", veth, "master", self.bridge, "up")
            # A pod reaching itself through its Service: br_netfilter bridges the DNATed frame back
            # out of the port it came in by, which the bridge allows only in hairpin mode (kubenet's).
            _ip("link", "set", veth, "type", "bridge_slave", "hairpin", "on")
            _ip("-n", name, "addr", "add", f"{pod_ip}/{self.network.prefixlen}", "dev", "eth0")
            _ip("-n", name, "link", "set", "eth0", "up")
            _ip("-n", name, "link", "set", "lo", "up")
            _ip("-n", name, "route", "add", "default", "via", self.gateway)
        except NetworkError:
            self.delete_pod(pod_ip)
            raise
        return name

    def delete_pod(self, pod_ip: str) -> None:
        delete_namespace(self.namespace(pod_ip))

    def teardown(self) -> None:
        """Remove every namespace of this sandbox and the bridge."""
        if NETNS_DIR.is_dir():
            for entry in NETNS_DIR.iterdir():
                if entry.name.startswith(self.prefix + "-"):
                    delete_namespace(entry.name)
        _ip("link", "del", self.bridge, check=False)


def delete_namespace(name: str) -> None:
    if not (NETNS_DIR / name).exists():
        return
    pids = _ip("netns", "pids", name, check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    _ip("netns", "del", name, check=False)

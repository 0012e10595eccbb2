"""Cluster DNS for the sandbox's pods: a small server of our own instead of CoreDNS.

Answers what pods ask of kube-dns — `<svc>.<ns>.svc.cluster.local` (the ClusterIP, or the ready
endpoints of a headless Service), `<hostname|a-b-c-d>.<svc>.<ns>.svc...`, SRV for named ports,
`<a-b-c-d>.<ns>.pod.cluster.local`, PTR for ClusterIPs — from the node agent's live Service model;
other names are forwarded to the host's resolvers. UDP and TCP, one thread each.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import socketserver
import struct
import threading
from collections.abc import Callable
from pathlib import Path

from .services import CLUSTER_DOMAIN, Service

log = logging.getLogger("sandbox.dns")
A, PTR, AAAA, SRV = 1, 12, 28, 33
NOERROR, FORMERR, SERVFAIL, NXDOMAIN = 0, 1, 2, 3
TTL = 5  # seconds, as CoreDNS's kubernetes plugin
FORWARD_TIMEOUT = 2.0  # seconds per upstream resolver

Record = tuple[str, int, bytes]  # owner name, type, rdata


class Malformed(Exception):
    pass


def read_name(message: bytes, offset: int) -> tuple[str, int]:
    labels, jumped, end = [], False, offset
    for _ in range(128):  # bounds pointer loops
        if offset >= len(message):
            raise Malformed("name runs past the message")
        length = message[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(message):
                raise Malformed("truncated pointer")
            if not jumped:
                end = offset + 2
            offset, jumped = ((length & 0x3F) << 8) | message[offset + 1], True
            continue
        if length == 0:
            return ".".join(labels), (end if jumped else offset + 1)
        labels.append(message[offset + 1 : offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length
    raise Malformed("name too long")


def encode_name(name: str) -> bytes:
    out = b""
    for label in name.strip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\0"


def parse_query(message: bytes) -> tuple[int, int, str, int, int, int]:
    """(id, flags, name, qtype, qclass, end of the question)."""
    if len(message) < 12:
        raise Malformed("short header")
    ident, flags, qdcount = struct.unpack("!HHH", message[:6])
    if qdcount != 1:
        raise Malformed("one question expected")
    name, offset = read_name(message, 12)
    if offset + 4 > len(message):
        raise Malformed("truncated question")
    qtype, qclass = struct.unpack("!HH", message[offset : offset + 4])
    return ident, flags, name, qtype, qclass, offset + 4


def response(query: bytes, rcode: int, records: list[Record], authoritative: bool = True) -> bytes:
    ident, flags, _, _, _, end = parse_query(query)
    out_flags = 0x8000 | (flags & 0x7900) | 0x0080 | rcode  # QR, opcode+RD kept, RA
    if authoritative:
        out_flags |= 0x0400
    header = struct.pack("!HHHHHH", ident, out_flags, 1, len(records), 0, 0)
    body = b"".join(
        encode_name(owner) + struct.pack("!HHIH", kind, 1, TTL, len(rdata)) + rdata
        for owner, kind, rdata in records
    )
    return header + query[12:end] + body


def _a(owner: str, ip: str) -> Record:
    return owner, A, ipaddress.IPv4Address(ip).packed


def _dashed(ip: str) -> str:
    return ip.replace(".", "-")


def resolve(name: str, qtype: int, services: list[Service], domain: str = CLUSTER_DOMAIN):
    """(rcode, records) for a name of the cluster's zones; None: not ours, forward it."""
    name = name.lower().rstrip(".")
    if name.endswith(".in-addr.arpa"):
        return _reverse(name, qtype, services, domain)
    if name != domain and not name.endswith("." + domain):
        return None
    labels = name[: -len(domain)].rstrip(".").split(".") if name != domain else []
    if len(labels) == 3 and labels[2] == "pod":
        try:
            ip = str(ipaddress.IPv4Address(labels[0].replace("-", ".")))
        except ValueError:
            return NXDOMAIN, []
        return NOERROR, [_a(name, ip)] if qtype == A else []
    if len(labels) < 3 or labels[-1] != "svc":
        return NXDOMAIN, []
    namespace, service_name, extra = labels[-2], labels[-3], labels[:-3]
    service = next((s for s in services if s.namespace == namespace and s.name == service_name), None)
    if service is None:
        return NXDOMAIN, []
    base = f"{service_name}.{namespace}.svc.{domain}"
    if not extra:
        if qtype != A:
            return NOERROR, []
        if service.cluster_ip:
            return NOERROR, [_a(name, service.cluster_ip)]
        return NOERROR, [_a(name, e.ip) for e in service.endpoints]
    if len(extra) == 1 and service.cluster_ip is None:
        matches = [e for e in service.endpoints if extra[0] in (e.hostname, _dashed(e.ip))]
        if not matches:
            return NXDOMAIN, []
        return NOERROR, [_a(name, e.ip) for e in matches] if qtype == A else []
    if len(extra) == 2 and extra[0].startswith("_") and extra[1].startswith("_"):
        port = next(
            (p for p in service.ports if p.name == extra[0][1:] and p.protocol.lower() == extra[1][1:]),
            None,
        )
        if port is None:
            return NXDOMAIN, []
        if qtype != SRV:
            return NOERROR, []
        if service.cluster_ip:
            targets = [(base, port.port)]
        else:
            targets = [(f"{e.hostname or _dashed(e.ip)}.{base}", e.port) for e in port.endpoints]
        records = [
            (name, SRV, struct.pack("!HHH", 0, 100, number) + encode_name(target))
            for target, number in targets
        ]
        return NOERROR, records
    return NXDOMAIN, []


def _reverse(name: str, qtype: int, services: list[Service], domain: str):
    parts = name[: -len(".in-addr.arpa")].split(".")
    if len(parts) != 4:
        return None
    ip = ".".join(reversed(parts))
    for service in services:
        if service.cluster_ip == ip:
            target = f"{service.name}.{service.namespace}.svc.{domain}"
            return NOERROR, [(name, PTR, encode_name(target))] if qtype == PTR else []
    return None


def host_resolvers(path: Path = Path("/etc/resolv.conf")) -> list[str]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    return [line.split()[1] for line in lines if line.startswith("nameserver") and len(line.split()) > 1]


def forward(query: bytes, upstreams: list[str], tcp: bool = False) -> bytes:
    for upstream in upstreams:
        family = socket.AF_INET6 if ":" in upstream else socket.AF_INET
        try:
            if tcp:
                with socket.create_connection((upstream, 53), timeout=FORWARD_TIMEOUT) as s:
                    s.sendall(struct.pack("!H", len(query)) + query)
                    return _read_framed(s)
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.settimeout(FORWARD_TIMEOUT)
                s.sendto(query, (upstream, 53))
                return s.recv(65535)
        except OSError as e:
            log.debug("resolver %s did not answer: %r", upstream, e)
    return response(query, SERVFAIL, [], authoritative=False)


def _read_framed(sock: socket.socket) -> bytes:
    data = b""
    while len(data) < 2 or len(data) < 2 + struct.unpack("!H", data[:2])[0]:
        chunk = sock.recv(65535)
        if not chunk:
            raise OSError("connection closed mid-message")
        data += chunk
    return data[2 : 2 + struct.unpack("!H", data[:2])[0]]


class DnsServer:
    """UDP and TCP on (address, port); `services` gives the current model at each query."""

    def __init__(self, address: str, port: int, services: Callable[[], list[Service]]):
        self.services = services
        self.upstreams = host_resolvers()
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((address, port))
        handler = self._tcp_handler()
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.tcp = socketserver.ThreadingTCPServer((address, port), handler)
        self.tcp.daemon_threads = True

    def answer(self, query: bytes, tcp: bool = False) -> bytes | None:
        try:
            _, _, name, qtype, _, _ = parse_query(query)
        except Malformed:
            return None
        try:
            found = resolve(name, qtype, self.services())
        except Exception:
            log.exception("DNS answer for %r failed", name)
            return response(query, SERVFAIL, [])
        if found is None:
            return forward(query, self.upstreams, tcp)
        return response(query, *found)

    def _serve_udp(self) -> None:
        while True:
            try:
                query, peer = self.udp.recvfrom(4096)
            except OSError:
                return  # closed
            threading.Thread(target=self._reply_udp, args=(query, peer), daemon=True).start()

    def _reply_udp(self, query: bytes, peer) -> None:
        reply = self.answer(query)
        if reply is not None:
            try:
                self.udp.sendto(reply, peer)
            except OSError:
                pass

    def _tcp_handler(self):
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                try:
                    query = _read_framed(self.request)
                except OSError:
                    return
                reply = server.answer(query, tcp=True)
                if reply is not None:
                    self.request.sendall(struct.pack("!H", len(reply)) + reply)

        return Handler

    def start(self) -> None:
        threading.Thread(target=self._serve_udp, name="dns-udp", daemon=True).start()
        threading.Thread(target=self.tcp.serve_forever, name="dns-tcp", daemon=True).start()

    def stop(self) -> None:
        self.udp.close()
        self.tcp.shutdown()
        self.tcp.server_close()

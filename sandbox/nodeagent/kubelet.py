"""The kubelet's HTTPS API, as far as the sandbox needs it: container logs.

kube-apiserver serves `pods/log` (`kubectl logs`, `read_namespaced_pod_log`) by proxying to
https://<node InternalIP>:<daemonEndpoints port>/containerLogs/<namespace>/<pod>/<container>.
One agent plays every node, so one server answers for all of them and finds the pod by name.
It requires a client certificate signed by the sandbox CA (kube-apiserver's
--kubelet-client-certificate) and serves a certificate for its address signed by the same CA
(kube-apiserver's --kubelet-certificate-authority).

The log files hold a container's raw output without per-line times, so `timestamps` is ignored
and `sinceSeconds`/`sinceTime` are refused; restarts append to one file, so `previous` is refused.
"""

from __future__ import annotations

import datetime
import errno
import ipaddress
import logging
import os
import select
import ssl
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger("sandbox.kubelet")
PORT = 10250
POLL_SECONDS = 0.2  # how soon a followed log shows new output
BLOCK = 64 * 1024
HANDSHAKE_SECONDS = 10
CLIENT_CERT = "apiserver-kubelet-client"  # the stem of kube-apiserver's client certificate files
SERVING_CERT = "kubelet"
VALIDITY = datetime.timedelta(days=365)


class LogError(Exception):
    """A request the kubelet answers with an error status and a plain-text message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class LogQuery:
    follow: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None
    timestamps: bool = False


@dataclass
class LogSource:
    """Where a container's output is and whether more may come (then `follow` waits for it)."""

    path: Path | None
    running: Callable[[], bool]


Lookup = Callable[[str, str, str], LogSource]  # (namespace, pod, container) -> source, or LogError


def _flag(values: dict[str, list[str]], name: str) -> bool:
    value = values.get(name, ["false"])[-1].lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0", ""):
        return False
    raise LogError(400, f"invalid value {value!r} for {name}: want true or false")


def _count(values: dict[str, list[str]], name: str, minimum: int) -> int | None:
    if name not in values:
        return None
    raw = values[name][-1]
    try:
        number = int(raw)
    except ValueError:
        raise LogError(400, f"invalid value {raw!r} for {name}: want an integer") from None
    if number < minimum:
        raise LogError(400, f"invalid value {raw!r} for {name}: must be at least {minimum}")
    return number


def parse_query(query: str) -> LogQuery:
    """The log options as kube-apiserver encodes them in the URL it proxies to the kubelet."""
    values = urllib.parse.parse_qs(query, keep_blank_values=True)
    if _flag(values, "previous"):
        raise LogError(
            400,
            "previous=true is not supported by the sandbox node agent: "
            "a restarted container appends to the same log",
        )
    for name in ("sinceSeconds", "sinceTime"):
        if name in values:
            raise LogError(
                400, f"{name} is not supported by the sandbox node agent: its logs carry no timestamps"
            )
    stream = values.get("stream", ["All"])[-1]
    if stream not in ("All", ""):  # stdout and stderr share one file
        raise LogError(400, f"stream={stream} is not supported by the sandbox node agent")
    return LogQuery(
        follow=_flag(values, "follow"),
        tail_lines=_count(values, "tailLines", 0),
        limit_bytes=_count(values, "limitBytes", 1),
        timestamps=_flag(values, "timestamps"),
    )


def parse_path(path: str) -> tuple[str, str, str]:
    """(namespace, pod, container) of /containerLogs/<namespace>/<pod>/<container>."""
    parts = urllib.parse.urlsplit(path).path.split("/")
    if len(parts) != 5 or parts[0] != "" or parts[1] != "containerLogs" or not all(parts[2:]):
        raise LogError(404, f"404 page not found: {path}")
    namespace, pod, container = (urllib.parse.unquote(p) for p in parts[2:])
    return namespace, pod, container


def tail_offset(file: BinaryIO, lines: int, end: int | None = None) -> int:
    """Where the last `lines` lines before `end` begin; an unterminated last line counts as one."""
    if end is None:
        end = file.seek(0, os.SEEK_END)
    if lines <= 0:
        return end
    position = end
    wanted = lines
    # The newline ending the last line does not start a line of its own.
    file.seek(max(end - 1, 0))
    if end and file.read(1) == b"\n":
        position -= 1
    while position > 0:
        start = max(position - BLOCK, 0)
        file.seek(start)
        block = file.read(position - start)
        index = len(block)
        while True:
            index = block.rfind(b"\n", 0, index)
            if index < 0:
                break
            wanted -= 1
            if wanted == 0:
                return start + index + 1
        position = start
    return 0


# -- certificates --------------------------------------------------------------------


def _load_ca(pki: Path):
    ca = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), password=None)
    return ca, key


def issue(
    pki: Path, stem: str, common_name: str, *, organization: str | None = None, addresses=()
) -> tuple[Path, Path]:
    """Sign `<stem>.crt`/`<stem>.key` with the sandbox CA: a server certificate for `addresses`
    (IPs or DNS names), or a client certificate when there are none."""
    ca, ca_key = _load_ca(pki)
    key = ec.generate_private_key(ec.SECP256R1())
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    now = datetime.datetime.now(datetime.UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if addresses else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attributes))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if addresses:
        names = []
        for address in addresses:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(address)))
            except ValueError:
                names.append(x509.DNSName(address))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    cert_path, key_path = pki / f"{stem}.crt", pki / f"{stem}.key"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def write_apiserver_client(pki: Path) -> tuple[Path, Path]:
    """kube-apiserver's identity towards kubelets; system:masters, as kubeadm's was before 1.29."""
    return issue(pki, CLIENT_CERT, "kube-apiserver-kubelet-client", organization="system:masters")


def server_context(pki: Path, addresses: list[str]) -> ssl.SSLContext:
    cert, key = issue(pki, SERVING_CERT, "sandbox-kubelet", addresses=addresses)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    # Only kube-apiserver (or another holder of a sandbox-CA client certificate) may read logs.
    context.load_verify_locations(str(pki / "ca.crt"))
    context.verify_mode = ssl.CERT_REQUIRED
    return context


# -- the server ----------------------------------------------------------------------


class KubeletServer(ThreadingHTTPServer):
    daemon_threads = True
    # One node agent per address; a leftover socket of a previous agent must not block a restart.
    allow_reuse_address = True

    def __init__(self, address, context: ssl.SSLContext, lookup: Lookup, stopping: threading.Event):
        super().__init__(address, LogHandler)
        self.context = context
        self.lookup = lookup
        self.stopping = stopping

    @property
    def port(self) -> int:
        return self.server_address[1]

    def finish_request(self, request, client_address) -> None:
        # The TLS handshake runs in the request's thread, so a slow client cannot stall accept().
        request.settimeout(HANDSHAKE_SECONDS)
        try:
            connection = self.context.wrap_socket(request, server_side=True)
        except OSError as e:  # ssl.SSLError included
            log.info("kubelet API: TLS handshake with %s failed: %s", client_address[0], e)
            return
        try:
            super().finish_request(connection, client_address)
        finally:
            try:
                connection.close()
            except OSError:
                pass


class LogHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: KubeletServer

    def log_message(self, format, *args) -> None:
        log.debug("kubelet API %s: " + format, self.client_address[0], *args)

    def do_GET(self) -> None:
        self.close_connection = True  # one request per connection keeps streaming simple
        try:
            try:
                namespace, pod, container = parse_path(self.path)
                query = parse_query(urllib.parse.urlsplit(self.path).query)
                source = self.server.lookup(namespace, pod, container)
            except LogError as e:
                self.fail(e.status, e.message)
                return
            except Exception as e:
                log.exception("kubelet API: %s failed", self.path)
                self.fail(500, f"sandbox node agent: {e}")
                return
            if query.follow:
                self.follow(source, query)
            else:
                self.snapshot(source, query)
        except OSError as e:  # the reader went away (kube-apiserver closed the stream)
            log.debug("kubelet API: %s ended: %s", self.path, e)

    def do_POST(self) -> None:
        self.close_connection = True
        self.fail(405, "the sandbox node agent serves only GET /containerLogs")

    do_PUT = do_DELETE = do_PATCH = do_POST

    def fail(self, status: int, message: str) -> None:
        body = (message + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _open(self, source: LogSource) -> BinaryIO | None:
        try:
            return open(source.path, "rb") if source.path else None
        except FileNotFoundError:
            return None

    def snapshot(self, source: LogSource, query: LogQuery) -> None:
        file = self._open(source)
        try:
            end = file.seek(0, os.SEEK_END) if file else 0
            start = tail_offset(file, query.tail_lines, end) if file and query.tail_lines is not None else 0
            length = end - start
            if query.limit_bytes is not None:
                length = min(length, query.limit_bytes)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(length))
            self.send_header("Connection", "close")
            self.end_headers()
            if file:
                file.seek(start)
                while length > 0:
                    data = file.read(min(BLOCK, length))
                    if not data:
                        break
                    self.wfile.write(data)
                    length -= len(data)
        finally:
            if file:
                file.close()

    def follow(self, source: LogSource, query: LogQuery) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()
        remaining = query.limit_bytes
        file = self._open(source)
        try:
            if file and query.tail_lines is not None:
                file.seek(tail_offset(file, query.tail_lines))
            while remaining is None or remaining > 0:
                # Read the state before the file: output written before the exit is then all read.
                running = source.running() and not self.server.stopping.is_set()
                if file is None:
                    file = self._open(source)  # a container about to start has no file yet
                data = file.read(BLOCK if remaining is None else min(BLOCK, remaining)) if file else b""
                if data:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()
                    if remaining is not None:
                        remaining -= len(data)
                    continue
                if not running or self.reader_left():
                    break
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        finally:
            if file:
                file.close()

    def reader_left(self) -> bool:
        """Wait up to POLL_SECONDS; True when the client closed its side (it sends nothing else)."""
        connection = self.connection
        if connection.pending():
            return False
        readable, _, _ = select.select([connection], [], [], POLL_SECONDS)
        if not readable:
            return False
        timeout = connection.gettimeout()
        connection.setblocking(False)
        try:
            return connection.recv(1) == b""
        except ssl.SSLWantReadError:
            return False
        except OSError as e:
            return e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK)
        finally:
            connection.settimeout(timeout)


def serve(pki: Path, host: str, lookup: Lookup, stopping: threading.Event, port: int = PORT) -> KubeletServer:
    """Start the kubelet API on host:port (on a free port when that one is taken), in a thread."""
    context = server_context(pki, [host])
    try:
        server = KubeletServer((host, port), context, lookup, stopping)
    except OSError as e:
        if e.errno != errno.EADDRINUSE or port == 0:
            raise
        log.warning("kubelet API: %s:%d is taken; serving on a free port instead", host, port)
        server = KubeletServer((host, 0), context, lookup, stopping)
    threading.Thread(target=server.serve_forever, name="kubelet-api", daemon=True).start()
    log.info("kubelet API serving container logs on https://%s:%d", host, server.port)
    return server

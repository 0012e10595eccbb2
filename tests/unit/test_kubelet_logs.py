"""The node agent's kubelet API: log options, tails, and the HTTPS server with a fake pod lookup."""

from __future__ import annotations

import http.client
import io
import ssl
import threading
import time
from pathlib import Path

import pytest

from sandbox import pki
from sandbox.nodeagent import kubelet
from sandbox.nodeagent.kubelet import LogError, LogQuery, LogSource, parse_path, parse_query, tail_offset

pytestmark = pytest.mark.unit


def tail(data: bytes, lines: int) -> bytes:
    return data[tail_offset(io.BytesIO(data), lines) :]


# -- options ---------------------------------------------------------------------------


def test_query_as_kube_apiserver_encodes_it():
    query = parse_query("follow=true&limitBytes=500&tailLines=3&timestamps=true")
    assert query == LogQuery(follow=True, tail_lines=3, limit_bytes=500, timestamps=True)
    assert parse_query("") == LogQuery()


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("previous=true", "previous"),
        ("sinceSeconds=10", "sinceSeconds"),
        ("sinceTime=2026-01-01T00:00:00Z", "sinceTime"),
        ("tailLines=-1", "tailLines"),
        ("tailLines=many", "tailLines"),
        ("limitBytes=0", "limitBytes"),
        ("follow=maybe", "follow"),
        ("stream=Stderr", "stream"),
    ],
)
def test_unsupported_or_invalid_options_are_a_bad_request(query, words):
    with pytest.raises(LogError) as refused:
        parse_query(query)
    assert refused.value.status == 400
    assert words in refused.value.message


def test_path_names_namespace_pod_and_container():
    assert parse_path("/containerLogs/ns/pod-1/main?follow=true") == ("ns", "pod-1", "main")
    for path in ("/containerLogs/ns/pod", "/containerLogs/ns/pod/c/extra", "/exec/ns/pod/c", "/"):
        with pytest.raises(LogError) as missing:
            parse_path(path)
        assert missing.value.status == 404


# -- tails -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "lines", "expected"),
    [
        (b"1\n2\n3\n4\n", 2, b"3\n4\n"),
        (b"1\n2\n3\n4\n", 4, b"1\n2\n3\n4\n"),
        (b"1\n2\n3\n4\n", 10, b"1\n2\n3\n4\n"),
        (b"1\n2\n3\n4\n", 0, b""),
        (b"1\n2\n3\n4", 2, b"3\n4"),  # an unterminated last line is a line
        (b"1\n\n\n", 2, b"\n\n"),  # empty lines count
        (b"", 3, b""),
        (b"\n", 1, b"\n"),
        (b"only", 1, b"only"),
    ],
)
def test_tail_keeps_the_last_lines(data, lines, expected):
    assert tail(data, lines) == expected


def test_tail_crosses_read_blocks():
    lines = [b"x" * 1000 + b" %d\n" % i for i in range(300)]  # about 300 kB, several blocks
    data = b"".join(lines)
    assert tail(data, 130) == b"".join(lines[-130:])
    assert tail(data, 300) == data


def test_tail_stops_at_the_given_end():
    data = io.BytesIO(b"a\nb\nc\nd\n")
    assert tail_offset(data, 1, end=4) == 2  # of "a\nb\n": "b\n" starts at 2


# -- the server ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    pki.write_pki(directory, ["127.0.0.1"])
    kubelet.write_apiserver_client(directory)
    return directory


class Pods:
    """A lookup standing in for the agent: container logs by (namespace, pod, container)."""

    def __init__(self):
        self.sources: dict[tuple[str, str, str], LogSource] = {}

    def __call__(self, namespace: str, pod: str, container: str) -> LogSource:
        try:
            return self.sources[namespace, pod, container]
        except KeyError:
            raise LogError(404, f'pod "{pod}" does not exist') from None


@pytest.fixture
def server(certs):
    pods = Pods()
    stopping = threading.Event()
    running = kubelet.serve(certs, "127.0.0.1", pods, stopping, port=0)
    yield running, pods
    stopping.set()
    running.shutdown()
    running.server_close()


def client_context(certs: Path, *, with_cert: bool = True) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    if with_cert:
        context.load_cert_chain(
            str(certs / f"{kubelet.CLIENT_CERT}.crt"), str(certs / f"{kubelet.CLIENT_CERT}.key")
        )
    return context


def get(certs, port, path, **kwargs) -> http.client.HTTPResponse:
    connection = http.client.HTTPSConnection(
        "127.0.0.1", port, context=client_context(certs, **kwargs), timeout=10
    )
    connection.request("GET", path)
    return connection.getresponse()


def test_serves_a_whole_log_and_a_tail(server, certs, tmp_path):
    running, pods = server
    path = tmp_path / "main.log"
    path.write_bytes(b"one\ntwo\nthree\n")
    pods.sources["ns", "p", "main"] = LogSource(path, lambda: False)
    whole = get(certs, running.port, "/containerLogs/ns/p/main")
    assert (whole.status, whole.read()) == (200, b"one\ntwo\nthree\n")
    last = get(certs, running.port, "/containerLogs/ns/p/main?tailLines=2&limitBytes=6")
    assert (last.status, last.read()) == (200, b"two\nth")


def test_unknown_pod_is_404_and_an_unsupported_option_400(server, certs):
    running, _ = server
    missing = get(certs, running.port, "/containerLogs/ns/nope/main")
    assert missing.status == 404
    assert b'pod "nope" does not exist' in missing.read()
    previous = get(certs, running.port, "/containerLogs/ns/nope/main?previous=true")
    assert previous.status == 400


def test_a_client_without_a_sandbox_certificate_is_refused(server, certs):
    running, _ = server
    with pytest.raises((ssl.SSLError, ConnectionError)):
        get(certs, running.port, "/containerLogs/ns/p/main", with_cert=False).read()


def test_follow_streams_new_output_and_ends_when_the_container_stops(server, certs, tmp_path):
    running, pods = server
    path = tmp_path / "main.log"
    path.write_bytes(b"old\n")
    alive = threading.Event()
    alive.set()
    pods.sources["ns", "p", "main"] = LogSource(path, alive.is_set)
    response = get(certs, running.port, "/containerLogs/ns/p/main?follow=true")
    assert response.status == 200
    assert response.readline() == b"old\n"

    def write_then_stop():
        time.sleep(0.5)
        with open(path, "ab") as out:
            out.write(b"new\n")
        time.sleep(0.5)
        with open(path, "ab") as out:
            out.write(b"last\n")
        alive.clear()  # written before the stop: it must still be sent

    writer = threading.Thread(target=write_then_stop)
    writer.start()
    started = time.monotonic()
    assert response.readline() == b"new\n"
    assert time.monotonic() - started >= 0.4  # it waited for the write
    assert response.read() == b"last\n"  # and the stream ended after the stop
    writer.join()


def test_follow_of_a_stopped_container_without_output_ends_empty(server, certs):
    running, pods = server
    pods.sources["ns", "fake", "main"] = LogSource(None, lambda: False)  # fake mode's answer
    response = get(certs, running.port, "/containerLogs/ns/fake/main?follow=true")
    assert (response.status, response.read()) == (200, b"")


def test_follow_ends_when_the_reader_leaves(server, certs, tmp_path):
    running, pods = server
    checks = []

    def quiet_and_running() -> bool:  # a container that prints nothing more, for ever
        checks.append(time.monotonic())
        return True

    path = tmp_path / "main.log"
    path.write_bytes(b"hello\n")
    pods.sources["ns", "quiet", "main"] = LogSource(path, quiet_and_running)
    response = get(certs, running.port, "/containerLogs/ns/quiet/main?follow=true")
    assert response.readline() == b"hello\n"
    response.close()
    time.sleep(1.0)
    seen = len(checks)
    time.sleep(1.0)
    assert len(checks) == seen  # the stream's thread noticed and stopped polling

"""Pod logs through the real API server: kube-apiserver proxies pods/log to the node agent's kubelet API."""

from __future__ import annotations

import asyncio
import time

import pytest
from kubernetes import client

from tests.integration.test_cluster import phase, pod
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

LINES = 6
# Numbered lines, a pause between them, then exit 0: the log is known, and it grows while Running.
COUNTER = (
    "import sys, time\n"
    "for i in range(1, {lines} + 1):\n"
    "    print(f'line {{i}}', flush=True)\n"
    "    time.sleep({pause})\n"
)


def counter(name: str, pause: float, lines: int = LINES) -> dict:
    return pod(name, ["python3", "-c", COUNTER.format(lines=lines, pause=pause)])


def expected(first: int = 1, last: int = LINES) -> str:
    return "".join(f"line {i}\n" for i in range(first, last + 1))


def start(core, namespace: str, body: dict) -> str:
    name = body["metadata"]["name"]
    core.create_namespaced_pod(namespace, body)
    wait_until(
        lambda: phase(core, namespace, name) in ("Running", "Succeeded"), timeout=60, what=f"{name} Running"
    )
    return name


def test_tail_lines_returns_exactly_the_last_lines_of_a_finished_pod(core, namespace):
    name = start(core, namespace, counter("tail", pause=0.05))
    wait_until(lambda: phase(core, namespace, name) == "Succeeded", timeout=60, what="Succeeded")
    assert core.read_namespaced_pod_log(name, namespace) == expected()
    assert core.read_namespaced_pod_log(name, namespace, tail_lines=3) == expected(LINES - 2)
    assert core.read_namespaced_pod_log(name, namespace, container="main", limit_bytes=9) == "line 1\nli"


def assert_streamed(arrivals: list[float]) -> None:
    """Lines came as they were printed (a second apart), not all at once when the process ended."""
    assert arrivals[-1] - arrivals[0] >= 2.5, arrivals


def test_follow_streams_lines_while_running_and_ends_after_exit(core, namespace):
    name = start(core, namespace, counter("follow", pause=1.0))
    response = core.read_namespaced_pod_log(
        name, namespace, follow=True, _preload_content=False, _request_timeout=60
    )
    try:
        lines = iter(response)
        first = next(lines)
        arrivals = [time.monotonic()]
        # The first line came while the process still had lines to print: it was streamed.
        assert first == b"line 1\n"
        assert phase(core, namespace, name) == "Running"
        rest = []
        for line in lines:  # ends only when the stream does
            rest.append(line)
            arrivals.append(time.monotonic())
    finally:
        response.close()  # a half-read stream must not go back to the shared pool
    assert b"".join([first, *rest]).decode() == expected()
    assert_streamed(arrivals)
    # The stream ended because the container exited, not by a timeout: the pod finished.
    wait_until(lambda: phase(core, namespace, name) == "Succeeded", timeout=10, what="Succeeded")


@pytest.mark.parametrize("container", ["nope", "main-2"])
def test_an_unknown_container_is_an_api_error(core, namespace, container):
    name = start(core, namespace, counter("known", pause=0.05))
    with pytest.raises(client.ApiException) as refused:
        core.read_namespaced_pod_log(name, namespace, container=container)
    assert refused.value.status in (400, 404)
    assert container in refused.value.body


def test_previous_is_refused_clearly(core, namespace):
    name = start(core, namespace, counter("previous", pause=0.05))
    with pytest.raises(client.ApiException) as refused:
        core.read_namespaced_pod_log(name, namespace, previous=True)
    assert refused.value.status == 400
    assert "previous" in refused.value.body


def test_follow_with_kubernetes_asyncio_as_the_hub_reads_it(sandbox, core, namespace):
    from kubernetes_asyncio import client as aclient
    from kubernetes_asyncio import config as aconfig

    name = start(core, namespace, counter("async", pause=1.0))

    async def follow() -> tuple[list[str], list[float], str]:
        api = await aconfig.new_client_from_config(sandbox["kubeconfig"])
        async with api:
            response = await aclient.CoreV1Api(api).read_namespaced_pod_log(
                name, namespace, follow=True, tail_lines=LINES, _preload_content=False
            )
            lines, arrivals, phase_at_first = [], [], None
            async for raw in response.content:  # line by line, as the hub reads a build's log
                lines.append(raw.decode())
                arrivals.append(time.monotonic())
                if phase_at_first is None:
                    phase_at_first = await asyncio.to_thread(phase, core, namespace, name)
            response.release()
            return lines, arrivals, phase_at_first

    lines, arrivals, phase_at_first = asyncio.run(asyncio.wait_for(follow(), timeout=60))
    assert "".join(lines) == expected()
    assert phase_at_first == "Running"
    assert_streamed(arrivals)

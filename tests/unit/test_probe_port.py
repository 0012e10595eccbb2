"""The sandbox node agent's readiness probes find their port as the kubelet does: a number, or the
name of one of the container's ports (the chart's probes use names)."""

from __future__ import annotations

import pytest
from kubernetes import client

from sandbox.nodeagent.pods import probe_port

pytestmark = pytest.mark.unit

CONTAINER = client.V1Container(
    name="proxy",
    ports=[
        client.V1ContainerPort(name="https", container_port=8443),
        client.V1ContainerPort(container_port=8001),
    ],
)


@pytest.mark.parametrize(
    "port, expected",
    [(8001, 8001), ("8081", 8081), ("https", 8443)],
    ids=["number", "number-as-text", "named"],
)
def test_probe_port(port, expected):
    assert probe_port(CONTAINER, port) == expected


@pytest.mark.parametrize(
    "container", [CONTAINER, client.V1Container(name="bare")], ids=["other-names", "no-ports"]
)
def test_unknown_port_name_is_refused(container):
    with pytest.raises(ValueError, match="no container port named 'hub'"):
        probe_port(container, "hub")

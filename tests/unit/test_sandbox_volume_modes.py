"""The node agent gives each file of a ConfigMap, Secret, downwardAPI or projected volume the mode a
kubelet would: an item's own `mode`, else the volume's `defaultMode`, else 0644."""

from __future__ import annotations

import base64
import os
import stat

import pytest
from kubernetes import client

from sandbox.nodeagent import volumes

pytestmark = pytest.mark.unit
OWNER = (os.getuid(), os.getgid())


class Api:
    def read_namespaced_config_map(self, name, namespace):
        return client.V1ConfigMap(data={"run.sh": "#!/bin/sh\n", "conf.yaml": "a: 1\n"})

    def read_namespaced_secret(self, name, namespace):
        data = {"token": base64.b64encode(b"t").decode(), "ca.crt": base64.b64encode(b"c").decode()}
        return client.V1Secret(data=data)


def items(run_mode=None):
    return [
        client.V1KeyToPath(key="run.sh", path="bin/run.sh", mode=run_mode),
        client.V1KeyToPath(key="conf.yaml", path="conf.yaml"),
    ]


SECRET_ITEMS = [
    client.V1KeyToPath(key="token", path="token", mode=0o400),
    client.V1KeyToPath(key="ca.crt", path="ca.crt"),
]
CASES = [
    (
        "configmap-item-mode-wins",
        client.V1Volume(
            name="v",
            config_map=client.V1ConfigMapVolumeSource(name="c", items=items(0o755), default_mode=0o640),
        ),
        {"bin/run.sh": 0o755, "conf.yaml": 0o640},
    ),
    (
        "configmap-defaults",
        client.V1Volume(name="v", config_map=client.V1ConfigMapVolumeSource(name="c", items=items())),
        {"bin/run.sh": 0o644, "conf.yaml": 0o644},
    ),
    (
        "configmap-no-items",
        client.V1Volume(name="v", config_map=client.V1ConfigMapVolumeSource(name="c", default_mode=0o600)),
        {"run.sh": 0o600, "conf.yaml": 0o600},
    ),
    (
        "secret-item-mode",
        client.V1Volume(name="v", secret=client.V1SecretVolumeSource(secret_name="s", items=SECRET_ITEMS)),
        {"token": 0o400, "ca.crt": 0o644},
    ),
    (
        "projected",
        client.V1Volume(
            name="v",
            projected=client.V1ProjectedVolumeSource(
                default_mode=0o440,
                sources=[
                    client.V1VolumeProjection(
                        config_map=client.V1ConfigMapProjection(name="c", items=items(0o750))
                    ),
                    client.V1VolumeProjection(secret=client.V1SecretProjection(name="s", items=SECRET_ITEMS)),
                ],
            ),
        ),
        {"bin/run.sh": 0o750, "conf.yaml": 0o440, "token": 0o400, "ca.crt": 0o440},
    ),
    (
        "downward-api",
        client.V1Volume(
            name="v",
            downward_api=client.V1DownwardAPIVolumeSource(
                items=[
                    client.V1DownwardAPIVolumeFile(
                        path="name",
                        mode=0o400,
                        field_ref=client.V1ObjectFieldSelector(field_path="metadata.name"),
                    )
                ]
            ),
        ),
        {"name": 0o400},
    ),
]


@pytest.mark.parametrize("name, volume, expected", CASES, ids=[c[0] for c in CASES])
def test_each_file_gets_its_items_mode_else_the_default(tmp_path, name, volume, expected):
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="p", namespace="users"),
        spec=client.V1PodSpec(containers=[], volumes=[volume]),
    )
    paths = volumes.materialize(Api(), pod, tmp_path, OWNER)
    target = paths["v"]
    seen = {relative: stat.S_IMODE((target / relative).stat().st_mode) for relative in expected}
    assert seen == expected
    # A sync round that finds nothing new keeps them, rather than rewriting with one mode.
    assert volumes.refresh(Api(), pod, paths) == []

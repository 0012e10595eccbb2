"""Rendering the Helm chart (helm/cern-spawner) with the helm that sandbox/helm.py builds: shared by
the chart's test modules."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from sandbox import helm as helm_build
from sandbox.errors import SandboxError
from tests.conftest import ROOT

CHART = ROOT / "helm" / "cern-spawner"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
BINDER_VALUES = CHART / "ci" / "binder-values.yaml"
DEFAULT_VALUES = CHART / "ci" / "default-values.yaml"


def resolve_helm() -> Path:
    """helm, built once and cached; a helm that cannot be built fails the test, never skips it."""
    try:
        return helm_build.resolve()
    except SandboxError as error:
        pytest.fail(f"helm could not be built: {error}", pytrace=False)


def run(*command, check=True, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=120, **kwargs)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, command))} failed:\n{result.stdout}\n{result.stderr}", pytrace=False)
    return result


def render(helm: Path, values: Path | None, namespace: str = "hub", *extra: str) -> list[dict]:
    args = ["-f", values] if values else []
    out = run(helm, "template", "hub", CHART, "--namespace", namespace, *args, *extra).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def find(docs: list[dict], kind: str, name: str) -> dict:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name} not rendered exactly once"
    return matches[0]


def names(docs: list[dict], kind: str) -> set[str]:
    return {d["metadata"]["name"] for d in docs if d["kind"] == kind}

"""Fixtures of the GPU growth tests (the session's sandbox comes from tests/conftest.py)."""

from __future__ import annotations

import shutil

import pytest
import requests

from tests.integration.growth import A100, PROFILES, T4


@pytest.fixture(scope="module")
def cloud(sandbox):
    url = sandbox["openstack"]["url"]
    requests.post(
        f"{url}/_simulator/settings",
        json={"boot_delay": 2, "gpu_delay": 1, "autoscaler_interval": 1, "scale_down_unneeded": 3},
        timeout=10,
    ).raise_for_status()
    yield url
    requests.delete(f"{url}/_simulator/faults", timeout=10)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    directory = tmp_path_factory.mktemp("profiles")
    shutil.copy(PROFILES / "default.yaml", directory / "default.yaml")
    (directory / "a100.yaml").write_text(A100)
    (directory / "t4.yaml").write_text(T4)
    return directory

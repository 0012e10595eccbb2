"""Fixtures of the GPU growth tests (the session's sandbox comes from tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.integration.growth import A100, FAST, GROUP, T4, T4_GROUP, clear_faults, reset_timings, set_timings


def _module_catalog(module) -> dict[str, str]:
    """The module's `CATALOG` (file name -> YAML): only its own scaled groups, so that hubs of modules
    running at the same time never manage each other's groups. Default: the A100 and T4 groups."""
    return getattr(module, "CATALOG", {"a100.yaml": A100, "t4.yaml": T4})


def _module_groups(module) -> list[str]:
    return getattr(module, "GROUPS", [GROUP, T4_GROUP])


@pytest.fixture(scope="module")
def cloud(sandbox, request):
    url = sandbox["openstack"]["url"]
    for group in _module_groups(request.module):
        set_timings(url, group, **FAST)
    yield url
    for group in _module_groups(request.module):
        clear_faults(url, group)
        reset_timings(url, group)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory, request):
    directory = tmp_path_factory.mktemp("profiles")
    for name, text in _module_catalog(request.module).items():
        (directory / name).write_text(text)
    return directory

"""The sandbox runs the Kubernetes it was asked for (`up --kubernetes`, CERN_SANDBOX_KUBERNETES):
`make test` runs this module and the smoke on the previous minor too, and each test's report names
the API server's version (tests/conftest.py)."""

from __future__ import annotations

import pytest

from sandbox import binaries

pytestmark = [pytest.mark.integration]


def test_the_api_server_is_the_chosen_kubernetes(sandbox, kubernetes_version):
    chosen = binaries.kubernetes_toolset()  # what the sandbox fixture's `up` picked
    assert kubernetes_version == chosen.version
    assert sandbox["kubernetes"] == chosen.version

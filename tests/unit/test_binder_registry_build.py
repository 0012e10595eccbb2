"""The registry program's build recipe (sandbox/registry.py): pinned in one go.mod, cached per version."""

from __future__ import annotations

import pytest

from sandbox.errors import SandboxError
from sandbox.registry import REGISTRY, resolve

pytestmark = pytest.mark.unit


def test_version_comes_from_go_mod_and_names_the_cache():
    assert REGISTRY.version.startswith("v3.")
    assert REGISTRY.programs == ["registry"]
    assert REGISTRY.cache.name == f"registry-{REGISTRY.version}-d1"
    assert f"version.version={REGISTRY.version}" in REGISTRY.ldflags()


@pytest.mark.parametrize("exists, ok", [(True, True), (False, False)], ids=["file", "missing"])
def test_explicit_binary(tmp_path, monkeypatch, exists, ok):
    program = tmp_path / "registry"
    if exists:
        program.write_text("")
    monkeypatch.setenv("REGISTRY_BINARY", str(program))
    if ok:
        assert resolve() == program
    else:
        with pytest.raises(SandboxError, match="REGISTRY_BINARY=.* is not a file"):
            resolve()

"""Find or build distribution's OCI registry (`registry`) for the binder tests.

Built from its Go module (pinned in tools/registry/go.mod) and cached per version next to the
control-plane programs, as binaries.py does: only the first run builds. REGISTRY_BINARY (a path)
supplies a registry a user already has. `python -m sandbox up` runs one for repository launches;
some tests start their own.

    python -m sandbox.registry    # build (or find) the registry and print its path
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .binaries import TOOLS, Toolset, build
from .config import cache_dir
from .errors import SandboxError

RECIPE_REVISION = 1  # bumped whenever the build command changes, so an older build is not reused
MODULE = "github.com/distribution/distribution/v3"


@dataclass(frozen=True)
class RegistryToolset(Toolset):
    @property
    def cache(self) -> Path:
        return cache_dir() / "bin" / f"{self.module_dir.name}-{self.version}-d{RECIPE_REVISION}"

    def ldflags(self) -> str:
        # What distribution's Makefile stamps in, so `registry --version` names the release.
        return f"-s -w -X {MODULE}/version.version={self.version}"


REGISTRY = RegistryToolset(TOOLS / "registry", MODULE, (f"{MODULE}/cmd/registry",))


def resolve() -> Path:
    """The path of `registry`: $REGISTRY_BINARY, or the cached build (built now when missing)."""
    if explicit := os.environ.get("REGISTRY_BINARY"):
        if not Path(explicit).is_file():
            raise SandboxError(
                f"REGISTRY_BINARY={explicit} is not a file: unset it to build the registry from its Go module"
            )
        return Path(explicit)
    program = REGISTRY.cache / "registry"
    if not program.is_file():
        build(REGISTRY)
    return program


if __name__ == "__main__":
    print(resolve())

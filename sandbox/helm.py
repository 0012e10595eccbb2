"""Find or build the helm CLI for the chart tests.

helm is built from its Go module (pinned in tools/helm/go.mod) and cached per version next to the
control-plane programs, exactly as binaries.py does: only the first run builds. HELM (a path)
supplies a helm a user already has.

    python -m sandbox.helm    # build (or find) helm and print its path
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .binaries import TOOLS, Toolset, build
from .config import cache_dir
from .errors import SandboxError

RECIPE_REVISION = 1  # bumped whenever ldflags change, so that an older build is not reused


@dataclass(frozen=True)
class HelmToolset(Toolset):
    @property
    def cache(self) -> Path:
        return cache_dir() / "bin" / f"{self.module_dir.name}-{self.version}-h{RECIPE_REVISION}"

    def ldflags(self) -> str:
        # What helm's Makefile stamps in: its version, and the Kubernetes version `helm template` and
        # `helm lint` assume (without it, v1.20, and charts asking for a newer kubeVersion fail).
        text = (self.module_dir / "go.mod").read_text()
        match = re.search(r"^\s*k8s\.io/client-go\s+v0\.(\d+)\.", text, re.M)
        if not match:
            raise SandboxError(f"{self.module_dir}/go.mod does not pin k8s.io/client-go")
        flags = ["-s", "-w", f"-X helm.sh/helm/v3/internal/version.version={self.version}"]
        for package in ("helm.sh/helm/v3/pkg/lint/rules", "helm.sh/helm/v3/pkg/chartutil"):
            flags += [f"-X {package}.k8sVersionMajor=1", f"-X {package}.k8sVersionMinor={match.group(1)}"]
        return " ".join(flags)


HELM = HelmToolset(TOOLS / "helm", "helm.sh/helm/v3", ("helm.sh/helm/v3/cmd/helm",))


def resolve() -> Path:
    """The path of helm: $HELM, or the cached build (built now when missing)."""
    if explicit := os.environ.get("HELM"):
        if not Path(explicit).is_file():
            raise SandboxError(f"HELM={explicit} is not a file: unset it to build helm from its Go module")
        return Path(explicit)
    program = HELM.cache / "helm"
    if not program.is_file():
        build(HELM)
    return program


if __name__ == "__main__":
    print(resolve())

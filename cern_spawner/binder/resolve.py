"""Resolve a ref to a commit with `git ls-remote`, the way every git server answers alike.

The repository URL and ref must already be checked (`refs.parse_spec`: https on an allowed host and
port, plain http only for an explicitly insecure origin); git still runs hardened, because the
server it asks is chosen by whoever wrote the link:
- no redirects (`http.followRedirects=false`): an allowed host answering 302 cannot send the hub to
  another host or port (a metadata service, an internal API);
- only the URL's own transport (https, or http for an insecure origin), twice (`protocol.*` and
  GIT_ALLOW_PROTOCOL): no file://, ext::, ssh;
- no prompts, credential helpers or askpass programs; no user, system or repository configuration
  (an `insteadOf` rewrite there could send the request elsewhere), run in an empty directory;
- `--` before the URL.
Git's own error text names servers and addresses: it goes to the log, never to the user.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import tempfile
from urllib.parse import urlsplit

from .errors import ResolveError
from .refs import is_full_sha

log = logging.getLogger(__name__)

_HARDENING = (
    "-c",
    "credential.helper=",
    "-c",
    "core.askPass=",
    "-c",
    "http.followRedirects=false",
    "-c",
    "http.sslVerify=true",
    "-c",
    "protocol.allow=never",
)
_LINE = re.compile(r"([0-9a-f]{40}|[0-9a-f]{64})\t(\S+)")
_UNREADABLE = (
    "Could not read the repository {url}: it does not exist, is private, redirects elsewhere "
    "(redirects are not followed), or its server cannot be reached."
)


def git_env(transport: str = "https") -> dict[str, str]:
    """The environment of the hub's git: inherited GIT_* and askpass settings dropped."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("GIT_") and key not in ("SSH_ASKPASS", "SSH_ASKPASS_REQUIRE")
    }
    env.update(
        GIT_TERMINAL_PROMPT="0",
        GIT_ASKPASS="",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_PROTOCOL_FROM_USER="0",
        GIT_ALLOW_PROTOCOL=transport,
    )
    return env


def remote_transport(repo_url: str) -> str:
    """ "https" or "http" for a URL git may be given; ResolveError for anything else (a file path,
    file://, ext::, credentials, an option-like word): the last guard before git sees it."""
    try:
        parts = urlsplit(repo_url)
        parts.port  # noqa: B018 — raises ValueError on a bad port
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or "@" in parts.netloc
        or repo_url.startswith("-")
    ):
        log.warning("Refused to run git ls-remote on %r: not a checked http(s) repository URL", repo_url)
        raise ResolveError(_UNREADABLE.format(url=repo_url))
    return parts.scheme


def candidates(ref: str) -> list[str]:
    """Full ref names `ref` may stand for, in git's order of precedence (tags before branches),
    a tag's peeled commit (`^{}`) before the tag object."""
    if ref == "HEAD":
        return ["HEAD"]
    if ref.startswith("refs/"):
        return [f"{ref}^{{}}", ref]
    return [f"refs/tags/{ref}^{{}}", f"refs/tags/{ref}", f"refs/heads/{ref}"]


def pick_commit(ls_remote_output: str, ref: str) -> str | None:
    """The commit `ref` names in `git ls-remote` output, or None."""
    found = {}
    for line in ls_remote_output.splitlines():
        match = _LINE.fullmatch(line.strip())
        if match:
            found.setdefault(match.group(2), match.group(1))
    for name in candidates(ref):
        if name in found:
            return found[name]
    return None


async def resolve_ref(repo_url: str, ref: str, time_limit: float = 30.0, git: str = "git") -> str:
    """The commit SHA `ref` names in the repository; a full SHA is returned as is (lowercased)."""
    if is_full_sha(ref.lower()):
        return ref.lower()
    transport = remote_transport(repo_url)
    # Patterns match the tail of ref names (a peeled tag only with its '^{}'); pick_commit then
    # keeps only exact names.
    patterns = ["HEAD"] if ref == "HEAD" else [ref, f"{ref}^{{}}"]
    command = [git, *_HARDENING, "-c", f"protocol.{transport}.allow=always", "ls-remote", "--", repo_url]
    with tempfile.TemporaryDirectory(prefix="cern-ls-remote-") as empty:
        stdout, stderr, returncode = await _run(
            command + patterns, empty, transport, time_limit, repo_url, ref
        )
    if returncode != 0:
        log.warning(
            "git ls-remote of %r for ref %r failed (exit %s): %r",
            repo_url,
            ref,
            returncode,
            stderr.decode(errors="replace")[-2000:],
        )
        raise ResolveError(_UNREADABLE.format(url=repo_url))
    commit = pick_commit(stdout.decode(errors="replace"), ref)
    if commit is None:
        raise ResolveError(
            f"{repo_url} has no branch or tag named {ref!r}: check the spelling, or give a full commit SHA."
        )
    return commit


async def _run(command: list[str], cwd: str, transport: str, time_limit: float, repo_url: str, ref: str):
    """(stdout, stderr, exit code) of git; ResolveError (user's words only) when it cannot run or
    does not finish in time."""
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**git_env(transport), "GIT_CEILING_DIRECTORIES": os.path.dirname(cwd)},
        )
    except OSError as e:
        log.error("Could not run git (%r) to resolve %r in %r: %s", command[0], ref, repo_url, e)
        raise ResolveError(
            f"The hub could not run git to look up {ref!r} in {repo_url}: please tell the hub's operators."
        ) from e
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), time_limit)
    except TimeoutError as e:
        process.kill()
        await process.wait()
        log.warning("git ls-remote of %r for ref %r: no answer within %g s", repo_url, ref, time_limit)
        raise ResolveError(
            f"{repo_url} did not answer within {time_limit:g} s when looking up {ref!r}: try again later."
        ) from e
    return stdout, stderr, process.returncode

"""Resolve a ref to a commit with `git ls-remote`, the way every git server answers alike.

The repository URL and ref must already be checked (`refs.parse_spec`); git still runs hardened:
no prompts, no credential helpers, no user or system configuration (an `insteadOf` rewrite there
could send the request elsewhere), http(s) transports only, `--` before the URL.
"""

from __future__ import annotations

import asyncio
import os
import re

from .errors import ResolveError
from .refs import is_full_sha

_HARDENING = (
    "-c",
    "credential.helper=",
    "-c",
    "core.askPass=",
    "-c",
    "protocol.allow=never",
    "-c",
    "protocol.https.allow=always",
    "-c",
    "protocol.http.allow=always",
)
_LINE = re.compile(r"([0-9a-f]{40}|[0-9a-f]{64})\t(\S+)")


def git_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    env.update(
        GIT_TERMINAL_PROMPT="0",
        GIT_ASKPASS="",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_PROTOCOL_FROM_USER="0",
    )
    return env


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
    # Patterns match the tail of ref names (a peeled tag only with its '^{}'); pick_commit then
    # keeps only exact names.
    patterns = ["HEAD"] if ref == "HEAD" else [ref, f"{ref}^{{}}"]
    command = [git, *_HARDENING, "ls-remote", "--", repo_url, *patterns]
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=git_env(),
        )
    except OSError as e:
        raise ResolveError(f"Could not run git to look up {ref!r} in {repo_url}: {e}") from e
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), time_limit)
    except TimeoutError as e:
        process.kill()
        await process.wait()
        raise ResolveError(
            f"{repo_url} did not answer within {time_limit:g} s when looking up {ref!r}: try again later."
        ) from e
    if process.returncode != 0:
        detail = stderr.decode(errors="replace").strip().splitlines()
        tail = detail[-1] if detail else f"git exited with {process.returncode}"
        raise ResolveError(
            f"Could not read the repository {repo_url}: it does not exist, is private, or its server "
            f"is unreachable ({tail})."
        )
    commit = pick_commit(stdout.decode(errors="replace"), ref)
    if commit is None:
        raise ResolveError(
            f"{repo_url} has no branch or tag named {ref!r}: check the spelling, or give a full commit SHA."
        )
    return commit

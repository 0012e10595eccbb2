"""Resolving a ref: picking the commit from ls-remote output, and how git is run (a stand-in git)."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from cern_spawner.binder.errors import ResolveError
from cern_spawner.binder.resolve import pick_commit, resolve_ref

pytestmark = pytest.mark.unit

A, B, C, D = ("a" * 40, "b" * 40, "c" * 40, "d" * 40)
LISTING = "\n".join(
    [
        f"{A}\tHEAD",
        f"{A}\trefs/heads/main",
        f"{B}\trefs/heads/v1",
        f"{C}\trefs/tags/v1",
        f"{D}\trefs/tags/v1^{{}}",
        f"{B}\trefs/tags/light",
        f"{C}\trefs/heads/feature/main",
    ]
)


@pytest.mark.parametrize(
    "ref, commit",
    [
        ("HEAD", A),
        ("main", A),
        ("v1", D),
        ("light", B),
        ("refs/heads/v1", B),
        ("refs/tags/v1", D),
        ("feature/main", C),
        ("other", None),
        ("eature/main", None),
    ],
    ids=[
        "head",
        "branch-exact-not-tail",
        "annotated-tag-peeled-before-branch",
        "lightweight-tag",
        "full-branch-name",
        "full-tag-name-peeled",
        "nested-branch",
        "missing",
        "partial-name",
    ],
)
def test_pick_commit(ref, commit):
    assert pick_commit(LISTING, ref) == commit


def fake_git(tmp_path, body: str):
    """A `git` that records its argv and environment, then runs `body` (Python)."""
    script = tmp_path / "git"
    record = tmp_path / "call.json"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys, time\n"
        f"json.dump({{'argv': sys.argv[1:], 'env': dict(os.environ)}}, open({str(record)!r}, 'w'))\n"
        + textwrap.dedent(body)
    )
    script.chmod(0o755)
    return str(script), record


async def test_runs_hardened_git_and_picks_the_commit(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_DIR", "/elsewhere")  # inherited GIT_* settings must not leak in
    git, record = fake_git(tmp_path, f"print({LISTING!r})")
    assert await resolve_ref("https://git.example.org/o/r", "v1", git=git) == D
    call = json.loads(record.read_text())
    argv, env = call["argv"], call["env"]
    assert argv[argv.index("ls-remote") :] == [
        "ls-remote",
        "--",
        "https://git.example.org/o/r",
        "v1",
        "v1^{}",
    ]
    assert "credential.helper=" in argv and "protocol.allow=never" in argv
    assert env["GIT_TERMINAL_PROMPT"] == "0" and env["GIT_CONFIG_NOSYSTEM"] == "1"
    assert "GIT_DIR" not in env


@pytest.mark.parametrize(
    "url, allowed, refused",
    [
        ("https://git.example.org/o/r", "https", "http"),
        ("http://127.0.0.1:9418/r.git", "http", "https"),
    ],
    ids=["https-only", "insecure-origin-http-only"],
)
async def test_git_follows_no_redirect_and_only_the_urls_transport(
    tmp_path, monkeypatch, url, allowed, refused
):
    monkeypatch.setenv("SSH_ASKPASS", "/usr/bin/ssh-askpass")
    monkeypatch.setenv("GIT_SSL_NO_VERIFY", "1")
    git, record = fake_git(tmp_path, f"print({LISTING!r})")
    await resolve_ref(url, "main", git=git)
    call = json.loads(record.read_text())
    argv, env = call["argv"], call["env"]
    settings = [argv[i + 1] for i, arg in enumerate(argv[: argv.index("ls-remote")]) if arg == "-c"]
    assert "http.followRedirects=false" in settings
    assert f"protocol.{allowed}.allow=always" in settings
    assert f"protocol.{refused}.allow=always" not in settings
    assert env["GIT_ALLOW_PROTOCOL"] == allowed and env["GIT_ASKPASS"] == ""
    assert "SSH_ASKPASS" not in env and "GIT_SSL_NO_VERIFY" not in env
    assert argv[argv.index("ls-remote") + 1 : argv.index("ls-remote") + 3] == ["--", url]


@pytest.mark.parametrize(
    "url",
    [
        "file:///srv/repo.git",
        "ext::sh -c id",
        "/srv/repo.git",
        "--upload-pack=touch /tmp/x",
        "https://token@github.com/o/r",
        "ssh://github.com/o/r",
        "https:///o/r",
    ],
    ids=["file-url", "ext-transport", "local-path", "option", "credentials", "ssh", "no-host"],
)
async def test_urls_git_is_never_given(tmp_path, url, caplog):
    git, record = fake_git(tmp_path, f"print({LISTING!r})")
    with pytest.raises(ResolveError) as refused:
        await resolve_ref(url, "main", git=git)
    assert str(refused.value).startswith(f"Could not read the repository {url}:")
    assert not record.exists()  # git never ran
    assert repr(url) in caplog.text


async def test_full_sha_is_returned_without_asking(tmp_path):
    git, record = fake_git(tmp_path, "sys.exit(1)")
    assert await resolve_ref("https://git.example.org/o/r", "AB" * 20, git=git) == "ab" * 20
    assert not record.exists()


# The time limit is short only where the timeout is the point: the fake git is a Python process,
# whose start alone can exceed half a second on a loaded machine.
@pytest.mark.parametrize(
    "body, limit, words",
    [
        ("print('')", 60, "has no branch or tag named 'v1'"),
        (
            "sys.stderr.write('remote: Repository not found.\\nfatal: not found\\n'); sys.exit(128)",
            60,
            "Could not read the repository https://git.example.org/o/r: it does not exist",
        ),
        ("time.sleep(30)", 0.5, "did not answer within 0.5 s"),
    ],
    ids=["no-such-ref", "git-fails", "timeout"],
)
async def test_failures_are_clear(tmp_path, body, limit, words):
    git, _ = fake_git(tmp_path, body)
    with pytest.raises(ResolveError, match=words.replace("(", r"\(").replace(".", r"\.")):
        await resolve_ref("https://git.example.org/o/r", "v1", time_limit=limit, git=git)


async def test_gits_own_words_go_to_the_log_not_to_the_user(tmp_path, caplog):
    body = (
        "sys.stderr.write(\"fatal: unable to access 'http://169.254.169.254/latest/meta-data/': "
        'The requested URL returned error: 302\\n"); sys.exit(128)'
    )
    git, _ = fake_git(tmp_path, body)
    with pytest.raises(ResolveError) as failed:
        await resolve_ref("https://git.example.org/o/r", "v1", git=git)
    assert "169.254" not in str(failed.value) and "302" not in str(failed.value)
    assert "169.254.169.254/latest/meta-data" in caplog.text


async def test_missing_git_is_a_resolve_error(tmp_path):
    with pytest.raises(ResolveError, match="could not run git"):
        await resolve_ref("https://git.example.org/o/r", "main", git=str(tmp_path / "no-git"))

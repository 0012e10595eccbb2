"""Launch specs: mybinder routes to a checked repository and ref; every refusal a 4xx with a reason."""

from __future__ import annotations

import pytest

from cern_spawner.binder.errors import BinderRefused
from cern_spawner.binder.refs import RepoRef, check_ref, check_repo_url, launch_path, parse_spec

pytestmark = pytest.mark.unit

HOSTS = ("github.com", "gitlab.com", "gitlab.cern.ch", "*.example.org", "git.example.net:8443")
SANDBOX = ("http://127.0.0.1:9418",)
SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize(
    "spec, expected",
    [
        (
            "gh/binder-examples/requirements/HEAD",
            RepoRef("gh", "https://github.com/binder-examples/requirements", "HEAD"),
        ),
        ("gh/org/repo.git/main", RepoRef("gh", "https://github.com/org/repo.git", "main")),
        ("gh/org/repo/feature/x", RepoRef("gh", "https://github.com/org/repo", "feature/x")),
        ("gh/org/repo/feature%2Fx", RepoRef("gh", "https://github.com/org/repo", "feature/x")),
        (f"gh/org/repo/{SHA}", RepoRef("gh", "https://github.com/org/repo", SHA)),
        ("gl/group%2Fsub%2Fproject/v1.0", RepoRef("gl", "https://gitlab.com/group/sub/project", "v1.0")),
        (
            "git/https%3A%2F%2Fgitlab.cern.ch%2Fswan%2Fdemo.git/main",
            RepoRef("git", "https://gitlab.cern.ch/swan/demo.git", "main"),
        ),
        (
            "git/https%3A%2F%2FGit.Example.ORG%3A443%2Fa%2Fb%2F/main",
            RepoRef("git", "https://git.example.org/a/b", "main"),
        ),
        (
            "git/http%3A%2F%2F127.0.0.1%3A9418%2Frepo.git/main",
            RepoRef("git", "http://127.0.0.1:9418/repo.git", "main"),
        ),
        ("/gh/org/repo/main/", RepoRef("gh", "https://github.com/org/repo", "main")),
        (
            "git/https%3A%2F%2Fgithub.com.%2Fo%2Fr/main",
            RepoRef("git", "https://github.com/o/r", "main"),
        ),
        (
            "git/https%3A%2F%2FGITHUB.COM.%3A443%2Fo%2Fr/main",
            RepoRef("git", "https://github.com/o/r", "main"),
        ),
        (
            "git/https%3A%2F%2Fgit.example.net%3A8443%2Fo%2Fr/main",
            RepoRef("git", "https://git.example.net:8443/o/r", "main"),
        ),
        ("gh/org/repo/caf%C3%A9", RepoRef("gh", "https://github.com/org/repo", "café")),
    ],
    ids=[
        "gh-head",
        "gh-dot-git",
        "gh-ref-with-slash",
        "gh-ref-encoded-slash",
        "gh-full-sha",
        "gl-subgroup",
        "git-url",
        "git-normalized-host-port-slash",
        "git-sandbox-http",
        "surrounding-slashes",
        "trailing-dot-host",
        "upper-case-trailing-dot-default-port",
        "allowed-host-with-its-port",
        "non-ascii-letter-ref",
    ],
)
def test_accepted_specs(spec, expected):
    assert parse_spec(spec, HOSTS, SANDBOX) == expected


@pytest.mark.parametrize(
    "spec, status, words",
    [
        ("bb/org/repo/main", 400, "Unknown repository provider"),
        ("gh/org/repo", 400, "names no ref"),
        ("gh/org/../main", 400, "not a GitHub repository"),
        ("gh/-org/repo/main", 400, "not a GitHub repository"),
        ("gl/project/main", 400, "not a GitLab project path"),
        ("gl/group%2F..%2Fx/main", 400, "not a GitLab project path"),
        ("git/https%3A%2F%2Fevil.com%2Frepo/main", 403, "evil.com are not allowed"),
        ("git/https%3A%2F%2Fexample.org%2Frepo/main", 403, "example.org are not allowed"),
        ("git/http%3A%2F%2Fgithub.com%2Fo%2Fr/main", 403, "Only https://"),
        ("git/http%3A%2F%2F127.0.0.1%3A8000%2Fr/main", 403, "Only https://"),
        ("git/ssh%3A%2F%2Fgithub.com%2Fo%2Fr/main", 400, "Only https://"),
        ("git/git%40github.com%3Ao%2Fr/main", 400, "not a remote repository"),
        ("git/file%3A%2F%2F%2Fetc%2Frepo/main", 400, "file://"),
        ("git/%2Fsrv%2Frepo/main", 400, "local paths"),
        ("git/..%2F..%2Frepo/main", 400, "local paths"),
        ("git/ext%3A%3Ash%20-c%20id/main", 400, "control character"),
        ("git/ext%3A%3Ash/main", 400, "Only https://"),
        ("git/https%3A%2F%2Fu%3Ap%40github.com%2Fo%2Fr/main", 400, "credentials"),
        ("git/https%3A%2F%2Ftoken%40github.com%2Fo%2Fr/main", 400, "credentials"),
        ("git/https%3A%2F%2Fgithub.com%2Fo%2F..%2Fr/main", 400, "not a plain repository path"),
        ("git/https%3A%2F%2Fgithub.com%2Fo%2F%252e%252e/main", 400, "not a plain repository path"),
        ("git/https%3A%2F%2Fgithub.com/main", 400, "not a plain repository path"),
        ("git/https%3A%2F%2Fgithub.com%2Fo%2Fr%3Fx%3D1/main", 400, "query or fragment"),
        ("git/https%3A%2F%2Fgithub.com%5Co%5Cr/main", 400, "backslash"),
        ("git/https%3A%2F%2Fgithub.com%3A99999%2Fo/main", 400, "cannot be parsed"),
        ("gh/org/repo/main%0a", 400, "control character"),
        ("gh/org/repo/--upload-pack=x", 400, "starts with '-'"),
        ("git/https%3A%2F%2Fgithub.com%3A8443%2Fo%2Fr/main", 403, "github.com:8443 are not allowed"),
        ("git/https%3A%2F%2Fgit.example.net%2Fo%2Fr/main", 403, "git.example.net are not allowed"),
        ("git/https%3A%2F%2Fgit.example.net%3A9000%2Fo%2Fr/main", 403, "standard https port"),
        ("git/https%3A%2F%2Fa.example.org%3A22%2Fo%2Fr/main", 403, "a.example.org:22 are not allowed"),
        ("git/https%3A%2F%2Fgithub.com..%2Fo%2Fr/main", 400, "is not a host name"),
        ("git/https%3A%2F%2Fx%E2%80%AE.example.org%2Fo%2Fr/main", 400, "invisible or text-direction"),
        ("git/https%3A%2F%2F169.254.169.254%2Flatest/main", 403, "169.254.169.254 are not allowed"),
        ("gh/org/repo/main%E2%80%AEcod.exe", 400, "U+202E"),
        ("gh/org/repo/ma%E2%80%8Bin", 400, "U+200B"),
        ("gh/org/repo/main%C2%85", 400, "U+0085"),
        ("gh/org/repo/%2D%2Dupload-pack", 400, "starts with '-'"),
    ],
    ids=[
        "unknown-provider",
        "no-ref",
        "gh-dotdot",
        "gh-bad-owner",
        "gl-one-segment",
        "gl-dotdot",
        "host-not-allowed",
        "wildcard-needs-subdomain",
        "http-public-host",
        "http-other-local-port",
        "ssh",
        "scp-like",
        "file-url",
        "absolute-path",
        "relative-path",
        "ext-transport-with-space",
        "ext-transport",
        "user-password",
        "token-userinfo",
        "dotdot-in-url",
        "double-encoded-dotdot",
        "no-path",
        "query",
        "backslashes",
        "bad-port",
        "newline-in-ref",
        "option-as-ref",
        "https-on-another-port",
        "host-allowed-only-on-its-port",
        "allowed-host-other-port",
        "wildcard-host-other-port",
        "host-with-two-trailing-dots",
        "bidi-in-host",
        "metadata-ip",
        "bidi-override-in-ref",
        "zero-width-in-ref",
        "c1-control-in-ref",
        "encoded-option-as-ref",
    ],
)
def test_refused_specs(spec, status, words):
    with pytest.raises(BinderRefused) as refused:
        parse_spec(spec, HOSTS, SANDBOX)
    assert refused.value.status == status
    assert words in refused.value.message


def test_refusal_says_how_to_fix_a_host():
    with pytest.raises(BinderRefused) as refused:
        check_repo_url("https://bitbucket.org/o/r", HOSTS)
    assert "Ask the hub's administrators to add bitbucket.org" in refused.value.message


def test_other_hosts_for_gh_and_gl():
    ref = parse_spec("gl/swan%2Fdemo/main", ["gitlab.cern.ch"], gitlab_host="gitlab.cern.ch")
    assert ref.repo_url == "https://gitlab.cern.ch/swan/demo"
    with pytest.raises(BinderRefused) as refused:
        parse_spec("gh/o/r/main", ["gitlab.cern.ch"])
    assert refused.value.status == 403


@pytest.mark.parametrize(
    "ref",
    ["main", "HEAD", "v1.0.0", "feature/x-y_z", "release/2024.1", "a@b", SHA, "f" * 64, "0123abc"],
    ids=["branch", "head", "tag", "nested", "dots", "at-sign", "sha1", "sha256", "short-hex"],
)
def test_valid_refs(ref):
    assert check_ref(ref) == ref


@pytest.mark.parametrize(
    "ref, words",
    [
        ("", "empty"),
        ("a" * 256, "longer than 255"),
        ("a b", "space"),
        ("a\x7fb", "control"),
        ("a~1", "'~'"),
        ("a^", "'^'"),
        ("a:b", "':'"),
        ("a?", "'?'"),
        ("a*", "'*'"),
        ("a[b", "'['"),
        ("a\\b", "'\\\\'"),
        ("-x", "starts with '-'"),
        ("@", "'@{'"),
        ("a@{1}", "'@{'"),
        ("a..b", "'..'"),
        ("/a", "empty component"),
        ("a/", "empty component"),
        ("a//b", "empty component"),
        ("a.", "ends with '.'"),
        (".a", "starts with '.'"),
        ("a/.b", "starts with '.'"),
        ("a.lock", "'.lock'"),
        ("a.lock/b", "'.lock'"),
        ("main\u202e", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
        ("\u2066main\u2069", "U+2066"),
        ("ma\u200din", "U+200D"),
        ("main\ufeff", "U+FEFF"),
        ("ma\u00adin", "U+00AD"),
        ("main\x9b", "U+009B"),
        ("main\u00a0x", "U+00A0"),
        ("main\ue000", "U+E000"),
        ("--orphan", "starts with '-'"),
    ],
    ids=[
        "empty",
        "too-long",
        "space",
        "del",
        "tilde",
        "caret",
        "colon",
        "question",
        "star",
        "bracket",
        "backslash",
        "dash",
        "lone-at",
        "at-brace",
        "dotdot",
        "leading-slash",
        "trailing-slash",
        "double-slash",
        "trailing-dot",
        "leading-dot",
        "component-dot",
        "lock",
        "lock-component",
        "bidi-override",
        "bidi-isolate",
        "zero-width-joiner",
        "bom",
        "soft-hyphen",
        "c1-csi",
        "no-break-space",
        "private-use",
        "double-dash-option",
    ],
)
def test_invalid_refs(ref, words):
    with pytest.raises(BinderRefused) as refused:
        check_ref(ref)
    assert refused.value.status == 400
    assert words in refused.value.message
    assert "full 40-character commit SHA" in refused.value.message


@pytest.mark.parametrize(
    "urlpath, labpath, expected",
    [
        (None, None, ""),
        ("lab/tree/index.ipynb", None, "lab/tree/index.ipynb"),
        ("/lab", None, "lab"),
        (
            "git-pull?repo=https%3A%2F%2Fgithub.com%2Fo%2Fr&urlpath=lab",
            None,
            "git-pull?repo=https%3A%2F%2Fgithub.com%2Fo%2Fr&urlpath=lab",
        ),
        ("tree/a..b.ipynb", None, "tree/a..b.ipynb"),
        (None, "notebooks/intro.ipynb", "lab/tree/notebooks/intro.ipynb"),
        ("tree", "intro.ipynb", "lab/tree/intro.ipynb"),
    ],
    ids=["none", "urlpath", "leading-slash", "query-kept", "dots-in-name", "labpath", "labpath-wins"],
)
def test_launch_paths(urlpath, labpath, expected):
    assert launch_path(urlpath, labpath) == expected


@pytest.mark.parametrize(
    "urlpath, labpath, words",
    [
        ("../../hub/admin", None, "climbs out"),
        ("lab/%2e%2e/%2e%2e/hub", None, "climbs out"),
        ("lab/%252e%252e/hub", None, "climbs out"),
        ("https://evil.com/", None, "not a URL"),
        ("//evil.com/x", None, "not a URL"),
        ("javascript:alert(1)", None, "not a URL"),
        ("lab\\..\\x", None, "backslash"),
        ("lab\nx", None, "control character"),
        (None, "../secret", "climbs out"),
        (None, "a.ipynb?x=1", "query"),
    ],
    ids=[
        "dotdot",
        "encoded-dotdot",
        "double-encoded-dotdot",
        "url",
        "protocol-relative",
        "javascript",
        "backslash",
        "newline",
        "labpath-dotdot",
        "labpath-query",
    ],
)
def test_refused_launch_paths(urlpath, labpath, words):
    with pytest.raises(BinderRefused) as refused:
        launch_path(urlpath, labpath)
    assert refused.value.status == 400
    assert words in refused.value.message

"""Image names: readable slug, a hash that keeps same-slug repositories apart, valid OCI references."""

from __future__ import annotations

import hashlib
import re

import pytest

from cern_spawner.binder.images import (
    ImageRef,
    image_name,
    normalize_repo_url,
    repo_hash,
    slug_for,
    split_image,
)

pytestmark = pytest.mark.unit

SHA = "0123456789abcdef0123456789abcdef01234567"
OCI_REPOSITORY = re.compile(r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*")


@pytest.mark.parametrize(
    "url, slug",
    [
        ("https://github.com/binder-examples/requirements", "binder-examples-requirements"),
        ("https://github.com/Org/My_Repo.git", "org-my-repo"),
        ("https://gitlab.cern.ch/a/b/c/", "a-b-c"),
        ("https://github.com/" + "x" * 30 + "/" + "y" * 30, "x" * 30 + "-" + "y" * 9),
        ("https://github.com/" + "x" * 39 + "/__y", "x" * 39),
        ("https://github.com/__/..__", "repo"),
    ],
    ids=[
        "plain",
        "case-underscore-dotgit",
        "subgroups-trailing-slash",
        "truncated",
        "no-trailing-dash",
        "empty",
    ],
)
def test_slugs(url, slug):
    assert slug_for(url) == slug
    assert len(slug) <= 40 and re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug)


@pytest.mark.parametrize(
    "a, b",
    [
        ("https://github.com/o/r", "https://GitHub.com/o/r/"),
        ("https://github.com/o/r", "https://github.com/o/r.git"),
        ("HTTPS://github.com/o/r", "https://github.com/o/r.git/"),
        ("https://github.com/o/r", "https://github.com./o/r"),
        ("https://github.com/o/r", "https://GITHUB.COM.:443/o/r"),
        ("https://github.com/Org/Repo", "https://github.com/org/repo"),
        ("https://git.example.org/o/R", "https://Git.Example.Org./o/R.git"),
        ("http://127.0.0.1:8080/r", "HTTP://127.0.0.1:8080/r/"),
    ],
    ids=[
        "host-case-trailing-slash",
        "dot-git",
        "scheme-case",
        "trailing-dot-host",
        "upper-case-dot-default-port",
        "github-path-case",
        "other-host-case-and-dot",
        "http-with-port",
    ],
)
def test_same_repository_same_name(a, b):
    assert normalize_repo_url(a) == normalize_repo_url(b)
    assert image_name("r.example", "binder/", a, SHA) == image_name("r.example", "binder/", b, SHA)


@pytest.mark.parametrize(
    "a, b",
    [
        ("https://github.com/o/r", "https://gitlab.com/o/r"),
        ("https://github.com/o-r/x", "https://github.com/o/r-x"),
        ("https://gitlab.cern.ch/o/R", "https://gitlab.cern.ch/o/r"),
        ("https://git.example.org:8443/o/r", "https://git.example.org/o/r"),
    ],
    ids=["other-host", "same-slug-other-path", "path-case-off-github", "other-port"],
)
def test_same_slug_different_repositories_do_not_collide(a, b):
    assert slug_for(a) == slug_for(b)
    assert image_name("r.example", "", a, SHA) != image_name("r.example", "", b, SHA)


def test_hash_is_sha256_of_the_normalized_url():
    expected = hashlib.sha256(b"https://github.com/o/r").hexdigest()[:6]
    assert repo_hash("https://GITHUB.com/o/r.git") == expected


@pytest.mark.parametrize(
    "registry, prefix",
    [
        ("registry.cern.ch", "binder/"),
        ("127.0.0.1:5000", "binder-"),
        ("localhost:5000", ""),
        ("reg", "a/b/c-"),
    ],
    ids=["host-path-prefix", "host-port-dash-prefix", "no-prefix", "nested-prefix"],
)
def test_names_are_valid_references(registry, prefix):
    name = image_name(registry, prefix, "https://github.com/Org/Repo", SHA)
    ref = split_image(name)
    assert ref == ImageRef(registry, f"{prefix}org-repo-{repo_hash('https://github.com/Org/Repo')}", SHA)
    assert str(ref) == name
    assert OCI_REPOSITORY.fullmatch(ref.repository)


@pytest.mark.parametrize(
    "registry, prefix, commit, words",
    [
        ("https://r.example", "", SHA, "host[:port]"),
        ("r.example/path", "", SHA, "host[:port]"),
        ("r.example", "Binder/", SHA, "invalid repository name"),
        ("r.example", "binder//", SHA, "invalid repository name"),
        ("r.example", "-x", SHA, "invalid repository name"),
        ("r.example", "", "-bad", "image tag"),
        ("r.example", "", "x" * 129, "image tag"),
        ("r" * 250 + ".example", "", SHA, "longer than 255"),
    ],
    ids=[
        "scheme",
        "registry-path",
        "uppercase-prefix",
        "double-slash",
        "leading-dash",
        "bad-tag",
        "long-tag",
        "too-long",
    ],
)
def test_bad_configuration(registry, prefix, commit, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        image_name(registry, prefix, "https://github.com/o/r", commit)


@pytest.mark.parametrize(
    "image",
    [
        "repo:tag",
        "r.example/repo",
        "r.example/Repo:tag",
        "r.example/repo@sha256:" + "a" * 64,
        "r.example/repo:-t",
    ],
    ids=["no-registry", "no-tag", "uppercase", "digest", "bad-tag"],
)
def test_split_refuses_other_references(image):
    with pytest.raises(ValueError):
        split_image(image)

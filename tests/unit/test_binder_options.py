"""The binder part of user_options: split from form/query data, checked on every spawn path."""

from __future__ import annotations

import pytest
from traitlets import TraitError

from cern_spawner import options as cern_options
from cern_spawner.binder import options as binder_options
from cern_spawner.binder.config import BinderConfig
from cern_spawner.binder.errors import BinderRefused
from cern_spawner.binder.options import (
    IMAGE_CHOSEN,
    NOT_ENABLED,
    check_binder_options,
    split_form,
    token_launch_allowed,
    token_pattern_problem,
    wants_tokens,
)

pytestmark = pytest.mark.unit

HOSTS = ("github.com", "gitlab.cern.ch")
SANDBOX = ("http://127.0.0.1:9418",)
REPO = "https://github.com/binder-examples/requirements"


@pytest.mark.parametrize(
    ("formdata", "binder", "rest"),
    [
        pytest.param({"profile": ["shared-1g"]}, {}, {"profile": ["shared-1g"]}, id="no-binder-fields"),
        pytest.param(
            {"profile": ["shared-1g"], "binder_repo": [""], "binder_ref": [""]},
            {},
            {"profile": ["shared-1g"]},
            id="empty-fields-mean-no-launch",
        ),
        pytest.param(
            {"binder_repo": ["   "], "binder_ref": ["main"]}, {}, {}, id="blank-repo-ignores-the-ref"
        ),
        pytest.param(
            {"profile": ["shared-1g"], "binder_repo": [f" {REPO} "], "binder_ref": [" main "]},
            {"binder_repo": REPO, "binder_ref": "main"},
            {"profile": ["shared-1g"]},
            id="trimmed",
        ),
        pytest.param(
            {"binder_repo": [REPO], "binder_ref": [""]},
            {"binder_repo": REPO, "binder_ref": "HEAD"},
            {},
            id="empty-ref-is-head",
        ),
        pytest.param(
            {"binder_repo": [REPO]}, {"binder_repo": REPO, "binder_ref": "HEAD"}, {}, id="missing-ref-is-head"
        ),
        pytest.param(
            {"binder_repo": [REPO, "https://evil.example/x"], "binder_ref": ["v1", "v2"]},
            {"binder_repo": REPO, "binder_ref": "v1"},
            {},
            id="first-of-repeated-values",
        ),
        pytest.param(
            {"profile": ["gpu-1"], "profile-option-gpu-1--image": ["torch"], "binder_repo": [REPO]},
            {"binder_repo": REPO, "binder_ref": "HEAD"},
            {"profile": ["gpu-1"], "profile-option-gpu-1--image": ["torch"]},
            id="profile-options-stay-in-the-rest",
        ),
        pytest.param({"binder_repo": []}, {}, {}, id="no-values"),
        pytest.param(
            {"binder_repo": [REPO], "binder_tokens": ["on"]},
            {"binder_repo": REPO, "binder_ref": "HEAD", "binder_tokens": True},
            {},
            id="tokens-ticked",
        ),
        pytest.param(
            {"binder_repo": [REPO], "binder_tokens": ["yes please"]},
            {"binder_repo": REPO, "binder_ref": "HEAD"},
            {},
            id="tokens-only-as-a-browser-ticks",
        ),
        pytest.param(
            {"profile": ["shared-1g"], "binder_repo": [""], "binder_tokens": ["on"]},
            {},
            {"profile": ["shared-1g"]},
            id="tokens-without-repository-mean-nothing",
        ),
        pytest.param(
            {"_xsrf": ["token"], "profile": ["shared-1g"], "binder_repo": [REPO]},
            {"binder_repo": REPO, "binder_ref": "HEAD"},
            {"profile": ["shared-1g"]},
            id="jupyterhubs-xsrf-field-is-no-option",
        ),
    ],
)
def test_split_form(formdata, binder, rest):
    before = {key: list(values) for key, values in formdata.items()}
    assert split_form(formdata) == (rest, binder)
    assert formdata == before  # the caller's data is left alone


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param({}, None, id="nothing"),
        pytest.param({"profile": "shared-1g", "image": "torch"}, None, id="plain-launch-may-choose-image"),
        pytest.param({"binder_repo": REPO}, (REPO, "HEAD"), id="repo-only-means-head"),
        pytest.param(
            {"profile": "shared-1g", "binder_repo": REPO + "/", "binder_ref": "main"},
            (REPO, "main"),
            id="normalized-trailing-slash",
        ),
        pytest.param(
            {"binder_repo": "HTTPS://GitHub.com/Org/Repo.git", "binder_ref": "v1.0"},
            ("https://github.com/Org/Repo.git", "v1.0"),
            id="scheme-and-host-lowercased",
        ),
        pytest.param(
            {"binder_repo": "http://127.0.0.1:9418/repo.git", "binder_ref": "feature/x"},
            ("http://127.0.0.1:9418/repo.git", "feature/x"),
            id="sandbox-insecure-origin",
        ),
        pytest.param({"binder_repo": REPO, "binder_ref": ""}, (REPO, "HEAD"), id="empty-ref-is-head"),
        pytest.param({"binder_repo": REPO, "binder_ref": "a" * 40}, (REPO, "a" * 40), id="full-sha"),
        pytest.param(
            {"profile": "gpu-1", "flavour": "big", "binder_repo": REPO},
            (REPO, "HEAD"),
            id="other-profile-options-left-to-check-user-options",
        ),
    ],
)
def test_accepted(options, expected):
    assert (
        check_binder_options(options, enabled=True, allowed_hosts=HOSTS, insecure_origins=SANDBOX) == expected
    )


@pytest.mark.parametrize(
    ("options", "status", "words"),
    [
        pytest.param({"binder_repo": 5}, 400, "binder_repo must be a string", id="repo-not-a-string"),
        pytest.param(
            {"binder_repo": REPO, "binder_ref": ["main"]}, 400, "binder_ref must be a string", id="ref-a-list"
        ),
        pytest.param({"binder_ref": "main"}, 400, "binder_repo is empty", id="ref-without-repo"),
        pytest.param({"binder_repo": ""}, 400, "binder_repo is empty", id="empty-repo"),
        pytest.param({"binder_repo": None}, 400, "binder_repo is empty", id="null-repo"),
        pytest.param({"binder_repo": REPO, "image": "evil/miner:1"}, 400, IMAGE_CHOSEN, id="forged-image"),
        pytest.param(
            {"profile": "shared-1g", "binder_repo": REPO, "image--unlisted-choice": "evil/miner:1"},
            400,
            IMAGE_CHOSEN,
            id="typed-in-image-option",
        ),
        pytest.param(
            {"profile": "gpu-1", "binder_repo": REPO, "image": "torch"},
            400,
            IMAGE_CHOSEN,
            id="listed-image-option",
        ),
        pytest.param({"binder_repo": "file:///etc"}, 400, "never allowed", id="file-url"),
        pytest.param({"binder_repo": "/srv/repo"}, 400, "not a remote repository", id="local-path"),
        pytest.param({"binder_repo": "git@github.com:org/repo.git"}, 400, "not a remote", id="scp-like"),
        pytest.param(
            {"binder_repo": "https://user:pw@github.com/org/repo"}, 400, "credentials", id="credentials"
        ),
        pytest.param(
            {"binder_repo": "https://evil.example/org/repo"}, 403, "not allowed", id="host-off-list"
        ),
        pytest.param({"binder_repo": "http://github.com/org/repo"}, 403, "not http://", id="plain-http"),
        pytest.param(
            {"binder_repo": REPO, "binder_ref": "--upload-pack=x"}, 400, "starts with '-'", id="ref-option"
        ),
        pytest.param({"binder_repo": REPO, "binder_ref": "a..b"}, 400, "'..'", id="ref-dots"),
        pytest.param({"binder_repo": REPO, "binder_ref": "main\nx"}, 400, "control", id="ref-newline"),
        pytest.param(
            {"binder_repo": REPO, "binder_tokens": "on"},
            400,
            "binder_tokens must be true or false",
            id="tokens-string",
        ),
        pytest.param({"binder_tokens": True}, 400, "binder_repo is empty", id="tokens-without-repo"),
    ],
)
def test_refused(options, status, words):
    with pytest.raises(BinderRefused) as refused:
        check_binder_options(options, enabled=True, allowed_hosts=HOSTS, insecure_origins=SANDBOX)
    assert refused.value.status == status
    assert words in refused.value.message


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"binder_repo": REPO}, id="repo"),
        pytest.param({"binder_ref": "main"}, id="ref-only"),
        pytest.param({"binder_repo": 5, "image": "x"}, id="even-malformed"),
    ],
)
def test_refused_when_binder_is_off(options):
    with pytest.raises(BinderRefused) as refused:
        check_binder_options(options, enabled=False, allowed_hosts=HOSTS)
    assert (refused.value.status, refused.value.message) == (400, NOT_ENABLED)


def test_no_binder_keys_pass_when_binder_is_off():
    assert check_binder_options({"profile": "shared-1g"}, enabled=False, allowed_hosts=()) is None


def test_the_unlisted_suffix_is_kubespawners():
    assert binder_options._UNLISTED_SUFFIX == cern_options.UNLISTED_SUFFIX


@pytest.mark.parametrize(
    ("options", "patterns", "expected"),
    [
        pytest.param({"profile": "shared-1g"}, [], True, id="plain-launch-keeps-its-tokens"),
        pytest.param({}, [], True, id="default-launch-keeps-its-tokens"),
        pytest.param({"binder_repo": REPO, "binder_ref": "main"}, [], False, id="repository-not-ticked"),
        pytest.param({"binder_repo": REPO, "binder_tokens": True}, [], True, id="repository-ticked"),
        pytest.param({"binder_repo": REPO, "binder_tokens": "true"}, [], False, id="only-a-real-true"),
        pytest.param({"binder_repo": REPO}, ["github.com/binder-examples/*"], True, id="allowlisted-org"),
        pytest.param(
            {"binder_repo": REPO + ".git/"}, ["github.com/binder-examples/requirements"], True, id="exact"
        ),
        pytest.param(
            {"binder_repo": REPO}, ["github.com/binder-examples/requirements2"], False, id="other-repo"
        ),
        pytest.param({"binder_repo": REPO}, ["github.com/binder/*"], False, id="org-prefix-is-whole"),
        pytest.param({"binder_repo": REPO}, ["gitlab.cern.ch/*"], False, id="other-host"),
        pytest.param(
            {"binder_repo": "HTTPS://GitHub.com:443/Binder-Examples/X"},
            ["github.com/binder-examples/*"],
            True,
            id="case-and-default-port",
        ),
        pytest.param(
            {"binder_repo": "https://github.com.evil.example/binder-examples/x"},
            ["github.com/*"],
            False,
            id="host-suffix",
        ),
        pytest.param(
            {"binder_repo": "http://127.0.0.1:9418/repo.git"}, ["127.0.0.1:9418/*"], True, id="port"
        ),
        pytest.param(
            {"binder_repo": "http://127.0.0.1:9419/repo.git"}, ["127.0.0.1:9418/*"], False, id="other-port"
        ),
        pytest.param({"binder_repo": 5}, ["github.com/*"], False, id="malformed"),
    ],
)
def test_which_launches_get_the_users_tokens(options, patterns, expected):
    assert wants_tokens(options, patterns) is expected


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        pytest.param("github.com/cern/*", None, id="organisation"),
        pytest.param("gitlab.cern.ch/*", None, id="host"),
        pytest.param("gitlab.cern.ch/swan/demo", None, id="one-repository"),
        pytest.param("127.0.0.1:9418/*", None, id="port"),
        pytest.param("https://github.com/cern/*", "no scheme", id="scheme"),
        pytest.param("GitHub.com/cern/*", "lowercase host", id="uppercase"),
        pytest.param("github.com", "github.com/*", id="bare-host"),
        pytest.param("github.com/", "github.com/*", id="empty-path"),
        pytest.param("github.com/*/x", "'*' only last", id="star-in-the-middle"),
        pytest.param("github.com/c*", "'*' only last", id="star-in-a-name"),
        pytest.param("*.cern.ch/*", "lowercase host", id="wildcard-host"),
        pytest.param("github.com/../x", "'*' only last", id="dot-dot"),
    ],
)
def test_token_launch_patterns(pattern, problem):
    found = token_pattern_problem(pattern)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_an_empty_allowlist_allows_nothing():
    assert token_launch_allowed(REPO, []) is False


def test_the_token_launches_trait_is_validated():
    assert BinderConfig().token_launches == []
    assert BinderConfig(token_launches=["github.com/cern/*"]).token_launches == ["github.com/cern/*"]
    with pytest.raises(TraitError) as refused:
        BinderConfig(token_launches=["https://github.com/cern/*"])
    assert "BinderConfig.token_launches" in str(refused.value)
    assert "'https://github.com/cern/*'" in str(refused.value)

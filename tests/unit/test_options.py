"""Server-side checks of user_options against the catalog and the profiles offered to the user."""

from __future__ import annotations

from pathlib import Path

import pytest

from cern_spawner.catalog import allowed_profiles, load_catalog, to_profile_list
from cern_spawner.options import OptionsRefused, check_user_options

pytestmark = pytest.mark.unit
CATALOG = load_catalog([Path(__file__).resolve().parents[2] / "profiles"])
BINDER = {"binder_repo": "https://github.com/binder-examples/requirements", "binder_ref": "main"}


def offered(roles: set[str]) -> list[dict]:
    profiles = to_profile_list(CATALOG, allowed_profiles(CATALOG, roles))
    # An option with free-form input, as an admin could configure it, to check validation_regex.
    profiles[0]["profile_options"] = {
        "image": {
            "display_name": "Image",
            "choices": {"scipy": {"display_name": "SciPy", "kubespawner_override": {"image": "reg/scipy:1"}}},
            "unlisted_choice": {
                "enabled": True,
                "validation_regex": "^reg/.+:.+",
                "kubespawner_override": {},
            },
        }
    }
    return profiles


@pytest.mark.parametrize(
    ("options", "roles", "status", "words"),
    [
        pytest.param({"profile": "gpu-1"}, set(), 403, "gpu-users", id="gpu-without-role"),
        pytest.param({"profile": "gpu-1"}, {"other"}, 403, "gpu-users", id="gpu-with-unrelated-role"),
        pytest.param({"profile": "shared-3g"}, set(), 400, "Did you mean", id="unknown-profile"),
        pytest.param({"profile": 7}, set(), 400, "string", id="profile-not-a-string"),
        pytest.param(
            {"profile": "shared-1g", "image": "nope"}, set(), 400, "not a choice", id="unknown-choice"
        ),
        pytest.param(
            {"profile": "shared-1g", "colour": "red"}, set(), 400, "no option 'colour'", id="unknown-key"
        ),
        pytest.param(
            {"profile": "shared-1g", "image--unlisted-choice": "reg/ok:1\nrm -rf"},
            set(),
            400,
            "control",
            id="regex-newline",
        ),
        pytest.param(
            {"profile": "shared-1g", "image--unlisted-choice": "reg/ok:1 && evil"},
            set(),
            400,
            "spaces",
            id="regex-shell",
        ),
        pytest.param(
            {"profile": "shared-1g", "image--unlisted-choice": "other/ok:1"},
            set(),
            400,
            "must match",
            id="regex-prefix-only",
        ),
        pytest.param({"colour": "red"}, set(), 400, "choose a profile", id="option-without-profile"),
        pytest.param(
            {"profile": "shared-2g", "image": 5}, set(), 400, "no option", id="option-on-profile-without-it"
        ),
        # The repository fields pass here (check_binder_options checks them), nothing else does.
        pytest.param({"profile": "gpu-1", **BINDER}, set(), 403, "gpu-users", id="binder-keeps-role-check"),
        pytest.param(
            {**BINDER, "colour": "red"}, set(), 400, "choose a profile", id="binder-without-profile-other-key"
        ),
        pytest.param(
            {"profile": "shared-1g", **BINDER, "colour": "red"},
            set(),
            400,
            "no option",
            id="binder-other-key",
        ),
        pytest.param(
            {"profile": "shared-1g", **BINDER, "image": "nope"},
            set(),
            400,
            "not a choice",
            id="binder-bad-choice",
        ),
        pytest.param(
            {"profile": "shared-3g", **BINDER}, set(), 400, "Did you mean", id="binder-unknown-profile"
        ),
    ],
)
def test_refusals(options, roles, status, words):
    with pytest.raises(OptionsRefused) as refused:
        check_user_options(options, CATALOG, offered(roles))
    assert refused.value.status == status
    assert words in refused.value.message


@pytest.mark.parametrize(
    ("options", "roles", "slug"),
    [
        pytest.param({}, set(), None, id="empty-means-default"),
        pytest.param({"profile": "shared-2g"}, set(), "shared-2g", id="shared"),
        pytest.param({"profile": "gpu-1"}, {"gpu-users"}, "gpu-1", id="gpu-with-role"),
        pytest.param({"profile": "shared-1g", "image": "scipy"}, set(), "shared-1g", id="listed-choice"),
        pytest.param(
            {"profile": "shared-1g", "image--unlisted-choice": "reg/ok:1"},
            set(),
            "shared-1g",
            id="regex-whole-match",
        ),
        pytest.param(BINDER, set(), None, id="binder-with-default-profile"),
        pytest.param({"profile": "shared-2g", **BINDER}, set(), "shared-2g", id="binder-with-profile"),
        pytest.param({"profile": "gpu-1", **BINDER}, {"gpu-users"}, "gpu-1", id="binder-gpu-with-role"),
        pytest.param(
            {"binder_repo": 5, "binder_ref": ["x"]}, set(), None, id="binder-values-left-to-binder-check"
        ),
    ],
)
def test_accepted(options, roles, slug):
    assert check_user_options(options, CATALOG, offered(roles)) == slug


@pytest.mark.parametrize("options", [pytest.param({}, id="empty"), pytest.param(BINDER, id="binder")])
def test_no_profile_offered_is_refused_even_without_options(options):
    with pytest.raises(OptionsRefused) as refused:
        check_user_options(options, CATALOG, [])
    assert refused.value.status == 403

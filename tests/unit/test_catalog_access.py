"""Which profiles a user's roles allow."""

from pathlib import Path

import pytest

from cern_spawner.catalog import allowed_profiles, load_catalog

pytestmark = pytest.mark.unit

CATALOG = load_catalog([Path(__file__).resolve().parents[2] / "profiles"])
SHARED = ["shared-1g", "shared-2g", "shared-4g"]


@pytest.mark.parametrize(
    "roles, slugs",
    [
        (set(), SHARED),
        ({"physicists"}, SHARED),
        ({"gpu-users"}, [*SHARED, "gpu-1"]),
        ({"physicists", "gpu-users"}, [*SHARED, "gpu-1"]),
        ({"GPU-users"}, SHARED),
    ],
    ids=["no-roles", "other-role", "gpu-role", "several-roles", "roles-are-case-sensitive"],
)
def test_allowed_profiles(roles, slugs):
    assert [p.slug for p in allowed_profiles(CATALOG, roles)] == slugs


def test_accepts_any_iterable_of_roles():
    assert allowed_profiles(CATALOG, ["gpu-users"]) == allowed_profiles(CATALOG, {"gpu-users"})


def test_each_call_returns_its_own_list():
    first = allowed_profiles(CATALOG, iter(["gpu-users"]))  # any iterable, read once
    first.clear()
    assert [p.slug for p in allowed_profiles(CATALOG, ["gpu-users"])] == [*SHARED, "gpu-1"]

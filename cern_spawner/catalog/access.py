"""Which profiles a user may use, from the roles single sign-on gives them."""

from __future__ import annotations

from collections.abc import Iterable

from .model import Catalog, Profile

# Distinct role sets remembered per catalog (each a tuple of profiles); cleared when full.
_ROLE_SETS_KEPT = 1024


def may_use(profile: Profile, roles: Iterable[str]) -> bool:
    """No ``allowed_roles`` means everyone; otherwise any one of them suffices."""
    return not profile.allowed_roles or not set(profile.allowed_roles).isdisjoint(roles)


def allowed_profiles(catalog: Catalog, roles: Iterable[str]) -> list[Profile]:
    """The catalog's profiles ``roles`` may use, in catalog order (a new list each call).

    Asked at every form and twice per start; the answer depends only on the catalog (immutable) and
    the set of roles, so it is kept on the catalog per role set instead of rescanning every profile.
    """
    roles = frozenset(roles)
    known = catalog.allowed_by_roles
    found = known.get(roles)
    if found is None:
        if len(known) >= _ROLE_SETS_KEPT:
            known.clear()
        found = known[roles] = tuple(profile for profile in catalog.profiles if may_use(profile, roles))
    return list(found)

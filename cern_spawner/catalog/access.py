"""Which profiles a user may use, from the roles single sign-on gives them."""

from __future__ import annotations

from collections.abc import Iterable

from .model import Catalog, Profile


def may_use(profile: Profile, roles: Iterable[str]) -> bool:
    """No ``allowed_roles`` means everyone; otherwise any one of them suffices."""
    return not profile.allowed_roles or not set(profile.allowed_roles).isdisjoint(roles)


def allowed_profiles(catalog: Catalog, roles: Iterable[str]) -> list[Profile]:
    """The catalog's profiles ``roles`` may use, in catalog order (a new list each call).

    Asked at every form and twice per start; the answer depends only on the catalog (immutable) and
    the set of roles, so it is kept on the catalog per role set instead of rescanning every profile.
    """
    roles = frozenset(roles)
    found = catalog.allowed_by_roles.get_or_make(
        roles, lambda: tuple(profile for profile in catalog.profiles if may_use(profile, roles))
    )
    return list(found)

"""Roles from verified token claims, and who may log in or administer the hub by role."""

from __future__ import annotations

import logging
from collections.abc import Iterable

log = logging.getLogger(__name__)


def roles_from_claims(claims: dict, path: str, client_id: str) -> list[str]:
    """The roles at the dotted claim `path` (`{client_id}` in a segment stands for the client id).

    A missing claim or anything but a list of non-empty strings gives no roles (fail closed), with a
    warning: a malformed claim must never widen access.
    """
    # Split before substituting: client ids may contain dots.
    value: object = claims
    for segment in path.split("."):
        if not isinstance(value, dict):
            value = None
            break
        value = value.get(segment.replace("{client_id}", client_id))
    resolved = path.replace("{client_id}", client_id)
    if value is None:
        log.warning("No roles claim %s in the token: the user has no roles", resolved)
        return []
    if not isinstance(value, list) or not all(isinstance(r, str) and r for r in value):
        log.warning("Malformed roles claim %s (%r): the user gets no roles", resolved, type(value).__name__)
        return []
    return sorted(set(value))


def is_allowed(roles: Iterable[str], allowed_roles: Iterable[str]) -> bool:
    """Empty `allowed_roles`: every authenticated user; otherwise at least one role in common."""
    allowed = set(allowed_roles)
    return not allowed or bool(allowed & set(roles))


def is_admin(roles: Iterable[str], admin_roles: Iterable[str]) -> bool:
    """True when one of `roles` is an admin role; no admin roles configured makes nobody admin by role."""
    return bool(set(admin_roles) & set(roles))

"""When to refresh a session's tokens, and what a failed refresh means for the session."""

from __future__ import annotations

from enum import Enum

from .errors import AuthError, ProviderUnavailable


class Decision(Enum):
    KEEP = "keep"  # tokens still good for longer than the margin
    REFRESH = "refresh"  # within the margin of expiry, or expired: use the refresh token
    RELOGIN = "relogin"  # nothing to refresh with: the user must log in again


def refresh_decision(
    *, now: float, expires_at: float | None, margin: float, has_refresh_token: bool
) -> Decision:
    """What to do with a session whose access token expires at `expires_at` (epoch seconds)."""
    if expires_at is not None and now < expires_at - margin:
        return Decision.KEEP
    if has_refresh_token:
        return Decision.REFRESH
    # No refresh token: keep the session while the token still works, then require a login.
    if expires_at is not None and now < expires_at:
        return Decision.KEEP
    return Decision.RELOGIN


def keep_after_failure(error: AuthError, *, now: float, expires_at: float | None) -> bool:
    """After a failed refresh: keep the user only for a transient failure while the token is valid.

    A refused grant (invalid_grant: revoked or expired SSO session) or a refreshed token failing
    verification ends the session at once.
    """
    return isinstance(error, ProviderUnavailable) and expires_at is not None and now < expires_at

"""Errors of the CERN SSO client, by what the caller should do about them."""

from __future__ import annotations


class AuthError(Exception):
    """Base of the errors below; never shown to users verbatim (they may name tokens or URLs)."""


class TokenInvalid(AuthError):
    """A token failed verification (signature, algorithm, key, issuer, audience, expiry): refuse it."""


class WrongAudience(TokenInvalid):
    """A valid token meant for another client or service (its `aud`/`azp`): refuse it."""


class ProviderUnavailable(AuthError):
    """The identity provider could not be reached or answered 5xx / garbage: transient, retry later."""


class GrantRejected(AuthError):
    """The token endpoint refused a grant (4xx, e.g. invalid_grant for a revoked session): log in again."""

    def __init__(self, status: int, error: str, description: str = ""):
        self.status = status
        self.error = error
        self.description = description
        super().__init__(f"HTTP {status} {error}: {description}" if description else f"HTTP {status} {error}")

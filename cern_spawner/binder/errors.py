"""What can go wrong on the way from a launch link to an image, as exceptions callers can show.

Third-party errors (subprocess, HTTP client) are wrapped with `raise ... from e`, so callers
handle only these.
"""

from __future__ import annotations


class BinderError(Exception):
    """Base of the binder errors; `str(error)` is written for the user."""


class BinderRefused(BinderError):
    """A launch request refused before anything is created: `status` is the HTTP status to answer.

    400 for input that is malformed or never acceptable (bad ref, credentials in the URL, local
    paths), 403 for well-formed input this hub's policy does not allow (a host off the allowlist).
    """

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class ResolveError(BinderError):
    """A ref could not be turned into a commit (unknown ref, unreachable server, timeout)."""


class RegistryError(BinderError):
    """The registry could not answer whether an image exists (auth refused, unreachable, 5xx)."""

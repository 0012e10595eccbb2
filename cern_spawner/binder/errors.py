"""What can go wrong on the way from a launch link to an image, as exceptions callers can show.

Third-party errors (subprocess, HTTP client) are wrapped with `raise ... from e`, so callers
handle only these.
"""

from __future__ import annotations

from ..errors import Refused


class BinderError(Exception):
    """Base of the binder errors; `str(error)` is written for the user."""


class BinderRefused(BinderError, Refused):
    """A launch request refused before anything is created: `status` is the HTTP status to answer.

    400 for input that is malformed or never acceptable (bad ref, credentials in the URL, local
    paths), 403 for well-formed input this hub's policy does not allow (a host off the allowlist).
    """


class ResolveError(BinderError):
    """A ref could not be turned into a commit (unknown ref, unreachable server, timeout)."""


class RegistryError(BinderError):
    """The registry could not answer whether an image exists (auth refused, unreachable, 5xx)."""


class BuildError(BinderError):
    """The cluster would not run or report a build pod (API refused, unreachable)."""


class BuildFailed(BinderError):
    """A build ran and produced no image: the builder failed, timed out or pushed nothing.

    `str(error)` says so and holds the end of the build log; `tail` is those lines, `exit_code`
    the builder's exit code when known.
    """

    def __init__(self, message: str, tail: tuple[str, ...] = (), exit_code: int | None = None):
        super().__init__(message)
        self.tail = tail
        self.exit_code = exit_code


class NothingPushed(BuildFailed):
    """The build ended but the registry has no image: no push rights, or the build was stopped."""

"""What can go wrong when asking a cloud for nodes, in words a user and an operator understand.

Third-party errors (openstacksdk, keystoneauth) are wrapped at the backend boundary with
`raise ... from e`, so callers handle only these.
"""

from __future__ import annotations


class ScalingError(Exception):
    """Growth failed. `user_message` is safe to show to users; details go to the log."""

    def __init__(self, user_message: str, detail: str = ""):
        super().__init__(f"{user_message} ({detail})" if detail else user_message)
        self.user_message = user_message
        self.detail = detail


class TemporaryError(ScalingError):
    """Worth retrying after `delay` seconds (a 5xx, a timeout, the group busy with an update)."""

    def __init__(self, user_message: str, detail: str = "", delay: float = 5.0):
        super().__init__(user_message, detail)
        self.delay = delay


class PermanentError(ScalingError):
    """Retrying will not help until someone changes something."""


class CeilingReached(PermanentError):
    """The group is at its maximum size (ours or the cloud's)."""


class QuotaExceeded(PermanentError):
    """The cloud project has no quota left for another node."""


class NotAllowed(PermanentError):
    """The hub's credentials may not change this group (403 other than quota)."""


class CloudUnavailable(PermanentError):
    """Transient failures went on past the retry window: waiting users are told, retries go on."""

"""Errors the sandbox reports to a person: one line saying what failed and what to do."""


class SandboxError(Exception):
    """A failure with an actionable one-line message."""

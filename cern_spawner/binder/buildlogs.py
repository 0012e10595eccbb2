"""Build logs as users see them: escapes and control characters removed, lines bounded."""

from __future__ import annotations

import re
from collections.abc import AsyncIterable

MAX_LINE = 500  # characters of one log line shown to the user
# CSI sequences (colours, cursor moves), then other two-character escapes.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_line(raw: str) -> str:
    """A log line as shown to users: no ANSI escapes, the last of its \\r-overwritten versions, no
    control characters, at most MAX_LINE characters."""
    line = _ANSI.sub("", raw.rstrip("\r\n"))
    line = line.rstrip("\r").rsplit("\r", 1)[-1]
    line = _CONTROL.sub("", line)
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"


async def log_lines(chunks: AsyncIterable[bytes], limit: int = 4 * MAX_LINE) -> AsyncIterable[str]:
    """Cleaned lines from a byte stream, as they complete; a line longer than `limit` bytes is cut
    there (the rest of it skipped), so one endless line cannot fill memory."""
    buffer, skipping = b"", False
    async for chunk in chunks:
        buffer += chunk
        while True:
            end = buffer.find(b"\n")
            if end < 0:
                if len(buffer) > limit:
                    if not skipping:
                        yield clean_line(buffer[:limit].decode(errors="replace"))
                    buffer, skipping = b"", True
                break
            line, buffer = buffer[:end], buffer[end + 1 :]
            if not skipping:
                yield clean_line(line.decode(errors="replace"))
            skipping = False
    if buffer and not skipping:
        yield clean_line(buffer.decode(errors="replace"))

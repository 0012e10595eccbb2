"""User input in messages and logs, shown so it cannot forge lines, and refusals logged as warnings.

A refused spawn is the user's mistake (or an attack), not the hub's fault: JupyterHub logs the
exception it caught with a traceback at ERROR level, which buries real errors and, when the
message carries raw input, lets a form post write lines of its own (newlines, NUL, terminal
escapes, bidi overrides that reorder what an admin reads). `shown` quotes such input the way
`%r` does; `RefusalLogFilter` turns JupyterHub's records about a refusal into one warning line.
"""

from __future__ import annotations

import difflib
import logging
import sys
import unicodedata
from collections import deque
from collections.abc import Iterable

# Zero-width and bidirectional formatting characters: printable as far as str.isprintable() is
# concerned for some, invisible on screen, and able to make a log line read differently.
_INVISIBLE = frozenset(
    "\u061c\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2060\u2066\u2067\u2068\u2069\ufeff"
)
SHOWN_LIMIT = 200  # characters of user input kept in a message; the rest is cut with "…"


def _escaped(ch: str) -> str:
    if ch in _INVISIBLE or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
        code = ord(ch)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    if ch in "\\'":
        return "\\" + ch
    return ch


def shown(value, limit: int = SHOWN_LIMIT) -> str:
    """`value` quoted for a message or a log line: 'text' with every control, format and
    invisible character escaped, cut after `limit` characters. Non-strings as their repr."""
    if not isinstance(value, str):
        value = repr(value)
    cut = len(value) > limit
    text = "".join(_escaped(ch) for ch in value[:limit])
    return f"'{text}…'" if cut else f"'{text}'"


class RefusalLogFilter(logging.Filter):
    """Makes a log record about a refused spawn a one-line warning without a traceback.

    JupyterHub logs a refusal inside its `except` block, either with `exc_info` (the form and
    query paths) or as "Error starting …: <exception>" (the spawn path): the exception is found
    in the record or, while the handler runs, in `sys.exc_info()`. The spawn page then logs the
    failed spawn's exception once more, outside any `except`: that line is known by ending with
    the text of a refusal seen just before.
    """

    def __init__(self, refusal_types: tuple[type[BaseException], ...]):
        super().__init__()
        self.refusal_types = refusal_types
        self._recent: deque[str] = deque(maxlen=64)  # texts of the last refusals logged

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            return True
        error = record.exc_info[1] if record.exc_info else sys.exc_info()[1]
        message = record.getMessage()
        if isinstance(error, self.refusal_types):
            reason = str(error)
            if reason not in self._recent:
                self._recent.append(reason)
        elif error is None and any(message.endswith(text) for text in self._recent):
            reason = ""
        else:
            return True
        if reason not in message:
            message = f"{message}: {reason}"
        # Refusal messages quote user input with `shown`; this guards messages built elsewhere.
        record.msg = "Refused: " + message.replace("\r", "\\r").replace("\n", "\\n").replace("\0", "\\x00")
        record.args = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def install_refusal_filter(logger: logging.Logger, refusal_types: tuple[type[BaseException], ...]) -> None:
    """Add the filter to `logger` and its handlers once (handlers see the records of child loggers)."""
    for target in (logger, *logger.handlers):
        if not any(isinstance(f, RefusalLogFilter) for f in target.filters):
            target.addFilter(RefusalLogFilter(refusal_types))


def join_hub_log(hub_log: logging.Logger, name: str = "cern_spawner") -> None:
    """Send the records of our module loggers (`cern_spawner.*`) to the hub's log handlers, with
    its level and filters: otherwise their warnings reach stderr through Python's last resort,
    unformatted, and their info lines nowhere."""
    ours = logging.getLogger(name)
    if ours is hub_log or ours.handlers:
        return
    for handler in hub_log.handlers:
        ours.addHandler(handler)
    ours.setLevel(hub_log.getEffectiveLevel())
    # Still propagated: a hub's root logger has no handlers (so nothing is written twice), and
    # tests capture records at the root.


def did_you_mean(word: object, options: Iterable[object]) -> str:
    """A hint naming the closest of `options` ("did you mean 'gpu-1'?"), or "" when none is close:
    the one wording of typo hints in refusals and catalog problems."""
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1)
    return f"did you mean {close[0]!r}?" if close else ""

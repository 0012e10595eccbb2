"""The doctor's results as a table for a terminal, as JSON for scripts, and as an exit status."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence

from .result import FAIL, WARN, Result

HEADER = ("CHECK", "RESULT", "DETAIL / HOW TO FIX")


def exit_status(results: Sequence[Result]) -> int:
    """0 when nothing failed (warnings and skipped checks included), else 1."""
    return 0 if all(result.ok for result in results) else 1


def table(results: Sequence[Result], width: int = 100) -> str:
    """One row per check: its name, its status, what it found and, under it, how to fix it.

    The third column is wrapped to what `width` leaves; a summary line ends the table.
    """
    name_width = max([len(HEADER[0]), *(len(r.name) for r in results)])
    status_width = len(HEADER[1])
    indent = name_width + status_width + 4
    text_width = max(width - indent, 30)
    lines = [f"{HEADER[0]:<{name_width}}  {HEADER[1]:<{status_width}}  {HEADER[2]}"]
    for result in results:
        body = _wrap(result.detail, text_width) or [""]
        if result.fix:
            body += _wrap(f"fix: {result.fix}", text_width, subsequent_indent="     ")
        lines.append(f"{result.name:<{name_width}}  {result.status:<{status_width}}  {body[0]}")
        lines += [" " * indent + line for line in body[1:]]
    lines.append("")
    lines.append(summary(results))
    return "\n".join(lines)


def _wrap(text: str, width: int, **kwargs) -> list[str]:
    # URLs, labels and commands stay whole (a line may run long) so they can be copied.
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False, **kwargs)


def summary(results: Sequence[Result]) -> str:
    failing = [r.name for r in results if r.status == FAIL]
    warned = [r.name for r in results if r.status == WARN]
    checked = sum(1 for r in results if not r.skipped)
    if failing:
        text = f"{len(failing)} of {checked} checks failed: {', '.join(failing)}"
    else:
        text = "the 1 check passed" if checked == 1 else f"all {checked} checks passed"
    if warned:
        text += f"; {len(warned)} warning{'s' if len(warned) > 1 else ''}: {', '.join(warned)}"
    return text + "."


def as_json(results: Sequence[Result]) -> str:
    """{"ok": ..., "checks": [{"name", "result", "ok", "detail", "fix"}, ...]}: `result` is one of
    ok, warn, fail, skip."""
    return json.dumps(
        {
            "ok": exit_status(results) == 0,
            "checks": [
                {
                    "name": r.name,
                    "result": r.status.lower(),
                    "ok": r.ok,
                    "detail": r.detail,
                    "fix": r.fix,
                }
                for r in results
            ],
        },
        indent=2,
    )

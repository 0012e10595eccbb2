"""A smoke round's table as JSON, Markdown and a static HTML page, like a test dashboard's.

Every value shown comes from the hub or the catalog (profile slugs, node names, the hub's
messages): HTML escapes all of it, Markdown escapes its table syntax.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping

from .run import Row

COLUMNS = ("profile", "result", "time to ready", "node", "message")


def _cells(row: Row) -> tuple[str, ...]:
    seconds = "" if row.seconds_to_ready is None else f"{row.seconds_to_ready:.1f} s"
    return (row.profile, row.result, seconds, row.node or "", row.message)


def to_json(rows: list[Row], about: Mapping[str, str]) -> str:
    """`about` names the round (hub URL, time, Kubernetes version…); rows as objects."""
    body = {
        **about,
        "ok": bool(rows) and all(r.ok for r in rows),
        "rows": [
            {
                "profile": r.profile,
                "result": r.result,
                "seconds_to_ready": r.seconds_to_ready,
                "node": r.node,
                "message": r.message,
            }
            for r in rows
        ],
    }
    return json.dumps(body, indent=2) + "\n"


def _markdown_cell(text: str) -> str:
    # A pipe would end the cell, a newline the row; a backslash or HTML would be read as markup.
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")
    return html.escape(text, quote=False)


def to_markdown(rows: list[Row], about: Mapping[str, str]) -> str:
    lines = [f"# Smoke: {'all ready' if rows and all(r.ok for r in rows) else 'FAILED'}", ""]
    lines += [f"- {_markdown_cell(k)}: {_markdown_cell(str(v))}" for k, v in about.items()]
    lines += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_markdown_cell(c) for c in _cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


_STYLE = (
    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
    "td,th{border:1px solid #999;padding:.3em .6em;text-align:left}"
    "tr.ready td.result{background:#cfc}tr.bad td.result{background:#fcc;font-weight:bold}"
)


def to_html(rows: list[Row], about: Mapping[str, str]) -> str:
    """A page with no script and no outside resource: it can be served as a static file."""
    e = html.escape
    verdict = "all ready" if rows and all(r.ok for r in rows) else "FAILED"
    facts = "".join(f"<li>{e(str(k))}: {e(str(v))}</li>" for k, v in about.items())
    head = "".join(f"<th>{e(c)}</th>" for c in COLUMNS)
    body = "".join(
        f'<tr class="{"ready" if r.ok else "bad"}">'
        + "".join(
            f'<td class="{("profile", "result", "time", "node", "message")[i]}">{e(c)}</td>'
            for i, c in enumerate(_cells(r))
        )
        + "</tr>"
        for r in rows
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Smoke: {e(verdict)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>Smoke: {e(verdict)}</h1><ul>{facts}</ul>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></body></html>\n"
    )

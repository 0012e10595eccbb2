"""The chart's README (helm/cern-spawner/README.md), generated from its values schema and values.

    python -m sandbox.chart_readme          # rewrite the README
    python -m sandbox.chart_readme --check  # exit 1 if it is stale or a value has no description

Every value the schema knows is listed with its type, its default (values.yaml) and the schema's
description: the schema is what helm checks values against, so it is the one place to describe them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[1] / "helm" / "cern-spawner"
README = CHART / "README.md"

INTRO = """\
# cern-spawner Helm chart

JupyterHub with CERNSpawner (profiles, GPU node groups grown through OpenStack Magnum), CERN single
sign-on and Binder-from-git launches. docs/deploy.md walks through an install; docs/profiles.md
describes the profile catalog that `profiles.files` holds.

This file is generated from `values.schema.json` and `values.yaml` by `python -m sandbox.chart_readme`:
edit the descriptions in the schema, not here (a unit test fails when this file is stale).

## Values

"""


class Leaf:
    def __init__(self, path: str, schema: dict[str, Any], description: str):
        self.path, self.schema, self.description = path, schema, description


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """The node with its $ref's keys under its own (its own description wins)."""
    if "$ref" not in node:
        return node
    name = node["$ref"].removeprefix("#/definitions/")
    return {**_resolve(root["definitions"][name], root), **{k: v for k, v in node.items() if k != "$ref"}}


def leaves(schema: dict[str, Any]) -> Iterator[Leaf]:
    """Every value the chart reads: objects with fixed properties are walked, anything else is one value."""

    def walk(node: dict[str, Any], path: str) -> Iterator[Leaf]:
        node = _resolve(node, schema)
        if "properties" in node and path.count(".") < 8:
            for name, child in node["properties"].items():
                yield from walk(child, f"{path}.{name}" if path else name)
        else:
            yield Leaf(path, node, " ".join(node.get("description", "").split()))

    yield from walk(schema, "")


def _type(node: dict[str, Any]) -> str:
    if "enum" in node:
        return " | ".join(f"`{v}`" for v in node["enum"])
    if "oneOf" in node:
        return "string or object"
    kind = node.get("type", "object")
    return " or ".join(kind) if isinstance(kind, list) else kind


def _default(values: Any, path: str) -> str:
    for key in path.split("."):
        if not isinstance(values, dict) or key not in values:
            return ""
        values = values[key]
    if isinstance(values, str) and "\n" in values:
        return "(see values.yaml)"
    text = json.dumps(values, ensure_ascii=False)
    return f"`{text}`" if len(text) <= 60 else "(see values.yaml)"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(chart: Path = CHART) -> str:
    schema = json.loads((chart / "values.schema.json").read_text(encoding="utf-8"))
    values = yaml.safe_load((chart / "values.yaml").read_text(encoding="utf-8"))
    lines = [INTRO.rstrip("\n"), ""]
    section = None
    for leaf in leaves(schema):
        top = leaf.path.split(".")[0] if "." in leaf.path else "Top level"
        if top != section:
            section = top
            lines += ["", f"### {top}", "", "| Value | Type | Default | Description |", "|---|---|---|---|"]
        lines.append(
            f"| `{leaf.path}` | {_cell(_type(leaf.schema))} | {_cell(_default(values, leaf.path))} "
            f"| {_cell(leaf.description)} |"
        )
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"


def undescribed(chart: Path = CHART) -> list[str]:
    schema = json.loads((chart / "values.schema.json").read_text(encoding="utf-8"))
    return [leaf.path for leaf in leaves(schema) if not leaf.description]


def main(argv: list[str]) -> int:
    missing = undescribed()
    if missing:
        print("values without a description in values.schema.json:", *missing, sep="\n  ", file=sys.stderr)
        return 1
    text = render()
    if "--check" in argv:
        if README.read_text(encoding="utf-8") != text:
            print(f"{README} is stale: run python -m sandbox.chart_readme", file=sys.stderr)
            return 1
        return 0
    README.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

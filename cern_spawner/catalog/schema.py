"""The catalog's JSON Schema, and its errors turned into problems a person can act on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from ..logsafe import did_you_mean
from .model import Problem
from .source import Document

# Shipped in the package (so an installed hub finds it); profiles/schema.json links here for editors.
SCHEMA_PATH = Path(__file__).with_name("schema.json")

_TYPE_NAMES = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "empty",
}
QUOTE_HINT = "quote it: YAML reads yes/no/on/off as booleans and 1.10 as a number"


@cache
def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(load_schema())


def schema_problems(doc: Document) -> list[Problem]:
    """Every schema violation in ``doc``, in file order."""
    problems: dict[Problem, None] = {}  # an ordered set: `required` reports all missing keys at once
    for error in _validator().iter_errors(doc.data):
        problems.update(dict.fromkeys(_convert(doc, error)))
    return sorted(problems, key=lambda p: (p.line or 0, p.path))


def describe(value: object) -> str:
    """What a YAML value is, in words (bool before int: True is an int in Python)."""
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "a boolean"
    for python_type, name in ((int, "integer"), (float, "number"), (str, "string"), (list, "array")):
        if isinstance(value, python_type):
            return _TYPE_NAMES[name]
    return _TYPE_NAMES["object"]


def _convert(doc: Document, error: ValidationError) -> Iterator[Problem]:
    parts = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    value = error.instance
    if "propertyNames" in error.absolute_schema_path:
        # The instance is the offending key itself; point at it rather than at its mapping.
        parts += (str(value),)
    rule = error.validator
    if rule == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        for key in value:
            if key not in allowed:
                hint = did_you_mean(key, allowed) or f"allowed keys: {', '.join(allowed)}"
                yield doc.problem(parts + (str(key),), f"unknown key {key!r}", hint)
    elif rule == "required":
        for key in error.validator_value:
            if key not in value:
                described = schema.get("properties", {}).get(key, {}).get("description", "")
                yield doc.problem(parts, f"missing key {key!r}", described)
    elif rule == "type":
        expected = _types(error.validator_value)
        hint = QUOTE_HINT if "string" in expected and isinstance(value, bool | int | float) else ""
        yield doc.problem(parts, f"must be {_words(expected)}, not {describe(value)}", hint)
    elif rule == "enum":
        options = error.validator_value
        hint = did_you_mean(value, options) or schema.get("description", "")
        yield doc.problem(parts, f"{value!r} is not one of {', '.join(map(str, options))}", hint)
    elif rule == "pattern":
        yield doc.problem(parts, f"{value!r} is not a valid name here", schema.get("description", ""))
    elif rule == "minimum":
        yield doc.problem(parts, f"must be at least {error.validator_value}, not {value!r}")
    elif rule in ("minLength", "minProperties", "minItems"):
        yield doc.problem(parts, "must not be empty", schema.get("description", ""))
    elif rule == "uniqueItems":
        repeated = sorted({str(item) for item in value if value.count(item) > 1})
        yield doc.problem(parts, f"lists {', '.join(repeated)} more than once")
    elif rule in ("oneOf", "anyOf"):
        yield from _alternatives(doc, error, parts)
    else:
        yield doc.problem(parts, error.message)


def _alternatives(doc: Document, error: ValidationError, parts: tuple) -> Iterator[Problem]:
    """Explain a failed oneOf by the one branch whose type fits the value, if there is one."""
    branches: dict[int, list[ValidationError]] = {}
    for child in error.context or ():
        branches.setdefault(child.relative_schema_path[0], []).append(child)
    fitting = [
        children
        for children in branches.values()
        if not any(c.validator == "type" and not c.relative_path for c in children)
    ]
    if len(fitting) == 1:
        for child in fitting[0]:
            yield from _convert(doc, child)
        return
    expected: list[str] = []
    for child in error.context or ():
        if child.validator == "type" and not child.relative_path:
            expected += [t for t in _types(child.validator_value) if t not in expected]
    schema = error.schema if isinstance(error.schema, dict) else {}
    message = f"must be {_words(expected)}, not {describe(error.instance)}" if expected else error.message
    yield doc.problem(parts, message, schema.get("description", ""))


def _types(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _words(types: list[str]) -> str:
    names = [_TYPE_NAMES.get(t, t) for t in types]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"

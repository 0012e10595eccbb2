"""One catalog file: its data, and the line of every key in it so that problems can point there."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from .model import Problem

Parts = tuple[str | int, ...]


@dataclass(frozen=True)
class Document:
    file: str
    data: Any  # None for an empty file
    lines: Mapping[Parts, int]

    def line_of(self, parts: Iterable[str | int]) -> int | None:
        """The line of the key at ``parts``, or of its nearest ancestor that has one."""
        parts = tuple(parts)
        while parts not in self.lines:
            if not parts:
                return None
            parts = parts[:-1]
        return self.lines[parts]

    def problem(self, parts: Iterable[str | int], message: str, hint: str = "") -> Problem:
        parts = tuple(parts)
        return Problem(self.file, self.line_of(parts), format_path(parts), message, hint)


def format_path(parts: Iterable[str | int]) -> str:
    """``("profiles", 3, "cpu")`` → ``profiles[3].cpu``."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def parse(file: str, text: str) -> tuple[Document | None, list[Problem]]:
    """The document in ``text``, and problems that do not stop reading it (duplicate keys).

    Broken YAML gives no document and one problem at the parser's line.
    """
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as error:  # a character YAML does not allow, e.g. a control character
        line = text.count("\n", 0, error.position) + 1
        return None, [
            Problem(file, line, "", f"not valid YAML: character {error.character:#x} is not allowed")
        ]
    try:
        node = loader.get_single_node()
        lines: dict[Parts, int] = {}
        problems: list[Problem] = []
        if node is not None:
            _index(node, (), lines, problems, file, set())
        # Construct after indexing: resolving merge keys (<<) rewrites the node tree.
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as error:
        return None, [_yaml_problem(file, error)]
    finally:
        loader.dispose()
    return Document(file, data, lines), problems


def _yaml_problem(file: str, error: yaml.MarkedYAMLError) -> Problem:
    mark = error.problem_mark or error.context_mark
    message = f"not valid YAML: {error.problem or error.context}"
    if error.context and error.context_mark and error.problem:
        message = f"not valid YAML: {error.context} (line {error.context_mark.line + 1}), {error.problem}"
    problem = str(error.problem)
    if "'\\t'" in problem:
        hint = "indent with spaces, not tabs"
    elif "expected <block end>" in problem:
        hint = "check the indentation of this line"
    else:
        hint = ""
    return Problem(file, mark.line + 1 if mark else None, "", message, hint)


def _index(
    node: yaml.Node,
    parts: Parts,
    lines: dict[Parts, int],
    problems: list[Problem],
    file: str,
    stack: set[int],
) -> None:
    if id(node) in stack:  # a recursive alias; the schema will refuse the value anyway
        return
    lines[parts] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key, line = key_node.value, key_node.start_mark.line + 1
            if key in seen:
                problems.append(
                    Problem(
                        file,
                        line,
                        format_path(parts + (key,)),
                        f"duplicate key {key!r}",
                        f"it is also at line {seen[key]}; YAML keeps only the last one",
                    )
                )
            seen.setdefault(key, line)
            _index(value_node, parts + (key,), lines, problems, file, stack | {id(node)})
            # A key points at its own line, not at its value's (which may start on the next one); of
            # duplicates, the last one, whose value YAML keeps.
            lines[parts + (key,)] = line
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index(item, parts + (index,), lines, problems, file, stack | {id(node)})

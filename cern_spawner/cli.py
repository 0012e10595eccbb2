"""The ``cern-spawner`` command: ``cern-spawner profiles validate [PATH...]``.

An admin runs it after every edit of the catalog, so it loads only what the check needs, when it
runs: the catalog's loader (YAML, JSON Schema), never the hub (JupyterHub, KubeSpawner and the
Kubernetes client take seconds to import).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import types
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; the exit status is returned, not raised (0 valid, 1 problems, 2 usage)."""
    args = _parser().parse_args(argv)
    return args.run(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cern-spawner", description="Tools for the cern-spawner hub.")
    parser.set_defaults(run=_usage(parser))
    profiles = parser.add_subparsers(title="commands").add_parser("profiles", help="the profile catalog")
    profiles.set_defaults(run=_usage(profiles))
    validate = profiles.add_subparsers(title="commands").add_parser(
        "validate", help="check profile YAML files as the hub would, and print every problem"
    )
    validate.add_argument(
        "paths", nargs="*", default=["profiles"], metavar="PATH", help="file or directory (default: profiles)"
    )
    validate.set_defaults(run=_validate)
    return parser


def _usage(parser: argparse.ArgumentParser):
    """A command that only shows ``parser``'s help: a sub-command is missing."""

    def run(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    return run


@contextmanager
def _iri_syntax_loaded_on_use() -> Iterator[None]:
    """While jsonschema is first imported, stand in for rfc3987_syntax with a module that loads it
    at its first use.

    jsonschema imports rfc3987_syntax (when installed) to check the "iri" formats, and that module
    builds ~35 parsers at import: about a second, most of this command's time
    (python-jsonschema/jsonschema#1428). The catalog's schema checks no formats, so it is never
    used here; anyone who does check an IRI gets the real module, loaded then.
    """
    name = "rfc3987_syntax"
    if "jsonschema" in sys.modules or name in sys.modules or importlib.util.find_spec(name) is None:
        yield
        return
    stand_in = sys.modules[name] = _loaded_on_use(name, "is_valid_syntax")
    try:
        yield
    finally:
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]  # later imports get the real module


def _loaded_on_use(name: str, function: str) -> types.ModuleType:
    """A stand-in for module `name` whose `function` imports the real module when first called."""
    stand_in = types.ModuleType(name, f"Imports {name} at the first call of {function}.")

    def call(*args, **kwargs):
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]
        return getattr(importlib.import_module(name), function)(*args, **kwargs)

    setattr(stand_in, function, call)
    return stand_in


def _validate(args: argparse.Namespace) -> int:
    with _iri_syntax_loaded_on_use():
        from .catalog import CatalogError, load_catalog
    try:
        catalog = load_catalog(args.paths)
    except CatalogError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return 1
    for warning in catalog.warnings:  # served all the same, but probably not meant
        print(f"warning: {warning}", file=sys.stderr)
    counts = (
        (len(catalog.profiles), "profile"),
        (len(catalog.node_groups), "node group"),
        (len(catalog.sources), "file"),
    )
    profiles, groups, files = (f"{n} {word}{'' if n == 1 else 's'}" for n, word in counts)
    print(f"OK: {profiles}, {groups} from {files}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

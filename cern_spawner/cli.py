"""The ``cern-spawner`` command: ``cern-spawner profiles validate [PATH...]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .catalog import CatalogError, load_catalog


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


def _validate(args: argparse.Namespace) -> int:
    try:
        catalog = load_catalog(args.paths)
    except CatalogError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return 1
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

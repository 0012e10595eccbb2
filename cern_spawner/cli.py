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
    commands = parser.add_subparsers(title="commands")
    profiles = commands.add_parser("profiles", help="the profile catalog")
    profiles.set_defaults(run=_usage(profiles))
    validate = profiles.add_subparsers(title="commands").add_parser(
        "validate", help="check profile YAML files as the hub would, and print every problem"
    )
    validate.add_argument(
        "paths", nargs="*", default=["profiles"], metavar="PATH", help="file or directory (default: profiles)"
    )
    validate.set_defaults(run=_validate)
    _add_doctor(commands)
    _add_smoke(commands)
    return parser


def _add_doctor(commands) -> None:
    """`cern-spawner doctor`: the hub's configuration checked against the cluster, the cloud, the
    registries and the SSO (cern_spawner.doctor; docs/operator/doctor.md)."""
    doctor = commands.add_parser(
        "doctor",
        help="check the hub's configuration against the live world; exit 0 when every check passes",
    )
    doctor.add_argument(
        "--config",
        metavar="FILE",
        help="the hub's config file (default: $CERN_SPAWNER_HUB_CONFIG, else the chart's "
        "/etc/jupyterhub/jupyterhub_config.py, else ./jupyterhub_config.py)",
    )
    doctor.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="ask Kubernetes as this kubeconfig's user (default: the pod's service account, else "
        "$KUBECONFIG or ~/.kube/config, as the hub)",
    )
    doctor.add_argument(
        "--registry-auth",
        metavar="FILE",
        help="a Docker config.json for image lookups (default: BinderConfig.registry_credentials_path)",
    )
    doctor.add_argument(
        "--timeout", type=float, default=10.0, metavar="SECONDS", help="per check (default: 10)"
    )
    doctor.add_argument("--json", action="store_true", help="print JSON instead of a table")
    doctor.set_defaults(run=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    with _iri_syntax_loaded_on_use():  # the catalog's loader imports jsonschema, as in _validate
        from .doctor.command import run

    return run(args)


def _add_smoke(commands) -> None:
    """`cern-spawner smoke`: each profile started as a dedicated user through the hub's REST API,
    timed to its first answer and stopped (cern_spawner.smoke; docs/operator/smoke.md)."""
    smoke = commands.add_parser(
        "smoke",
        help="start every profile through the hub, time it and stop it; exit 0 when all were ready",
    )
    smoke.add_argument(
        "--url", required=True, help="the hub's URL through its proxy, e.g. http://proxy-public"
    )
    smoke.add_argument(
        "--token-file",
        required=True,
        metavar="FILE",
        help="a file holding the smoke service's API token (never pass tokens in the environment)",
    )
    smoke.add_argument(
        "--user", default="cern-smoke", help="the user whose server is started (default: cern-smoke)"
    )
    smoke.add_argument(
        "--profile",
        action="append",
        metavar="SLUG",
        help="smoke only this profile (repeatable; default: all)",
    )
    smoke.add_argument(
        "--catalog",
        action="append",
        metavar="PATH",
        help="the hub's profile files or directories (repeatable; default: profiles)",
    )
    smoke.add_argument(
        "--out", default="smoke", metavar="DIR", help="where smoke.json/.md/.html go (default: smoke)"
    )
    smoke.add_argument(
        "--label",
        action="append",
        metavar="KEY=VALUE",
        type=_smoke_label,
        help="a fact shown above the table, e.g. kubernetes=1.31 (repeatable)",
    )
    smoke.set_defaults(run=_smoke)


def _smoke_label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--label wants KEY=VALUE, not {text!r}")
    return key, value


def _smoke(args: argparse.Namespace) -> int:
    args.catalog = args.catalog or ["profiles"]
    with _iri_syntax_loaded_on_use():  # the catalog's loader imports jsonschema, as in _validate
        from .smoke.command import run

    return run(args)


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

"""Every distribution whose modules cern_spawner imports is declared in pyproject.toml's
dependencies: the hub image installs those and nothing else, so an undeclared import works in the
test virtualenv (where something else pulled it in) and fails, or drifts, in production."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_modules(package: Path) -> dict[str, str]:
    """Top-level module name -> a file importing it, for each absolute import in `package`."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {_canonical(re.match(r"[A-Za-z0-9._-]+", spec).group()) for spec in project["dependencies"]}


def test_every_imported_distribution_is_declared():
    distributions = packages_distributions()
    undeclared = []
    for module, where in imported_modules(ROOT / "cern_spawner").items():
        if module in sys.stdlib_module_names or module in ("__future__", "cern_spawner"):
            continue
        owners = {_canonical(d) for d in distributions.get(module, [])}
        assert owners, f"{where} imports {module!r}, which no installed distribution provides"
        if not owners & declared():
            undeclared.append(f"{module} ({' or '.join(sorted(owners))}, imported by {where})")
    assert not undeclared, (
        "imported by cern_spawner, missing from pyproject.toml's dependencies: " + ", ".join(undeclared)
    )


def test_the_check_sees_the_imports_it_checks():
    modules = imported_modules(ROOT / "cern_spawner")
    for module in ("jupyterhub", "kubespawner", "jwt", "prometheus_client", "keystoneauth1", "jinja2"):
        assert module in modules

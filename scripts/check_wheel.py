"""Check a built cern-spawner wheel against the source it was built from (`make package`).

The wheel must hold the product and nothing else: every file of the `cern_spawner` source folder (its
templates and schema too, which the hub reads at run time), its own .dist-info, and no other top-level
name (the sandbox is a distribution of its own, sandbox/pyproject.toml).

    python scripts/check_wheel.py DIST/cern_spawner-*.whl SRC/cern_spawner
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path


def problems(wheel: Path, package: Path) -> list[str]:
    names = set(zipfile.ZipFile(wheel).namelist())
    found = []
    strangers = sorted(
        {name.split("/")[0] for name in names}
        - {package.name}
        - {n.split("/")[0] for n in names if ".dist-info/" in n}
    )
    if strangers:
        found.append(f"{wheel.name} holds more than {package.name}: {', '.join(strangers)}")
    sources = {
        f"{package.name}/{path.relative_to(package).as_posix()}"
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    missing = sorted(sources - names)
    if missing:
        found.append(f"{wheel.name} lacks {len(missing)} file(s) of {package}: {', '.join(missing)}")
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    wheel, package = Path(argv[0]), Path(argv[1])
    found = problems(wheel, package)
    for problem in found:
        print(problem, file=sys.stderr)
    if not found:
        print(f"{wheel.name}: {package.name} only, all of its files")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

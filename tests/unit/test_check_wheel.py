"""scripts/check_wheel.py, the check `make package` runs on the built wheel: the product only, whole."""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_wheel.py"
_spec = importlib.util.spec_from_file_location("check_wheel", SCRIPT)
check_wheel = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_wheel)

SOURCES = [
    "cern_spawner/__init__.py",
    "cern_spawner/catalog/schema.json",
    "cern_spawner/web/templates/hub/spawn.html",
]
DIST_INFO = ["cern_spawner-0.1.0.dist-info/METADATA", "cern_spawner-0.1.0.dist-info/RECORD"]


@pytest.mark.parametrize(
    "wheel_files, expected",
    [
        (SOURCES + DIST_INFO, []),
        (
            SOURCES + DIST_INFO + ["sandbox/__init__.py", "sandbox/cluster.py"],
            ["holds more than cern_spawner: sandbox"],
        ),
        (SOURCES[:1] + DIST_INFO, ["lacks 2 file(s)", "cern_spawner/catalog/schema.json"]),
        (SOURCES + DIST_INFO + ["tests/__init__.py"], ["holds more than cern_spawner: tests"]),
    ],
    ids=["product-only", "sandbox-inside", "package-data-missing", "tests-inside"],
)
def test_check_wheel(tmp_path, wheel_files, expected):
    source = tmp_path / "src"
    for name in SOURCES + ["cern_spawner/__pycache__/__init__.cpython-311.pyc"]:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text("x")
    wheel = tmp_path / "cern_spawner-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as out:
        for name in wheel_files:
            out.writestr(name, "x")
    problems = check_wheel.problems(wheel, source / "cern_spawner")
    text = "\n".join(problems)
    assert bool(problems) == bool(expected), text
    for fragment in expected:
        assert fragment in text
    assert check_wheel.main([str(wheel), str(source / "cern_spawner")]) == (1 if expected else 0)

"""`cern-spawner profiles validate`: exit codes and output."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cern_spawner.cli import _loaded_on_use, main

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_validates_profiles_directory_by_default(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert main(["profiles", "validate"]) == 0
    out, err = capsys.readouterr()
    assert out == "OK: 4 profiles, 2 node groups from 1 file\n"
    assert err == ""


def test_several_paths(tmp_path, capsys):
    shutil.copy(ROOT / "profiles" / "default.yaml", tmp_path / "default.yaml")
    (tmp_path / "extra.yaml").write_text("node_groups:\n  highmem: {}\n")
    assert main(["profiles", "validate", str(tmp_path), str(tmp_path / "extra.yaml")]) == 0
    assert capsys.readouterr().out == "OK: 4 profiles, 3 node groups from 2 files\n"


def test_problems_go_to_stderr_one_per_line(tmp_path, capsys):
    text = (ROOT / "profiles" / "default.yaml").read_text()
    broken = text.replace("node_group: gpu-v100", "node_group: gpu-a100").replace("512M", "512 MB")
    file = tmp_path / "default.yaml"
    file.write_text(broken)
    lines = broken.splitlines()
    memory_line = next(i for i, line in enumerate(lines, 1) if "512 MB" in line)
    group_line = next(i for i, line in enumerate(lines, 1) if "gpu-a100" in line)

    assert main(["profiles", "validate", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert [line.split(" — ")[0] for line in err.splitlines()] == [
        f"{file}:{memory_line}: profiles[0].memory.guarantee: '512 MB' is not a memory quantity",
        f"{file}:{group_line}: profiles[3].node_group: unknown node group 'gpu-a100'",
    ]


def test_missing_path(tmp_path, capsys):
    assert main(["profiles", "validate", str(tmp_path / "nope")]) == 1
    assert capsys.readouterr().err == f"{tmp_path}/nope: no such file or directory\n"


@pytest.mark.parametrize("argv", [[], ["profiles"]], ids=["no-command", "no-subcommand"])
def test_usage(argv, capsys):
    assert main(argv) == 2
    assert "usage: cern-spawner" in capsys.readouterr().err


def test_python_dash_m():
    result = subprocess.run(
        [sys.executable, "-m", "cern_spawner", "profiles", "validate", "profiles"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert (result.returncode, result.stdout) == (0, "OK: 4 profiles, 2 node groups from 1 file\n")


# The hub's stack (seconds to import) and the grammar jsonschema would build at import (~1 s).
HUB_STACK = ("jupyterhub", "kubespawner", "kubernetes_asyncio", "tornado", "lark")
VALIDATE_THEN_REPORT = """
import json, sys
from cern_spawner.cli import _loaded_on_use, main
status = main(["profiles", "validate", "profiles"])
loaded = sorted({name.partition(".")[0] for name in sys.modules} & set(sys.argv[1:]))
import jsonschema
print(json.dumps([status, loaded, "iri" in jsonschema.FormatChecker().checkers]))
"""


def test_validate_loads_none_of_the_hub_stack():
    result = subprocess.run(
        [sys.executable, "-c", VALIDATE_THEN_REPORT, *HUB_STACK],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    status, loaded, iri_checked = json.loads(result.stdout.splitlines()[-1])
    assert status == 0
    assert loaded == [], f"`profiles validate` imported {loaded}"
    assert iri_checked, "jsonschema lost its 'iri' format check"


def test_a_module_loaded_on_use_is_the_real_one_at_its_first_call(monkeypatch):
    stand_in = _loaded_on_use("colorsys", "rgb_to_hsv")
    monkeypatch.setitem(sys.modules, "colorsys", stand_in)
    assert stand_in.rgb_to_hsv(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0)
    assert sys.modules["colorsys"] is not stand_in  # later imports get the real module
    assert sys.modules["colorsys"].rgb_to_hsv.__qualname__ == "rgb_to_hsv"

"""benchmarks/results holds what one `make bench` writes, and docs/performance.md shows it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmarks import report

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"


def bench_recipe() -> str:
    makefile = (ROOT / "Makefile").read_text()
    return re.search(r"^bench:.*?\n((?:\t.*\n|    .*\n)+)", makefile, re.M).group(1)


def test_the_performance_tables_are_generated_from_the_results():
    text = report.DOCUMENT.read_text()
    assert report.rewrite(text) == text, "run `.venv/bin/python -m benchmarks.report`"


@pytest.mark.parametrize("path", sorted(RESULTS.iterdir()), ids=lambda p: p.name)
def test_every_results_file_is_written_by_make_bench(path):
    recipe = bench_recipe()
    named = path.name in recipe  # an --out of the recipe
    # otherwise the default output of a script the recipe runs: <script>.json
    script = f"benchmarks/{path.stem}.py"
    assert named or (path.suffix == ".json" and script in recipe), f"{path.name}: not written by make bench"

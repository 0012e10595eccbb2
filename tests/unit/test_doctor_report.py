"""`cern-spawner doctor`'s runner (one timeout per check, a broken check is one failed row) and its
output: the table, the JSON and the exit status."""

from __future__ import annotations

import asyncio
import json

import pytest

from cern_spawner.doctor import report
from cern_spawner.doctor.result import Check, Result, failed, passed, run_checks, skipped

pytestmark = pytest.mark.unit

FIX = "do something"


async def answer(result: Result) -> Result:
    return result


async def hang() -> Result:
    await asyncio.Event().wait()
    raise AssertionError("never set")


async def broken() -> Result:
    raise KeyError("items")


async def own_deadline() -> Result:
    raise TimeoutError("the registry's token service: not done after 3 s")


@pytest.mark.parametrize(
    "run, status, detail",
    [
        (lambda: answer(passed("x", "fine")), "ok", "fine"),
        (lambda: answer(passed("x", "fine", "better not")), "warn", "fine"),
        (lambda: answer(failed("x", "bad", "mend it")), "FAIL", "bad"),
        (lambda: answer(skipped("x", "not here")), "skip", "not here"),
        (hang, "FAIL", "no answer within 0.05 s"),
        (broken, "FAIL", "the check broke: KeyError: 'items'"),
        (own_deadline, "FAIL", "timed out: the registry's token service: not done after 3 s"),
    ],
    ids=["pass", "warning", "fail", "skip", "hangs", "raises", "its-own-timeout"],
)
async def test_runner_turns_every_outcome_into_one_row(run, status, detail):
    (result,) = await run_checks([Check("x", run, FIX)], per_check=0.05)
    assert (result.name, result.status, result.detail) == ("x", status, detail)
    if run in (hang, broken, own_deadline):
        assert result.fix == FIX, "a check that gives no result still says what to do"


async def test_checks_run_at_once_and_keep_their_order():
    """A hung check does not hold the others: they all answer within one timeout, in plan order."""
    started = []

    async def first() -> Result:
        started.append("first")
        await asyncio.Event().wait()
        raise AssertionError

    async def second() -> Result:
        started.append("second")
        return passed("second", "fine")

    results = await run_checks([Check("first", first, FIX), Check("second", second, FIX)], per_check=0.05)
    assert [(r.name, r.status) for r in results] == [("first", "FAIL"), ("second", "ok")]
    assert started == ["first", "second"]


RESULTS = [
    passed("catalog", "4 profiles, 2 node groups from profiles"),
    failed("node group gpu-a100", "no node is labelled magnum.openstack.org/nodegroup=gpu-a100", FIX),
    passed("node group gpu-v100", "1 usable node", "lower the cloud's min"),
    skipped("GPUs gpu-a100", "no nodes yet"),
]


def test_table_names_each_check_its_result_and_the_fix():
    lines = report.table(RESULTS, width=100).splitlines()
    assert lines[0].split() == ["CHECK", "RESULT", "DETAIL", "/", "HOW", "TO", "FIX"]
    row = next(i for i, line in enumerate(lines) if line.startswith("node group gpu-a100"))
    assert lines[row].split()[3:5] == ["FAIL", "no"]
    assert lines[row + 1].strip() == f"fix: {FIX}"
    column = lines[0].index("DETAIL")
    assert lines[row + 1].index("fix:") == column, "the fix sits under the detail"
    assert lines[-1] == "1 of 3 checks failed: node group gpu-a100; 1 warning: node group gpu-v100."


@pytest.mark.parametrize("width", [100, 160], ids=["usual", "wide"])
def test_table_wraps_long_details_within_the_width(width):
    long = failed("image registry.cern.ch/swan/notebook:2026", "word " * 80, "fix " * 40)
    body = report.table([long], width=width).splitlines()[1:-2]  # no header, blank line, summary
    assert len(body) > 2
    assert all(len(line) <= width for line in body)
    assert " ".join(body).split().count("word") == 80


@pytest.mark.parametrize(
    "results, status, summary",
    [
        ([passed("a", "fine"), passed("b", "fine")], 0, "all 2 checks passed."),
        ([passed("a", "fine"), skipped("b", "n/a")], 0, "the 1 check passed."),
        ([passed("a", "fine", "hmm")], 0, "the 1 check passed; 1 warning: a."),
        ([passed("a", "fine"), failed("b", "bad", "fix")], 1, "1 of 2 checks failed: b."),
    ],
    ids=["all-pass", "skip-is-not-a-failure", "warning-is-not-a-failure", "one-fails"],
)
def test_exit_status_and_summary(results, status, summary):
    assert report.exit_status(results) == status
    assert report.summary(results) == summary


def test_json_lists_every_check():
    document = json.loads(report.as_json(RESULTS))
    assert document["ok"] is False
    assert [(c["name"], c["result"], c["ok"]) for c in document["checks"]] == [
        ("catalog", "ok", True),
        ("node group gpu-a100", "fail", False),
        ("node group gpu-v100", "warn", True),
        ("GPUs gpu-a100", "skip", True),
    ]
    assert document["checks"][1]["fix"] == FIX

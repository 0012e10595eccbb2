"""A doctor check's answer, and the runner that gives every check one timeout.

A check is a plain async function with its inputs bound (`Check.run`), returning one `Result`. The
runner runs them all at once, so the doctor takes about as long as its slowest check, and turns a
check that hangs or breaks into a failed result naming it: one stuck registry never hides the rest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

log = logging.getLogger(__name__)

# A result's status word, as the table and the JSON show it.
OK, WARN, FAIL, SKIP = "ok", "warn", "FAIL", "skip"


@dataclass(frozen=True)
class Result:
    """What a check found. `fix` says what to do; on a passing result it makes a warning (works, but
    not as the operator probably meant). `skipped`: the check does not apply, or could not run."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    skipped: bool = False

    @property
    def status(self) -> str:
        if self.skipped:
            return SKIP
        if not self.ok:
            return FAIL
        return WARN if self.fix else OK


def passed(name: str, detail: str, warning: str = "") -> Result:
    return Result(name, True, detail, warning)


def failed(name: str, detail: str, fix: str) -> Result:
    return Result(name, False, detail, fix)


def skipped(name: str, detail: str) -> Result:
    return Result(name, True, detail, skipped=True)


@dataclass(frozen=True)
class Check:
    """One check to run: `run()` gives its result; `fix` is what to do when it gives none in time."""

    name: str
    run: Callable[[], Awaitable[Result]]
    fix: str


async def run_checks(checks: Iterable[Check], *, per_check: float) -> list[Result]:
    """Every check's result, in the order given; each check may take at most `per_check` seconds."""
    return list(await asyncio.gather(*(run_one(check, per_check=per_check) for check in checks)))


async def run_one(check: Check, *, per_check: float) -> Result:
    deadline = asyncio.timeout(per_check)
    try:
        async with deadline:
            return await check.run()
    except TimeoutError as e:
        if deadline.expired():
            return failed(check.name, f"no answer within {per_check:g} s", check.fix)
        return failed(check.name, f"timed out: {e}", check.fix)  # a deadline of the check's own
    except Exception as e:  # a check's own bug or an answer it did not expect: still one row, named
        log.debug("doctor check %s failed", check.name, exc_info=True)
        return failed(check.name, f"the check broke: {type(e).__name__}: {e}", check.fix)

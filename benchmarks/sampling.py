"""py-spy samples of a hub, for diagnoses (not results of `make bench`: py-spy is no dependency,
`pip install --target DIR py-spy`).

`record --nonblocking` reads the hub's memory without pausing it, so the hub's own CPU figures are
not changed by the sampling. py-spy counts a thread waiting in `select` as busy: `busy` drops those
stacks (the event loop with nothing to do), so that what is left is close to the hub's CPU.
"""

from __future__ import annotations

import collections
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

IDLE_LEAVES = ("EpollSelector.select", "select (selectors.py", "Condition.wait", "_worker (concurrent")


def collapsed(raw: str) -> collections.Counter:
    """py-spy's raw output (one `frame;frame;... count` line per stack) as a Counter of stacks."""
    stacks: collections.Counter = collections.Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[stack] += int(count)
    return stacks


def busy(stacks: collections.Counter) -> collections.Counter:
    """The stacks of a thread at work: not waiting in the event loop's select or for a lock."""
    return collections.Counter(
        {s: n for s, n in stacks.items() if not s.rsplit(";", 1)[-1].startswith(IDLE_LEAVES)}
    )


def inclusive(stacks: collections.Counter) -> collections.Counter:
    """Samples per function, counting each function once per stack it is in."""
    out: collections.Counter = collections.Counter()
    for stack, count in stacks.items():
        for frame in set(stack.split(";")):
            out[frame] += count
    return out


def where_it_goes(name: str, raw: str, rate: int, top: int = 30) -> list[str]:
    """py-spy's raw (collapsed) stacks: samples per function, inclusive and self, in CPU seconds."""
    stacks = collapsed(raw)
    own: collections.Counter = collections.Counter()
    for stack, count in stacks.items():
        own[stack.rsplit(";", 1)[-1]] += count
    total = sum(stacks.values())
    lines = ["", f"== {name}: {total} samples = {total / rate:.2f} CPU s (at {rate} Hz)"]
    for title, counter in (("inclusive", inclusive(stacks)), ("self", own)):
        lines.append(f"-- {title}: samples, CPU s, share, function")
        for frame, count in counter.most_common(top):
            lines.append(f"{count:7d} {count / rate:7.2f} {count / max(total, 1):6.1%}  {frame}")
    return lines


def side_by_side(
    ours: collections.Counter, anchor: collections.Counter, per: tuple[int, int], rate: int, top: int = 40
) -> list[str]:
    """The functions whose busy samples differ most between two hubs, in ms per unit of `per`
    (ours, anchor) — e.g. per spawn: where one hub's extra CPU goes."""
    mine, theirs = inclusive(busy(ours)), inclusive(busy(anchor))

    def ms(count: int, units: int) -> float:
        return 1000 * count / rate / max(units, 1)

    rows = sorted(set(mine) | set(theirs), key=lambda f: -abs(ms(mine[f], per[0]) - ms(theirs[f], per[1])))
    total_ours, total_anchor = sum(busy(ours).values()), sum(busy(anchor).values())
    lines = [
        f"busy samples: ours {total_ours} = {ms(total_ours, per[0]):.2f} ms per unit, "
        f"anchor {total_anchor} = {ms(total_anchor, per[1]):.2f} ms per unit",
        "-- ms per unit: ours, anchor, difference, function (largest differences first)",
    ]
    for frame in rows[:top]:
        a, b = ms(mine[frame], per[0]), ms(theirs[frame], per[1])
        lines.append(f"{a:7.2f} {b:7.2f} {a - b:+7.2f}  {frame}")
    return lines


class BurstSampler:
    """Samples a hub process during chosen spans (`with sampler.span(name, pid): ...`) and adds
    each span's stacks to that name's Counter."""

    def __init__(self, py_spy: str, rate: int, directory: Path):
        self.py_spy, self.rate, self.directory = py_spy, rate, directory
        self.stacks: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self._spans = 0

    @contextmanager
    def span(self, name: str, pid: int):
        self._spans += 1
        out = self.directory / f"{name}.{self._spans}.raw"
        spy = subprocess.Popen(
            [self.py_spy, "record", "--pid", str(pid), "--nonblocking", "--rate", str(self.rate)]
            + ["--format", "raw", "--function", "--output", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)  # attached before the span begins (its first samples are the idle loop's)
        try:
            yield
        finally:
            spy.send_signal(signal.SIGINT)  # py-spy writes its output when interrupted
            spy.wait(timeout=60)
            if out.exists():
                self.stacks[name].update(collapsed(out.read_text()))

"""Reading py-spy's samples of the hubs (benchmarks/sampling.py)."""

from __future__ import annotations

import collections

import pytest

from benchmarks.sampling import busy, collapsed, inclusive, side_by_side

pytestmark = pytest.mark.unit

LOOP = "run_forever (asyncio/base_events.py:593);_run_once (asyncio/base_events.py:1845)"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a;b 3\na;b 2\na;c 1\n", {"a;b": 5, "a;c": 1}),
        ("a (x.py:1);b (y.py:2) 4\n", {"a (x.py:1);b (y.py:2)": 4}),
        ("garbage\n\nnot a count x\n", {}),
    ],
    ids=["same-stack-added", "frames-with-spaces", "malformed-lines-skipped"],
)
def test_collapsed_counts_each_stack(raw, expected):
    assert collapsed(raw) == expected


@pytest.mark.parametrize(
    ("leaf", "kept"),
    [
        ("EpollSelector.select (selectors.py:451)", False),
        ("Condition.wait (threading.py:320)", False),
        ("KubeSpawner.get_pod_manifest (kubespawner/spawner.py:2000)", True),
        ("SSLObject.do_handshake (ssl.py:979)", True),
    ],
    ids=["event-loop-select", "thread-waiting", "spawner-work", "tls-handshake"],
)
def test_busy_drops_waiting_stacks(leaf, kept):
    stacks = collections.Counter({f"{LOOP};{leaf}": 7})
    assert (sum(busy(stacks).values()) == 7) is kept


def test_inclusive_counts_a_function_once_per_stack():
    stacks = collections.Counter({"a;b;a": 2, "a;c": 3})
    assert inclusive(stacks) == {"a": 5, "b": 2, "c": 3}


def test_side_by_side_orders_by_difference_per_unit():
    # 100 Hz: 10 samples = 0.1 s; per 10 spawns = 10 ms each.
    ours = collections.Counter({"loop;manifest": 10, "loop;watch": 4, "loop;EpollSelector.select": 500})
    anchor = collections.Counter({"loop;manifest": 5, "loop;watch": 4})
    lines = side_by_side(ours, anchor, (10, 10), rate=100)
    assert lines[0].startswith("busy samples: ours 14 = 14.00 ms per unit, anchor 9 = 9.00 ms")
    rows = [line.split() for line in lines[2:]]
    assert {rows[0][-1], rows[1][-1]} == {"loop", "manifest"}  # the largest differences first
    by_name = {row[-1]: row[:3] for row in rows}
    assert by_name["manifest"] == ["10.00", "5.00", "+5.00"]
    assert by_name["watch"] == ["4.00", "4.00", "+0.00"]
    assert "EpollSelector.select" not in by_name  # idle, not counted

"""cern_spawner.bounded: which entries a bounded cache keeps, on a fake clock."""

from __future__ import annotations

import pytest

from cern_spawner.bounded import Bounded

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# Each step: ("put", key, value) | ("put_ttl", key, value, ttl) | ("get", key, expected) | ("tick", seconds)
CASES = {
    "keeps-what-fits": (
        3,
        None,
        [("put", "a", 1), ("put", "b", 2), ("get", "a", 1), ("get", "b", 2)],
        ["a", "b"],
    ),
    "drops-the-least-recently-put": (
        2,
        None,
        [("put", "a", 1), ("put", "b", 2), ("put", "c", 3), ("get", "a", None)],
        ["b", "c"],
    ),
    "a-read-keeps-an-entry": (
        2,
        None,
        [("put", "a", 1), ("put", "b", 2), ("get", "a", 1), ("put", "c", 3), ("get", "b", None)],
        ["a", "c"],
    ),
    "a-put-replaces-and-refreshes": (
        2,
        None,
        [("put", "a", 1), ("put", "b", 2), ("put", "a", 9), ("put", "c", 3), ("get", "a", 9)],
        ["c", "a"],
    ),
    "expires-after-its-ttl": (
        4,
        5.0,
        [("put", "a", 1), ("tick", 4.9), ("get", "a", 1), ("tick", 0.1), ("get", "a", None)],
        [],
    ),
    "a-read-does-not-extend-the-ttl": (
        4,
        5.0,
        [("put", "a", 1), ("tick", 3), ("get", "a", 1), ("tick", 3), ("get", "a", None)],
        [],
    ),
    "a-per-entry-ttl-over-the-caches": (
        4,
        5.0,
        [
            ("put_ttl", "t", "token", 60),
            ("put", "a", 1),
            ("tick", 30),
            ("get", "t", "token"),
            ("get", "a", None),
        ],
        ["t"],
    ),
    "a-per-entry-none-never-expires": (
        4,
        5.0,
        [("put_ttl", "k", 1, None), ("tick", 10**6), ("get", "k", 1)],
        ["k"],
    ),
    "no-ttl-never-expires": (1, None, [("put", "a", 1), ("tick", 10**6), ("get", "a", 1)], ["a"]),
    "falsy-values-are-values": (2, None, [("put", "a", 0), ("put", "b", None), ("get", "a", 0)], ["b", "a"]),
}


@pytest.mark.parametrize(("max_entries", "ttl", "steps", "kept"), CASES.values(), ids=CASES.keys())
def test_what_a_bounded_cache_keeps(max_entries, ttl, steps, kept):
    clock = Clock()
    cache = Bounded(max_entries, ttl, clock=clock)
    for step in steps:
        match step:
            case ("put", key, value):
                assert cache.put(key, value) == value
            case ("put_ttl", key, value, seconds):
                cache.put(key, value, ttl=seconds)
            case ("get", key, expected):
                assert cache.get(key) == expected, step
            case ("tick", seconds):
                clock.now += seconds
    assert list(cache._entries) == kept
    assert len(cache) == len(kept) <= max_entries


@pytest.mark.parametrize(
    ("ttl", "tick", "makes"),
    [(None, 0, 1), (None, 10**6, 1), (5.0, 1, 1), (5.0, 5, 2)],
    ids=["kept", "kept-forever", "within-ttl", "remade-after-ttl"],
)
def test_get_or_make_calls_make_only_when_nothing_is_kept(ttl, tick, makes):
    clock, made = Clock(), []
    cache = Bounded(8, ttl, clock=clock)

    def make():
        made.append(1)
        return f"value {len(made)}"

    assert cache.get_or_make("k", make) == "value 1"
    clock.now += tick
    assert cache.get_or_make("k", make) == f"value {makes}"
    assert len(made) == makes


def test_get_or_make_keeps_a_none_it_made():
    cache, made = Bounded(2), []
    for _ in range(3):
        assert cache.get_or_make("k", lambda: made.append(1)) is None
    assert made == [1]


def test_clear_empties():
    cache = Bounded(2)
    cache.put("a", 1)
    cache.clear()
    assert (len(cache), cache.get("a", "gone")) == (0, "gone")


@pytest.mark.parametrize("max_entries", [0, -1], ids=["zero", "negative"])
def test_a_cache_holds_at_least_one_entry(max_entries):
    with pytest.raises(ValueError, match=rf"Bounded.max_entries must be at least 1, not {max_entries}"):
        Bounded(max_entries)

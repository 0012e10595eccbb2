"""The interval beside each hub-cost ratio (benchmarks/stats.py)."""

from __future__ import annotations

import pytest

from benchmarks.stats import paired_bootstrap_interval, ratio_of_medians

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("ours", "theirs", "expected"),
    [
        ([2.0, 2.0, 2.0], [1.0, 1.0, 1.0], (2.0, 2.0)),  # no spread: the interval is the ratio
        ([1.1, 1.1, 1.1, 1.1], [1.0, 1.0, 1.0, 1.0], (1.1, 1.1)),
    ],
    ids=["constant-double", "constant-ten-percent"],
)
def test_rounds_without_spread_give_the_ratio_itself(ours, theirs, expected):
    assert paired_bootstrap_interval(ours, theirs) == pytest.approx(expected)


def test_the_interval_holds_the_ratio_and_widens_with_spread():
    theirs = [1.0] * 8
    narrow = paired_bootstrap_interval([1.02, 1.03, 1.01, 1.02, 1.03, 1.01, 1.02, 1.02], theirs)
    wide = paired_bootstrap_interval([0.9, 1.2, 0.95, 1.15, 0.9, 1.2, 1.0, 1.05], theirs)
    assert narrow[0] <= 1.02 <= narrow[1]
    assert wide[0] <= 1.025 <= wide[1]  # the wide rounds' median ratio
    assert wide[1] - wide[0] > narrow[1] - narrow[0]


def test_the_same_samples_always_give_the_same_interval():
    ours, theirs = [1.0, 1.1, 0.9, 1.2], [1.0, 0.95, 1.05, 1.0]
    assert paired_bootstrap_interval(ours, theirs) == paired_bootstrap_interval(ours, theirs)


@pytest.mark.parametrize(("ours", "theirs"), [([1.0], [1.0, 2.0]), ([], [])], ids=["unpaired", "empty"])
def test_unpaired_samples_are_refused(ours, theirs):
    with pytest.raises(ValueError, match="paired samples needed"):
        paired_bootstrap_interval(ours, theirs)


def test_ratio_of_medians():
    assert ratio_of_medians([3.0, 1.0, 2.0], [1.0, 1.0, 4.0]) == 2.0

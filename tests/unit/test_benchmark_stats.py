"""The interval beside each hub-cost ratio (benchmarks/stats.py)."""

from __future__ import annotations

import pytest

from benchmarks import report
from benchmarks.stats import paired_bootstrap_interval, paired_ratio, ratio_of_medians

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


def test_under_a_shared_drift_one_noisy_round_moves_the_ratio_of_medians_not_the_paired_ratio():
    # Both hubs cost more each round (as users accumulate); equal but for one noisy round of ours,
    # the middle one, which the pooled medians both land on.
    theirs = [10.0, 20.0, 30.0, 40.0, 50.0]
    ours = [10.0, 20.0, 33.0, 40.0, 50.0]
    assert ratio_of_medians(ours, theirs) == pytest.approx(1.1)
    assert paired_ratio(ours, theirs) == pytest.approx(1.0)
    # Without the drift the same noise moves neither.
    assert ratio_of_medians([30.0, 30.0, 33.0, 30.0, 30.0], [30.0] * 5) == pytest.approx(1.0)


def entry(ratios):
    return {
        "CERNSpawner": {"samples": [r * 0.03 for r in ratios]},
        "KubeSpawner": {"samples": [0.03] * len(ratios)},
    }


@pytest.mark.parametrize(
    ("ratios", "status"),
    [
        ([1.01, 1.02, 1.03, 1.02, 1.01, 1.02], "**met**"),
        ([1.10, 1.12, 1.09, 1.11, 1.10, 1.12], "**not met**"),
        ([0.95, 1.15, 0.97, 1.12, 1.0, 1.1], "**undecided**: the interval spans 1.05"),
    ],
    ids=["interval-within", "interval-over", "interval-spans-the-target"],
)
def test_a_cost_target_is_met_only_when_its_whole_interval_is(ratios, status):
    assert report._cost_status(entry(ratios)) == status


def _round(index: int, kinds: tuple[str, ...], ours: float, theirs: float) -> dict:
    entry: dict = {"order": ["CERNSpawner", "KubeSpawner"]}
    for kind in kinds:
        for name, cost in (("CERNSpawner", ours), ("KubeSpawner", theirs)):
            entry[f"{kind} {name}"] = {"hub_cpu_s_per_spawn": cost, "loadavg_1_5_15": [1.0, 1.0, 1.0]}
    return entry


def test_gpu_rounds_time_the_gpu_profile_in_the_first_rounds_only_and_each_kind_counts_its_own():
    from types import SimpleNamespace

    from benchmarks import hub_cost

    args = SimpleNamespace(kinds="shared,gpu", rounds=5, gpu_rounds=2, servers=0, spawns=40)
    assert hub_cost.gpu_rounds(args) == 2
    assert hub_cost.gpu_rounds(SimpleNamespace(rounds=5, gpu_rounds=None)) == 5
    assert hub_cost.gpu_rounds(SimpleNamespace(rounds=3, gpu_rounds=9)) == 3
    rounds = [
        _round(i, ("shared", "gpu") if i < 2 else ("shared",), 0.03, 0.03 if i < 2 else 0.02)
        for i in range(5)
    ]
    summary = hub_cost.summary({"idle": [], "spawn_rounds": rounds, "at_rest": {}}, args, [])
    assert summary["shared_hub_cpu_s_per_spawn"]["ratio_per_round"] == [1.0, 1.0, 1.5, 1.5, 1.5]
    assert summary["gpu_hub_cpu_s_per_spawn"]["ratio_per_round"] == [1.0, 1.0]
    data = {
        "summary": summary,
        "spawn_rounds": rounds,
        "parameters": {**vars(args), "anchor_nodes": "before", "window": 60, "idle_rounds": 0},
        "machine": {"cpus": 2},
    }
    text = "\n".join(report.hub_cost(data))
    assert "median of 5 rounds (2 of them with the GPU profile)" in text, text
    assert "over 2 rounds" in text and "over 5 rounds" in text, text

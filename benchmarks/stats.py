"""The ratio of two hubs' costs over paired rounds, and how sure it is.

A round times both hubs back to back (hub_cost.py), so its pair shares the machine's state and the
hubs' own (how many users they hold, the sandbox's load): the ratio is the median of the rounds'
own ratios, and its interval a paired bootstrap — whole rounds drawn with replacement, the median
recomputed each time. Seeded: the same results file always gives the same interval.
"""

from __future__ import annotations

import random
import statistics


def _round_ratios(ours: list[float], theirs: list[float]) -> list[float]:
    if len(ours) != len(theirs) or not ours:
        raise ValueError(f"paired samples needed, got {len(ours)} and {len(theirs)}")
    return [o / t for o, t in zip(ours, theirs, strict=True)]


def paired_ratio(ours: list[float], theirs: list[float]) -> float:
    """The median of the rounds' ratios (ours[i] / theirs[i])."""
    return statistics.median(_round_ratios(ours, theirs))


def ratio_of_medians(ours: list[float], theirs: list[float]) -> float:
    """Each hub's median first: moves with anything that drifts across rounds on both sides."""
    return statistics.median(ours) / statistics.median(theirs)


def paired_bootstrap_interval(
    ours: list[float], theirs: list[float], confidence: float = 0.9, draws: int = 4000, seed: int = 0
) -> tuple[float, float]:
    """The central `confidence` interval of paired_ratio over rounds drawn with replacement."""
    ratios_by_round = _round_ratios(ours, theirs)
    rng = random.Random(seed)
    medians = sorted(
        statistics.median(rng.choices(ratios_by_round, k=len(ratios_by_round))) for _ in range(draws)
    )
    tail = (1 - confidence) / 2
    return medians[int(tail * (draws - 1))], medians[round((1 - tail) * (draws - 1))]

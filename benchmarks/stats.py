"""How sure a ratio of two hubs' medians is: a paired bootstrap over the rounds.

A round times both hubs back to back (hub_cost.py), so a round's pair shares the machine's state;
the bootstrap draws whole rounds with replacement and recomputes the ratio of medians each time.
Seeded: the same results file always gives the same interval.
"""

from __future__ import annotations

import random
import statistics


def ratio_of_medians(ours: list[float], theirs: list[float]) -> float:
    return statistics.median(ours) / statistics.median(theirs)


def paired_bootstrap_interval(
    ours: list[float], theirs: list[float], confidence: float = 0.9, draws: int = 4000, seed: int = 0
) -> tuple[float, float]:
    """The central `confidence` interval of ratio_of_medians over rounds drawn with replacement."""
    if len(ours) != len(theirs) or not ours:
        raise ValueError(f"paired samples needed, got {len(ours)} and {len(theirs)}")
    rng = random.Random(seed)
    rounds = range(len(ours))
    ratios = sorted(
        ratio_of_medians([ours[i] for i in picks], [theirs[i] for i in picks])
        for picks in (rng.choices(rounds, k=len(ours)) for _ in range(draws))
    )
    tail = (1 - confidence) / 2
    return ratios[int(tail * (draws - 1))], ratios[round((1 - tail) * (draws - 1))]

"""Is a difference between two arms evidence? Compare their scores over seeds.

One seed can't separate two arms: retrain from another seed and the order may flip. A gap counts only
if it is larger than the spread over seeds (the widest max - min of either arm) and every seed of the
better arm beats every seed of the other.

    c = compare_seeds({"K = 13": [0.81, 0.80], "K = 3": [0.61, 0.57]})
    c.robust, c.gap, c.spread       # True, 0.215, 0.04
    print(c.sentence())             # the verdict, computed from the numbers
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np


@dataclass(frozen=True)
class SeedComparison:
    a: str                  # the arm expected to win (the first one given)
    b: str
    scores_a: tuple[float, ...]
    scores_b: tuple[float, ...]
    higher_is_better: bool = True

    @property
    def mean_a(self) -> float:
        return float(np.mean(self.scores_a))

    @property
    def mean_b(self) -> float:
        return float(np.mean(self.scores_b))

    @property
    def gap(self) -> float:
        """a's mean minus b's, signed so that positive means a is better."""
        return (self.mean_a - self.mean_b) * (1 if self.higher_is_better else -1)

    @property
    def spread(self) -> float:
        """The widest max - min over seeds of either arm (nan with one seed: no spread measured)."""
        if min(len(self.scores_a), len(self.scores_b)) < 2:
            return float("nan")
        return float(max(np.ptp(self.scores_a), np.ptp(self.scores_b)))

    @property
    def robust(self) -> bool:
        """a beats b beyond the seed spread, and every seed of a beats every seed of b."""
        if np.isnan(self.spread):
            return False
        worst_a, best_b = ((min(self.scores_a), max(self.scores_b)) if self.higher_is_better
                           else (-max(self.scores_a), -min(self.scores_b)))
        return bool(self.gap > self.spread and worst_a > best_b)

    @property
    def verdict(self) -> str:
        """A few words: which arm, and whether the seeds back it."""
        if self.robust:
            return f"{self.a} better than {self.b}, beyond the seed spread"
        winner, loser = (self.a, self.b) if self.gap > 0 else (self.b, self.a)
        if self.gap == 0:
            return f"{self.a} and {self.b} tie"
        if np.isnan(self.spread):
            return f"{winner} ahead of {loser} in one seed, which is no evidence"
        return f"{winner} ahead of {loser}, within the seed spread: no conclusion"

    def sentence(self, percent: bool = True, metric: str = "test accuracy") -> str:
        """The comparison in one sentence with its numbers (as % points if `percent`)."""
        f = (lambda v: f"{100 * v:.1f}%") if percent else (lambda v: f"{v:.4g}")
        d = (lambda v: f"{100 * v:.1f} points") if percent else (lambda v: f"{v:.4g}")
        n = min(len(self.scores_a), len(self.scores_b))
        spread = "no spread measured" if np.isnan(self.spread) else f"seed spread {d(self.spread)}"
        return (f"{metric} {self.a} {f(self.mean_a)} vs {self.b} {f(self.mean_b)} "
                f"(mean of {n} seed{'s' if n > 1 else ''}; gap {d(self.gap)}, {spread}): {self.verdict}.")


def compare_seeds(scores: Mapping[str, Sequence[float]], higher_is_better: bool = True) -> SeedComparison:
    """Compare the first arm of `scores` (name -> one score per seed) with the second."""
    if len(scores) != 2:
        raise ValueError(f"scores must name exactly two arms, got {list(scores)}")
    (a, sa), (b, sb) = scores.items()
    sa, sb = tuple(float(v) for v in sa), tuple(float(v) for v in sb)
    if not sa or not sb:
        raise ValueError(f"every arm needs at least one score, got {a}: {sa}, {b}: {sb}")
    if not all(np.isfinite(sa + sb)):
        raise ValueError(f"scores must be finite numbers, got {a}: {sa}, {b}: {sb}")
    return SeedComparison(a, b, sa, sb, bool(higher_is_better))

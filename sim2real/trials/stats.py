"""Statistics of a success-rate table: Wilson score intervals and the exact paired test.

With 10 trials per task the normal ("Wald") interval is useless (it collapses to a point at 0/10
and 10/10), so every rate carries a Wilson score interval. Two checkpoints evaluated on the same
(task, trial) pairs are compared with the exact McNemar test: only discordant pairs (one model
succeeds, the other fails) carry information, and under the null hypothesis each discordant pair
goes either way with probability 1/2, so the two-sided p-value is an exact binomial tail.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Iterable

from sim2real.errors import InputError


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple:
    """Wilson score interval of a binomial proportion.

    Args:
        successes: k >= 0.
        trials: n >= k; n = 0 gives (0.0, 1.0) (no information).
        confidence: two-sided level, e.g. 0.95.

    Returns:
        (low, high) in [0, 1]. Example: 7/10 at 95% -> (0.3968, 0.8922).
    """
    k, n = int(successes), int(trials)
    if n < 0 or k < 0 or k > n:
        raise InputError(f"need 0 <= successes <= trials, got {k}/{n}")
    if not 0.0 < confidence < 1.0:
        raise InputError(f"confidence must be in (0, 1), got {confidence}")
    if n == 0:
        return (0.0, 1.0)
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # at k = 0 or k = n the bound is exactly 0 or 1; avoid -1e-17 from rounding
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return (low, high)


def binomial_two_sided_half(k: int, n: int) -> float:
    """Exact two-sided p-value of k successes in n trials with p = 1/2 (symmetric: 2 x smaller tail)."""
    if n == 0:
        return 1.0
    k = min(int(k), n - int(k))
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0 ** n
    return min(1.0, 2.0 * tail)


@dataclass(frozen=True)
class PairedResult:
    """Exact McNemar comparison of models A and B on matched trials.

    Attributes:
        n_pairs: matched trials.
        both: both succeeded; neither: both failed.
        a_only: A succeeded, B failed (discordant); b_only: B succeeded, A failed (discordant).
        p_value: exact two-sided p-value (1.0 when there is no discordant pair).
    """

    n_pairs: int
    both: int
    neither: int
    a_only: int
    b_only: int
    p_value: float

    @property
    def discordant(self) -> int:
        return self.a_only + self.b_only

    @property
    def difference(self) -> float:
        """Success rate of A minus that of B over the matched trials (0 when there are none)."""
        return (self.a_only - self.b_only) / self.n_pairs if self.n_pairs else 0.0


def paired_exact_test(pairs: Iterable) -> PairedResult:
    """Exact McNemar test on (success_a, success_b) booleans of matched trials."""
    both = neither = a_only = b_only = 0
    for a, b in pairs:
        a, b = bool(a), bool(b)
        both += a and b
        neither += (not a) and (not b)
        a_only += a and not b
        b_only += b and not a
    n = both + neither + a_only + b_only
    return PairedResult(n, both, neither, a_only, b_only, binomial_two_sided_half(a_only, a_only + b_only))

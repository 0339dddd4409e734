"""LoadGen's early-stopping criterion: how many queries a run needs before its latency percentile is decided,
and a conservative estimate of that percentile from the queries it has.

Each query is a coin flip: over the bound with probability ``1 - p`` if the true ``p``-th percentile is exactly
the bound. A run of ``n`` queries with ``t`` over the bound shows the percentile is within the bound, at
confidence ``c``, when so few overs would be unlikely were the percentile any worse::

    P[Binomial(n, 1 - p + d) <= t] < 1 - c          (d: tolerance, LoadGen uses 0; c: 0.99)

``min_passing(t)`` is the smallest number ``h`` of queries under the bound that satisfies it with ``n = h + t``
(the criterion only gets easier as ``h`` grows). A server run is decided when ``n >= min_passing(t) + t``.

The conservative percentile estimate is LoadGen's single-stream one: the largest ``t >= 1`` with
``n >= min_passing(t) + t``; the estimate is the ``t``-th highest latency (the ``t - 1`` above it are discarded).
With confidence ``c`` the true percentile is not above it. Fewer than ``min_passing(1) + 1`` queries give no
estimate (None).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

#: LoadGen's early-stopping confidence and tolerance.
CONFIDENCE = 0.99
TOLERANCE = 0.0


def binomial_cdf(k: int, n: int, q: float) -> float:
    """P[X <= k] for X ~ Binomial(n, q), summed in log space (exact up to rounding; no overflow for large n)."""
    if k < 0:
        return 0.0
    if k >= n or q <= 0.0:
        return 1.0
    if q >= 1.0:
        return 0.0
    x = np.arange(k + 1, dtype=np.float64)
    # log C(n, x) by the recurrence C(n, x+1) = C(n, x) (n - x) / (x + 1)
    log_binom = np.concatenate(([0.0], np.cumsum(np.log((n - x[:-1]) / (x[:-1] + 1.0)))))
    log_pmf = log_binom + x * math.log(q) + (n - x) * math.log1p(-q)
    top = float(log_pmf.max())
    return min(1.0, math.exp(top) * float(np.exp(log_pmf - top).sum()))


def passes(h: int, t: int, percentile: float, confidence: float = CONFIDENCE, tolerance: float = TOLERANCE) -> bool:
    """h queries within the bound and t over it decide the ``percentile`` (a fraction, e.g. 0.99) at ``confidence``."""
    return binomial_cdf(t, h + t, 1.0 - percentile + tolerance) < 1.0 - confidence


def too_many_over(over: int, n: int, percentile: float, significance: float = 0.05) -> bool:
    """``over`` of ``n`` latencies above the bound are too many to come from a ``percentile`` (a fraction) that
    sits at the bound: P[X >= over] < ``significance`` for X ~ Binomial(n, 1 - percentile). A short run's p99 is
    its largest latency or close to it, so one stall puts it over the bound; this count does not move for one."""
    if over <= 0:
        return False
    if over > n:
        raise ValueError(f"{over} latencies over the bound out of {n}")
    return 1.0 - binomial_cdf(over - 1, n, 1.0 - percentile) < significance


def min_passing(t: int, percentile: float, confidence: float = CONFIDENCE, tolerance: float = TOLERANCE) -> int:
    """The fewest queries within the bound that, beside ``t`` over it, decide the percentile."""
    _check(percentile, confidence, tolerance)
    if t < 0:
        raise ValueError(f"the count of queries over the bound must be >= 0, got {t}")
    low, high = 1, 1
    while not passes(high, t, percentile, confidence, tolerance):  # the criterion only gets easier with h
        low, high = high + 1, high * 2
    while low < high:
        mid = (low + high) // 2
        if passes(mid, t, percentile, confidence, tolerance):
            high = mid
        else:
            low = mid + 1
    return low


def _check(percentile: float, confidence: float, tolerance: float) -> None:
    if not (0.0 < percentile < 1.0):
        raise ValueError(f"the percentile must be a fraction in (0, 1), got {percentile}")
    if not (0.0 < confidence < 1.0):
        raise ValueError(f"the confidence must be in (0, 1), got {confidence}")
    if not (0.0 <= tolerance < percentile):
        raise ValueError(f"the tolerance must be in [0, percentile), got {tolerance}")


@dataclass(frozen=True)
class EarlyStopping:
    """The early-stopping view of one server run."""

    percentile: float            # the fraction the bound applies to (0.99)
    confidence: float
    queries: int                 # n: completed queries
    over_bound: int              # t: queries whose latency exceeds the bound
    needed_queries: int          # min_passing(t) + t: the run is decided with this many
    decided: bool                # queries >= needed_queries: the bound holds at this confidence
    more_queries: int            # how many more, all within the bound, would decide it (0 when decided)
    estimate_ms: float | None    # conservative percentile estimate (None: too few queries)
    discarded: int               # highest latencies set aside by the estimate (t - 1)
    min_queries_for_estimate: int  # min_passing(1) + 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        """The report line."""
        pct = f"p{self.percentile * 100:g}"
        if self.estimate_ms is None:
            est = (f"no {pct} estimate from {self.queries} queries (needs >= {self.min_queries_for_estimate})")
        else:
            est = (f"{pct} estimate {self.estimate_ms:.3f} ms from {self.queries} queries (the {self.discarded} "
                   f"highest set aside)")
        if self.decided:
            verdict = (f"{self.over_bound} over the bound: the bound holds at {self.confidence:.0%} confidence "
                       f"from {self.needed_queries} queries")
        else:
            verdict = (f"{self.over_bound} over the bound: undecided, {self.more_queries} more queries within the "
                       "bound would decide it")
        return f"early stopping: {est}; {verdict}"


def estimate_index(n: int, percentile: float, confidence: float = CONFIDENCE,
                   tolerance: float = TOLERANCE) -> int | None:
    """The largest t >= 1 with n >= min_passing(t) + t (the estimate is the t-th highest of n), or None."""
    def fits(t: int) -> bool:
        return n >= min_passing(t, percentile, confidence, tolerance) + t

    if n < 1 or not fits(1):
        return None
    low, high = 1, n  # fits(low); min_passing(t) + t grows with t, so fits is monotone
    while low < high:
        mid = (low + high + 1) // 2
        if fits(mid):
            low = mid
        else:
            high = mid - 1
    return low


def early_stopping(latencies_ms: Sequence[float], bound_ms: float, percentile: float,
                   confidence: float = CONFIDENCE, tolerance: float = TOLERANCE) -> EarlyStopping:
    """The early-stopping verdict and conservative ``percentile`` estimate of a run's query latencies."""
    _check(percentile, confidence, tolerance)
    values = np.sort(np.asarray(latencies_ms, dtype=np.float64))
    n = int(values.size)
    t = int(np.count_nonzero(values > bound_ms))
    need = min_passing(t, percentile, confidence, tolerance) + t
    idx = estimate_index(n, percentile, confidence, tolerance)
    return EarlyStopping(percentile=percentile, confidence=confidence, queries=n, over_bound=t,
                         needed_queries=need, decided=n >= need, more_queries=max(0, need - n),
                         estimate_ms=None if idx is None else float(values[n - idx]),
                         discarded=0 if idx is None else idx - 1,
                         min_queries_for_estimate=min_passing(1, percentile, confidence, tolerance) + 1)

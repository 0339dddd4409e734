"""Ratio estimates, distribution-free confidence intervals and the slower / faster / no-change verdict.

Why rank methods: on a shared machine a single round can be hit by a neighbour's burst and come out 50%
slow. A mean (or a bootstrap of it) lets that one round move the estimate and widen the interval; the
Hodges-Lehmann estimator and the signed-rank / rank-sum intervals below do not care how far out one
round lies, only on which side. They are also *exact*: when the baseline and the candidate are the same
build and the rounds alternate A B | B A, the two measurements of a round are exchangeable, so the
log-ratio of a round is symmetric about 0 and the signed-rank interval misses 0 with probability at
most ``1 - confidence`` whatever the noise looks like. (R's ``wilcox.test(conf.int=TRUE)`` computes the
same intervals; Google Benchmark's compare.py uses the rank-sum test.)

Every ratio here is *candidate time / baseline time*: above 1 is slower. Estimates are formed on
log-ratios, so "10% slower" and "10% faster" (1/1.1) are equally far from 1.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

SLOWER = "slower"
FASTER = "faster"
NO_CHANGE = "no change"
UNDECIDED = "undecided"  # too few samples for any interval at the confidence level: nothing was tested

# Above this many (pairs / products of sample sizes) the exact null distributions are replaced by their
# normal approximations (with continuity correction); below it they are computed exactly.
_EXACT_SIGNED_RANK_MAX_N = 400
_EXACT_RANK_SUM_MAX_MN = 2500


@dataclass(frozen=True)
class Comparison:
    """One benchmark's comparison: the ratio, its confidence interval and the verdict."""

    ratio: float                 # Hodges-Lehmann estimate of candidate/baseline (time; > 1 = slower)
    ci_low: float                # confidence interval of the ratio (0 / inf when n is too small: UNDECIDED)
    ci_high: float
    confidence: float            # the coverage actually achieved (>= the requested level; rank CIs are discrete)
    n_baseline: int
    n_candidate: int
    paired: bool
    threshold: float
    verdict: str                 # SLOWER, FASTER or NO_CHANGE
    reason: str                  # one line saying why, in words

    def as_dict(self) -> dict:
        """For JSON: an interval bound that does not exist (0 or inf, too few samples) is null, not Infinity."""
        d = asdict(self)
        for key in ("ci_low", "ci_high"):
            if not (0.0 < d[key] < math.inf):
                d[key] = None
        return d


def _signed_rank_cdf(n: int) -> np.ndarray:
    """P(T+ <= t) for t = 0..n(n+1)/2, T+ the Wilcoxon signed-rank statistic of n untied values under H0."""
    size = n * (n + 1) // 2 + 1
    pmf = np.zeros(size)
    pmf[0] = 1.0
    top = 0
    for k in range(1, n + 1):  # each rank k is in T+ with probability 1/2, independently
        shifted = np.zeros(size)
        shifted[k:top + k + 1] = pmf[:top + 1]
        pmf = 0.5 * (pmf + shifted)
        top += k
    return np.cumsum(pmf)


def _rank_sum_cdf(m: int, n: int) -> np.ndarray:
    """P(U <= u) for u = 0..m*n, U the Mann-Whitney statistic of samples of sizes m and n under H0."""
    # P_{i,j}(u) = i/(i+j) * P_{i-1,j}(u - j) + j/(i+j) * P_{i,j-1}(u): the largest value comes from
    # the first sample (then it exceeds all j values of the second) or from the second.
    size = m * n + 1
    row = [np.zeros(size) for _ in range(n + 1)]  # row[j] = P_{i,j} for the current i
    for j in range(n + 1):
        row[j][0] = 1.0  # i = 0: U is 0
    for i in range(1, m + 1):
        new = [np.zeros(size) for _ in range(n + 1)]
        new[0][0] = 1.0  # j = 0: U is 0
        for j in range(1, n + 1):
            a = np.zeros(size)
            a[j:] = row[j][:size - j]
            new[j] = (i * a + j * new[j - 1]) / (i + j)
        row = new
    return np.cumsum(row[n])


def _normal_quantile(p: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(p)


def _order_index(cdf: np.ndarray, alpha: float) -> int:
    """Largest k with P(stat <= k - 1) <= alpha / 2: the CI is [W_(k), W_(N - k + 1)] (1-based). 0 = unreachable."""
    ok = np.nonzero(cdf <= alpha / 2 + 1e-12)[0]
    return int(ok[-1]) + 1 if ok.size else 0


def _interval(sorted_values: np.ndarray, k: int) -> tuple[float, float]:
    if k < 1:
        return -math.inf, math.inf
    n = sorted_values.size
    return float(sorted_values[k - 1]), float(sorted_values[n - k])


def paired_log_interval(log_ratios: Sequence[float], confidence: float) -> tuple[float, float, float, float]:
    """(estimate, low, high, achieved confidence) of the centre of paired log-ratios (signed-rank / HL)."""
    d = np.asarray(log_ratios, dtype=float)
    n = d.size
    if n == 0:
        raise ValueError("no paired rounds to compare")
    i, j = np.triu_indices(n)
    walsh = np.sort((d[i] + d[j]) / 2.0)
    estimate = float(np.median(walsh))
    alpha = 1.0 - confidence
    if n <= _EXACT_SIGNED_RANK_MAX_N:
        cdf = _signed_rank_cdf(n)
        k = _order_index(cdf, alpha)
        achieved = 1.0 - 2.0 * float(cdf[k - 1]) if k >= 1 else 0.0
    else:
        total = n * (n + 1) / 2
        sd = math.sqrt(n * (n + 1) * (2 * n + 1) / 24)
        k = max(0, int(math.floor(total / 2 - _normal_quantile(1 - alpha / 2) * sd - 0.5)) + 1)
        achieved = confidence
    low, high = _interval(walsh, k)
    return estimate, low, high, achieved


def two_sample_log_interval(baseline_logs: Sequence[float], candidate_logs: Sequence[float],
                            confidence: float) -> tuple[float, float, float, float]:
    """(estimate, low, high, achieved confidence) of the shift candidate - baseline (rank-sum / HL)."""
    x = np.asarray(baseline_logs, dtype=float)
    y = np.asarray(candidate_logs, dtype=float)
    m, n = x.size, y.size
    if m == 0 or n == 0:
        raise ValueError(f"need samples on both sides, got {m} baseline and {n} candidate")
    diffs = np.sort((y[None, :] - x[:, None]).ravel())
    estimate = float(np.median(diffs))
    alpha = 1.0 - confidence
    if m * n <= _EXACT_RANK_SUM_MAX_MN:
        cdf = _rank_sum_cdf(m, n)
        k = _order_index(cdf, alpha)
        achieved = 1.0 - 2.0 * float(cdf[k - 1]) if k >= 1 else 0.0
    else:
        sd = math.sqrt(m * n * (m + n + 1) / 12)
        k = max(0, int(math.floor(m * n / 2 - _normal_quantile(1 - alpha / 2) * sd - 0.5)) + 1)
        achieved = confidence
    low, high = _interval(diffs, k)
    return estimate, low, high, achieved


def verdict(ratio: float, low: float, high: float, threshold: float) -> tuple[str, str]:
    """The decision rule, stated once.

    slower  <=> the ratio estimate is >= 1 + threshold AND the whole interval lies above 1;
    faster  <=> the estimate is <= 1 / (1 + threshold) AND the whole interval lies below 1;
    else no change detectable: either the interval lies inside [1/(1+t), 1+t] (no change of that size)
    or it is too wide to tell (more rounds or a quieter machine would);
    undecided when there are too few samples for any interval at the confidence level.
    The first half keeps tiny but real differences from failing CI; the second keeps noise from doing so.
    """
    up, down = 1.0 + threshold, 1.0 / (1.0 + threshold)
    pct = f"{threshold:.0%}"
    if low <= 0.0 and high == math.inf:
        return UNDECIDED, "too few samples to reach the confidence level: no interval, no verdict"
    if ratio >= up and low > 1.0:
        return SLOWER, f"estimate {ratio:.3f} >= {up:.3f} and the interval excludes 1"
    if ratio <= down and high < 1.0:
        return FASTER, f"estimate {ratio:.3f} <= {down:.3f} and the interval excludes 1"
    inside = down <= low and high <= up
    if (low > 1.0 or high < 1.0) and inside:
        return NO_CHANGE, f"a real change smaller than {pct}: interval excludes 1 and lies inside +-{pct}"
    if low > 1.0 or high < 1.0:
        return NO_CHANGE, f"a change, estimate within +-{pct}: interval excludes 1 but reaches beyond +-{pct}"
    if inside:
        return NO_CHANGE, f"interval inside +-{pct}: no change of {pct} or more"
    return NO_CHANGE, f"inconclusive: interval wider than +-{pct} (noise); more rounds would narrow it"


def _comparison(est: float, lo: float, hi: float, achieved: float, n_base: int, n_cand: int, paired: bool,
                threshold: float) -> Comparison:
    ratio, low, high = math.exp(est), _exp(lo), _exp(hi)
    v, why = verdict(ratio, low, high, threshold)
    return Comparison(ratio=ratio, ci_low=low, ci_high=high, confidence=achieved, n_baseline=n_base,
                      n_candidate=n_cand, paired=paired, threshold=threshold, verdict=v, reason=why)


def _exp(x: float) -> float:
    return 0.0 if x == -math.inf else (math.inf if x == math.inf else math.exp(x))


def _check_positive(values: Sequence[float], what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.size and not (np.all(np.isfinite(arr)) and np.all(arr > 0)):
        raise ValueError(f"{what}: every value must be a finite positive time, got {arr.tolist()}")
    return arr


def compare_paired(baseline: Sequence[float], candidate: Sequence[float], threshold: float,
                   confidence: float = 0.95) -> Comparison:
    """Rounds measured back to back (baseline[i] with candidate[i]): the per-round ratio is the unit."""
    base = _check_positive(baseline, "baseline")
    cand = _check_positive(candidate, "candidate")
    if base.size != cand.size:
        raise ValueError(f"paired comparison needs as many baseline as candidate rounds ({base.size} vs {cand.size})")
    return compare_ratios(cand / base, threshold, confidence)


def compare_ratios(round_ratios: Sequence[float], threshold: float, confidence: float = 0.95) -> Comparison:
    """Per-round ratios candidate / baseline, however each round formed its own (see regress)."""
    ratios = _check_positive(round_ratios, "round ratios")
    est, lo, hi, achieved = paired_log_interval(np.log(ratios), confidence)
    return _comparison(est, lo, hi, achieved, ratios.size, ratios.size, True, threshold)


def compare_samples(baseline: Sequence[float], candidate: Sequence[float], threshold: float,
                    confidence: float = 0.95) -> Comparison:
    """Unpaired samples (e.g. two saved runs' per-round values): the shift of the log-values."""
    base = _check_positive(baseline, "baseline")
    cand = _check_positive(candidate, "candidate")
    est, lo, hi, achieved = two_sample_log_interval(np.log(base), np.log(cand), confidence)
    return _comparison(est, lo, hi, achieved, base.size, cand.size, False, threshold)


def min_paired_rounds(confidence: float) -> int:
    """The fewest paired rounds whose signed-rank interval can reach ``confidence`` at all."""
    n = 1
    while 2.0 * 0.5 ** n > 1.0 - confidence:  # the most extreme outcome has probability 2^-n per side
        n += 1
    return n

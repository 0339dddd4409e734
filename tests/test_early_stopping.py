"""LoadGen's early-stopping criterion (pymfn.bench.early_stopping) against the binomial bound it is defined by,
computed independently with scipy, and against the query counts LoadGen documents."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from pymfn.bench import early_stopping as es


@pytest.mark.parametrize("k, n, q", [(0, 10, 0.01), (3, 1024, 0.01), (17, 2000, 0.01), (40, 500, 0.1),
                                     (900, 100000, 0.01), (5, 5, 0.3)])
def test_binomial_cdf_matches_scipy(k, n, q):
    assert es.binomial_cdf(k, n, q) == pytest.approx(float(stats.binom.cdf(k, n, q)), rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("percentile", [0.9, 0.95, 0.99, 0.999])
@pytest.mark.parametrize("t", [0, 1, 2, 5, 20, 100])
def test_min_passing_is_the_smallest_h_of_the_beta_bound(percentile, t):
    # LoadGen's definition: odds(h, t) = BetaRegularized[p - d, h, 1 + t] = P[Binomial(h + t, 1 - p + d) <= t];
    # min_passing is the smallest h with odds < 1 - c.
    h = es.min_passing(t, percentile)
    assert special.betainc(h, t + 1, percentile) < 1 - es.CONFIDENCE
    assert h == 1 or special.betainc(h - 1, t + 1, percentile) >= 1 - es.CONFIDENCE


def test_the_query_counts_loadgen_documents():
    # No query over the bound: h = ceil(log(1 - c) / log(p)), LoadGen's closed-form start of its search.
    assert es.min_passing(0, 0.99) == math.ceil(math.log(0.01) / math.log(0.99)) == 459
    # The fewest queries that give a percentile estimate: 64 for the 90th, 662 for the 99th percentile.
    assert es.min_passing(1, 0.90) + 1 == 64
    assert es.min_passing(1, 0.99) + 1 == 662


def loadgen_estimate_t(n: int, percentile: float) -> int | None:
    """LoadGen's single-stream loop, written out: the first i >= 2 with n < min_passing(i) + i gives t = i - 1."""
    if n < es.min_passing(1, percentile) + 1:
        return None
    t = 1
    for i in range(2, n + 1):
        if n < es.min_passing(i, percentile) + i:
            t = i - 1
            break
    return t


@pytest.mark.parametrize("n", [661, 662, 700, 1024, 2500, 5000])
def test_estimate_is_loadgens_on_synthetic_latencies(n):
    rng = np.random.default_rng(n)
    lat = rng.lognormal(0.0, 0.6, n)
    got = es.early_stopping(lat, bound_ms=10.0, percentile=0.99)
    t = loadgen_estimate_t(n, 0.99)
    assert es.estimate_index(n, 0.99) == t
    if t is None:
        assert got.estimate_ms is None and n < 662
    else:
        assert got.estimate_ms == np.sort(lat)[n - t] and got.discarded == t - 1
        assert got.estimate_ms >= np.percentile(lat, 99)  # conservative: never below the sample percentile


def test_server_decision_counts_queries_over_the_bound():
    bound = 5.0
    under = np.full(1000, 1.0)
    for t in (0, 1, 3, 8, 20):
        lat = np.concatenate([under, np.full(t, 9.0), np.full(2, bound)])  # == bound is within it (LoadGen: >)
        got = es.early_stopping(lat, bound, 0.99)
        need = es.min_passing(t, 0.99) + t
        assert got.over_bound == t and got.needed_queries == need and got.queries == 1002 + t
        assert got.decided == (got.queries >= need)
        assert got.more_queries == max(0, need - got.queries)
    assert es.early_stopping(np.concatenate([under, np.full(3, 9.0)]), bound, 0.99).decided
    undecided = es.early_stopping(np.concatenate([under, np.full(20, 9.0)]), bound, 0.99)
    assert not undecided.decided and "more queries within the bound would decide it" in undecided.line()


def test_estimate_covers_the_true_percentile_at_its_confidence():
    # Exponential latencies: the true p99 is ln(100). The estimate may fall below it in at most ~1% of runs.
    rng = np.random.default_rng(7)
    true_p99 = math.log(100.0)
    misses = sum(es.early_stopping(rng.exponential(1.0, 1000), 1.0, 0.99).estimate_ms < true_p99
                 for _ in range(400))
    assert misses <= 12  # 1% of 400 = 4 expected at most; 12 is beyond 3 sigma of Binomial(400, 0.01)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="percentile must be a fraction"):
        es.min_passing(0, 99.0)
    with pytest.raises(ValueError, match="over the bound must be >= 0"):
        es.min_passing(-1, 0.99)


def test_a_probe_fails_only_on_more_queries_over_the_bound_than_the_percentile_allows():
    from pymfn.bench.early_stopping import too_many_over

    # 60 queries (a 3 s probe at 20 QPS): one or two over the bound are what a true p99 at the bound gives
    assert not too_many_over(0, 60, 0.99)
    assert not too_many_over(1, 60, 0.99) and not too_many_over(2, 60, 0.99)
    assert too_many_over(3, 60, 0.99)  # P[X >= 3] = 2.3 % for Binomial(60, 0.01)
    # 1,000 queries: 1 % over is consistent; 2 % is not
    assert not too_many_over(10, 1000, 0.99)
    assert too_many_over(20, 1000, 0.99)
    # the threshold follows the binomial tail exactly
    from pymfn.bench.early_stopping import binomial_cdf

    for n, k in ((60, 3), (300, 7), (1000, 17)):
        tail = 1.0 - binomial_cdf(k - 1, n, 0.01)
        assert too_many_over(k, n, 0.99) == (tail < 0.05)
    with pytest.raises(ValueError):
        too_many_over(5, 4, 0.99)

"""The M/G/c ceiling (pymfn.bench.queueing) against queueing theory's closed forms."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pymfn.bench.queueing import batched_ceiling, batched_sojourn_percentile_ms, ceiling, sojourn_percentile_ms


def test_mm1_ceiling_matches_the_closed_form():
    """M/M/1: time in system is exponential with rate mu - lambda, so its p99 is ln(100) / (mu - lambda) and the
    highest rate meeting a bound B is mu - ln(100) / B."""
    service = np.random.default_rng(1).exponential(1.0, 50000)  # mean 1 ms: mu = 1000/s
    c = ceiling(service, 1, 10.0)
    assert c.qps == pytest.approx(1000.0 - math.log(100) / 0.010, rel=0.03)
    assert c.utilisation == pytest.approx(c.qps * c.mean_service_ms / 1000.0)


def test_mm1_sojourn_percentile_matches_the_closed_form():
    service = np.random.default_rng(2).exponential(2.0, 50000)  # mu = 500/s
    for qps in (100.0, 250.0, 400.0):
        assert sojourn_percentile_ms(service, 1, qps, 90.0, queries=60000) == \
            pytest.approx(math.log(10) / (500.0 - qps) * 1000.0, rel=0.08)


def test_more_servers_and_a_looser_bound_never_lower_the_ceiling():
    service = np.random.default_rng(3).lognormal(0.0, 0.5, 5000)
    one, two = ceiling(service, 1, 8.0), ceiling(service, 2, 8.0)
    assert two.qps > one.qps and two.qps < 2 * 1000.0 / service.mean()
    assert ceiling(service, 1, 16.0).qps >= one.qps
    assert ceiling(service, 1, 8.0) == one  # a fixed seed: the same samples give the same ceiling


def test_service_beyond_the_bound_leaves_no_rate_and_bad_inputs_are_refused():
    c = ceiling([4.0, 5.0, 9.0], 1, 5.0)
    assert c.qps == 0.0 and c.service_percentile_ms > 5.0
    for bad in ([], [1.0, float("nan")], [-1.0]):
        with pytest.raises(ValueError, match="service times"):
            ceiling(bad, 1, 5.0)
    with pytest.raises(ValueError, match="servers >= 1"):
        ceiling([1.0], 0, 5.0)


def test_batched_ceiling_without_batching_is_the_mm1_closed_form():
    service = np.random.default_rng(4).exponential(1.0, 50000)
    c = batched_ceiling({1: service}, 1, 10.0, max_batch=1, queries=100000)
    assert c.qps == pytest.approx(1000.0 - math.log(100) / 0.010, rel=0.05)
    assert c.utilisation == pytest.approx(c.qps * c.mean_service_ms / 1000.0, rel=0.05)


def test_batching_raises_the_ceiling_as_far_as_the_service_allows():
    """A request of k queries costs 10 + 1 * k ms: batching lifts the 10 ms floor off every query."""
    by_size = {k: [10.0 + k] * 20 for k in range(1, 9)}
    plain = batched_ceiling(by_size, 1, 60.0, max_batch=1)
    assert plain.qps == pytest.approx(ceiling([11.0], 1, 60.0).qps, rel=0.03)
    ceilings = [batched_ceiling(by_size, 1, 60.0, max_batch=m).qps for m in (1, 2, 4, 8)]
    assert ceilings == sorted(ceilings) and ceilings[-1] > 3 * ceilings[0]
    # never above what the largest request could serve back to back
    assert ceilings[-1] < 8 * 1000.0 / 18.0
    # at the ceiling the simulated percentile meets the bound
    table = [np.asarray(by_size[k]) for k in range(1, 9)]
    assert batched_sojourn_percentile_ms(table, 1, ceilings[-1], 99.0) <= 60.0


def test_batched_ceiling_fills_unseen_sizes_from_the_next_larger():
    # only 1- and 8-query requests seen: 2..7 take what 8 took (never less for carrying more)
    c = batched_ceiling({1: [5.0], 8: [20.0]}, 1, 100.0, max_batch=8)
    d = batched_ceiling({1: [5.0], **{k: [20.0] for k in range(2, 9)}}, 1, 100.0, max_batch=8)
    assert c.qps == d.qps and c.service_percentile_ms == d.service_percentile_ms == 5.0
    with pytest.raises(ValueError, match="service times"):
        batched_ceiling({}, 1, 10.0, max_batch=2)
    with pytest.raises(ValueError, match="max_batch"):
        batched_ceiling({1: [1.0]}, 1, 10.0, max_batch=0)

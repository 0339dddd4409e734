"""The M/G/c ceiling (pymfn.bench.queueing) against queueing theory's closed forms."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pymfn.bench.queueing import ceiling, sojourn_percentile_ms


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

"""The highest Poisson arrival rate a latency bound allows, given measured service times (M/G/c).

A server run's queries have measured service times: from reaching the engine to completing (``completed_ms -
issued_ms``). Feeding those times, resampled, to an ideal FCFS queue with ``c`` servers (the engine's request
slots) and Poisson arrivals gives the latency a perfect harness would see at a rate; the **ceiling** is the
highest rate whose latency percentile still meets the bound. A measured peak well below the ceiling computed
from its own service times points at the harness (issue delays); a ceiling well below the offline capacity
points at queueing (short) or at service times longer than back to back (an idle host waking up).

The queue is simulated, not approximated: service-time distributions of real engines are skewed and
multi-modal, and the tail (not the mean) decides a percentile bound. Each estimate uses a fixed seed, so the
same samples give the same ceiling.
"""
from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Ceiling:
    """The highest rate meeting a latency bound in an ideal M/G/c queue with the given service times."""

    qps: float
    servers: int
    bound_ms: float
    percentile: float
    mean_service_ms: float
    #: qps * mean service / servers: how busy the servers are at the ceiling
    utilisation: float
    #: the service-time percentile alone (no queueing): above the bound, no rate meets it
    service_percentile_ms: float

    def to_dict(self) -> dict[str, float | int]:
        return {"qps": self.qps, "servers": self.servers, "bound_ms": self.bound_ms, "percentile": self.percentile,
                "mean_service_ms": self.mean_service_ms, "utilisation": self.utilisation,
                "service_percentile_ms": self.service_percentile_ms}


def sojourn_percentile_ms(service_ms: np.ndarray, servers: int, qps: float, percentile: float, *,
                          queries: int = 20000, seed: int = 0) -> float:
    """The ``percentile`` of time in system (wait + service, ms) of ``queries`` Poisson arrivals at ``qps`` to
    ``servers`` FCFS servers, service times drawn from ``service_ms`` with replacement."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1000.0 / qps, queries))
    services = rng.choice(np.asarray(service_ms, dtype=np.float64), queries)
    if servers == 1:  # Lindley: each query starts when it arrives or when the previous one ends
        done = 0.0
        sojourn = np.empty(queries)
        for i in range(queries):
            start = arrivals[i] if arrivals[i] > done else done
            done = start + services[i]
            sojourn[i] = done - arrivals[i]
    else:
        free = [0.0] * servers  # when each server is next free (a heap)
        sojourn = np.empty(queries)
        for i in range(queries):
            earliest = heapq.heappop(free)
            start = arrivals[i] if arrivals[i] > earliest else earliest
            end = start + services[i]
            heapq.heappush(free, end)
            sojourn[i] = end - arrivals[i]
    return float(np.percentile(sojourn[queries // 10:], percentile))  # the first tenth: the queue filling


def ceiling(service_ms: np.ndarray | list[float], servers: int, bound_ms: float, percentile: float = 99.0, *,
            tolerance: float = 0.01, queries: int = 20000, seed: int = 0) -> Ceiling:
    """The highest rate (QPS) at which the simulated ``percentile`` of latency stays within ``bound_ms``.

    >>> c = ceiling([1.0] * 100, servers=1, bound_ms=5.0)      # M/D/1, 1 ms service: over half of 1000 QPS
    >>> 500 < c.qps < 600
    True
    >>> ceiling([6.0], servers=1, bound_ms=5.0).qps            # service alone exceeds the bound
    0.0
    """
    samples = np.asarray(service_ms, dtype=np.float64)
    if samples.size == 0 or not np.all(np.isfinite(samples)) or np.any(samples < 0):
        raise ValueError("service times must be a non-empty set of finite values >= 0")
    if servers < 1 or not math.isfinite(bound_ms) or bound_ms <= 0 or not 0 < percentile < 100:
        raise ValueError("servers >= 1, bound_ms > 0 and 0 < percentile < 100 are required")
    mean = float(samples.mean())
    service_pct = float(np.percentile(samples, percentile))

    def result(qps: float) -> Ceiling:
        return Ceiling(qps, servers, bound_ms, percentile, mean, qps * mean / 1000.0 / servers, service_pct)

    if service_pct > bound_ms or mean <= 0:
        return result(0.0 if mean > 0 else math.inf)
    # beyond full utilisation the queue grows without bound
    return result(_highest_rate(lambda qps: sojourn_percentile_ms(samples, servers, qps, percentile, queries=queries,
                                                                  seed=seed) <= bound_ms,
                                servers * 1000.0 / mean, tolerance))


def _highest_rate(meets_bound: Callable[[float], bool], hi: float, tolerance: float) -> float:
    """Bisection for the highest rate in (0, hi) at which ``meets_bound`` holds."""
    lo = 0.0
    while hi - lo > tolerance * hi:
        mid = (lo + hi) / 2
        if mid > 0 and meets_bound(mid):
            lo = mid
        else:
            hi = mid
    return lo


def _service_table(service_by_queries: Mapping[int, Any], max_batch: int) -> list[np.ndarray]:
    """Service samples for requests of 1..max_batch queries: measured ones where a size was seen, else those of
    the next larger size seen (a request never takes less for carrying more), else of the largest."""
    seen = {int(k): np.asarray(v, dtype=np.float64) for k, v in service_by_queries.items() if len(v)}
    if not seen or any(not np.all(np.isfinite(v)) or np.any(v < 0) for v in seen.values()):
        raise ValueError("service times must be non-empty sets of finite values >= 0")
    sizes = sorted(seen)
    table = []
    for k in range(1, max_batch + 1):
        larger = [s for s in sizes if s >= k]
        table.append(seen[larger[0] if larger else sizes[-1]])
    return table


def batched_sojourn_percentile_ms(table: list[np.ndarray], servers: int, qps: float, percentile: float, *,
                                  queries: int = 20000, seed: int = 0) -> float:
    """Like :func:`sojourn_percentile_ms` for a greedy batcher: a server that frees (or an idle one at an arrival)
    takes every query waiting, up to ``len(table)``, as one request whose service time is drawn from
    ``table[k - 1]`` for k queries."""
    return _batched_queue(table, servers, qps, percentile, queries=queries, seed=seed)[0]


def _batched_queue(table: list[np.ndarray], servers: int, qps: float, percentile: float, *, queries: int,
                   seed: int) -> tuple[float, float]:
    """(latency percentile, share of server time busy) of the greedy batcher's simulated queue."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1000.0 / qps, queries))
    max_batch = len(table)
    free = [0.0] * servers
    sojourn = np.empty(queries)
    busy = 0.0
    i = 0
    while i < queries:
        earliest = heapq.heappop(free)
        start = arrivals[i] if arrivals[i] > earliest else earliest
        j = min(i + max_batch, int(np.searchsorted(arrivals, start, side="right")))
        j = max(j, i + 1)
        samples = table[j - i - 1]
        end = start + samples[rng.integers(samples.size)]
        busy += end - start
        heapq.heappush(free, end)
        sojourn[i:j] = end - arrivals[i:j]
        i = j
    return float(np.percentile(sojourn[queries // 10:], percentile)), float(busy / (servers * max(free)))


def batched_ceiling(service_by_queries: Mapping[int, Any], servers: int, bound_ms: float, max_batch: int,
                    percentile: float = 99.0, *, tolerance: float = 0.01, queries: int = 20000,
                    seed: int = 0) -> Ceiling:
    """The highest rate at which a greedy batcher (up to ``max_batch`` queries per request, ``servers`` FCFS
    servers) keeps the ``percentile`` of latency within ``bound_ms``, given measured service times of requests by
    the number of queries they carried. ``mean_service_ms`` is per request over all sizes seen;
    ``service_percentile_ms`` that of one-query requests (the fastest path: above the bound, no rate meets it).

    >>> one, eight = [10.0] * 50, [10.0] * 50                 # a request takes 10 ms whatever it carries
    >>> batched_ceiling({1: one, 8: eight}, 1, 40.0, 8).qps > 3 * ceiling(one, 1, 40.0).qps
    True
    """
    if servers < 1 or not math.isfinite(bound_ms) or bound_ms <= 0 or not 0 < percentile < 100 or max_batch < 1:
        raise ValueError("servers >= 1, max_batch >= 1, bound_ms > 0 and 0 < percentile < 100 are required")
    table = _service_table(service_by_queries, max_batch)
    every = np.concatenate([np.asarray(v, dtype=np.float64) for v in service_by_queries.values() if len(v)])
    mean = float(every.mean())
    service_pct = float(np.percentile(table[0], percentile))
    capacity = max((k + 1) * 1000.0 / float(t.mean()) for k, t in enumerate(table) if t.mean() > 0) \
        if any(t.mean() > 0 for t in table) else math.inf

    def result(qps: float) -> Ceiling:
        # utilisation: the share of server time busy in the simulated queue at that rate
        util = _batched_queue(table, servers, qps, percentile, queries=queries, seed=seed)[1] if 0 < qps < math.inf else 0.0
        return Ceiling(qps, servers, bound_ms, percentile, mean, util, service_pct)

    if service_pct > bound_ms or not math.isfinite(capacity):
        return result(0.0 if math.isfinite(capacity) else math.inf)
    return result(_highest_rate(lambda qps: batched_sojourn_percentile_ms(table, servers, qps, percentile,
                                                                          queries=queries, seed=seed) <= bound_ms,
                                servers * capacity, tolerance))

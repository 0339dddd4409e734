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
from dataclasses import dataclass

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

    >>> c = ceiling([1.0] * 100, servers=1, bound_ms=5.0)      # M/D/1, 1 ms service: most of 1000 QPS
    >>> 700 < c.qps < 1000
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
    lo, hi = 0.0, servers * 1000.0 / mean  # beyond full utilisation the queue grows without bound
    while hi - lo > tolerance * hi:
        mid = (lo + hi) / 2
        if mid > 0 and sojourn_percentile_ms(samples, servers, mid, percentile, queries=queries, seed=seed) <= bound_ms:
            lo = mid
        else:
            hi = mid
    return result(lo)

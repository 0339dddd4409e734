"""Run until stable: measure in windows (short back-to-back runs of the same engines) until the last K windows
agree, the way perf_analyzer's stability mode does.

Each window is one ``run_benchmark`` (``run_devices``) of at least ``window_s`` seconds with the run's own
minimum of requests; only the first warms up. A window's statistic is its median latency (latency) or its rate
(throughput). The measurement is **stable** when each of the last ``windows`` statistics lies within
``threshold_pct`` % of their mean. It stops when stable, when ``max_duration_s`` (the whole run) would be
exceeded by another window, or on Ctrl-C. The result reports the samples of the last ``windows`` windows
(the stable ones, or the last ones tried when it never settled), and keeps every window in ``stability``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from pymfn.bench.settings import SettingError


@dataclass(frozen=True)
class StabilitySettings:
    """``threshold_pct``: how far (%) each of the last ``windows`` window statistics may lie from their mean;
    ``window_s``: the minimum length of one window (s)."""

    threshold_pct: float
    windows: int = 3
    window_s: float = 2.0

    def __post_init__(self) -> None:
        if not (isinstance(self.threshold_pct, (int, float)) and 0 < self.threshold_pct < 100):
            raise SettingError(f"`threshold_pct` must be in (0, 100), got {self.threshold_pct}")
        if not (isinstance(self.windows, int) and 2 <= self.windows <= 100):
            raise SettingError(f"`windows` must be in 2..100, got {self.windows}")
        if not (isinstance(self.window_s, (int, float)) and 0 < self.window_s < 1e6):
            raise SettingError(f"`window_s` must be > 0, got {self.window_s}")


def spread_pct(values: Sequence[float]) -> float:
    """The largest distance of a value from the mean, in % of the mean (inf for a mean <= 0)."""
    arr = np.asarray(values, dtype=np.float64)
    mean = float(arr.mean())
    return float(np.abs(arr - mean).max() / mean * 100.0) if mean > 0 else float("inf")


def window_statistic(result: Any, statistic: str) -> float:
    return float(result.throughput_per_s) if statistic == "throughput" else float(result.latency.median)


def run_windows(run_window: Callable[[bool, float], tuple[Any, bool]], stability: StabilitySettings,
                cap_s: float, statistic: str) -> dict[str, Any]:
    """Call ``run_window(first, cap_left_s) -> (native result, interrupted)`` until stable / capped / interrupted.

    Returns {"results": [(result, start_s)], "stable": bool, "interrupted": bool, "capped": bool, "values": [...]}
    with ``start_s`` each window's start from the first window's start (monotonic clock)."""
    t0 = time.monotonic()
    results: list[tuple[Any, float]] = []
    values: list[float] = []
    stable = interrupted = capped = False
    while True:
        started = time.monotonic() - t0
        left = cap_s - started
        result, interrupted = run_window(not results, left)
        results.append((result, started))
        if result.iterations > 0:
            values.append(window_statistic(result, statistic))
        else:
            values.append(float("nan"))
        last = values[-stability.windows:]
        if len(last) == stability.windows and all(np.isfinite(last)) and spread_pct(last) <= stability.threshold_pct:
            stable = True
            break
        if interrupted:
            break
        elapsed = time.monotonic() - t0
        mean_window = elapsed / len(results)
        if bool(getattr(result, "stopped_on_max_duration", False)) or \
                elapsed + max(stability.window_s, mean_window if len(results) > 1 else 0.0) > cap_s:
            capped = True
            break
    return {"results": results, "stable": stable, "interrupted": interrupted, "capped": capped, "values": values}

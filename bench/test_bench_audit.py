"""What ``--audit``'s recording costs a timed run: the same engine with and without ``_core.RecordingEngine``
(TEST01's seeded 10 % sample, at most 64 records), interleaved in ABBA order so drifting load hits both alike.

(a) the default model on OpenVINO, batch 1: median latency, recording / plain;
(b) a null engine (``SimulatedEngine``, service 0): what recording adds per request in microseconds, i.e. the
    wrapper's own cost with nothing to hide it.

Each ratio is the median of the per-round ratios. Printed, not asserted (a loaded machine moves them); only
that every run measured its requests and recorded at most its cap is checked.

``PYMFN_BENCH_QUICK=1`` runs short rounds (CI smoke).

    python -m pytest bench/test_bench_audit.py -s
"""
from __future__ import annotations

import os
import statistics

import numpy as np

import pymfn
from pymfn.bench.report import format_host, host_info

QUICK = os.environ.get("PYMFN_BENCH_QUICK", "") not in ("", "0")
ROUNDS = 2 if QUICK else 8
REQUESTS = 200 if QUICK else 1000


def _median_ms(core, engine, data: np.ndarray) -> float:
    st = core.RunSettings(batch_size=1, warmup_iterations=5, min_iterations=REQUESTS, min_duration_ms=0.0,
                          max_duration_ms=300000.0)
    result = core.run_benchmark(engine, core.ArrayDataset(data).reader(1), st)
    assert result.iterations >= REQUESTS
    return float(result.latency.median)


def _interleaved(core, make_engine, data: np.ndarray) -> tuple[float, list[float], list[tuple[float, float]]]:
    ratios, pairs = [], []
    for r in range(ROUNDS):
        plain = make_engine()
        recorder = core.RecordingEngine(make_engine(), fraction=0.1, max_records=64, seed=r)
        order = [("plain", plain), ("recording", recorder)]
        if r % 2:
            order.reverse()
        got = {name: _median_ms(core, eng, data) for name, eng in order}
        assert len(recorder.records()) <= 64
        ratios.append(got["recording"] / got["plain"])
        pairs.append((got["plain"], got["recording"]))
    return statistics.median(ratios), ratios, pairs


def test_recording_cost_on_the_default_model():
    core = pymfn.load_core()
    from pymfn.bench.target import default_model
    from pymfn.runtime.engines import open_engine

    model = str(default_model().path)
    data = np.random.default_rng(0).uniform(-1, 1, (64, 112, 112, 3)).astype(np.float32)
    ratio, ratios, pairs = _interleaved(core, lambda: open_engine(model, inflight=1), data)
    print(f"\nhost: {format_host(host_info())}")
    print(f"(a) default model, OpenVINO, batch 1, {ROUNDS} ABBA rounds of {REQUESTS} requests: recording / plain "
          f"median latency = {ratio:.4f} (per round {', '.join(f'{x:.3f}' for x in ratios)}; plain medians "
          f"{', '.join(f'{p:.3f}' for p, _ in pairs)} ms)")


def test_recording_cost_per_request_on_a_null_engine():
    core = pymfn.load_core()
    data = np.arange(64 * 4, dtype=np.float32).reshape(64, 4)
    ratio, ratios, pairs = _interleaved(core, lambda: core.SimulatedEngine(service_ms=0.0), data)
    added_us = statistics.median((rec - plain) * 1000.0 for plain, rec in pairs)
    print(f"\n(b) null engine, {ROUNDS} ABBA rounds of {REQUESTS} requests: recording adds {added_us:.2f} us per "
          f"request at the median (plain median {statistics.median(p for p, _ in pairs) * 1000:.2f} us; "
          f"ratio {ratio:.3f})")

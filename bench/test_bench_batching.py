"""Server batching, measured as ratios of peaks found in one run; nothing here asserts on time.

(a) the default model as a dynamic-batch emulator om (batch sizes 1, 2, 4, 8) under the emulator's device
    timing model (each execute >= 20 ms + 2 ms per row, so a batch of 8 costs 36 ms against 22 ms for one
    image: a chip's shape, not the host CPU's): find-peak at one p99 bound without batching and with up to 8
    queries per request, alternating. Target: the batched peak >= 2 x the unbatched one; each peak also against
    its own M/G/1 ceiling (goal >= 0.9).
(b) the default model on OpenVINO with up to 8 queries per request: the report's verdict on whether batching
    helped and why (skipped in quick mode).

``PYMFN_BENCH_QUICK=1`` shortens every search (CI smoke).

    python -m pytest bench/test_bench_batching.py -s
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest

import pymfn
import pymfn.bench as b
from _reporting import load_average, record

QUICK = os.environ.get("PYMFN_BENCH_QUICK", "") not in ("", "0")
TIMING = {"PYMFN_ACL_EMU_EXEC_MS": "20", "PYMFN_ACL_EMU_EXEC_MS_PER_ROW": "2"}
BOUND_MS = 100.0

pytestmark = pytest.mark.filterwarnings("ignore")




@pytest.fixture(scope="module")
def model() -> Path:
    from pymfn.export.default_model import default_model

    return default_model(quiet=True).path


@pytest.fixture(scope="module")
def dynamic_om(model: Path, tmp_path_factory: Any) -> Path:
    core = pymfn.load_core()
    if not hasattr(core, "AclEngine") or core.build_info()["acl"] != "emulated":
        pytest.skip("this build has no ACL emulator")
    from pymfn.cli import main as pymfn_main

    om = tmp_path_factory.mktemp("batching") / "mfn_dynamic.om"
    assert pymfn_main(["convert", str(model), "--target", "om-emu", "--output", str(om), "--dynamic-batch", "1,2,4,8"]) == 0
    return om


def _search(model: Path, max_batch: int, bound_ms: float | None) -> b.PeakResult:
    settings = b.ScenarioSettings(min_duration_s=2.0 if QUICK else 5.0, min_queries=200 if QUICK else 1024,
                                  max_batch=max_batch)
    search = b.PeakSearchSettings(peak_runs=1 if QUICK else 2, probe_duration_s=1.0 if QUICK else 2.0)
    return b.find_peak(model, p99_ms=bound_ms, budget_s=60.0 if QUICK else 240.0, settings=settings, search=search)


def test_batching_raises_the_peak_on_a_dynamic_batch_om(benchmark, capsys, dynamic_om, monkeypatch):
    for name, value in TIMING.items():
        monkeypatch.setenv(name, value)
    rounds = 1 if QUICK else 2
    peaks: dict[int, list[b.PeakResult]] = {1: [], 8: []}

    def run_all() -> None:
        for _ in range(rounds):  # alternating, so both see the same machine
            for max_batch in (1, 8):
                peaks[max_batch].append(_search(dynamic_om, max_batch, BOUND_MS))

    benchmark.pedantic(run_all, rounds=1, iterations=1)
    plain = [p.peak_qps or 0.0 for p in peaks[1]]
    batched = [p.peak_qps or 0.0 for p in peaks[8]]
    ratios = [x / y if y else math.inf for x, y in zip(batched, plain)]
    last = peaks[8][-1].document
    record(benchmark, capsys, "(a) dynamic-batch emulator om, device timing model 20 ms + 2 ms/row: peak QPS at "
           f"p99 <= {BOUND_MS:g} ms, up to 8 queries per request vs one", {
               "unbatched_peak_qps": [round(x, 2) for x in plain],
               "batched_peak_qps": [round(x, 2) for x in batched],
               "batched_over_unbatched": [round(x, 2) for x in ratios],
               "target": ">= 2",
               "meets_target": bool(min(ratios) >= 2.0),
               "unbatched_peak_over_ceiling": [_over_ceiling(p) for p in peaks[1]],
               "batched_peak_over_ceiling": [_over_ceiling(p) for p in peaks[8]],
               "ceiling_goal": ">= 0.9",
               "batched_mean_queries_per_request": (last.get("peak_run") or {}).get("batching", {}).get(
                   "mean_queries_per_request"),
               "verdict": (last.get("batching") or {}).get("why"),
               "timing_model": " ".join(f"{k}={v}" for k, v in TIMING.items()),
               "load_average": load_average(),
           })


def _over_ceiling(peak: b.PeakResult) -> float | None:
    run = (peak.document.get("ceilings") or {}).get("peak_run_service") or {}
    return round(run["peak_over_ceiling"], 3) if run.get("peak_over_ceiling") else None


@pytest.mark.skipif(QUICK, reason="a full search on OpenVINO; run without PYMFN_BENCH_QUICK")
def test_batching_verdict_on_openvino(benchmark, capsys, model):
    found: list[b.PeakResult] = []
    benchmark.pedantic(lambda: found.append(_search(model, 8, None)), rounds=1, iterations=1)
    doc = found[0].document
    verdict = doc.get("batching") or {}
    record(benchmark, capsys, "(b) default model on OpenVINO, up to 8 queries per request: did batching help?", {
        "peak_qps": doc.get("peak_qps"),
        "bound_ms": doc.get("latency_bound_ms"),
        "helped": verdict.get("helped"),
        "batch_speedup": verdict.get("batch_speedup"),
        "unbatched_ceiling_qps": verdict.get("unbatched_ceiling_qps"),
        "why": verdict.get("why"),
        "engine": doc.get("engine_properties", {}).get("runtime_precision"),
        "load_average": load_average(),
    })

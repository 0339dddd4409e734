"""Precisions side by side, in ONE pytest run so every ratio compares them under the same load:

OpenVINO f32, bf16, f16 and INT8 (the quantized default model of ``python -m pymfn quantize``) at batch 1
latency and at throughput (2 requests in flight, batch 1 and 16). Precisions this CPU cannot run (OpenVINO
lacks the capability) are left out and named in ``extra_info``; every engine that runs must report the
precision it was asked for (``precision_check == "ok"``) -- a silent fallback fails the suite.

Each round runs every precision once, the order alternating between rounds; pytest-benchmark times the
INT8 run, the others run in ``setup``. Ratios (INT8 / f32, INT8 / bf16, ...) are medians of per-round
ratios and go to ``benchmark.extra_info`` with the throughputs, the load average and the CPU units.
Nothing asserts on time except one loose floor: INT8 faster than f32 where the CPU has int8 units.
``PYMFN_BENCH_QUICK=1`` shortens every run (CI smoke).

Run:  PYMFN_CORE_DIR=... python -m pytest bench/test_bench_precision.py -s
"""
from __future__ import annotations

import os
import statistics
from typing import Any

import numpy as np
import pytest

import pymfn
from pymfn.runtime import precision as prec
from test_bench_engines import record  # extra_info + the printed [bench] block, as every suite here

QUICK = os.environ.get("PYMFN_BENCH_QUICK", "") not in ("", "0")
MEASURE_S = 0.5 if QUICK else 2.0
ROUNDS = 1 if QUICK else 7
INFLIGHT = 2

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def core() -> Any:
    return pymfn.load_core()


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Any]:
    """The default float .pb and its INT8 IR (default calibration when ../shared has it, else generated
    noise images: speed does not depend on what calibrated the ranges, and extra_info says which)."""
    from pymfn.export import quantize as q
    from pymfn.export.default_model import default_model

    pb = default_model(quiet=True).path
    if q.default_calibration_source().is_dir():
        return {"pb": pb, "int8": q.cached_quantized(pb, quiet=True), "calibration": "default (lfw_train_112)"}
    from PIL import Image

    folder = tmp_path_factory.mktemp("noise")
    rng = np.random.default_rng(0)
    for i in range(32):
        Image.fromarray(rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    out = tmp_path_factory.mktemp("q") / "int8.xml"
    q.quantize_model(pb, out, q.load_calibration(folder, count=32), q.QuantizeSettings(fast_bias_correction=True))
    return {"pb": pb, "int8": out, "calibration": "32 noise images (no shared data): speed only"}


def engines_for(core: Any, models: dict[str, Any], inflight: int) -> tuple[dict[str, Any], dict[str, str]]:
    """One engine per precision the host runs; the others with the reason they are left out."""
    from pymfn.runtime.engines import open_engine

    support = prec.host_support()
    engines, skipped = {}, {}
    for p in prec.PRECISIONS:
        if not support[p]["runs"]:
            skipped[p] = support[p]["why"]
            continue
        model = models["int8"] if p == "int8" else models["pb"]
        engines[p] = open_engine(model, precision=p, inflight=inflight)
        check = engines[p].properties()["precision_check"]
        assert check == "ok", f"{p}: {check}"  # a silent fallback would make every ratio below a lie
    return engines, skipped


def run_once(core: Any, engine: Any, batch: int, inflight: int) -> float:
    data = np.random.default_rng(0).uniform(-1, 1, (max(16, 4 * batch * inflight), 112, 112, 3)).astype(np.float32)
    engine.prepare(batch)
    settings = core.RunSettings(batch_size=batch, inflight=inflight, warmup_iterations=3, min_iterations=10,
                                min_duration_ms=MEASURE_S * 1000.0, max_duration_ms=60000.0, scope="compute")
    result = core.run_benchmark(engine, core.ArrayDataset(data).reader(batch), settings)
    return float(result.throughput_per_s) if inflight > 1 else float(result.latency.median)


def side_by_side(benchmark: Any, core: Any, engines: dict[str, Any], batch: int, inflight: int) -> dict[str, list]:
    """ROUNDS rounds; in each every precision runs once (order alternating), INT8 timed by pytest-benchmark."""
    others = [p for p in engines if p != "int8"]
    figures: dict[str, list[float]] = {p: [] for p in engines}
    round_no = [0]

    def setup() -> None:
        order = others if round_no[0] % 2 == 0 else others[::-1]
        for p in order:
            figures[p].append(run_once(core, engines[p], batch, inflight))
        round_no[0] += 1

    def target() -> None:
        figures["int8"].append(run_once(core, engines["int8"], batch, inflight))

    benchmark.pedantic(target, setup=setup, rounds=ROUNDS, iterations=1)
    return figures


def ratio(figures: dict[str, list[float]], a: str, b: str, invert: bool = False) -> float | None:
    if a not in figures or b not in figures:
        return None
    pairs = zip(figures[a], figures[b])
    return statistics.median((y / x) if invert else (x / y) for x, y in pairs)


def common_info(skipped: dict[str, str], models: dict[str, Any]) -> dict[str, Any]:
    units = {p: ",".join(v["units"]) or "none" for p, v in prec.host_support().items() if p != "f32"}
    return {"skipped": skipped or "none", "cpu_units": units, "int8_calibration": models["calibration"],
            "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg())}


@pytest.mark.parametrize("batch", [1, 16])
def test_throughput_by_precision(benchmark, capsys, core, models, batch):
    engines, skipped = engines_for(core, models, INFLIGHT)
    if "int8" not in engines:
        pytest.skip(f"this CPU cannot run INT8: {skipped.get('int8')}")
    figures = side_by_side(benchmark, core, engines, batch, INFLIGHT)
    info = {f"{p}_img_per_s": statistics.median(v) for p, v in figures.items()}
    for a, b in (("int8", "f32"), ("int8", "bf16"), ("int8", "f16"), ("bf16", "f32"), ("f16", "f32")):
        r = ratio(figures, a, b)
        if r is not None:
            info[f"{a}_over_{b}"] = r
    best = max((p for p in figures if p != "int8"), key=lambda p: statistics.median(figures[p]), default=None)
    if best:
        info["int8_over_best_non_int8"] = ratio(figures, "int8", best)
        info["best_non_int8"] = best
    record(benchmark, capsys, f"throughput by precision, batch {batch}, {INFLIGHT} in flight", info |
           common_info(skipped, models))
    if prec.host_support()["int8"]["units"]:
        assert info["int8_over_f32"] > 1.0, "INT8 no faster than f32 on a CPU with int8 units"


def test_latency_b1_by_precision(benchmark, capsys, core, models):
    engines, skipped = engines_for(core, models, 1)
    if "int8" not in engines:
        pytest.skip(f"this CPU cannot run INT8: {skipped.get('int8')}")
    figures = side_by_side(benchmark, core, engines, 1, 1)
    info = {f"{p}_median_ms": statistics.median(v) for p, v in figures.items()}
    for a, b in (("int8", "f32"), ("int8", "bf16"), ("bf16", "f32")):
        r = ratio(figures, a, b, invert=True)  # speed-up = their latency / ours
        if r is not None:
            info[f"{a}_speedup_over_{b}"] = r
    record(benchmark, capsys, "batch-1 latency by precision", info | common_info(skipped, models))

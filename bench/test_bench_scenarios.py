"""Scenario benchmarks, ratios in ``extra_info``; nothing here asserts on time.

(a) the server scheduler with a null engine at 2,000 QPS: how late the harness issues queries
    (target: p99 of its own lateness <= 100 us) and how far the achieved rate is from the schedule's.
(b) the default model in the server scenario: the peak QPS whose p99 stays under 4 x the single-stream
    median, as a fraction of the offline throughput measured in the same run (target >= 0.8).
(c) 4 emulated Ascend devices (the default model as an emulator .om): aggregate throughput from one
    clock with its common wall time, per-device figures and skew, against device 0 alone; once with the
    emulator's device timing model (each device one execute at a time, >= 100 ms each: the devices are
    independent of the host's 2 cores) and once without it (all four share the CPU).

``PYMFN_BENCH_QUICK=1`` shortens every run (CI smoke).

    PYMFN_CORE_DIR=... python -m pytest bench/test_bench_scenarios.py -s
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import pymfn
from pymfn import config
from _reporting import load_average, record

QUICK = os.environ.get("PYMFN_BENCH_QUICK", "") not in ("", "0")

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def core() -> Any:
    return pymfn.load_core()


@pytest.fixture(scope="module")
def model() -> Path:
    from pymfn.export.default_model import default_model

    return default_model(quiet=True).path




# ---------------------------------------------------------------------------------------------- (a)
def test_null_engine_issue_lateness_at_2000_qps(benchmark, capsys, core):
    # One request slot and a 1 ms spin: the fewest threads competing with the scheduler for the 2 cores (a
    # null request completes at once, but its waiter thread must still run to free the slot).
    engine = core.SimulatedEngine(service_ms=0.0, slots=1)
    reader = core.ArrayDataset(np.zeros((64, 4), np.float32)).reader(1)
    settings = core.RunSettings(target_qps=2000.0, latency_bound_ms=1.0, inflight=1, warmup_iterations=100,
                                min_duration_ms=2000.0 if QUICK else 10000.0, min_query_count=1000,
                                max_duration_ms=60000.0, schedule_seed=1, scheduler_spin_ms=1.0)
    results = []
    benchmark.pedantic(lambda: results.append(core.run_server(engine, reader, settings)), rounds=1, iterations=1)
    r = results[0]
    lateness = np.asarray(r.issued_ms) - np.asarray(r.ready_ms)
    assert r.queries == r.queries_scheduled and (np.asarray(r.issued_ms) >= np.asarray(r.scheduled_ms)).all()
    record(benchmark, capsys, "(a) null engine, server at 2,000 QPS: the harness's own issue lateness", {
        "queries": int(r.queries),
        "harness_lateness_p50_us": float(np.percentile(lateness, 50)) * 1000,
        "harness_lateness_p99_us": float(r.scheduler_lateness.p99) * 1000,
        "harness_lateness_max_us": float(r.scheduler_lateness.max) * 1000,
        "issue_delay_p99_us": float(r.issue_delay.p99) * 1000,
        "queue_wait_p99_us": float(r.queue_wait.p99) * 1000,
        "late_over_100us": int(np.count_nonzero(lateness > 0.1)),
        "achieved_over_scheduled_qps": float(r.achieved_qps / r.scheduled_qps),
        "config": "SimulatedEngine(service_ms=0), 1 slot, scheduler_spin_ms=1.0",
        "target": "harness lateness p99 <= 100 us",
        "meets_target": bool(r.scheduler_lateness.p99 <= 0.1),
        "load_average": load_average(),
    })


# ---------------------------------------------------------------------------------------------- (b)
def test_default_model_peak_qps_vs_offline(benchmark, capsys, core, model):
    import pymfn.bench as b
    from pymfn.runtime.engines import open_engine

    images = np.random.default_rng(0).uniform(-1, 1, (32, 112, 112, 3)).astype(np.float32)
    dataset = core.ArrayDataset(images)
    seconds = 2.0 if QUICK else 5.0

    # offline: the best of the two throughput configurations the README reports for this model
    offline = {}
    for batch, inflight in ((1, 4), (16, 2)):
        eng = open_engine(model, precision="f32", inflight=inflight)  # throughput hint for inflight > 1
        st = core.RunSettings(batch_size=batch, inflight=inflight, warmup_iterations=10, min_iterations=20,
                              min_duration_ms=seconds * 1000.0)
        offline[f"batch {batch} x {inflight} in flight"] = core.run_benchmark(eng, dataset.reader(batch), st).throughput_per_s
        del eng
    offline_best = max(offline.values())

    # the single-stream median of what `bench server` runs (latency hint, one request), then the search with
    # its bound at 4 x that median and the best offline rate as its yardstick
    single = b.latency(model, settings=b.RunSettings(min_duration_s=seconds, min_iterations=50))
    median = single.median_ms
    bound = 4.0 * median
    scenario = b.ScenarioSettings(min_duration_s=3.0 if QUICK else 10.0, min_queries=200 if QUICK else 1024)
    search = b.PeakSearchSettings(peak_runs=1 if QUICK else 2, probe_duration_s=1.0 if QUICK else 3.0)
    found: list[b.PeakResult] = []
    benchmark.pedantic(lambda: found.append(b.find_peak(model, p99_ms=bound, offline_qps=offline_best,
                                                        budget_s=math.inf, settings=scenario, search=search)),
                       rounds=1, iterations=1)
    peak = found[0]
    assert not peak.interrupted
    ratio = (peak.peak_qps or 0.0) / offline_best
    last = peak.peak_run
    record(benchmark, capsys, "(b) default model, server: peak QPS at p99 <= 4 x single-stream median vs offline", {
        "single_stream_median_ms": float(median),
        "p99_bound_ms": float(bound),
        "offline_samples_per_s": {k: round(v, 1) for k, v in offline.items()},
        "peak_qps": float(peak.peak_qps or 0.0),
        "peak_over_offline": float(ratio),
        "target": ">= 0.8",
        "meets_target": bool(ratio >= 0.8),
        "runs_in_search": len(peak.curve),
        "search_stopped": peak.stop_reason,
        "peak_run_p99_ms": last.p99_ms if last is not None else None,
        **_ceilings(peak, single.samples_ms, bound, offline_best),
        "load_average": load_average(),
    })


def _ceilings(peak: Any, single_stream_ms: list[float], bound: float, offline_qps: float) -> dict[str, Any]:
    """M/G/1 ceilings at the bound: from back-to-back service times (what queueing alone leaves of the offline
    rate) and from the peak run's own service times (goal: the peak >= 0.9 of it)."""
    from pymfn.bench.queueing import ceiling

    warm = ceiling(single_stream_ms, 1, bound)
    run = (peak.document.get("ceilings") or {}).get("peak_run_service") or {}
    out = {"ceiling_back_to_back_qps": round(warm.qps, 2),
           "ceiling_back_to_back_over_offline": round(warm.qps / offline_qps, 3),
           "ceiling_peak_run_service_qps": round(run["qps"], 2) if run else None,
           "peak_run_mean_service_over_back_to_back": round(run["mean_service_ms"] / warm.mean_service_ms, 3)
           if run else None}
    if run and run["qps"]:
        out["peak_over_its_ceiling"] = round((peak.peak_qps or 0.0) / run["qps"], 3)
        out["ceiling_target"] = ">= 0.9"
    return out


# ---------------------------------------------------------------------------------------------- (c)
@pytest.fixture(scope="module")
def emulator_om(core, model, tmp_path_factory) -> Path:
    if not hasattr(core, "AclEngine") or core.build_info()["acl"] != "emulated":
        pytest.skip("this build has no ACL emulator")
    from pymfn.cli import main as pymfn_main

    om = tmp_path_factory.mktemp("emu") / "mfn_emu.om"
    assert pymfn_main(["convert", str(model), "--target", "om-emu", "--output", str(om), "--input-shape=1,112,112,3"]) == 0
    return om


def _throughput(om: Path, devices: str, env: dict[str, str], out: Path) -> dict[str, Any]:
    full = dict(os.environ)
    full["PYTHONPATH"] = os.pathsep.join([str(config.PROJECT_ROOT), full.get("PYTHONPATH", "")])
    full.update(env)
    seconds = "2" if QUICK else "6"
    proc = subprocess.run([sys.executable, "-m", "pymfn.bench", "throughput", "--model", str(om), "--batch", "1",
                           "--inflight", "1", "--device", devices, "--min-duration", seconds, "--min-iterations", "20",
                           "--warmup", "3", "--quiet", "--json", str(out)], capture_output=True, text=True, env=full,
                          timeout=600, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(out.read_text())


def test_four_emulated_devices_on_one_clock(benchmark, capsys, emulator_om, tmp_path):
    docs: dict[str, dict[str, Any]] = {}

    def run_all() -> None:
        for model_name, env in (("device timing model 100 ms", {"PYMFN_ACL_EMU_EXEC_MS": "100"}), ("host CPU only", {})):
            env = {"PYMFN_ACL_EMU_DEVICES": "4", **env}
            for devices in ("0", "0,1,2,3"):
                docs[f"{model_name}: {devices}"] = _throughput(emulator_om, devices, env,
                                                               tmp_path / f"{len(docs)}.json")

    benchmark.pedantic(run_all, rounds=1, iterations=1)
    info: dict[str, Any] = {}
    for model_name in ("device timing model 100 ms", "host CPU only"):
        one, four = docs[f"{model_name}: 0"], docs[f"{model_name}: 0,1,2,3"]
        assert four["throughput_per_s"] == pytest.approx(four["samples_processed"] * 1000.0 / four["wall_ms"])
        info[f"{model_name}: aggregate_samples_per_s"] = round(four["throughput_per_s"], 2)
        info[f"{model_name}: common_wall_ms"] = round(four["wall_ms"], 1)
        info[f"{model_name}: per_device_samples_per_s"] = [round(d["throughput_per_s"], 2) for d in four["devices"]]
        info[f"{model_name}: start_skew_ms"] = round(four["start_skew_ms"], 3)
        info[f"{model_name}: end_skew_ms"] = round(four["end_skew_ms"], 3)
        info[f"{model_name}: one_device_samples_per_s"] = round(one["throughput_per_s"], 2)
        info[f"{model_name}: four_over_one"] = round(four["throughput_per_s"] / one["throughput_per_s"], 3)
    info["emulator_device_model"] = docs["device timing model 100 ms: 0,1,2,3"]["engine_properties"].get(
        "emulator_device_model", "")
    info["load_average"] = load_average()
    record(benchmark, capsys, "(c) 4 emulated devices: aggregate on one clock vs device 0 alone", info)


# ---------------------------------------------------------------------------------------------- (d)
def test_keep_warm_threads_vs_none(benchmark, capsys, core, model):
    """The default model in the server scenario at a low rate (the engine idle most of the time), with 0, 1 and 2
    keep-warm threads, alternating within each round: the service time of queries that arrive at an idle engine
    (completed - issued) against the back-to-back median, and what the spinning costs in CPU."""
    from pymfn.runtime.engines import open_engine

    eng = open_engine(model, precision="f32")
    images = np.random.default_rng(0).uniform(-1, 1, (16, 112, 112, 3)).astype(np.float32)
    dataset = core.ArrayDataset(images)
    rounds, seconds = (1, 2000.0) if QUICK else (3, 6000.0)
    service: dict[int, list[float]] = {0: [], 1: [], 2: []}
    p99: dict[int, list[float]] = {0: [], 1: [], 2: []}
    cores: dict[int, list[float]] = {0: [], 1: [], 2: []}

    def run_all() -> None:
        for rnd in range(rounds):
            for threads in (0, 1, 2):
                st = core.RunSettings(target_qps=50.0, latency_bound_ms=100.0, min_duration_ms=seconds,
                                      min_query_count=100, warmup_iterations=20, schedule_seed=rnd,
                                      keep_warm_threads=threads)
                r = core.run_server(eng, dataset.reader(1), st)
                svc = np.asarray(r.completed_ms) - np.asarray(r.issued_ms)
                service[threads].append(float(np.median(svc)))
                p99[threads].append(float(r.latency.p99))
                cores[threads].append(float(r.keep_warm_cpu_ms / r.duration_ms))

    benchmark.pedantic(run_all, rounds=1, iterations=1)
    back_to_back = core.run_benchmark(eng, dataset.reader(1), core.RunSettings(min_duration_ms=seconds)).latency.median
    info: dict[str, Any] = {"back_to_back_median_ms": round(float(back_to_back), 3)}
    for threads in (0, 1, 2):
        info[f"keep_warm {threads}: idle-arrival service p50 ms"] = [round(x, 3) for x in service[threads]]
        info[f"keep_warm {threads}: latency p99 ms"] = [round(x, 3) for x in p99[threads]]
        info[f"keep_warm {threads}: cores spent spinning"] = [round(x, 2) for x in cores[threads]]
    for threads in (1, 2):
        info[f"keep_warm {threads} / none: service p50 ratio per round"] = [
            round(a / b, 3) for a, b in zip(service[threads], service[0])]
    info["load_average"] = load_average()
    record(benchmark, capsys, "(d) keep-warm threads at 50 QPS: service of queries arriving at an idle engine", info)

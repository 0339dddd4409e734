"""Latency under load: the LoadGen server and multi-stream scenarios, and the search for the peak QPS.

``python -m pymfn.bench server --qps 300 --p99-ms 10`` sends queries to the model as a Poisson process at
300 queries per second (a seeded schedule made before the run) and reports each query's latency from its
SCHEDULED arrival, so a slow query makes every query queued behind it late too (no coordinated
omission). The run is VALID when the p99 stays under the bound, the run lasted ``--min-duration`` and
``--min-queries`` completed. ``--find-peak`` searches the highest rate that stays VALID (bisection between
zero and the measured offline capacity, probes near the bound re-run, the candidate confirmed by full
runs) and writes the latency-vs-QPS curve. ``python -m pymfn.bench multistream`` issues a query of N
samples every interval and reports the p99 of query latency. ``--device 0,1`` spreads the queries over
devices (the free request slot idle longest gets the next query).

The timing loop is C++ (``pymfn._core.run_server`` / ``run_multistream``, GIL released).
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

import pymfn
from pymfn._atomic import atomic_write
from pymfn._cli import check_output_path, save_output
from pymfn.bench import report
from pymfn.bench.perf import (add_input_arguments, add_model_arguments, add_output_arguments, choose_batch, make_dataset,
                              make_settings, open_device_engines, resolve_model, run_meta)

LATENCY_EXPLANATIONS = [
    ("latency", "per query: completion - SCHEDULED arrival (time queued behind slower queries counts)"),
    ("issue delay", "issued - scheduled = queue wait (no free request slot) + harness lateness (the scheduler's own)"),
    ("achieved QPS", "completed queries / (schedule start .. last completion)"),
    ("scheduled QPS", "the seeded schedule's own rate (queries / last arrival); the target is its expectation"),
    ("VALID", "the bound percentile of latency <= the bound, the run lasted --min-duration and --min-queries completed, "
     "nothing was cut off by --max-duration (LoadGen's rules)"),
]


# A failed confirmation steps the candidate down by 2 x --peak-tolerance; this many steps (0.9**8 = 0.43 of
# the search's result with the default tolerance) before the search gives up.
MAX_CONFIRM_STEPS = 8


@dataclass
class Setup:
    """What every scenario run of one command shares: engines (one per device), input and metadata."""

    core: Any
    model: Path
    description: str
    pretrained: bool
    engines: list[Any]
    names: list[str]
    batch: int
    dataset: Any
    input_desc: str


def open_setup(args: argparse.Namespace, batch_for: Callable[[Any], int]) -> Setup:
    """Model, engines and dataset for ``args``; ``batch_for(engine)`` picks the batch size."""
    core = pymfn.load_core()
    model, description, pretrained = resolve_model(args.model, quiet=args.quiet)
    engines, names = open_device_engines(args, model)
    batch = batch_for(engines[0])
    dataset, input_desc = make_dataset(args, engines[0], count=max(batch * 4 * len(engines), 16))
    return Setup(core, model, description, pretrained, engines, names, batch, dataset, input_desc)


def scenario_settings(setup: Setup, args: argparse.Namespace, **fields: Any) -> Any:
    """RunSettings for a scheduled run: the shared options, the validity rules, then ``fields``."""
    st = make_settings(setup.core, args, setup.batch)
    st.min_query_count = args.min_queries
    st.bound_percentile = args.percentile / 100.0
    st.late_threshold_ms = args.late_ms
    st.scheduler_spin_ms = args.spin_ms
    st.schedule_seed = args.schedule_seed
    for key, value in fields.items():
        setattr(st, key, value)
    return st


def settings_dict(st: Any) -> dict[str, Any]:
    keys = ["batch_size", "inflight", "warmup_iterations", "warmup_ms", "min_duration_ms", "max_duration_ms",
            "target_qps", "schedule_seed", "samples_per_query", "query_interval_ms", "latency_bound_ms",
            "bound_percentile", "min_query_count", "late_threshold_ms", "scheduler_spin_ms"]
    return {k: getattr(st, k) for k in keys}


def scenario_to_json(result: Any, meta: dict[str, Any], settings: Any) -> dict[str, Any]:
    """A ScenarioResult as the JSON document the CLI writes (every raw per-query time included)."""
    doc = dict(meta)
    doc.update({
        "scenario": result.scenario,
        "result": "VALID" if result.valid else "INVALID",
        "valid": bool(result.valid),
        "invalid_reasons": list(result.invalid_reasons),
        "target_qps": float(result.target_qps),
        "scheduled_qps": float(result.scheduled_qps),
        "achieved_qps": float(result.achieved_qps),
        "queries_scheduled": int(result.queries_scheduled),
        "queries": int(result.queries),
        "requests": int(result.requests),
        "samples_per_query": int(result.samples_per_query),
        "samples_processed": int(result.samples_processed),
        "warmup": int(result.warmup_iterations),
        "duration_ms": float(result.duration_ms),
        "latency_bound_ms": float(result.latency_bound_ms),
        "bound_percentile": float(result.bound_percentile),
        "latency_at_percentile_ms": float(result.latency_at_percentile),
        "latency_ms": report.latency_dict(result.latency),
        "issue_delay_ms": report.latency_dict(result.issue_delay),
        "queue_wait_ms": report.latency_dict(result.queue_wait),
        "scheduler_lateness_ms": report.latency_dict(result.scheduler_lateness),
        "late_issues": int(result.late_issues),
        "late_threshold_ms": float(result.late_threshold_ms),
        "stopped_on_max_duration": bool(result.stopped_on_max_duration),
        "stage_means_ms": {k: float(v) for k, v in dict(result.stage_means_ms).items()},
        "devices": [report.device_dict(d) for d in result.devices],
        "warnings": report.run_warnings(result, meta),
        "settings": settings_dict(settings),
        "percentile_method": report.PERCENTILE_METHOD,
        "queries_raw": {
            "scheduled_ms": _floats(result.scheduled_ms),
            "issued_ms": _floats(result.issued_ms),
            "ready_ms": _floats(result.ready_ms),
            "completed_ms": _floats(result.completed_ms),
            "device": [int(x) for x in np.asarray(result.query_devices)],
        },
    })
    doc["stage_samples_ms"], doc["stage_stats_ms"] = report.stage_samples_json(result.stage_samples_ms)
    return doc


def _floats(values: Any) -> list[float]:
    return [float(x) for x in np.asarray(values)]


def _pct_label(fraction: float) -> str:
    p = fraction * 100.0
    return f"p{p:g}"


def format_scenario(doc: dict[str, Any]) -> str:
    """The report of one scheduled run: rates, latency, issue delays, the verdict and why."""
    lat = doc["latency_ms"]
    title = (f"pymfn {doc['scenario']}: {doc['engine']} engine, batch {doc['batch']}, {doc['precision']}, "
             f"{len(doc['devices'])} device(s) x {doc['inflight']} request(s)")
    out = ["=" * len(title), title, "=" * len(title)]
    rows = [
        ("Model", doc["model"]),
        ("Model kind", doc.get("model_description", "")),
        ("Engine", ", ".join(f"{k}={v}" for k, v in sorted(doc.get("engine_properties", {}).items()))),
        ("Input", doc.get("input", "")),
        ("Queries", f"{doc['queries']} of {doc['queries_scheduled']} scheduled, {doc['samples_per_query']} samples each, "
                    f"{doc['requests']} requests, {doc['samples_processed']} samples in {doc['duration_ms'] / 1000:.3f} s"),
        ("QPS", f"target {doc['target_qps']:.2f}, scheduled {doc['scheduled_qps']:.2f}, achieved {doc['achieved_qps']:.2f}"),
        ("Warm-up", f"{doc['warmup']} requests before the schedule"),
        ("Host", report.format_host(doc.get("host"))),
    ]
    if doc.get("timing_note"):
        rows.append(("Note", doc["timing_note"]))
    width = max(len(r[0]) for r in rows)
    out += [f"{k:<{width}} : {v}" for k, v in rows if v != ""]
    out.append("")
    out.append("(ms)                 min      mean     median   p90      p95      p99      p99.9    max")
    for label, key in (("latency", "latency_ms"), ("issue delay", "issue_delay_ms"), ("  queue wait", "queue_wait_ms"),
                       ("  harness lateness", "scheduler_lateness_ms")):
        st = doc[key]
        out.append(f"{label:<20} " + " ".join(f"{st[k]:<8.3f}" for k in
                                               ["min", "mean", "median", "p90", "p95", "p99", "p999", "max"]))
    out.append(f"Issued late         : {doc['late_issues']} of {doc['queries']} queries more than "
               f"{doc['late_threshold_ms']:g} ms after their scheduled arrival")
    for name, st in sorted((doc.get("stage_stats_ms") or {}).items()):
        out.append(f"Engine {name.replace('_ms', ''):<13}: median {st['median']:.3f} ms, p99 {st['p99']:.3f} ms per request")
    if len(doc["devices"]) > 1:
        out.append("")
        out.append("Devices (one clock; latency of the queries each device started):")
        dw = max(len(d["name"]) for d in doc["devices"])
        for d in doc["devices"]:
            out.append(f"  {d['name']:<{dw}}  {d['iterations']:>7} requests  {d['samples_processed']:>7} samples  "
                       f"median {d['latency_ms']['median']:.3f} ms  p99 {d['latency_ms']['p99']:.3f} ms")
    out.append("")
    verdict = (f"RESULT: {doc['result']}  ({_pct_label(doc['bound_percentile'])} latency "
               f"{doc['latency_at_percentile_ms']:.3f} ms, bound {doc['latency_bound_ms']:.3f} ms)")
    out.append(verdict)
    for r in doc["invalid_reasons"]:
        out.append(f"  INVALID because: {r}")
    out.append("")
    out.append("What the figures mean:")
    out += [f"  {name:<16} {text}" for name, text in LATENCY_EXPLANATIONS]
    out.append(f"  {'percentiles':<16} {report.PERCENTILE_METHOD}")
    for w in doc.get("warnings", []):
        out.append(f"WARNING: {w}")
    return "\n".join(out)


def plot_scenario(doc: dict[str, Any], path: str | Path) -> None:
    """Latency of every query over its scheduled arrival (stalls and queues show as ramps), and a histogram."""
    plt = _pyplot()
    raw = doc["queries_raw"]
    sched = np.asarray(raw["scheduled_ms"]) / 1000.0
    lat = np.asarray(raw["completed_ms"]) - np.asarray(raw["scheduled_ms"])
    fig, (ax_t, ax_h) = plt.subplots(1, 2, figsize=(12, 4.5))
    ax_t.plot(sched, lat, ".", markersize=2, color="#4477aa")
    ax_t.axhline(doc["latency_bound_ms"], color="#cc3311", linestyle="--",
                 label=f"bound {doc['latency_bound_ms']:.2f} ms ({_pct_label(doc['bound_percentile'])})")
    ax_t.set_xlabel("scheduled arrival (s)")
    ax_t.set_ylabel("latency from scheduled arrival (ms)")
    ax_t.legend()
    ax_h.hist(lat, bins=min(100, max(10, lat.size // 20)), color="#4477aa")
    ax_h.axvline(doc["latency_at_percentile_ms"], color="#cc3311", linestyle="--",
                 label=f"{_pct_label(doc['bound_percentile'])} {doc['latency_at_percentile_ms']:.2f} ms")
    ax_h.set_xlabel("latency (ms)")
    ax_h.set_ylabel("queries")
    ax_h.legend()
    fig.suptitle(f"{doc['scenario']} {doc['target_qps']:.1f} QPS, {doc['result']} — {Path(doc['model']).name}")
    _save(fig, plt, path)


def plot_curve(doc: dict[str, Any], path: str | Path) -> None:
    """Every run of a peak search: its p99 (and median) against the target QPS, with the bound and the peak.

    Runs are points, not a line: near the edge the same rate is run several times and the scatter between
    those runs is part of the answer.
    """
    plt = _pyplot()
    bound = doc["latency_bound_ms"]
    fig, ax = plt.subplots(figsize=(9, 5))
    markers = {"probe": "o", "edge re-run": "x", "confirm": "s"}
    for role, marker in markers.items():
        runs = [c for c in doc["curve"] if c["role"] == role]
        if not runs:
            continue
        qps = [c["target_qps"] for c in runs]
        p99 = [c["latency_at_percentile_ms"] for c in runs]
        colors = ["#228833" if (c["valid"] if role == "confirm" else c["latency_at_percentile_ms"] <= bound)
                  else "#cc3311" for c in runs]
        ax.scatter(qps, p99, c=colors, marker=marker, label=f"{_pct_label(doc['bound_percentile'])} latency, {role}")
        ax.scatter(qps, [c["latency_ms"]["median"] for c in runs], c="#999999", marker=marker, s=12)
    ax.axhline(bound, color="#cc3311", linestyle="--", label=f"bound {bound:.2f} ms (grey: medians)")
    if doc.get("peak_qps"):
        ax.axvline(doc["peak_qps"], color="#228833", linestyle=":", label=f"peak {doc['peak_qps']:.1f} QPS (VALID)")
    if doc.get("offline_qps"):
        ax.axvline(doc["offline_qps"], color="#777777", linestyle="-.", label=f"offline {doc['offline_qps']:.1f} QPS")
    ax.set_xlabel("target QPS")
    ax.set_ylabel("latency from scheduled arrival (ms)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title(f"server latency vs load — {Path(doc['model']).name}, batch {doc['batch']} "
                 "(green: under the bound / VALID, red: over / INVALID)", fontsize=9)
    _save(fig, plt, path)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, plt: Any, path: str | Path) -> None:
    fig.tight_layout()
    suffix = Path(path).suffix or ".png"
    with atomic_write(path) as f:
        fig.savefig(f, format=suffix.lstrip("."), dpi=100)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------ server
def run_server_once(setup: Setup, args: argparse.Namespace, qps: float, bound_ms: float, seed: int,
                    min_duration_s: float, min_queries: int) -> Any:
    st = scenario_settings(setup, args, target_qps=qps, latency_bound_ms=bound_ms, schedule_seed=seed,
                           min_duration_ms=min_duration_s * 1000.0, min_query_count=min_queries)
    st.max_duration_ms = max(st.max_duration_ms, st.min_duration_ms)
    reader = setup.dataset.reader(setup.batch, args.prefetch)
    return setup.core.run_server(setup.engines, reader, st, names=setup.names), st


def offline_capacity(setup: Setup, args: argparse.Namespace) -> float:
    """Queries per second the engines sustain when saturated (offline, the same batch and requests)."""
    st = make_settings(setup.core, args, setup.batch)
    st.min_duration_ms = args.probe_duration * 1000.0
    st.max_duration_ms = max(st.max_duration_ms, st.min_duration_ms)
    st.min_iterations = 20
    reader = setup.dataset.reader(setup.batch, args.prefetch)
    r = setup.core.run_devices(setup.engines, reader, st, names=setup.names)
    return float(r.throughput_per_s) / setup.batch


def single_stream_median(setup: Setup, args: argparse.Namespace) -> float:
    """Median latency of one request at a time on the first device (the default bound's yardstick)."""
    st = make_settings(setup.core, args, setup.batch)
    st.inflight = 1
    st.min_duration_ms = args.probe_duration * 1000.0
    st.max_duration_ms = max(st.max_duration_ms, st.min_duration_ms)
    st.min_iterations = 20
    reader = setup.dataset.reader(setup.batch, args.prefetch)
    return float(setup.core.run_benchmark(setup.engines[0], reader, st).latency.median)


def curve_point(result: Any, role: str) -> dict[str, Any]:
    return {
        "role": role,
        "target_qps": float(result.target_qps),
        "achieved_qps": float(result.achieved_qps),
        "queries": int(result.queries),
        "duration_ms": float(result.duration_ms),
        "latency_ms": report.latency_dict(result.latency),
        "latency_at_percentile_ms": float(result.latency_at_percentile),
        "issue_delay_p99_ms": float(result.issue_delay.p99),
        "harness_lateness_p99_ms": float(result.scheduler_lateness.p99),
        "valid": bool(result.valid),
        "invalid_reasons": list(result.invalid_reasons),
    }


def find_peak(setup: Setup, args: argparse.Namespace, bound_ms: float, offline_qps: float,
              log: Callable[[str], None]) -> tuple[float | None, list[dict[str, Any]], Any, Any]:
    """Highest target QPS whose runs are VALID: (peak or None, curve, last confirming result, its settings).

    Bisection between 0 and 1.1 x the offline capacity with short probes (``--probe-duration``); a probe
    whose percentile lands within a third of the bound is run twice more with other schedules and
    passes on a majority (the edge is where one schedule's luck decides). The highest passing rate is
    then confirmed by ``--peak-runs`` full-length runs (fresh schedules), all of which must be VALID; a
    failed confirmation steps down by twice ``--peak-tolerance`` and tries again, at most
    MAX_CONFIRM_STEPS times.
    """
    curve: list[dict[str, Any]] = []
    seed = args.schedule_seed

    def probe(qps: float) -> bool:
        nonlocal seed
        passes = []
        for attempt in range(3):
            r, _ = run_server_once(setup, args, qps, bound_ms, seed, args.probe_duration, 1)
            seed += 1
            ok = r.latency_at_percentile <= bound_ms and not r.stopped_on_max_duration
            curve.append(curve_point(r, "probe" if attempt == 0 else "edge re-run"))
            passes.append(ok)
            ratio = r.latency_at_percentile / bound_ms
            log(f"  probe {qps:9.2f} QPS: {_pct_label(args.percentile / 100)} {r.latency_at_percentile:8.3f} ms "
                f"({'under' if ok else 'over'} the bound)")
            near_edge = 0.75 <= ratio <= 1.33
            if not near_edge or passes.count(True) >= 2 or passes.count(False) >= 2:
                break
        return passes.count(True) > passes.count(False)

    lo, hi = 0.0, 1.1 * offline_qps
    for _ in range(3):  # an engine that keeps up beyond its offline figure: widen the bracket
        if not probe(hi):
            break
        lo, hi = hi, hi * 1.5
    else:
        log(f"  the bound still holds at {hi / 1.5:.1f} QPS; searching no higher")
    while hi - lo > args.peak_tolerance * hi:
        mid = (lo + hi) / 2
        if probe(mid):
            lo = mid
        else:
            hi = mid
    candidate = lo
    last, last_st = None, None
    confirm_seed = args.schedule_seed + 1000
    for _ in range(MAX_CONFIRM_STEPS):
        if candidate <= 0:
            break
        results = []
        for _ in range(args.peak_runs):
            r, st = run_server_once(setup, args, candidate, bound_ms, confirm_seed, args.min_duration, args.min_queries)
            curve.append(curve_point(r, "confirm"))
            results.append(r)
            last, last_st = r, st
            log(f"  confirm {candidate:9.2f} QPS (schedule seed {confirm_seed}): "
                f"{'VALID' if r.valid else 'INVALID'}, {_pct_label(args.percentile / 100)} {r.latency_at_percentile:.3f} ms")
            confirm_seed += 1
            if not r.valid:
                break
        if len(results) == args.peak_runs and all(r.valid for r in results):
            return candidate, curve, last, last_st
        candidate *= 1.0 - 2 * args.peak_tolerance
    return None, curve, last, last_st


def main_server(args: argparse.Namespace) -> int:
    check_scenario_numbers(args)
    if not args.find_peak and (args.qps is None or args.p99_ms is None):
        raise SystemExit("--qps and --p99-ms are required (or use --find-peak to search the highest QPS under a bound)")
    check_output_path(args.json, "--json")
    check_output_path(args.plot, "--plot")
    setup = open_setup(args, lambda e: choose_batch(e, args.batch))
    meta = run_meta(args, "server", setup.engines, setup.names, setup.model, setup.description, setup.pretrained,
                    setup.batch, setup.input_desc)
    meta["scope"] = "scheduled arrival to completion"
    prog = "pymfn.bench server"
    if not args.find_peak:
        result, st = run_server_once(setup, args, args.qps, args.p99_ms, args.schedule_seed, args.min_duration,
                                     args.min_queries)
        doc = scenario_to_json(result, meta, st)
        print(format_scenario(doc))
        _save_outputs(args, doc, prog, plot_scenario)
        return 0
    return _main_find_peak(args, setup, meta, prog)


def _main_find_peak(args: argparse.Namespace, setup: Setup, meta: dict[str, Any], prog: str) -> int:
    log = (lambda _m: None) if args.quiet else (lambda m: print(m, flush=True))
    median = None
    bound = args.p99_ms
    if bound is None:
        median = single_stream_median(setup, args)
        bound = args.bound_x_median * median
        log(f"bound: {args.bound_x_median:g} x the single-stream median {median:.3f} ms = {bound:.3f} ms "
            f"({_pct_label(args.percentile / 100)})")
    offline_qps = offline_capacity(setup, args)
    log(f"offline capacity: {offline_qps:.2f} QPS ({offline_qps * setup.batch:.1f} samples/s, batch {setup.batch}, "
        f"{len(setup.engines)} device(s) x {args.inflight} request(s)); searching ...")
    peak, curve, last, last_st = find_peak(setup, args, bound, offline_qps, log)
    doc = dict(meta)
    doc.update({
        "scenario": "server",
        "find_peak": True,
        "latency_bound_ms": bound,
        "bound_percentile": args.percentile / 100.0,
        "single_stream_median_ms": median,
        "offline_qps": offline_qps,
        "peak_qps": peak,
        "result": "VALID" if peak else "INVALID",
        "peak_over_offline": (peak / offline_qps) if peak and offline_qps > 0 else None,
        "curve": curve,
        "peak_run": scenario_to_json(last, meta, last_st) if last is not None else None,
    })
    print()
    print("QPS target  achieved   median    p99       p99.9     role         verdict")
    for c in sorted(curve, key=lambda c: c["target_qps"]):
        lat = c["latency_ms"]
        print(f"{c['target_qps']:<11.2f} {c['achieved_qps']:<10.2f} {lat['median']:<9.3f} {lat['p99']:<9.3f} "
              f"{lat['p999']:<9.3f} {c['role']:<12} {'VALID' if c['valid'] else 'INVALID (' + '; '.join(c['invalid_reasons']) + ')'}")
    print()
    pct = _pct_label(args.percentile / 100)
    if peak:
        print(f"PEAK: {peak:.2f} QPS VALID ({pct} <= {bound:.3f} ms; confirmed by {args.peak_runs} full run(s) of "
              f">= {args.min_duration:g} s and >= {args.min_queries} queries) = {peak / offline_qps:.3f} x the "
              f"back-to-back rate of {offline_qps:.2f} QPS measured before the search (same engines and requests; "
              f"{args.probe_duration:g} s, as noisy as the machine)")
    else:
        print(f"PEAK: none — no target QPS kept the {pct} latency under {bound:.3f} ms in VALID runs")
    _save_outputs(args, doc, prog, plot_curve)
    return 0 if peak else 1


def _save_outputs(args: argparse.Namespace, doc: dict[str, Any], prog: str,
                  plot: Callable[[dict[str, Any], Any], None]) -> None:
    if args.json and (where := save_output(args.json, lambda p: report.write_json(doc, p), "--json", prog)):
        print(f"\nJSON written to {where}")
    if args.plot and (where := save_output(args.plot, lambda p: plot(doc, p), "--plot", prog)):
        print(f"plot written to {where}")


# ------------------------------------------------------------------------------------------- multi-stream
def multistream_batch(engine: Any, args: argparse.Namespace) -> int:
    """--batch, or the largest batch the model offers that divides --samples-per-query."""
    n = args.samples_per_query
    if args.batch is not None:
        batch = choose_batch(engine, args.batch)
        if n % batch:
            raise SystemExit(f"--batch {batch}: --samples-per-query {n} is not a multiple of it (queries are split "
                             "into whole batches; nothing is padded)")
        return batch
    offered = list(engine.supported_batches())
    if not offered:
        return n
    fitting = [b for b in offered if n % b == 0]
    if not fitting:
        raise SystemExit(f"--samples-per-query {n}: the model offers batch sizes {offered}, none divides it")
    return max(fitting)


def main_multistream(args: argparse.Namespace) -> int:
    check_scenario_numbers(args)
    check_output_path(args.json, "--json")
    check_output_path(args.plot, "--plot")
    setup = open_setup(args, lambda e: multistream_batch(e, args))
    meta = run_meta(args, "multistream", setup.engines, setup.names, setup.model, setup.description, setup.pretrained,
                    setup.batch, setup.input_desc)
    meta["scope"] = "scheduled query time to the completion of its last request"
    st = scenario_settings(setup, args, samples_per_query=args.samples_per_query, query_interval_ms=args.interval_ms,
                           latency_bound_ms=args.bound_ms or 0.0)
    st.max_duration_ms = max(st.max_duration_ms, st.min_duration_ms)
    reader = setup.dataset.reader(setup.batch, args.prefetch)
    result = setup.core.run_multistream(setup.engines, reader, st, names=setup.names)
    doc = scenario_to_json(result, meta, st)
    print(format_scenario(doc))
    _save_outputs(args, doc, "pymfn.bench multistream", plot_scenario)
    return 0


# ------------------------------------------------------------------------------------------------ options
def check_scenario_numbers(args: argparse.Namespace) -> None:
    """The scenario options __main__.check_numbers cannot express (open intervals, upper bounds)."""
    for name in ("qps", "p99_ms", "interval_ms", "bound_ms", "probe_duration", "bound_x_median"):
        v = getattr(args, name, None)
        if v is not None and not (math.isfinite(v) and v > 0):
            raise SystemExit(f"--{name.replace('_', '-')} must be > 0, got {v}")
    if not (math.isfinite(args.percentile) and 0 < args.percentile < 100):
        raise SystemExit(f"--percentile must be in (0, 100), got {args.percentile}")
    tol = getattr(args, "peak_tolerance", None)
    if tol is not None and not (math.isfinite(tol) and 0 < tol < 0.5):
        raise SystemExit(f"--peak-tolerance must be in (0, 0.5), got {tol}")
    if not (math.isfinite(args.spin_ms) and 0 <= args.spin_ms <= 1000):
        raise SystemExit(f"--spin-ms must be in 0..1000, got {args.spin_ms}")
    if args.max_duration < args.min_duration:
        raise SystemExit(f"--max-duration {args.max_duration:g} is below --min-duration {args.min_duration:g}")


def _add_schedule_arguments(g: argparse._ArgumentGroup, *, min_duration: float, min_queries: int) -> None:
    g.add_argument("--inflight", type=int, default=1,
                   help="request slots per device (default 1); a query waits when all are busy, and that wait counts")
    g.add_argument("--percentile", type=float, default=99.0, help="the latency percentile the bound applies to (default 99)")
    g.add_argument("--warmup", type=int, default=10, help="untimed requests before the schedule starts (default 10)")
    g.add_argument("--warmup-ms", type=float, default=0.0, help="and keep warming up for at least this long (ms)")
    g.add_argument("--min-duration", type=float, default=min_duration,
                   help=f"the schedule lasts at least this many seconds (default {min_duration:g}; LoadGen's minimum)")
    g.add_argument("--min-queries", type=int, default=min_queries,
                   help=f"and holds at least this many queries (default {min_queries})")
    g.add_argument("--max-duration", type=float, default=300.0,
                   help="stop issuing after this many seconds (the run is then INVALID; default 300)")
    g.add_argument("--schedule-seed", type=int, default=0, help="seed of the arrival schedule (default 0)")
    g.add_argument("--late-ms", type=float, default=0.1,
                   help="a query issued more than this after its scheduled arrival counts as late (default 0.1)")
    g.add_argument("--spin-ms", type=float, default=0.2,
                   help="the scheduler spins on the clock for the last this-many ms before an arrival (default 0.2)")


def add_server_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    g = p.add_argument_group("server scenario")
    g.add_argument("--qps", type=float, default=None, help="target queries per second (Poisson arrivals); one query = "
                   "one request of --batch samples")
    g.add_argument("--p99-ms", type=float, default=None,
                   help="latency bound (ms) at --percentile for a VALID run; with --find-peak it defaults to "
                   "--bound-x-median times the single-stream median latency measured first")
    g.add_argument("--batch", type=int, default=1, help="samples per query (default 1)")
    _add_schedule_arguments(g, min_duration=10.0, min_queries=1024)
    g = p.add_argument_group("peak search")
    g.add_argument("--find-peak", action="store_true",
                   help="search the highest QPS whose runs are VALID; prints and saves the latency-vs-QPS curve")
    g.add_argument("--peak-runs", type=int, default=2,
                   help="full-length VALID runs (different schedules) that must confirm the peak (default 2)")
    g.add_argument("--peak-tolerance", type=float, default=0.05,
                   help="relative precision of the search; a failed confirmation steps down by twice this (default 0.05)")
    g.add_argument("--probe-duration", type=float, default=3.0,
                   help="seconds of each search probe, of the offline capacity run and of the median run (default 3)")
    g.add_argument("--bound-x-median", type=float, default=4.0,
                   help="--find-peak without --p99-ms: the bound is this many single-stream medians (default 4)")
    add_input_arguments(p)
    add_output_arguments(p, "PNG: latency over the run and its histogram; with --find-peak, the latency-vs-QPS curve")


def add_multistream_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    g = p.add_argument_group("multi-stream scenario")
    g.add_argument("--samples-per-query", type=int, default=8, help="samples in one query (default 8)")
    g.add_argument("--interval-ms", type=float, default=50.0, help="time between query arrivals (default 50)")
    g.add_argument("--bound-ms", type=float, default=None,
                   help="latency bound at --percentile for a VALID run (default: --interval-ms, a query done before "
                   "the next is due)")
    g.add_argument("--batch", type=int, default=None,
                   help="samples per request (default: the largest batch the model offers that divides "
                   "--samples-per-query; any size for dynamic-batch models = one request per query)")
    _add_schedule_arguments(g, min_duration=10.0, min_queries=100)
    add_input_arguments(p)
    add_output_arguments(p, "PNG: latency over the run and its histogram")


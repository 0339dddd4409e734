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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

import pymfn
from pymfn.files.atomic import atomic_write
from pymfn.files.outputs import check_output_path, save_output
from pymfn.cli.common import interrupted_exit
from pymfn.bench import report
from pymfn.bench.perf import (add_input_arguments, add_model_arguments, add_output_arguments, choose_batch, keep_partial,
                              make_dataset, make_settings, open_device_engines, partial_note, resolve_model, run_meta)

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
# The most queries one scheduled run holds (the runner's limit).
MAX_SCHEDULED_QUERIES = 50_000_000
# --find-peak's default --budget: the whole search, from the first yardstick run to the last confirmation.
DEFAULT_BUDGET_S = 240.0


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
        **report.stop_fields(result),
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
        report.ended_row(doc),
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
                    min_duration_s: float, min_queries: int, cap_s: float | None = None) -> tuple[Any, Any, bool]:
    """One server run: (result, its settings, interrupted). ``cap_s`` (default --max-duration) caps the whole run,
    warm-up included; Ctrl-C ends it with what it measured (interrupted = True)."""
    st = scenario_settings(setup, args, target_qps=qps, latency_bound_ms=bound_ms, schedule_seed=seed,
                           min_duration_ms=min_duration_s * 1000.0, min_query_count=min_queries,
                           max_duration_ms=(args.max_duration if cap_s is None else cap_s) * 1000.0)
    reader = setup.dataset.reader(setup.batch, args.prefetch)
    result, interrupted = keep_partial(lambda: setup.core.run_server(setup.engines, reader, st, names=setup.names))
    return result, st, interrupted


def scenario_plan(st: Any, what: str) -> str:
    """One line before a scheduled run starts: what it will do and how long it may take."""
    warm = f"{st.warmup_iterations} warm-up requests" + (f" (>= {st.warmup_ms:g} ms)" if st.warmup_ms > 0 else "")
    return (f"running: {warm}, then {what} for >= {st.min_duration_ms / 1000:g} s and >= {st.min_query_count} "
            f"queries; the whole run is capped at {st.max_duration_ms / 1000:g} s (--max-duration). Ctrl-C stops "
            "it and keeps what was measured")


def curve_point(result: Any, role: str, interrupted: bool = False) -> dict[str, Any]:
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
        "interrupted": bool(interrupted),
    }


class SearchStopped(Exception):
    """Ends a peak search early: ``kind`` is "budget", "floor", "confirmations" or "interrupted"."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class PeakSearch:
    """One ``--find-peak`` search: a time budget for everything it runs, one progress line per run (printed, and
    always kept in the JSON, which is rewritten after every line), and the reason it stopped.

    The search: the bound (``--bound-x-median`` single-stream medians unless ``--p99-ms``), the offline
    capacity, then bisection between a floor and 1.1 x the offline capacity with short probes
    (``--probe-duration``); a probe whose percentile lands near the bound is run twice more with other schedules
    and passes on a majority. The highest passing rate is confirmed by ``--peak-runs`` full-length runs, all of
    which must be VALID; a failed confirmation steps down by twice ``--peak-tolerance``, at most
    MAX_CONFIRM_STEPS times. The floor is the lowest rate whose confirmation runs (``--min-queries`` each) still
    fit in the budget and in ``--max-duration``: below it no VALID result could be had in time, so a search that
    finds no passing rate above it stops and says so. Every run is capped at what is left of the budget.
    """

    def __init__(self, setup: Setup, args: argparse.Namespace, meta: dict[str, Any], *, budget_s: float,
                 log: Callable[[str], None] | None = None, json_path: str | None = None, bound_ms: float | None = None,
                 offline_qps: float | None = None) -> None:
        """``log`` receives every progress line (None: print them); ``json_path`` is rewritten after each one;
        ``bound_ms`` / ``offline_qps`` skip the yardstick runs that would measure them."""
        self.setup, self.args, self.meta = setup, args, meta
        self.started = time.monotonic()
        self.budget_s = float(budget_s)
        self.print_line = log if log is not None else (lambda line: print(line, flush=True))
        self.json_path = json_path
        self.warmup_s = args.warmup_ms / 1000.0
        self.pct = _pct_label(args.percentile / 100)
        self.curve: list[dict[str, Any]] = []
        self.progress: list[str] = []
        self.seed = args.schedule_seed
        self.bound_ms: float | None = bound_ms
        self.median_ms: float | None = None
        self.offline_qps: float | None = offline_qps
        self.floor_qps: float | None = None
        self.best_probe_qps: float | None = None
        self.peak_qps: float | None = None
        self.peak_run: tuple[Any, Any] | None = None
        self.stop_kind = "running"
        self.stop_reason = ""
        self._json_failed = False

    # ---------------------------------------------------------------------------------- budget and progress
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def remaining(self) -> float:
        return self.budget_s - self.elapsed()

    def log(self, line: str) -> None:
        stamped = f"[{self.elapsed():6.1f} s] {line}"
        self.progress.append(stamped)
        self.print_line(stamped)
        self.save_progress()

    def need(self, seconds: float, what: str) -> float:
        """Stop unless ``seconds`` (an estimate, with slack added here) fit in the budget; the run's cap in s."""
        needed = 1.2 * seconds + 0.5
        if needed > self.remaining():
            raise SearchStopped("budget", f"the budget of {self.budget_s:g} s (--budget) is spent: {what} needs about "
                                          f"{needed:.0f} s and {max(0.0, self.remaining()):.0f} s are left")
        return min(self.args.max_duration, self.remaining())

    def warmup_estimate_s(self) -> float:
        per_request = 1.0 / self.offline_qps if self.offline_qps else 0.0
        return self.warmup_s + self.args.warmup * per_request

    # ---------------------------------------------------------------------------------------------- runs
    def server_run(self, qps: float, duration_s: float, min_queries: int, seed: int, role: str) -> Any:
        cap = self.need(self.warmup_estimate_s() + max(duration_s, min_queries / qps), f"a {role} run at {qps:.2f} QPS")
        result, _st, interrupted = run_server_once(self.setup, self.args, qps, self.bound_ms, seed, duration_s,
                                                   min_queries, cap_s=cap)
        self.curve.append(curve_point(result, role, interrupted))
        if interrupted:
            raise SearchStopped("interrupted", f"interrupted (Ctrl-C) during a {role} run at {qps:.2f} QPS")
        if result.stopped_on_max_duration and cap < self.args.max_duration:
            raise SearchStopped("budget", f"the budget of {self.budget_s:g} s (--budget) ran out during a {role} run "
                                          f"at {qps:.2f} QPS")
        return result, _st

    def timed_run(self, what: str, run: Callable[[Any], Any], inflight: int | None = None) -> Any:
        """An offline / single-stream run of --probe-duration for the search's yardsticks."""
        core, args = self.setup.core, self.args
        cap = self.need(self.warmup_estimate_s() + args.probe_duration, what)
        st = make_settings(core, args, self.setup.batch)
        st.min_duration_ms = args.probe_duration * 1000.0
        st.max_duration_ms = cap * 1000.0
        st.min_iterations = 20
        if inflight is not None:
            st.inflight = inflight
        result, interrupted = keep_partial(lambda: run(st))
        if interrupted:
            raise SearchStopped("interrupted", f"interrupted (Ctrl-C) during the {what}")
        if result.iterations == 0:
            raise SearchStopped("budget", f"the {what} measured nothing within its {cap:.0f} s cap")
        return result

    def probe(self, qps: float) -> bool:
        passes = []
        for attempt in range(3):
            r, _ = self.server_run(qps, self.args.probe_duration, 1, self.seed, "probe" if attempt == 0 else "edge re-run")
            self.seed += 1
            ok = r.latency_at_percentile <= self.bound_ms and not r.stopped_on_max_duration
            passes.append(ok)
            self.log(f"{'probe' if attempt == 0 else 'edge re-run':<11} {qps:9.2f} QPS: {self.pct} "
                     f"{r.latency_at_percentile:8.3f} ms ({'under' if ok else 'over'} the {self.bound_ms:.3f} ms bound)")
            near_edge = 0.75 <= r.latency_at_percentile / self.bound_ms <= 1.33
            if not near_edge or passes.count(True) >= 2 or passes.count(False) >= 2:
                break
        return passes.count(True) > passes.count(False)

    def confirm(self, qps: float, seed: int) -> bool:
        args = self.args
        r, st = self.server_run(qps, args.min_duration, args.min_queries, seed, "confirm")
        self.log(f"{'confirm':<11} {qps:9.2f} QPS (schedule seed {seed}): {'VALID' if r.valid else 'INVALID'}, "
                 f"{self.pct} {r.latency_at_percentile:.3f} ms" + ("" if r.valid else f" ({'; '.join(r.invalid_reasons)})"))
        if r.valid:
            self.peak_run = (r, st)
        return bool(r.valid)

    def set_floor(self) -> None:
        """The lowest rate worth a probe: its --peak-runs confirmations of --min-queries must fit in what is left
        of the budget after the probes, and each in --max-duration."""
        args = self.args
        probes_s = (math.ceil(math.log2(1.0 / args.peak_tolerance)) + 3) * (args.probe_duration + self.warmup_estimate_s())
        confirm_s = max(self.remaining() - probes_s, self.remaining() / 2)
        per_run = min(args.max_duration, confirm_s / args.peak_runs) / 1.2 - self.warmup_estimate_s()
        self.floor_qps = max(args.min_queries / max(per_run, 1e-3), self.offline_qps / 1000.0)

    def no_rate_above_floor(self, detail: str) -> SearchStopped:
        return SearchStopped("floor", f"no VALID rate above {self.floor_qps:.2f} QPS: {detail}; below it "
                                      f"--peak-runs {self.args.peak_runs} runs of --min-queries {self.args.min_queries} "
                                      f"would not fit in the budget (--budget {self.budget_s:g} s)")

    # ---------------------------------------------------------------------------------------------- search
    def search(self) -> None:
        args, setup = self.args, self.setup
        if self.bound_ms is None:
            r = self.timed_run("single-stream median run", lambda st: setup.core.run_benchmark(
                setup.engines[0], setup.dataset.reader(setup.batch, args.prefetch), st), inflight=1)
            self.median_ms = float(r.latency.median)
            self.bound_ms = args.bound_x_median * self.median_ms
            self.log(f"bound: {args.bound_x_median:g} x the single-stream median {self.median_ms:.3f} ms = "
                     f"{self.bound_ms:.3f} ms ({self.pct})")
        if self.offline_qps is None:
            r = self.timed_run("offline capacity run", lambda st: setup.core.run_devices(
                setup.engines, setup.dataset.reader(setup.batch, args.prefetch), st, names=setup.names))
            self.offline_qps = float(r.throughput_per_s) / setup.batch
        self.set_floor()
        self.log(f"offline capacity: {self.offline_qps:.2f} QPS ({self.offline_qps * setup.batch:.1f} samples/s, batch "
                 f"{setup.batch}, {len(setup.engines)} device(s) x {args.inflight} request(s)); searching "
                 f"{self.floor_qps:.2f} .. {1.1 * self.offline_qps:.2f} QPS")
        lo, hi = 0.0, 1.1 * self.offline_qps
        if self.floor_qps >= hi:
            raise self.no_rate_above_floor(f"the offline capacity itself ({self.offline_qps:.2f} QPS) is below the floor")
        for _ in range(3):  # an engine that keeps up beyond its offline figure: widen the bracket
            if not self.probe(hi):
                break
            lo, hi = hi, hi * 1.5
        else:
            self.log(f"the bound still holds at {hi / 1.5:.1f} QPS; searching no higher")
        while hi - lo > args.peak_tolerance * hi:
            mid = max((lo + hi) / 2, self.floor_qps)
            if mid >= hi:
                break
            if self.probe(mid):
                lo = mid
            else:
                hi = mid
        if lo <= 0:
            raise self.no_rate_above_floor("every probe down to it missed the bound")
        self.best_probe_qps = lo
        candidate, seed = lo, args.schedule_seed + 1000
        for _ in range(MAX_CONFIRM_STEPS):
            if candidate < self.floor_qps:
                raise self.no_rate_above_floor(f"confirmation runs failed from {lo:.2f} QPS down to it")
            confirmed = 0
            for _ in range(args.peak_runs):
                ok = self.confirm(candidate, seed)
                seed += 1
                if not ok:
                    break
                confirmed += 1
            if confirmed == args.peak_runs:
                self.peak_qps = candidate
                self.stop_kind, self.stop_reason = "peak", f"peak confirmed by {args.peak_runs} VALID run(s)"
                return
            candidate *= 1.0 - 2 * args.peak_tolerance
        raise SearchStopped("confirmations", f"no VALID rate confirmed: {MAX_CONFIRM_STEPS} steps down from "
                                             f"{lo:.2f} QPS all failed a confirmation run")

    def run(self) -> None:
        try:
            self.search()
        except SearchStopped as stop:
            self.stop_kind, self.stop_reason = stop.kind, stop.reason
        except KeyboardInterrupt:  # Ctrl-C between runs
            self.stop_kind, self.stop_reason = "interrupted", "interrupted (Ctrl-C) between runs"
        self.progress.append(f"[{self.elapsed():6.1f} s] stopped: {self.stop_reason}")

    # ---------------------------------------------------------------------------------------------- output
    def document(self) -> dict[str, Any]:
        doc = dict(self.meta)
        peak_run = scenario_to_json(self.peak_run[0], self.meta, self.peak_run[1]) if self.peak_run else None
        doc.update({
            "scenario": "server",
            "find_peak": True,
            "status": "running" if self.stop_kind == "running" else "done",
            "stop": self.stop_kind,
            "stop_reason": self.stop_reason,
            "interrupted": self.stop_kind == "interrupted",
            "budget_s": self.budget_s,
            "elapsed_s": round(self.elapsed(), 3),
            "latency_bound_ms": self.bound_ms,
            "bound_percentile": self.args.percentile / 100.0,
            "single_stream_median_ms": self.median_ms,
            "offline_qps": self.offline_qps,
            "floor_qps": self.floor_qps,
            "best_passing_probe_qps": self.best_probe_qps,
            "peak_qps": self.peak_qps,
            "result": "VALID" if self.peak_qps else "INVALID",
            "peak_over_offline": (self.peak_qps / self.offline_qps) if self.peak_qps and self.offline_qps else None,
            "progress": list(self.progress),
            "curve": list(self.curve),
            "peak_run": peak_run,
        })
        return doc

    def save_progress(self) -> None:
        """Rewrite --json with what the search has so far (atomically; a failure is reported by the final save)."""
        if not self.json_path or self._json_failed:
            return
        try:
            report.write_json(self.document(), self.json_path)
        except Exception:  # noqa: BLE001 - the final save_output says what went wrong and saves elsewhere
            self._json_failed = True


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
    prog = "pymfn bench server"
    if args.find_peak:
        return _main_find_peak(args, setup, meta, prog)
    st = scenario_settings(setup, args, target_qps=args.qps, latency_bound_ms=args.p99_ms,
                           min_duration_ms=args.min_duration * 1000.0, min_query_count=args.min_queries)
    if not args.quiet:
        print(scenario_plan(st, f"Poisson arrivals at {args.qps:g} QPS"), flush=True)
    result, st, interrupted = run_server_once(setup, args, args.qps, args.p99_ms, args.schedule_seed, args.min_duration,
                                              args.min_queries)
    return _report_scenario(args, result, meta, st, prog, interrupted)


def _report_scenario(args: argparse.Namespace, result: Any, meta: dict[str, Any], st: Any, prog: str,
                     interrupted: bool) -> int:
    doc = scenario_to_json(result, meta, st)
    print(format_scenario(doc))
    json_at = _save_outputs(args, doc, prog, plot_scenario if doc["queries"] else None)
    if interrupted:
        return interrupted_exit(prog, partial_note(json_at, f"{doc['queries']} of {doc['queries_scheduled']} scheduled "
                                                            "queries completed"))
    return 0


def find_peak(setup: Setup, args: argparse.Namespace, bound_ms: float, offline_qps: float,
              log: Callable[[str], None], budget_s: float = math.inf) -> tuple[float | None, list[dict[str, Any]], Any, Any]:
    """The search for a given bound and offline capacity, as a library call: (peak or None, curve, the last VALID
    confirming result, its settings). Ctrl-C raises KeyboardInterrupt; see PeakSearch for the method."""
    search = PeakSearch(setup, args, {}, budget_s=budget_s, log=log, bound_ms=bound_ms, offline_qps=offline_qps)
    search.run()
    if search.stop_kind == "interrupted":
        raise KeyboardInterrupt(search.stop_reason)
    last, last_st = search.peak_run or (None, None)
    return search.peak_qps, search.curve, last, last_st


def _main_find_peak(args: argparse.Namespace, setup: Setup, meta: dict[str, Any], prog: str) -> int:
    search = PeakSearch(setup, args, meta, budget_s=args.budget, log=(lambda _line: None) if args.quiet else None,
                        json_path=args.json, bound_ms=args.p99_ms)
    where = f"; progress and results go to {args.json}" if args.json else ""
    print(f"find-peak: budget {search.budget_s:g} s (--budget) for the whole search; it stops when the budget is spent "
          f"or on Ctrl-C and keeps what it has{where}", flush=True)
    search.log("searching")
    search.run()
    doc = search.document()
    curve = doc["curve"]
    print()
    print("QPS target  achieved   median    p99       p99.9     role         verdict")
    for c in sorted(curve, key=lambda c: c["target_qps"]):
        lat = c["latency_ms"]
        verdict = "VALID" if c["valid"] else "INVALID (" + "; ".join(c["invalid_reasons"]) + ")"
        print(f"{c['target_qps']:<11.2f} {c['achieved_qps']:<10.2f} {lat['median']:<9.3f} {lat['p99']:<9.3f} "
              f"{lat['p999']:<9.3f} {c['role']:<12} {verdict}{' [interrupted]' if c.get('interrupted') else ''}")
    print()
    pct = _pct_label(args.percentile / 100)
    peak, offline, bound = doc["peak_qps"], doc["offline_qps"], doc["latency_bound_ms"]
    if peak:
        print(f"PEAK: {peak:.2f} QPS VALID ({pct} <= {bound:.3f} ms; confirmed by {args.peak_runs} full run(s) of "
              f">= {args.min_duration:g} s and >= {args.min_queries} queries) = {peak / offline:.3f} x the "
              f"back-to-back rate of {offline:.2f} QPS measured before the search (same engines and requests; "
              f"{args.probe_duration:g} s, as noisy as the machine)")
    else:
        best = doc["best_passing_probe_qps"]
        unconfirmed = f"; the highest passing probe, {best:.2f} QPS, is not confirmed" if best else ""
        print(f"PEAK: none — {doc['stop_reason']}{unconfirmed}")
    print(f"search: {doc['elapsed_s']:.1f} s of its {search.budget_s:g} s budget; stopped: {doc['stop_reason']}")
    json_at = _save_outputs(args, doc, prog, plot_curve if curve else None)
    if doc["interrupted"]:
        return interrupted_exit(prog, partial_note(json_at, f"{len(curve)} runs of the search"))
    return 0 if peak else 1


def _save_outputs(args: argparse.Namespace, doc: dict[str, Any], prog: str,
                  plot: Callable[[dict[str, Any], Any], None] | None) -> Path | None:
    json_at = None
    if args.json and (json_at := save_output(args.json, lambda p: report.write_json(doc, p), "--json", prog)):
        print(f"\nJSON written to {json_at}")
    if args.plot and plot is not None and (where := save_output(args.plot, lambda p: plot(doc, p), "--plot", prog)):
        print(f"plot written to {where}")
    return json_at


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
    if not args.quiet:
        print(scenario_plan(st, f"a query of {args.samples_per_query} samples every {args.interval_ms:g} ms"), flush=True)
    reader = setup.dataset.reader(setup.batch, args.prefetch)
    result, interrupted = keep_partial(lambda: setup.core.run_multistream(setup.engines, reader, st, names=setup.names))
    return _report_scenario(args, result, meta, st, "pymfn bench multistream", interrupted)


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
    check_schedule_fits(args)


def check_schedule_fits(args: argparse.Namespace) -> None:
    """A schedule that cannot hold --min-queries within --max-duration (warm-up included) would only ever give an
    INVALID run, and one beyond what the runner holds would fail: both are refused before any model loads."""
    cap, warmup_s = args.max_duration, args.warmup_ms / 1000.0
    if getattr(args, "find_peak", False):
        floor_s = args.peak_runs * (args.min_duration + warmup_s) + 2 * (args.probe_duration + warmup_s)
        if args.budget < floor_s:
            raise SystemExit(f"--budget {args.budget:g} s cannot hold a search: the offline run and one probe "
                             f"(--probe-duration {args.probe_duration:g} s each) and --peak-runs {args.peak_runs} "
                             f"confirmations (--min-duration {args.min_duration:g} s each) need at least {floor_s:g} s")
        return
    if getattr(args, "qps", None) is not None:
        option, rate = f"--qps {args.qps:g}", args.qps
        length = args.min_queries / args.qps
        what = f"--min-queries {args.min_queries} queries at {args.qps:g} QPS take about {length:.3g} s"
    elif getattr(args, "interval_ms", None) is not None:
        option, rate = f"--interval-ms {args.interval_ms:g}", 1000.0 / args.interval_ms
        length = (args.min_queries - 1) * args.interval_ms / 1000.0
        what = f"--min-queries {args.min_queries} queries every {args.interval_ms:g} ms take {length:.3g} s"
    else:
        return
    queries = rate * max(length, args.min_duration)
    if queries > MAX_SCHEDULED_QUERIES:
        raise SystemExit(f"{option}: the schedule would hold about {queries:.3g} queries; a run holds at most "
                         f"{MAX_SCHEDULED_QUERIES:,}")
    if length + warmup_s > cap:
        plus = f" plus --warmup-ms {args.warmup_ms:g}" if warmup_s else ""
        raise SystemExit(f"{option}: {what}{plus}, more than --max-duration {cap:g} s (the cap covers the whole run, "
                         "warm-up included): the run could never be VALID")


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
                   help="cap on the whole run, warm-up included: stop issuing after this many seconds (the run is "
                   "then INVALID; default 300)")
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
    g.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S,
                   help=f"--find-peak: seconds the whole search may take (default {DEFAULT_BUDGET_S:g}); every run is "
                   "capped at what is left, and when it is spent the search stops and keeps what it has")
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


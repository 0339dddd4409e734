"""Latency under load: the LoadGen server and multi-stream scenarios, and the search for the peak QPS.

:func:`server` sends queries to the model as a Poisson process at ``qps`` queries per second (a seeded schedule
made before the run) and reports each query's latency from its SCHEDULED arrival, so a slow query makes every
query queued behind it late too (no coordinated omission). The run is VALID when the p99 stays under the bound,
the run lasted ``min_duration_s`` and ``min_queries`` completed. :func:`find_peak` searches the highest rate that
stays VALID (bisection between a floor and the measured offline capacity, probes near the bound re-run, the
candidate confirmed by full runs) and keeps the latency-vs-QPS curve. :func:`multistream` issues a query of N
samples every interval and reports the p99 of query latency. ``ScenarioSettings(devices=(0, 1))`` spreads the
queries over devices (the free request slot idle longest gets the next query).

The timing loop is C++ (``pymfn._core.run_server`` / ``run_multistream``, GIL released).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np

from pymfn.bench import report
from pymfn.bench.audit import AuditSettings, attach_audit, audit_lines, recording
from pymfn.bench.early_stopping import too_many_over
from pymfn.bench.perf import DocumentResult, LatencyStats, Log
from pymfn.bench.settings import (PeakSearchSettings, ScenarioSettings, SettingError, check_int, check_number,
                                  check_schedule_fits, check_search_fits, check_time_window)
from pymfn.bench.target import (InputLike, ModelLike, Target, check_batch, choose_batch, keep_partial, open_target,
                               run_meta)
from pymfn.files.atomic import atomic_write

LATENCY_EXPLANATIONS = [
    ("latency", "per query: completion - SCHEDULED arrival (time queued behind slower queries counts)"),
    ("issue delay", "issued - scheduled = queue wait (no free request slot) + harness lateness (the scheduler's own)"),
    ("achieved QPS", "completed queries / (schedule start .. last completion)"),
    ("scheduled QPS", "the seeded schedule's own rate (queries / last arrival); the target is its expectation"),
    ("VALID", "the bound percentile of latency <= the bound, the run lasted --min-duration and --min-queries completed, "
     "nothing was cut off by --max-duration (LoadGen's rules)"),
]


# A failed confirmation steps the candidate down by 2 x peak_tolerance; this many steps (0.9**8 = 0.43 of the
# search's result with the default tolerance) before the search gives up.
MAX_CONFIRM_STEPS = 8
#: find_peak's default budget: the whole search, from the first yardstick run to the last confirmation.
DEFAULT_BUDGET_S = 240.0
#: What ``server()`` / ``find_peak()`` fill in where a ScenarioSettings field is None.
SERVER_DEFAULTS = {"min_duration_s": 10.0, "max_duration_s": 300.0, "inflight": 1, "min_queries": 1024}
#: The same for ``multistream()``.
MULTISTREAM_DEFAULTS = {"min_duration_s": 10.0, "max_duration_s": 300.0, "inflight": 1, "min_queries": 100}


def settings_dict(st: Any) -> dict[str, Any]:
    keys = ["batch_size", "inflight", "warmup_iterations", "warmup_ms", "min_duration_ms", "max_duration_ms",
            "target_qps", "schedule_seed", "samples_per_query", "query_interval_ms", "latency_bound_ms",
            "bound_percentile", "min_query_count", "late_threshold_ms", "scheduler_spin_ms", "max_batch",
            "max_queue_delay_ms", "keep_warm_threads"]
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
    if int(result.keep_warm_threads) > 0:
        doc["keep_warm"] = {"threads": int(result.keep_warm_threads), "cpu_ms": float(result.keep_warm_cpu_ms),
                            "cores_while_running": float(result.keep_warm_cpu_ms) / float(result.duration_ms)
                            if result.duration_ms > 0 else 0.0}
    if int(result.max_batch) > 1:
        doc["batching"] = batching_dict(result, settings)
        doc["requests_raw"] = {
            "issued_ms": _floats(result.request_issued_ms),
            "completed_ms": _floats(result.request_completed_ms),
            "queries": [int(x) for x in np.asarray(result.request_queries)],
            "rows": [int(x) for x in np.asarray(result.request_rows)],
        }
    if doc["scenario"] == "server":
        doc["early_stopping"] = server_early_stopping(doc).to_dict()
    return doc


def batching_dict(result: Any, settings: Any) -> dict[str, Any]:
    """What the server's batcher did: queries per request and the rows the engine ran for them."""
    queries = np.asarray(result.request_queries, dtype=np.int64)
    rows = np.asarray(result.request_rows, dtype=np.int64)
    return {
        "max_batch": int(result.max_batch),
        "max_queue_delay_ms": float(settings.max_queue_delay_ms),
        "mean_queries_per_request": float(result.mean_queries_per_request),
        "requests_by_queries": {int(k): int(n) for k, n in zip(*np.unique(queries, return_counts=True))},
        "requests_by_rows": {int(k): int(n) for k, n in zip(*np.unique(rows, return_counts=True))},
        "padding_rows": int(result.padding_rows),
    }


def batching_line(doc: dict[str, Any]) -> str:
    b = doc.get("batching")
    if not b:
        return ""
    sizes = ", ".join(f"{n} x {k}" for k, n in sorted(b["requests_by_queries"].items(), key=lambda kv: int(kv[0])))
    rows = ", ".join(f"{n} x {k}" for k, n in sorted(b["requests_by_rows"].items(), key=lambda kv: int(kv[0])))
    held = f", held up to {b['max_queue_delay_ms']:g} ms for more" if b["max_queue_delay_ms"] > 0 else ""
    return (f"up to {b['max_batch']} queries per request{held}: mean {b['mean_queries_per_request']:.2f} "
            f"(requests x queries: {sizes}); engine rows per request: {rows}; {b['padding_rows']} padding rows")


def server_early_stopping(doc: dict[str, Any]) -> Any:
    """LoadGen's early-stopping view of a server run's query latencies (see pymfn.bench.early_stopping)."""
    from pymfn.bench.early_stopping import early_stopping

    raw = doc["queries_raw"]
    latencies = np.asarray(raw["completed_ms"], dtype=np.float64) - np.asarray(raw["scheduled_ms"], dtype=np.float64)
    return early_stopping(latencies, doc["latency_bound_ms"], doc["bound_percentile"])


def _floats(values: Any) -> list[float]:
    return [float(x) for x in np.asarray(values)]


def _pct_label(fraction: float) -> str:
    p = fraction * 100.0
    return f"p{p:g}"


def format_scenario(doc: dict[str, Any]) -> str:
    """The report of one scheduled run: rates, latency, issue delays, the verdict and why."""
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
        ("Batching", batching_line(doc)),
        ("Keep-warm", f"{doc['keep_warm']['threads']} thread(s) spun between requests: {doc['keep_warm']['cpu_ms'] / 1000:.2f} "
                      f"CPU-s, {doc['keep_warm']['cores_while_running']:.2f} cores over the run" if doc.get("keep_warm") else ""),
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
    if doc.get("early_stopping"):
        from pymfn.bench.early_stopping import EarlyStopping

        out.append(EarlyStopping(**doc["early_stopping"]).line())
    out += audit_lines(doc.get("audit"))
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


# ------------------------------------------------------------------------------------------------ results
@dataclass
class ScenarioRunResult(DocumentResult):
    """One scheduled run (server or multi-stream): the verdict, rates, per-query latency and its raw times."""

    document: dict[str, Any] = field(repr=False)
    settings: ScenarioSettings = field(default_factory=ScenarioSettings, repr=False)

    kind: ClassVar[str] = "scenario"

    @property
    def valid(self) -> bool:
        """LoadGen's verdict: the bound held, the run lasted its minimums, nothing was cut off."""
        return bool(self.document["valid"])

    @property
    def invalid_reasons(self) -> list[str]:
        return list(self.document["invalid_reasons"])

    @property
    def latency(self) -> LatencyStats:
        """Per-query latency from the scheduled arrival to completion (ms)."""
        return LatencyStats.from_dict(self.document["latency_ms"])

    @property
    def median_ms(self) -> float:
        return float(self.document["latency_ms"]["median"])

    @property
    def p99_ms(self) -> float:
        return float(self.document["latency_ms"]["p99"])

    @property
    def latency_at_percentile_ms(self) -> float:
        """The latency at the bound's percentile (``settings.percentile``), the figure the verdict compares."""
        return float(self.document["latency_at_percentile_ms"])

    @property
    def latency_bound_ms(self) -> float:
        return float(self.document["latency_bound_ms"])

    @property
    def achieved_qps(self) -> float:
        return float(self.document["achieved_qps"])

    @property
    def target_qps(self) -> float:
        return float(self.document["target_qps"])

    @property
    def queries(self) -> int:
        return int(self.document["queries"])

    @property
    def samples_ms(self) -> list[float]:
        """Every completed query's latency from its scheduled arrival (ms), in completion order."""
        raw = self.document["queries_raw"]
        return [c - s for c, s in zip(raw["completed_ms"], raw["scheduled_ms"])]

    @property
    def stop_reason(self) -> str:
        return str(self.document["stop_reason"])

    def report(self) -> str:
        return format_scenario(self.document)

    def plot(self, path: str | Path) -> Path:
        """Latency of every query over its scheduled arrival beside a histogram (needs a completed query)."""
        if not self.document["queries"]:
            raise ValueError(f"a {self.kind} result without completed queries has nothing to plot")
        plot_scenario(self.document, path)
        return Path(path)

    def csv_rows(self) -> list[dict[str, Any]]:
        row = super().csv_rows()[0]
        row.update({f"latency_{k}_ms": v for k, v in self.document["latency_ms"].items()})
        kw = self.document.get("keep_warm")
        if kw:
            row.update({"keep_warm_threads": kw["threads"], "keep_warm_cpu_ms": kw["cpu_ms"]})
        b = self.document.get("batching")
        if b:
            row.update({"max_batch": b["max_batch"], "max_queue_delay_ms": b["max_queue_delay_ms"],
                        "mean_queries_per_request": b["mean_queries_per_request"], "padding_rows": b["padding_rows"]})
        es = self.document.get("early_stopping")
        if es:
            row.update({"early_stopping_estimate_ms": es["estimate_ms"], "early_stopping_decided": es["decided"],
                        "early_stopping_over_bound": es["over_bound"],
                        "early_stopping_needed_queries": es["needed_queries"]})
        return [row]


@dataclass
class ServerResult(ScenarioRunResult):
    kind: ClassVar[str] = "server"


@dataclass
class MultistreamResult(ScenarioRunResult):
    kind: ClassVar[str] = "multistream"


@dataclass
class PeakResult(DocumentResult):
    """A peak-QPS search: the peak (None when none was confirmed), every run on the curve, why it stopped."""

    document: dict[str, Any] = field(repr=False)
    settings: ScenarioSettings = field(default_factory=ScenarioSettings, repr=False)
    search: PeakSearchSettings = field(default_factory=PeakSearchSettings, repr=False)

    kind: ClassVar[str] = "find-peak"

    @property
    def peak_qps(self) -> float | None:
        return self.document["peak_qps"]

    @property
    def offline_qps(self) -> float | None:
        """The back-to-back rate measured before the search (queries per second)."""
        return self.document["offline_qps"]

    @property
    def latency_bound_ms(self) -> float | None:
        return self.document["latency_bound_ms"]

    @property
    def budget_s(self) -> float:
        return float(self.document["budget_s"])

    @property
    def elapsed_s(self) -> float:
        return float(self.document["elapsed_s"])

    @property
    def curve(self) -> list[dict[str, Any]]:
        """One entry per server run of the search (role probe / edge re-run / confirm), in run order."""
        return copy_list(self.document["curve"])

    @property
    def stop(self) -> str:
        """Why the search ended: "peak", "budget", "floor", "confirmations" or "interrupted"."""
        return str(self.document["stop"])

    @property
    def stop_reason(self) -> str:
        return str(self.document["stop_reason"])

    @property
    def progress(self) -> list[str]:
        return list(self.document["progress"])

    @property
    def peak_run(self) -> ServerResult | None:
        """The last VALID confirmation run at the peak."""
        doc = self.document.get("peak_run")
        return ServerResult(doc, self.settings) if doc else None

    def report(self) -> str:
        """The curve as a table, the peak against the offline rate, and how the search ended."""
        doc, st, search = self.document, self.settings, self.search
        out = ["QPS target  achieved   median    p99       p99.9     role         verdict"]
        for c in sorted(doc["curve"], key=lambda c: c["target_qps"]):
            lat = c["latency_ms"]
            verdict = "VALID" if c["valid"] else "INVALID (" + "; ".join(c["invalid_reasons"]) + ")"
            out.append(f"{c['target_qps']:<11.2f} {c['achieved_qps']:<10.2f} {lat['median']:<9.3f} {lat['p99']:<9.3f} "
                       f"{lat['p999']:<9.3f} {c['role']:<12} {verdict}{' [interrupted]' if c.get('interrupted') else ''}")
        out.append("")
        pct = _pct_label(st.percentile / 100)
        peak, offline, bound = doc["peak_qps"], doc["offline_qps"], doc["latency_bound_ms"]
        if peak:
            queries = doc["peak_run"]["queries"] if doc.get("peak_run") else st.min_queries
            decided = " (decided by early stopping)" if queries < st.min_queries else ""
            out.append(f"PEAK: {peak:.2f} QPS VALID ({pct} <= {bound:.3f} ms; confirmed by {search.peak_runs} "
                       f"run(s) of >= {st.min_duration_s:g} s, the last of {queries} queries{decided}) = {peak / offline:.3f} x "
                       f"the back-to-back rate of {offline:.2f} QPS measured before the search (same engines and "
                       f"requests; {search.probe_duration_s:g} s, as noisy as the machine)")
            out += ceiling_lines(doc.get("ceilings"), peak, offline)
        else:
            best = doc["best_passing_probe_qps"]
            unconfirmed = f"; the highest passing probe, {best:.2f} QPS, is not confirmed" if best else ""
            out.append(f"PEAK: none — {doc['stop_reason']}{unconfirmed}")
        out += batching_lines(doc.get("batching"))
        out.append(f"search: {doc['elapsed_s']:.1f} s of its {doc['budget_s']:g} s budget; stopped: {doc['stop_reason']}")
        return "\n".join(out)

    def plot(self, path: str | Path) -> Path:
        """Every run's percentile (and median) against its target QPS, with the bound and the peak."""
        if not self.document["curve"]:
            raise ValueError("a peak search without runs has nothing to plot")
        plot_curve(self.document, path)
        return Path(path)

    def csv_rows(self) -> list[dict[str, Any]]:
        """One row per run of the search."""
        rows = []
        for c in self.document["curve"]:
            row = {k: v for k, v in c.items() if k not in ("latency_ms", "invalid_reasons")}
            row.update({f"latency_{k}_ms": v for k, v in c["latency_ms"].items()})
            row["invalid_reasons"] = "; ".join(c["invalid_reasons"])
            rows.append(row)
        return rows


def batching_verdict(peak: float | None, unbatched_ceiling: float, offline: float, servers: int, lone_ms: float,
                     max_batch: int, per_request: bool) -> dict[str, Any]:
    """Whether batching helped: the peak (None: no VALID rate) against the best an unbatched server reaches with
    one-query requests back to back (their M/G/c ceiling), and why, from what a full request buys over lone
    queries and whether the engine pads requests to the full size."""
    lone_capacity = servers * 1000.0 / lone_ms if lone_ms > 0 else math.inf
    gain = offline / lone_capacity if lone_capacity > 0 else 0.0
    helped = bool(peak) and unbatched_ceiling > 0 and peak > 1.1 * unbatched_ceiling
    full_ms = servers * 1000.0 * max_batch / offline if offline > 0 else math.inf
    pads = "" if per_request else (f"; this engine cannot choose a batch per request, so every request runs all "
                                   f"{max_batch} rows (about {full_ms:.1f} ms), a lone query too")
    if gain > 1.1:
        why = (f"a request of {max_batch} queries serves them {gain:.2f} x as fast as one-query requests back to "
               f"back ({offline:.1f} vs {lone_capacity:.1f} QPS): the engine has idle width that a batch fills")
    else:
        why = (f"a request of {max_batch} queries serves them no faster than one-query requests back to back "
               f"({offline:.1f} vs {lone_capacity:.1f} QPS, {gain:.2f} x): one query already keeps the engine busy, "
               "so merging queries only makes them wait for each other")
    return {"helped": helped, "unbatched_ceiling_qps": unbatched_ceiling,
            "peak_over_unbatched_ceiling": peak / unbatched_ceiling if peak and unbatched_ceiling else None,
            "batch_speedup": gain, "one_query_capacity_qps": lone_capacity, "engine_batch_per_request": per_request,
            "why": why + pads}


def ceiling_lines(ceilings: dict[str, Any] | None, peak: float, offline: float) -> list[str]:
    """Where the gap between the peak and the offline rate comes from, in the M/G/c ceilings' terms."""
    if not ceilings:
        return []
    if ceilings.get("max_batch"):
        return batched_ceiling_lines(ceilings, peak)
    out = [f"M/G/{ceilings['servers']} ceilings at the bound (ideal FCFS queue, Poisson arrivals, measured service "
           "times resampled):"]
    warm = ceilings.get("back_to_back_service")
    if warm:
        out.append(f"  back-to-back service (mean {warm['mean_service_ms']:.3f} ms): {warm['qps']:.2f} QPS = "
                   f"{warm['qps'] / offline:.3f} x offline -- what queueing alone leaves")
    run = ceilings.get("peak_run_service")
    if run:
        slower = f", {run['mean_service_ms'] / warm['mean_service_ms']:.2f} x back to back" if warm else ""
        out.append(f"  the peak run's own service (mean {run['mean_service_ms']:.3f} ms{slower}): {run['qps']:.2f} QPS; "
                   f"the peak is {peak / run['qps']:.3f} x it" if run["qps"] else
                   f"  the peak run's own service: its {run['percentile']:g}th percentile alone "
                   f"({run['service_percentile_ms']:.3f} ms) exceeds the bound")
        if run["qps"] and warm:
            out.append(f"  gap to offline: queueing {1 - warm['qps'] / offline:.0%}, longer service at this rate "
                       f"(idle-host wake-up) {max(0.0, warm['qps'] - run['qps']) / offline:.0%}, harness and noise "
                       f"{max(0.0, run['qps'] - peak) / offline:.0%} of the offline rate")
    return out


def batched_ceiling_lines(ceilings: dict[str, Any], peak: float) -> list[str]:
    out = [f"M/G/{ceilings['servers']} ceilings at the bound (ideal FCFS queue, Poisson arrivals, measured service "
           "times resampled):"]
    run, warm = ceilings.get("peak_run_service"), ceilings.get("back_to_back_service")
    if run:
        out.append(f"  batched, from the peak run's requests (greedy batcher, up to {ceilings['max_batch']} queries): "
                   f"{run['qps']:.2f} QPS; the peak is {peak / run['qps']:.3f} x it" if run["qps"] else
                   "  batched: the one-query requests' percentile alone exceeds the bound")
    if warm:
        out.append(f"  unbatched, one-query requests back to back (mean {warm['mean_service_ms']:.3f} ms): "
                   f"{warm['qps']:.2f} QPS")
    return out


def batching_lines(verdict: dict[str, Any] | None) -> list[str]:
    if not verdict:
        return []
    ratio = verdict["peak_over_unbatched_ceiling"]
    if verdict["helped"]:
        head = f"batching helped: the peak is {ratio:.2f} x the unbatched ceiling ({verdict['unbatched_ceiling_qps']:.2f} QPS)"
    elif ratio:
        head = f"batching did not help: the peak is {ratio:.2f} x the unbatched ceiling ({verdict['unbatched_ceiling_qps']:.2f} QPS)"
    else:
        head = (f"batching did not help: no VALID rate, while one-query requests would reach "
                f"{verdict['unbatched_ceiling_qps']:.2f} QPS (their M/G/c ceiling)")
    return [f"{head}; {verdict['why']}"]


def copy_list(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    import copy

    return copy.deepcopy(items)


# ------------------------------------------------------------------------------------------------ server
def _check_rate(name: str, value: Any) -> None:
    check_number(name, value, 0.0, low_open=True)


def _scenario_settings(settings: ScenarioSettings | None, defaults: dict[str, Any]) -> ScenarioSettings:
    if settings is not None and not isinstance(settings, ScenarioSettings):
        raise TypeError(f"settings must be a pymfn.bench.ScenarioSettings, got {type(settings).__name__}")
    return (settings or ScenarioSettings()).with_defaults(**defaults)  # type: ignore[return-value]


def run_server_once(target: Target, st: ScenarioSettings, qps: float, bound_ms: float, seed: int, min_duration_s: float,
                    min_queries: int, cap_s: float | None = None) -> tuple[Any, Any, bool]:
    """One server run: (native result, its native settings, interrupted). ``cap_s`` (default ``max_duration_s``)
    caps the whole run, warm-up included; Ctrl-C ends it with what it measured (interrupted = True)."""
    native = st.to_core(target.core, target.batch)
    native.target_qps = qps
    native.latency_bound_ms = bound_ms
    native.schedule_seed = seed
    native.min_duration_ms = min_duration_s * 1000.0
    native.min_query_count = min_queries
    native.max_duration_ms = (st.max_duration_s if cap_s is None else cap_s) * 1000.0
    reader = target.reader()
    result, interrupted = keep_partial(lambda: target.core.run_server(target.engines, reader, native, names=target.names))
    return result, native, interrupted


def scenario_plan(st: Any, what: str) -> str:
    """One line before a scheduled run starts: what it will do and how long it may take."""
    warm = f"{st.warmup_iterations} warm-up requests" + (f" (>= {st.warmup_ms:g} ms)" if st.warmup_ms > 0 else "")
    return (f"running: {warm}, then {what} for >= {st.min_duration_ms / 1000:g} s and >= {st.min_query_count} "
            f"queries; the whole run is capped at {st.max_duration_ms / 1000:g} s (--max-duration). Ctrl-C stops "
            "it and keeps what was measured")


def server(model: ModelLike, *, qps: float, p99_ms: float, batch: int = 1, precision: str = "f32",
           engine: str | None = None, input: InputLike = None, settings: ScenarioSettings | None = None,
           log: Log | None = None, audit: AuditSettings | None = None) -> ServerResult:
    """LoadGen's server scenario: Poisson arrivals at ``qps`` queries per second (one query = one request of
    ``batch`` samples), VALID when the ``settings.percentile`` (99) of query latency stays under ``p99_ms``.

    ``model``, ``precision``, ``engine`` and ``input`` are those of :func:`latency`. Fields of ``settings`` left
    None take 10 s minimum, 1024 queries, a 300 s cap and one request slot per device. ``log`` receives the
    one-line plan before the run. ``audit=AuditSettings()`` adds TEST01/TEST04 verdicts (:mod:`pymfn.bench.audit`).
    Ctrl-C (or SIGTERM) returns what was measured, ``interrupted=True``.

    >>> import pymfn.bench as b
    >>> r = b.server(b.default_model(), qps=20, p99_ms=50,
    ...              settings=b.ScenarioSettings(min_duration_s=0.5, min_queries=10))
    >>> r.queries >= 10 and r.p99_ms > 0 and r.valid in (True, False)
    True
    """
    _check_rate("qps", qps)
    _check_rate("p99_ms", p99_ms)
    check_batch(batch)
    st = _scenario_settings(settings, SERVER_DEFAULTS)
    check_schedule_fits(st, qps=qps)
    target = open_target(model, engine=engine, precision=precision, input=input, settings=st,
                       batch_for=lambda e: choose_batch(e, batch))
    if audit is not None:
        target.engines = recording(target.core, target.engines, audit)
    meta = run_meta(target, "server")
    meta["scope"] = "scheduled arrival to completion"
    if log is not None:
        plan = st.to_core(target.core, target.batch)
        plan.target_qps, plan.latency_bound_ms = qps, p99_ms
        log(scenario_plan(plan, f"Poisson arrivals at {qps:g} QPS"))
    result, native, _ = run_server_once(target, st, qps, p99_ms, st.schedule_seed, st.min_duration_s, st.min_queries)
    doc = scenario_to_json(result, meta, native)
    if audit is not None:
        attach_audit(doc, target.core, target.engines, target.batch, audit, log)
    return ServerResult(doc, st)


# ------------------------------------------------------------------------------------------------ peak search
def early_stopping_of(result: Any) -> Any:
    """Early stopping of a native server result (pymfn.bench.early_stopping)."""
    return server_early_stopping({"queries_raw": {"completed_ms": result.completed_ms,
                                                  "scheduled_ms": result.scheduled_ms},
                                  "latency_bound_ms": float(result.latency_bound_ms),
                                  "bound_percentile": float(result.bound_percentile)})


def curve_point(result: Any, role: str, interrupted: bool = False) -> dict[str, Any]:
    es = early_stopping_of(result)
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
        "early_stopping_estimate_ms": es.estimate_ms,
        "early_stopping_decided": es.decided,
        "mean_queries_per_request": float(result.mean_queries_per_request),
    }


class SearchStopped(Exception):
    """Ends a peak search early: ``kind`` is "budget", "floor", "confirmations" or "interrupted"."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class PeakSearch:
    """One peak search: a time budget for everything it runs, one progress line per run (passed to ``log`` and
    always kept in the document, which is rewritten to ``json_path`` after every line), and why it stopped.

    The search: the bound (``bound_x_median`` single-stream medians unless given), the offline capacity, then
    bisection between a floor and 1.1 x the offline capacity with short probes (``probe_duration_s``); a probe
    whose percentile lands near the bound is run twice more with other schedules and passes on a majority. The
    highest passing rate is confirmed by ``peak_runs`` full-length runs, all of which must be VALID; a failed
    confirmation steps down by twice ``peak_tolerance``, at most MAX_CONFIRM_STEPS times. The floor is the lowest
    rate whose confirmation runs (``min_queries`` each) still fit in the budget and in ``max_duration_s``: below
    it no VALID result could be had in time, so a search that finds no passing rate above it stops and says so.
    Every run is capped at what is left of the budget.
    """

    def __init__(self, target: Target, settings: ScenarioSettings, search: PeakSearchSettings, meta: dict[str, Any], *,
                 budget_s: float, log: Log | None = None, json_path: str | Path | None = None,
                 bound_ms: float | None = None, offline_qps: float | None = None) -> None:
        """``log`` receives every progress line (None: they are only kept); ``json_path`` is rewritten after each
        one; ``bound_ms`` / ``offline_qps`` skip the yardstick runs that would measure them."""
        self.target, self.st, self.ss, self.meta = target, settings, search, meta
        self.started = time.monotonic()
        self.budget_s = float(budget_s)
        self.print_line = log if log is not None else (lambda _line: None)
        self.json_path = json_path
        self.warmup_s = settings.warmup_ms / 1000.0
        self.pct = _pct_label(settings.percentile / 100)
        self.curve: list[dict[str, Any]] = []
        self.progress: list[str] = []
        self.seed = settings.schedule_seed
        self.bound_ms: float | None = bound_ms
        self.median_ms: float | None = None
        self.single_stream_ms: list[float] = []  # back-to-back service times of the single-stream run
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
        return min(self.st.max_duration_s, self.remaining())

    def warmup_estimate_s(self) -> float:
        per_request = 1.0 / self.offline_qps if self.offline_qps else 0.0
        return self.warmup_s + self.st.warmup_iterations * per_request

    # ---------------------------------------------------------------------------------------------- runs
    def server_run(self, qps: float, duration_s: float, min_queries: int, seed: int, role: str) -> Any:
        cap = self.need(self.warmup_estimate_s() + max(duration_s, min_queries / qps), f"a {role} run at {qps:.2f} QPS")
        result, native, interrupted = run_server_once(self.target, self.st, qps, self.bound_ms, seed, duration_s,
                                                      min_queries, cap_s=cap)
        self.curve.append(curve_point(result, role, interrupted))
        stop = None
        if interrupted:
            stop = SearchStopped("interrupted", f"interrupted (Ctrl-C) during a {role} run at {qps:.2f} QPS")
        elif result.stopped_on_max_duration and cap < self.st.max_duration_s:
            stop = SearchStopped("budget", f"the budget of {self.budget_s:g} s (--budget) ran out during a {role} "
                                           f"run at {qps:.2f} QPS")
        if stop is not None:  # every run in the curve has its progress line, a cut one too
            self.log(f"{role:<11} {qps:9.2f} QPS: cut short after {int(result.queries)} queries")
            raise stop
        return result, native

    def timed_run(self, what: str, run: Callable[[Any], Any], inflight: int | None = None, rows: int | None = None) -> Any:
        """An offline / single-stream run of ``probe_duration_s`` for the search's yardsticks, in batches of
        ``rows`` (default: the target's batch)."""
        cap = self.need(self.warmup_estimate_s() + self.ss.probe_duration_s, what)
        native = self.st.to_core(self.target.core, rows or self.target.batch)
        native.max_batch = 1
        native.min_duration_ms = self.ss.probe_duration_s * 1000.0
        native.max_duration_ms = cap * 1000.0
        native.min_iterations = 20
        if inflight is not None:
            native.inflight = inflight
        result, interrupted = keep_partial(lambda: run(native))
        if interrupted:
            raise SearchStopped("interrupted", f"interrupted (Ctrl-C) during the {what}")
        if result.iterations == 0:
            raise SearchStopped("budget", f"the {what} measured nothing within its {cap:.0f} s cap")
        return result

    def probe(self, qps: float) -> bool:
        passes = []
        for attempt in range(3):
            r, _ = self.server_run(qps, self.ss.probe_duration_s, 1, self.seed, "probe" if attempt == 0 else "edge re-run")
            self.seed += 1
            # A probe is short: it fails when its queries over the bound are too many for the percentile to sit
            # at or under it (binomial test), not on its p99 alone, which a single stall decides. The
            # confirmations judge by LoadGen's rules.
            latencies = np.asarray(r.completed_ms, dtype=np.float64) - np.asarray(r.scheduled_ms, dtype=np.float64)
            over = int(np.count_nonzero(latencies > self.bound_ms))
            ok = (latencies.size > 0 and not r.stopped_on_max_duration
                  and not too_many_over(over, int(latencies.size), self.st.percentile / 100.0))
            passes.append(ok)
            self.log(f"{'probe' if attempt == 0 else 'edge re-run':<11} {qps:9.2f} QPS: {self.pct} "
                     f"{r.latency_at_percentile:8.3f} ms, {over} of {latencies.size} queries over the "
                     f"{self.bound_ms:.3f} ms bound ({'passes' if ok else 'fails'})")
            near_edge = 0.75 <= r.latency_at_percentile / self.bound_ms <= 1.33
            if not near_edge or passes.count(True) >= 2 or passes.count(False) >= 2:
                break
        return passes.count(True) > passes.count(False)

    def early_queries(self) -> int:
        """The fewest queries LoadGen's early stopping can decide the bound from (none over it): 459 at p99."""
        from pymfn.bench.early_stopping import min_passing

        return min_passing(0, self.st.percentile / 100.0)

    def confirm(self, qps: float, seed: int) -> bool:
        """One confirmation: first with early stopping's minimum of queries (when below ``min_queries``); VALID
        there only when early stopping decides the bound holds; a run within the bound but undecided is redone
        with the full ``min_queries``."""
        short = self.early_queries()
        if short < self.st.min_queries:
            r, native = self.server_run(qps, self.st.min_duration_s, short, seed, "confirm")
            es = early_stopping_of(r)
            if r.valid and es.decided:
                self.log(f"{'confirm':<11} {qps:9.2f} QPS (schedule seed {seed}): VALID, {self.pct} "
                         f"{r.latency_at_percentile:.3f} ms; decided by early stopping after {r.queries} queries "
                         f"({es.over_bound} over the bound, {es.needed_queries} needed)")
                self.peak_run = (r, native)
                return True
            if not r.valid:
                self.log(f"{'confirm':<11} {qps:9.2f} QPS (schedule seed {seed}): INVALID, {self.pct} "
                         f"{r.latency_at_percentile:.3f} ms ({'; '.join(r.invalid_reasons)})")
                return False
            self.log(f"{'confirm':<11} {qps:9.2f} QPS (schedule seed {seed}): within the bound but undecided by "
                     f"early stopping after {r.queries} queries ({es.over_bound} over it); again with "
                     f"--min-queries {self.st.min_queries}")
        r, native = self.server_run(qps, self.st.min_duration_s, self.st.min_queries, seed, "confirm")
        self.log(f"{'confirm':<11} {qps:9.2f} QPS (schedule seed {seed}): {'VALID' if r.valid else 'INVALID'}, "
                 f"{self.pct} {r.latency_at_percentile:.3f} ms" + ("" if r.valid else f" ({'; '.join(r.invalid_reasons)})"))
        if r.valid:
            self.peak_run = (r, native)
        return bool(r.valid)

    def set_floor(self) -> None:
        """The lowest rate worth a probe: its ``peak_runs`` confirmations of ``min_queries`` must fit in what is
        left of the budget after the probes, and each in ``max_duration_s``."""
        st, ss = self.st, self.ss
        probes_s = (math.ceil(math.log2(1.0 / ss.peak_tolerance)) + 3) * (ss.probe_duration_s + self.warmup_estimate_s())
        confirm_s = max(self.remaining() - probes_s, self.remaining() / 2)
        per_run = min(st.max_duration_s, confirm_s / ss.peak_runs) / 1.2 - self.warmup_estimate_s()
        self.floor_qps = max(st.min_queries / max(per_run, 1e-3), self.offline_qps / 1000.0)

    def no_rate_above_floor(self, detail: str) -> SearchStopped:
        return SearchStopped("floor", f"no VALID rate above {self.floor_qps:.2f} QPS: {detail}; below it "
                                      f"--peak-runs {self.ss.peak_runs} runs of --min-queries {self.st.min_queries} "
                                      f"would not fit in the budget (--budget {self.budget_s:g} s)")

    # ---------------------------------------------------------------------------------------------- search
    def search(self) -> None:
        st, ss, target = self.st, self.ss, self.target
        # Batching is judged against one-query requests back to back, so their service is measured even when the
        # bound is given.
        if self.bound_ms is None or st.max_batch > 1:
            r = self.timed_run("single-stream median run", lambda native: target.core.run_benchmark(
                target.engines[0], target.reader(), native), inflight=1)
            self.median_ms = float(r.latency.median)
            self.single_stream_ms = [float(x) for x in r.samples_ms]
            if self.bound_ms is None:
                self.bound_ms = ss.bound_x_median * self.median_ms
                self.log(f"bound: {ss.bound_x_median:g} x the single-stream median {self.median_ms:.3f} ms = "
                         f"{self.bound_ms:.3f} ms ({self.pct})")
            else:
                self.log(f"single-stream median {self.median_ms:.3f} ms (one query per request, back to back)")
        # With batching the capacity is that of the largest request: max_batch queries at once.
        rows = target.batch * st.max_batch
        if self.offline_qps is None:
            r = self.timed_run("offline capacity run", lambda native: target.core.run_devices(
                target.engines, target.reader(rows), native, names=target.names), rows=rows)
            self.offline_qps = float(r.throughput_per_s) / target.batch
        self.set_floor()
        per_request = f"requests of {rows} rows = {st.max_batch} queries" if st.max_batch > 1 else f"batch {target.batch}"
        self.log(f"offline capacity: {self.offline_qps:.2f} QPS ({self.offline_qps * target.batch:.1f} samples/s, "
                 f"{per_request}, {len(target.engines)} device(s) x {st.inflight} request(s)); searching "
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
        while hi - lo > ss.peak_tolerance * hi:
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
        candidate, seed = lo, st.schedule_seed + 1000
        for _ in range(MAX_CONFIRM_STEPS):
            if candidate < self.floor_qps:
                raise self.no_rate_above_floor(f"confirmation runs failed from {lo:.2f} QPS down to it")
            confirmed = 0
            for _ in range(ss.peak_runs):
                ok = self.confirm(candidate, seed)
                seed += 1
                if not ok:
                    break
                confirmed += 1
            if confirmed == ss.peak_runs:
                self.peak_qps = candidate
                self.stop_kind, self.stop_reason = "peak", f"peak confirmed by {ss.peak_runs} VALID run(s)"
                return
            candidate *= 1.0 - 2 * ss.peak_tolerance
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
            "bound_percentile": self.st.percentile / 100.0,
            "single_stream_median_ms": self.median_ms,
            "offline_qps": self.offline_qps,
            "floor_qps": self.floor_qps,
            "best_passing_probe_qps": self.best_probe_qps,
            "peak_qps": self.peak_qps,
            "result": "VALID" if self.peak_qps else "INVALID",
            "peak_over_offline": (self.peak_qps / self.offline_qps) if self.peak_qps and self.offline_qps else None,
            "ceilings": self.ceilings(),
            "batching": self.batching() if self.stop_kind != "running" else None,
            "progress": list(self.progress),
            "curve": list(self.curve),
            "peak_run": peak_run,
        })
        return doc

    def ceilings(self) -> dict[str, Any] | None:
        """M/G/c ceilings at the bound (pymfn.bench.queueing) beside the peak: from the peak run's own service
        times (what a perfect harness would reach with them) and, when the single-stream run was measured, from
        back-to-back service times (what queueing alone would leave of the offline rate)."""
        if self.peak_run is None or self.bound_ms is None or self.stop_kind == "running":
            return None
        from pymfn.bench.queueing import ceiling

        result = self.peak_run[0]
        servers = len(self.target.engines) * int(self.st.inflight)
        pct, max_batch = self.st.percentile, int(self.st.max_batch)
        out: dict[str, Any] = {"servers": servers, "model": "M/G/c: Poisson arrivals, FCFS, c = devices x "
                               "requests in flight, service times resampled from the measured ones"}
        if max_batch > 1:
            out["model"] = (f"M/G/c with a greedy batcher (a free server takes up to {max_batch} waiting queries as "
                            "one request): service times of the peak run's requests by the queries they carried")
            out["max_batch"] = max_batch
            measured = self.batched_service_ceiling(result, servers, pct, max_batch)
        else:
            service = np.asarray(result.completed_ms, dtype=np.float64) - np.asarray(result.issued_ms, dtype=np.float64)
            service = service[np.isfinite(service) & (service >= 0)]
            measured = ceiling(service, servers, self.bound_ms, pct) if service.size else None
        if measured is not None:
            out["peak_run_service"] = dict(measured.to_dict(), peak_over_ceiling=self.peak_qps / measured.qps
                                           if measured.qps else None)
        if self.single_stream_ms:
            warm = ceiling(self.single_stream_ms, servers, self.bound_ms, pct)
            out["back_to_back_service"] = dict(warm.to_dict(), ceiling_over_offline=warm.qps / self.offline_qps
                                               if self.offline_qps else None)
        return out

    def batching(self) -> dict[str, Any] | None:
        """With --max-batch: whether batching helped (the peak against the unbatched ceiling) and why."""
        if self.st.max_batch <= 1 or not self.single_stream_ms or not self.offline_qps or self.bound_ms is None:
            return None
        from pymfn.bench.queueing import ceiling

        servers = len(self.target.engines) * int(self.st.inflight)
        unbatched = ceiling(self.single_stream_ms, servers, self.bound_ms, self.st.percentile).qps
        per_request = all(bool(getattr(e, "batch_per_request", False)) for e in self.target.engines)
        return batching_verdict(self.peak_qps, unbatched, self.offline_qps, servers,
                                float(np.mean(self.single_stream_ms)), int(self.st.max_batch), per_request)

    def batched_service_ceiling(self, result: Any, servers: int, pct: float, max_batch: int) -> Any:
        from pymfn.bench.queueing import batched_ceiling

        service = np.asarray(result.request_completed_ms, dtype=np.float64) - np.asarray(result.request_issued_ms,
                                                                                       dtype=np.float64)
        carried = np.asarray(result.request_queries, dtype=np.int64)
        keep = np.isfinite(service) & (service >= 0)
        by_size = {int(k): service[keep & (carried == k)] for k in np.unique(carried[keep])}
        return batched_ceiling(by_size, servers, self.bound_ms, max_batch, pct) if by_size else None

    def save_progress(self) -> None:
        """Rewrite ``json_path`` with what the search has so far (atomically; a failure is left to the caller's
        final save to report)."""
        if not self.json_path or self._json_failed:
            return
        try:
            report.write_json(self.document(), self.json_path)
        except Exception:  # noqa: BLE001 - the final save says what went wrong and saves elsewhere
            self._json_failed = True


def find_peak(model: ModelLike, *, p99_ms: float | None = None, budget_s: float = DEFAULT_BUDGET_S, batch: int = 1,
              precision: str = "f32", engine: str | None = None, input: InputLike = None,
              settings: ScenarioSettings | None = None, search: PeakSearchSettings | None = None,
              offline_qps: float | None = None, log: Log | None = None, progress_json: str | Path | None = None,
              started: Callable[[], None] | None = None) -> PeakResult:
    """The highest server QPS whose runs stay VALID under ``p99_ms`` (at ``settings.percentile``), searched within
    ``budget_s`` seconds.

    Without ``p99_ms`` the bound is ``search.bound_x_median`` single-stream medians, measured first; without
    ``offline_qps`` the back-to-back capacity is measured before the search. ``log`` receives one progress line
    per run, ``progress_json`` is rewritten with the search so far after each (so a killed search leaves its
    curve), and ``started()`` is called once the engines are open and the budget's clock runs. The search stops
    at a confirmed peak, when the budget is spent, at its floor, or on Ctrl-C/SIGTERM (``interrupted=True``),
    always returning what it has; ``peak_qps`` is None when no rate was confirmed.

    >>> import pymfn.bench as b
    >>> r = b.find_peak(b.default_model(), p99_ms=50, budget_s=6,
    ...                 settings=b.ScenarioSettings(min_duration_s=0.5, min_queries=10),
    ...                 search=b.PeakSearchSettings(peak_runs=1, probe_duration_s=0.3))
    >>> r.stop in ("peak", "budget", "floor", "confirmations") and len(r.curve) >= 1
    True
    """
    if p99_ms is not None:
        _check_rate("p99_ms", p99_ms)
    if offline_qps is not None:
        _check_rate("offline_qps", offline_qps)
    if not (isinstance(budget_s, (int, float)) and budget_s > 0):  # math.inf: no budget
        raise SettingError(f"`budget_s` must be > 0, got {budget_s!r}")
    check_batch(batch)
    st = _scenario_settings(settings, SERVER_DEFAULTS)
    search = search or PeakSearchSettings()
    check_time_window(st, probe_duration_s=search.probe_duration_s)
    check_search_fits(st, search, budget_s)
    target = open_target(model, engine=engine, precision=precision, input=input, settings=st,
                       batch_for=lambda e: choose_batch(e, batch))
    meta = run_meta(target, "server")
    meta["scope"] = "scheduled arrival to completion"
    peak_search = PeakSearch(target, st, search, meta, budget_s=budget_s, log=log, json_path=progress_json,
                             bound_ms=p99_ms, offline_qps=offline_qps)
    if started is not None:
        started()
    peak_search.log("searching")
    peak_search.run()
    return PeakResult(peak_search.document(), st, search)


# ------------------------------------------------------------------------------------------- multi-stream
def multistream_batch(engine: Any, batch: int | None, samples_per_query: int) -> int:
    """``batch``, or the largest batch the model offers that divides ``samples_per_query``."""
    n = samples_per_query
    if batch is not None:
        batch = choose_batch(engine, batch)
        if n % batch:
            raise SettingError(f"`batch` {batch}: `samples_per_query` {n} is not a multiple of it (queries are split "
                               "into whole batches; nothing is padded)")
        return batch
    offered = list(engine.supported_batches())
    if not offered:
        return n
    fitting = [b for b in offered if n % b == 0]
    if not fitting:
        raise SettingError(f"`samples_per_query` {n}: the model offers batch sizes {offered}, none divides it")
    return max(fitting)


def multistream(model: ModelLike, *, samples_per_query: int = 8, interval_ms: float = 50.0,
                bound_ms: float | None = None, batch: int | None = None, precision: str = "f32",
                engine: str | None = None, input: InputLike = None, settings: ScenarioSettings | None = None,
                log: Log | None = None) -> MultistreamResult:
    """LoadGen's multi-stream scenario: a query of ``samples_per_query`` samples every ``interval_ms``; a query's
    latency runs from its scheduled time to its last sample's completion; VALID when its percentile stays under
    ``bound_ms`` (None: ``interval_ms``, a query done before the next is due).

    ``batch`` None takes the largest batch the model offers that divides ``samples_per_query`` (one request per
    query for a dynamic-batch model). Fields of ``settings`` left None take 10 s minimum, 100 queries, a 300 s
    cap and one request slot per device. Ctrl-C (or SIGTERM) returns what was measured, ``interrupted=True``.

    >>> import pymfn.bench as b
    >>> r = b.multistream(b.default_model(), samples_per_query=2, interval_ms=40,
    ...                   settings=b.ScenarioSettings(min_duration_s=0.5, min_queries=10))
    >>> r.queries >= 10 and r.document["samples_per_query"] == 2
    True
    """
    check_int("samples_per_query", samples_per_query, 1)
    _check_rate("interval_ms", interval_ms)
    if bound_ms is not None:
        _check_rate("bound_ms", bound_ms)
    if batch is not None:
        check_batch(batch)
    st = _scenario_settings(settings, MULTISTREAM_DEFAULTS)
    check_schedule_fits(st, interval_ms=interval_ms)
    target = open_target(model, engine=engine, precision=precision, input=input, settings=st,
                       batch_for=lambda e: multistream_batch(e, batch, samples_per_query))
    meta = run_meta(target, "multistream")
    meta["scope"] = "scheduled query time to the completion of its last request"
    native = st.to_core(target.core, target.batch)
    native.samples_per_query = samples_per_query
    native.query_interval_ms = interval_ms
    native.latency_bound_ms = bound_ms or 0.0
    if log is not None:
        log(scenario_plan(native, f"a query of {samples_per_query} samples every {interval_ms:g} ms"))
    reader = target.reader()
    result, _ = keep_partial(lambda: target.core.run_multistream(target.engines, reader, native, names=target.names))
    return MultistreamResult(scenario_to_json(result, meta, native), st)

"""Latency and throughput: back-to-back requests through one model, timed by the C++ runner.

:func:`latency` (batch 1, one request in flight) and :func:`throughput` (larger batches, several requests in
flight) open the model's engine(s) and input (:mod:`pymfn.bench.target`), run ``pymfn._core.run_benchmark`` (or
``run_devices`` over several devices, on one clock) with the GIL released, and return a result that renders
itself as the trtexec-style report, strict JSON with every raw sample, CSV and a latency plot.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from pymfn.bench import report
from pymfn.bench.audit import AuditSettings, attach_audit, audit_lines, recording
from pymfn.bench.result import Result
from pymfn.bench.settings import RunSettings
from pymfn.bench.stability import StabilitySettings
from pymfn.bench.target import (  # noqa: F401 - choose_batch, input_spec, resolve_model: used by sibling modules
    InputLike, ModelLike, Target, check_batch, choose_batch, input_spec, keep_partial, open_target, resolve_model,
    run_meta)
from pymfn.files.atomic import refuse_overlap

#: The settings ``latency()`` fills in where a field is None: at least 3 s, one request in flight, 60 s cap.
LATENCY_DEFAULTS = {"min_duration_s": 3.0, "max_duration_s": 60.0, "inflight": 1}
#: The same for ``throughput()``: at least 5 s with 2 requests in flight.
THROUGHPUT_DEFAULTS = {"min_duration_s": 5.0, "max_duration_s": 60.0, "inflight": 2}

Log = Callable[[str], None]


@dataclass(frozen=True)
class LatencyStats:
    """Statistics of per-request (or per-query) latencies in ms; percentiles interpolate linearly between
    closest ranks (numpy's default), std is the population std, cv = std / mean."""

    min: float
    mean: float
    median: float
    p90: float
    p95: float
    p99: float
    p999: float
    max: float
    std: float
    cv: float

    @classmethod
    def from_dict(cls, d: dict[str, float]) -> LatencyStats:
        return cls(**{k: float(d[k]) for k in ("min", "mean", "median", "p90", "p95", "p99", "p999", "max", "std",
                                               "cv")})


class DocumentResult(Result):
    """A result kept as the JSON document the command line writes; attributes read from it."""

    document: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self.document)

    def to_json(self, path: str | os.PathLike | None = None, *, indent: int | None = 2) -> str:
        if path is not None:
            self._refuse_over_inputs(path)
        return super().to_json(path, indent=indent)

    def to_csv(self, path: str | os.PathLike | None = None) -> str:
        if path is not None:
            self._refuse_over_inputs(path)
        return super().to_csv(path)

    def _refuse_over_inputs(self, path: str | os.PathLike) -> None:
        """Never write over the model or data the result describes."""
        doc = self.document
        inputs = [(f"the {k} {doc[k]}", Path(doc[k])) for k in ("model", "data") if isinstance(doc.get(k), str)]
        refuse_overlap([(str(path), Path(path))], inputs)

    @property
    def interrupted(self) -> bool:
        """Ctrl-C (or SIGTERM) stopped the run: every figure covers only what was measured before it."""
        return bool(self.document.get("interrupted"))

    @property
    def model(self) -> str:
        return str(self.document["model"])

    @property
    def engine(self) -> str:
        return str(self.document["engine"])

    @property
    def precision(self) -> str:
        """The precision that ran (from the compiled model), not only the one asked for."""
        return str(self.document["precision"])

    @property
    def batch(self) -> int:
        return int(self.document["batch"])

    @property
    def warnings(self) -> list[str]:
        return list(self.document.get("warnings", []))

    @property
    def precision_report(self) -> dict[str, Any]:
        return dict(self.document.get("precision_report") or {})


@dataclass
class OfflineResult(DocumentResult):
    """One back-to-back run (latency or throughput): statistics, raw samples, engine, host and build facts."""

    document: dict[str, Any] = field(repr=False)
    settings: RunSettings = field(default_factory=RunSettings, repr=False)

    kind: ClassVar[str] = "offline"

    @property
    def latency(self) -> LatencyStats:
        """Per-request latency statistics (ms)."""
        return LatencyStats.from_dict(self.document["latency_ms"])

    @property
    def median_ms(self) -> float:
        return float(self.document["latency_ms"]["median"])

    @property
    def p99_ms(self) -> float:
        return float(self.document["latency_ms"]["p99"])

    @property
    def throughput_per_s(self) -> float:
        """Samples per second over the measured wall time (all devices on one clock)."""
        return float(self.document["throughput_per_s"])

    @property
    def iterations(self) -> int:
        return int(self.document["iterations"])

    @property
    def samples_ms(self) -> list[float]:
        """Every measured request's latency (ms), in completion order (empty with ``keep_samples=False``)."""
        return list(self.document["samples_ms"])

    @property
    def stop_reason(self) -> str:
        return str(self.document["stop_reason"])

    def report(self) -> str:
        """The table, the metric explanations and warnings, and the line on the precision that ran."""
        from pymfn.runtime.precision import report_line

        text = report.format_table(self.document) + "\n" + report_line(self.document["precision_report"])
        for line in audit_lines(self.document.get("audit")):
            text += "\n" + line
        stab = self.document.get("stability")
        if stab:
            spread = "" if stab["spread_pct"] is None else f" (last {stab['windows_required']} windows' " \
                f"{stab['statistic']} within {stab['spread_pct']:.1f}%, threshold {stab['threshold_pct']:g}%)"
            text += (f"\nStability: {stab['verdict']}{spread}; figures from windows "
                     f"{', '.join(str(i + 1) for i in stab['reported_windows'])} of {stab['windows_run']}")
        return text

    def plot(self, path: str | os.PathLike) -> Path:
        """Latency histogram beside the per-request trace (needs at least one measured request)."""
        if not self.document["samples_ms"]:
            raise ValueError(f"a {self.kind} result without samples has nothing to plot")
        report.plot_latency(self.document, path)
        return Path(path)

    def csv_rows(self) -> list[dict[str, Any]]:
        """One row: the run's scalars and its latency statistics (``latency_<stat>_ms``)."""
        row = super().csv_rows()[0]
        row.update({f"latency_{k}_ms": v for k, v in self.document["latency_ms"].items()})
        return [row]


@dataclass
class LatencyResult(OfflineResult):
    kind: ClassVar[str] = "latency"


@dataclass
class ThroughputResult(OfflineResult):
    kind: ClassVar[str] = "throughput"


def run_plan(st: Any) -> str:
    """One line before a run starts: what it will do, how long it may take, and that Ctrl-C keeps the result."""
    warm = f"{st.warmup_iterations} warm-up requests"
    if st.warmup_ms > 0:
        warm += f" and >= {st.warmup_ms:g} ms of warm-up"
    return (f"running: {warm}, then >= {st.min_iterations} measured requests and >= "
            f"{st.min_duration_ms / 1000:g} s; the whole run is capped at {st.max_duration_ms / 1000:g} s "
            "(--max-duration). Ctrl-C stops it and keeps what was measured")


def stability_plan(st: Any, stability: StabilitySettings) -> str:
    """The plan line of a run until stable."""
    return (f"running until stable: {st.warmup_iterations} warm-up requests, then windows of >= "
            f"{stability.window_s:g} s and >= {st.min_iterations} requests until the last {stability.windows} agree "
            f"within {stability.threshold_pct:g}%; the whole run is capped at {st.max_duration_ms / 1000:g} s "
            "(--max-duration). Ctrl-C stops it and keeps what was measured")


def _offline(mode: str, result_type: type[OfflineResult], defaults: dict[str, Any], model: ModelLike, batch: int,
             precision: str, engine: str | None, input: InputLike, settings: RunSettings | None,
             log: Log | None, stability: StabilitySettings | None = None, audit: AuditSettings | None = None) -> Any:
    check_batch(batch)
    if stability is not None:  # windows replace the minimum duration
        cap = settings.max_duration_s if settings is not None and settings.max_duration_s is not None else \
            defaults["max_duration_s"]
        defaults = dict(defaults, min_duration_s=min(stability.window_s, cap))
    st = (settings or RunSettings()).with_defaults(**defaults)
    target = open_target(model, engine=engine, precision=precision, input=input, settings=st,
                       batch_for=lambda e: choose_batch(e, batch))
    core = target.core
    if audit is not None:
        target.engines = recording(core, target.engines, audit)
    native = st.to_core(core, target.batch)
    if log is not None:
        log(run_plan(native) if stability is None else stability_plan(native, stability))
    reader = target.reader()

    def run(native: Any) -> tuple[Any, bool]:
        if st.devices is None:
            return keep_partial(lambda: core.run_benchmark(target.engines[0], reader, native))
        return keep_partial(lambda: core.run_devices(target.engines, reader, native, names=target.names))

    if stability is not None:
        doc = _until_stable(mode, target, st, stability, run, log)
    else:
        result, _ = run(native)
        doc = report.result_to_json(result, run_meta(target, mode))
    if audit is not None:
        attach_audit(doc, core, target.engines, target.batch, audit, log)
    return result_type(doc, st)


def _until_stable(mode: str, target: Target, st: RunSettings, stability: StabilitySettings,
                  run: Callable[[Any], tuple[Any, bool]], log: Log | None) -> dict[str, Any]:
    """Windows until the last ``stability.windows`` agree (pymfn.bench.stability); the document of the last windows."""
    import numpy as np

    from pymfn.bench.stability import run_windows, spread_pct

    statistic = "throughput" if mode == "throughput" else "median latency"

    def run_window(first: bool, cap_left_s: float) -> tuple[Any, bool]:
        native = st.to_core(target.core, target.batch)
        if not first:
            native.warmup_iterations, native.warmup_ms = 0, 0.0
        native.min_duration_ms = stability.window_s * 1000.0
        native.max_duration_ms = max(cap_left_s, 0.001) * 1000.0
        result, interrupted = run(native)
        if log is not None:
            value = (f"{result.throughput_per_s:.1f} samples/s" if mode == "throughput"
                     else f"median {result.latency.median:.3f} ms") if result.iterations else "nothing measured"
            log(f"window {len(windows) + 1}: {result.iterations} requests, {value}")
        windows.append(result)
        return result, interrupted

    windows: list[Any] = []
    out = run_windows(run_window, stability, st.max_duration_s, "throughput" if mode == "throughput" else "latency")
    results = out["results"]
    kept = results[-stability.windows:]
    last = kept[-1][0]
    doc = report.result_to_json(last, run_meta(target, mode))
    samples = np.concatenate([np.asarray(r.samples_ms, dtype=np.float64) for r, _ in kept])
    starts = np.concatenate([np.asarray(r.start_offsets_ms, dtype=np.float64) + (t - kept[0][1]) * 1000.0
                             for r, t in kept])
    iterations = sum(int(r.iterations) for r, _ in kept)
    wall = sum(float(r.wall_ms) for r, _ in kept)
    processed = sum(int(r.samples_processed) for r, _ in kept)
    doc.update({"iterations": iterations, "samples_processed": processed, "wall_ms": wall,
                "throughput_per_s": processed * 1000.0 / wall if wall > 0 else 0.0,
                "warmup": int(results[0][0].warmup_iterations),
                "samples_ms": [float(x) for x in samples], "start_offsets_ms": [float(x) for x in starts]})
    if samples.size:
        doc["latency_ms"] = report.latency_dict(target.core.compute_stats(samples.tolist()))
    n, k = len(results), stability.windows
    values = out["values"]
    finite = [v for v in values[-k:] if np.isfinite(v)]
    spread = spread_pct(finite) if len(finite) == k else None
    if out["stable"]:
        verdict = f"stable after {n} windows"
    else:
        why = "interrupted" if out["interrupted"] else "--max-duration reached" if out["capped"] else "stopped"
        verdict = f"not stable after {n} windows ({why})"
        doc["warnings"] = list(doc.get("warnings", [])) + [
            f"{verdict}: the last {min(k, n)} windows' {statistic} differ by up to "
            f"{'n/a' if spread is None else f'{spread:.1f}%'} (threshold {stability.threshold_pct:g}%); the figures "
            "are those of the last windows and may still drift"]
    doc["stability"] = {
        "stable": bool(out["stable"]), "verdict": verdict, "statistic": statistic,
        "threshold_pct": stability.threshold_pct, "windows_required": k, "window_s": stability.window_s,
        "windows_run": n, "reported_windows": list(range(n - len(kept), n)),
        "spread_pct": spread,
        "windows": [{"index": i, "start_s": t, "iterations": int(r.iterations), "wall_ms": float(r.wall_ms),
                     "statistic": values[i] if np.isfinite(values[i]) else None,
                     "latency_ms": report.latency_dict(r.latency) if r.iterations else None,
                     "throughput_per_s": float(r.throughput_per_s),
                     "samples_ms": [float(x) for x in np.asarray(r.samples_ms)]}
                    for i, (r, t) in enumerate(results)],
    }
    if out["interrupted"]:
        doc["interrupted"], doc["stop_reason"] = True, "interrupted"
    elif out["capped"] and not out["stable"]:
        doc["stop_reason"] = "max duration"
    return doc


def latency(model: ModelLike, *, batch: int = 1, precision: str = "f32", engine: str | None = None,
            input: InputLike = None, settings: RunSettings | None = None, log: Log | None = None,
            until_stable: StabilitySettings | None = None, audit: AuditSettings | None = None) -> LatencyResult:
    """Per-request latency: ``batch`` samples per request, one request in flight (unless ``settings`` says other).

    ``model`` is a model file (.pb, .onnx, .xml, .om) or :func:`default_model`; ``engine`` None picks it from the
    suffix (.om: acl, else openvino; "tf" runs a frozen .pb in TensorFlow); ``precision`` is f32, bf16, f16 or
    int8 (the result states what really ran); ``input`` a folder of .bin files, a packed file or a .npy (None:
    seeded random data). Fields of ``settings`` left None take 3 s minimum, 60 s cap, one request in flight.
    ``log`` receives the one-line plan before the run starts (and a line per window with ``until_stable``).
    ``until_stable=StabilitySettings(5)`` measures in windows until the last 3 agree within 5%
    (:mod:`pymfn.bench.stability`). ``audit=AuditSettings()`` adds LoadGen-style TEST01/TEST04 verdicts
    (:mod:`pymfn.bench.audit`). Ctrl-C (or SIGTERM) during the run returns what was measured, with
    ``interrupted=True``.

    >>> import pymfn.bench as b
    >>> r = b.latency(b.default_model(), settings=b.RunSettings(min_duration_s=0.2, min_iterations=5))
    >>> r.median_ms > 0 and r.iterations >= 5 and len(r.samples_ms) == r.iterations
    True
    >>> r.report().splitlines()[1].startswith("pymfn latency: openvino engine, batch 1")
    True
    """
    return _offline("latency", LatencyResult, LATENCY_DEFAULTS, model, batch, precision, engine, input, settings, log,
                    until_stable, audit)


def throughput(model: ModelLike, *, batch: int = 16, precision: str = "f32", engine: str | None = None,
               input: InputLike = None, settings: RunSettings | None = None,
               log: Log | None = None, until_stable: StabilitySettings | None = None,
               audit: AuditSettings | None = None) -> ThroughputResult:
    """Samples per second with ``batch`` samples per request and (by default) 2 requests in flight.

    The arguments are those of :func:`latency`; fields of ``settings`` left None take 5 s minimum, 60 s cap and
    2 requests in flight. ``RunSettings(devices=(0, 1))`` runs on several devices at once: the aggregate is all
    samples over the common wall time, with each device's own figures in ``document["devices"]``.

    >>> import pymfn.bench as b
    >>> r = b.throughput(b.default_model(), batch=4, settings=b.RunSettings(min_duration_s=0.2, min_iterations=5))
    >>> r.throughput_per_s > 0 and r.batch == 4
    True
    """
    return _offline("throughput", ThroughputResult, THROUGHPUT_DEFAULTS, model, batch, precision, engine, input,
                    settings, log, until_stable, audit)

"""pymfn's engines under MLCommons LoadGen (``mlcommons-loadgen``, extra ``pymfn[loadgen]``).

:func:`loadgen_run` times the same engines :func:`pymfn.bench.server` / :func:`~pymfn.bench.latency` /
:func:`~pymfn.bench.throughput` open, but LoadGen makes the schedule, issues the queries and judges the run; its
own ``mlperf_log_summary.txt`` and ``mlperf_log_detail.txt`` are kept in ``log_dir`` and the result is read from
them. It is the cross-check of pymfn's own harness: same engine, same rate, same bound.

The system under test is a Python SUT: LoadGen's issue thread queues each query and one worker thread per device
runs it (``Engine.execute``, GIL released), so one request is in flight per device. The test runs in a child
process: LoadGen's ``StartTest`` cannot be stopped from outside, so Ctrl-C ends the child at once (a LoadGen
test that did not finish has no result) and leaves no partial log directory.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from pymfn.bench.perf import DocumentResult
from pymfn.bench.report import format_host
from pymfn.bench.settings import RunSettings, ScenarioSettings, SettingError, check_choice, check_number
from pymfn.bench.target import InputLike, ModelLike, model_source
from pymfn.errors import CommandError

#: Scenarios the LoadGen harness runs, by pymfn's command names.
LOADGEN_SCENARIOS = ("server", "offline", "single-stream")
#: The files LoadGen writes into its output directory (the trace stays empty: tracing is off).
LOG_FILES = ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "mlperf_log_accuracy.json", "mlperf_log_trace.json")
#: LoadGen's performance sample count cap: samples held in memory for the run.
MAX_QSL_SAMPLES = 1024
_PERCENTILES = ("50.00", "90.00", "95.00", "97.00", "99.00", "99.90")
Log = Callable[[str], None]


def loadgen_available() -> bool:
    try:
        import mlperf_loadgen  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class LoadgenResult(DocumentResult):
    """One LoadGen test: its verdict and figures as LoadGen computed them, with pymfn's run facts."""

    document: dict[str, Any] = field(repr=False)
    settings: RunSettings = field(default_factory=RunSettings, repr=False)

    kind: ClassVar[str] = "loadgen"

    @property
    def scenario(self) -> str:
        return str(self.document["scenario"])

    @property
    def valid(self) -> bool:
        return self.document.get("result_validity") == "VALID"

    @property
    def invalid_reasons(self) -> list[str]:
        return list(self.document.get("invalid_reasons", []))

    @property
    def completed_per_s(self) -> float:
        """Samples per second as LoadGen's detail log states them: completed samples per second (server), samples
        per second (offline); single-stream: 1000 / its mean latency in ms."""
        return float(self.document.get("completed_per_s", 0.0))

    @property
    def scheduled_per_s(self) -> float:
        return float(self.document.get("scheduled_per_s", 0.0))

    @property
    def latency_ms(self) -> dict[str, float]:
        return dict(self.document.get("latency_ms", {}))

    @property
    def median_ms(self) -> float:
        return float(self.latency_ms.get("median", 0.0))

    @property
    def p99_ms(self) -> float:
        return float(self.latency_ms.get("p99", 0.0))

    @property
    def queries(self) -> int:
        return int(self.document.get("queries", 0))

    @property
    def log_dir(self) -> str | None:
        return self.document.get("log_dir")

    def report(self) -> str:
        return format_loadgen(self.document)

    def plot(self, path: str | os.PathLike) -> Path:
        raise CommandError("a LoadGen run has no plot (LoadGen keeps no per-query latencies in its logs); "
                           "use pymfn's harness for --plot")

    def csv_rows(self) -> list[dict[str, Any]]:
        d = self.document
        row: dict[str, Any] = {"harness": "loadgen", "scenario": d["scenario"], "engine": d.get("engine"),
                               "model": d.get("model"), "batch": d.get("batch"),
                               "target_qps": d.get("target_qps"), "latency_bound_ms": d.get("latency_bound_ms"),
                               "result": d.get("result_validity"), "queries": d.get("queries"),
                               "scheduled_per_s": d.get("scheduled_per_s"),
                               "completed_per_s": d.get("completed_per_s"),
                               "early_stopping_met": d.get("early_stopping_met"),
                               "interrupted": d.get("interrupted", False)}
        for k, v in d.get("latency_ms", {}).items():
            row[f"{k}_ms"] = v
        return [row]


def format_loadgen(d: dict[str, Any]) -> str:
    if d.get("interrupted") and "result_validity" not in d:
        return ("LoadGen harness: interrupted before LoadGen finished the test; LoadGen computes its result only at "
                "the end of a test, so there is none")
    lines = [f"=== LoadGen {d['scenario']} (mlcommons-loadgen {d.get('loadgen_version', '?')}, "
             f"{d.get('engine')} engine, batch {d.get('batch')}) ==="]
    if d.get("target_qps"):
        lines.append(f"target QPS        : {d['target_qps']:g}   latency bound: {d.get('latency_bound_ms', 0):g} ms "
                     f"at p{d.get('percentile', 99):g}")
    lines.append(f"result            : {d.get('result_validity')}"
                 + (f"  ({'; '.join(d['invalid_reasons'])})" if d.get("invalid_reasons") else ""))
    lines.append(f"queries           : {d.get('queries')}   samples: {d.get('samples')}")
    if d.get("scheduled_per_s"):
        lines.append(f"scheduled / s     : {d['scheduled_per_s']:.2f}   (the rate of LoadGen's own Poisson draw)")
    lines.append(f"completed / s     : {d.get('completed_per_s', 0):.2f}")
    lat = d.get("latency_ms", {})
    if lat:
        lines.append("latency (ms)      : " + "  ".join(f"{k} {v:.3f}" for k, v in lat.items()))
    if d.get("early_stopping_result"):
        lines.append(f"early stopping    : {d['early_stopping_result']}")
    lines.append(f"LoadGen's logs    : {d.get('log_dir')}")
    if d.get("host"):
        lines.append(format_host(d["host"]))
    for w in d.get("warnings", []):
        lines.append(f"WARNING: {w}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------- the parent side
def loadgen_run(model: ModelLike, *, scenario: str, log_dir: str | os.PathLike, qps: float | None = None,
                latency_bound_ms: float | None = None, batch: int = 1, precision: str = "f32",
                engine: str | None = None, input: InputLike = None, settings: RunSettings | None = None,
                expected_per_s: float | None = None, log: Log | None = None) -> LoadgenResult:
    """One LoadGen test of ``model`` in ``scenario`` ("server", "offline", "single-stream").

    Server: Poisson arrivals at ``qps``, VALID when the ``settings.percentile`` of latency is under
    ``latency_bound_ms`` (and LoadGen's minimums and early stopping hold). Offline: all samples in one query,
    grouped into requests of ``batch``; ``expected_per_s`` sizes the query (default: measured during warm-up).
    Single-stream: one sample at a time. ``settings`` gives the minimum duration and query count, the cap, the
    warm-up (run by pymfn before LoadGen starts) and the schedule seed. LoadGen's logs go to ``log_dir`` (an
    existing directory holding only LoadGen's logs is replaced; anything else there is refused).
    """
    if not loadgen_available():
        raise CommandError("the LoadGen harness needs mlcommons-loadgen: pip install 'pymfn[loadgen]'")
    check_choice("scenario", scenario, LOADGEN_SCENARIOS)
    if scenario == "server":
        if qps is None or latency_bound_ms is None:
            raise SettingError("`qps` and `latency_bound_ms` are required for LoadGen's server scenario")
        check_number("qps", qps, 0.0, low_open=True)
        check_number("latency_bound_ms", latency_bound_ms, 0.0, low_open=True)
    if scenario != "offline" and batch != 1:
        raise SettingError(f"`batch` {batch}: LoadGen's {scenario} queries hold one sample; batch applies to offline")
    st = _with_defaults(settings, scenario)
    path, description, _ = model_source(model)
    out = Path(log_dir)
    _check_log_dir(out)
    request = {
        "scenario": scenario, "model": str(path), "model_description": description, "engine": engine,
        "precision": precision, "input": None if input is None else str(input), "batch": batch, "qps": qps,
        "latency_bound_ms": latency_bound_ms, "expected_per_s": expected_per_s,
        "settings_type": type(st).__name__, "settings": _settings_fields(st),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.loadgen-", dir=out.parent))
    try:
        (work / "request.json").write_text(json.dumps(request))
        if log is not None:
            log(_plan(request, st))
        doc = _run_child(work, request, log)
        if doc.get("interrupted"):
            return LoadgenResult(doc, st)
        _publish(work / "logs", out)
        doc["log_dir"] = str(out)
        return LoadgenResult(doc, st)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _with_defaults(settings: RunSettings | None, scenario: str) -> RunSettings:
    """``settings`` with pymfn's defaults of the same scenario (one request in flight per device: the SUT's)."""
    from pymfn.bench.perf import LATENCY_DEFAULTS, THROUGHPUT_DEFAULTS
    from pymfn.bench.scenarios import SERVER_DEFAULTS

    if scenario == "server":
        if settings is not None and not isinstance(settings, ScenarioSettings):
            raise TypeError("settings of the server scenario must be a pymfn.bench.ScenarioSettings")
        return (settings or ScenarioSettings()).with_defaults(**SERVER_DEFAULTS)
    defaults = dict(LATENCY_DEFAULTS if scenario == "single-stream" else THROUGHPUT_DEFAULTS, inflight=1)
    return (settings or RunSettings()).with_defaults(**defaults)


def _settings_fields(st: RunSettings) -> dict[str, Any]:
    fields = asdict(st)
    if fields.get("devices") is not None:
        fields["devices"] = list(fields["devices"])
    return fields


def _plan(request: dict[str, Any], st: RunSettings) -> str:
    scenario = request["scenario"]
    what = (f"Poisson arrivals at {request['qps']:g} QPS" if scenario == "server" else
            "all samples in one query" if scenario == "offline" else "one sample at a time")
    return (f"running under LoadGen: {st.warmup_iterations} warm-up requests by pymfn, then LoadGen's "
            f"{request['scenario']} scenario ({what}) for >= {st.min_duration_s:g} s; capped at "
            f"{st.max_duration_s:g} s. Ctrl-C stops it (LoadGen has no result for an unfinished test)")


def _check_log_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise SettingError(f"`log_dir` {out}: exists and is not a directory")
    if out.is_dir():
        foreign = [p.name for p in out.iterdir() if p.name not in LOG_FILES]
        if foreign:
            raise SettingError(f"`log_dir` {out}: holds files LoadGen did not write ({', '.join(sorted(foreign)[:3])}); "
                               "give an empty or new directory")


def _publish(logs: Path, out: Path) -> None:
    """Move the finished logs into place; an older log directory is swapped out, never mixed with the new."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(logs, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _run_child(work: Path, request: dict[str, Any], log: Log | None) -> dict[str, Any]:
    """Run the LoadGen test in a child process in its own session (the terminal's Ctrl-C reaches only the
    parent, which then ends the child)."""
    cmd = [sys.executable, "-m", "pymfn.bench.loadgen_harness", str(work)]
    with open(work / "stderr.txt", "w") as stderr_file:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr_file, text=True, start_new_session=True)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:  # the child's progress lines, as they come
                if log is not None:
                    log(line.rstrip("\n"))
            proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            return {"harness": "loadgen", "scenario": request["scenario"], "interrupted": True,
                    "model": request["model"], "batch": request["batch"]}
    stderr = (work / "stderr.txt").read_text(errors="replace")
    result = work / "result.json"
    if proc.returncode != 0 or not result.exists():
        error = work / "error.txt"
        text = error.read_text().strip() if error.exists() else ""
        if not text:
            tail = [ln for ln in stderr.splitlines() if ln.strip()]
            text = tail[-1] if tail else f"exit status {proc.returncode}"
        raise CommandError(f"LoadGen harness: {text}")
    return dict(json.loads(result.read_text()))


# ---------------------------------------------------------------------------------------- the child side
def parse_detail_log(path: Path) -> dict[str, Any]:
    """The ``:::MLLOG`` entries of ``mlperf_log_detail.txt`` as key -> value (the last value of a repeated key)."""
    values: dict[str, Any] = {}
    for line in path.read_text(errors="replace").splitlines():
        if not line.startswith(":::MLLOG "):
            continue
        try:
            entry = json.loads(line[len(":::MLLOG "):])
        except json.JSONDecodeError:
            continue
        values[str(entry.get("key"))] = entry.get("value")
    return values


def result_from_detail(values: dict[str, Any], scenario: str) -> dict[str, Any]:
    """LoadGen's verdict and figures from its detail log (times in ms; latency keys as pymfn's: median, p90, p95,
    p97, p99, p999, min, mean, max)."""
    reasons = []
    if values.get("result_perf_constraints_met") is False:
        reasons.append("performance constraints not met (latency bound or schedule)")
    if values.get("result_min_duration_met") is False:
        reasons.append("min duration not met")
    if values.get("result_min_queries_met") is False:
        reasons.append("min queries not met")
    if values.get("early_stopping_met") is False:
        reasons.append("early stopping not satisfied")
    if values.get("result_invalid_reason"):
        reasons.append(str(values["result_invalid_reason"]))
    latency = {}
    for p in _PERCENTILES:
        key = f"result_{p}_percentile_latency_ns"
        if key in values:
            label = {"50.00": "median", "99.90": "p999"}.get(p, "p" + p.split(".")[0])
            latency[label] = float(values[key]) / 1e6
    for name in ("min", "mean", "max"):
        key = f"result_{name}_latency_ns"
        if key in values:
            latency[name] = float(values[key]) / 1e6
    completed = values.get("result_completed_samples_per_sec", values.get("result_samples_per_second"))
    if completed is None and scenario == "single-stream" and latency.get("mean"):
        completed = 1000.0 / latency["mean"]
    doc = {
        "result_validity": values.get("result_validity"),
        "invalid_reasons": reasons if values.get("result_validity") != "VALID" else [],
        "queries": int(values.get("result_query_count", 0) or 0),
        "scheduled_per_s": float(values.get("result_scheduled_samples_per_sec", 0.0) or 0.0),
        "completed_per_s": float(completed or 0.0),
        "latency_ms": latency,
        "early_stopping_met": values.get("early_stopping_met"),
        "early_stopping_result": " ".join(str(values.get("early_stopping_result", "")).split()),
        "loadgen_version": values.get("loadgen_version"),
    }
    return doc


def _child(work: Path) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    # LoadGen's issue thread calls into Python for every query: hand the GIL over sooner than the default 5 ms
    sys.setswitchinterval(1e-4)
    request = json.loads((work / "request.json").read_text())
    try:
        doc = _child_run(work, request)
    except Exception as exc:  # one line for the parent; the traceback stays on stderr
        import traceback

        from pymfn.errors import one_line

        traceback.print_exc()
        (work / "error.txt").write_text(one_line(exc))
        return 2
    (work / "result.json").write_text(json.dumps(doc))
    return 0


def _child_run(work: Path, request: dict[str, Any]) -> dict[str, Any]:
    import queue
    import threading
    import time

    import mlperf_loadgen as lg
    import numpy as np

    from pymfn.bench.target import choose_batch, input_spec, open_target, run_meta

    scenario = request["scenario"]
    fields = dict(request["settings"])
    if fields.get("devices") is not None:
        fields["devices"] = tuple(fields["devices"])
    st: RunSettings = (ScenarioSettings if request["settings_type"] == "ScenarioSettings" else RunSettings)(**fields)
    batch = int(request["batch"])
    target = open_target(request["model"], engine=request["engine"], precision=request["precision"],
                         input=request["input"], settings=st, batch_for=lambda e: choose_batch(e, batch))
    meta = run_meta(target, f"loadgen {scenario}")
    meta["model_description"] = request["model_description"]
    info, shape, dtype = input_spec(target.engines[0])
    samples = _samples(target, shape, dtype, np)
    count = len(samples)

    def run_rows(engine: Any, rows: Any) -> None:
        if len(rows) < batch:  # a static-batch model needs full batches: pad with the last sample
            rows = np.concatenate([rows, np.repeat(rows[-1:], batch - len(rows), axis=0)])
        engine.execute([np.ascontiguousarray(rows)])

    # Warm-up by pymfn (LoadGen has none); the requests after each engine's first also estimate the rate
    # that sizes LoadGen's offline query and single-stream expectation.
    warm_s, warm_rows = 0.0, 0
    for engine in target.engines:
        for i in range(max(2, st.warmup_iterations)):
            first = (i * batch) % count
            started = time.perf_counter()
            run_rows(engine, samples[first:first + batch])
            if i > 0:
                warm_s += time.perf_counter() - started
                warm_rows += batch

    # SimpleQueue: its get() waits without the GIL and wakes at once; None ends a worker.
    work_queue: queue.SimpleQueue = queue.SimpleQueue()

    def issue(query_samples: Any) -> None:
        for k in range(0, len(query_samples), batch):
            group = query_samples[k:k + batch]
            work_queue.put(([s.id for s in group], [s.index for s in group]))

    def worker(engine: Any) -> None:
        while (item := work_queue.get()) is not None:
            ids, indices = item
            run_rows(engine, samples[indices[0]:indices[0] + 1] if len(indices) == 1 else samples[indices])
            lg.QuerySamplesComplete([lg.QuerySampleResponse(i, 0, 0) for i in ids])

    threads = [threading.Thread(target=worker, args=(e,), daemon=True) for e in target.engines]
    for t in threads:
        t.start()
    sut = lg.ConstructSUT(issue, lambda: None)
    qsl = lg.ConstructQSL(count, count, lambda indices: None, lambda indices: None)
    ts = lg.TestSettings()
    ts.mode = lg.TestMode.PerformanceOnly
    ts.min_duration_ms = int((st.min_duration_s or 0.0) * 1000)
    ts.max_duration_ms = int((st.max_duration_s or 0.0) * 1000)
    if scenario == "server":
        assert isinstance(st, ScenarioSettings)
        ts.scenario = lg.TestScenario.Server
        ts.server_target_qps = float(request["qps"])
        ts.server_target_latency_ns = int(float(request["latency_bound_ms"]) * 1e6)
        ts.server_target_latency_percentile = st.percentile / 100.0
        ts.min_query_count = int(st.min_queries or 1024)
        ts.schedule_rng_seed = int(st.schedule_seed)
        meta.update(target_qps=float(request["qps"]), latency_bound_ms=float(request["latency_bound_ms"]),
                    percentile=st.percentile)
    elif scenario == "offline":
        ts.scenario = lg.TestScenario.Offline
        # LoadGen makes one query of min_duration x expected x 1.1 samples: an estimate twice the warm-up rate
        # keeps a faster measured phase from ending before min_duration (an INVALID run).
        expected = request["expected_per_s"] or 2.0 * warm_rows * len(target.engines) / max(warm_s, 1e-6)
        ts.offline_expected_qps = float(expected)
        ts.min_query_count = 1
        meta["expected_per_s"] = float(expected)
    else:
        ts.scenario = lg.TestScenario.SingleStream
        ts.single_stream_expected_latency_ns = int(max(warm_s / max(warm_rows, 1), 1e-5) * 1e9)
        ts.min_query_count = int(getattr(st, "min_iterations", 0) or 100)
    logs = work / "logs"
    logs.mkdir()
    ls = lg.LogSettings()
    ls.log_output.outdir = str(logs)
    ls.log_output.copy_summary_to_stdout = False
    ls.enable_trace = False
    print(f"LoadGen {scenario}: {count} samples loaded; {len(target.engines)} worker(s), one synchronous request in "
          "flight each", flush=True)
    try:
        lg.StartTestWithLogSettings(sut, qsl, ts, ls)
    finally:
        for _ in threads:
            work_queue.put(None)
        for t in threads:
            t.join()
        lg.DestroyQSL(qsl)
        lg.DestroySUT(sut)
    values = parse_detail_log(logs / "mlperf_log_detail.txt")
    doc = dict(meta)
    doc.update(harness="loadgen", scenario=scenario, samples_loaded=count)
    doc.update(result_from_detail(values, scenario))
    per_query = int(values.get("effective_samples_per_query", 1) or 1)
    # offline: one query holding every sample; the others: one sample per query
    doc["samples"] = per_query if scenario == "offline" else int(values.get("result_query_count", 0) or 0) * per_query
    errors = int(values.get("num_errors", 0) or 0)
    doc["warnings"] = list(doc.get("warnings", []))
    if errors:
        doc["warnings"].append(f"LoadGen logged {errors} error(s): see mlperf_log_detail.txt")
    return doc


def _samples(target: Any, shape: tuple[int, ...], dtype: Any, np: Any) -> Any:
    """Up to MAX_QSL_SAMPLES samples of the run's input, as one array [n, *shape] (LoadGen's loaded set)."""
    reader = target.dataset.reader(1, target.settings.prefetch)
    rows = []
    for view in reader:
        rows.append(np.frombuffer(np.ascontiguousarray(view.valid_data).tobytes(), dtype=dtype).reshape(shape))
        if len(rows) >= MAX_QSL_SAMPLES:
            break
    if not rows:
        raise SettingError("`input`: holds no samples")
    return np.stack(rows)


if __name__ == "__main__":
    sys.exit(_child(Path(sys.argv[1])))

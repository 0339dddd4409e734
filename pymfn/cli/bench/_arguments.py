"""The options the timed bench commands share, and how they become pymfn.bench settings and outputs.

``add_*_arguments`` declare options; ``run_settings`` / ``scenario_settings`` / ``peak_search_settings`` turn the
parsed options into the library's settings; ``save_result`` writes ``--json`` / ``--plot`` with the fallback
that never loses a measured result; ``finish`` turns an interrupted result into its exit status.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

from pymfn.runtime import engines
from pymfn.bench.result import Result
from pymfn.bench.settings import PeakSearchSettings, RunSettings, ScenarioSettings
from pymfn.bench.stability import StabilitySettings
from pymfn.cli.bench._csv import save_csv
from pymfn.cli.common import interrupted_exit
from pymfn.files.outputs import check_output_path, save_output

#: --find-peak's default --budget: the whole search, from the first yardstick run to the last confirmation.
DEFAULT_BUDGET_S = 240.0


# ------------------------------------------------------------------------------------------ declarations
def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """--model, --engine, --precision, --threads, --streams, --device: what runs, and where."""
    g = p.add_argument_group("model and engine")
    g.add_argument("--model", help="frozen .pb, .onnx, OpenVINO .xml or Ascend .om; default: the built-in MobileFaceNet "
                   "(pretrained weights from PYMFN_SHARED when present, else random weights), cached in $XDG_CACHE_HOME/pymfn")
    g.add_argument("--engine", choices=engines.engine_names(), default=None,
                   help="execution engine; default: from the file type (.om -> acl, else openvino). 'tf' is the "
                   "TensorFlow session reference engine (frozen .pb only)")
    g.add_argument("--precision", choices=["f32", "bf16", "f16", "int8"], default="f32",
                   help="OpenVINO inference precision (default f32: this CPU would silently pick bf16 otherwise); int8 "
                   "needs a quantized model (python -m pymfn quantize). The report states the precision that really "
                   "ran, from the compiled model. An .om's precision is fixed at conversion (f32 = as converted)")
    g.add_argument("--threads", type=int, default=0, help="inference threads (0 = engine default = all cores; with "
                   "--device on the host: per lane, default cores / lanes)")
    g.add_argument("--streams", type=int, default=0, help="OpenVINO streams (0 = engine default for the hint)")
    g.add_argument("--device", default=None, metavar="IDS",
                   help="run on several devices at once, e.g. 0,1,2,3: the acl engine opens one context, model and "
                   "request set per device; the openvino engine one single-stream lane per entry, each with its share "
                   "of the cores. One dataset feeds them all, one clock times them: the aggregate is all samples / the "
                   "common wall time (never a sum of per-device rates), with each device's own figures and the skew "
                   "between them. Without it: one engine (acl: device 0)")


def add_input_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("input")
    g.add_argument("--input", help="folder of per-sample .bin files, a packed file (python -m pymfn pack) or a .npy; "
                   "default: seeded random data shaped like the model input")
    g.add_argument("--order", choices=["natural", "lexicographic"], default="natural",
                   help="file order for a .bin folder: natural (2.bin before 10.bin) or lexicographic (msame's)")
    g.add_argument("--folder-io", choices=["mmap", "pread"], default="mmap",
                   help="how a .bin folder is read: mmap = each file mapped once and copied from its mapping "
                   "(faster from the second pass on); pread = open/read/close every time (for files that change "
                   "during the run)")
    g.add_argument("--prefetch", type=int, default=2, help="batches the folder loader prepares ahead (default 2)")
    g.add_argument("--seed", type=int, default=0, help="seed of the random input (default 0)")


def add_output_arguments(p: argparse.ArgumentParser, plot_help: str) -> None:
    g = p.add_argument_group("output")
    g.add_argument("--json", help="write the full result (stats, settings, build/host info, raw samples) as JSON")
    g.add_argument("--plot", help=plot_help)
    add_csv_arguments(g, per_request=True)
    g.add_argument("--quiet", action="store_true", help="fewer progress messages")


def add_csv_arguments(g: Any, *, per_request: bool = False) -> None:
    """--csv (every command) and --per-request-csv (the timed runs); columns in docs/exports.md."""
    g.add_argument("--csv", metavar="PATH", help="write the result as CSV: one row per run (with --find-peak one "
                   "per run of the search), with its latency percentiles")
    if per_request:
        g.add_argument("--per-request-csv", metavar="PATH",
                       help="write every measured request's (query's) latency as CSV: index, start_ms, latency_ms "
                       "(scheduled queries add issued_ms, completed_ms)")


def add_run_arguments(p: argparse.ArgumentParser, *, batch: int, inflight: int, min_duration: float) -> None:
    """The options of latency and throughput (their defaults differ)."""
    add_model_arguments(p)
    g = p.add_argument_group("run")
    g.add_argument("--batch", type=int, default=batch, help=f"samples per request (default {batch})")
    g.add_argument("--inflight", type=int, default=inflight,
                   help=f"requests in flight (default {inflight}; per device with --device); >1 uses the engine's "
                   "asynchronous path")
    g.add_argument("--warmup", type=int, default=10, help="untimed warm-up iterations (default 10)")
    g.add_argument("--warmup-ms", type=float, default=0.0, help="and keep warming up for at least this long (ms)")
    g.add_argument("--min-iterations", type=int, default=100, help="measure at least this many requests (default 100)")
    g.add_argument("--min-duration", type=float, default=min_duration,
                   help=f"and for at least this many seconds (default {min_duration})")
    g.add_argument("--max-duration", type=float, default=60.0,
                   help="cap on the whole run, warm-up included: stop after this many seconds even if the minimums "
                   "are not met (a warning says so; default 60)")
    g.add_argument("--scope", choices=["compute", "end-to-end"], default="compute",
                   help="compute = engine execute only (msame/ais_bench scope); end-to-end = load + execute + fetch")
    g.add_argument("--until-stable", type=float, default=None, metavar="PCT",
                   help="measure in windows (of --window-s and --min-iterations) until the last --stable-windows "
                   "window medians (throughput: rates) lie within PCT%% of their mean, capped by --max-duration; "
                   "reports only those windows' samples (every window in the JSON). --min-duration is then unused")
    g.add_argument("--stable-windows", type=int, default=3, help="--until-stable: windows that must agree (default 3)")
    g.add_argument("--window-s", type=float, default=2.0, help="--until-stable: seconds of one window (default 2)")
    add_harness_arguments(p, "single-stream" if batch == 1 and inflight == 1 else "offline")
    add_input_arguments(p)
    add_output_arguments(p, "write a PNG with the latency histogram and the per-iteration trace")


def add_harness_arguments(p: argparse.ArgumentParser, scenario: str) -> None:
    """--harness / --loadgen-logs: run the same engines under MLCommons LoadGen instead of pymfn's runner;
    --audit: LoadGen's compliance tests TEST01 / TEST04 on pymfn's run."""
    g = p.add_argument_group("harness and audit")
    g.add_argument("--audit", action="store_true",
                   help="after the run, LoadGen-style audits: TEST01 (outputs of a seeded 10%% sample of the "
                   "run's requests, recorded while timed, equal a re-run bit for bit) and TEST04 (one input "
                   "repeated is not more than 10%% faster than unique inputs: no result caching); verdicts in the "
                   "report and JSON")
    g.add_argument("--harness", choices=["pymfn", "loadgen"], default="pymfn",
                   help=f"pymfn = pymfn's C++ runner (default); loadgen = MLCommons LoadGen's {scenario} scenario "
                   "driving the same engine (pip install 'pymfn[loadgen]'), its own logs kept in --loadgen-logs")
    g.add_argument("--loadgen-logs", metavar="DIR", default=None,
                   help=f"--harness loadgen: where LoadGen's mlperf_log_summary.txt / mlperf_log_detail.txt go "
                   f"(default ./loadgen-{scenario}; a directory holding only LoadGen logs is replaced)")


def add_schedule_arguments(g: argparse._ArgumentGroup, *, min_duration: float, min_queries: int) -> None:
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
    g.add_argument("--keep-warm", type=int, default=0, metavar="THREADS",
                   help="this many threads spin while no request is in flight, so a query arriving at an idle engine "
                   "finds the cores awake; costs that many cores while idle (reported); default 0 = off")


def add_server_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    g = p.add_argument_group("server scenario")
    g.add_argument("--qps", type=float, default=None, help="target queries per second (Poisson arrivals); one query = "
                   "one request of --batch samples")
    g.add_argument("--p99-ms", type=float, default=None,
                   help="latency bound (ms) at --percentile for a VALID run; with --find-peak it defaults to "
                   "--bound-x-median times the single-stream median latency measured first")
    g.add_argument("--batch", type=int, default=1, help="samples per query (default 1)")
    g.add_argument("--max-batch", type=int, default=1,
                   help="dynamic batching: one request carries up to this many queued queries (the model must offer "
                   "--batch x this; a dynamic-batch om runs each request at the smallest size holding its queries, "
                   "other engines pad); default 1 = one query per request")
    g.add_argument("--max-queue-delay-ms", type=float, default=0.0,
                   help="with --max-batch: hold the oldest query up to this long for more to arrive (default 0 = "
                   "send what has arrived when a request slot is free)")
    add_schedule_arguments(g, min_duration=10.0, min_queries=1024)
    add_harness_arguments(p, "server")
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
    add_schedule_arguments(g, min_duration=10.0, min_queries=100)
    add_input_arguments(p)
    add_output_arguments(p, "PNG: latency over the run and its histogram")


# ------------------------------------------------------------------------------------------ options -> library
def parse_devices(text: str | None) -> tuple[int, ...] | None:
    """``--device 0,1,2,3`` -> (0, 1, 2, 3); None when the option was not given."""
    if text is None:
        return None
    parts = [p.strip() for p in str(text).split(",")]
    if not parts or any(not p.isdigit() for p in parts):
        raise SystemExit(f"--device {text}: expected device ids >= 0 separated by commas, e.g. 0 or 0,1,2,3")
    ids = [int(p) for p in parts]
    if len(set(ids)) != len(ids):
        raise SystemExit(f"--device {text}: a device is listed twice")
    if len(ids) > 64:
        raise SystemExit(f"--device {text}: at most 64 devices")
    return tuple(ids)


def model_argument(args: argparse.Namespace) -> Any:
    """--model as the library takes it: the path, or the built-in default model (built once, said unless --quiet)."""
    if args.model is None:
        from pymfn.bench import default_model

        return default_model(quiet=args.quiet)
    if not Path(args.model).exists():
        raise SystemExit(f"--model: {args.model} does not exist")
    return args.model


def _common(args: argparse.Namespace) -> dict[str, Any]:
    return dict(warmup_iterations=args.warmup, warmup_ms=args.warmup_ms, min_duration_s=args.min_duration,
                max_duration_s=args.max_duration, inflight=args.inflight, threads=args.threads, streams=args.streams,
                devices=parse_devices(args.device), prefetch=args.prefetch, seed=args.seed, order=args.order,
                folder_io=args.folder_io)


def stability_settings(args: argparse.Namespace) -> StabilitySettings | None:
    """--until-stable / --stable-windows / --window-s -> StabilitySettings (None without --until-stable)."""
    if args.until_stable is None:
        return None
    st = StabilitySettings(threshold_pct=args.until_stable, windows=args.stable_windows, window_s=args.window_s)
    if st.window_s * st.windows > args.max_duration:
        raise SystemExit(f"--until-stable: {st.windows} windows (--stable-windows) of --window-s {st.window_s:g} s "
                         f"do not fit in --max-duration {args.max_duration:g} s; it could never end stable")
    return st


def run_settings(args: argparse.Namespace) -> RunSettings:
    """latency / throughput options -> RunSettings."""
    common = _common(args)
    if getattr(args, "until_stable", None) is not None:  # windows replace --min-duration
        common["min_duration_s"] = min(args.window_s, args.max_duration)
    return RunSettings(min_iterations=args.min_iterations, scope=args.scope, **common)


def scenario_settings(args: argparse.Namespace) -> ScenarioSettings:
    """server / multistream options -> ScenarioSettings."""
    batching = {"max_batch": args.max_batch, "max_queue_delay_ms": args.max_queue_delay_ms} if hasattr(args, "max_batch") else {}
    return ScenarioSettings(percentile=args.percentile, min_queries=args.min_queries, schedule_seed=args.schedule_seed,
                            late_ms=args.late_ms, spin_ms=args.spin_ms, keep_warm_threads=args.keep_warm, **batching,
                            **_common(args))


def peak_search_settings(args: argparse.Namespace) -> PeakSearchSettings:
    return PeakSearchSettings(peak_runs=args.peak_runs, peak_tolerance=args.peak_tolerance,
                              probe_duration_s=args.probe_duration, bound_x_median=args.bound_x_median)


def check_outputs(args: argparse.Namespace) -> None:
    """--json and --plot can be written: checked before any measurement."""
    check_output_path(args.json, "--json")
    check_output_path(args.plot, "--plot")
    check_output_path(getattr(args, "csv", None), "--csv")
    if getattr(args, "per_request_csv", None) and getattr(args, "find_peak", False):
        raise SystemExit("--per-request-csv is for one run; with --find-peak every run's queries are in --json "
                         "(peak_run.queries_raw for the peak)")
    check_output_path(getattr(args, "per_request_csv", None), "--per-request-csv")


def progress_printer(args: argparse.Namespace) -> Callable[[str], None] | None:
    """Where a run's progress lines go: stdout as they come, or nowhere with --quiet."""
    return None if args.quiet else (lambda line: print(line, flush=True))


def save_result(args: argparse.Namespace, result: Result, prog: str, *, json_note: str = "",
                can_plot: bool = True) -> Path | None:
    """Write --json and --plot (each falls back to another path rather than losing the result); where the JSON
    went, or None."""
    json_at = None
    def write_json(path: Path) -> None:
        result.to_json(path)

    def write_plot(path: Path) -> None:
        result.plot(path)

    if args.json and (json_at := save_output(args.json, write_json, "--json", prog)):
        print(f"\nJSON{json_note} written to {json_at}")
    if args.plot and can_plot and (where := save_output(args.plot, write_plot, "--plot", prog)):
        print(f"plot written to {where}")
    save_csv(getattr(args, "csv", None), result, prog)
    per_request = getattr(args, "per_request_csv", None)
    if per_request:
        from pymfn.bench.exports import per_request_csv

        document = result.to_dict()
        if (where := save_output(per_request, lambda p: per_request_csv(document, p), "--per-request-csv", prog)):
            print(f"per-request CSV written to {where}")
    return json_at


def finish(result: Any, prog: str, json_at: Path | None, what: str, status: int = 0) -> int:
    """The exit status: ``status``, or after Ctrl-C/SIGTERM one stderr line saying what the partial result holds
    and where it went, and 130 (128 + the signal)."""
    if not result.interrupted:
        return status
    where = f"is saved in {json_at}" if json_at else "is printed above"
    return interrupted_exit(prog, f"the partial result ({what}) {where}")

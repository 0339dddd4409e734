"""`python -m pymfn.bench {latency,throughput,server,multistream,accuracy,sweep,msame,regress}`."""
from __future__ import annotations

import argparse
import math
import re
import sys

from pymfn.errors import DEBUG_ENV, CommandError, debug_enabled
from pymfn.cli.common import run_command
from pymfn._quiet import quiet_third_party_logs
from pymfn.bench.accuracy import add_accuracy_arguments, main_accuracy
from pymfn.bench.msame_compare import add_msame_arguments, main_msame
from pymfn.bench.perf import add_run_arguments, main_latency, main_throughput
from pymfn.bench.regress.compare import add_regress_arguments, main_regress
from pymfn.bench.scenarios import add_multistream_arguments, add_server_arguments, main_multistream, main_server
from pymfn.bench.sweep import add_sweep_arguments, main_sweep

DESCRIPTION = """\
Measure MobileFaceNet deployments the way trtexec / benchmark_app do, with the timing loop in C++.

  latency     batch 1, one request at a time: the figure an interactive user sees
  throughput  larger batches and several requests in flight: samples per second
  server      queries arriving at random (Poisson) at a target QPS: latency under load, VALID/INVALID
              against a p99 bound; --find-peak searches the highest QPS that stays VALID
  multistream a query of N samples every interval: p99 of query latency
  accuracy    LFW verification accuracy with the exact InsightFace 10-fold protocol
  sweep       every precision this host runs (f32/bf16/f16/INT8) x engine in one run: LFW accuracy,
              latency, throughput and the precision that really ran; table, JSON, PNG
  msame       Huawei msame's figures beside a pymfn run of the same .om and inputs
  regress     is this build slower than another (a git commit, an install, saved runs)? interleaved runs

Without --model every command uses the built-in MobileFaceNet (pretrained sirius-ai weights when
PYMFN_SHARED holds them, else random weights), built once and cached under $XDG_CACHE_HOME/pymfn.

Errors are one line on stderr (exit 1); --debug (or PYMFN_DEBUG=1) adds the traceback.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pymfn.bench", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help=f"print tracebacks of errors (same as {DEBUG_ENV}=1)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{latency,throughput,server,multistream,accuracy,sweep,msame,regress}")
    fmt = _DefaultsFormatter
    p = sub.add_parser("latency", help="per-request latency at batch 1", formatter_class=fmt,
                       description="Per-request latency (default batch 1, one request in flight), trtexec-style report.")
    add_run_arguments(p, batch=1, inflight=1, min_duration=3.0)
    p.set_defaults(func=main_latency)
    p = sub.add_parser("throughput", help="samples/s with larger batches and requests in flight", formatter_class=fmt,
                       description="Throughput with larger batches and several in-flight requests; same JSON keys as latency.")
    add_run_arguments(p, batch=16, inflight=2, min_duration=5.0)
    p.set_defaults(func=main_throughput)
    p = sub.add_parser("server", help="latency under Poisson load at a target QPS; --find-peak", formatter_class=fmt,
                       description=__import__("pymfn.bench.scenarios", fromlist=["x"]).__doc__)
    add_server_arguments(p)
    p.set_defaults(func=main_server)
    p = sub.add_parser("multistream", help="N samples per query at a fixed interval: p99 of query latency",
                       formatter_class=fmt, description="LoadGen multi-stream: a query of --samples-per-query samples "
                       "every --interval-ms; a query's latency runs from its scheduled time to its last sample's "
                       "completion; VALID when its --percentile stays under --bound-ms.")
    add_multistream_arguments(p)
    p.set_defaults(func=main_multistream)
    p = sub.add_parser("accuracy", help="LFW verification accuracy", formatter_class=fmt,
                       description="LFW accuracy (InsightFace protocol) from lfw.bin, a folder of bins, or msame outputs.")
    add_accuracy_arguments(p)
    p.set_defaults(func=main_accuracy)
    p = sub.add_parser("sweep", help="precisions x engines in one run: accuracy, latency, throughput, what ran",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description=__import__("pymfn.bench.sweep", fromlist=["x"]).__doc__)
    add_sweep_arguments(p)
    p.set_defaults(func=main_sweep)
    p = sub.add_parser("msame", help="compare with Huawei msame", formatter_class=fmt,
                       description=__import__("pymfn.bench.msame_compare", fromlist=["x"]).__doc__)
    add_msame_arguments(p)
    p.set_defaults(func=main_msame)
    p = sub.add_parser("regress", help="slower than a baseline build? interleaved runs with confidence intervals",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description=__import__("pymfn.bench.regress.compare", fromlist=["x"]).__doc__)
    add_regress_arguments(p)
    p.set_defaults(func=main_regress)
    return parser


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" only where the help text does not already explain the default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or action.default in (None, False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


# option -> smallest allowed value; checked before any model is built or loaded, so a typo costs no wait.
_MINIMUM = {"batch": 1, "inflight": 1, "warmup": 0, "warmup_ms": 0.0, "min_iterations": 1, "min_duration": 0.0,
            "max_duration": 1e-9, "threads": 0, "streams": 0, "prefetch": 0, "embedding_size": 1,
            "min_queries": 1, "peak_runs": 1, "samples_per_query": 1, "late_ms": 0.0, "schedule_seed": 0,
            "seed": 0, "budget": 1e-9}
# option -> largest allowed value: what the engines offer (request slots) and what the runner holds.
_MAXIMUM = {"inflight": 64, "schedule_seed": 2**64 - 1}


def check_numbers(args: argparse.Namespace) -> None:
    """Every numeric option of the chosen command is finite and in range (NaN fails every comparison), and the
    run's time window holds together: --max-duration caps the whole run, warm-up included."""
    for name, low in _MINIMUM.items():
        value = getattr(args, name, None)
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]  # accuracy's --embedding-size may repeat
        high = _MAXIMUM.get(name, math.inf)
        for v in values:
            if not ((isinstance(v, int) or math.isfinite(v)) and low <= v <= high):
                bound = "> 0" if low == 1e-9 else f">= {low}"
                if high != math.inf:
                    bound = f"in {low}..{high}"
                raise SystemExit(f"--{name.replace('_', '-')} must be {bound}, got {v}")
    check_time_window(args)


def check_time_window(args: argparse.Namespace) -> None:
    """Warm-up and the minimum measurement fit in --max-duration (else the run could never finish as asked)."""
    cap = getattr(args, "max_duration", None)
    if cap is None:
        return
    warmup_s = getattr(args, "warmup_ms", 0.0) / 1000.0
    if warmup_s >= cap:
        raise SystemExit(f"--warmup-ms {args.warmup_ms:g} ({warmup_s:g} s) does not fit in --max-duration {cap:g} s, "
                         "which caps the whole run, warm-up included; raise --max-duration or shorten the warm-up")
    durations = [("--min-duration", args.min_duration)]
    if getattr(args, "find_peak", False):
        durations.append(("--probe-duration", args.probe_duration))
    for option, seconds in durations:
        if seconds + warmup_s > cap:
            plus = f" plus --warmup-ms {args.warmup_ms:g}" if warmup_s else ""
            raise SystemExit(f"{option} {seconds:g} s{plus} is more than --max-duration {cap:g} s, which caps the "
                             "whole run, warm-up included")


# RunSettings field -> the option that sets it, where both use the same unit (durations are seconds on the
# command line and ms in RunSettings: those are checked up front, see check_time_window).
_OPTION_OF_FIELD = {"batch_size": "--batch", "warmup_iterations": "--warmup", "warmup_ms": "--warmup-ms",
                    "min_iterations": "--min-iterations", "inflight": "--inflight", "target_qps": "--qps",
                    "schedule_seed": "--schedule-seed", "samples_per_query": "--samples-per-query",
                    "query_interval_ms": "--interval-ms", "min_query_count": "--min-queries",
                    "late_threshold_ms": "--late-ms", "scheduler_spin_ms": "--spin-ms"}


def option_names(message: str, command: str) -> str:
    """A runner message in the words of the command line: "RunSettings.inflight" -> "--inflight"."""
    fields = dict(_OPTION_OF_FIELD, latency_bound_ms="--p99-ms" if command == "server" else "--bound-ms")
    return re.sub(r"\bRunSettings\.(\w+)", lambda m: fields.get(m.group(1), m.group(0)), message)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # --debug is accepted after the subcommand too (`latency --debug`), where users put it.
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    quiet_third_party_logs(debug_enabled(debug))
    parser = build_parser()
    args = parser.parse_args(argv)
    prog = f"pymfn.bench {args.command}"

    def body() -> int:
        check_numbers(args)
        try:
            return int(args.func(args) or 0)
        except ValueError as exc:
            import pymfn

            if not isinstance(exc, pymfn.load_core().InvalidArgument):
                raise
            worded = option_names(str(exc), args.command)
            if worded == str(exc):
                raise
            raise CommandError(worded) from exc

    return run_command(prog, body, debug=debug)


if __name__ == "__main__":
    sys.exit(main())

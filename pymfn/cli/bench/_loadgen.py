"""``--harness loadgen`` of latency / throughput / server: options -> pymfn.bench.loadgen_run -> report and outputs."""
from __future__ import annotations

import argparse

from pymfn.bench.loadgen_harness import loadgen_run
from pymfn.cli.bench._arguments import (check_outputs, finish, model_argument, progress_printer, run_settings,
                                        save_result, scenario_settings)

#: Options of pymfn's own runner that the LoadGen harness has no counterpart for.
_NOT_UNDER_LOADGEN = (("find_peak", "--find-peak"), ("audit", "--audit"), ("until_stable", "--until-stable"), ("plot", "--plot"),
                      ("per_request_csv", "--per-request-csv"))


def check_harness(args: argparse.Namespace) -> None:
    """--loadgen-logs only with --harness loadgen; pymfn-only options refused under it."""
    if args.harness != "loadgen":
        if args.loadgen_logs is not None:
            raise SystemExit("--loadgen-logs is for --harness loadgen")
        return
    if getattr(args, "keep_warm", 0):
        raise SystemExit("--keep-warm is not available with --harness loadgen; use --harness pymfn")
    if getattr(args, "max_batch", 1) != 1:
        raise SystemExit("--max-batch is not available with --harness loadgen (its SUT runs one query per request); "
                         "use --harness pymfn")
    for attr, option in _NOT_UNDER_LOADGEN:
        if getattr(args, attr, None) not in (None, False):
            raise SystemExit(f"{option} is not available with --harness loadgen (LoadGen keeps no per-query "
                             "latencies and has no search); use --harness pymfn")


def run(args: argparse.Namespace, scenario: str, prog: str) -> int:
    check_harness(args)
    check_outputs(args)
    model = model_argument(args)
    settings = scenario_settings(args) if scenario == "server" else run_settings(args)
    result = loadgen_run(model, scenario=scenario, log_dir=args.loadgen_logs or f"loadgen-{scenario}",
                         qps=getattr(args, "qps", None), latency_bound_ms=getattr(args, "p99_ms", None),
                         batch=args.batch, precision=args.precision, engine=args.engine, input=args.input,
                         settings=settings, log=progress_printer(args))
    print(result.report())
    json_at = save_result(args, result, prog, can_plot=False)
    return finish(result, prog, json_at, "nothing: LoadGen had not finished the test")

"""``pymfn bench latency`` / ``throughput``: options -> pymfn.bench.latency / throughput -> report and outputs."""
from __future__ import annotations

import argparse

import pymfn.bench as bench
from pymfn.cli.bench import _loadgen
from pymfn.cli.bench._arguments import (check_outputs, finish, model_argument, progress_printer, run_settings,
                                        save_result, stability_settings)


def run(args: argparse.Namespace, mode: str) -> int:
    _loadgen.check_harness(args)
    if args.harness == "loadgen":
        return _loadgen.run(args, "single-stream" if mode == "latency" else "offline", f"pymfn bench {mode}")
    check_outputs(args)
    stability = stability_settings(args)
    model = model_argument(args)
    measure = bench.latency if mode == "latency" else bench.throughput
    result = measure(model, batch=args.batch, precision=args.precision, engine=args.engine, input=args.input,
                     settings=run_settings(args), log=progress_printer(args), until_stable=stability,
                     audit=bench.AuditSettings() if args.audit else None)
    print(result.report())
    prog = f"pymfn bench {mode}"
    from pymfn.runtime.precision import warn_if_not_ok

    warn_if_not_ok(result.precision_report, prog)
    samples = len(result.samples_ms)
    json_at = save_result(args, result, prog, json_note=f" (with {samples} raw samples)", can_plot=samples > 0)
    return finish(result, prog, json_at, f"{result.iterations} measured requests after "
                                         f"{result.document['warmup']} warm-up requests")

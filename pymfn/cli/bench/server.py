"""Latency under load: the LoadGen server and multi-stream scenarios, and the search for the peak QPS.

``pymfn bench server --qps 300 --p99-ms 10`` sends queries to the model as a Poisson process at 300 queries per
second (a seeded schedule made before the run) and reports each query's latency from its SCHEDULED arrival, so a
slow query makes every query queued behind it late too (no coordinated omission). The run is VALID when the p99
stays under the bound, the run lasted ``--min-duration`` and ``--min-queries`` completed. ``--find-peak``
searches the highest rate that stays VALID (bisection between zero and the measured offline capacity, probes near
the bound re-run, the candidate confirmed by full runs) and writes the latency-vs-QPS curve. ``pymfn bench
multistream`` issues a query of N samples every interval and reports the p99 of query latency. ``--device 0,1``
spreads the queries over devices (the free request slot idle longest gets the next query).

The timing loop is C++ (``pymfn._core.run_server`` / ``run_multistream``, GIL released).
"""
from __future__ import annotations

import argparse

import pymfn.bench as bench
from pymfn.cli.bench import _loadgen
from pymfn.cli.bench._arguments import (add_server_arguments, check_outputs, finish, model_argument,
                                        peak_search_settings, progress_printer, save_result, scenario_settings)
from pymfn.bench.target import ModelLike
from pymfn.cli.bench._options import check_scenario_numbers, run_checked

PROG = "pymfn bench server"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_server_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return run_checked(args, "server", _run)


def _run(args: argparse.Namespace) -> int:
    check_scenario_numbers(args)
    if not args.find_peak and (args.qps is None or args.p99_ms is None):
        raise SystemExit("--qps and --p99-ms are required (or use --find-peak to search the highest QPS under a bound)")
    _loadgen.check_harness(args)
    if args.harness == "loadgen":
        return _loadgen.run(args, "server", PROG)
    check_outputs(args)
    model = model_argument(args)
    if args.find_peak:
        if args.audit:
            raise SystemExit("--audit checks one run; run it with --qps (e.g. at the peak --find-peak found)")
        return _find_peak(args, model)
    result = bench.server(model, qps=args.qps, p99_ms=args.p99_ms, batch=args.batch, precision=args.precision,
                          engine=args.engine, input=args.input, settings=scenario_settings(args),
                          log=progress_printer(args), audit=bench.AuditSettings() if args.audit else None)
    print(result.report())
    json_at = save_result(args, result, PROG, can_plot=result.queries > 0)
    return finish(result, PROG, json_at, f"{result.queries} of {result.document['queries_scheduled']} scheduled "
                                         "queries completed")


def _find_peak(args: argparse.Namespace, model: ModelLike) -> int:
    where = f"; progress and results go to {args.json}" if args.json else ""

    def started() -> None:
        print(f"find-peak: budget {args.budget:g} s (--budget) for the whole search; it stops when the budget is "
              f"spent or on Ctrl-C and keeps what it has{where}", flush=True)

    result = bench.find_peak(model, p99_ms=args.p99_ms, budget_s=args.budget, batch=args.batch,
                             precision=args.precision, engine=args.engine, input=args.input,
                             settings=scenario_settings(args), search=peak_search_settings(args),
                             log=progress_printer(args), progress_json=args.json, started=started)
    print()
    print(result.report())
    json_at = save_result(args, result, PROG, can_plot=bool(result.curve))
    return finish(result, PROG, json_at, f"{len(result.curve)} runs of the search", status=0 if result.peak_qps else 1)

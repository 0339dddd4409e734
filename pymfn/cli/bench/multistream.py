"""LoadGen multi-stream: a query of --samples-per-query samples every --interval-ms; a query's latency runs
from its scheduled time to its last sample's completion; VALID when its --percentile stays under --bound-ms."""
from __future__ import annotations

import argparse

import pymfn.bench as bench
from pymfn.cli.bench._arguments import (add_multistream_arguments, check_outputs, finish, model_argument,
                                        progress_printer, save_result, scenario_settings)
from pymfn.cli.bench._options import check_scenario_numbers, run_checked

PROG = "pymfn bench multistream"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_multistream_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return run_checked(args, "multistream", _run)


def _run(args: argparse.Namespace) -> int:
    check_scenario_numbers(args)
    check_outputs(args)
    result = bench.multistream(model_argument(args), samples_per_query=args.samples_per_query,
                               interval_ms=args.interval_ms, bound_ms=args.bound_ms, batch=args.batch,
                               precision=args.precision, engine=args.engine, input=args.input,
                               settings=scenario_settings(args), log=progress_printer(args))
    print(result.report())
    json_at = save_result(args, result, PROG, can_plot=result.queries > 0)
    return finish(result, PROG, json_at, f"{result.queries} of {result.document['queries_scheduled']} scheduled "
                                         "queries completed")

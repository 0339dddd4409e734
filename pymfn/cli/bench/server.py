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

from pymfn.bench.scenarios import add_server_arguments, main_server
from pymfn.cli.bench._options import run_checked


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_server_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return run_checked(args, "server", main_server)

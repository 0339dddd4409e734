"""Throughput with larger batches and several in-flight requests; same JSON keys as latency."""
from __future__ import annotations

import argparse

from pymfn.cli.bench import _offline
from pymfn.cli.bench._arguments import add_run_arguments
from pymfn.cli.bench._options import run_checked


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser, batch=16, inflight=2, min_duration=5.0)


def run(args: argparse.Namespace) -> int:
    return run_checked(args, "throughput", lambda a: _offline.run(a, "throughput"))

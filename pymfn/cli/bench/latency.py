"""Per-request latency (default batch 1, one request in flight), trtexec-style report."""
from __future__ import annotations

import argparse

from pymfn.cli.bench import _offline
from pymfn.cli.bench._arguments import add_run_arguments
from pymfn.cli.bench._options import run_checked


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser, batch=1, inflight=1, min_duration=3.0)


def run(args: argparse.Namespace) -> int:
    return run_checked(args, "latency", lambda a: _offline.run(a, "latency"))

"""LoadGen multi-stream: a query of --samples-per-query samples every --interval-ms; a query's latency runs
from its scheduled time to its last sample's completion; VALID when its --percentile stays under --bound-ms."""
from __future__ import annotations

import argparse

from pymfn.bench.scenarios import add_multistream_arguments, main_multistream
from pymfn.cli.bench._options import run_checked


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_multistream_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return run_checked(args, "multistream", main_multistream)

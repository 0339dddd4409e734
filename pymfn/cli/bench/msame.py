"""Put Huawei msame's figures beside pymfn's for the same .om and the same input folder, scope for scope.

Three things are compared, each with its scope named in the table and the JSON.

(1) Per execute: msame times one synchronous aclmdlExecute per file with gettimeofday (microseconds; no
  warm-up). pymfn's timing pass times the same call inside its ACL engine with a monotonic clock: exactly
  one pass over the folder in msame's (lexicographic) order, every file once; its warm-up executes come
  before the pass and are extra.
(2) Whole process: msame's wall clock from start to exit (model load, every read, execute and output write)
  beside pymfn's folder run, a child process doing the same work and writing msame's output layout, timed
  by the same function.
(3) Outputs: msame's <stem>_output_<k>.bin beside pymfn's output for input <stem>.bin, paired by name: rows
  compared, rows differing (bitwise) with the largest difference, and the names missing on either side.

msame exits 0 even when executes fail; a run with [ERROR] lines, fewer outputs than inputs or missing
indices is reported as a failed msame run (exit status 1), and its averages are not shown as results. msame's
output (stdout and stderr, interleaved as it wrote them) is kept beside its outputs as <output>/<run folder>.log
and scanned whole: an [ERROR] line anywhere (also after its summary, e.g. in its teardown) or the ACL emulator's
report of resources still outstanding at aclFinalize (a leak) fails the run too.
"""
from __future__ import annotations

import argparse

from pymfn.bench.msame_compare import add_msame_arguments, main_msame
from pymfn.cli.bench._options import run_checked


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_msame_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return run_checked(args, "msame", main_msame)

"""`python -m pymfn.bench sweep`: every precision this host runs, on every engine, in one run.

A deployer's decision is speed against accuracy. One command measures the matrix side by side on the same
machine in the same run: OpenVINO in f32 / bf16 / f16 / INT8, the ACL engine on the emulator with an fp16
and an INT8 emulator om, and the TensorFlow session as the f32 reference. Each row gets

* LFW accuracy (InsightFace protocol, no flip) and its difference to OpenVINO f32 in points,
* batch-1 latency (median, p99) and the best throughput over ``--batches`` (2 requests in flight),
* the precision that really ran (from the compiled model, ``pymfn.runtime.precision``) and a verdict.

Rows this CPU cannot run (OpenVINO lacks the capability, so it would silently run another precision) are
listed with the reason and not measured. Timed phases are interleaved: every row runs once per round, rounds
alternate their order, and each figure is the median over rounds, so ratios (INT8 / bf16, INT8 / f32) come
from one run under the same conditions. The load average at the start and the end is reported beside them.
Emulator rows are HOST timings of OpenVINO inside pymfn's ACL emulator, not Ascend figures.
"""
from __future__ import annotations

import argparse

from pymfn.bench.sweep import add_sweep_arguments, main_sweep
from pymfn.cli.bench._options import run_checked


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_sweep_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return run_checked(args, "sweep", main_sweep)

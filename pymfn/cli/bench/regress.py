"""`python -m pymfn.bench regress`: is the candidate slower than the baseline, beyond the noise of this machine?

Comparing absolute times of two runs taken minutes apart does not work on a shared machine: the same
build measured twice differs by tens of percent. So both builds are measured in the same session,
interleaved. Every round starts one fresh process per build (both stay alive, one measuring at a time)
and alternates short chunks between them, A B | B A | A B ..., so both builds see the same machine
state within a fraction of a second; which build starts alternates from round to round. The unit of
statistics is the *round*: its ratio candidate / baseline is the median over its chunk pairs of the
pair's ratio. Fresh processes per round matter: a process's own luck (memory layout, thread placement) is
then one more random effect per round instead of a bias of the whole comparison. The verdict comes from
the Hodges-Lehmann estimate of the per-round ratio and its exact signed-rank confidence interval
(pymfn.bench.stats):

  slower     estimate >= 1 + threshold and the whole interval above 1     -> exit code 4
  faster     estimate <= 1/(1 + threshold) and the whole interval below 1
  no change  otherwise (the reason says whether the interval is narrow or simply too wide)

Benchmarks (each a time-like figure, larger = slower; all builds use the same model file and inputs):
  latency     OpenVINO engine, batch 1, one request: median ms per request
  throughput  OpenVINO engine, batch 4, 2 requests in flight: ms per sample (1000 / samples per s)
  loader      folder of .bin files in batches of 64 (default reader): median CPU ms per pass (all threads;
              wall time of a few-ms pass on a loaded machine is mostly scheduling)

Saved pytest-benchmark runs (``--baseline a.json --candidate b.json``, each option repeatable) are
compared by the peer-normalised ratios the suites record in extra_info, with the same verdict; each
saved run is one sample (pymfn.bench.regress.saved says why), so the interval needs 4 runs per side.
"""
from __future__ import annotations

import argparse

from pymfn.bench.regress.compare import add_regress_arguments, main_regress
from pymfn.cli.bench._options import run_checked


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_regress_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return run_checked(args, "regress", main_regress)

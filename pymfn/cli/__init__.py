"""Command lines: ``pymfn <command>`` and ``pymfn bench <command>`` (also ``python -m pymfn[.bench]``).

Every command is one module of this package (``pymfn/cli/<name>.py``, bench commands in
``pymfn/cli/bench/<name>.py``) registered in ``COMMANDS`` / ``BENCH_COMMANDS`` below, and follows one
convention:

* ``add_arguments(parser)`` declares its options on an ``argparse.ArgumentParser`` (the module docstring is
  the description; set ``parser.epilog`` for examples);
* optionally ``check(parser, args)``: combinations argparse cannot express, refused with ``parser.error`` (a
  usage error, exit 2) before any work;
* ``run(args) -> int`` calls the library (``pymfn.bench``, ``pymfn.export``, ...) and prints; it is the only
  place that sees the ``argparse.Namespace``.

The dispatcher owns what is common: ``--debug`` anywhere on the line, one-line errors naming the program as
``pymfn <cmd>`` / ``pymfn bench <cmd>``, exit statuses, Ctrl-C/SIGTERM handling (``pymfn.cli.common``).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from dataclasses import dataclass
from types import ModuleType

from pymfn._quiet import quiet_third_party_logs
from pymfn.cli.common import DefaultsFormatter, run_command
from pymfn.errors import DEBUG_ENV, debug_enabled


@dataclass(frozen=True)
class Command:
    module: str
    summary: str


COMMANDS: dict[str, Command] = {
    "data": Command("pymfn.cli.data", "write training TFRecords from an image tree or InsightFace RecordIO"),
    "train": Command("pymfn.cli.train", "train MobileFaceNet with the ArcFace loss (CPU, or Ascend 910 with --device npu)"),
    "freeze": Command("pymfn.cli.freeze", "freeze a checkpoint into an inference .pb (input 'Placeholder', dynamic batch)"),
    "import-weights": Command("pymfn.cli.import_weights", "import pretrained sirius-ai weights (TFLite / TF.js) into a checkpoint"),
    "quantize": Command("pymfn.cli.quantize", "post-training INT8 (NNCF) of a frozen model into an OpenVINO IR, calibrated on images"),
    "convert": Command("pymfn.cli.convert", "convert a frozen .pb to .om (atc), .om emulator payload, ONNX or OpenVINO IR"),
    "image2bin": Command("pymfn.cli.image2bin", "turn lfw.bin or an image folder into per-image .bin inputs (msame layout) or a packed file"),
    "eval": Command("pymfn.cli.evaluate", "LFW protocol on saved embeddings (.npy) or an msame output folder"),
    "msame": Command("pymfn.cli.msame", "read msame output folders, parse msame logs, run msame"),
    "pack": Command("pymfn.cli.pack", "pack a folder of .bin files (or images) into one mmap-able packed file"),
    "embed": Command("pymfn.cli.embed", "embed an image source into sharded .npy + manifest: resumable, --shard K/N, --ray, --merge/--verify"),
    "verify": Command("pymfn.cli.verify", "all-pairs verification of identity-labelled embeddings: TAR at FAR 1e-2..1e-6 with intervals, --compare sets"),
    "acl-config": Command("pymfn.cli.acl_config", "compiler/linker flags and a CANN-shaped root to build AscendCL programs against the emulator"),
}

BENCH_COMMANDS: dict[str, Command] = {
    "latency": Command("pymfn.cli.bench.latency", "per-request latency (batch 1, one request in flight)"),
    "throughput": Command("pymfn.cli.bench.throughput", "samples/s with larger batches and requests in flight"),
    "server": Command("pymfn.cli.bench.server", "latency under Poisson load at a target QPS; --find-peak"),
    "multistream": Command("pymfn.cli.bench.multistream", "N samples per query at a fixed interval: p99 of query latency"),
    "accuracy": Command("pymfn.cli.bench.accuracy", "LFW verification accuracy (InsightFace protocol)"),
    "sweep": Command("pymfn.cli.bench.sweep", "precisions x engines in one run: accuracy, latency, throughput, what ran"),
    "msame": Command("pymfn.cli.bench.msame", "Huawei msame's figures beside a pymfn run of the same .om and inputs"),
    "regress": Command("pymfn.cli.bench.regress", "is this build slower than another? interleaved runs with confidence intervals"),
}

BENCH_INTRO = """\
Measure MobileFaceNet deployments the way trtexec / benchmark_app / LoadGen do, with the timing loop in C++.
Without --model every command uses the built-in MobileFaceNet (pretrained sirius-ai weights when PYMFN_SHARED
holds them, else random weights), built once and cached under $XDG_CACHE_HOME/pymfn."""


def _usage(group: dict[str, Command], prog: str, intro: str = "") -> str:
    width = max(len(c) for c in group)
    lines = [f"usage: {prog} <command> [options]", ""]
    if intro:
        lines += [intro, ""]
    lines += ["commands:"] + [f"  {name:<{width}}  {cmd.summary}" for name, cmd in group.items()]
    if group is COMMANDS:
        lines.insert(len(lines), f"  {'bench':<{width}}  benchmarks and accuracy: `pymfn bench --help`")
    lines += ["", f"`{prog} <command> --help` lists a command's options. Errors are one line on stderr; "
              f"--debug (anywhere) or {DEBUG_ENV}=1 adds tracebacks."]
    return "\n".join(lines)


def _module(cmd: Command) -> ModuleType:
    return importlib.import_module(cmd.module)


def parser_for(prog: str, module: ModuleType) -> argparse.ArgumentParser:
    """The parser of one command: its ``DESCRIPTION`` (else its module docstring) as description, its options
    from add_arguments()."""
    description = getattr(module, "DESCRIPTION", module.__doc__)
    parser = argparse.ArgumentParser(prog=prog, description=description, formatter_class=DefaultsFormatter)
    parser.add_argument("--debug", action="store_true", help=f"print tracebacks of errors (same as {DEBUG_ENV}=1)")
    module.add_arguments(parser)
    return parser


def _dispatch(group: dict[str, Command], prog: str, argv: list[str], debug: bool, intro: str = "") -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage(group, prog, intro))
        return 0
    name, rest = argv[0], argv[1:]
    if group is COMMANDS and name == "bench":
        return _dispatch(BENCH_COMMANDS, f"{prog} bench", rest, debug, BENCH_INTRO)
    if name not in group:
        print(f"{prog}: unknown command '{name}'\n\n{_usage(group, prog, intro)}", file=sys.stderr)
        return 2
    command_prog = f"{prog} {name}"
    module = _module(group[name])
    parser = parser_for(command_prog, module)
    args = parser.parse_args(rest)  # usage errors exit 2 (argparse)
    if hasattr(module, "check"):
        module.check(parser, args)
    return run_command(command_prog, lambda: module.run(args), debug=debug)


def main(argv: list[str] | None = None, prog: str = "pymfn") -> int:
    """``pymfn [--debug] <command> [options]`` and ``pymfn bench <command> [options]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    if debug:
        os.environ[DEBUG_ENV] = "1"  # subprocesses and library code that ask debug_enabled() see it too
    quiet_third_party_logs(debug_enabled(debug))
    return _dispatch(COMMANDS, prog, argv, debug)


def bench_main(argv: list[str] | None = None) -> int:
    """``python -m pymfn.bench <command>``: the same as ``pymfn bench <command>``."""
    return main(["bench", *(sys.argv[1:] if argv is None else argv)])

"""`python -m pymfn <command>`: one entry point, each command implemented by its own module."""
from __future__ import annotations

import importlib
import os
import sys

from pymfn.errors import DEBUG_ENV, debug_enabled
from pymfn.cli.common import run_command
from pymfn._quiet import quiet_third_party_logs

# command -> (module, one-line summary). Each module has main(argv: list[str] | None) -> int.
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("pymfn.training.tfrecords", "write training TFRecords from an image tree or InsightFace RecordIO"),
    "train": ("pymfn.training.train", "train MobileFaceNet with the ArcFace loss (CPU, or Ascend 910 with --device npu)"),
    "freeze": ("pymfn.export.freeze", "freeze a checkpoint into an inference .pb (input 'Placeholder', dynamic batch)"),
    "import-weights": ("pymfn.export.weights", "import pretrained sirius-ai weights (TFLite / TF.js) into a checkpoint"),
    "quantize": ("pymfn.export.quantize", "post-training INT8 (NNCF) of a frozen model into an OpenVINO IR, calibrated on images"),
    "convert": ("pymfn.export.convert", "convert a frozen .pb to .om (atc), .om emulator payload, ONNX or OpenVINO IR"),
    "image2bin": ("pymfn.inputs.image2bin", "turn lfw.bin or an image folder into per-image .bin inputs (msame layout) or a packed file"),
    "eval": ("pymfn.metrics.lfw", "LFW protocol on saved embeddings (.npy) or an msame output folder"),
    "msame": ("pymfn.inputs.msame", "read msame output folders, parse msame logs, run msame"),
    "pack": ("pymfn.inputs.pack", "pack a folder of .bin files (or images) into one mmap-able packed file"),
    "acl-config": ("pymfn.runtime.acl_config", "compiler/linker flags to build an AscendCL program against the ACL emulator"),
}


def _usage() -> str:
    width = max(len(c) for c in COMMANDS)
    lines = ["usage: python -m pymfn <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "Benchmarks and accuracy live in `python -m pymfn.bench` (latency, throughput, server, multistream, "
              "accuracy, sweep, msame, regress).",
              "Run `python -m pymfn <command> --help` for a command's options.",
              f"Errors are one line on stderr; `python -m pymfn --debug <command> ...` (or {DEBUG_ENV}=1) adds tracebacks."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = bool(argv) and argv[0] == "--debug"
    if debug:
        argv = argv[1:]
        os.environ[DEBUG_ENV] = "1"  # commands run their own run_command; they see the flag through it
    quiet_third_party_logs(debug_enabled(debug))
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"pymfn: unknown command '{name}'\n\n{_usage()}", file=sys.stderr)
        return 2
    # Commands report their own expected errors; this catches whatever escapes them, as one line.
    return run_command(f"pymfn {name}", lambda: importlib.import_module(COMMANDS[name][0]).main(rest), debug=debug)


if __name__ == "__main__":
    sys.exit(main())

"""msame compatibility: turn an msame output folder into a .npy array in input order, summarise msame
logs, or run msame itself."""
from __future__ import annotations

import argparse

from pymfn.cli.common import DefaultsFormatter
from pymfn.inputs.msame import read_logs, run_msame_checked, save_msame_output


def add_arguments(ap: argparse.ArgumentParser) -> None:
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("read", help="read <output>/<timestamp>/<stem>_output_<k> files into .npy",
                       formatter_class=DefaultsFormatter,
                       description="Read one msame run (natural stem order, strict checks) and save output k "
                                   "as an (N, elements) .npy array.")
    r.add_argument("output_dir", help="msame --output folder, or one timestamp folder inside it")
    r.add_argument("--dtype", default="float16", help="element type of the .bin files (default float16, as "
                                                      "the ModelZoo MobileFaceNet om writes)")
    r.add_argument("--run", help="timestamp folder to read when there are several")
    r.add_argument("--count", type=int, help="expected number of inputs (e.g. 12000 for LFW)")
    r.add_argument("--first-index", type=int, default=0, help="number of the first input file (default 0)")
    r.add_argument("--output-index", type=int, default=0, help="which model output to save (default 0)")
    r.add_argument("--txt-fp16-bits", action="store_true",
                   help="TXT files of old msame that printed float16 values as raw 16-bit integers")
    r.add_argument("--out", required=True, help="where to write the .npy")
    lg = sub.add_parser("log", help="parse msame logs and print their timing summary", formatter_class=DefaultsFormatter,
                        description="Parse msame stdout logs (folder or loop mode) and print per-run statistics.")
    lg.add_argument("logs", nargs="+", help="log files")
    rn = sub.add_parser("run", help="run msame (needs an Ascend device and msame on PATH or $PYMFN_MSAME)",
                        formatter_class=DefaultsFormatter)
    rn.add_argument("model", help=".om model")
    rn.add_argument("--input", help="folder of .bin inputs (omit for loop mode with zero input)")
    rn.add_argument("--output", required=True, help="output folder (msame adds a timestamp folder)")
    rn.add_argument("--outfmt", default="BIN", choices=["BIN", "TXT"])
    rn.add_argument("--device", type=int, default=0)
    rn.add_argument("--loop", type=int)
    rn.add_argument("--msame", help="msame executable (default: $PYMFN_MSAME or PATH)")


def _read(args: argparse.Namespace) -> None:
    res, arr = save_msame_output(args.output_dir, args.out, dtype=args.dtype, run=args.run, count=args.count,
                                 first_index=args.first_index, output_index=args.output_index,
                                 txt_fp16_bits=args.txt_fp16_bits)
    print(f"{res.run_dir}: {len(res.stems)} inputs, output {args.output_index} {arr.shape} {arr.dtype} "
          f"-> {args.out}")
    if res.other_runs:
        print(f"note: read run {res.run_dir.name}; other runs there, not read: {', '.join(res.other_runs)} "
              "(choose with --run)")


def _log(args: argparse.Namespace) -> None:
    for path in args.logs:
        for i, log in enumerate(read_logs(path)):
            nf = log.average_without_first_ms
            print(f"{path} run {i}: {log.mode} mode, {len(log.run_times_ms)} executes, average "
                  f"{log.average_ms} ms, without first {nf if nf is not None else '-'} ms")
            for w in log.warnings:
                print(f"  warning: {w}")


def _run(args: argparse.Namespace) -> None:
    res = run_msame_checked(args.model, args.input, args.output, outfmt=args.outfmt, device=args.device,
                            loop=args.loop, msame=args.msame)
    print(res.log_text, end="")
    print(f"run folder: {res.run_dir}")


def run(args: argparse.Namespace) -> int:
    {"read": _read, "log": _log, "run": _run}[args.cmd](args)
    return 0

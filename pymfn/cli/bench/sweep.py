"""`pymfn bench sweep`: its options, over pymfn.bench.precision_sweep (whose docstring is the --help description)."""
from __future__ import annotations

import argparse

from pymfn.bench import report
from pymfn.bench.naming import option_names
from pymfn.bench.precision_sweep import ROW_SPECS, SweepSettings, sweep
from pymfn.cli.bench._options import run_checked
from pymfn.errors import CommandError
from pymfn.cli.bench._csv import save_csv
from pymfn.files.outputs import check_output_path, save_output

from pymfn.bench import precision_sweep as _library

DESCRIPTION = _library.__doc__

PROG = "pymfn bench sweep"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="frozen float .pb (default: the built-in MobileFaceNet)")
    p.add_argument("--int8-model", help="quantized IR for the INT8 rows (default: python -m pymfn quantize's defaults "
                   "applied to --model, built once and cached)")
    p.add_argument("--data", help="lfw.bin for the accuracy column (default: $PYMFN_SHARED/data/lfw/lfw.bin)")
    p.add_argument("--pairs", type=int, default=None,
                   help="use the first N pairs only (at least 20; default: all 6,000). A subset is not the LFW figure")
    p.add_argument("--rows", default=",".join(ROW_SPECS),
                   help=f"which rows, comma-separated (default all: {','.join(ROW_SPECS)})")
    p.add_argument("--batches", default="1,4,16", help="batch sizes tried for the best throughput (default 1,4,16)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (default 5; more on a busy machine)")
    p.add_argument("--seconds", type=float, default=2.0,
                   help="seconds of throughput per row and round (latency and the batch search take half; default 2)")
    p.add_argument("--json", help="write every row, ratio, round and the host's precision support as JSON")
    p.add_argument("--plot", help="write a PNG of accuracy against throughput")
    p.add_argument("--csv", metavar="PATH", help="write one CSV row per (engine, precision) row (columns: docs/exports.md)")
    p.add_argument("--quiet", action="store_true", help="fewer progress messages")


def parse_rows(text: str) -> list[str]:
    keys = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in keys if k not in ROW_SPECS]
    if bad or not keys:
        raise CommandError(f"--rows {text!r}: expected a comma-separated subset of {','.join(ROW_SPECS)}")
    return list(dict.fromkeys(keys))


def parse_batches(text: str) -> list[int]:
    try:
        batches = sorted({int(t) for t in text.split(",") if t.strip()})
    except ValueError:
        raise CommandError(f"--batches {text!r}: expected comma-separated batch sizes such as 1,4,16") from None
    if not batches or any(not 1 <= b <= 256 for b in batches):
        raise CommandError(f"--batches {text!r}: every batch size must be 1..256")
    return batches


def run(args: argparse.Namespace) -> int:
    return run_checked(args, "sweep", _run)


def _run(args: argparse.Namespace) -> int:
    check_output_path(args.json, "--json")
    check_output_path(args.plot, "--plot")
    check_output_path(args.csv, "--csv")
    settings = SweepSettings(rows=parse_rows(args.rows), batches=parse_batches(args.batches), rounds=args.rounds,
                             seconds=args.seconds, pairs=args.pairs)
    progress = None if args.quiet else (lambda text: print(text, flush=True))
    with option_names():
        result = sweep(args.model, data=args.data, int8_model=args.int8_model, settings=settings, progress=progress)
    print(result.report())
    doc = result.to_dict()
    if args.json and (where := save_output(args.json, lambda p: report.write_json(doc, p), "--json", PROG)):
        print(f"JSON written to {where}")
    if args.plot and (where := save_output(args.plot, result.plot, "--plot", PROG)):
        print(f"plot written to {where}")
    save_csv(args.csv, result, PROG)
    return 0

"""LFW accuracy (InsightFace protocol) from lfw.bin, a folder of bins, a packed file or msame outputs."""
from __future__ import annotations

import argparse
import sys

from pymfn.runtime import engines
from pymfn.bench import report
from pymfn.bench.lfw_accuracy import AccuracyResult, accuracy
from pymfn.bench.naming import option_names
from pymfn.cli.bench._options import run_checked
from pymfn.cli.bench._csv import save_csv
from pymfn.files.outputs import check_output_path, save_output

PROG = "pymfn bench accuracy"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True,
                   help="lfw.bin (InsightFace format), a folder of per-image .bin inputs or a packed file (from image2bin), or an msame "
                   "output folder (+ --issame)")
    p.add_argument("--issame", help="pair labels, one per pair (booleans or 0/1): lfw.bin, .npy or text with one "
                   "0/1/true/false per line (default for bins and packs: the labels `python -m pymfn image2bin` "
                   "wrote with them; required for msame output folders)")
    p.add_argument("--model", help="model file; default: the built-in MobileFaceNet (see `latency --help`)")
    p.add_argument("--engine", choices=engines.engine_names(), default=None, help="default: from the file type")
    p.add_argument("--precision", choices=["f32", "bf16", "f16", "int8"], default="f32",
                   help="OpenVINO precision (default f32; int8 needs a quantized model); the report states what ran. "
                   "An .om's precision is fixed at conversion (f32 = as converted)")
    p.add_argument("--threads", type=int, default=0, help="inference threads (0 = all cores)")
    p.add_argument("--batch", type=int, default=None,
                   help="batch size (default 4 for dynamic-batch models, else the largest offered size <= 64)")
    p.add_argument("--inflight", type=int, default=None,
                   help="requests kept in flight (default 2, the tf engine 1); with 2 OpenVINO uses its throughput "
                   "hint, which keeps both cores busy between batches")
    p.add_argument("--pairs", type=int, default=None,
                   help="lfw.bin: score the first N pairs only (at least 20; default: all). A subset is not the LFW "
                   "figure")
    p.add_argument("--flip", action="store_true",
                   help="flip test-time augmentation: embed every image and its mirror, combine as --flip-mode says")
    p.add_argument("--flip-mode", choices=["sum", "concat"], default="sum",
                   help="how --flip combines the two embeddings: sum = InsightFace's normalise(raw + raw_mirror); "
                   "concat = normalise([normalise(raw), normalise(raw_mirror)]), the FaceNet-style variant")
    p.add_argument("--bgr", action="store_true",
                   help="feed BGR like the reference image2bin (costs ~0.2 pt with RGB-trained weights)")
    p.add_argument("--output-dtype", default="float16", choices=["float16", "float32"],
                   help="dtype of msame output .bin files (default float16, the reference om's the_outputs); "
                   "files whose size does not fit the embedding in this dtype are an error naming the one that fits")
    p.add_argument("--embedding-size", type=int, action="append", metavar="E",
                   help="values per msame output file (default: the --model's output size, else 128 or 192, "
                   "MobileFaceNet's sizes)")
    p.add_argument("--json", help="write accuracy, per-fold figures, thresholds, VAL/FAR, AUC, EER and timing as JSON")
    p.add_argument("--plot", help="write the ROC curve as PNG")
    p.add_argument("--csv", metavar="PATH", help="write the result as CSV (columns: docs/exports.md)")
    p.add_argument("--quiet", action="store_true", help="fewer progress messages")


def run(args: argparse.Namespace) -> int:
    return run_checked(args, "accuracy", _run)


def _run(args: argparse.Namespace) -> int:
    check_output_path(args.json, "--json")
    check_output_path(args.plot, "--plot")
    check_output_path(args.csv, "--csv")
    with option_names():
        result = accuracy(args.model, data=args.data, issame=args.issame, engine=args.engine,
                          precision=args.precision, threads=args.threads, batch=args.batch, inflight=args.inflight,
                          flip=args.flip, flip_mode=args.flip_mode, bgr=args.bgr, pairs=args.pairs,
                          output_dtype=args.output_dtype, embedding_size=args.embedding_size,
                          progress=not args.quiet)
    print_and_save(result, args.json, args.plot)
    save_csv(args.csv, result, PROG)
    return 0


def print_and_save(result: AccuracyResult, json_path: str | None, plot_path: str | None) -> None:
    """The report on stdout, its warnings on stderr, then the JSON and the ROC plot (a failed write falls back
    to another name: the figures are never lost)."""
    print(result.report())
    for warning in result.warnings:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    doc = result.to_dict()
    if json_path and (where := save_output(json_path, lambda p: report.write_json(doc, p), "--json", PROG)):
        print(f"JSON written to {where}")
    if plot_path and (where := save_output(plot_path, result.plot, "--plot", PROG)):
        print(f"ROC plot written to {where}")

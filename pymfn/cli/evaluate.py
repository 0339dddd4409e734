"""LFW verification accuracy from embeddings, with InsightFace's 10-fold protocol (squared L2, strict '<',
contiguous folds, VAL@FAR=1e-3). Embeddings must be in lfw.bin pair order (rows 2k and 2k+1 form pair k).
AUC and EER are computed over all pairs."""
from __future__ import annotations

import argparse
from pathlib import Path

from pymfn.files.atomic import refuse_overlap
from pymfn.files.outputs import check_output_path, save_output
from pymfn.metrics.lfw import OUTPUT_DTYPES, evaluate_files, plot_roc, print_warnings, write_result_json

PROG = "pymfn eval"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = ("examples:\n"
                "  pymfn eval emb.npy --issame ../shared/data/lfw/lfw.bin\n"
                "  pymfn eval --msame-dir om_output --issame bins/.issame.npy\n"
                "  pymfn eval emb.npy --flip emb_mirror.npy --issame issame.npy --json acc.json --roc roc.png")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("embeddings", nargs="?", type=Path, help="embeddings .npy [2P, D] (raw or normalised)")
    src.add_argument("--msame-dir", type=Path,
                     help="msame --output folder (or one timestamp run inside it) with {i}_output_0.bin files")
    p.add_argument("--issame", type=Path, required=True,
                   help="pair labels, one per pair (booleans or 0/1): .npy, an lfw.bin file, or text with one "
                        "0/1/true/false per line")
    p.add_argument("--flip", type=Path, help="embeddings .npy of the mirrored images (InsightFace flip TTA: sum, then normalise)")
    p.add_argument("--dtype", default="float16", choices=list(OUTPUT_DTYPES),
                   help="msame output element type (default float16, the reference om)")
    p.add_argument("--embedding-size", type=int, action="append", metavar="E",
                   help="values per msame output file (default: 128 or 192, MobileFaceNet's sizes); a file of "
                        "another size is an error that names the dtype that fits")
    p.add_argument("--folds", type=int, default=10, help="number of contiguous folds (default 10)")
    p.add_argument("--json", type=Path, help="write the result as JSON here (atomically)")
    p.add_argument("--roc", type=Path, help="save the ROC curve (png/pdf/svg)")


def run(args: argparse.Namespace) -> int:
    check_output_path(args.json, "--json")
    check_output_path(args.roc, "--roc")
    # an output must never replace what is read (`eval emb.npy --json emb.npy` would overwrite the embeddings)
    refuse_overlap([(f"--json {args.json}", args.json), (f"--roc {args.roc}", args.roc)],
                   [(str(args.embeddings), args.embeddings), (f"--flip {args.flip}", args.flip),
                    (f"--issame {args.issame}", args.issame), (f"--msame-dir {args.msame_dir}", args.msame_dir)])
    result = evaluate_files(args.issame, embeddings=args.embeddings, msame_dir=args.msame_dir, flip=args.flip,
                            dtype=args.dtype, embedding_sizes=args.embedding_size, folds=args.folds)
    print(result.summary())
    print_warnings(result, PROG)
    if args.json:
        save_output(args.json, lambda p: write_result_json(result, p), "--json", PROG)
    if args.roc:
        save_output(args.roc, lambda p: plot_roc(result, p), "--roc", PROG)
    return 0

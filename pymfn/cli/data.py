"""Prepare MobileFaceNet training data."""
from __future__ import annotations

import argparse

from pymfn.cli.common import DefaultsFormatter
from pymfn.training.tfrecords import LABELS_NAME, META_NAME, write_tfrecords


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    p = sub.add_parser(
        "tfrecord",
        help="write TFRecord shards from an image tree or InsightFace RecordIO",
        formatter_class=DefaultsFormatter,
        description=(
            "Write TFRecord shards (features image/encoded = JPEG bytes, image/label = int64) plus\n"
            f"{META_NAME} (and {LABELS_NAME} for image trees). Sources: an identity-per-folder tree\n"
            "(ROOT/Name/Name_0001.jpg; labels follow sorted folder names) or an InsightFace RecordIO set\n"
            "(train.rec + train.idx, e.g. MS1M-refined), read without mxnet. Every image is fully decoded\n"
            "and its size checked, so a corrupt file fails here, naming it, and not hours into training.\n"
            "The output directory appears only when complete."),
        epilog="example: pymfn data tfrecord --from ../shared/data/lfw_train_112 --out data/lfw_tfr --shards 4",
    )
    p.add_argument("--from", dest="src", required=True, metavar="PATH",
                   help="image tree root, or a RecordIO directory / .rec file (its .idx must sit beside it)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help=f"output directory; an existing one is replaced atomically, but only if it is empty or "
                        f"an earlier output of this command (holds {META_NAME})")
    p.add_argument("--shards", type=int, default=4, metavar="N", help="number of TFRecord files (default 4)")
    p.add_argument("--format", choices=("auto", "folder", "recordio"), default="auto",
                   help="source format; auto = recordio when PATH is/contains a .rec file (default auto)")
    p.add_argument("--image-size", type=int, default=112, metavar="PX",
                   help="required square image size; 0 disables the check (default 112)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the write order shuffle; -1 keeps source order (default 0)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the full decode of JPEG images (faster for millions of images; only the JPEG "
                        "signature is checked)")


def run(args: argparse.Namespace) -> int:
    meta = write_tfrecords(args.src, args.out, shards=args.shards, fmt=args.format, image_size=args.image_size,
                           seed=args.seed, verify=not args.no_verify)
    print(f"wrote {meta['num_images']} images, {meta['num_classes']} identities, "
          f"{len(meta['shards'])} shard(s) to {args.out}")
    return 0

"""Import the pretrained sirius-ai MobileFaceNet (TFLite or TF.js export) into a TF checkpoint of pymfn's
graph. BatchNorm folded in the source becomes an identity BN with the bias as beta; the two extra linear
1x1 convs of the sirius network are multiplied into their neighbours. The TF.js export's known defects
(negated PReLU slopes, ReLU fused before PReLU) are repaired. Freeze the result with
`pymfn freeze --ckpt OUT --out model.pb`."""
from __future__ import annotations

import argparse
import json

from pymfn.export.weights import MODEL_INFO_FILE, import_checkpoint


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="source", required=True, metavar="PATH",
                        help="MobileFaceNet.tflite or mobilefacenet.json (its .bin next to it)")
    parser.add_argument("--out", required=True, metavar="CKPT_DIR",
                        help="checkpoint directory to create; an existing one is replaced atomically, but only "
                             "if it is empty or an earlier import (holds pymfn_model.json)")
    parser.add_argument("--embedding-size", type=int, default=None,
                        help="expected embedding size; error if the source differs (sirius weights: 192)")
    parser.add_argument("--slope-sign", choices=("auto", "flip", "keep"), default="auto",
                        help="TF.js only: negate PReLU slopes when the known broken export is detected "
                             "(auto), always (flip) or never (keep)")


def run(args: argparse.Namespace) -> int:
    out = import_checkpoint(args.source, args.out, embedding_size=args.embedding_size, slope_sign=args.slope_sign)
    info = json.loads((out / MODEL_INFO_FILE).read_text())  # just written by the import
    print(f"wrote {out} ({info.get('source_format')}, embedding size {info.get('embedding_size')}"
          + (f"; repaired: {'; '.join(info['repairs'])}" if info.get("repairs") else "") + ")")
    return 0

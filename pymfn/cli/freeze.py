"""Freeze a MobileFaceNet checkpoint into an inference GraphDef: input float32 [?,112,112,3] normalised
with (x-127.5)/128 (dynamic batch), BN in inference mode, output the L2-normalised embedding. The defaults
match the reference ATC call `atc --input_shape='Placeholder:1,112,112,3'`."""
from __future__ import annotations

import argparse

from pymfn.export.freeze import DEFAULT_INPUT, freeze, load_frozen


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", metavar="DIR",
                        help="checkpoint directory (or prefix such as DIR/model.ckpt-1000)")
    parser.add_argument("--random", action="store_true",
                        help="freeze a seeded random-init model instead of a checkpoint (benchmarks)")
    parser.add_argument("--seed", type=int, default=0, help="seed for --random (default 0)")
    parser.add_argument("--out", required=True, metavar="model.pb", help="frozen graph to write (atomically)")
    parser.add_argument("--input-name", default=DEFAULT_INPUT, help="input placeholder name (default Placeholder)")
    parser.add_argument("--output-name", default=None,
                        help="output node name (default 'embeddings', or 'the_outputs' with --fp16-output)")
    parser.add_argument("--fp16-output", action="store_true",
                        help="cast the normalised embedding to float16 (as the reference om model outputs)")
    parser.add_argument("--embedding-size", type=int, default=None,
                        help="expected embedding size (default: recorded in the checkpoint dir; "
                             "128 for --random)")


def check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if bool(args.ckpt) == bool(args.random):
        parser.error("give exactly one of --ckpt DIR or --random")
    if args.random and (args.input_name != DEFAULT_INPUT or args.output_name):
        parser.error("--random uses the default input/output names")


def run(args: argparse.Namespace) -> int:
    out = freeze(args.out, ckpt=None if args.random else args.ckpt, seed=args.seed, input_name=args.input_name,
                 output_name=args.output_name, fp16_output=args.fp16_output, embedding_size=args.embedding_size)
    _, inp, outp = load_frozen(out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB): input {inp}, output {outp}")
    return 0

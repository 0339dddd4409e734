"""Convert lfw.bin or a folder of 112x112 face images into model inputs, one {i}.bin per image (the msame
folder layout of the reference Ascend pipeline) or one packed file. Default: BGR like OpenCV, float32 NHWC,
(x - 127.5) * 0.0078125, 150,528 bytes per image."""
from __future__ import annotations

import argparse
from pathlib import Path

from pymfn.inputs.image2bin import image2bin_checked


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = ("Bookkeeping goes into dot-files msame ignores: .issame.npy (pair labels, lfw.bin sources), "
                ".index.txt (i -> source file, folder sources) and .image2bin.json.\n\n"
                "examples:\n"
                "  pymfn image2bin ../shared/data/lfw/lfw.bin bin_input\n"
                "  pymfn image2bin ../shared/data/lfw/lfw.bin --rgb --packed lfw_rgb.pack\n"
                "  pymfn image2bin faces/ faces_u8 --uint8     # for an om with AIPP\n")
    p.add_argument("source", type=Path, help="an InsightFace lfw.bin file or a folder of images (searched recursively, "
                                             "sorted by relative path)")
    p.add_argument("out", type=Path, nargs="?", help="output folder for {i}.bin files")
    p.add_argument("--packed", type=Path, metavar="FILE", help="write one packed file instead of a folder")
    p.add_argument("--rgb", action="store_true", help="keep RGB channel order (default BGR, as the reference's OpenCV)")
    p.add_argument("--uint8", action="store_true",
                   help="store raw uint8 pixels (37,632 bytes per image) for models that normalise with AIPP")
    p.add_argument("--limit", type=int, help="convert only the first N images (even for lfw.bin)")
    p.add_argument("--force", action="store_true", help="replace an existing output")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if (args.out is None) == (args.packed is None):
        parser.error("give either an output folder OUT or --packed FILE (exactly one)")


def run(args: argparse.Namespace) -> int:
    dtype = "uint8" if args.uint8 else "float32"
    color = "rgb" if args.rgb else "bgr"
    result = image2bin_checked(args.source, out=args.out, packed=args.packed, color=color, dtype=dtype,
                               limit=args.limit, force=args.force, progress=not args.quiet)
    count = result.meta["count"]
    print(f"wrote {count} images ({result.meta['sample_bytes']} bytes each, {dtype} {color.upper()}) "
          f"to {result.path} in {result.seconds:.1f} s ({count / result.seconds:.0f} images/s)")
    return 0

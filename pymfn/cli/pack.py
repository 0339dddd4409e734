"""Pack a folder of per-sample .bin files (msame / image2bin layout) or of images into one
packed file that the native loader maps into memory: batches are then pointers into the
file, with no per-sample reads or host copies. The output is written atomically (a failed
run leaves no partial file). Images must already be aligned to --shape: nothing is resized.
Packing an image2bin folder in its own order keeps its pair labels (FILE.issame.npy)."""
from __future__ import annotations

import argparse
from pathlib import Path

from pymfn.inputs.pack import DTYPE_CODES, ISSAME_SUFFIX, pack_checked, parse_shape, read_header, sidecar_path


def _shape(text: str) -> tuple[int, ...]:
    try:
        return parse_shape(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"bad shape {text!r}: {e}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = ("examples:\n"
                "  pymfn pack --from lfw_bins/ --out lfw.pack            # 112x112x3 float32 bins\n"
                "  pymfn pack --from faces/ --out faces.pack --dtype uint8   # raw images\n"
                "  pymfn pack --from bins/ --out x.pack --order lexicographic  # msame's file order")
    p.add_argument("--from", dest="src", required=True, type=Path,
                   help="folder of *.bin files (one sample each) or of images (searched recursively)")
    p.add_argument("--out", required=True, type=Path, help="packed file to write")
    p.add_argument("--force", action="store_true",
                   help="replace an existing --out (with its sidecars: labels of an earlier pack never stay)")
    p.add_argument("--dtype", default="float32", choices=list(DTYPE_CODES),
                   help="sample element type (default float32). For images: float32 = (x-127.5)*0.0078125 "
                        "like image2bin, uint8 = raw pixels")
    p.add_argument("--shape", default=(112, 112, 3), type=_shape,
                   help="shape of one sample, e.g. 112,112,3 (default; HWC for images)")
    p.add_argument("--order", default="natural", choices=["natural", "lexicographic"],
                   help="sample order: natural (2.bin before 10.bin, default) or lexicographic (msame's)")
    p.add_argument("--kind", default="auto", choices=["auto", "bins", "images"],
                   help="what the folder holds (auto: bins if it has any *.bin file, else images)")
    p.add_argument("--channels", default="rgb", choices=["rgb", "bgr"],
                   help="channel order for images (default rgb, what the pretrained model expects)")
    p.add_argument("--manifest", type=Path, default=None,
                   help="also write the source path of each sample, one per line, in packed order")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    out = pack_checked(args.src, args.out, dtype=args.dtype, sample_shape=args.shape, order=args.order, kind=args.kind,
                       channels=args.channels, manifest=args.manifest, progress=not args.quiet, force=args.force)
    h = read_header(out)
    labels = " with its pair labels" if sidecar_path(out, ISSAME_SUFFIX).exists() else ""
    print(f"wrote {out}: {h.count} samples of {h.dtype} {list(h.sample_shape)} "
          f"({h.header_bytes + h.count * h.sample_bytes} bytes){labels}")
    return 0

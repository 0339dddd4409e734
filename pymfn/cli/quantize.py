"""Post-training INT8 quantization (NNCF) of a frozen MobileFaceNet into an OpenVINO IR, calibrated on
images only (no labels). Writes OUT.xml, OUT.bin and OUT.quantization.json (calibration set, preset,
ignored scopes, tool versions)."""
from __future__ import annotations

import argparse
from pathlib import Path

from pymfn.export.quantize import (DEFAULT_COUNT, DEFAULT_PRESET, DEFAULT_SEED, PRESETS, QuantizeSettings, quantize,
                                   record_path)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = ("Examples:\n"
                "  pymfn quantize mfn.pb --output mfn_int8.xml\n"
                "  pymfn quantize mfn.pb --output q.xml --calibration my_faces/ --count 500 --seed 3\n"
                "  pymfn bench latency --model mfn_int8.xml --precision int8\n"
                "  pymfn convert mfn_int8.xml --target om-emu --output mfn_int8_emu.om")
    p.add_argument("model", nargs="?", help="frozen .pb (or .onnx / OpenVINO .xml); default: pymfn's built-in "
                                            "MobileFaceNet (see `pymfn bench latency --help`)")
    p.add_argument("--output", required=True, help="quantized OpenVINO IR to write (.xml; the .bin and "
                                                   ".quantization.json go beside it)")
    p.add_argument("--calibration", default=None,
                   help="image folder (searched recursively) or lfw.bin-style file; default: "
                        "$PYMFN_SHARED/data/lfw_train_112 (its identities overlap LFW; no labels are used)")
    p.add_argument("--count", type=int, default=DEFAULT_COUNT,
                   help=f"calibration images, a seeded random choice (default {DEFAULT_COUNT}); more than the "
                        "source holds is an error")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"seed of that choice (default {DEFAULT_SEED})")
    p.add_argument("--bgr", action="store_true",
                   help="feed calibration images as BGR (for a model that is fed BGR, like the reference om); "
                        "default RGB, what the model was trained on")
    p.add_argument("--preset", choices=PRESETS, default=DEFAULT_PRESET,
                   help="NNCF preset: performance = symmetric int8 activations (fastest on CPUs), mixed = "
                        "asymmetric activations (default performance)")
    p.add_argument("--fast-bias-correction", action="store_true",
                   help="NNCF's fast bias correction instead of the full one (quicker to build; cost 0.09 pt "
                        "LFW on the default model)")
    p.add_argument("--ignore-type", action="append", default=[], metavar="TYPE",
                   help="leave every operation of this OpenVINO type in float (repeatable, default none), "
                        "e.g. GroupConvolution")
    p.add_argument("--ignore-name", action="append", default=[], metavar="NAME",
                   help="leave this operation in float (repeatable, default none; OpenVINO friendly name)")
    p.add_argument("--save-calibration", metavar="DIR",
                   help="also write the chosen calibration samples as {i}.bin float32 NHWC files (msame / AMCT "
                        "--data_dir layout) with an .index.txt of their source images")
    p.add_argument("--quiet", action="store_true", help="fewer progress messages")


def run(args: argparse.Namespace) -> int:
    settings = QuantizeSettings(args.preset, args.fast_bias_correction, args.ignore_type, args.ignore_name)
    record = quantize(args.model, args.output, calibration=args.calibration, count=args.count, seed=args.seed,
                      color="bgr" if args.bgr else "rgb", settings=settings, save_calibration=args.save_calibration,
                      quiet=args.quiet)
    out = Path(args.output)
    print(f"wrote {out}, {out.with_suffix('.bin')} and {record_path(out)} ({record['output']['fake_quantize_ops']} "
          f"FakeQuantize ops, preset {settings.preset}, {record['nncf']['bias_correction']} bias correction, "
          f"{record['seconds']:.0f} s)")
    return 0

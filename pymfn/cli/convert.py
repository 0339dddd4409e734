"""Convert a frozen MobileFaceNet .pb (input 'Placeholder' NHWC float32) to an Ascend .om (runs atc), an
emulator .om (executed by pymfn's libascendcl.so emulator on any x86 host), ONNX or OpenVINO IR. With no
options --target om builds exactly the reference command of the ModelZoo MobileFaceNet entry."""
from __future__ import annotations

import argparse

from pymfn.export.convert import (IMPL_MODES, LOG_LEVELS, OUTPUT_TYPES, PRECISION_MODES, TARGETS, ConvertRequest,
                                  convert)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = ("Examples:\n"
                "  pymfn convert MobileFaceNet.pb --output tf_MobileFaceNet --dry-run\n"
                "  pymfn convert m.pb --target om --dynamic-batch 1,2,4,8 --aipp bgr\n"
                "  pymfn convert m.pb --target om-emu --output m_emu.om --precision-mode force_fp16\n"
                "  pymfn convert m.pb --target openvino --output m.xml")
    p.add_argument("model", help="frozen TensorFlow .pb; for --target om-emu also a quantized OpenVINO IR .xml "
                                 "(pymfn quantize)")
    p.add_argument("--target", choices=TARGETS, default="om",
                   help="om: Ascend om via atc (default); om-emu: emulator om; onnx; openvino (IR .xml/.bin)")
    p.add_argument("--output", help="output path. om: atc's --output (the .om suffix is optional); "
                                    "default: the .pb path with the target's suffix")
    p.add_argument("--input-name", default="Placeholder", help="input node name (default: Placeholder)")
    p.add_argument("--input-shape", default=None,
                   help="input dims, e.g. 1,112,112,3 (write --input-shape=-1,... when it starts with -1). "
                        "Default for om/om-emu: 1,112,112,3; for onnx/openvino: keep the graph's dynamic batch")
    p.add_argument("--dynamic-batch", default=None, metavar="B1,B2,...",
                   help="ATC dynamic batch list, e.g. 1,2,4,8 (2..100 sizes, each 1..2048); sets -1 as batch dim "
                        "and adds the 'ascend_mbatch_shape_data' input")
    p.add_argument("--precision-mode", choices=PRECISION_MODES, default=None,
                   help="ATC --precision_mode (default allow_fp32_to_fp16, the reference). om-emu: fp16 modes store "
                        "fp16 weights and the emulator computes f32 on fp16-rounded inputs on every host; "
                        "must_keep_origin_dtype stays f32")
    p.add_argument("--op-select-implmode", choices=IMPL_MODES, default=None,
                   help="ATC --op_select_implmode (default high_precision)")
    p.add_argument("--soc-version", default=None, help="ATC --soc_version (default Ascend310)")
    p.add_argument("--output-type", choices=OUTPUT_TYPES, default=None,
                   help="ATC --output_type (default: dtype of the last op, float16 for the reference model)")
    p.add_argument("--fusion-switch-file", default=None, help="ATC --fusion_switch_file")
    p.add_argument("--log", choices=LOG_LEVELS, default=None, help="ATC --log level")
    p.add_argument("--aipp", choices=("rgb", "bgr"), default=None,
                   help="om: write a static AIPP config (uint8 NHWC input, (x-127.5)*0.0078125 on the NPU) and "
                        "pass it as --insert_op_conf; om-emu: the same preprocessing inside the emulator's IR. "
                        "The value is the channel order of the uint8 input files (bgr swaps R and B)")
    p.add_argument("--atc", default=None, help="path to atc (default: PATH, $ASCEND_TOOLKIT_HOME, /usr/local/Ascend/...)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset for --target onnx (default 13; >= 13)")
    p.add_argument("--dry-run", action="store_true", help="print the atc command and exit (target om)")
    g = p.add_argument_group("INT8 (--target om-emu)")
    g.add_argument("--int8", action="store_true",
                   help="quantize the .pb on the way (pymfn quantize's defaults: 300 seeded images of "
                        "$PYMFN_SHARED/data/lfw_train_112, performance preset); the quantized IR is cached")
    g.add_argument("--calibration", default=None, help="with --int8: calibration image folder or lfw.bin-style file")
    g.add_argument("--count", type=int, default=None, help="with --int8: calibration images (default 300)")
    g.add_argument("--seed", type=int, default=None, help="with --int8: seed of the calibration choice (default 0)")


def run(args: argparse.Namespace) -> int:
    request = ConvertRequest(**{k: v for k, v in vars(args).items() if k != "debug"})
    print(convert(request).report)
    return 0

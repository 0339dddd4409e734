"""Convert a frozen MobileFaceNet ``.pb`` for deployment: Ascend ``.om`` (through Huawei's ``atc``), an
emulator ``.om`` the pymfn ACL emulator executes, ONNX, or OpenVINO IR.

Why one command: the reference pipeline's atc call is easy to get subtly wrong (quoting of
``--input_shape``, ``-1`` with ``--dynamic_batch_size``, AIPP config), and our host-side runs need the
same model in other formats. With no options, ``--target om`` reproduces the reference command exactly::

    atc --model=MobileFaceNet.pb --framework=3 --output=tf_MobileFaceNet --soc_version=Ascend310
        --input_shape='Placeholder:1,112,112,3' --precision_mode=allow_fp32_to_fp16
        --op_select_implmode=high_precision

Precision in the emulator om (``--target om-emu``): ``force_fp16``, ``allow_fp32_to_fp16`` and
``allow_mix_precision`` all become payload precision ``f16``: fp16 weights in the IR, and the emulator
rounds float32 inputs to fp16, then computes in f32 on every host (never bf16 or native f16, so the
figures do not depend on the CPU and are never below the device's fp16); ``must_keep_origin_dtype``
becomes ``f32``. On the NPU allow_mix_precision keeps a few ops in fp32; the emulator does not model that
difference. The ACL engine's ``properties()`` (``emulator_compute_precision``, ``emulator_precision_reason``)
say what the emulator computed; docs/precision.md has the measured figures.

INT8 in the emulator om: give ``--target om-emu`` the quantized OpenVINO IR that ``python -m pymfn quantize``
writes, or a frozen ``.pb`` with ``--int8`` to quantize on the way (the same defaults and options:
``--calibration``, ``--count``, ``--seed``). The payload IR then carries FakeQuantize operations: the
emulator runs them in f32, so the quantized layers multiply int8-grid values exactly (int8 x int8 products,
f32 sums: at least the device's int8 x int8 -> int32), on fp16-rounded inputs, the same on every host
(OpenVINO's own int8 kernels saturate on CPUs without VNNI). That is the shape of an AMCT-quantized model on Ascend:
AMCT's ``save_model`` writes a .pb with AscendQuant/AscendDequant operators around the quantized layers
(convolutions, depthwise convolutions, MatMul) for atc, and the layers left in float follow
``--precision_mode`` (README, "Precision").
``--aipp rgb|bgr`` writes the static AIPP config for atc (uint8 NHWC input normalised on the NPU); for
om-emu it builds the same preprocessing into the IR, so the uint8 input path can be exercised on a host.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Sequence

from pymfn.export import om as omlib
from pymfn.files.atomic import Transaction, atomic_write, hold, refuse_overlap
from pymfn.files.outputs import check_output_path
from pymfn._quiet import native_stderr_hidden

PRECISION_MODES = ("force_fp16", "allow_mix_precision", "allow_fp32_to_fp16", "must_keep_origin_dtype")
IMPL_MODES = ("high_precision", "high_performance")
LOG_LEVELS = ("debug", "info", "warning", "error", "null")
OUTPUT_TYPES = ("FP32", "FP16", "UINT8")
TARGETS = ("om", "om-emu", "onnx", "openvino")
CANN_ROOTS = ("/usr/local/Ascend/ascend-toolkit/latest", "/usr/local/Ascend/nnae/latest")
# fp16-style precision modes -> emulator payload precision
EMU_PRECISION = {"force_fp16": "f16", "allow_mix_precision": "f16", "allow_fp32_to_fp16": "f16",
                 "must_keep_origin_dtype": "f32"}


class ConvertError(RuntimeError):
    """A conversion could not be done; the message says what to change."""


@dataclass
class AtcOptions:
    """Everything that goes into the atc command line. Defaults = the reference pipeline."""

    model: str
    output: str  # atc's --output: path WITHOUT .om (atc appends it)
    input_name: str = "Placeholder"
    input_shape: list[int] = field(default_factory=lambda: [1, 112, 112, 3])
    dynamic_batch: list[int] | None = None
    soc_version: str = "Ascend310"
    precision_mode: str = "allow_fp32_to_fp16"
    op_select_implmode: str = "high_precision"
    output_type: str | None = None
    fusion_switch_file: str | None = None
    log: str | None = None
    insert_op_conf: str | None = None  # AIPP config file


# ---------------------------------------------------------------- argument parsing helpers

def parse_shape(text: str, what: str = "--input-shape") -> list[int]:
    """'1,112,112,3' -> [1, 112, 112, 3]; -1 allowed only first (a dynamic batch)."""
    try:
        dims = [int(t) for t in text.split(",")]
    except ValueError:
        raise ConvertError(f"{what} {text!r}: expected comma-separated integers such as 1,112,112,3") from None
    if not dims or any(d == 0 or d < -1 for d in dims) or any(d == -1 for d in dims[1:]):
        raise ConvertError(f"{what} {text!r}: dims must be positive (only the first may be -1)")
    return dims


def parse_dynamic_batch(text: str) -> list[int]:
    """Validate ATC's rules for --dynamic_batch_size: 2..100 distinct sizes, each 1..2048."""
    try:
        sizes = [int(t) for t in text.split(",")]
    except ValueError:
        raise ConvertError(f"--dynamic-batch {text!r}: expected comma-separated integers such as 1,2,4,8") from None
    if not 2 <= len(sizes) <= 100:
        raise ConvertError(f"--dynamic-batch {text!r}: ATC accepts 2..100 batch sizes, got {len(sizes)}")
    bad = [s for s in sizes if not 1 <= s <= 2048]
    if bad:
        raise ConvertError(f"--dynamic-batch {text!r}: every size must be 1..2048 (bad: {bad})")
    if len(set(sizes)) != len(sizes):
        raise ConvertError(f"--dynamic-batch {text!r}: sizes must be distinct")
    return sizes


def effective_shape(shape: list[int], dynamic_batch: list[int] | None) -> list[int]:
    """The input shape as atc sees it: -1 first with a dynamic batch list, and never -1 without one."""
    if dynamic_batch:
        return [-1] + list(shape[1:])
    if shape[0] == -1:
        raise ConvertError("--input-shape has -1 as batch: give --dynamic-batch (e.g. 1,2,4,8), "
                           "or a fixed batch such as 1,112,112,3")
    return list(shape)


# ---------------------------------------------------------------- atc

def _shape_text(dims: Sequence[int]) -> str:
    return ",".join(str(d) for d in dims)


def atc_argv(opts: AtcOptions, output: str | None = None) -> list[str]:
    """The atc argument vector (for subprocess; no shell quoting). ``output`` overrides --output."""
    shape = effective_shape(opts.input_shape, opts.dynamic_batch)
    argv = ["atc", f"--model={opts.model}", "--framework=3", f"--output={output or opts.output}",
            f"--soc_version={opts.soc_version}", f"--input_shape={opts.input_name}:{_shape_text(shape)}"]
    if opts.dynamic_batch:
        argv.append(f"--dynamic_batch_size={_shape_text(opts.dynamic_batch)}")
    argv += [f"--precision_mode={opts.precision_mode}", f"--op_select_implmode={opts.op_select_implmode}"]
    if opts.output_type:
        argv.append(f"--output_type={opts.output_type}")
    if opts.fusion_switch_file:
        argv.append(f"--fusion_switch_file={opts.fusion_switch_file}")
    if opts.insert_op_conf:
        argv.append(f"--insert_op_conf={opts.insert_op_conf}")
    if opts.log:
        argv.append(f"--log={opts.log}")
    return argv


def atc_command_string(opts: AtcOptions) -> str:
    """The command as a person would type it, quoted like Huawei's documentation (single quotes around
    --input_shape, double quotes around --dynamic_batch_size)."""
    parts = []
    for arg in atc_argv(opts):
        if arg.startswith("--input_shape="):
            parts.append("--input_shape='" + arg.split("=", 1)[1] + "'")
        elif arg.startswith("--dynamic_batch_size="):
            parts.append('--dynamic_batch_size="' + arg.split("=", 1)[1] + '"')
        elif "=" in arg:
            key, value = arg.split("=", 1)
            parts.append(f"{key}={shlex.quote(value)}")
        else:
            parts.append(arg)
    return " ".join(parts)


def find_atc(explicit: str | None = None) -> Path | None:
    """atc from --atc, PATH, or a CANN install ($ASCEND_TOOLKIT_HOME, then the usual roots)."""
    if explicit:
        p = Path(explicit)
        return p if p.is_file() and os.access(p, os.X_OK) else None
    found = shutil.which("atc")
    if found:
        return Path(found)
    roots = [os.environ.get("ASCEND_TOOLKIT_HOME", "")] + list(CANN_ROOTS)
    for root in filter(None, roots):
        for rel in ("bin/atc", "compiler/bin/atc"):
            p = Path(root) / rel
            if p.is_file() and os.access(p, os.X_OK):
                return p
    return None


def aipp_config(order: str) -> str:
    """Static AIPP for uint8 NHWC input: (pixel - 127.5) * 0.0078125 on the NPU.

    ``order`` is the channel order of the uint8 input files: "rgb" feeds the model as is; "bgr" (what an
    OpenCV-based image2bin writes) has AIPP swap R and B so the model still sees RGB."""
    if order not in ("rgb", "bgr"):
        raise ConvertError(f"--aipp {order!r}: expected rgb or bgr")
    lines = ["aipp_op {", "  aipp_mode: static", "  input_format: RGB888_U8"]
    if order == "bgr":
        lines.append("  rbuv_swap_switch: true")
    lines += [f"  min_chn_{c}: 127.5" for c in range(3)]
    lines += [f"  var_reci_chn_{c}: 0.0078125" for c in range(3)]
    lines.append("}")
    return "\n".join(lines) + "\n"


def run_atc(opts: AtcOptions, final_om: Path, atc: Path) -> omlib.OmHeader:
    """Run atc into a temp name beside ``final_om``, stream its log, check exit code and om header,
    then rename into place (so a failed run never leaves a half-written .om)."""
    with Transaction(final_om) as tx:
        tmpdir = tx.scratch()  # beside the output, under the one temp pattern: a killed run's is removed
        tmp_base = tmpdir / final_om.stem
        argv = [str(atc)] + atc_argv(opts, output=str(tmp_base))[1:]
        print("running: " + " ".join(shlex.quote(a) for a in argv), flush=True)
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write("[atc] " + line)
        rc = proc.wait()
        if rc != 0:
            raise ConvertError(f"atc exited with code {rc}; see its log above (command: {atc_command_string(opts)})")
        produced = tmp_base.with_suffix(".om")
        if not produced.is_file():
            raise ConvertError(f"atc exited 0 but wrote no {produced.name} in {tmpdir}")
        try:
            header = omlib.read_om_header(produced)
        except (omlib.OmFormatError, FileNotFoundError) as e:
            raise ConvertError(f"atc produced an invalid om file: {e}") from e
        tx.adopt(final_om, produced)
    return header


# ---------------------------------------------------------------- OpenVINO-based targets

def _ov_convert(pb: Path, input_name: str, shape: list[int] | None):
    """OpenVINO model of ``pb`` (or of an OpenVINO IR .xml, e.g. a quantized one); the input named
    ``input_name`` (TF node or tensor name) reshaped to ``shape``."""
    import openvino as ov

    if not pb.is_file():
        raise ConvertError(f"{pb}: {'OpenVINO IR' if pb.suffix.lower() == '.xml' else 'frozen .pb'} not found")
    try:
        with native_stderr_hidden():
            model = ov.Core().read_model(str(pb)) if pb.suffix.lower() == ".xml" else ov.convert_model(str(pb))
    except Exception as e:  # OpenVINO raises its own exception types for unreadable graphs
        raise ConvertError(f"{pb}: OpenVINO could not convert the frozen graph ({type(e).__name__}: {e})") from e
    wanted = {input_name, input_name + ":0"}
    ports = [p for p in model.inputs if wanted & set(p.get_names())]
    if not ports:
        have = sorted(n for p in model.inputs for n in p.get_names())
        raise ConvertError(f"{pb}: no input named {input_name!r} (inputs: {have}); set --input-name")
    if shape is not None:
        ps = ov.PartialShape([ov.Dimension(-1) if d == -1 else ov.Dimension(d) for d in shape])
        if ports[0].get_partial_shape().rank.get_length() != len(shape):
            raise ConvertError(f"--input-shape {shape} has rank {len(shape)} but {input_name!r} is "
                               f"{ports[0].get_partial_shape()}")
        try:
            model.reshape({ports[0]: ps})
        except Exception as e:
            raise ConvertError(f"{pb}: cannot set input shape {shape} ({type(e).__name__}: {e})") from e
    return model


_OV_TO_DTYPE = {"f32": "float32", "f16": "float16", "u8": "uint8", "i32": "int32", "i64": "int64"}
_OUTPUT_TYPE_DTYPE = {"FP32": "float32", "FP16": "float16", "UINT8": "uint8"}


def _dtype_name(port) -> str:
    name = port.get_element_type().get_type_name()
    if name not in _OV_TO_DTYPE:
        raise ConvertError(f"tensor {port.get_any_name()!r} has element type {name}, which the emulator does not support")
    return _OV_TO_DTYPE[name]


def _port_dims(port, batch: int | None) -> list[int]:
    ps = port.get_partial_shape()
    if ps.rank.is_dynamic:
        raise ConvertError(f"tensor {port.get_any_name()!r} has a dynamic rank")
    dims = []
    for i, d in enumerate(ps):
        if d.is_static:
            dims.append(d.get_length())
        elif i == 0:
            dims.append(-1 if batch is None else batch)
        else:
            raise ConvertError(f"tensor {port.get_any_name()!r} has a dynamic non-batch dim ({ps})")
    return dims


def _port_name(port) -> str:
    # TF tensor names carry ':0'; ATC names om I/O after the node, so drop it.
    names = sorted(port.get_names(), key=lambda n: (":" in n, len(n)))
    name = names[0] if names else "output"
    if name.endswith(":0"):
        name = name[:-2]
    return name.replace(" ", "_")


def _add_aipp(model, input_name: str, order: str):
    """The emulator's stand-in for static AIPP (see aipp_config): the input becomes uint8 NHWC and the IR
    computes (x - 127.5) * 0.0078125 itself, reversing the channels first for BGR input files."""
    from openvino.preprocess import PrePostProcessor
    import openvino as ov

    if order not in ("rgb", "bgr"):
        raise ConvertError(f"--aipp {order!r}: expected rgb or bgr")
    if model.input().get_partial_shape().rank.get_length() != 4:
        raise ConvertError(f"--aipp needs a 4-D NHWC image input; {input_name!r} is {model.input().get_partial_shape()}")
    ppp = PrePostProcessor(model)
    inp = ppp.input()
    inp.tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    inp.model().set_layout(ov.Layout("NHWC"))
    if order == "bgr":
        inp.preprocess().reverse_channels()
    inp.preprocess().convert_element_type(ov.Type.f32).mean(127.5).scale(128.0)
    return ppp.build()


def convert_om_emu(pb: Path, out: Path, *, input_name: str, input_shape: list[int], dynamic_batch: list[int] | None,
                   precision_mode: str, output_type: str | None, aipp: str | None = None) -> omlib.OmHeader:
    """Frozen pb -> emulator om (OpenVINO IR inside a genuine om header). ``aipp`` ("rgb"/"bgr") makes the om
    take uint8 NHWC input normalised inside the model, like atc with the AIPP config of ``aipp_config``."""
    import openvino as ov

    shape = effective_shape(input_shape, dynamic_batch)
    model = _ov_convert(pb, input_name, shape)
    if aipp:
        if len(model.inputs) != 1:
            raise ConvertError("--aipp needs a model with exactly one input")
        model = _add_aipp(model, input_name, aipp)
    precision = EMU_PRECISION[precision_mode]
    batch = None if dynamic_batch else shape[0]
    inputs = []
    for port in model.inputs:
        dims = _port_dims(port, batch)
        inputs.append(omlib.EmulatorTensor(_port_name(port), _dtype_name(port), dims,
                                           "NHWC" if len(dims) == 4 else "ND"))
    outputs = []
    for port in model.outputs:
        dtype = _OUTPUT_TYPE_DTYPE[output_type] if output_type else _dtype_name(port)
        if dtype == "uint8":
            raise ConvertError("--output-type UINT8 is not supported by the emulator (it keeps float outputs)")
        outputs.append(omlib.EmulatorTensor(_port_name(port), dtype, _port_dims(port, batch), "ND"))
    meta = omlib.EmulatorMeta(inputs=inputs, outputs=outputs, precision=precision, precision_mode=precision_mode,
                              dynamic_batch=list(dynamic_batch or []))
    with Transaction(out) as tx:
        # OpenVINO writes the IR to files: a scratch folder beside the output (not $TMPDIR, where a killed
        # run's copy would stay), removed with the transaction; the om itself is one atomic write.
        xml_path = tx.scratch() / "model.xml"
        # fp16 weights for the fp16 modes; OpenVINO keeps the int8 weights and quantization ranges of a
        # quantized model as they are (FakeQuantize constants are exempt from the compression).
        ov.save_model(model, str(xml_path), compress_to_fp16=(precision == "f16"))
        xml = xml_path.read_bytes()
        weights = xml_path.with_suffix(".bin").read_bytes()
        # The header's name field holds a 31-byte label; the file name, not this label, identifies the model.
        label = out.stem.encode("utf-8")[:31].decode("utf-8", errors="ignore")
        return omlib.write_emulator_om(out, meta, xml, weights, name=label)


def convert_openvino(pb: Path, out_xml: Path, *, input_name: str, input_shape: list[int] | None) -> Path:
    """Frozen pb -> OpenVINO IR (f32 weights: host runs are the accuracy reference)."""
    from pymfn.export.quantize import record_path, stage_ir

    model = _ov_convert(pb, input_name, input_shape)
    # one set: weights, then the xml; a quantization record of an earlier model of this name goes with them
    with Transaction(out_xml, also=[out_xml.with_suffix(".bin"), record_path(out_xml)]) as tx:
        stage_ir(tx, model, out_xml)
        tx.discard(record_path(out_xml))
    return out_xml


def convert_onnx(pb: Path, out: Path, *, opset: int = 13, input_shape: list[int] | None = None,
                 input_name: str = "Placeholder") -> Path:
    """Frozen pb -> ONNX via tf2onnx (input/output found like pymfn.export.freeze.load_frozen)."""
    if opset < 13:
        raise ConvertError(f"--opset {opset}: use 13 or later")
    import tf2onnx

    from pymfn.export.freeze import load_frozen

    graph_def, inp, outp = load_frozen(pb)
    if inp.split(":")[0] != input_name:
        raise ConvertError(f"{pb}: the graph's input is {inp.split(':')[0]!r}, not {input_name!r}; set --input-name")
    # tf2onnx takes shapes from the graph; a fixed batch goes through shape_override.
    shape_override = {inp: [None if d == -1 else d for d in input_shape]} if input_shape else None
    try:
        model_proto, _ = tf2onnx.convert.from_graph_def(graph_def, input_names=[inp], output_names=[outp],
                                                        opset=opset, shape_override=shape_override)
    except Exception as e:  # tf2onnx raises many types
        raise ConvertError(f"{pb}: tf2onnx failed ({type(e).__name__}: {e})") from e
    with atomic_write(out) as f:
        f.write(model_proto.SerializeToString())
    return out


# ---------------------------------------------------------------- `pymfn convert`

@dataclass
class ConvertRequest:
    """One conversion as ``pymfn convert`` takes it; None means the target's default (see the CLI's help)."""

    model: str
    target: str = "om"
    output: str | None = None
    input_name: str = "Placeholder"
    input_shape: str | None = None
    dynamic_batch: str | None = None
    precision_mode: str | None = None
    op_select_implmode: str | None = None
    soc_version: str | None = None
    output_type: str | None = None
    fusion_switch_file: str | None = None
    log: str | None = None
    aipp: str | None = None
    atc: str | None = None
    opset: int | None = None
    dry_run: bool = False
    int8: bool = False
    calibration: str | None = None
    count: int | None = None
    seed: int | None = None


@dataclass
class ConvertResult:
    """What a conversion wrote (None for a dry run) and the report ``pymfn convert`` prints."""

    path: Path | None
    report: str


def _default_output(model: Path, target: str) -> Path:
    suffix = {"om": ".om", "om-emu": ".om", "onnx": ".onnx", "openvino": ".xml"}[target]
    return model.with_suffix(suffix)


# Options that only mean something to atc, by target: given for a target that ignores them -> error
# (silently dropping an option the user typed would misreport what was built).
_ATC_ONLY = ("op_select_implmode", "soc_version", "fusion_switch_file", "log")


def _check_target_options(args: ConvertRequest) -> None:
    given = lambda names: ["--" + n.replace("_", "-") for n in names if getattr(args, n) is not None]  # noqa: E731
    if args.target == "om-emu":
        bad = given(_ATC_ONLY + ("opset",))
    elif args.target == "onnx":
        bad = given(_ATC_ONLY + ("precision_mode", "output_type"))
    elif args.target == "openvino":
        bad = given(_ATC_ONLY + ("precision_mode", "output_type", "opset"))
    else:
        bad = given(("opset",))
    if args.dry_run and args.target != "om":
        bad.append("--dry-run")
    if args.target != "om-emu":
        bad += given(("calibration", "count", "seed")) + (["--int8"] if args.int8 else [])
    elif not args.int8:
        bad += [f"{o} (only with --int8)" for o in given(("calibration", "count", "seed"))]
    if bad:
        raise ConvertError(f"not applicable to --target {args.target}: {', '.join(bad)}")


def _check_model(model: Path) -> None:
    """The input .pb exists and is a regular file (a FIFO would block the reader forever)."""
    if not model.exists():
        raise ConvertError(f"{model}: frozen .pb not found")
    if not model.is_file():
        raise ConvertError(f"{model}: not a regular file; expected a frozen TensorFlow .pb")


def _check_ir_input(model: Path, args: ConvertRequest) -> None:
    """An OpenVINO IR is accepted by --target om-emu only (atc and tf2onnx read TensorFlow graphs)."""
    if model.suffix.lower() != ".xml":
        return
    if args.target != "om-emu":
        raise ConvertError(f"{model}: an OpenVINO IR converts only with --target om-emu (atc, tf2onnx and the "
                           "openvino target read the frozen .pb)")
    if args.int8:
        raise ConvertError(f"--int8 quantizes a frozen .pb; {model} is an OpenVINO IR (give the .pb, or the "
                           "quantized IR without --int8)")


def _quantize_on_the_way(model: Path, args: ConvertRequest) -> Path:
    """--int8: the quantized IR of ``model`` (pymfn.export.quantize, cached by model, calibration and settings)."""
    from pymfn.export import quantize

    count = quantize.DEFAULT_COUNT if args.count is None else args.count
    seed = quantize.DEFAULT_SEED if args.seed is None else args.seed
    if seed < 0:
        raise ConvertError(f"--seed {seed}: expected a non-negative integer")
    source = Path(args.calibration) if args.calibration else quantize.default_calibration_source()
    float_model = quantize.read_float_model(model)
    calibration = quantize.load_calibration(source, count, seed, size=quantize.model_input_size(float_model))
    print(f"--int8: calibrating on {count} of {calibration.available} images of {source} (seed {seed}); "
          f"{quantize.overlap_note(source)}", flush=True)
    return quantize.cached_quantized(model, calibration)


def _outputs(args: ConvertRequest) -> dict[Path, str]:
    """What the command will write (nothing for --dry-run) -> how messages name it (the option as typed)."""
    if args.target == "om" and args.dry_run:
        return {}
    out_text = args.output if args.output else str(_default_output(Path(args.model), args.target))
    shown = "--output " + out_text if args.output else f"the output {out_text}"
    if args.target == "om":
        base = out_text[:-3] if out_text.endswith(".om") else out_text
        found = {Path(base + ".om"): shown}
        if args.aipp:
            found[Path(base + "_aipp.cfg")] = f"{shown} ({Path(base).name}_aipp.cfg)"
        return found
    out = Path(out_text)
    found = {out: shown}
    if args.target == "openvino":
        from pymfn.export.quantize import record_path

        for p in (out.with_suffix(".bin"), record_path(out)):
            found[p] = f"{shown} ({p.name})"
    return found


def _inputs(args: ConvertRequest) -> list[tuple[str, Path | None]]:
    model = Path(args.model)
    found: list[tuple[str, Path | None]] = [(args.model, model)]
    if model.suffix.lower() == ".xml":
        found.append((f"{args.model} (its weights {model.with_suffix('.bin').name})", model.with_suffix(".bin")))
    if args.fusion_switch_file:
        found.append((f"--fusion-switch-file {args.fusion_switch_file}", Path(args.fusion_switch_file)))
    if args.calibration:
        found.append((f"--calibration {args.calibration}", Path(args.calibration)))
    return found


def convert(args: ConvertRequest) -> ConvertResult:
    """Run one conversion with the checks of ``pymfn convert`` (options that apply to the target, outputs
    writable and distinct from the inputs, one writer per output at a time). Progress notes (AIPP input
    format, INT8 calibration) are printed as they happen; the final report is returned."""
    _check_target_options(args)
    outputs = _outputs(args)
    refuse_overlap([(label, p) for p, label in outputs.items()], _inputs(args))
    # the locks first: a second convert into the same output is refused now, not after the conversion
    with hold(list(outputs), labels=outputs):
        return _run_locked(args)


def _run_locked(args: ConvertRequest) -> ConvertResult:
    if args.opset is not None and args.opset < 13:
        raise ConvertError(f"--opset {args.opset}: use 13 or later")
    model = Path(args.model)
    dynamic = parse_dynamic_batch(args.dynamic_batch) if args.dynamic_batch else None
    if args.dynamic_batch and args.target in ("onnx", "openvino"):
        raise ConvertError("--dynamic-batch is for om/om-emu targets; onnx/openvino keep a free batch dim")
    if args.aipp and args.target not in ("om", "om-emu"):
        raise ConvertError("--aipp only applies to --target om (AIPP on the NPU) and om-emu (the same in the IR)")
    out = Path(args.output) if args.output else _default_output(model, args.target)

    if args.target == "om":
        shape = parse_shape(args.input_shape) if args.input_shape else [1, 112, 112, 3]
        out_text = args.output if args.output else str(out)
        base = out_text[:-3] if out_text.endswith(".om") else out_text
        opts = AtcOptions(model=args.model, output=base, input_name=args.input_name, input_shape=shape,
                          dynamic_batch=dynamic, soc_version=args.soc_version or "Ascend310",
                          precision_mode=args.precision_mode or "allow_fp32_to_fp16",
                          op_select_implmode=args.op_select_implmode or "high_precision", output_type=args.output_type,
                          fusion_switch_file=args.fusion_switch_file, log=args.log)
        effective_shape(shape, dynamic)  # validate before writing anything
        if not args.dry_run:
            _check_model(model)
            check_output_path(base + ".om", "--output")
            if args.aipp:
                check_output_path(base + "_aipp.cfg", "--output")
        if args.aipp:
            cfg = Path(base + "_aipp.cfg")
            opts.insert_op_conf = str(cfg)
            if not args.dry_run:  # written even when atc is missing: the CANN machine needs it with the command
                with atomic_write(cfg, "w") as f:
                    f.write(aipp_config(args.aipp))
            n = 1
            for d in shape[1:]:
                n *= d
            flags = "--uint8" + (" --rgb" if args.aipp == "rgb" else "")
            print(f"AIPP ({args.aipp}): the om takes uint8 NHWC input, {n:,} bytes per image in "
                  f"{args.aipp.upper()} order, un-normalised (the NPU computes (x - 127.5) * 0.0078125); "
                  f"write the inputs with `python -m pymfn image2bin {flags} SOURCE OUT_DIR`")
        command = atc_command_string(opts)
        if args.dry_run:
            note = ""
            if args.aipp:
                note = f"# {opts.insert_op_conf}:\n" + "".join("# " + line + "\n" for line in aipp_config(args.aipp).splitlines()) + "\n"
            return ConvertResult(None, note + command)
        atc = find_atc(args.atc)
        if atc is None:
            where = args.atc or "PATH, $ASCEND_TOOLKIT_HOME/{bin,compiler/bin}, " + ", ".join(CANN_ROOTS)
            raise ConvertError(f"atc (Huawei's CANN model converter) not found in {where}; on a machine with "
                               f"CANN installed run: {command}  (or use --target om-emu to build an emulator om "
                               "here)")
        final = Path(base + ".om")
        header = run_atc(opts, final, atc)
        return ConvertResult(final, f"wrote {final} ({header.file_size:,} bytes, om version {header.version}, "
                                    f"name {header.name!r})")

    _check_model(model)
    _check_ir_input(model, args)
    check_output_path(out, "--output")
    if args.target == "openvino":
        if out.suffix.lower() != ".xml":  # OpenVINO would fail after the conversion, naming a temp file
            raise ConvertError(f"--output {out}: expected an OpenVINO IR name ending in .xml (its weights go "
                               "beside it as .bin)")
        check_output_path(out.with_suffix(".bin"), "--output")
    if args.target == "om-emu":
        shape = parse_shape(args.input_shape) if args.input_shape else [1, 112, 112, 3]
        source = _quantize_on_the_way(model, args) if args.int8 else model
        header = convert_om_emu(source, out, input_name=args.input_name, input_shape=shape, dynamic_batch=dynamic,
                                precision_mode=args.precision_mode or "allow_fp32_to_fp16", output_type=args.output_type,
                                aipp=args.aipp)
        mode = args.precision_mode or "allow_fp32_to_fp16"
        from pymfn.runtime.precision import om_emu_precision

        info = om_emu_precision(out)
        int8 = (f"; INT8: {info['fake_quantize_ops']} FakeQuantize ops from {source.name}, quantized layers int8 on "
                f"the device, the rest {EMU_PRECISION[mode]}") if info["fake_quantize_ops"] else ""
        return ConvertResult(out, f"wrote {out} (emulator om, {header.file_size:,} bytes, precision "
                                  f"{EMU_PRECISION[mode]} for {mode}{int8}; the emulator computes it in f32 on these "
                                  "values on every host)")

    shape = parse_shape(args.input_shape) if args.input_shape else None
    if args.target == "openvino":
        convert_openvino(model, out, input_name=args.input_name, input_shape=shape)
        return ConvertResult(out, f"wrote {out} and {out.with_suffix('.bin')}")
    convert_onnx(model, out, opset=args.opset or 13, input_shape=shape, input_name=args.input_name)
    return ConvertResult(out, f"wrote {out}")

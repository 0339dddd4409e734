"""MobileFaceNet (Chen et al., 2018) as a TF1-style graph of raw ops.

Why raw ops: the same code must build on TF 2.21 here (through ``tensorflow.compat.v1``) and on TF 1.15
with Huawei's npu_bridge on Ascend 910, where Keras layers either do not exist in the same form or raise
under Keras 3. So every layer is ``tf.get_variable`` + ``tf.nn.conv2d`` / ``depthwise_conv2d`` /
``fused_batch_norm``, and PReLU is written with Relu/Abs/Sub/Mul (ops every converter knows, ATC included).

Layout (input 112x112x3, NHWC, already normalised with :func:`normalize`)::

    conv1      conv 3x3/2, 64            BN + PReLU     -> 56x56
    conv2_dw   depthwise 3x3/1, 64       BN + PReLU
    stage2     bottleneck t=2 c=64  n=5 s=2              -> 28x28
    stage3     bottleneck t=4 c=128 n=1 s=2              -> 14x14
    stage4     bottleneck t=2 c=128 n=6 s=1
    stage5     bottleneck t=4 c=128 n=1 s=2              -> 7x7
    stage6     bottleneck t=2 c=128 n=2 s=1
    conv3      conv 1x1, 512             BN + PReLU
    gdconv     depthwise 7x7 VALID, 512  BN (linear)    -> 1x1  (global depthwise conv)
    embedding  conv 1x1, E               BN (linear), flattened to [N, E]

A bottleneck is expand 1x1 (BN+PReLU) -> depthwise 3x3/s (BN+PReLU) -> project 1x1 (linear BN), with an
identity shortcut when stride is 1 and channels match (every block after the first of a stage here).

The sirius-ai MobileFaceNet_TF checkpoint (the pretrained weights in ../shared) has two extra *linear*
1x1 convolutions (64->64 after conv2_dw, 512->512 after the GDConv). Each sits between two linear layers,
so :mod:`pymfn.export.weights` folds them exactly into their neighbours instead of growing this graph: the paper
network (~1.0 M parameters) represents the sirius function exactly.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow.compat.v1 as tf

from pymfn.files.atomic import atomic_write, json_bytes

INPUT_SIZE = 112
INPUT_CHANNELS = 3
BN_EPSILON = 1e-3
BN_DECAY = 0.995
PRELU_INIT = 0.25
DEFAULT_SCOPE = "MobileFaceNet"

# (expansion t, output channels c, repeats n, first stride s), from the paper's Table 1.
BOTTLENECKS: tuple[tuple[int, int, int, int], ...] = (
    (2, 64, 5, 2),
    (4, 128, 1, 2),
    (2, 128, 6, 1),
    (4, 128, 1, 2),
    (2, 128, 2, 1),
)
STEM_CHANNELS = 64
CONV3_CHANNELS = 512
GDCONV_KERNEL = 7

MODEL_INFO_FILE = "pymfn_model.json"


def normalize(images: Any) -> Any:
    """Map pixel values 0..255 (uint8 or float, RGB) to the network's input range: ``(x - 127.5) / 128``.

    Accepts a NumPy array (returns float32 NumPy) or a TF tensor (returns a float32 tensor). Float input
    must still be in pixel units; already-normalised data would be normalised twice, which we cannot detect.
    """
    if isinstance(images, (tf.Tensor, tf.Variable)):
        return (tf.cast(images, tf.float32) - 127.5) / 128.0
    arr = np.asarray(images)
    if arr.dtype.kind not in "uif":
        raise TypeError(f"normalize: expected integer or float pixel data, got dtype {arr.dtype}")
    return ((arr.astype(np.float32) - np.float32(127.5)) / np.float32(128.0)).astype(np.float32)


# --------------------------------------------------------------------------------------------- layers

def _he_init(fan_in: int) -> Any:
    """Truncated-normal He init: keeps activation variance roughly constant through PReLU layers."""
    # truncated_normal cuts at 2 sigma, which shrinks the variance by ~0.774; compensate like Keras does.
    return tf.truncated_normal_initializer(stddev=math.sqrt(2.0 / fan_in) / 0.87962566103423978)


def _regularize(var: tf.Variable, weight_decay: float) -> None:
    if weight_decay > 0:
        loss = tf.multiply(weight_decay, tf.nn.l2_loss(var), name="l2_loss")
        tf.add_to_collection(tf.GraphKeys.REGULARIZATION_LOSSES, loss)


def _conv(x: tf.Tensor, out_ch: int, kernel: int, stride: int, weight_decay: float,
          padding: str = "SAME") -> tf.Tensor:
    in_ch = int(x.shape[-1])
    w = tf.get_variable("weights", [kernel, kernel, in_ch, out_ch], tf.float32,
                        initializer=_he_init(kernel * kernel * in_ch))
    _regularize(w, weight_decay)
    return tf.nn.conv2d(x, w, [1, stride, stride, 1], padding)


def _depthwise(x: tf.Tensor, kernel: int, stride: int, weight_decay: float,
               padding: str = "SAME") -> tf.Tensor:
    ch = int(x.shape[-1])
    w = tf.get_variable("depthwise_weights", [kernel, kernel, ch, 1], tf.float32,
                        initializer=_he_init(kernel * kernel))
    _regularize(w, weight_decay)
    return tf.nn.depthwise_conv2d(x, w, [1, stride, stride, 1], padding)


def _batch_norm(x: tf.Tensor, is_training: bool | tf.Tensor, decay: float) -> tf.Tensor:
    """Fused BN with gamma/beta; moving statistics updated through UPDATE_OPS when training.

    ``is_training`` may be a Python bool (graph specialised, no cond: what freeze and ATC want) or a bool
    tensor (one graph for train and eval). In the tensor case the inference branch returns the moving
    statistics themselves as "batch" statistics, so the update op is then an exact no-op.
    """
    ch = int(x.shape[-1])
    with tf.variable_scope("bn"):
        gamma = tf.get_variable("gamma", [ch], tf.float32, initializer=tf.ones_initializer())
        beta = tf.get_variable("beta", [ch], tf.float32, initializer=tf.zeros_initializer())
        mean = tf.get_variable("moving_mean", [ch], tf.float32, initializer=tf.zeros_initializer(),
                               trainable=False)
        var = tf.get_variable("moving_variance", [ch], tf.float32, initializer=tf.ones_initializer(),
                              trainable=False)

        def train_branch() -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
            y, m, v = tf.nn.fused_batch_norm(x, gamma, beta, epsilon=BN_EPSILON, is_training=True)
            return y, m, v

        def infer_branch() -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
            y, _, _ = tf.nn.fused_batch_norm(x, gamma, beta, mean, var, epsilon=BN_EPSILON,
                                             is_training=False)
            return y, tf.identity(mean), tf.identity(var)

        if isinstance(is_training, bool):
            if not is_training:
                return infer_branch()[0]
            y, m, v = train_branch()
        else:
            y, m, v = tf.cond(tf.cast(is_training, tf.bool), train_branch, infer_branch)
        # moving -= (moving - batch) * (1 - decay); decay=0 copies the batch statistics.
        upd_m = tf.assign_sub(mean, (mean - m) * (1.0 - decay), name="update_moving_mean")
        upd_v = tf.assign_sub(var, (var - v) * (1.0 - decay), name="update_moving_variance")
        tf.add_to_collection(tf.GraphKeys.UPDATE_OPS, upd_m)
        tf.add_to_collection(tf.GraphKeys.UPDATE_OPS, upd_v)
        return y


def _prelu(x: tf.Tensor) -> tf.Tensor:
    """PReLU from basic ops: relu(x) + ((x - |x|) * alpha) * 0.5 (per-channel alpha).

    Basic ops because TF 1.15 / npu_bridge and every converter know them. The exact order of the
    operands matters: it is the pattern OpenVINO's PReluFusionAbsSubMulMulAdd pass turns back into one
    PReLU, which the CPU plugin then fuses into the preceding convolution (about 7% faster at batch 1 than
    ``relu(x) + (alpha * 0.5) * (x - |x|)``, which it leaves as separate element-wise kernels).
    """
    ch = int(x.shape[-1])
    with tf.variable_scope("prelu"):
        alpha = tf.get_variable("alpha", [ch], tf.float32,
                                initializer=tf.constant_initializer(PRELU_INIT))
        return tf.nn.relu(x) + ((x - tf.abs(x)) * alpha) * 0.5


def _bottleneck(x: tf.Tensor, expansion: int, out_ch: int, stride: int, is_training: bool | tf.Tensor,
                weight_decay: float, decay: float) -> tf.Tensor:
    in_ch = int(x.shape[-1])
    with tf.variable_scope("expand"):
        y = _prelu(_batch_norm(_conv(x, in_ch * expansion, 1, 1, weight_decay), is_training, decay))
    with tf.variable_scope("depthwise"):
        y = _prelu(_batch_norm(_depthwise(y, 3, stride, weight_decay), is_training, decay))
    with tf.variable_scope("project"):
        y = _batch_norm(_conv(y, out_ch, 1, 1, weight_decay), is_training, decay)
    if stride == 1 and in_ch == out_ch:
        y = tf.add(x, y, name="residual")
    return y


def bottleneck_scopes() -> list[tuple[str, int, int, int, int]]:
    """Every bottleneck block in order: (scope, expansion, in channels, out channels, stride)."""
    blocks = []
    in_ch = STEM_CHANNELS
    for stage, (t, c, n, s) in enumerate(BOTTLENECKS, start=2):
        for i in range(n):
            blocks.append((f"stage{stage}/block{i}", t, in_ch, c, s if i == 0 else 1))
            in_ch = c
    return blocks


# ---------------------------------------------------------------------------------------------- model

def mobilefacenet(images: tf.Tensor, is_training: bool | tf.Tensor, embedding_size: int = 128,
                  weight_decay: float = 1e-5, scope: str = DEFAULT_SCOPE, *,
                  bn_decay: float = BN_DECAY, reuse: bool | None = None) -> tf.Tensor:
    """Build MobileFaceNet and return the prelogits ``[N, embedding_size]`` (not L2-normalised).

    Args:
        images: float32 ``[N, 112, 112, 3]`` RGB, normalised with :func:`normalize`.
        is_training: Python bool (specialised graph) or scalar bool tensor; selects batch vs moving BN stats.
        embedding_size: 128 (paper/reference) or any positive size; the sirius weights are 192.
        weight_decay: L2 factor for every conv kernel; losses go to ``REGULARIZATION_LOSSES``.
        scope: variable scope; checkpoints made by pymfn use the default.
        bn_decay: momentum of the BN moving averages (0 copies the current batch statistics).
        reuse: passed to the variable scope (build a second tower on the same variables).
    """
    if int(embedding_size) <= 0:
        raise ValueError(f"embedding_size must be a positive integer, got {embedding_size!r}")
    embedding_size = int(embedding_size)
    images = tf.convert_to_tensor(images)
    if images.dtype != tf.float32:
        raise TypeError(f"mobilefacenet: images must be float32 (use normalize()), got {images.dtype.name}")
    shape = images.shape.as_list() if images.shape.dims is not None else None
    if shape is None or len(shape) != 4 or shape[1:] != [INPUT_SIZE, INPUT_SIZE, INPUT_CHANNELS]:
        raise ValueError(f"mobilefacenet: images must have static shape [N, {INPUT_SIZE}, {INPUT_SIZE}, "
                         f"{INPUT_CHANNELS}] (NHWC), got {shape}")
    if not 0.0 <= bn_decay <= 1.0:
        raise ValueError(f"bn_decay must be in [0, 1], got {bn_decay}")

    with tf.variable_scope(scope, reuse=reuse):
        with tf.variable_scope("conv1"):
            net = _prelu(_batch_norm(_conv(images, STEM_CHANNELS, 3, 2, weight_decay), is_training, bn_decay))
        with tf.variable_scope("conv2_dw"):
            net = _prelu(_batch_norm(_depthwise(net, 3, 1, weight_decay), is_training, bn_decay))
        for name, t, _, c, s in bottleneck_scopes():
            with tf.variable_scope(name):
                net = _bottleneck(net, t, c, s, is_training, weight_decay, bn_decay)
        with tf.variable_scope("conv3"):
            net = _prelu(_batch_norm(_conv(net, CONV3_CHANNELS, 1, 1, weight_decay), is_training, bn_decay))
        with tf.variable_scope("gdconv"):
            net = _batch_norm(_depthwise(net, GDCONV_KERNEL, 1, weight_decay, padding="VALID"),
                              is_training, bn_decay)
        with tf.variable_scope("embedding"):
            net = _batch_norm(_conv(net, embedding_size, 1, 1, weight_decay), is_training, bn_decay)
            prelogits = tf.squeeze(net, [1, 2], name="prelogits")
    return prelogits


def variable_specs(embedding_size: int = 128, scope: str = DEFAULT_SCOPE) -> dict[str, tuple[tuple[int, ...], bool]]:
    """Every variable the network asks ``tf.get_variable`` for: name -> (shape, trainable).

    Built through a custom getter that hands back zeros instead of creating variables, which is several
    times faster than a real build and is exactly the set of variables a real build creates.
    """
    specs: dict[str, tuple[tuple[int, ...], bool]] = {}

    def recorder(getter, name, shape=None, dtype=tf.float32, trainable=True, **kwargs):
        specs[name] = (tuple(int(d) for d in shape), bool(trainable))
        return tf.zeros(shape, dtype)

    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, INPUT_SIZE, INPUT_SIZE, INPUT_CHANNELS])
        with tf.variable_scope(tf.get_variable_scope(), custom_getter=recorder):
            mobilefacenet(x, is_training=False, embedding_size=embedding_size, weight_decay=0.0, scope=scope)
    return specs


def count_parameters(embedding_size: int = 128) -> int:
    """Number of trainable parameters (conv kernels, BN gamma/beta, PReLU alphas) of the graph."""
    return int(sum(np.prod(shape) for shape, trainable in variable_specs(embedding_size).values() if trainable))


# ------------------------------------------------------------------------------ checkpoint metadata

def write_model_info(ckpt_dir: str | Path, embedding_size: int, **extra: Any) -> Path:
    """Record the architecture next to a checkpoint so freeze/eval can rebuild the graph without flags.

    Trainers should call this once per checkpoint directory.
    """
    info = {"architecture": "mobilefacenet", "embedding_size": int(embedding_size),
            "scope": DEFAULT_SCOPE, "bn_epsilon": BN_EPSILON, **extra}
    path = Path(ckpt_dir) / MODEL_INFO_FILE
    with atomic_write(path) as f:
        f.write(json_bytes(info, sort_keys=True))
    return path


def read_model_info(ckpt_dir: str | Path) -> dict[str, Any] | None:
    """The dict written by :func:`write_model_info`, or None if absent; ValueError naming the file if bad."""
    path = Path(ckpt_dir) / MODEL_INFO_FILE
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: unreadable model info ({e})") from e
    size = info.get("embedding_size") if isinstance(info, dict) else None
    if not isinstance(size, int) or size <= 0:
        raise ValueError(f"{path}: expected a JSON object with a positive integer 'embedding_size'")
    return info


def model_variables(scope: str = DEFAULT_SCOPE) -> list[tf.Variable]:
    """All variables (trainable and BN moving statistics) of the network in the current graph."""
    return tf.get_collection(tf.GraphKeys.GLOBAL_VARIABLES, scope=scope + "/")

"""Ascend 910 training support: the session config npu_bridge expects, and a checked import of npu_bridge.

On Ascend 910 TensorFlow 1.15 runs graphs through Huawei's ``npu_bridge`` plugin (part of the CANN TF
adapter). A session reaches the NPU only if its ConfigProto enables the custom graph optimizer
``NpuOptimizer``; its ``parameter_map`` carries the options. The reference MobileFaceNet training uses
``use_off_line=True`` (execute on the Ascend device), ``precision_mode=allow_mix_precision`` (fp16 where safe),
an optional ``fusion_switch_file`` (turns off fusions that hurt accuracy) and switches grappler's
``remapping`` pass OFF, because remapped fused ops are unknown to the NPU compiler.

The builder only needs TensorFlow's protobufs, so it is testable on any machine; ``import_npu_bridge`` is
the single place that touches the plugin.
"""
from __future__ import annotations

import os
from typing import Any

PRECISION_MODES = ("allow_mix_precision", "allow_fp32_to_fp16", "force_fp16", "must_keep_origin_dtype",
                   "force_fp32")


class NpuUnavailableError(RuntimeError):
    """npu_bridge cannot be imported (not an Ascend 910 machine with the CANN TF plugin)."""


def npu_session_config(precision_mode: str = "allow_mix_precision", fusion_switch_file: str | None = None,
                       use_off_line: bool = True, mix_compile_mode: bool | None = None,
                       intra_op_threads: int = 0, inter_op_threads: int = 0,
                       extra_options: dict[str, Any] | None = None):
    """A ``tf.ConfigProto`` that routes a TF 1.15 session through npu_bridge's ``NpuOptimizer``.

    ``extra_options`` adds other NpuOptimizer parameters (bool, int, str or bytes values), e.g.
    ``{"enable_data_pre_proc": True}``. String values are stored as bytes, as the plugin reads them.
    """
    import tensorflow.compat.v1 as tf
    from tensorflow.core.protobuf.rewriter_config_pb2 import RewriterConfig

    if precision_mode not in PRECISION_MODES:
        raise ValueError(f"precision_mode must be one of {', '.join(PRECISION_MODES)}; got {precision_mode!r}")
    if fusion_switch_file is not None and not os.path.isfile(fusion_switch_file):
        raise FileNotFoundError(f"fusion switch file not found: {fusion_switch_file}")

    config = tf.ConfigProto(intra_op_parallelism_threads=intra_op_threads,
                            inter_op_parallelism_threads=inter_op_threads)
    rewrite = config.graph_options.rewrite_options
    npu = rewrite.custom_optimizers.add()
    npu.name = "NpuOptimizer"
    params = npu.parameter_map
    params["use_off_line"].b = bool(use_off_line)
    if mix_compile_mode is not None:  # plugin default (False: whole graph on the NPU) unless asked
        params["mix_compile_mode"].b = bool(mix_compile_mode)
    params["precision_mode"].s = precision_mode.encode()
    if fusion_switch_file is not None:
        params["fusion_switch_file"].s = os.path.abspath(fusion_switch_file).encode()
    for key, value in (extra_options or {}).items():
        if isinstance(value, bool):
            params[key].b = value
        elif isinstance(value, int):
            params[key].i = value
        elif isinstance(value, (str, bytes)):
            params[key].s = value.encode() if isinstance(value, str) else value
        else:
            raise TypeError(f"NpuOptimizer option {key!r}: unsupported value type {type(value).__name__}")
    rewrite.remapping = RewriterConfig.OFF
    return config


def import_npu_bridge() -> Any:
    """Import npu_bridge the way the reference scripts do (``from npu_bridge.npu_init import *``),
    returning the ``npu_bridge.npu_init`` module, or raise NpuUnavailableError saying what is missing."""
    try:
        import importlib

        return importlib.import_module("npu_bridge.npu_init")
    except ImportError as exc:
        import tensorflow as tf

        raise NpuUnavailableError(
            "--device npu needs Huawei's npu_bridge (the CANN TensorFlow adapter), which could not be imported "
            f"({exc}). It exists only on an Ascend 910 training machine: install the CANN toolkit and its "
            "TensorFlow plugin (tfplugin, which provides npu_bridge) for TensorFlow 1.15 on Python 3.7, "
            "and source the CANN set_env.sh. "
            f"This interpreter has TensorFlow {tf.__version__}; use --device cpu here.") from None

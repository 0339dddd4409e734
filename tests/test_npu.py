"""NPU session config builder (no npu_bridge needed) and the clear error when npu_bridge is missing."""
from __future__ import annotations

import importlib.util

import pytest

from pymfn.training import npu
from pymfn.cli import main as cli_main


def _npu_optimizer(config):
    opts = [o for o in config.graph_options.rewrite_options.custom_optimizers if o.name == "NpuOptimizer"]
    assert len(opts) == 1
    return opts[0].parameter_map


def test_reference_config():
    from tensorflow.core.protobuf.rewriter_config_pb2 import RewriterConfig

    config = npu.npu_session_config()
    params = _npu_optimizer(config)
    assert params["use_off_line"].b is True
    assert params["precision_mode"].s == b"allow_mix_precision"
    assert "fusion_switch_file" not in params
    assert "mix_compile_mode" not in params
    assert config.graph_options.rewrite_options.remapping == RewriterConfig.OFF
    # survives a serialisation round trip (what the session actually receives)
    import tensorflow.compat.v1 as tf

    again = tf.ConfigProto.FromString(config.SerializeToString())
    assert _npu_optimizer(again)["precision_mode"].s == b"allow_mix_precision"


def test_options(tmp_path):
    switch = tmp_path / "fusion_switch.cfg"
    switch.write_text('{"Switch": {"GraphFusion": {"ALL": "off"}}}')
    config = npu.npu_session_config(precision_mode="force_fp32", fusion_switch_file=str(switch),
                                    use_off_line=False, mix_compile_mode=True, intra_op_threads=3,
                                    extra_options={"enable_data_pre_proc": True, "iterations_per_loop": 10,
                                                   "op_debug_level": "0"})
    params = _npu_optimizer(config)
    assert params["precision_mode"].s == b"force_fp32"
    assert params["fusion_switch_file"].s == str(switch.resolve()).encode()
    assert params["use_off_line"].b is False and params["mix_compile_mode"].b is True
    assert params["enable_data_pre_proc"].b is True and params["iterations_per_loop"].i == 10
    assert params["op_debug_level"].s == b"0"
    assert config.intra_op_parallelism_threads == 3


def test_bad_options(tmp_path):
    with pytest.raises(ValueError, match="precision_mode must be one of"):
        npu.npu_session_config(precision_mode="fp8")
    with pytest.raises(FileNotFoundError, match="fusion switch file not found: .*nope.cfg"):
        npu.npu_session_config(fusion_switch_file=str(tmp_path / "nope.cfg"))
    with pytest.raises(TypeError, match="unsupported value type"):
        npu.npu_session_config(extra_options={"x": 1.5})


@pytest.mark.skipif(importlib.util.find_spec("npu_bridge") is not None, reason="npu_bridge is installed here")
def test_missing_npu_bridge_is_explained(tmp_path, capsys):
    with pytest.raises(npu.NpuUnavailableError, match="CANN") as info:
        npu.import_npu_bridge()
    assert "TensorFlow 1.15" in str(info.value) and "Ascend 910" in str(info.value)

    # fails before reading any data or building the graph
    rc = cli_main(["train", "--data", str(tmp_path), "--ckpt-dir", str(tmp_path / "c"), "--device", "npu"])
    assert rc == 1
    assert "npu_bridge" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()

"""The default model built without TensorFlow (OpenVINO reads the TFLite file) against the frozen graph that
TensorFlow builds from the same weights: same interface, same embeddings within float32 rounding."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pymfn.errors import CommandError
from pymfn.export import default_model as dm


def _ov_run(model_path: Path, images: np.ndarray) -> tuple[np.ndarray, str]:
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(str(model_path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    out = compiled.outputs[0]
    return compiled([images])[out], out.get_any_name()


def _tf_run(pb: Path, images: np.ndarray) -> np.ndarray:
    import tensorflow.compat.v1 as tf

    graph_def = tf.GraphDef()
    graph_def.ParseFromString(pb.read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    with tf.Session(graph=graph) as sess:
        return sess.run("embeddings:0", {"Placeholder:0": images})


@pytest.fixture
def without_tensorflow(monkeypatch, tmp_path):
    """default_model() as on a base install: TensorFlow reported absent, a cache of this test's own."""
    monkeypatch.setattr(dm, "tensorflow_available", lambda: False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _faces(n: int, seed: int = 0) -> np.ndarray:
    # normalised like the model's input, (x - 127.5) / 128, from uint8 pixels
    pixels = np.random.default_rng(seed).integers(0, 256, (n, 112, 112, 3), dtype=np.uint8)
    return ((pixels.astype(np.float32) - 127.5) / 128.0).astype(np.float32)


def test_ir_without_tensorflow_matches_frozen_graph(sirius_tflite, without_tensorflow, monkeypatch, capsys) -> None:
    ir = dm.default_model()
    assert ir.path.suffix == ".xml" and ir.pretrained and ir.path.with_suffix(".bin").is_file()
    assert "TensorFlow is not installed" in capsys.readouterr().out
    monkeypatch.undo()  # the TensorFlow path, as a full install builds it (in the user's cache, reused)
    pb = dm.default_model(quiet=True)
    assert pb.path.suffix == ".pb"

    for batch in (1, 3):  # dynamic batch: the TFLite file fixes 2
        images = _faces(batch, seed=batch)
        got, name = _ov_run(ir.path, images)
        want = _tf_run(pb.path, images)
        assert name == "embeddings" and got.shape == want.shape == (batch, 192) and got.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
        # float32 rounding of ~60 layers in another order (5e-7 measured on Zen 3; values are up to ~0.3)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
        assert float(np.min(np.sum(got * want, axis=1))) > 1 - 1e-6


def test_fp16_output_ir(sirius_tflite, without_tensorflow) -> None:
    ir = dm.default_model(quiet=True)
    ir16 = dm.default_model(fp16_output=True, quiet=True)
    assert ir16.path != ir.path
    images = _faces(2)
    got16, name16 = _ov_run(ir16.path, images)
    got, _ = _ov_run(ir.path, images)
    assert name16 == "the_outputs" and got16.dtype == np.float16
    np.testing.assert_array_equal(got16, got.astype(np.float16))


def test_ir_cache_reused_and_verified(sirius_tflite, without_tensorflow, capsys) -> None:
    xml = dm.default_model(quiet=True).path
    record = json.loads(dm.record_path(xml).read_text())
    assert record["bin"]["bytes"] == xml.with_suffix(".bin").stat().st_size
    before = xml.with_suffix(".bin").stat().st_mtime_ns
    assert dm.default_model().path == xml and xml.with_suffix(".bin").stat().st_mtime_ns == before
    assert "building" not in capsys.readouterr().out  # reused, not rebuilt

    weights = xml.with_suffix(".bin")
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes: only the hash can tell
    weights.write_bytes(bytes(data))
    assert dm.default_model(quiet=True).path == xml
    err = capsys.readouterr().err
    assert f"the cached default model {xml} has weights {weights.name} that sha256" in err and "rebuilding" in err
    assert dm.reusable(xml, warn=False)


def test_no_tensorflow_and_no_weights_names_the_extra(without_tensorflow, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PYMFN_SHARED", str(tmp_path / "no-shared"))
    with pytest.raises(CommandError) as e:
        dm.default_model()
    text = str(e.value)
    assert "\n" not in text and "pip install 'pymfn[train]'" in text
    assert str(tmp_path / "no-shared" / "models" / "mobilefacenet-sirius" / "MobileFaceNet.tflite") in text


def test_damaged_tflite_is_one_line(without_tensorflow, monkeypatch, tmp_path, sirius_tflite) -> None:
    shared = tmp_path / "shared"
    bad = shared / "models" / "mobilefacenet-sirius" / "MobileFaceNet.tflite"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(sirius_tflite.read_bytes()[:4096])
    monkeypatch.setenv("PYMFN_SHARED", str(shared))
    from pymfn.export.weights import WeightsFormatError

    with pytest.raises(WeightsFormatError) as e:
        dm.default_model(quiet=True)
    assert str(bad) in str(e.value) and "\n" not in str(e.value)
    assert not list((tmp_path / "cache" / "pymfn" / "models").glob("*.xml"))  # nothing half-written

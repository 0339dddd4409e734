"""OpenVINO engine: model formats, batch handling, precision, zero-copy execute and error reporting.

The models are tiny frozen graphs built here (a few convolutions + l2_normalize, same I/O convention as
pymfn's MobileFaceNet: input `Placeholder` [-1,112,112,3] float32, output `embeddings` or float16
`the_outputs`), so these tests take seconds; MobileFaceNet parity lives in test_engines.py.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("ignore")


def write_tiny_pb(path: Path, batch: int | None = None, fp16_output: bool = False, size: int = 112,
                  embedding: int = 32, seed: int = 0) -> Path:
    """A frozen TF1 graph shaped like pymfn's: conv/relu x2, global mean, matmul, l2_normalize."""
    import tensorflow as tf

    tf1 = tf.compat.v1
    rng = np.random.default_rng(seed)
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [batch, size, size, 3])  # unnamed -> "Placeholder"
        h = tf.nn.relu(tf.nn.conv2d(x, rng.normal(0, 0.2, (3, 3, 3, 8)).astype(np.float32), [1, 2, 2, 1], "SAME"))
        h = tf.nn.relu(tf.nn.conv2d(h, rng.normal(0, 0.2, (3, 3, 8, 16)).astype(np.float32), [1, 2, 2, 1], "SAME"))
        h = tf.reduce_mean(h, axis=[1, 2])
        e = tf.matmul(h, rng.normal(0, 0.3, (16, embedding)).astype(np.float32))
        if fp16_output:
            tf.cast(tf.nn.l2_normalize(e, 1, 1e-10), tf.float16, name="the_outputs")
        else:
            tf.nn.l2_normalize(e, 1, 1e-10, name="embeddings")
    path.write_bytes(g.as_graph_def().SerializeToString())
    return path


def tf_reference(pb: Path, x: np.ndarray) -> np.ndarray:
    from pymfn.runtime.engines import TFEngine

    return TFEngine(pb).execute([x])[0]


@pytest.fixture(scope="module")
def tiny_pb(tmp_path_factory) -> Path:
    return write_tiny_pb(tmp_path_factory.mktemp("ov") / "tiny.pb")


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(1).uniform(-1, 1, (5, 112, 112, 3)).astype(np.float32)


def test_pb_describes_dynamic_batch(core, tiny_pb):
    e = core.OpenVINOEngine(str(tiny_pb))
    assert e.kind == "openvino" and e.model_path == str(tiny_pb)
    (inp,), (out,) = e.inputs(), e.outputs()
    assert (inp.name, inp.dtype, list(inp.shape), inp.sample_bytes) == ("Placeholder", "float32", [-1, 112, 112, 3], 112 * 112 * 3 * 4)
    assert (out.name, out.dtype, list(out.shape), out.sample_bytes) == ("embeddings", "float32", [-1, 32], 128)
    assert list(e.supported_batches()) == []  # dynamic: any batch
    assert e.max_inflight() == 1


def test_execute_matches_tensorflow_and_reshapes(core, tiny_pb, images):
    e = core.OpenVINOEngine(str(tiny_pb))
    ref = tf_reference(tiny_pb, images)
    for rows in (1, 5, 2):  # reshape + recompile, then back to a cached size
        out = e.execute([images[:rows]])[0]
        assert out.shape == (rows, 32) and out.dtype == np.float32
        assert e.prepared_batch == rows
        np.testing.assert_allclose(out, ref[:rows], atol=1e-5)


def test_non_contiguous_input_is_accepted(core, tiny_pb, images):
    e = core.OpenVINOEngine(str(tiny_pb))
    view = np.asfortranarray(images[:2])
    assert not view.flags.c_contiguous
    np.testing.assert_allclose(e.execute([view])[0], e.execute([images[:2].copy()])[0], atol=0)


def test_properties_report_what_ran(core, tiny_pb):
    e = core.OpenVINOEngine(str(tiny_pb), threads=1, streams=1)
    p = e.properties()
    assert p["precision"] == "f32" and p["inference_precision"] == "f32"
    assert p["threads"] == "1" and p["streams"] == "1" and p["device"] == "CPU"
    assert p["openvino_version"].startswith("20")
    assert p["model_format"] == "pb" and p["dynamic_batch"] == "true"


@pytest.mark.parametrize("precision", ["bf16", "f16"])
def test_lower_precisions_run_close_to_f32(core, tiny_pb, images, precision):
    # On CPUs without bf16/fp16 units OpenVINO falls back; properties() says what actually ran.
    e = core.OpenVINOEngine(str(tiny_pb), precision=precision)
    assert e.properties()["precision"] == precision
    assert e.properties()["inference_precision"] in ("f32", "bf16", "f16")
    out = e.execute([images])[0]
    np.testing.assert_allclose(out, tf_reference(tiny_pb, images), atol=5e-2)


def test_static_batch_model_offers_only_its_batch(core, tmp_path, images):
    pb = write_tiny_pb(tmp_path / "static2.pb", batch=2)
    e = core.OpenVINOEngine(str(pb))
    assert list(e.inputs()[0].shape) == [2, 112, 112, 3]
    assert list(e.supported_batches()) == [2]
    e.prepare(2)
    with pytest.raises(core.InvalidArgument, match="static batch of 2"):
        e.prepare(3)
    with pytest.raises(core.InvalidArgument):
        e.execute([images[:3]])
    assert e.execute([images[:2]])[0].shape == (2, 32)


def test_fp16_output_graph(core, tmp_path, images):
    pb = write_tiny_pb(tmp_path / "fp16out.pb", fp16_output=True)
    e = core.OpenVINOEngine(str(pb))
    out_info = e.outputs()[0]
    assert (out_info.name, out_info.dtype, out_info.sample_bytes) == ("the_outputs", "float16", 64)
    out = e.execute([images])[0]
    assert out.dtype == np.float16
    np.testing.assert_allclose(out.astype(np.float32), tf_reference(pb, images).astype(np.float32), atol=2e-3)


def test_onnx_model(core, tmp_path):
    """A hand-written ONNX graph (Conv -> GlobalAveragePool -> Flatten) checked against numpy."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    w = rng.normal(0, 0.5, (4, 3, 1, 1)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("GlobalAveragePool", ["c"], ["p"]),
         helper.make_node("Flatten", ["p"], ["y"])],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path = tmp_path / "tiny.onnx"
    onnx.save(model, str(path))
    e = core.OpenVINOEngine(str(path))
    assert list(e.inputs()[0].shape) == [-1, 3, 8, 8] and list(e.supported_batches()) == []
    x = rng.normal(size=(3, 3, 8, 8)).astype(np.float32)
    expected = np.einsum("oc,nchw->no", w[:, :, 0, 0], x) / 64.0
    np.testing.assert_allclose(e.execute([x])[0], expected, rtol=1e-5, atol=1e-6)


def test_openvino_ir_model(core, tmp_path, tiny_pb, images):
    import openvino as ov

    xml = tmp_path / "tiny.xml"
    ov.save_model(ov.convert_model(str(tiny_pb)), str(xml), compress_to_fp16=False)
    e = core.OpenVINOEngine(str(xml))
    assert e.properties()["model_format"] == "xml"
    np.testing.assert_allclose(e.execute([images])[0], tf_reference(tiny_pb, images), atol=1e-5)


def test_async_requests_through_runner(core, tiny_pb):
    e = core.OpenVINOEngine(str(tiny_pb), num_requests=3, hint="throughput")
    assert e.max_inflight() == 3
    data = np.random.default_rng(0).uniform(-1, 1, (8, 112, 112, 3)).astype(np.float32)
    reader = core.ArrayDataset(data).reader(2)
    s = core.RunSettings(batch_size=2, inflight=3, warmup_iterations=3, min_iterations=12, min_duration_ms=0)
    r = core.run_benchmark(e, reader, s)
    assert r.iterations >= 12 and r.samples_processed == 2 * r.iterations
    assert r.stage_means_ms["compute_ms"] > 0
    # The async path must produce the same numbers as the synchronous one.
    sync = core.OpenVINOEngine(str(tiny_pb))
    np.testing.assert_allclose(core.infer_all(e, core.ArrayDataset(data).reader(2))[0],
                               core.infer_all(sync, core.ArrayDataset(data).reader(2))[0], atol=1e-6)
    # infer_all with 3 requests in flight over 7 samples (4 batches, the last padded): same rows, same order.
    want = core.infer_all(sync, core.ArrayDataset(data[:7]).reader(2))[0]
    got = core.infer_all(e, core.ArrayDataset(data[:7]).reader(2), 3)[0]
    assert got.shape == want.shape == (7,) + want.shape[1:]
    np.testing.assert_allclose(got, want, atol=1e-6)


# ------------------------------------------------------------------------------------------ errors
def test_missing_file(core, tmp_path):
    with pytest.raises(core.InputError, match="not found") as info:
        core.OpenVINOEngine(str(tmp_path / "absent.pb"))
    assert info.value.path == str(tmp_path / "absent.pb")


def test_unsupported_extension(core, tmp_path):
    p = tmp_path / "model.tflite"
    p.write_bytes(b"x")
    with pytest.raises(core.InvalidArgument, match=r"model\.tflite.*extension '\.tflite'"):
        core.OpenVINOEngine(str(p))


def test_garbage_model_names_the_file(core, tmp_path):
    p = tmp_path / "garbage.pb"
    p.write_bytes(b"\x00not a graph\xff" * 10)
    with pytest.raises(core.EngineError, match="garbage.pb"):
        core.OpenVINOEngine(str(p))


@pytest.mark.parametrize("kwargs, pattern", [
    ({"precision": "int4"}, "precision 'int4'"),
    ({"hint": "fast"}, "hint 'fast'"),
    ({"threads": -1}, "threads"),
    ({"streams": -2}, "streams"),
    ({"num_requests": 0}, "num_requests"),
])
def test_bad_options(core, tiny_pb, kwargs, pattern):
    with pytest.raises(core.InvalidArgument, match=pattern):
        core.OpenVINOEngine(str(tiny_pb), **kwargs)


def test_bad_execute_inputs(core, tiny_pb, images):
    e = core.OpenVINOEngine(str(tiny_pb))
    with pytest.raises(core.ShapeMismatch, match="float64.*float32"):
        e.execute([images.astype(np.float64)])
    with pytest.raises(core.ShapeMismatch, match=r"\[2, 112, 112\].*\[2, 112, 112, 3\]"):
        e.execute([images[:2, :, :, 0].copy()])
    with pytest.raises(core.InvalidArgument, match="2 input arrays"):
        e.execute([images, images])


def test_ir_without_weights_names_the_file(core, tmp_path, tiny_pb):
    import openvino as ov

    xml = tmp_path / "noweights.xml"
    ov.save_model(ov.convert_model(str(tiny_pb)), str(xml), compress_to_fp16=False)
    xml.with_suffix(".bin").unlink()
    with pytest.raises(core.EngineError, match="noweights.xml"):
        core.OpenVINOEngine(str(xml))

"""pymfn.runtime.engines: the TensorFlow reference engine, open_engine routing/errors, and OpenVINO f32 parity
with TensorFlow on a real MobileFaceNet frozen graph."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from test_openvino_engine import write_tiny_pb

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def tiny_pb(tmp_path_factory) -> Path:
    return write_tiny_pb(tmp_path_factory.mktemp("eng") / "tiny.pb")


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(7).uniform(-1, 1, (10, 112, 112, 3)).astype(np.float32)


@pytest.fixture(scope="session")
def mobilefacenet_pb() -> Path:
    """A random-weight MobileFaceNet frozen by pymfn.export.freeze, cached by the source of the graph code."""
    from pymfn import config
    from pymfn.export import freeze
    from pymfn.training import model

    digest = hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in (freeze, model))).hexdigest()[:12]
    out = config.cache_dir() / "models" / f"test-mobilefacenet-random-seed0-{digest}.pb"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        freeze.freeze_random(out, embedding_size=128, seed=0)
    return out


# ---------------------------------------------------------------------------------------- TFEngine
def test_tf_engine_describes_the_graph(tiny_pb):
    from pymfn.runtime.engines import TFEngine

    e = TFEngine(tiny_pb, threads=1)
    assert e.kind == "tf" and e.model_path == str(tiny_pb)
    (i,), (o,) = e.inputs(), e.outputs()
    assert (i.name, i.dtype, list(i.shape), i.sample_bytes) == ("Placeholder", "float32", [-1, 112, 112, 3], 150528)
    assert (o.name, o.dtype, list(o.shape)) == ("embeddings", "float32", [-1, 32])
    assert list(e.supported_batches()) == [] and e.max_inflight() == 1
    p = e.properties()
    assert p["threads"] == "1" and p["output"] == "embeddings:0" and p["tensorflow_version"]


def test_tf_engine_execute_is_normalised(tiny_pb, images):
    from pymfn.runtime.engines import TFEngine

    y = TFEngine(tiny_pb).execute([images])[0]
    assert y.shape == (10, 32) and y.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-6)


def test_tf_engine_fp16_output(tmp_path, images):
    from pymfn.runtime.engines import TFEngine

    e = TFEngine(write_tiny_pb(tmp_path / "h.pb", fp16_output=True))
    assert e.outputs()[0].name == "the_outputs" and e.outputs()[0].dtype == "float16"
    assert e.execute([images[:2]])[0].dtype == np.float16


def test_tf_engine_is_driven_by_the_cpp_runner(core, tiny_pb, images):
    from pymfn.runtime.engines import TFEngine

    e = TFEngine(tiny_pb, threads=1)
    settings = core.RunSettings(batch_size=2, warmup_iterations=1, min_iterations=4, min_duration_ms=0)
    r = core.run_benchmark(e, core.ArrayDataset(images).reader(2), settings)
    assert r.iterations == 4 and r.samples_processed == 8 and r.latency.median > 0
    out = core.infer_all(e, core.ArrayDataset(images).reader(4))[0]
    np.testing.assert_allclose(out, e.execute([images])[0], atol=1e-6)


def test_tf_engine_bad_input(core, tiny_pb, images):
    from pymfn.runtime.engines import TFEngine

    e = TFEngine(tiny_pb)
    with pytest.raises(core.ShapeMismatch, match="float64"):
        e.execute([images.astype(np.float64)])
    with pytest.raises(core.ShapeMismatch, match=r"\[10, 112, 3, 112\]"):
        e.execute([images.transpose(0, 1, 3, 2)])
    with pytest.raises(core.InvalidArgument, match="1 input array"):
        e.execute([images, images])


def test_tf_engine_bad_files(core, tmp_path):
    import tensorflow as tf

    from pymfn.runtime.engines import TFEngine

    with pytest.raises(core.InputError, match="not found") as info:
        TFEngine(tmp_path / "absent.pb")
    assert info.value.path == str(tmp_path / "absent.pb")
    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(core.InvalidArgument, match="frozen TensorFlow .pb"):
        TFEngine(tmp_path / "m.onnx")
    (tmp_path / "junk.pb").write_bytes(b"\xff\xfe junk \x00" * 7)
    with pytest.raises(core.FormatError, match="junk.pb"):
        TFEngine(tmp_path / "junk.pb")
    g = tf.Graph()
    with g.as_default():
        a = tf.compat.v1.placeholder(tf.float32, [None, 2])
        b = tf.compat.v1.placeholder(tf.float32, [None, 2])
        tf.add(a, b, name="embeddings")
    (tmp_path / "two.pb").write_bytes(g.as_graph_def().SerializeToString())
    with pytest.raises(core.FormatError, match="exactly one Placeholder"):
        TFEngine(tmp_path / "two.pb")


# ------------------------------------------------------------------------------------- open_engine
def test_open_engine_routes_by_suffix(core, tiny_pb):
    from pymfn.runtime.engines import TFEngine, open_engine

    ov = open_engine(tiny_pb)
    assert isinstance(ov, core.OpenVINOEngine) and ov.properties()["hint"] == "latency"
    tput = open_engine(tiny_pb, inflight=2, threads=1)
    assert tput.max_inflight() == 2 and tput.properties()["hint"] == "throughput"
    assert tput.properties()["threads"] == "1"
    assert isinstance(open_engine(tiny_pb, engine="tf"), TFEngine)


def test_open_engine_errors(core, tmp_path, tiny_pb):
    from pymfn.runtime.engines import open_engine

    with pytest.raises(core.InvalidArgument, match=r"suffix '\.tflite'"):
        open_engine(tmp_path / "m.tflite")
    with pytest.raises(core.InputError, match="not found"):
        open_engine(tmp_path / "absent.onnx")
    with pytest.raises(core.InputError, match="not found"):
        open_engine(tmp_path / "absent.om")
    with pytest.raises(core.InvalidArgument, match="engine 'trt' is unknown"):
        open_engine(tiny_pb, engine="trt")
    with pytest.raises(core.InvalidArgument, match="precision 'bf16'"):
        open_engine(tiny_pb, engine="tf", precision="bf16")
    with pytest.raises(core.InvalidArgument, match="inflight must be 1"):
        open_engine(tiny_pb, engine="tf", inflight=2)
    with pytest.raises(TypeError, match="colour"):
        open_engine(tiny_pb, colour="red")
    with pytest.raises(core.InvalidArgument, match="precision 'int8'"):
        open_engine(tiny_pb, precision="int8")


def test_open_engine_om_routes_to_acl(core, tmp_path):
    from pymfn.runtime.engines import open_engine

    bogus = tmp_path / "bogus.om"
    bogus.write_bytes(b"not an om file at all" * 4)
    if not hasattr(core, "AclEngine"):
        with pytest.raises(core.EngineError, match="no AscendCL engine"):
            open_engine(bogus)
    else:  # the ACL engine validates the om header and names the file
        with pytest.raises((core.Error, ValueError), match="bogus.om"):
            open_engine(bogus)


# ------------------------------------------------------------------------------------------ parity
@pytest.mark.slow
def test_openvino_f32_matches_tensorflow_on_mobilefacenet(core, mobilefacenet_pb, images):
    """OpenVINO f32 and the TF session agree to 1e-5 on normalised MobileFaceNet embeddings."""
    from pymfn.runtime.engines import TFEngine, open_engine

    ov = open_engine(mobilefacenet_pb, precision="f32")
    assert ov.properties()["inference_precision"] == "f32"
    tf_engine = TFEngine(mobilefacenet_pb)
    assert [list(o.shape) for o in ov.outputs()] == [[-1, 128]] == [list(o.shape) for o in tf_engine.outputs()]
    # Batch 4 over 10 images: the last batch is padded and its padding dropped by infer_all.
    a = core.infer_all(ov, core.ArrayDataset(images).reader(4))[0]
    b = core.infer_all(tf_engine, core.ArrayDataset(images).reader(4))[0]
    assert a.shape == b.shape == (10, 128)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    diff = np.abs(a - b).max()
    assert diff <= 1e-5, f"OpenVINO f32 vs TensorFlow max |diff| = {diff:.2e}"
    # Different images give different embeddings (the graph is not degenerate).
    assert np.abs(a[0] - a[1]).max() > 1e-2


def test_openvino_fuses_every_prelu_into_its_convolution(mobilefacenet_pb):
    """model._prelu is written in the one operand order OpenVINO folds back into PReLU. If it drifts
    (e.g. ``(alpha * 0.5) * (x - |x|)``), the CPU plugin keeps one element-wise subgraph per PReLU (33)
    plus layout reorders around them, and batch-1 latency gets ~7% worse without any test failing."""
    import collections

    import openvino as ov

    core = ov.Core()
    net = core.read_model(str(mobilefacenet_pb))
    net.reshape([1, 112, 112, 3])
    compiled = core.compile_model(net, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    runtime = compiled.get_runtime_model()
    layers = collections.Counter(op.get_rt_info()["layerType"].astype(str) for op in runtime.get_ops())
    assert layers["Convolution"] >= 50  # 33 dense + 17 depthwise, each with its PReLU/BN fused
    assert layers["Subgraph"] + layers["Eltwise"] <= 4, layers
    assert layers["Reorder"] <= 4, layers


def test_thread_and_device_counts_are_range_checked_before_loading(tmp_path, core):
    """`--engine tf --threads 100000` started 100,000 TensorFlow threads (memory growing, never finishing);
    `--device 4294967296` reached pybind as an internal TypeError. Both are refused by option name, before
    the model is read (the paths here do not even exist)."""
    from pymfn.runtime import engines

    cpus = engines.usable_cpus()
    for bad in (-1, cpus + 1, 100_000):
        with pytest.raises(core.InvalidArgument, match=rf"^--threads {bad}: the tf engine takes 0 .* to {cpus} threads"):
            engines.open_engine(tmp_path / "absent.pb", engine="tf", threads=bad)
    with pytest.raises(core.InputError, match="model file not found"):  # in range: the next check runs
        engines.open_engine(tmp_path / "absent.pb", engine="tf", threads=cpus)
    for bad in (-1, 2**31, 2**32, True):
        with pytest.raises(core.InvalidArgument, match=rf"^--device {bad}: not an AscendCL device id"):
            engines.open_engine(tmp_path / "absent.om", device=bad)
    with pytest.raises(core.InputError, match="model file not found"):
        engines.open_engine(tmp_path / "absent.om", device=2**31 - 1)

"""The engine registry: a new engine is one EngineSpec; open_engine finds it by suffix or name, runs the shared
checks, and the native runner drives what it opened like any built-in engine."""
from __future__ import annotations

import numpy as np
import pytest

from pymfn.runtime import engines
from pymfn.runtime.engines import EngineSpec, open_engine, register_engine, unregister_engine


@pytest.fixture
def toy_engine(core):
    """A '.toy' engine: the model file holds one float32 weight per input element; output = x @ w (one value)."""
    opened = []

    class Toy(core.Engine):
        kind = "toy"

        def __init__(self, path, inflight):
            super().__init__()
            self.path, self.inflight = str(path), inflight
            self.weights = np.fromfile(path, np.float32)

        @property
        def model_path(self):
            return self.path

        def inputs(self):
            return [core.TensorInfo("x", "float32", [-1, len(self.weights)])]

        def outputs(self):
            return [core.TensorInfo("y", "float32", [-1, 1])]

        def max_inflight(self):
            return self.inflight

        def execute(self, arrays):
            return [(arrays[0] @ self.weights)[:, None].astype(np.float32)]

    def open_toy(path, *, precision, threads, streams, inflight, **options):
        if precision != "f32" or threads or streams or options:
            raise core.InvalidArgument(f"the toy engine takes no {precision=}, {threads=}, {streams=} or {options}")
        engine = Toy(path, inflight)
        opened.append(engine)
        return engine

    spec = register_engine(EngineSpec(name="toy", open=open_toy, suffixes=(".toy",), default_for=(".toy",),
                                      summary="a dot product, for tests"))
    try:
        yield spec, opened
    finally:
        unregister_engine("toy")


def test_builtin_engines_are_registered():
    assert {"openvino", "acl", "tf"} <= set(engines.ENGINES)
    assert dict(engines.ENGINE_BY_SUFFIX) == {".pb": "openvino", ".onnx": "openvino", ".xml": "openvino",
                                              ".om": "acl"}
    assert engines.engine_spec("tf").precisions == ("f32",)
    assert "int8" in engines.engine_spec("openvino").precisions


def test_a_registered_engine_opens_by_suffix_and_runs_in_the_native_runner(core, toy_engine, tmp_path):
    spec, opened = toy_engine
    weights = np.array([1, 2, 3, 4], np.float32)
    model = tmp_path / "dot.toy"
    weights.tofile(model)
    assert engines.ENGINE_BY_SUFFIX[".toy"] == "toy" and "toy" in engines.ENGINES
    assert engines.default_engine(tmp_path / "DOT.TOY") == "toy"

    engine = open_engine(model, inflight=2)
    assert opened == [engine] and engine.kind == "toy"
    data = np.arange(7 * 4, dtype=np.float32).reshape(7, 4)
    y = core.infer_all(engine, core.ArrayDataset(data).reader(3), 2)[0]
    np.testing.assert_array_equal(y[:, 0], data @ weights)
    result = core.run_benchmark(engine, core.ArrayDataset(data).reader(2),
                                core.RunSettings(batch_size=2, warmup_iterations=1, min_iterations=3,
                                                 min_duration_ms=0, max_duration_ms=20000))
    assert result.iterations == 3

    # the shared checks come before the engine: a missing file, inflight < 1
    with pytest.raises(core.InputError, match="model file not found"):
        open_engine(tmp_path / "absent.toy")
    with pytest.raises(core.InvalidArgument, match="inflight must be >= 1"):
        open_engine(model, inflight=0)
    # and the engine's own refusals reach the caller
    with pytest.raises(core.InvalidArgument, match="the toy engine takes no"):
        open_engine(model, precision="int8")
    assert open_engine(model, engine="toy").kind == "toy"


def test_unknown_suffixes_and_engines_name_the_registered_ones(core, toy_engine, tmp_path):
    (tmp_path / "m.bin").write_bytes(b"x")
    with pytest.raises(core.InvalidArgument, match=r"cannot tell the engine from the suffix '\.bin' \(expected .*\.toy"):
        open_engine(tmp_path / "m.bin")
    with pytest.raises(core.InvalidArgument, match=r"engine 'trt' is unknown \(expected one of .*toy"):
        open_engine(tmp_path / "m.bin", engine="trt")


def test_registration_refuses_clashes(toy_engine):
    spec, _ = toy_engine
    with pytest.raises(ValueError, match="already registered"):
        register_engine(spec)
    with pytest.raises(ValueError, match=r"\.toy already open with 'toy' by default"):
        register_engine(EngineSpec(name="toy2", open=spec.open, suffixes=(".toy",), default_for=(".toy",)))
    with pytest.raises(ValueError, match="lower case and start with"):
        register_engine(EngineSpec(name="toy3", open=spec.open, suffixes=("TOY",)))
    with pytest.raises(ValueError, match="default_for must be among its suffixes"):
        register_engine(EngineSpec(name="toy4", open=spec.open, suffixes=(".toy4",), default_for=(".other",)))
    assert "toy2" not in engines.ENGINES and "toy3" not in engines.ENGINES and "toy4" not in engines.ENGINES

"""RecordingEngine: a wrapper that keeps copies of the inputs and outputs of a seeded sample of requests,
for an audit that runs them again (LoadGen's compliance TEST01). Driven through the runner and the server
scenario on SimulatedEngine (output = row sums, so every record checks itself), a Python engine and a
tiny OpenVINO model, whose recorded outputs must equal a fresh execute of the recorded inputs bit for bit.
"""
from __future__ import annotations

import gc

import numpy as np
import pytest

WIDTH = 4


def _reader(core, batch: int = 2, rows: int = 32):
    data = np.arange(rows * WIDTH, dtype=np.float32).reshape(rows, WIDTH)  # small integers: sums are exact
    return core.ArrayDataset(data).reader(batch)


def _check_row_sum_records(records, max_records: int, requests_seen: int) -> list[int]:
    numbers = [r["request"] for r in records]
    assert 0 < len(records) <= max_records
    assert len(set(numbers)) == len(numbers)
    assert all(0 <= n < requests_seen for n in numbers)
    for r in records:
        (x,), (y,) = r["inputs"], r["outputs"]
        assert x.dtype == np.float32 and x.shape == (r["rows"], WIDTH)
        assert y.dtype == np.float32 and y.shape == (r["rows"], 1)
        np.testing.assert_array_equal(y[:, 0], x.sum(axis=1))
    return numbers


@pytest.mark.parametrize("inflight", [1, 2])
def test_run_benchmark_records_a_seeded_sample(core, inflight):
    inner = core.SimulatedEngine(slots=2, serial=False)
    eng = core.RecordingEngine(inner, fraction=0.5, max_records=10, seed=1, skip=3)
    st = core.RunSettings(batch_size=2, warmup_iterations=3, min_iterations=60, min_duration_ms=0, inflight=inflight)
    r = core.run_benchmark(eng, _reader(core), st)
    assert eng.requests_seen == r.warmup_iterations + r.iterations == inner.requests
    numbers = _check_row_sum_records(eng.records(), 10, eng.requests_seen)
    assert len(numbers) == 10 and min(numbers) >= 3  # the warm-up skipped
    # Places are taken in request order, so both paths record the same requests.
    again = core.RecordingEngine(core.SimulatedEngine(), fraction=0.5, max_records=10, seed=1, skip=3)
    core.run_benchmark(again, _reader(core), core.RunSettings(batch_size=2, warmup_iterations=3, min_iterations=60,
                                                              min_duration_ms=0))
    assert sorted(numbers) == [rec["request"] for rec in again.records()]


def test_run_server_records_from_concurrent_slots(core):
    inner = core.SimulatedEngine(service_ms=1.0, slots=3, serial=False)
    eng = core.RecordingEngine(inner, fraction=0.3, max_records=16, seed=5)
    st = core.RunSettings(batch_size=2, inflight=3, target_qps=400.0, latency_bound_ms=1000.0, min_query_count=150,
                          min_duration_ms=0, max_duration_ms=30000.0, warmup_iterations=2, schedule_seed=2)
    r = core.run_server(eng, _reader(core), st)
    assert r.queries >= 150
    assert eng.requests_seen == inner.requests
    _check_row_sum_records(eng.records(), 16, eng.requests_seen)


def test_records_own_their_bytes(core):
    eng = core.RecordingEngine(core.SimulatedEngine(), fraction=1.0, max_records=4)
    x = np.arange(8, dtype=np.float32).reshape(2, WIDTH)
    eng.execute([x])
    (record,) = eng.records()
    record["inputs"][0][:] = -1  # each call hands out copies
    recorded_x, recorded_y = eng.records()[0]["inputs"][0], eng.records()[0]["outputs"][0]
    del eng, record
    gc.collect()
    np.testing.assert_array_equal(recorded_x, x)
    np.testing.assert_array_equal(recorded_y[:, 0], x.sum(axis=1))


def test_facts_are_the_wrapped_engine_s_and_clear_starts_over(core):
    inner = core.SimulatedEngine(slots=3)
    eng = core.RecordingEngine(inner, fraction=0.25, max_records=5, seed=9, skip=2)
    assert eng.engine is inner
    assert (eng.fraction, eng.max_records, eng.seed, eng.skip) == (0.25, 5, 9, 2)
    assert eng.kind == inner.kind and eng.max_inflight() == 3
    assert eng.properties()["recording"] == "fraction 0.25, max 5 records, seed 9, skip 2"
    x = np.ones((1, WIDTH), np.float32)
    for _ in range(100):
        eng.execute([x])
    first = [r["request"] for r in eng.records()]
    assert len(first) == 5 and eng.requests_seen == 100
    eng.clear()
    assert eng.records() == [] and eng.requests_seen == 0
    for _ in range(100):
        eng.execute([x])
    assert [r["request"] for r in eng.records()] == first


def test_wraps_a_python_engine(core):
    class Doubler(core.Engine):
        kind = "doubler"
        model_path = "<doubler>"

        def inputs(self):
            return [core.TensorInfo("x", "float32", [-1, WIDTH])]

        def outputs(self):
            return [core.TensorInfo("y", "float32", [-1, WIDTH])]

        def execute(self, inputs):
            return [inputs[0] * 2]

    eng = core.RecordingEngine(Doubler(), fraction=1.0, max_records=8)  # only the wrapper holds the engine
    gc.collect()
    core.run_benchmark(eng, _reader(core), core.RunSettings(batch_size=2, warmup_iterations=0, min_iterations=20,
                                                            min_duration_ms=0))
    records = eng.records()
    assert [r["request"] for r in records] == list(range(8))
    for r in records:
        np.testing.assert_array_equal(r["outputs"][0], r["inputs"][0] * 2)


@pytest.mark.parametrize("kwargs, field", [
    (dict(fraction=0.0), "fraction"), (dict(fraction=1.5), "fraction"), (dict(fraction=float("nan")), "fraction"),
    (dict(max_records=0), "max_records"), (dict(max_records=-1), "max_records"),
    (dict(max_records=10**6 + 1), "max_records"), (dict(max_records=2**70), "max_records"),
    (dict(seed=-1), "seed"), (dict(seed=2**64), "seed"), (dict(skip=-1), "skip"),
])
def test_bad_arguments_name_the_field(core, kwargs, field):
    with pytest.raises(core.InvalidArgument, match=field):
        core.RecordingEngine(core.SimulatedEngine(), **kwargs)


def test_a_missing_engine_is_refused(core):
    with pytest.raises(core.InvalidArgument, match="missing"):
        core.RecordingEngine(None)


def _tiny_ir(path):
    """An OpenVINO IR [-1, 3, 4] float32 -> relu(x W) [-1, 5]: no TensorFlow needed."""
    ov = pytest.importorskip("openvino")
    import openvino.opset13 as ops

    x = ops.parameter([-1, 3, 4], np.float32, name="x")
    y = ops.reshape(x, ops.constant(np.array([-1, 12], np.int64)), False)
    w = np.random.default_rng(0).standard_normal((12, 5)).astype(np.float32)
    y = ops.relu(ops.matmul(y, ops.constant(w), False, False))
    ov.save_model(ov.Model([y], [x], "tiny"), str(path))
    return path


@pytest.mark.parametrize("inflight", [1, 2])
def test_openvino_records_replay_bit_for_bit(core, tmp_path, inflight):
    if not hasattr(core, "OpenVINOEngine"):
        pytest.skip("this build has no OpenVINO engine")
    inner = core.OpenVINOEngine(str(_tiny_ir(tmp_path / "tiny.xml")), num_requests=2)
    eng = core.RecordingEngine(inner, fraction=0.5, max_records=6, seed=4)
    data = np.random.default_rng(1).uniform(-1, 1, (16, 3, 4)).astype(np.float32)
    st = core.RunSettings(batch_size=4, warmup_iterations=1, min_iterations=20, min_duration_ms=0, inflight=inflight)
    core.run_benchmark(eng, core.ArrayDataset(data).reader(4), st)
    records = eng.records()
    assert len(records) == 6
    for r in records:
        (x,), (y,) = r["inputs"], r["outputs"]
        assert x.shape == (4, 3, 4) and y.shape == (4, 5) and y.dtype == np.float32
        assert any(np.array_equal(x, data[k:k + 4]) for k in range(0, 16, 4))
        replay = inner.execute([x])[0]
        assert np.array_equal(replay, y) and replay.tobytes() == y.tobytes()

"""The C++ benchmark runner: statistics, settings validation, warnings, timing scopes, in-flight
requests and infer_all, driven through Python-implemented engines (the Engine trampoline) so every
property can be checked against a known behaviour."""
from __future__ import annotations

import time

import numpy as np
import pytest


@pytest.fixture(scope="module")
def engines(core):
    """Small Python engine classes built on the module's _core.Engine."""

    class RowSum(core.Engine):
        """Output row i = [sum(x_i), first element of x_i]; optional sleep per call."""

        kind = "rowsum"

        def __init__(self, width: int = 4, sleep=None, inflight: int = 1, dtype: str = "float32"):
            super().__init__()
            self.width, self.sleep, self.inflight, self.dtype = width, sleep, inflight, dtype
            self.calls = 0
            self.prepared = []

        @property
        def model_path(self) -> str:
            return f"<rowsum width {self.width}>"

        def inputs(self):
            return [core.TensorInfo("x", self.dtype, [-1, self.width])]

        def outputs(self):
            return [core.TensorInfo("y", "float32", [-1, 2])]

        def prepare(self, batch):
            self.prepared.append(batch)

        def max_inflight(self):
            return self.inflight

        def execute(self, inputs):
            self.calls += 1
            if self.sleep is not None:
                time.sleep(self.sleep())
            x = inputs[0].astype(np.float32)  # small integers: sums are exact
            return [np.stack([x.sum(axis=1), x[:, 0]], axis=1)]

    return RowSum


def dataset(core, n: int = 7, width: int = 4):
    data = np.arange(n * width, dtype=np.float32).reshape(n, width)
    return data, core.ArrayDataset(data)


def quick(core, **kw):
    base = dict(warmup_iterations=2, min_iterations=5, min_duration_ms=0, max_duration_ms=20000)
    base.update(kw)
    return core.RunSettings(**base)


# ----------------------------------------------------------------------------------------- stats
@pytest.mark.parametrize("n", [1, 2, 3, 10, 101, 1000, 4097])
def test_stats_match_numpy(core, n):
    x = np.random.default_rng(n).lognormal(0.0, 0.5, n)
    s = core.compute_stats(x.tolist())
    assert s.count == n
    for q, got in [(50, s.median), (90, s.p90), (95, s.p95), (99, s.p99), (99.9, s.p999)]:
        assert got == pytest.approx(np.percentile(x, q), rel=1e-12, abs=1e-12), q
    assert s.min == x.min() and s.max == x.max()
    assert s.mean == pytest.approx(x.mean(), rel=1e-12)
    assert s.std == pytest.approx(x.std(), rel=1e-9)  # population std (ddof=0)
    assert s.cv == pytest.approx(x.std() / x.mean(), rel=1e-9)


def test_stats_edge_cases(core):
    assert core.compute_stats([]).count == 0
    s = core.compute_stats([2.0, 2.0, 2.0])
    assert (s.std, s.cv, s.p999) == (0.0, 0.0, 2.0)
    with pytest.raises(core.InvalidArgument, match="finite"):
        core.compute_stats([1.0, float("nan")])
    assert set(core.compute_stats([1.0]).to_dict()) >= {"min", "mean", "median", "p90", "p99", "p999", "max", "std", "cv"}


# -------------------------------------------------------------------------------------- settings
def test_settings_fields_and_repr(core):
    s = core.RunSettings(batch_size=4, inflight=2, scope="end-to-end", keep_samples=False)
    assert (s.batch_size, s.inflight, s.scope, s.keep_samples) == (4, 2, core.TimingScope.kEndToEnd, False)
    assert "batch_size=4" in repr(s) and "scope='end-to-end'" in repr(s)
    s.scope = core.TimingScope.kCompute
    assert s.scope == core.TimingScope.kCompute
    d = core.RunSettings()
    assert (d.batch_size, d.warmup_iterations, d.min_iterations, d.min_duration_ms, d.max_duration_ms, d.inflight,
            d.cv_warning_threshold) == (1, 10, 100, 1000.0, 60000.0, 1, 0.05)


def test_settings_rejects_bad_values(core):
    with pytest.raises(TypeError, match="no field 'batchsize'"):
        core.RunSettings(batchsize=2)
    with pytest.raises(core.InvalidArgument, match="min_iterations must be >= 0"):
        core.RunSettings(min_iterations=-1)
    with pytest.raises(core.InvalidArgument, match="warmup_ms"):
        core.RunSettings().warmup_ms = -5.0
    with pytest.raises(core.InvalidArgument, match="scope 'fast'"):
        core.RunSettings(scope="fast")


@pytest.mark.parametrize("kw, pattern", [
    ({"batch_size": 0}, "batch_size must be >= 1"),
    ({"min_iterations": 0}, "min_iterations must be >= 1"),
    ({"inflight": 0}, "inflight must be >= 1"),
    ({"inflight": 2}, "at most 1 requests in flight"),
    ({"batch_size": 3}, "reader yields batches of 2 rows but RunSettings.batch_size = 3"),
    ({"min_duration_ms": 500, "max_duration_ms": 100}, "max_duration_ms .* below min_duration_ms"),
])
def test_run_rejects_inconsistent_settings(core, engines, kw, pattern):
    _, ds = dataset(core)
    s = quick(core, batch_size=2)
    for k, v in kw.items():
        setattr(s, k, v)
    with pytest.raises(core.InvalidArgument, match=pattern):
        core.run_benchmark(engines(), ds.reader(2), s)


def test_unsupported_batch_is_rejected(core, engines):
    class Only4(engines):
        def supported_batches(self):
            return [4]

    _, ds = dataset(core)
    with pytest.raises(core.InvalidArgument, match=r"batch size 2 is not supported.*supported: 4"):
        core.run_benchmark(Only4(), ds.reader(2), quick(core, batch_size=2))


# ----------------------------------------------------------------------------------------- runs
def test_basic_run_accounting(core, engines):
    _, ds = dataset(core, n=7)
    eng = engines()
    r = core.run_benchmark(eng, ds.reader(3), quick(core, batch_size=3, warmup_iterations=4, min_iterations=9))
    assert eng.prepared == [3]
    assert r.warmup_iterations == 4 and r.iterations == 9 and eng.calls == 13
    # 7 samples in batches of 3 -> passes of 3+3+1 valid rows; the reader wraps around.
    # 13 calls from sample 0: batches 0..12 -> the measured ones are calls 4..12.
    valid = [3, 3, 1] * 5
    assert r.samples_processed == sum(valid[4:13])
    samples = np.asarray(r.samples_ms)
    assert samples.shape == (9,) and samples.dtype == np.float64 and (samples > 0).all()
    starts = np.asarray(r.start_offsets_ms)
    assert starts[0] == 0 and (np.diff(starts) > 0).all()
    assert r.wall_ms >= starts[-1] + samples[-1] - 1e-9
    assert r.throughput_per_s == pytest.approx(r.samples_processed / (r.wall_ms / 1000.0))
    assert r.latency.count == 9 and r.latency.median == pytest.approx(np.median(samples))
    assert r.stage_means_ms["compute_ms"] > 0 and "h2d_ms" not in r.stage_means_ms
    assert not r.stopped_on_max_duration


def test_min_duration_keeps_running(core, engines):
    _, ds = dataset(core)
    r = core.run_benchmark(engines(sleep=lambda: 0.002), ds.reader(1),
                           quick(core, min_iterations=1, min_duration_ms=60))
    # min_iterations=1 was met at once: only the duration kept it going, and it stopped right after.
    assert r.iterations > 1 and r.wall_ms >= 60
    assert np.asarray(r.start_offsets_ms)[-1] < 60


def test_keep_samples_false(core, engines):
    _, ds = dataset(core)
    r = core.run_benchmark(engines(), ds.reader(1), quick(core, keep_samples=False))
    assert r.iterations == 5 and len(r.samples_ms) == 0 and r.latency.count == 5


def test_noisy_engine_warns(core, engines):
    rng = np.random.default_rng(0)
    _, ds = dataset(core)
    noisy = engines(sleep=lambda: float(rng.choice([0.0005, 0.006])))
    r = core.run_benchmark(noisy, ds.reader(1), quick(core, min_iterations=30))
    assert r.latency.cv > 0.3
    assert any(w.startswith("noisy run") and "cv" in w for w in r.warnings), r.warnings


def test_steady_engine_does_not_warn_noisy(core, engines):
    _, ds = dataset(core)
    r = core.run_benchmark(engines(sleep=lambda: 0.004), ds.reader(1),
                           quick(core, min_iterations=10, cv_warning_threshold=5.0))
    assert not any("noisy" in w for w in r.warnings)


def test_max_duration_stop_warns(core, engines):
    _, ds = dataset(core)
    r = core.run_benchmark(engines(sleep=lambda: 0.005), ds.reader(1),
                           quick(core, min_iterations=100000, min_duration_ms=0, max_duration_ms=80))
    assert r.stopped_on_max_duration
    assert 1 <= r.iterations < 100000
    assert any("stopped on max_duration_ms" in w and "min_iterations = 100000" in w for w in r.warnings)


def test_scope_end_to_end_includes_the_batch_fetch(core, engines, tmp_path):
    """Folder samples read synchronously (prefetch=0, pread): the read is outside the compute scope and inside
    the end-to-end one. 8 MB per sample makes the read dominate a trivial engine. What the scopes differ by is
    compared with a peer measured interleaved with them in this process (the same dataset's reader fetching one
    8 MB sample, timed by the test: the runner's own read path, so a faster or slower copy route cannot make
    the peer unlike what the runner does), and each side is taken at its fastest request (load only adds
    time): end-to-end must exceed compute by at least half the peer's read time. A runner that timed both scopes alike differs by ~0 (fails); one that left the read out of the
    end-to-end scope too, likewise."""
    width = 8 << 20
    rng = np.random.default_rng(0)
    for i in range(3):
        rng.integers(0, 255, width, dtype=np.uint8).tofile(tmp_path / f"{i}.bin")
    ds = core.FolderDataset(str(tmp_path), width, "uint8", [width], io="pread")

    def peer_read_ms() -> float:
        reader = ds.reader(1, 0)
        reader.next()  # sample 0; the timed fetch reads sample 1
        t0 = time.perf_counter()
        view = reader.next()
        elapsed = (time.perf_counter() - t0) * 1000.0
        assert view is not None and view.valid_rows == 1
        return elapsed

    class Trivial(engines):
        def execute(self, inputs):
            return [np.zeros((inputs[0].shape[0], 2), np.float32)]

    eng = Trivial(width=width, dtype="uint8")
    common = dict(warmup_iterations=1, min_iterations=8, min_duration_ms=0)
    compute, e2e, peer = [], [], []
    for _ in range(5):  # interleaved rounds: a burst of load hits every side
        compute.extend(core.run_benchmark(eng, ds.reader(1, 0), quick(core, scope="compute", **common)).samples_ms)
        peer += [peer_read_ms() for _ in range(8)]
        e2e.extend(core.run_benchmark(eng, ds.reader(1, 0), quick(core, scope="end-to-end", **common)).samples_ms)
    # Minimums: other jobs only ever add time, so each side's fastest request is its own cost
    compute_ms, e2e_ms, read_ms = float(np.min(compute)), float(np.min(e2e)), float(np.min(peer))
    assert e2e_ms - compute_ms >= 0.5 * read_ms, (compute_ms, e2e_ms, read_ms)


def test_inflight_round_robin_with_python_engine(core, engines):
    # A Python engine has no async path: start() runs the request, wait() returns its times. The runner's
    # round-robin bookkeeping (per-slot buffers, input copies, drain) must still add up.
    data, ds = dataset(core, n=7)
    eng = engines(inflight=3)
    r = core.run_benchmark(eng, ds.reader(2), quick(core, batch_size=2, inflight=3, warmup_iterations=3,
                                                    min_iterations=10))
    # Requests already in flight when warm-up ends still count as warm-up (at most inflight - 1 extra).
    assert r.iterations >= 10 and 3 <= r.warmup_iterations <= 3 + 2
    assert eng.calls == r.iterations + r.warmup_iterations


def test_infer_all_drops_padding_and_keeps_order(core, engines):
    data, ds = dataset(core, n=7)
    for batch in (1, 3, 7, 8):
        out = core.infer_all(engines(), ds.reader(batch))
        assert len(out) == 1
        y = out[0]
        assert y.shape == (7, 2) and y.dtype == np.float32
        np.testing.assert_array_equal(y[:, 0], data.sum(axis=1))
        np.testing.assert_array_equal(y[:, 1], data[:, 0])


def test_infer_all_with_requests_in_flight_keeps_order(core, engines):
    data, ds = dataset(core, n=11)
    for batch, inflight in [(1, 2), (2, 3), (3, 3), (4, 2), (11, 3), (16, 2)]:
        eng = engines(inflight=inflight)
        y = core.infer_all(eng, ds.reader(batch), inflight)[0]
        assert y.shape == (11, 2), (batch, inflight)
        np.testing.assert_array_equal(y[:, 0], data.sum(axis=1))
        np.testing.assert_array_equal(y[:, 1], data[:, 0])
        assert eng.calls == -(-11 // batch)  # every batch once, none repeated or skipped


def test_infer_all_rejects_bad_inflight(core, engines):
    _, ds = dataset(core)
    with pytest.raises(core.InvalidArgument, match="at most 2 requests"):
        core.infer_all(engines(inflight=2), ds.reader(2), 3)
    with pytest.raises(core.InvalidArgument, match="inflight must be >= 1"):
        core.infer_all(engines(), ds.reader(2), 0)


def test_infer_all_float16_output_dtype(core, engines):
    class Half(engines):
        def outputs(self):
            return [core.TensorInfo("h", "float16", [-1, 4])]

        def execute(self, inputs):
            return [inputs[0].astype(np.float16)]

    data, ds = dataset(core, n=5)
    y = core.infer_all(Half(), ds.reader(2))[0]
    assert y.dtype == np.float16 and y.shape == (5, 4)
    np.testing.assert_array_equal(y, data.astype(np.float16))


def test_python_engine_errors_surface(core, engines):
    _, ds = dataset(core)

    class Boom(engines):
        def execute(self, inputs):
            raise RuntimeError("engine exploded")

    class WrongShape(engines):
        def execute(self, inputs):
            return [np.zeros((inputs[0].shape[0], 3), np.float32)]

    class WrongDtype(engines):
        def execute(self, inputs):
            return [np.zeros((inputs[0].shape[0], 2), np.float64)]

    class NoKind(core.Engine):
        def inputs(self):
            return [core.TensorInfo("x", "float32", [-1, 4])]

        def outputs(self):
            return [core.TensorInfo("y", "float32", [-1, 4])]

        def execute(self, inputs):
            return [inputs[0].copy()]

    with pytest.raises(RuntimeError, match="engine exploded"):
        core.run_benchmark(Boom(), ds.reader(1), quick(core))
    with pytest.raises(core.ShapeMismatch, match=r"float32 \[1, 3\], expected float32 \[1, 2\]"):
        core.infer_all(WrongShape(), ds.reader(1))
    with pytest.raises(core.ShapeMismatch, match="float64 .*expected float32"):
        core.infer_all(WrongDtype(), ds.reader(1))
    with pytest.raises(core.EngineError, match="NoKind must define 'kind'"):
        NoKind().kind
    # The runner itself needs kind only for messages; infer_all works without it.
    np.testing.assert_array_equal(core.infer_all(NoKind(), ds.reader(2))[0], dataset(core)[0])


def test_engine_inputs_are_read_only_and_own_their_bytes(core, engines):
    """Read-only, and not views of the runner's buffers (which an engine keeping its inputs would outlive)."""
    seen = []

    class Peek(engines):
        def execute(self, inputs):
            seen.append((inputs[0].flags.writeable, inputs[0].flags.owndata))
            return super().execute(inputs)

    _, ds = dataset(core)
    core.infer_all(Peek(), ds.reader(2))
    assert seen and all(w is False and own is True for w, own in seen)


# ------------------------------------------------------------------------------------ stopping early
# A StopFlag raised from inside the engine lands at a known request, so every count below is exact: the
# runner looks at the flag before each request and never throws away what it measured.
@pytest.mark.parametrize("inflight", [1, 3])
def test_stop_flag_ends_the_run_keeping_every_measured_request(core, engines, inflight):
    _, ds = dataset(core)
    flag = core.StopFlag()

    class StopsAt(engines):
        def execute(self, inputs):
            if self.calls == 24:  # the 25th call raises the flag
                flag.request()
            if self.calls > 5000:  # a runner that ignored the flag fails here instead of running for ever
                raise RuntimeError("the run went on after its StopFlag was raised")
            return super().execute(inputs)

    eng = StopsAt(inflight=inflight)
    r = core.run_benchmark(eng, ds.reader(1), quick(core, inflight=inflight, warmup_iterations=4,
                                                    min_iterations=10**9, max_duration_ms=0), stop=flag)
    assert r.interrupted and r.stop_reason == core.StopReason.kInterrupted and not r.stopped_on_max_duration
    # nothing is started after the flag, and everything started is accounted for (requests already in
    # flight when warm-up ended count as warm-up, as in any run)
    assert eng.calls == 25 and r.iterations + r.warmup_iterations == 25
    assert 4 <= r.warmup_iterations <= 4 + inflight - 1
    assert len(r.samples_ms) == r.iterations == r.latency.count and r.samples_processed == r.iterations
    assert any(w.startswith(f"interrupted after {r.iterations} iterations") for w in r.warnings), r.warnings
    assert core.stop_reason_name(r.stop_reason) == "interrupted" and flag.requested


def test_stop_flag_during_warmup_and_before_the_run(core, engines):
    _, ds = dataset(core)
    flag = core.StopFlag()

    class StopsAt(engines):
        def execute(self, inputs):
            if self.calls == 6:
                flag.request()
            if self.calls > 5000:  # a runner that ignored the flag fails here instead of warming up for ever
                raise RuntimeError("the run went on after its StopFlag was raised")
            return super().execute(inputs)

    eng = StopsAt()
    r = core.run_benchmark(eng, ds.reader(1), quick(core, warmup_iterations=10**9, max_duration_ms=0), stop=flag)
    assert r.interrupted and eng.calls == 7 and r.warmup_iterations == 7 and r.iterations == 0
    assert any("during warm-up, after 7 warm-up requests: nothing was measured" in w for w in r.warnings)
    # a raised flag stops the next run at once; clear() lowers it
    again = StopsAt()
    assert core.run_benchmark(again, ds.reader(1), quick(core), stop=flag).interrupted and again.calls == 0
    flag.clear()
    assert not core.run_benchmark(again, ds.reader(1), quick(core), stop=flag).interrupted
    with pytest.raises(TypeError, match="StopFlag"):
        core.run_benchmark(again, ds.reader(1), quick(core), stop="now")


def test_max_duration_caps_warmup_too(core, engines):
    """Endless warm-up under a 150 ms cap: the run ends on the cap with nothing measured. The engine counts its
    calls and fails past 20,000 (at >= 1 ms each, over 100 times the cap), so a runner that ignored the cap
    during warm-up fails here instead of running for days."""
    _, ds = dataset(core)

    class Bounded(engines):
        def execute(self, inputs):
            if self.calls >= 20000:
                raise RuntimeError("the run outlived its max_duration_ms")
            return super().execute(inputs)

    eng = Bounded(sleep=lambda: 0.001)
    r = core.run_benchmark(eng, ds.reader(1), quick(core, warmup_iterations=10**9, max_duration_ms=150))
    assert r.stop_reason == core.StopReason.kMaxDuration and r.stopped_on_max_duration and not r.interrupted
    assert r.iterations == 0 and r.warmup_iterations == eng.calls >= 1
    assert any("stopped on max_duration_ms = 150.0 (the cap includes warm-up) during warm-up" in w for w in r.warnings)
    # measurement gets what warm-up leaves of the cap
    eng = Bounded(sleep=lambda: 0.001)
    r = core.run_benchmark(eng, ds.reader(1), quick(core, warmup_ms=50, min_iterations=10**9, max_duration_ms=150))
    assert r.stopped_on_max_duration and r.iterations >= 1 and eng.calls == r.iterations + r.warmup_iterations


@pytest.mark.parametrize("kw, pattern", [
    ({"warmup_ms": 5000, "max_duration_ms": 2000}, r"warmup_ms \(5000.0\) is not below max_duration_ms \(2000.0\)"),
    ({"warmup_ms": 600, "min_duration_ms": 500, "max_duration_ms": 1000},
     r"max_duration_ms \(1000.0\) is below min_duration_ms \(500.0\) \+ warmup_ms \(600.0\)"),
    ({"warmup_ms": float("inf")}, "warmup_ms must be a finite number"),
    ({"max_duration_ms": float("inf")}, "max_duration_ms must be a finite number"),
    ({"min_duration_ms": float("nan")}, "min_duration_ms must be a finite number"),
])
def test_settings_that_cannot_finish_are_refused(core, engines, kw, pattern):
    _, ds = dataset(core)
    eng = engines()
    with pytest.raises(core.InvalidArgument, match=pattern):
        core.run_benchmark(eng, ds.reader(1), quick(core, **kw))
    assert eng.calls == 0


def test_sigint_reaches_a_run_with_a_python_engine(tmp_path):
    """Ctrl-C during run_benchmark on the main thread: the run stops at the next request and RunInterrupted (a
    KeyboardInterrupt) carries the partial result. The Python engine runs on the runner's worker thread, so
    the interrupt never lands inside one of its calls (every call completes and is counted)."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import os, signal, threading, time
        import numpy as np
        import pymfn
        core = pymfn.load_core()
        class Slow(core.Engine):
            kind, model_path = "slow", "<slow>"
            calls = 0
            def inputs(self): return [core.TensorInfo("x", "float32", [-1, 4])]
            def outputs(self): return [core.TensorInfo("y", "float32", [-1, 1])]
            def execute(self, inputs):
                type(self).calls += 1
                time.sleep(0.002)
                return [inputs[0].sum(axis=1, keepdims=True)]
        eng = Slow()
        ds = core.ArrayDataset(np.ones((8, 4), np.float32))
        st = core.RunSettings(warmup_iterations=3, min_iterations=10**9, min_duration_ms=0, max_duration_ms=0)
        threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        try:
            core.run_benchmark(eng, ds.reader(1), st)
            print("NOT INTERRUPTED")
        except core.RunInterrupted as exc:
            r = exc.result
            print("OK", r.iterations, r.warmup_iterations, Slow.calls, r.interrupted, isinstance(exc, KeyboardInterrupt))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ok, measured, warm, calls, interrupted, is_kbi = proc.stdout.split()
    assert (ok, interrupted, is_kbi) == ("OK", "True", "True")
    assert int(warm) == 3 and int(measured) >= 1 and int(measured) + int(warm) == int(calls)

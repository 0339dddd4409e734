"""LoadGen-style audits (``--audit``): TEST01 catches outputs that differ from a re-run of the same inputs, TEST04
catches an engine that answers a repeated input from a cache. The engines below are test doubles whose service
time is a sleep, so each verdict follows from what the engine does, not from how fast this machine is: the
caching engine answers repeated inputs in microseconds against 5 ms for new ones (a factor of hundreds, where
the audit's threshold is 10 %)."""
from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import pytest

import pymfn.bench as bench
from pymfn.bench.audit import AuditSettings
from pymfn.bench.settings import SettingError
from pymfn.cli import main as cli_main
from pymfn.runtime.engines import EngineSpec, register_engine, unregister_engine

WIDTH = 8
SERVICE_S = 0.005


@pytest.fixture
def sleepy_engines(core):
    """'.cache' (remembers outputs by input digest), '.sleepy' (computes every time) and '.drift' (outputs that
    change from call to call): x @ w after a 5 ms sleep."""

    class Sleepy(core.Engine):
        kind = "sleepy"

        def __init__(self, path, caching=False, drifting=False):
            super().__init__()
            self.path, self.caching, self.drifting = str(path), caching, drifting
            self.weights = np.arange(1, WIDTH + 1, dtype=np.float32)
            self.cache: dict[bytes, np.ndarray] = {}
            self.calls = 0

        @property
        def model_path(self):
            return self.path

        def inputs(self):
            return [core.TensorInfo("x", "float32", [-1, WIDTH])]

        def outputs(self):
            return [core.TensorInfo("y", "float32", [-1, 1])]

        def max_inflight(self):
            return 1

        def execute(self, arrays):
            x = np.asarray(arrays[0])
            key = hashlib.sha256(x.tobytes()).digest()
            if self.caching and key in self.cache:
                return [self.cache[key]]
            time.sleep(SERVICE_S)
            self.calls += 1
            y = (x @ self.weights)[:, None].astype(np.float32)
            if self.drifting:
                y = y + np.float32(self.calls * 1e-3)
            self.cache[key] = y
            return [y]

    names = []
    for name, kw in (("cache", {"caching": True}), ("sleepy", {}), ("drift", {"drifting": True})):
        def open_it(path, *, precision, threads, streams, inflight, _kw=kw, **options):
            return Sleepy(path, **_kw)

        register_engine(EngineSpec(name=name, open=open_it, suffixes=(f".{name}",), default_for=(f".{name}",),
                                   summary="audit test double"))
        names.append(name)
    try:
        yield
    finally:
        for name in names:
            unregister_engine(name)


def _model(tmp_path, suffix):
    path = tmp_path / f"m.{suffix}"
    path.write_bytes(b"x")
    return path


SHORT = bench.RunSettings(min_duration_s=0.0, min_iterations=40, warmup_iterations=2)
AUDIT = AuditSettings(fraction=0.25, rounds=2, requests=24)


def test_test04_catches_an_engine_that_caches_results(sleepy_engines, tmp_path):
    r = bench.latency(_model(tmp_path, "cache"), settings=SHORT, audit=AUDIT)
    t4 = r.document["audit"]["test04"]
    assert t4["verdict"] == "FAIL"
    assert t4["repeated_median_ms"] < 0.5 * t4["unique_median_ms"]
    assert "TEST04" in r.report() and "FAIL" in r.report()
    # the cache does not change outputs: TEST01 passes
    assert r.document["audit"]["test01"]["verdict"] == "PASS"


def test_test04_passes_an_engine_that_computes_every_input(sleepy_engines, tmp_path):
    r = bench.latency(_model(tmp_path, "sleepy"), settings=SHORT, audit=AUDIT)
    audit = r.document["audit"]
    assert audit["test04"]["verdict"] == "PASS", audit["test04"]
    assert audit["test01"]["verdict"] == "PASS"
    assert 0 < audit["test01"]["recorded"] <= AUDIT.max_records
    assert audit["test01"]["requests_seen"] == r.iterations + r.document["warmup"]


def test_test01_catches_outputs_that_differ_from_a_rerun(sleepy_engines, tmp_path):
    r = bench.server(_model(tmp_path, "drift"), qps=50, p99_ms=500,
                     settings=bench.ScenarioSettings(min_duration_s=0.0, min_queries=40, warmup_iterations=2),
                     audit=AUDIT)
    t1 = r.document["audit"]["test01"]
    assert t1["verdict"] == "FAIL" and t1["differing"] == t1["recorded"] > 0
    assert t1["max_abs_difference"] > 0
    assert "TEST01" in r.report()


def test_real_engine_with_requests_in_flight_passes_test01(tmp_path):
    r = bench.throughput(bench.default_model(), batch=2,
                         settings=bench.RunSettings(min_duration_s=0.0, min_iterations=30, inflight=2),
                         audit=AuditSettings(fraction=0.5, rounds=1, requests=8))
    t1 = r.document["audit"]["test01"]
    assert t1["verdict"] == "PASS" and t1["recorded"] > 0


def test_audit_settings_are_checked_by_name():
    with pytest.raises(SettingError, match="`fraction`"):
        AuditSettings(fraction=0)
    with pytest.raises(SettingError, match="`threshold`"):
        AuditSettings(threshold=1.0)


def test_cli_audit_in_json_and_refused_with_find_peak(tmp_path, capsys):
    out = tmp_path / "a.json"
    assert cli_main(["bench", "latency", "--audit", "--min-duration", "0", "--min-iterations", "20", "--quiet",
                     "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["audit"]["test01"]["verdict"] in ("PASS", "NO SAMPLE")
    assert doc["audit"]["test04"]["verdict"] in ("PASS", "FAIL")
    capsys.readouterr()
    assert cli_main(["bench", "server", "--find-peak", "--audit"]) != 0
    err = capsys.readouterr().err
    assert "--audit" in err and len(err.strip().splitlines()) == 1

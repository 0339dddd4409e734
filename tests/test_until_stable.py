"""--until-stable: windows until the last K agree. A Python engine whose speed drifts and then settles is
measured until it has settled (and only the settled windows are reported); one that never settles ends
"not stable" at the cap. No assertion depends on how fast this machine is, only on the engines' own ratios."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

import pymfn.bench as bench
from pymfn.bench.__main__ import main as bench_main
from pymfn.bench.stability import StabilitySettings, spread_pct
from pymfn.runtime.engines import EngineSpec, register_engine, unregister_engine


@pytest.fixture
def sleeper(core, tmp_path):
    """A '.sleep' engine: each call sleeps delay(call index) seconds; the delay law is set per test."""
    law = {}

    class Sleeper(core.Engine):
        kind = "sleeper"

        def __init__(self, path):
            super().__init__()
            self.path, self.calls = str(path), 0

        @property
        def model_path(self):
            return self.path

        def inputs(self):
            return [core.TensorInfo("x", "float32", [-1, 4])]

        def outputs(self):
            return [core.TensorInfo("y", "float32", [-1, 1])]

        def max_inflight(self):
            return 1

        def execute(self, arrays):
            time.sleep(law["delay"](self.calls))
            self.calls += 1
            return [arrays[0][:, :1].copy()]

    register_engine(EngineSpec(name="sleeper", open=lambda path, **_: Sleeper(path), suffixes=(".sleep",),
                               default_for=(".sleep",), summary="sleeps, for tests"))
    model = tmp_path / "m.sleep"
    model.write_bytes(b"x")
    try:
        yield model, law
    finally:
        unregister_engine("sleeper")


def quick(max_s: float) -> bench.RunSettings:
    return bench.RunSettings(warmup_iterations=0, min_iterations=10, max_duration_s=max_s)


def test_spread_is_the_largest_distance_from_the_mean():
    assert spread_pct([1.0, 1.0, 1.0]) == 0.0
    assert spread_pct([0.9, 1.0, 1.1]) == pytest.approx(10.0)
    assert spread_pct([2.0, 1.0, 1.0]) == pytest.approx(50.0)


def test_a_drifting_engine_is_measured_until_it_settles(sleeper):
    model, law = sleeper
    # 12 ms per call falling by 7% a call (a window of 10 calls halves it) down to 1 ms from call 35 on.
    law["delay"] = lambda i: max(0.001, 0.012 * 0.93 ** i)
    r = bench.latency(model, settings=quick(120), until_stable=StabilitySettings(30, windows=3, window_s=0.05))
    stab = r.document["stability"]
    assert stab["stable"] and stab["verdict"] == f"stable after {stab['windows_run']} windows"
    assert stab["windows_run"] > 3  # the drifting windows did not agree and were measured past
    first = stab["windows"][0]["statistic"]
    kept = [stab["windows"][i] for i in stab["reported_windows"]]
    assert stab["reported_windows"] == list(range(stab["windows_run"] - 3, stab["windows_run"]))
    # what is reported is the settled engine: every kept window's median is far below the first window's
    assert all(w["statistic"] < first / 2 for w in kept)
    assert spread_pct([w["statistic"] for w in kept]) <= 30
    # only the kept windows' samples are the result; every window is in the JSON
    assert r.samples_ms == [x for w in kept for x in w["samples_ms"]]
    assert r.iterations == sum(w["iterations"] for w in kept) == len(r.samples_ms)
    assert r.median_ms == pytest.approx(float(np.median(r.samples_ms)))
    assert "Stability: stable after" in r.report()


def test_an_engine_that_never_settles_ends_not_stable_at_the_cap(sleeper):
    model, law = sleeper
    # 3% slower every call: consecutive windows of 10 calls differ by 34%, never within 5%.
    law["delay"] = lambda i: 0.0002 * 1.03 ** min(i, 400)
    r = bench.latency(model, settings=quick(2.0), until_stable=StabilitySettings(5, windows=3, window_s=0.02))
    stab = r.document["stability"]
    assert not stab["stable"] and stab["windows_run"] >= 3
    assert stab["verdict"].startswith(f"not stable after {stab['windows_run']} windows")
    assert stab["spread_pct"] > 5
    assert any("not stable after" in w for w in r.warnings) and r.stop_reason == "max duration"
    assert len(stab["windows"]) == stab["windows_run"] and r.iterations == sum(
        stab["windows"][i]["iterations"] for i in stab["reported_windows"])


def test_cli_until_stable_reports_and_saves_windows(sleeper, tmp_path, capsys):
    model, law = sleeper
    law["delay"] = lambda i: max(0.001, 0.012 * 0.93 ** i)
    out = tmp_path / "r.json"
    rc = bench_main(["latency", "--model", str(model), "--until-stable", "30", "--window-s", "0.05",
                     "--min-iterations", "10", "--warmup", "0", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "window 1:" in text and "Stability: stable after" in text
    doc = json.loads(out.read_text())
    assert doc["stability"]["stable"] and len(doc["samples_ms"]) == doc["iterations"]


@pytest.mark.parametrize("argv, needle", [
    (["--until-stable", "0"], "--until-stable must be in (0, 100), got 0.0"),
    (["--until-stable", "5", "--stable-windows", "1"], "--stable-windows must be in 2..100, got 1"),
    (["--until-stable", "5", "--window-s", "30"], "do not fit in --max-duration 60 s"),
])
def test_bad_stability_options_are_named(sleeper, argv, needle, capsys):
    model, _ = sleeper
    assert bench_main(["latency", "--model", str(model), *argv]) != 0
    assert needle in capsys.readouterr().err

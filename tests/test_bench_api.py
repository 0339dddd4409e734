"""pymfn.bench as a library: every timed benchmark called from Python, its settings checked, its results rendered.

Runs are short (well under a second each); nothing here asserts on how fast anything was.
"""
from __future__ import annotations

import csv
import doctest
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import pymfn.bench as b
from pymfn import config
from pymfn.bench import fleet, perf, queueing, scenarios, settings, target

SHORT = b.RunSettings(min_duration_s=0.2, min_iterations=5, warmup_iterations=2)
SHORT_SCENARIO = b.ScenarioSettings(min_duration_s=0.4, min_queries=8, warmup_iterations=2)


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(config.PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]))


@pytest.fixture(scope="module")
def model() -> object:
    return b.default_model()


@pytest.fixture(scope="module")
def lat(model) -> b.LatencyResult:
    return b.latency(model, settings=SHORT)


@pytest.fixture(scope="module")
def srv(model) -> b.ServerResult:
    return b.server(model, qps=20, p99_ms=200, settings=SHORT_SCENARIO)


def test_the_one_liner_of_the_docs_works():
    """What a user types first: the default model, the default settings, one figure printed."""
    code = "import pymfn.bench as b; r = b.latency(b.default_model()); print(r.median_ms)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=600,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert float(proc.stdout.strip().splitlines()[-1]) > 0


def test_latency_and_throughput(model, lat):
    assert isinstance(lat, b.LatencyResult) and not lat.interrupted
    assert lat.iterations >= 5 and len(lat.samples_ms) == lat.iterations
    assert lat.latency.min <= lat.median_ms <= lat.p99_ms <= lat.latency.max
    assert lat.batch == 1 and lat.document["inflight"] == 1 and lat.stop_reason == "minimums met"
    doc = lat.to_dict()
    assert doc["mode"] == "latency" and doc["samples_ms"] == lat.samples_ms
    assert lat.report().splitlines()[1].startswith("pymfn latency: openvino engine, batch 1, f32")

    thr = b.throughput(model, batch=2, settings=SHORT)
    assert isinstance(thr, b.ThroughputResult) and thr.batch == 2
    assert thr.document["inflight"] == 2  # throughput's default for a field left None
    assert thr.throughput_per_s == pytest.approx(thr.document["samples_processed"] * 1000.0 / thr.document["wall_ms"])


def test_model_may_be_a_path_and_settings_reach_the_runner(model):
    lat = b.latency(str(model.path), settings=b.RunSettings(min_duration_s=0.1, min_iterations=7, warmup_iterations=3,
                                                            inflight=2, scope="end-to-end", keep_samples=False, seed=5))
    doc = lat.document
    assert doc["model"] == str(model.path) and doc["model_description"] == f"user model {model.path.name}"
    assert doc["warmup"] >= 3 and doc["iterations"] >= 7 and doc["inflight"] == 2 and doc["scope"] == "end-to-end"
    assert lat.samples_ms == [] and "(seed 5, cycled)" in doc["input"]
    with pytest.raises(ValueError, match="a latency result without samples has nothing to plot"):
        lat.plot(Path("never.png"))


def test_server_and_multistream(model, srv):
    assert isinstance(srv, b.ServerResult) and srv.queries >= 8 and not srv.interrupted
    assert srv.document["scenario"] == "server" and srv.target_qps == 20 and srv.latency_bound_ms == 200
    assert len(srv.samples_ms) == srv.queries and srv.median_ms <= srv.p99_ms
    assert srv.valid == (srv.document["result"] == "VALID") and srv.valid == (not srv.invalid_reasons)
    assert srv.report().splitlines()[1].startswith("pymfn server: openvino engine, batch 1")

    ms = b.multistream(model, samples_per_query=2, interval_ms=40, settings=SHORT_SCENARIO)
    assert isinstance(ms, b.MultistreamResult) and ms.queries >= 8
    assert ms.document["samples_per_query"] == 2 and ms.batch in (1, 2)
    assert ms.latency_bound_ms == 40  # the interval when no bound is given


def test_find_peak_returns_its_curve_and_why_it_stopped(model, tmp_path):
    lines: list[str] = []
    progress = tmp_path / "progress.json"
    peak = b.find_peak(model, p99_ms=100, budget_s=10, settings=SHORT_SCENARIO,
                       search=b.PeakSearchSettings(peak_runs=1, probe_duration_s=0.3), log=lines.append,
                       progress_json=progress)
    assert isinstance(peak, b.PeakResult) and not peak.interrupted
    assert peak.stop in ("peak", "budget", "floor", "confirmations") and peak.stop_reason
    assert peak.elapsed_s <= 10 + 5 and peak.budget_s == 10 and peak.latency_bound_ms == 100
    assert lines and lines[0].endswith("searching") and peak.progress[:len(lines)] == lines
    assert peak.curve and {c["role"] for c in peak.curve} <= {"probe", "edge re-run", "confirm"}
    if peak.peak_qps is not None:
        assert peak.stop == "peak" and peak.peak_run is not None and peak.peak_run.valid
    assert json.loads(progress.read_text())["curve"]  # the progress file holds the search so far
    text = peak.report()
    assert text.startswith("QPS target") and "PEAK: " in text and f"stopped: {peak.stop_reason}" in text
    rows = list(csv.DictReader(io.StringIO(peak.to_csv())))
    assert len(rows) == len(peak.curve) and rows[0]["role"] == peak.curve[0]["role"]


def test_results_render_as_json_csv_and_plots(lat, srv, tmp_path):
    pytest.importorskip("matplotlib")
    text = lat.to_json(tmp_path / "lat.json")
    assert json.loads(text) == json.loads((tmp_path / "lat.json").read_text()) == lat.to_dict()
    row = next(csv.DictReader(io.StringIO(lat.to_csv(tmp_path / "lat.csv"))))
    assert row["mode"] == "latency" and float(row["latency_median_ms"]) == pytest.approx(lat.median_ms)
    assert (tmp_path / "lat.csv").read_text() == lat.to_csv()
    assert lat.plot(tmp_path / "lat.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(lat) == lat.report()

    assert srv.plot(tmp_path / "srv.svg").read_text().lstrip().startswith("<?xml")
    assert json.loads(srv.to_json())["queries_raw"]["completed_ms"]
    with pytest.raises(Exception, match="is also the input the model"):
        lat.to_json(lat.model)  # never over the model the result describes


@pytest.mark.parametrize("make, field", [
    (lambda: b.RunSettings(inflight=0), "inflight"),
    (lambda: b.RunSettings(inflight=65), "inflight"),
    (lambda: b.RunSettings(min_duration_s=float("nan")), "min_duration_s"),
    (lambda: b.RunSettings(max_duration_s=0), "max_duration_s"),
    (lambda: b.RunSettings(warmup_iterations=-1), "warmup_iterations"),
    (lambda: b.RunSettings(scope="wall"), "scope"),
    (lambda: b.RunSettings(devices=(0, 0)), "devices"),
    (lambda: b.RunSettings(threads=1.5), "threads"),
    (lambda: b.RunSettings(warmup_ms=5000, max_duration_s=4), "warmup_ms"),
    (lambda: b.RunSettings(min_duration_s=5, max_duration_s=4), "min_duration_s"),
    (lambda: b.ScenarioSettings(percentile=100), "percentile"),
    (lambda: b.ScenarioSettings(min_queries=0), "min_queries"),
    (lambda: b.ScenarioSettings(schedule_seed=-1), "schedule_seed"),
    (lambda: b.ScenarioSettings(spin_ms=2000), "spin_ms"),
    (lambda: b.PeakSearchSettings(peak_tolerance=0.5), "peak_tolerance"),
    (lambda: b.PeakSearchSettings(probe_duration_s=0), "probe_duration_s"),
])
def test_settings_out_of_range_name_their_field(make, field):
    with pytest.raises(b.SettingError, match=f"`{field}`"):
        make()


@pytest.mark.parametrize("call, field", [
    (lambda m: b.latency(m, batch=0), "batch"),
    (lambda m: b.server(m, qps=-1, p99_ms=5), "qps"),
    (lambda m: b.server(m, qps=0.5, p99_ms=5), "qps"),  # 1024 queries at 0.5 QPS cannot fit in the 300 s cap
    (lambda m: b.multistream(m, interval_ms=float("nan")), "interval_ms"),
    (lambda m: b.multistream(m, samples_per_query=0), "samples_per_query"),
    (lambda m: b.find_peak(m, p99_ms=5, budget_s=5), "budget_s"),
    (lambda m: b.find_peak(m, p99_ms=5, search=b.PeakSearchSettings(probe_duration_s=400)), "probe_duration_s"),
])
def test_arguments_are_checked_before_any_model_loads(call, field):
    with pytest.raises(b.SettingError, match=f"`{field}`"):
        call(Path("/nonexistent/model.xml"))  # a model that would fail to load: the check comes first


def test_model_dependent_settings_name_their_field(model):
    with pytest.raises(b.SettingError, match="`batch` 3: `samples_per_query` 8 is not a multiple"):
        b.multistream(model, batch=3, settings=SHORT_SCENARIO)
    with pytest.raises(b.SettingError, match="`batch` 1000000000: the random input"):
        b.throughput(model, batch=1_000_000_000, settings=SHORT)
    with pytest.raises(FileNotFoundError, match="nonexistent"):
        b.latency(Path("/nonexistent/model.xml"))
    with pytest.raises(TypeError, match="ScenarioSettings"):
        b.server(model, qps=10, p99_ms=5, settings=SHORT)


def test_the_command_line_names_options_where_the_library_names_fields():
    from pymfn.cli.bench._options import setting_words

    assert setting_words("`batch` 3: `samples_per_query` 8 is not a multiple of it") == \
        "--batch 3: --samples-per-query 8 is not a multiple of it"
    assert setting_words("`min_duration_s` 5 s is more than `max_duration_s` 4 s") == \
        "--min-duration 5 s is more than --max-duration 4 s"
    assert setting_words("`budget_s` 5 s: `devices`, `probe_duration_s`") == "--budget 5 s: --device, --probe-duration"


_INTERRUPTED_RUN = """
import os, signal, threading, pymfn.bench as b
threading.Timer(3.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
r = b.latency(b.default_model(), settings=b.RunSettings(min_duration_s=60, max_duration_s=120))
print(r.interrupted, r.iterations, len(r.samples_ms), r.stop_reason)
"""


def test_ctrl_c_returns_what_was_measured():
    """SIGINT during a run ends it within moments; the call returns the partial result instead of raising."""
    proc = subprocess.run([sys.executable, "-c", _INTERRUPTED_RUN], capture_output=True, text=True, env=_env(),
                          timeout=110, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    interrupted, iterations, samples, reason = proc.stdout.split()[-4:]
    assert interrupted == "True" and reason == "interrupted" and int(iterations) == int(samples)


@pytest.mark.parametrize("module", [b, perf, scenarios, settings, target, fleet, queueing], ids=lambda m: m.__name__)
def test_docstring_examples_run(module):
    """Every public function's example in its docstring runs and prints what it says."""
    failures, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS, report=True)
    assert failures == 0
    assert tried > 0 or module is b

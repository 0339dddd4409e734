"""The LoadGen harness (``--harness loadgen``): pymfn's engines driven by MLCommons LoadGen, its verdict read from
its own detail log, and the cross-check with pymfn's harness (same engine, rate and bound).

The cross-check runs at a rate far inside the bound (both VALID) and one far outside (both INVALID): the
verdicts follow from queueing, not from how fast this machine is. Achieved rates are compared as the fraction
of each harness's own schedule completed, since the two harnesses draw different Poisson schedules (500
arrivals: their realised rates differ by several percent by chance alone).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pymfn import config
from pymfn.bench import loadgen_harness as lh

DETAIL = """\
:::MLLOG {"key": "loadgen_version", "value": "6.0.17 @ x", "time_ms": 0.1}
:::MLLOG {"key": "effective_samples_per_query", "value": 1, "time_ms": 0.1}
:::MLLOG {"key": "result_validity", "value": "INVALID", "time_ms": 1.0}
:::MLLOG {"key": "result_perf_constraints_met", "value": false, "time_ms": 1.0}
:::MLLOG {"key": "result_min_duration_met", "value": true, "time_ms": 1.0}
:::MLLOG {"key": "result_min_queries_met", "value": true, "time_ms": 1.0}
:::MLLOG {"key": "early_stopping_met", "value": false, "time_ms": 1.0}
:::MLLOG {"key": "result_invalid_reason", "value": "", "time_ms": 1.0}
not a log line
:::MLLOG {"key": "result_query_count", "value": 600, "time_ms": 1.0}
:::MLLOG {"key": "result_scheduled_samples_per_sec", "value": 99.5, "time_ms": 1.0}
:::MLLOG {"key": "result_completed_samples_per_sec", "value": 61.25, "time_ms": 1.0}
:::MLLOG {"key": "result_50.00_percentile_latency_ns", "value": 2500000, "time_ms": 1.0}
:::MLLOG {"key": "result_99.00_percentile_latency_ns", "value": 41000000, "time_ms": 1.0}
:::MLLOG {"key": "result_99.90_percentile_latency_ns", "value": 52000000, "time_ms": 1.0}
:::MLLOG {"key": "result_mean_latency_ns", "value": 3000000, "time_ms": 1.0}
:::MLLOG {broken json
"""


def test_detail_log_is_read_into_the_verdict_and_figures(tmp_path):
    path = tmp_path / "mlperf_log_detail.txt"
    path.write_text(DETAIL)
    values = lh.parse_detail_log(path)
    doc = lh.result_from_detail(values, "server")
    assert doc["result_validity"] == "INVALID"
    assert doc["queries"] == 600 and doc["loadgen_version"].startswith("6.0.17")
    assert doc["scheduled_per_s"] == 99.5 and doc["completed_per_s"] == 61.25
    assert doc["latency_ms"] == {"median": 2.5, "p99": 41.0, "p999": 52.0, "mean": 3.0}
    assert any("performance constraints" in r for r in doc["invalid_reasons"])
    assert any("early stopping" in r for r in doc["invalid_reasons"])
    assert not any("min duration" in r for r in doc["invalid_reasons"])


def test_a_log_dir_holding_other_files_is_refused_before_any_run(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "notes.txt").write_text("mine")
    model = tmp_path / "m.xml"
    model.write_text("x")
    with pytest.raises(lh.SettingError, match="notes.txt"):
        lh.loadgen_run(model, scenario="server", log_dir=tmp_path / "logs", qps=10, latency_bound_ms=5)
    assert (tmp_path / "logs" / "notes.txt").read_text() == "mine"


def test_settings_are_checked_by_name(tmp_path):
    model = tmp_path / "m.xml"
    model.write_text("x")
    with pytest.raises(lh.SettingError, match="`scenario`"):
        lh.loadgen_run(model, scenario="multistream", log_dir=tmp_path / "l")
    with pytest.raises(lh.SettingError, match="`qps`"):
        lh.loadgen_run(model, scenario="server", log_dir=tmp_path / "l", latency_bound_ms=5)
    with pytest.raises(lh.SettingError, match="`batch` 4"):
        lh.loadgen_run(model, scenario="single-stream", log_dir=tmp_path / "l", batch=4)


needs_loadgen = pytest.mark.skipif(not lh.loadgen_available(), reason="mlcommons-loadgen is not installed")


def _cli(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(config.PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "pymfn.bench", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=timeout, stdin=subprocess.DEVNULL)


@needs_loadgen
def test_cli_writes_loadgens_own_logs_and_a_json(tmp_path):
    proc = _cli(["latency", "--harness", "loadgen", "--min-duration", "0.5", "--min-iterations", "64",
                 "--loadgen-logs", "lg", "--json", "r.json", "--csv", "r.csv", "--quiet"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "=== LoadGen single-stream" in proc.stdout
    summary = (tmp_path / "lg" / "mlperf_log_summary.txt").read_text()
    assert "Scenario : SingleStream" in summary
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["harness"] == "loadgen" and doc["result_validity"] in ("VALID", "INVALID")
    assert doc["queries"] >= 64 and doc["latency_ms"]["median"] > 0
    # the figures are LoadGen's: its summary states the same p50 in ns
    p50_ns = int(next(ln for ln in summary.splitlines() if ln.startswith("50.00 percentile")).split(":")[1])
    assert doc["latency_ms"]["median"] == pytest.approx(p50_ns / 1e6, rel=1e-9)
    assert (tmp_path / "r.csv").read_text().startswith("harness,scenario")
    # no work directory is left beside the logs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lg", "r.csv", "r.json"]


@needs_loadgen
def test_pymfn_only_options_are_refused_under_loadgen(tmp_path):
    for args, option in ((["server", "--harness", "loadgen", "--find-peak"], "--find-peak"),
                         (["latency", "--harness", "loadgen", "--until-stable", "5"], "--until-stable"),
                         (["latency", "--loadgen-logs", "x"], "--loadgen-logs")):
        proc = _cli(args, tmp_path, timeout=120)
        assert proc.returncode != 0
        assert len(proc.stderr.strip().splitlines()) == 1 and option in proc.stderr, proc.stderr


@needs_loadgen
def test_ctrl_c_ends_a_loadgen_run_at_once_and_leaves_no_partial_logs(tmp_path):
    cmd = [sys.executable, "-m", "pymfn.bench", "server", "--harness", "loadgen", "--qps", "20", "--p99-ms", "100",
           "--min-duration", "120", "--min-queries", "100", "--loadgen-logs", "lg"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(config.PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    # wait until LoadGen runs (the child prints its line once the samples are loaded)
    deadline = time.monotonic() + 300
    assert proc.stdout is not None
    seen = ""
    while "samples loaded" not in seen and time.monotonic() < deadline:
        seen += proc.stdout.readline()
    assert "samples loaded" in seen
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)  # the run itself would last 120 s
    assert proc.returncode == 130, err
    assert "interrupted" in (out + err)
    assert not (tmp_path / "lg").exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def _server(harness: str, tmp_path: Path, qps: float, bound_ms: float, min_duration: float, name: str) -> dict:
    proc = _cli(["server", "--harness", harness, "--qps", str(qps), "--p99-ms", str(bound_ms), "--min-queries", "500",
                 "--min-duration", str(min_duration), "--quiet", "--json", f"{name}.json",
                 *(["--loadgen-logs", name] if harness == "loadgen" else [])], tmp_path)
    assert proc.returncode == 0, proc.stderr
    return json.loads((tmp_path / f"{name}.json").read_text())


@needs_loadgen
@pytest.mark.slow
def test_both_harnesses_agree_far_inside_and_far_outside_the_bound(tmp_path):
    # far inside: 40 QPS with a 1 s bound on a model that needs milliseconds per query
    inside_pymfn = _server("pymfn", tmp_path, 40, 1000, 0.0, "in-pymfn")
    inside_lg = _server("loadgen", tmp_path, 40, 1000, 0.0, "in-lg")
    assert inside_pymfn["valid"] is True
    assert inside_lg["result_validity"] == "VALID", inside_lg["invalid_reasons"]
    # achieved rate as the fraction of each harness's own schedule completed: within 5 %
    done_pymfn = inside_pymfn["achieved_qps"] / inside_pymfn["scheduled_qps"]
    done_lg = inside_lg["completed_per_s"] / inside_lg["scheduled_per_s"]
    assert abs(done_pymfn - done_lg) < 0.05, (done_pymfn, done_lg)
    # far outside: 5000 QPS with a 2 ms bound; 500 queries arrive in 0.1 s and queue behind each other
    outside_pymfn = _server("pymfn", tmp_path, 5000, 2, 0.0, "out-pymfn")
    outside_lg = _server("loadgen", tmp_path, 5000, 2, 0.0, "out-lg")
    assert outside_pymfn["valid"] is False
    assert outside_lg["result_validity"] == "INVALID"
    assert outside_lg["latency_ms"]["p99"] > 2 and outside_pymfn["latency_at_percentile_ms"] > 2

"""--csv on every bench command and --per-request-csv on the timed runs: one row per run with its percentiles,
one row per measured request with its raw latency, written through the output fallback."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from pymfn.bench import exports
from pymfn.bench.__main__ import main as bench_main
from pymfn.bench.scenarios import PeakResult
from pymfn.cli import BENCH_COMMANDS, _module, parser_for

PERCENTILE_CSV = ["latency_median_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms", "latency_p999_ms",
                  "latency_max_ms"]


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


@pytest.fixture(scope="module")
def tiny_pb(tmp_path_factory) -> Path:
    from test_openvino_engine import write_tiny_pb

    return write_tiny_pb(tmp_path_factory.mktemp("exports") / "tiny.pb", size=16)


@pytest.mark.parametrize("command", list(BENCH_COMMANDS))
def test_every_bench_command_has_csv(command):
    parser = parser_for(f"pymfn bench {command}", _module(BENCH_COMMANDS[command]))
    options = {o for a in parser._actions for o in a.option_strings}
    assert "--csv" in options
    timed = command in ("latency", "throughput", "server", "multistream")
    assert ("--per-request-csv" in options) == timed


def test_percentiles_of_matches_numpy():
    rng = np.random.default_rng(3)
    samples = rng.lognormal(0.0, 0.5, 997)
    got = exports.percentiles_of(samples)
    assert list(got) == ["p50", "p90", "p95", "p99", "p99.9", "max"]
    for name, q in zip(got, (50, 90, 95, 99, 99.9, 100)):
        assert got[name] == pytest.approx(float(np.percentile(samples, q)), rel=1e-12)
    assert exports.percentiles_of([]) == dict.fromkeys(got)


def test_latency_csv_and_per_request_csv(tiny_pb, tmp_path):
    js, run_csv, raw_csv = tmp_path / "l.json", tmp_path / "l.csv", tmp_path / "raw.csv"
    rc = bench_main(["latency", "--model", str(tiny_pb), "--min-iterations", "40", "--min-duration", "0",
                     "--warmup", "2", "--threads", "1", "--json", str(js), "--csv", str(run_csv),
                     "--per-request-csv", str(raw_csv)])
    assert rc == 0
    doc = json.loads(js.read_text())
    (row,) = read_csv(run_csv)
    assert row["mode"] == "latency" and int(row["iterations"]) == doc["iterations"]
    for col in PERCENTILE_CSV:
        assert float(row[col]) == pytest.approx(doc["latency_ms"][col[len("latency_"):-len("_ms")]], rel=1e-9)
    rows = read_csv(raw_csv)
    assert list(rows[0]) == ["index", "start_ms", "latency_ms"]
    assert len(rows) == doc["iterations"] >= 40
    assert [int(r["index"]) for r in rows] == list(range(len(rows)))
    np.testing.assert_allclose([float(r["latency_ms"]) for r in rows], doc["samples_ms"], rtol=1e-12)
    np.testing.assert_allclose([float(r["start_ms"]) for r in rows], doc["start_offsets_ms"], rtol=1e-12)
    starts = [float(r["start_ms"]) for r in rows]
    assert starts == sorted(starts) and starts[0] == 0.0  # one request in flight: each starts after the last


def test_server_per_request_csv_times_from_the_scheduled_arrival(tiny_pb, tmp_path, capsys):
    js, run_csv, raw_csv = tmp_path / "s.json", tmp_path / "s.csv", tmp_path / "sraw.csv"
    rc = bench_main(["server", "--model", str(tiny_pb), "--qps", "200", "--p99-ms", "50", "--min-duration", "0.2",
                     "--min-queries", "40", "--threads", "1", "--quiet", "--json", str(js), "--csv", str(run_csv),
                     "--per-request-csv", str(raw_csv)])
    assert rc == 0
    doc = json.loads(js.read_text())
    (row,) = read_csv(run_csv)
    assert row["result"] == doc["result"] and int(row["queries"]) == doc["queries"]
    assert float(row["latency_p99_ms"]) == pytest.approx(doc["latency_ms"]["p99"], rel=1e-9)
    rows = read_csv(raw_csv)
    raw = doc["queries_raw"]
    assert list(rows[0]) == ["index", "start_ms", "latency_ms", "issued_ms", "completed_ms"]
    assert len(rows) == doc["queries"] >= 40
    np.testing.assert_allclose([float(r["start_ms"]) for r in rows], raw["scheduled_ms"], rtol=1e-12)
    lat = np.asarray(raw["completed_ms"]) - np.asarray(raw["scheduled_ms"])
    np.testing.assert_allclose([float(r["latency_ms"]) for r in rows], lat, rtol=1e-9, atol=1e-9)
    assert float(np.percentile([float(r["latency_ms"]) for r in rows], 99)) == pytest.approx(
        doc["latency_ms"]["p99"], rel=1e-6)
    # the early-stopping view of the same queries, in the JSON, the CSV row and the report
    from pymfn.bench.early_stopping import early_stopping

    want = early_stopping(lat, 50.0, 0.99)
    assert doc["early_stopping"]["over_bound"] == want.over_bound and doc["early_stopping"]["queries"] == len(lat)
    assert doc["early_stopping"]["estimate_ms"] is None and len(lat) < 662  # 40-odd queries: no p99 estimate
    assert row["early_stopping_decided"] == str(want.decided)
    assert "early stopping: no p99 estimate from" in capsys.readouterr().out


def test_find_peak_csv_has_one_row_per_curve_point():
    def point(qps, role, valid):
        lat = {"min": 1.0, "mean": 2.0, "median": 2.0, "p90": 3.0, "p95": 4.0, "p99": qps / 10, "p999": 9.0,
               "max": 10.0, "std": 0.5, "cv": 0.25}
        return {"role": role, "target_qps": qps, "achieved_qps": qps * 0.99, "valid": valid,
                "invalid_reasons": [] if valid else ["p99 over the bound", "too short"], "latency_ms": lat}

    curve = [point(100.0, "probe", False), point(50.0, "probe", True), point(50.0, "confirm", True)]
    rows = list(csv.DictReader(io.StringIO(PeakResult({"curve": curve}).to_csv())))
    assert [(r["role"], float(r["target_qps"])) for r in rows] == [("probe", 100.0), ("probe", 50.0),
                                                                  ("confirm", 50.0)]
    assert rows[0]["invalid_reasons"] == "p99 over the bound; too short" and float(rows[0]["latency_p99_ms"]) == 10.0
    assert all(col in rows[0] for col in PERCENTILE_CSV)


def test_per_request_csv_refused_with_find_peak_and_bad_paths_named(tiny_pb, tmp_path, capsys):
    rc = bench_main(["server", "--find-peak", "--model", str(tiny_pb), "--per-request-csv", str(tmp_path / "r.csv")])
    assert rc != 0 and "--per-request-csv is for one run" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc = bench_main(["latency", "--model", str(tiny_pb), "--csv", str(blocker / "out.csv")])
    err = capsys.readouterr().err
    assert rc != 0 and "--csv" in err and str(blocker) in err and len(err.strip().splitlines()) == 1


def test_csv_never_overwrites_the_model(tiny_pb, tmp_path):
    from pymfn.bench.perf import LatencyResult

    result = LatencyResult({"model": str(tiny_pb), "mode": "latency", "latency_ms": {}, "samples_ms": []})
    before = tiny_pb.read_bytes()
    with pytest.raises(Exception, match="model"):
        result.to_csv(tiny_pb)
    assert tiny_pb.read_bytes() == before


def test_per_request_rows_name_devices_only_with_several():
    doc = {"samples_ms": [1.0, 2.0, 3.0], "start_offsets_ms": [0.0, 0.5, 1.0], "sample_devices": [0, 1, 0],
           "devices": [{"name": "a"}, {"name": "b"}]}
    rows = exports.per_request_rows(doc)
    assert [r["device"] for r in rows] == [0, 1, 0]
    text = exports.per_request_csv(doc)
    assert text.splitlines()[0] == "index,start_ms,latency_ms,device"
    with pytest.raises(ValueError, match="no per-request"):
        exports.per_request_rows({"accuracy": 0.99})

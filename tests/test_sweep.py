"""`python -m pymfn.bench sweep`: all rows in one run, what ran per row, rows the CPU cannot run listed as such.

Runs on a tiny frozen graph and a 20-pair lfw.bin-style file (mechanics, not accuracy: the real figures come
from the full sweep in the README and the acceptance gate in tests/test_precision.py).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_openvino_engine import write_tiny_pb
from test_quantize import write_jpegs, write_lfw_style

from pymfn.export import quantize as q
from pymfn.bench.precision_sweep import ROW_SPECS, make_rows


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("sweep")
    pb = write_tiny_pb(d / "tiny.pb")
    write_jpegs(d / "faces", 10, seed=2)
    int8 = d / "tiny_int8.xml"
    q.quantize_model(pb, int8, q.load_calibration(d / "faces", count=6), q.QuantizeSettings(fast_bias_correction=True))
    return {"dir": d, "pb": pb, "int8": int8, "data": write_lfw_style(d / "mini_lfw.bin", 40)}


def run_sweep(setup: dict[str, Path], *extra: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "pymfn.bench", "sweep", "--model", str(setup["pb"]), "--data", str(setup["data"]),
            "--seconds", "0.1", "--rounds", "1", "--batches", "1,4", "--quiet", *extra]
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
                          env=os.environ.copy())


def test_one_run_lists_every_row_with_what_ran(setup, tmp_path):
    from pymfn.runtime.precision import host_support

    out = tmp_path / "sweep.json"
    proc = run_sweep(setup, "--int8-model", str(setup["int8"]), "--json", str(out), "--plot", str(tmp_path / "s.png"))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert [r["key"] for r in doc["rows"]] == list(ROW_SPECS)
    support = host_support()
    for row in doc["rows"]:
        assert row["name"] in proc.stdout
        if row["engine"] == "openvino" and not support[row["precision"]]["runs"]:
            assert row["status"].startswith("not run: OpenVINO's CPU plugin lacks"), row  # listed, not replaced
            continue
        assert row["status"] == "ok", row
        assert row["precision_report"]["check"] == "ok", row  # what ran is what the row claims
        if row["engine"] == "acl":  # the emulator's own record: f32 on every host, the device's arithmetic beside
            emu = row["emulator"]
            assert (emu["emulator_compute_precision"], emu["emulator_device_precision"]) == ("f32", row["precision"])
            assert f"{row['name']}: emulator computes f32 (device {row['precision']})" in proc.stdout
            assert f"ok (emulator f32, device {row['precision']})" in proc.stdout
        assert row["accuracy"] is not None and row["throughput"] > 0 and row["latency_p99_ms"] >= row["latency_median_ms"]
        assert row["best_batch"] in (1, 4) and len(row["throughput_rounds"]) == 1
    assert doc["pairs"] == 20 and doc["load_average"]["start"]
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if support["bf16"]["runs"]:
        assert doc["ratios"]["int8_vs_bf16"] > 0 and "int8 / bf16" in proc.stdout


def test_a_broken_row_is_reported_and_the_others_still_measured(setup, tmp_path):
    """A float IR given as --int8-model cannot run int8: that row fails with the reason, f32 still runs."""
    import openvino as ov

    float_xml = tmp_path / "float.xml"
    ov.save_model(ov.convert_model(str(setup["pb"])), str(float_xml))
    out = tmp_path / "s.json"
    proc = run_sweep(setup, "--rows", "f32,int8", "--int8-model", str(float_xml), "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = {r["key"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["f32"]["status"] == "ok"
    assert rows["int8"]["status"].startswith("failed:") and "needs a quantized model" in rows["int8"]["status"]


def test_rows_the_cpu_cannot_run_are_listed_not_substituted():
    support = {p: {"runs": p != "bf16", "why": f"reason for {p}"} for p in ("f32", "bf16", "f16", "int8")}
    rows = make_rows(["f32", "bf16", "om-int8"], support, acl_available="no emulator here")
    assert [r.status for r in rows] == ["pending", "not run: reason for bf16", "not run: no emulator here"]


@pytest.mark.parametrize("argv, message", [
    (["--rows", "f32,fp8"], "--rows 'f32,fp8': expected a comma-separated subset of"),
    (["--pairs", "5"], "--pairs 5: the 10-fold protocol needs at least 20 pairs"),
    (["--batches", "0,4"], "--batches '0,4': every batch size must be 1..256"),
    (["--json", "{tmp}"], "--json {tmp}: is an existing directory"),
    (["--rounds", "0"], "--rounds 0: expected at least 1"),
])
def test_bad_options_fail_before_measuring_with_one_line(setup, tmp_path, argv, message):
    proc = run_sweep(setup, *[a.format(tmp=tmp_path) for a in argv])
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and message.format(tmp=tmp_path) in lines[0], proc.stderr

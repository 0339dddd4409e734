"""The `python -m pymfn.bench` CLI end to end, on small models built in the test."""
from __future__ import annotations

import io
import os
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pymfn.bench.__main__ import main as bench_main


@pytest.fixture(scope="module")
def random_pb(tmp_path_factory) -> Path:
    from pymfn.export import freeze

    out = tmp_path_factory.mktemp("model") / "mfn_random.pb"
    freeze.freeze_random(out, embedding_size=128, seed=0)
    return out


def test_help_lists_commands():
    proc = subprocess.run([sys.executable, "-m", "pymfn.bench", "--help"], capture_output=True, text=True, check=True)
    for cmd in ("latency", "throughput", "accuracy", "msame"):
        assert cmd in proc.stdout


def test_latency_json_has_required_keys(random_pb, tmp_path, capsys):
    out = tmp_path / "lat.json"
    plot = tmp_path / "lat.png"
    rc = bench_main(["latency", "--model", str(random_pb), "--min-iterations", "30", "--min-duration", "0.2",
                     "--warmup", "3", "--threads", "1", "--json", str(out), "--plot", str(plot)])
    assert rc == 0
    doc = json.loads(out.read_text())
    for key in ("engine", "model", "batch", "precision", "scope", "iterations", "warmup", "latency_ms",
                "throughput_per_s", "samples_ms", "percentile_method", "build_info", "host"):
        assert key in doc, key
    assert doc["engine"] == "openvino" and doc["batch"] == 1 and doc["precision"] == "f32"
    assert doc["iterations"] >= 30 and len(doc["samples_ms"]) == doc["iterations"]
    lat = doc["latency_ms"]
    assert lat["min"] <= lat["median"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert lat["median"] == pytest.approx(float(np.median(doc["samples_ms"])), rel=1e-9)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = capsys.readouterr().out
    assert "Latency (ms)" in text and "What the figures mean" in text


def test_throughput_uses_batches_and_inflight(random_pb, tmp_path):
    out = tmp_path / "thr.json"
    rc = bench_main(["throughput", "--model", str(random_pb), "--batch", "4", "--inflight", "2", "--min-iterations", "10",
                     "--min-duration", "0.2", "--warmup", "2", "--json", str(out)])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert doc["batch"] == 4 and doc["inflight"] == 2
    assert doc["samples_processed"] == 4 * doc["iterations"]
    assert doc["throughput_per_s"] > 0


@pytest.mark.parametrize("folder_io", ["mmap", "pread"])
def test_end_to_end_scope_with_folder_input(random_pb, tmp_path, folder_io):
    bins = tmp_path / "bins"
    bins.mkdir()
    rng = np.random.default_rng(1)
    for i in range(5):
        rng.uniform(-1, 1, (112, 112, 3)).astype(np.float32).tofile(bins / f"{i}.bin")
    out = tmp_path / "e2e.json"
    rc = bench_main(["latency", "--model", str(random_pb), "--input", str(bins), "--scope", "end-to-end",
                     "--batch", "2", "--min-iterations", "10", "--min-duration", "0", "--warmup", "1", "--json", str(out),
                     "--folder-io", folder_io])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert doc["scope"] == "end-to-end" and "5 files" in doc["input"] and f", {folder_io}," in doc["input"]


def test_bad_inputs_are_named(random_pb, tmp_path, capsys):
    def one_line_error(argv: list[str], *needles: str) -> None:
        assert bench_main(argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert err.startswith(f"pymfn bench {argv[0]}: error: ")
        for needle in needles:
            assert needle in err

    one_line_error(["latency", "--model", str(tmp_path / "missing.pb")], "missing.pb", "does not exist")
    one_line_error(["latency", "--model", str(random_pb), "--batch", "0"], "--batch")
    one_line_error(["accuracy", "--data", str(tmp_path), "--model", str(random_pb), "--inflight", "0"], "--inflight")
    with pytest.raises(SystemExit):  # argparse: invalid choice
        bench_main(["accuracy", "--data", str(tmp_path), "--flip", "--flip-mode", "avg"])
    capsys.readouterr()
    bad = tmp_path / "bad"
    bad.mkdir()
    np.zeros(10, np.float32).tofile(bad / "0.bin")
    one_line_error(["latency", "--model", str(random_pb), "--input", str(bad), "--min-duration", "0"], "0.bin")


def _tiny_lfw_bin(path: Path, pairs: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    bins = []
    for _ in range(2 * pairs):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)).save(buf, format="JPEG")
        bins.append(buf.getvalue())
    issame = [bool(i % 2 == 0) for i in range(pairs)]
    with open(path, "wb") as f:
        pickle.dump((bins, issame), f, protocol=4)


def test_accuracy_json_keys_on_a_tiny_lfw_bin(random_pb, tmp_path):
    data = tmp_path / "tiny_lfw.bin"
    _tiny_lfw_bin(data, pairs=20)
    out = tmp_path / "acc.json"
    rc = bench_main(["accuracy", "--data", str(data), "--model", str(random_pb), "--flip", "--batch", "8",
                     "--json", str(out), "--plot", str(tmp_path / "roc.png")])
    assert rc == 0
    doc = json.loads(out.read_text())
    for key in ("accuracy", "accuracy_std", "fold_accuracy", "thresholds", "val", "val_std", "far", "auc", "eer",
                "pairs", "flip", "images_per_s"):
        assert key in doc, key
    assert doc["pairs"] == 20 and doc["flip"] is True and len(doc["fold_accuracy"]) == 10
    assert doc["flip_mode"] == "sum" and doc["inflight"] == 2
    assert (tmp_path / "roc.png").exists()


@pytest.mark.slow
@pytest.mark.acceptance  # all 12,000 faces: a minute of the default run's 10-minute budget; CI's acceptance step runs it
def test_default_model_lfw_accuracy(lfw_bin, sirius_tflite, tmp_path, monkeypatch):
    """The README's accuracy figure: pretrained default model on the real lfw.bin, no flip."""
    out = tmp_path / "acc.json"
    assert bench_main(["accuracy", "--data", str(lfw_bin), "--json", str(out), "--quiet"]) == 0
    doc = json.loads(out.read_text())
    assert doc["pairs"] == 6000
    assert doc["accuracy"] >= 0.992


def test_openvino_layer_profile_tool(random_pb, tmp_path):
    """bench/openvino_layers.py: per-layer counters plus GFLOP/s from the shapes (the OpenVINO-vs-TF analysis)."""
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "bench"))
    try:
        import openvino_layers
    finally:
        sys.path.remove(str(root / "bench"))
    # 1x1 conv 64->128 on 56x56: 56*56*128 outputs x 64 MACs x 2; depthwise 3x3 (grouped weights [G,1,1,3,3]).
    assert openvino_layers.conv_flops([1, 128, 56, 56], [128, 64, 1, 1], grouped=False) == 2 * 56 * 56 * 128 * 64
    assert openvino_layers.conv_flops([1, 64, 28, 28], [64, 1, 1, 3, 3], grouped=True) == 2 * 28 * 28 * 64 * 9
    out = tmp_path / "layers.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, str(root / "bench" / "openvino_layers.py"), "--model", str(random_pb),
                           "--iterations", "3", "--top", "3", "--json", str(out)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    convs = [r for r in doc["layers"] if r["type"] == "Convolution"]
    assert len(convs) >= 30 and all(r["gflop_per_s"] > 0 for r in convs if "gflop_per_s" in r)
    assert doc["total_us"] > 0 and doc["sgemm_2048_gflop_per_s"] > 0
    assert "dense convolutions overall" in proc.stdout
    bad = subprocess.run([sys.executable, str(root / "bench" / "openvino_layers.py"), "--model", str(tmp_path / "no.pb")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "no.pb" in bad.stderr


def test_accuracy_on_msame_files_read_with_the_wrong_dtype(tmp_path, capsys):
    """float16 msame files read as float32 once gave 60.00% with exit 0; now an error naming the dtype."""
    rng = np.random.default_rng(3)
    pairs = 20
    a = rng.standard_normal((pairs, 128))
    same = np.arange(pairs) % 2 == 0
    b = np.where(same[:, None], a + 0.3 * rng.standard_normal((pairs, 128)), rng.standard_normal((pairs, 128)))
    emb = np.empty((2 * pairs, 128), np.float16)
    emb[0::2], emb[1::2] = a, b
    run = tmp_path / "om" / "20240101_120000"
    run.mkdir(parents=True)
    for i, row in enumerate(emb):
        row.tofile(run / f"{i}_output_0.bin")
    np.save(tmp_path / "issame.npy", same)
    argv = ["accuracy", "--data", str(tmp_path / "om"), "--issame", str(tmp_path / "issame.npy"), "--quiet"]
    assert bench_main(argv + ["--output-dtype", "float32", "--json", str(tmp_path / "a.json")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "256 bytes; as float32 that is 64 values" in err
    assert "pass --output-dtype float16" in err and not (tmp_path / "a.json").exists()
    assert bench_main(argv + ["--json", str(tmp_path / "a.json")]) == 0
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["accuracy"] == 1.0 and doc["embedding_size"] == 128 and doc["output_dtype"] == "float16"
    # a size the user states
    assert bench_main(argv + ["--embedding-size", "192"]) == 1
    assert "the model's embedding has 192" in capsys.readouterr().err


def test_every_report_carries_the_host_cpu_flags_and_warns_on_a_busy_machine(monkeypatch):
    """This project's machines change CPU model between sessions: a figure without the CPU's ISA flags cannot be
    judged. A run started while other work held half the CPUs or more says so."""
    from pymfn.bench import report
    from pymfn.runtime import precision

    monkeypatch.setattr(precision, "cpu_flags", lambda: {"fpu", "avx2", "avx512_bf16", "amx_int8", "sse4_2", "avx_vnni"})
    host = report.host_info()
    assert host["cpu_isa"] == ["amx_int8", "avx2", "avx512_bf16", "avx_vnni", "sse4_2"]
    assert "ISA: amx_int8 avx2 avx512_bf16 avx_vnni sse4_2" in report.format_host(host)
    assert report.busy_warning({"load_average": [0.9, 0, 0], "logical_cpus": 2}) is None
    busy = report.busy_warning({"load_average": [1.0, 0, 0], "logical_cpus": 2})
    assert busy and "1.00 on 2 logical CPUs" in busy
    assert report.busy_warning({"load_average": None, "logical_cpus": 2}) is None
    assert report.format_host(None) == ""


# ------------------------------------------------------------------------------ budgets, refusals, Ctrl-C
@pytest.fixture(scope="module")
def tiny_pb(tmp_path_factory) -> Path:
    from test_openvino_engine import write_tiny_pb

    return write_tiny_pb(tmp_path_factory.mktemp("tiny") / "tiny.pb", size=16)


@pytest.mark.parametrize("argv, needle", [
    (["latency", "--warmup-ms", "100000"], "--warmup-ms 100000 (100 s) does not fit in --max-duration 60 s"),
    (["latency", "--min-duration", "70"], "--min-duration 70 s is more than --max-duration 60 s"),
    (["throughput", "--min-duration", "5", "--warmup-ms", "2000", "--max-duration", "6"],
     "--min-duration 5 s plus --warmup-ms 2000 is more than --max-duration 6 s"),
    (["latency", "--warmup-ms", "inf"], "--warmup-ms must be >= 0.0, got inf"),
    (["latency", "--max-duration", "nan"], "--max-duration must be > 0, got nan"),
    (["latency", "--min-iterations", "0"], "--min-iterations must be >= 1, got 0"),
    (["throughput", "--inflight", "100"], "--inflight must be in 1..64, got 100"),
    (["latency", "--seed", "-1"], "--seed must be >= 0, got -1"),
    (["server", "--qps", "1e-9", "--p99-ms", "5"], "--qps 1e-09: --min-queries 1024 queries at 1e-09 QPS take about"),
    (["server", "--qps", "1e9", "--p99-ms", "5"], "--qps 1e+09: the schedule would hold about"),
    (["server", "--find-peak", "--budget", "5"], "--budget 5 s cannot hold a search"),
    (["server", "--find-peak", "--probe-duration", "400"], "--probe-duration 400 s is more than --max-duration 300 s"),
    (["multistream", "--interval-ms", "10000"], "--interval-ms 10000: --min-queries 100 queries every 10000 ms take"),
])
def test_settings_that_cannot_finish_are_refused_naming_the_option(tiny_pb, argv, needle, capsys):
    """Refused before any model loads, in the words the user typed."""
    rc = bench_main([*argv, "--model", str(tiny_pb)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(lines) == 1, lines
    assert needle in lines[0] and "RunSettings" not in lines[0], lines[0]


def test_runner_messages_are_reworded_with_option_names():
    from pymfn.cli.bench._options import option_names

    msg = "RunSettings.inflight = 4 but the openvino engine offers at most 2 requests in flight"
    assert option_names(msg, "latency").startswith("--inflight = 4 but")
    assert option_names("RunSettings.latency_bound_ms must be > 0", "server") == "--p99-ms must be > 0"
    assert option_names("RunSettings.latency_bound_ms must be > 0", "multistream") == "--bound-ms must be > 0"
    # durations are ms in RunSettings and seconds on the command line: left as they are (checked up front)
    assert option_names("RunSettings.max_duration_ms (5.0)", "latency") == "RunSettings.max_duration_ms (5.0)"


def _bench_env(tmp_path: Path) -> dict[str, str]:
    root = Path(__file__).resolve().parents[1]
    temp = tmp_path / "tmp"
    temp.mkdir(exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
               TMPDIR=str(temp), XDG_CACHE_HOME=str(tmp_path / "cache"))
    return env


def _leftover_temps(tmp_path: Path) -> list[str]:
    """Temp files of atomic writes and output probes, anywhere under tmp_path, and anything in its TMPDIR."""
    found = [str(p) for p in tmp_path.rglob("*") if p.name.endswith((".tmp", ".probe"))]
    return found + [str(p) for p in (tmp_path / "tmp").iterdir()]


def _interrupt(argv: list[str], tmp_path: Path, after_s: float = 2.0, marker: str = "running:",
               startup_timeout: float = 300.0, sig: int | None = None) -> tuple[int, float, str, str]:
    """Start `python -m pymfn.bench argv`, wait until it prints `marker` (its run has started), let it run for
    `after_s`, send SIGINT; returns (exit code, seconds from SIGINT to exit, stdout, stderr)."""
    import queue
    import signal
    import threading
    import time

    proc = subprocess.Popen([sys.executable, "-m", "pymfn.bench", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=_bench_env(tmp_path))
    lines: queue.Queue = queue.Queue()
    out: list[str] = []

    def pump() -> None:
        for line in proc.stdout:
            out.append(line)
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + startup_timeout
    try:
        while True:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, f"exited before its run started: {proc.wait()} {proc.stderr.read()[-2000:]}"
            if line.startswith(marker):
                break
        time.sleep(after_s)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT if sig is None else sig)
        err = proc.stderr.read()
        rc = proc.wait(timeout=300)
        latency = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return rc, latency, "".join(out), err


# A broken implementation exits when the run it was asked for ends (60 s and more); a working one within a
# second or so. 15 s leaves a loaded machine room to print the report, write the JSON and exit.
SIGINT_EXIT_BOUND_S = 15.0


@pytest.mark.parametrize("argv, phase", [
    (["latency", "--warmup-ms", "100000", "--max-duration", "300"], "warm-up"),
    (["latency", "--min-duration", "60"], "measurement"),
    (["server", "--qps", "50", "--p99-ms", "20", "--min-duration", "60"], "schedule"),
])
def test_sigint_stops_a_run_keeping_what_it_measured(tiny_pb, tmp_path, argv, phase):
    """SIGINT 2 s into a run that asked for 60-300 s: exit 130 soon after, the partial result printed and saved
    in --json marked interrupted, no temp file left behind."""
    out = tmp_path / "out" / "partial.json"
    rc, latency, stdout, stderr = _interrupt([*argv, "--model", str(tiny_pb), "--threads", "1", "--json", str(out)],
                                             tmp_path)
    print(f"SIGINT during {phase}: exit {rc} {latency:.3f} s after the signal")
    assert rc == 130, stderr[-2000:]
    assert latency < SIGINT_EXIT_BOUND_S
    assert "interrupted; the partial result" in stderr and str(out) in stderr
    assert "Traceback" not in stderr
    doc = json.loads(out.read_text())
    assert doc["interrupted"] is True and doc["stop_reason"] == "interrupted"
    assert "INTERRUPTED (Ctrl-C)" in stdout
    if phase == "warm-up":
        assert doc["iterations"] == 0 and doc["warmup"] > 10 and doc["samples_ms"] == []
    elif phase == "measurement":
        assert doc["iterations"] >= 1 and len(doc["samples_ms"]) == doc["iterations"] and doc["warmup"] == 10
    else:
        assert 1 <= doc["queries"] < doc["queries_scheduled"] and doc["result"] == "INVALID"
        assert len(doc["queries_raw"]["completed_ms"]) == doc["queries"]
        assert any(r.startswith("interrupted:") for r in doc["invalid_reasons"])
    assert _leftover_temps(tmp_path) == []


def test_sigterm_is_handled_like_ctrl_c_with_its_own_exit_status(tiny_pb, tmp_path):
    """SIGTERM (what `kill`, systemd and CI runners send) stops the run the same way: partial result saved, no
    temp left, exit 128 + 15."""
    import signal

    out = tmp_path / "out" / "partial.json"
    rc, latency, stdout, stderr = _interrupt(["latency", "--min-duration", "60", "--model", str(tiny_pb), "--threads",
                                              "1", "--json", str(out)], tmp_path, sig=signal.SIGTERM)
    assert rc == 143 and latency < SIGINT_EXIT_BOUND_S, stderr[-2000:]
    assert "terminated by SIGTERM; the partial result" in stderr and "Traceback" not in stderr
    doc = json.loads(out.read_text())
    assert doc["interrupted"] is True and doc["iterations"] >= 1
    assert _leftover_temps(tmp_path) == []


def test_find_peak_sigint_saves_the_search_so_far(tiny_pb, tmp_path):
    out = tmp_path / "peak.json"
    rc, latency, stdout, stderr = _interrupt(
        ["server", "--find-peak", "--model", str(tiny_pb), "--threads", "1", "--p99-ms", "20", "--probe-duration", "2",
         "--json", str(out), "--quiet"], tmp_path, after_s=1.0, marker="find-peak: budget")
    print(f"SIGINT during find-peak: exit {rc} {latency:.3f} s after the signal")
    assert rc == 130 and latency < SIGINT_EXIT_BOUND_S, stderr[-2000:]
    doc = json.loads(out.read_text())
    assert doc["interrupted"] is True and doc["stop"] == "interrupted" and doc["status"] == "done"
    assert "interrupted (Ctrl-C)" in doc["stop_reason"] and doc["peak_qps"] is None
    assert doc["progress"] and doc["progress"][-1].endswith(doc["stop_reason"])
    assert "[   " not in stdout  # --quiet: progress lines only in the JSON
    assert _leftover_temps(tmp_path) == []


def test_find_peak_stops_at_its_budget_and_says_why(tiny_pb, tmp_path):
    """A budget too small for the search: it stops when the budget is spent, saying so, with the progress (one
    line per run) and the curve in the JSON. The budget bounds the search's own clock; every run is capped at
    what is left of it, so the search ends within it plus the last request's drain."""
    out = tmp_path / "peak.json"
    proc = subprocess.run([sys.executable, "-m", "pymfn.bench", "server", "--find-peak", "--model", str(tiny_pb),
                           "--threads", "1", "--p99-ms", "20", "--probe-duration", "0.5", "--min-duration", "1",
                           "--min-queries", "50", "--peak-runs", "2", "--budget", "3.5", "--json", str(out)],
                          capture_output=True, text=True, env=_bench_env(tmp_path), timeout=600, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    # spent between runs, or cut a run short: either way the reason names the budget
    assert doc["stop"] == "budget" and "the budget of 3.5 s (--budget)" in doc["stop_reason"]
    assert doc["elapsed_s"] <= 3.5 + 2.5 and doc["budget_s"] == 3.5
    assert doc["peak_qps"] is None and doc["result"] == "INVALID" and not doc["interrupted"]
    runs = [line for line in doc["progress"] if any(f"] {role} " in line for role in ("probe", "edge re-run", "confirm"))]
    assert len(runs) == len(doc["curve"]) >= 1  # one progress line per run
    assert "find-peak: budget 3.5 s (--budget)" in proc.stdout and "PEAK: none — the budget" in proc.stdout
    assert all(line in proc.stdout for line in doc["progress"][:-1])  # printed as they came (not --quiet)


def test_find_peak_gives_up_at_its_floor(tiny_pb, tmp_path):
    """A bound no rate can meet: the bisection stops at the floor instead of walking towards 0 QPS."""
    out = tmp_path / "peak.json"
    proc = subprocess.run([sys.executable, "-m", "pymfn.bench", "server", "--find-peak", "--model", str(tiny_pb),
                           "--threads", "1", "--p99-ms", "0.000001", "--probe-duration", "0.3", "--min-duration", "1",
                           "--min-queries", "50", "--peak-runs", "1", "--budget", "120", "--json", str(out), "--quiet"],
                          capture_output=True, text=True, env=_bench_env(tmp_path), timeout=600, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    floor = doc["floor_qps"]
    assert doc["stop"] == "floor" and doc["stop_reason"].startswith(f"no VALID rate above {floor:.2f} QPS")
    probes = [c["target_qps"] for c in doc["curve"] if c["role"] == "probe"]
    assert min(probes) == pytest.approx(floor) and all(not c["valid"] for c in doc["curve"])
    assert f"PEAK: none — no VALID rate above {floor:.2f} QPS" in proc.stdout

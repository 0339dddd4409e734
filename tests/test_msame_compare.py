"""`python -m pymfn.bench msame` end to end, against a real msame work-alike (tests/msame_double.cpp).

The double is a C++ program linked with pymfn's ACL emulator, so its outputs are computed, and "bit-identical
to pymfn's ACL engine" is a real check. The inputs are named 0.bin ... 11.bin: msame's lexicographic order
(0, 1, 10, 11, 2, ...) differs from the natural order, which is how the comparison once matched different
images to each other. Each comparison runs as a subprocess, as a user would, because the emulator's run mode
is fixed when a process initialises ACL.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import _msame_double
from pymfn.inputs import msame
from pymfn.bench.__main__ import main as bench_main
from pymfn.cli import main as cli_main

H = W = 16
FILES = 12


@pytest.fixture(scope="session")
def emulator(core) -> Path:
    if not hasattr(core, "AclEngine"):
        pytest.skip(f"this build has no AscendCL engine (build_info()['acl'] = {core.build_info()['acl']!r})")
    rt = core.acl_runtime()
    if not rt["emulator"]:
        pytest.skip(f"these tests need pymfn's ACL emulator; the runtime is {rt['runtime']}")
    return Path(rt["library"])


@pytest.fixture(scope="session")
def msame_exe(emulator, tmp_path_factory) -> Path:
    """The msame double, compiled once per session with -Wall -Wextra -Wpedantic -Werror."""
    return _msame_double.build(tmp_path_factory.mktemp("msame_double"), emulator)


@pytest.fixture(scope="module")
def om(emulator, tmp_path_factory) -> Path:
    """A tiny model with MobileFaceNet's interface (float32 NHWC in, float16 embedding out) as an emulator .om."""
    import tensorflow as tf


    d = tmp_path_factory.mktemp("msame_model")
    rng = np.random.default_rng(3)
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, H, W, 3], name="Placeholder")
        k = tf.constant(rng.standard_normal((3, 3, 3, 8)).astype(np.float32) * 0.4)
        y = tf.reduce_mean(tf.nn.relu(tf.nn.conv2d(x, k, strides=1, padding="SAME")), axis=[1, 2])
        y = tf.matmul(y, tf.constant(rng.standard_normal((8, 16)).astype(np.float32)))
        tf.cast(tf.nn.l2_normalize(y, 1, 1e-10), tf.float16, name="the_outputs")
    (d / "tiny.pb").write_bytes(g.as_graph_def().SerializeToString())
    out = d / "tiny.om"
    assert cli_main(["convert", str(d / "tiny.pb"), "--target", "om-emu", "--output", str(out),
                         f"--input-shape=1,{H},{W},3"]) == 0
    return out


def _make_inputs(folder: Path, n: int = FILES, seed: int = 0) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        rng.uniform(-1, 1, (H, W, 3)).astype(np.float32).tofile(folder / f"{i}.bin")
    return folder


@pytest.fixture()
def inputs(tmp_path) -> Path:
    return _make_inputs(tmp_path / "bin_input")


def _bench(args: list[str], msame_exe: Path, tmp: Path, run_mode: str = "host",
           fault: str | None = None) -> subprocess.CompletedProcess:
    env = _msame_double.environment(run_mode)
    env["PYMFN_MSAME"] = str(msame_exe)
    if fault:
        env["PYMFN_MSAME_DOUBLE_FAULT"] = fault  # the work-alike's switches (tests/msame_double.cpp)
    env["TMPDIR"] = str(tmp)  # temporary output folders land here, so the test can see they are removed
    return subprocess.run([sys.executable, "-m", "pymfn.bench", "msame", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300, cwd=tmp)


def _temps(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.iterdir() if p.name.startswith("pymfn-"))


@pytest.mark.parametrize("run_mode", ["host", "device"])
def test_identical_outputs_give_zero_differing_rows_and_every_file_is_timed(om, msame_exe, inputs, tmp_path,
                                                                            run_mode):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "c.json"
    proc = _bench(["--run-msame", "--model", om, "--input", inputs, "--json", out], msame_exe, tmp, run_mode)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    for name in ("timing pass vs msame", "folder run vs msame", "folder run vs timing pass"):
        c = doc["outputs"][name]
        assert (c["rows_compared"], c["rows_differing"], c["max_abs_diff"]) == (FILES, 0, 0.0), (name, c)
        assert c["missing_in_msame"] == [] and c["missing_in_pymfn"] == []
    assert "12 rows compared by file name, 0 differ (bit-identical)" in proc.stdout
    # one pass over every file, in msame's order, plus the stated warm-up
    pymfn_doc = doc["pymfn"]
    assert pymfn_doc["executes"] == FILES and len(pymfn_doc["samples_ms"]) == FILES and pymfn_doc["passes"] == 1
    assert pymfn_doc["warmup_executes"] == 1 and pymfn_doc["warmup_files"] == ["0.bin"]
    assert pymfn_doc["first_file"] == "0.bin" and pymfn_doc["acl_runtime"] == "emulator"
    assert pymfn_doc["engine_properties"]["run_mode"] == f"ACL_{run_mode.upper()}"
    assert "HOST timings" in pymfn_doc["timing_note"]
    m = doc["msame"]
    assert m["status"] == "ok" and m["failure_reasons"] == [] and len(m["log"]["run_times_ms"]) == FILES
    assert m["log"]["first_file"].endswith("/0.bin") and m["log"]["average_text"].count(".") == 1
    # both whole-process figures exist, with their scopes named
    assert m["whole_process_wall_s"] > 0 and doc["folder_run"]["whole_process_wall_s"] > 0
    assert "from start to exit" in m["whole_process_scope"] and "from start to exit" in doc["folder_run"]["scope"]
    assert set(doc["scopes"]) >= {"msame_per_execute", "pymfn_per_execute", "msame_whole_process",
                                  "pymfn_whole_process"}
    assert _temps(tmp) == []  # msame's and the folder run's temporary outputs are gone


def test_pairing_is_by_name_and_a_changed_row_is_named(om, msame_exe, inputs, tmp_path):
    """An earlier run's log and outputs (--log/--msame-output) against pymfn; one output file altered."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = _msame_double.environment("host")
    proc = subprocess.run([str(msame_exe), "--model", str(om), "--input", str(inputs), "--output",
                           str(tmp_path / "om_output")], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout
    (tmp_path / "msame.log").write_text(proc.stdout)
    run_dir = msame.find_run_dir(tmp_path / "om_output")
    row = np.fromfile(run_dir / "7_output_0.bin", np.float16)
    row[3] += np.float16(0.25)
    row.tofile(run_dir / "7_output_0.bin")
    out = tmp_path / "c.json"
    done = _bench(["--log", tmp_path / "msame.log", "--msame-output", tmp_path / "om_output", "--model", om,
                   "--input", inputs, "--json", out], msame_exe, tmp)
    assert done.returncode == 0, done.stderr
    c = json.loads(out.read_text())["outputs"]["timing pass vs msame"]
    assert c["rows_compared"] == FILES and c["rows_differing"] == 1 and c["first_differing"] == ["7"]
    assert c["max_abs_diff"] == pytest.approx(0.25, abs=2e-3)
    assert "1 of 12 rows differ" in done.stdout and "folder run" not in c  # no folder run without --run-msame
    assert "whole process wall (s)" in done.stdout


def test_failed_msame_run_is_reported_as_failed_not_averaged(om, msame_exe, inputs, tmp_path):
    # msame feeds every non-hidden file: a stray README fails its execute and, through msame's known bug,
    # every execute after it; msame still exits 0. pymfn reads only .bin files and is unaffected.
    (inputs / "3_notes").write_text("not an input")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "c.json"
    proc = _bench(["--run-msame", "--no-folder-run", "--model", om, "--input", inputs, "--json", out],
                  msame_exe, tmp)
    assert proc.returncode == 1
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pymfn bench msame: error: msame run failed:"), proc.stderr
    doc = json.loads(out.read_text())  # written before the failure is raised: nothing measured is lost
    m = doc["msame"]
    assert m["status"] == "failed"
    reasons = " ".join(m["failure_reasons"])
    assert "[ERROR]" in reasons and "executes failed" in reasons and "msame wrote outputs for" in reasons
    table = {line[:50].strip(): line[50:].split() for line in proc.stdout.splitlines() if line.startswith("mean")}
    assert all(v[0] == "FAILED" for v in table.values()), table  # msame's averages are not shown as results
    assert doc["pymfn"]["executes"] == FILES  # pymfn's side is complete
    c = doc["outputs"]["timing pass vs msame"]
    assert c["rows_differing"] == 0 and c["missing_in_msame"] and c["rows_compared"] + len(c["missing_in_msame"]) == FILES
    assert any("3_notes" in w for w in doc["warnings"]) and "3_notes" in proc.stdout
    assert _temps(tmp) == []


def test_msame_output_folder_that_does_not_exist_yet_and_kept_temporaries(om, msame_exe, inputs, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    target = tmp_path / "not" / "there" / "yet"
    proc = _bench(["--run-msame", "--no-folder-run", "--model", om, "--input", inputs, "--msame-output", target,
                   "--json", tmp_path / "c.json"], msame_exe, tmp)
    assert proc.returncode == 0, proc.stderr
    runs = [p for p in target.iterdir() if msame.parse_timestamp(p.name)]
    assert len(runs) == 1 and len(list(runs[0].glob("*_output_0.bin"))) == FILES  # the user's folder is kept
    # msame's stdout and stderr are kept beside its outputs, named after its run folder
    log = target / f"{runs[0].name}.log"
    assert "Inference average time" in log.read_text() and f"msame's log (stdout and stderr): {log}" in proc.stdout
    m = json.loads((tmp_path / "c.json").read_text())["msame"]
    assert m["log_file"] == str(log) and m["log_file_kept"] and m["emulator_report"] == []
    proc = _bench(["--run-msame", "--model", om, "--input", inputs, "--keep-outputs"], msame_exe, tmp)
    assert proc.returncode == 0, proc.stderr
    kept = _temps(tmp)
    assert len(kept) == 2 and all(f"kept temporary output folder {tmp / k}" in proc.stdout for k in kept)


@pytest.mark.parametrize("fault,reason", [
    ("leak", "pymfn's ACL emulator found resources msame left outstanding at aclFinalize (a leak): 1 device "
             "allocation(s)"),
    ("teardown-error", "1 [ERROR] line(s) after msame's summary (outside its timed run): [ERROR] destroy stream "
                       "failed: aclrtDestroyStream"),
])
def test_a_leak_or_an_error_outside_the_timed_run_fails_the_comparison(om, msame_exe, inputs, tmp_path, fault,
                                                                        reason):
    """Every execute succeeds and every output is right, yet msame's run is not clean: found in its kept log."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out, target = tmp_path / "c.json", tmp_path / "om_output"
    proc = _bench(["--run-msame", "--no-folder-run", "--model", om, "--input", inputs, "--msame-output", target,
                   "--json", out], msame_exe, tmp, fault=fault)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pymfn bench msame: error: msame run failed: "), proc.stderr
    assert reason in err[0] and "msame run FAILED" in proc.stdout
    doc = json.loads(out.read_text())
    m = doc["msame"]
    assert m["status"] == "failed" and any(reason in r for r in m["failure_reasons"]), m["failure_reasons"]
    assert len(m["failure_reasons"]) == 1  # nothing else was wrong: every file executed, every output written
    c = doc["outputs"]["timing pass vs msame"]
    assert (c["rows_compared"], c["rows_differing"]) == (FILES, 0)
    log = Path(m["log_file"])
    assert log.parent == target and m["log_file_kept"]
    text = log.read_text()
    if fault == "leak":
        assert m["emulator_report"][0] == "pymfn ACL emulator: aclFinalize found outstanding resources:"
        assert "1 dataset(s) not aclmdlDestroyDataset'd" in m["emulator_report"] and "outstanding resources" in text
    else:
        assert m["emulator_report"] == [] and "[ERROR] destroy stream failed" in text
    if fault == "leak":  # the same log, given back with --log, is judged the same way
        again = _bench(["--log", log], msame_exe, tmp)
        assert again.returncode == 1 and reason in again.stderr


def test_passes_and_warmup_are_exact(om, msame_exe, inputs, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "c.json"
    proc = _bench(["--model", om, "--input", inputs, "--passes", "3", "--warmup", "14", "--json", out], msame_exe, tmp)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())["pymfn"]
    assert doc["executes"] == 3 * FILES and doc["passes"] == 3
    order = sorted(f"{i}.bin" for i in range(FILES))  # msame's byte order: 0, 1, 10, 11, 2, ...
    assert doc["warmup_files"] == order + order[:2]  # warm-up cycles; it never shortens or shifts the passes
    assert "msame" not in json.loads(out.read_text())


def test_wrong_size_input_is_one_line_before_anything_runs(om, msame_exe, inputs, tmp_path):
    (inputs / "5.bin").write_bytes(b"\0" * 1000)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = _bench(["--run-msame", "--model", om, "--input", inputs, "--msame-output", tmp_path / "o"], msame_exe, tmp)
    assert proc.returncode == 1 and proc.stdout == ""
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "5.bin" in err[0] and "1000 bytes" in err[0], proc.stderr
    assert not (tmp_path / "o").exists()  # msame was not started


# ------------------------------------------------------------------------------------------------ the double

def test_double_behaves_like_msame_on_a_truncated_input(om, msame_exe, inputs, tmp_path):
    """Exit 0 with [ERROR] lines and no output for the bad file and every later one; averages of the rest."""
    (inputs / "5.bin").write_bytes(b"\0" * 1000)
    env = _msame_double.environment("host")
    proc = subprocess.run([str(msame_exe), "--model", str(om), "--input", str(inputs), "--output",
                           str(tmp_path / "o")], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0
    log = msame.parse_msame_log(proc.stdout)
    order = sorted(f"{i}.bin" for i in range(FILES))
    ok = order[:order.index("5.bin")]
    assert len(log.run_times_ms) == len(ok) and len(log.files) == FILES
    assert log.errors and "outstanding" not in proc.stderr
    written = sorted(p.name for p in msame.find_run_dir(tmp_path / "o").iterdir())
    assert written == sorted(f"{msame.input_stem(n)}_output_0.bin" for n in ok)
    reasons = log.failure_reasons(expected_files=FILES)
    assert any(f"{FILES - len(ok)} of {FILES} executes failed" in r for r in reasons)


def test_double_fails_outright_when_the_second_file_fails(om, msame_exe, inputs, tmp_path, monkeypatch):
    (inputs / "1.bin").write_bytes(b"\0" * 8)
    for key, value in _msame_double.environment("host").items():  # run_msame runs msame in this environment
        monkeypatch.setenv(key, value)
    res = msame.run_msame(om, inputs, tmp_path / "o", msame=msame_exe, check=False)
    assert res.returncode == 1 and "exited with code 1" in res.error and "Sample process failed" in res.error
    with pytest.raises(msame.MsameError, match="exited with code 1"):
        msame.run_msame(om, inputs, tmp_path / "o", msame=msame_exe)


# ------------------------------------------------------------------------------------------------ msame side only

LOG = """\
[INFO] start to process file:./bin_input/0.bin
[INFO] model execute success
Inference time: 1.514ms
[INFO] start to process file:./bin_input/1.bin
[INFO] model execute success
Inference time: 0.7421ms
[INFO] start to process file:./bin_input/10.bin
[INFO] model execute success
Inference time: 0.751ms
Inference average time : 1.00 ms
Inference average time without first time: 0.75 ms
"""


def _table(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        parts = line.rsplit(None, 2)
        if len(parts) == 3 and ("(ms)" in parts[0] or "(s)" in parts[0] or "files" in parts[0]):
            rows[parts[0].strip()] = parts[1:]
    return rows


def test_msame_figures_keep_msames_precision(tmp_path, capsys):
    (tmp_path / "run.log").write_text(LOG)
    out = tmp_path / "c.json"
    assert bench_main(["msame", "--log", str(tmp_path / "run.log"), "--json", str(out)]) == 0
    rows = _table(capsys.readouterr().out)
    assert rows["mean (ms), as msame printed it"][0] == "1.00"
    assert rows["mean without first (ms), as printed"][0] == "0.75"
    assert rows["mean (ms), from per-execute times"][0] == "1.002"  # (1.514 + 0.742 + 0.751) / 3 = 1.00237
    assert rows["mean without first (ms), from per-execute times"][0] == "0.747"
    doc = json.loads(out.read_text())
    assert doc["msame"]["log"]["average_text"] == "1.00" and doc["msame"]["status"] == "ok"


def test_log_warnings_reach_the_console(tmp_path, capsys):
    (tmp_path / "run.log").write_text(LOG.replace("time : 1.00 ms", "time : 3.00 ms"))
    out = tmp_path / "c.json"
    assert bench_main(["msame", "--log", str(tmp_path / "run.log"), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Warnings:" in text and "disagrees with the mean of 3 per-run lines" in text
    assert any("disagrees" in w for w in json.loads(out.read_text())["warnings"])


def test_failed_log_alone_exits_1_after_saving(tmp_path, capsys):
    bad = LOG.replace("Inference time: 0.751ms\n", "[ERROR] execute model failed, modelId is 1\n")
    (tmp_path / "run.log").write_text(bad)
    out = tmp_path / "c.json"
    assert bench_main(["msame", "--log", str(tmp_path / "run.log"), "--json", str(out)]) == 1
    cap = capsys.readouterr()
    assert cap.err.strip().count("\n") == 0 and "msame run failed: 1 [ERROR] line(s)" in cap.err
    assert "FAILED" in cap.out and json.loads(out.read_text())["msame"]["status"] == "failed"


def test_msame_output_with_missing_indices_is_a_failed_run(tmp_path, capsys):
    emb = np.ones((6, 4), np.float16)
    run = msame.write_msame_outputs(tmp_path / "om", range(6), emb, timestamp="20210915_104452")
    (run / "2_output_0.bin").unlink()
    assert bench_main(["msame", "--msame-output", str(tmp_path / "om")]) == 1
    cap = capsys.readouterr()
    assert "1 missing index(es): 2" in cap.out and "msame run failed" in cap.err


@pytest.mark.parametrize("args,message", [
    (["--run-msame"], "--run-msame needs --model and --input"),
    (["--model", "m.om"], "--model and --input go together"),
    (["--log", "x.log", "--run-msame", "--model", "m.om", "--input", "."], "--log and --run-msame"),
    (["--model", "m.pb", "--input", "."], "msame runs .om models only"),
    (["--model", "nope.om", "--input", "."], "--model nope.om: file not found"),
    (["--msame-output", "nowhere"], "--msame-output nowhere: does not exist"),
    (["--log", "missing.log"], "--log missing.log: "),
    (["--log", "x.log", "--passes", "0"], "--passes must be >= 1"),
    (["--log", "x.log", "--warmup", "-1"], "--warmup must be >= 0"),
    (["--log", "x.log", "--json", str(Path("sub"))], "--json sub: is an existing directory"),
    ([], "give --log and/or --msame-output"),
])
def test_bad_arguments_are_one_line(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.log").write_text(LOG)
    (tmp_path / "sub").mkdir()
    assert bench_main(["msame", *args]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err, err


def test_a_failing_pymfn_folder_run_keeps_msames_figures(om, msame_exe, inputs, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "c.json"
    proc = _bench(["--run-msame", "--model", om, "--input", inputs, "--pymfn-output", "/proc/pymfn-cannot-write",
                   "--json", out], msame_exe, tmp)
    assert proc.returncode == 1
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "pymfn folder run" in err[0], proc.stderr
    doc = json.loads(out.read_text())
    assert doc["msame"]["status"] == "ok" and len(doc["msame"]["log"]["run_times_ms"]) == FILES
    assert doc["pymfn"]["executes"] == FILES and "folder_run" not in doc
    assert any("pymfn folder run" in w for w in doc["warnings"])

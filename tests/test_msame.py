"""pymfn.inputs.msame: msame's output folders (both timestamp formats, BIN and TXT), its logs (folder and loop
mode) and running it. The log texts below follow msame's printf/ostream formats exactly."""
from __future__ import annotations

import re

import datetime as dt
import os
import stat
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pymfn.inputs import msame
from pymfn.cli import main as cli_main

FOLDER_LOG = """\
[INFO] acl init success
[INFO] open device 0 success
[INFO] load model ./tf_MobileFaceNet.om success
[INFO] create model description success
[INFO] get input dynamic gear count success
[INFO] create model output success
./om_output//2022113_9_31_13_612340
[INFO] start to process file:./bin_input/0.bin
[INFO] model execute success
Inference time: 1.514ms
[INFO] get max dynamic batch size success
[INFO] output data success
[INFO] destroy model input success
[INFO] start to process file:./bin_input/1.bin
[INFO] model execute success
Inference time: 0.742ms
[INFO] output data success
[INFO] start to process file:./bin_input/10.bin
[INFO] model execute success
Inference time: 0.751ms
[INFO] output data success
Inference average time : 1.00 ms
Inference average time without first time: 0.75 ms
[INFO] unload model success, model Id is 1
[INFO] Execute sample success
[INFO] end to destroy stream
[INFO] end to destroy context
[INFO] end to reset device is 0
[INFO] end to finalize acl
"""

LOOP_LOG = """\
[INFO] output data success
Inference time: 105.386ms
[INFO] model execute success
Inference time: 105.419ms
[INFO] model execute success
Inference time: 105.323ms
[INFO] output data success
Inference average time: 105.376000 ms
Inference average time without first time: 105.371000 ms
[INFO] unload model success, model Id is 1
[INFO] Execute sample success.
Test Finish!
"""


# ------------------------------------------------------------------------------------------ logs


def _cli_error(capsys, argv: list[str]) -> str:
    """The one stderr line of a failing ``pymfn`` command, without its ``pymfn <cmd>: error: `` prefix."""
    capsys.readouterr()
    assert cli_main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    prefix = f"pymfn {argv[0]}: error: "
    assert err.startswith(prefix), err
    return err[len(prefix):].rstrip("\n")

def test_folder_mode_log():
    log = msame.parse_msame_log(FOLDER_LOG)
    assert log.mode == "folder"
    assert log.run_times_ms == [1.514, 0.742, 0.751]
    assert log.average_ms == 1.00 and log.average_without_first_ms == 0.75
    assert log.files == ["./bin_input/0.bin", "./bin_input/1.bin", "./bin_input/10.bin"]
    assert log.errors == [] and log.warnings == []
    assert log.recomputed_without_first_ms() == pytest.approx(0.7465)


def test_loop_mode_log_and_indentation():
    indented = textwrap.indent(LOOP_LOG, "    ")  # as pasted into a README
    for text in (LOOP_LOG, indented):
        log = msame.parse_msame_log(text)
        assert log.mode == "loop" and len(log.run_times_ms) == 3
        assert log.average_ms == pytest.approx(105.376) and log.average_without_first_ms == pytest.approx(105.371)
        assert log.warnings == []


def test_single_file_has_no_without_first_line():
    text = "Inference time: 2.5ms\nInference average time : 2.50 ms\n"
    log = msame.parse_msame_log(text)
    assert log.average_without_first_ms is None and log.warnings == [] and log.recomputed_without_first_ms() is None


def test_inconsistent_log_is_flagged():
    text = "Inference time: 1ms\nInference time: 1ms\nInference average time : 3.00 ms\n" \
           "Inference average time without first time: 1.00 ms\n"
    log = msame.parse_msame_log(text)
    assert any("disagrees" in w for w in log.warnings)


def test_unfinished_log_is_an_error():
    with pytest.raises(msame.MsameError, match="did not finish.*model execute failed"):
        msame.parse_msame_log("Inference time: 1ms\n[ERROR] model execute failed\n")


def test_several_runs_in_one_log():
    runs = msame.parse_msame_logs(FOLDER_LOG + LOOP_LOG)
    assert [r.mode for r in runs] == ["folder", "loop"]
    assert len(runs[0].run_times_ms) == 3 and len(runs[1].run_times_ms) == 3
    with pytest.raises(msame.MsameError, match="2 runs"):
        msame.parse_msame_log(FOLDER_LOG + LOOP_LOG)


# ------------------------------------------------------------------------------------------ timestamps

def test_timestamp_formats():
    assert msame.parse_timestamp("20210915_104452") == [dt.datetime(2021, 9, 15, 10, 44, 52)]
    assert msame.parse_timestamp("2022113_9_31_13_612340") == [dt.datetime(2022, 1, 13, 9, 31, 13, 612340),
                                                                dt.datetime(2022, 11, 3, 9, 31, 13, 612340)]
    assert msame.parse_timestamp("20221231_23_59_59_0") == [dt.datetime(2022, 12, 31, 23, 59, 59)]
    assert msame.parse_timestamp("2022101_0_0_0_5") == [dt.datetime(2022, 10, 1, 0, 0, 0, 5)]  # not 2022-1-01
    assert msame.parse_timestamp("outputs") == [] and msame.parse_timestamp("20211340_104452") == []
    when = dt.datetime(2022, 1, 3, 9, 5, 7, 42)
    assert msame.format_timestamp(when) == "202213_9_5_7_42"
    assert msame.format_timestamp(when, "old") == "20220103_090507"
    assert when in msame.parse_timestamp(msame.format_timestamp(when))


# ------------------------------------------------------------------------------------------ folders

def _emb(n: int, k: int = 128, seed: int = 0) -> np.ndarray:
    e = np.random.default_rng(seed).standard_normal((n, k)).astype(np.float32)
    return (e / np.linalg.norm(e, axis=1, keepdims=True)).astype(np.float16)


def _write_bins(run: Path, emb: np.ndarray) -> None:
    run.mkdir(parents=True)
    for i, row in enumerate(emb):
        row.tofile(run / f"{i}_output_0.bin")


@pytest.mark.parametrize("stamp", ["2022113_9_31_13_612340", "20210915_104452"])
def test_read_bin_run_in_natural_order(tmp_path, stamp):
    emb = _emb(12)
    _write_bins(tmp_path / stamp, emb)
    res = msame.read_msame_outputs(tmp_path, "float16")
    assert res.run_dir == tmp_path / stamp and res.timestamp == stamp and res.fmt == "BIN"
    assert res.stems == [str(i) for i in range(12)]  # 2 before 10, unlike msame's own lexicographic scan
    assert res.outputs[0].dtype == np.float16 and np.array_equal(res.outputs[0], emb)
    # the run folder itself works too, and the bench's short name returns the array
    assert np.array_equal(msame.read_outputs(tmp_path / stamp), emb)
    assert msame.is_msame_output(tmp_path) and msame.is_msame_output(tmp_path / stamp)
    assert not msame.is_msame_output(tmp_path / "nope")


def test_read_txt_as_msame_prints_it(tmp_path):
    emb = _emb(3, 8)
    run = tmp_path / "2023510_14_2_9_77"
    run.mkdir()
    for i, row in enumerate(emb):
        # msame: aclFloat16ToFloat, ostream default (6 significant digits), a space after every value
        (run / f"{i}_output_0.txt").write_text("".join(f"{float(v):g} " for v in row) + "\n")
    res = msame.read_msame_outputs(tmp_path, "float16")
    assert res.fmt == "TXT" and np.array_equal(res.outputs[0], emb)


def test_read_txt_of_old_msame_printing_fp16_bits(tmp_path):
    emb = _emb(2, 8)
    run = tmp_path / "20200101_000000"
    run.mkdir()
    for i, row in enumerate(emb):
        (run / f"{i}_output_0.txt").write_text(" ".join(str(int(b)) for b in row.view(np.uint16)) + " ")
    res = msame.read_msame_outputs(tmp_path, "float16", txt_fp16_bits=True)
    assert np.array_equal(res.outputs[0], emb)


@pytest.mark.parametrize("fmt", ["BIN", "TXT"])
def test_round_trip_through_write_msame_outputs(tmp_path, fmt):
    emb = _emb(11)
    extra = np.arange(11 * 6, dtype=np.float32).reshape(11, 2, 3) / 7  # a second model output
    when = dt.datetime(2024, 2, 29, 23, 1, 2, 3)
    run = msame.write_msame_outputs(tmp_path / "om_output", range(11), [emb, extra], fmt=fmt, timestamp=when)
    assert run == tmp_path / "om_output" / "2024229_23_1_2_3"
    assert sorted(p.name for p in run.iterdir())[:3] == [f"0_output_0.{fmt.lower()}", f"0_output_1.{fmt.lower()}",
                                                         f"10_output_0.{fmt.lower()}"]
    res = msame.read_msame_outputs(tmp_path / "om_output", "float16")
    assert np.array_equal(res.outputs[0], emb)
    got1 = msame.read_msame_outputs(tmp_path / "om_output", "float32").outputs[1].reshape(11, 2, 3)
    if fmt == "BIN":
        # the reference calculate_om_acc reads exactly like this
        ref = np.stack([np.fromfile(run / f"{i}_output_0.bin", np.float16) for i in range(11)])
        assert np.array_equal(ref, emb)
        assert np.array_equal(got1, extra)
    else:
        np.testing.assert_allclose(got1, extra, rtol=1e-5)  # msame's 6 significant digits
        assert (run / "0_output_1.txt").read_text() == "0 0.142857 0.285714 \n0.428571 0.571429 0.714286 \n"
    with pytest.raises(FileExistsError):
        msame.write_msame_outputs(tmp_path / "om_output", range(11), emb, fmt=fmt, timestamp=when)


def test_write_rejects_bad_arguments(tmp_path):
    emb = _emb(3)
    with pytest.raises(ValueError, match="expected 4 rows"):
        msame.write_msame_outputs(tmp_path, range(4), emb)
    with pytest.raises(ValueError, match="fmt"):
        msame.write_msame_outputs(tmp_path, range(3), emb, fmt="CSV")
    with pytest.raises(ValueError, match="timestamp"):
        msame.write_msame_outputs(tmp_path, range(3), emb, timestamp="latest")
    with pytest.raises(ValueError, match="unique"):
        msame.write_msame_outputs(tmp_path, ["a", "a", "b"], emb)
    assert list(tmp_path.iterdir()) == []


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(msame.MsameError, match="does not exist"):
        msame.read_msame_outputs(tmp_path / "absent")
    with pytest.raises(msame.MsameError, match="no msame output files"):
        msame.read_msame_outputs(tmp_path)
    (tmp_path / "20210915_104452").mkdir()
    with pytest.raises(msame.MsameError, match="20210915_104452: no msame output files"):
        msame.read_msame_outputs(tmp_path)


def test_missing_index_is_named(tmp_path):
    run = tmp_path / "20210915_104452"
    _write_bins(run, _emb(30))
    (run / "17_output_0.bin").unlink()
    with pytest.raises(msame.MsameError, match=r"1 missing index\(es\): 17"):
        msame.read_msame_outputs(tmp_path)
    with pytest.raises(msame.MsameError, match="0..39.*missing"):
        msame.read_msame_outputs(tmp_path, count=40)


def test_numbering_from_one_needs_first_index(tmp_path):
    run = tmp_path / "20210915_104452"
    run.mkdir()
    emb = _emb(4)
    for i, row in enumerate(emb, start=1):
        row.tofile(run / f"{i}_output_0.bin")
    with pytest.raises(msame.MsameError, match="missing index.*: 0 .*first_index=1"):
        msame.read_msame_outputs(tmp_path)
    assert np.array_equal(msame.read_msame_outputs(tmp_path, first_index=1, count=4).outputs[0], emb)
    emb[0].tofile(run / "01_output_0.bin")
    with pytest.raises(msame.MsameError, match="more than once"):
        msame.read_msame_outputs(tmp_path, first_index=1)


def test_wrong_file_sizes(tmp_path):
    run = tmp_path / "20210915_104452"
    _write_bins(run, _emb(5))
    with open(run / "3_output_0.bin", "ab") as f:
        f.write(b"\0\0")
    with pytest.raises(msame.MsameError, match=r"3_output_0.bin: output 0 has 129 float16 elements"):
        msame.read_msame_outputs(tmp_path)
    with open(run / "3_output_0.bin", "ab") as f:
        f.write(b"\0")
    with pytest.raises(msame.MsameError, match=r"3_output_0.bin: 259 bytes is not a whole number"):
        msame.read_msame_outputs(tmp_path)
    run2 = tmp_path / "x" / "20210915_104452"
    _write_bins(run2, _emb(5, 64))
    with pytest.raises(msame.MsameError, match="64 float16 elements per file, expected 128"):
        msame.read_msame_outputs(run2, elements=128)


def test_mixed_formats_and_missing_output(tmp_path):
    run = tmp_path / "20210915_104452"
    _write_bins(run, _emb(3))
    (run / "0_output_0.txt").write_text("1 2 3")
    with pytest.raises(msame.MsameError, match="both .bin and .txt"):
        msame.read_msame_outputs(tmp_path)
    assert msame.read_msame_outputs(tmp_path, fmt="BIN").outputs[0].shape == (3, 128)
    (run / "0_output_0.txt").unlink()
    _emb(1, 4).tofile(run / "1_output_1.bin")
    with pytest.raises(msame.MsameError, match="input '0' lacks output"):
        msame.read_msame_outputs(tmp_path)


def test_several_runs_pick_the_newest_only_when_certain(tmp_path):
    old, new = tmp_path / "20210915_104452", tmp_path / "20221231_23_59_59_0"
    _write_bins(old, _emb(2, seed=1))
    _write_bins(new, _emb(2, seed=2))
    res = msame.read_msame_outputs(tmp_path)
    assert res.run_dir == new and np.array_equal(res.outputs[0], _emb(2, seed=2))
    assert res.other_runs == [old.name]
    assert msame.read_msame_outputs(tmp_path, run=old.name).run_dir == old
    _write_bins(tmp_path / "2022113_1_0_0_0", _emb(2, seed=3))  # 2022-1-13 or 2022-11-3
    _write_bins(tmp_path / "2022115_1_0_0_0", _emb(2, seed=4))  # 2022-1-15 or 2022-11-5
    assert msame.read_msame_outputs(tmp_path).run_dir == new  # still newest whatever the reading
    (new / "0_output_0.bin").unlink()
    (new / "1_output_0.bin").unlink()
    new.rmdir()
    with pytest.raises(msame.MsameError, match="ambiguous.*run="):
        msame.read_msame_outputs(tmp_path)
    with pytest.raises(msame.MsameError, match="not found"):
        msame.read_msame_outputs(tmp_path, run="20200101_000000")


# ------------------------------------------------------------------------------------------ running msame

def test_without_msame_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("PYMFN_MSAME", raising=False)
    model = tmp_path / "m.om"
    model.write_bytes(b"x")
    with pytest.raises(msame.MsameNotFoundError, match="msame not found on PATH"):
        msame.run_msame(model, tmp_path, tmp_path / "out")
    monkeypatch.setenv("PYMFN_MSAME", str(tmp_path / "nope"))
    with pytest.raises(msame.MsameNotFoundError, match="nope"):
        msame.find_msame()


# A stand-in for the msame executable (none exists off Ascend hardware): same flags, same folder layout,
# same log lines; its "model" copies the first 8 bytes of each input to the output.
_STANDIN = """#!{python}
import os, sys, time
sys.path.insert(0, {root!r})
import numpy as np
from pymfn.inputs.msame import write_msame_outputs
a = dict(zip(sys.argv[1::2], sys.argv[2::2]))
assert ".om" in a["--model"]
if a.get("--device", "0") != "0":
    print("[ERROR] open device " + a["--device"] + " failed"); sys.exit(1)
names = sorted(n for n in os.listdir(a["--input"]) if not n.startswith("."))
outs, times = [], []
for n in names:
    print("[INFO] start to process file:" + os.path.join(a["--input"], n))
    data = np.fromfile(os.path.join(a["--input"], n), np.uint8)[:8]
    t0 = time.time(); outs.append(data.view(np.float16).copy()); t = (time.time() - t0) * 1000 + 0.5
    times.append(t); print("Inference time: %g" % t + "ms")
write_msame_outputs(a["--output"], [n.rsplit(".", 1)[0] for n in names], np.stack(outs), fmt=a["--outfmt"])
print("Inference average time : %.2f ms" % (sum(times) / len(times)))
if len(times) > 1:
    print("Inference average time without first time: %.2f ms" % ((sum(times) - times[0]) / (len(times) - 1)))
"""


def test_run_msame_with_a_stand_in(tmp_path, monkeypatch):
    exe = tmp_path / "bin" / "msame"
    exe.parent.mkdir()
    exe.write_text(_STANDIN.format(python=sys.executable, root=str(Path(msame.__file__).parent.parent)))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{exe.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.delenv("PYMFN_MSAME", raising=False)
    inputs = tmp_path / "bin_input"
    inputs.mkdir()
    vals = _emb(12, 4)
    for i in range(12):
        vals[i].tofile(inputs / f"{i}.bin")
    model = tmp_path / "tf_MobileFaceNet.om"
    model.write_bytes(b"IMOD")
    res = msame.run_msame(model, inputs, tmp_path / "om_output")
    assert res.returncode == 0 and res.log.mode == "folder" and len(res.log.run_times_ms) == 12
    assert res.log.files[:3] == [str(inputs / "0.bin"), str(inputs / "1.bin"), str(inputs / "10.bin")]
    assert res.run_dir is not None and res.run_dir.parent == tmp_path / "om_output"
    assert np.array_equal(msame.read_outputs(res.run_dir), vals)
    with pytest.raises(msame.MsameError, match=r"exited with code 1(.|\n)*open device 3 failed"):
        msame.run_msame(model, inputs, tmp_path / "om_output", device=3)
    with pytest.raises(msame.MsameError, match="containing '.om'"):
        msame.run_msame(tmp_path / "model.bin", inputs, tmp_path / "om_output")


# ------------------------------------------------------------------------------------------ CLI

def test_cli_read_and_log(tmp_path, capsys):
    emb = _emb(4)
    msame.write_msame_outputs(tmp_path / "out", range(4), emb, timestamp="20210915_104452")
    assert cli_main(["msame", "read", str(tmp_path / "out"), "--count", "4", "--out", str(tmp_path / "e.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "e.npy"), emb)
    (tmp_path / "run.log").write_text(FOLDER_LOG)
    assert cli_main(["msame", "log", str(tmp_path / "run.log")]) == 0
    assert "folder mode, 3 executes, average 1.0 ms, without first 0.75 ms" in capsys.readouterr().out
    assert re.search("does not exist", _cli_error(capsys, ["msame", "read", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.npy")]))


@pytest.mark.parametrize("module", [["pymfn", "msame"]])
def test_cli_errors_are_one_prefixed_line(tmp_path, module):
    """`python -m pymfn msame` prints `pymfn msame: error: ...`, one line."""
    import subprocess

    missing = tmp_path / "nothing"
    proc = subprocess.run([sys.executable, "-m", *module, "read", str(missing), "--out", str(tmp_path / "x.npy")],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [f"pymfn msame: error: {missing}: msame output folder does not exist"]


def test_cli_checks_options_before_reading(tmp_path, capsys):
    """--count/--first-index/--output-index/--out are refused by name before the folder is read (a negative
    --count used to come back as 'expected inputs 0..-2'; a bad --out only after every file was read)."""
    emb = _emb(4)
    msame.write_msame_outputs(tmp_path / "out", range(4), emb, timestamp="20210915_104452")
    base = ["read", str(tmp_path / "out"), "--out", str(tmp_path / "e.npy")]
    for extra, option in [(["--count", "-1"], "--count -1"), (["--count", "0"], "--count 0"),
                          (["--first-index", "-2"], "--first-index -2"), (["--output-index", "-1"], "--output-index -1"),
                          (["--output-index", "1"], "--output-index 1"), (["--dtype", "str"], "--dtype")]:
        assert _cli_error(capsys, ["msame", *base, *extra]).startswith(option)
    (tmp_path / "adir").mkdir()
    assert re.search(f"--out {tmp_path / 'adir'}: is an existing directory", _cli_error(capsys, ["msame", "read", str(tmp_path / "out"), "--out", str(tmp_path / "adir")]))
    assert not (tmp_path / "e.npy").exists()


def test_cli_log_names_the_file(tmp_path, capsys):
    bad = tmp_path / "not-a-log.txt"
    bad.write_text("hello\n")
    assert re.search(f"^{bad}: no 'Inference average time' line", _cli_error(capsys, ["msame", "log", str(bad)]))


# ------------------------------------------------------------------------------------------ hostile inputs
# Each of these failed before the parsers were hardened: a hang (quadratic regex), a huge allocation driven by
# a file name, or an exception other than MsameError escaping.

def _time_limited(fn, seconds: float):
    """Run ``fn`` and fail if it takes longer than ``seconds`` (a hang guard, not a speed assertion)."""
    import time

    t0 = time.monotonic()
    result = fn()
    assert time.monotonic() - t0 < seconds, "the parser took far too long: non-linear behaviour"
    return result


def test_log_parsing_is_linear_in_blank_lines_and_long_lines():
    # 200,000 blank lines took ~4 minutes with "^\s*" under re.M; so did a long whitespace run after
    # "start to process file:".
    blank = "Inference time: 1ms\n" + "\n" * 200_000 + "Inference average time : 1.00 ms\n"
    log = _time_limited(lambda: msame.parse_msame_log(blank), 10)
    assert log.run_times_ms == [1.0]
    spaced = "[INFO] start to process file:./a.bin" + " " * 200_000 + "x\nInference average time : 1.00 ms\n"
    log = _time_limited(lambda: msame.parse_msame_log(spaced), 10)
    assert log.files == ["./a.bin" + " " * 200_000 + "x"]


def test_printed_averages_are_kept_as_text():
    log = msame.parse_msame_log(FOLDER_LOG)
    assert log.average_text == "1.00" and log.average_without_first_text == "0.75"
    assert log.recomputed_average_ms() == pytest.approx((1.514 + 0.742 + 0.751) / 3)


def test_failure_reasons_of_a_run_msame_reported_as_success():
    # msame's known bug: one bad input makes every later execute fail, and it still exits 0 with averages
    text = ("[INFO] start to process file:in/0.bin\n[INFO] model execute success\nInference time: 1.5ms\n"
            "[INFO] start to process file:in/1.bin\n[ERROR] execute model failed, modelId is 1\n"
            "[ERROR] model execute failed\n"
            "[INFO] start to process file:in/2.bin\n[ERROR] execute model failed, modelId is 1\n"
            "[ERROR] model execute failed\nInference average time : 1.50 ms\n")
    log = msame.parse_msame_log(text)
    reasons = log.failure_reasons(expected_files=4)
    assert any("4 [ERROR] line(s)" in r for r in reasons)
    assert any("2 of 3 executes failed" in r for r in reasons)
    assert any("processed 3 files, the input folder has 4" in r for r in reasons)
    assert msame.parse_msame_log(FOLDER_LOG).failure_reasons(expected_files=3) == []
    nan = msame.parse_msame_log("[ERROR] model execute failed\nInference average time : -nan ms\n")
    assert any("no execute succeeded" in r for r in nan.failure_reasons())


def test_huge_numbers_in_file_names_do_not_allocate(tmp_path):
    run = tmp_path / "20210915_104452"
    run.mkdir()
    _emb(1)[0].tofile(run / "99999999999_output_0.bin")  # used to build a set of 10^11 indices
    with pytest.raises(msame.MsameError, match=r"99999999999 missing index\(es\): 0, 1, 2"):
        _time_limited(lambda: msame.read_msame_outputs(tmp_path), 10)
    (run / "99999999999_output_0.bin").rename(run / "0_output_999999999.bin")  # used to walk 10^9 outputs
    with pytest.raises(msame.MsameError, match="0_output_999999999.bin: output index 999999999 is not a plausible"):
        _time_limited(lambda: msame.read_msame_outputs(tmp_path), 10)


def test_odd_names_are_names_not_numbers(tmp_path):
    run = tmp_path / "20210915_104452"
    run.mkdir()
    _emb(1)[0].tofile(run / "\u00b2_output_0.bin")  # "²".isdigit() is True but int("²") raised ValueError
    _emb(1)[0].tofile(run / ("7" * 40 + "_output_0.bin"))
    assert msame.read_msame_outputs(tmp_path).stems == ["7" * 40, "\u00b2"]
    (run / "0_output_0.bin\n").write_bytes(b"\0\0")  # a newline in the name is not "0_output_0.bin"
    assert len(msame.read_msame_outputs(tmp_path).stems) == 2
    _emb(1)[0].tofile(run / ("7" * 40 + "_output_00.bin"))
    with pytest.raises(msame.MsameError, match="are both output 0 of input"):
        msame.read_msame_outputs(tmp_path)


def test_non_ascii_txt_is_an_msame_error(tmp_path):
    run = tmp_path / "20210915_104452"
    run.mkdir()
    (run / "0_output_0.txt").write_bytes(b"\xff\xfe1 2")  # raised UnicodeDecodeError before
    with pytest.raises(msame.MsameError, match=r"0_output_0.txt: not an msame TXT output \(byte 0"):
        msame.read_msame_outputs(tmp_path)
    (run / "0_output_0.txt").write_text("1_000 2")  # Python's float() accepts it, msame never writes it
    with pytest.raises(msame.MsameError, match="'_' inside a number"):
        msame.read_msame_outputs(tmp_path)


@pytest.mark.parametrize("fmt", ["bin", "txt"])
def test_nan_and_inf_name_the_file(tmp_path, fmt):
    run = tmp_path / "20210915_104452"
    emb = _emb(6)
    emb[4, 9] = np.inf
    if fmt == "bin":
        _write_bins(run, emb)
    else:
        run.mkdir()
        for i, row in enumerate(emb):
            (run / f"{i}_output_0.txt").write_text(" ".join(f"{float(v):g}" for v in row))
    with pytest.raises(msame.MsameError, match=rf"4_output_0.{fmt}: element 9 is inf \(NaN/Inf\)"):
        msame.read_msame_outputs(tmp_path)
    got = msame.read_msame_outputs(tmp_path, allow_nonfinite=True).outputs[0]
    assert np.isinf(got[4, 9]) and np.array_equal(got[:4], emb[:4])


def test_txt_values_that_do_not_fit_the_dtype(tmp_path):
    run = tmp_path / "20210915_104452"
    run.mkdir()
    (run / "0_output_0.txt").write_text("1 70000 3")  # float16 max is 65504: was silently inf
    with pytest.raises(msame.MsameError, match="value 70000 .element 1. does not fit float16"):
        msame.read_msame_outputs(tmp_path)
    (run / "0_output_0.txt").write_text("1 300 3")
    with pytest.raises(msame.MsameError, match="outside the int8 range"):
        msame.read_msame_outputs(tmp_path, "int8")
    with pytest.raises(msame.MsameError, match="not a numpy dtype"):
        msame.read_msame_outputs(tmp_path, "float17")


def test_incomplete_runs_can_be_read_for_pairing_by_name(tmp_path):
    run = tmp_path / "20210915_104452"
    _write_bins(run, _emb(5))
    (run / "2_output_0.bin").unlink()
    with pytest.raises(msame.MsameError, match="missing index"):
        msame.read_msame_outputs(tmp_path)
    res = msame.read_msame_outputs(tmp_path, complete=False)
    assert res.stems == ["0", "1", "3", "4"] and res.files[0][2].name == "3_output_0.bin"


def test_unreadable_folder_is_an_msame_error(tmp_path, monkeypatch):
    run = tmp_path / "20210915_104452"
    _write_bins(run, _emb(2))

    def denied(path):  # what os.scandir raises for a folder without read permission (tests run as root)
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(msame.os, "scandir", denied)
    with pytest.raises(msame.MsameError, match="20210915_104452: cannot list the folder .Permission denied"):
        msame.read_msame_outputs(run)
    assert not msame.is_msame_output(run)


def test_timestamps_need_the_whole_name():
    assert msame.parse_timestamp("20210915_104452\n") == []
    assert msame.parse_timestamp("2021\u0669915_104452") == []  # Arabic-Indic digit: \d matched it


def test_input_stem_is_msames():
    assert msame.input_stem("0.bin") == "0" and msame.input_stem("a.b.bin") == "a.b"
    assert msame.input_stem("noext") == "noext"

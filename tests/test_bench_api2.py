"""The Python API behind `pymfn bench accuracy|sweep|msame|regress`: each callable as ``pymfn.bench.<name>(...)``,
its result rendering exactly what the command prints and writes, errors naming parameters (options under the
command line), and the docstring examples run as doctests."""
from __future__ import annotations

import doctest
import io
import json
from pathlib import Path

import numpy as np
import pytest

import _msame_double
import pymfn.bench as b
from pymfn import config
from pymfn.bench.naming import option_names
from pymfn.cli import main as pymfn_main
from pymfn.errors import CommandError
from test_msame_compare import LOG, emulator, inputs, msame_exe, om  # noqa: F401 - pytest fixtures
from test_openvino_engine import write_tiny_pb
from test_quantize import write_lfw_style
from test_regress import _saved_sides

# Docstring examples that need the shared lfw.bin carry this flag; without LFW they are left out (and said so).
SKIP_WITHOUT_LFW = doctest.register_optionflag("SKIP_WITHOUT_LFW")
API = [b.accuracy, b.sweep, b.msame_compare, b.regress]


def _doctest(fn, *, lfw: bool) -> doctest.TestResults:
    """Run ``fn``'s docstring examples: those without the LFW flag, or (``lfw``) all of them."""
    (test,) = doctest.DocTestFinder(recurse=False).find(fn, fn.__name__, globs={})
    if not lfw:
        test.examples = [ex for ex in test.examples if not ex.options.get(SKIP_WITHOUT_LFW)]
    out = io.StringIO()
    result = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS).run(test, out=out.write)
    assert result.failed == 0, out.getvalue()
    return result


@pytest.mark.parametrize("fn", API, ids=lambda f: f.__name__)
def test_every_public_function_has_a_runnable_example(fn):
    assert ">>> " in (fn.__doc__ or ""), f"{fn.__name__} has no example"
    if fn is b.sweep:  # its example measures: LFW only
        return
    assert _doctest(fn, lfw=False).attempted >= 3


@pytest.mark.slow
@pytest.mark.parametrize("fn", [b.accuracy, b.sweep], ids=lambda f: f.__name__)
def test_lfw_examples(fn):
    if not config.lfw_bin_path().is_file():
        pytest.skip(f"no shared lfw.bin at {config.lfw_bin_path()} (set PYMFN_SHARED)")
    _doctest(fn, lfw=True)


# ------------------------------------------------------------------------------------------------ accuracy

@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("api2")
    return {"pb": write_tiny_pb(d / "tiny.pb"), "lfw": write_lfw_style(d / "mini_lfw.bin", 60)}


def _cli(argv: list[str], capsys) -> tuple[int, str, str]:
    rc = pymfn_main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def _strip_volatile(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k not in ("embed_s", "total_s", "images_per_s", "decode_s", "host")}


def test_accuracy_of_a_model_renders_what_the_command_prints(tiny, tmp_path, capsys):
    r = b.accuracy(tiny["pb"], data=tiny["lfw"], pairs=20, batch=4)
    assert isinstance(r, b.AccuracyResult) and r.kind == "accuracy"
    assert r.pairs == 20 and len(r.fold_accuracy) == 10 and 0.0 <= r.accuracy <= 1.0
    assert r.engine == "openvino" and r.batch == 4 and r.images_embedded == 40
    assert r.best_threshold == float(np.median(r.thresholds)) and r.precision_report["check"] == "ok"
    doc = json.loads(r.to_json())
    assert doc["pairs"] == 20 and doc["source"] == "lfw.bin (RGB)" and doc["model"] == str(tiny["pb"])
    assert r.csv_rows()[0]["accuracy"] == r.accuracy and r.to_csv().startswith("accuracy,")
    assert r.plot(tmp_path / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the command line: the same report (plus where it saved), the same JSON keys and figures
    rc, out, _ = _cli(["bench", "accuracy", "--model", str(tiny["pb"]), "--data", str(tiny["lfw"]), "--pairs", "20",
                       "--batch", "4", "--quiet", "--json", str(tmp_path / "a.json")], capsys)
    assert rc == 0
    cli_doc = json.loads((tmp_path / "a.json").read_text())
    assert list(cli_doc) == list(doc) and _strip_volatile(cli_doc) == _strip_volatile(doc)
    volatile = ("  embedding", "  whole run", "  host")
    keep = [line for line in r.report().splitlines() if not line.startswith(volatile)]
    assert [line for line in out.splitlines() if not line.startswith(volatile)] == keep + [
        f"JSON written to {tmp_path / 'a.json'}"]


def test_accuracy_of_embeddings_needs_no_model():
    rng = np.random.default_rng(1)
    faces = rng.standard_normal((30, 16))
    emb = np.repeat(faces, 2, axis=0) + 0.05 * rng.standard_normal((60, 16))
    labels = np.ones(30, bool)
    emb[1::4] = rng.standard_normal((15, 16))
    labels[::2] = False
    r = b.accuracy(emb, issame=labels)
    assert (r.pairs, r.accuracy, r.model, r.engine) == (30, 1.0, None, None)
    assert r.report().splitlines()[0] == "LFW verification — embeddings"
    assert b.accuracy(emb, issame=labels, pairs=20).pairs == 20


@pytest.mark.parametrize("kwargs, python, cli", [
    ({"data": "/nonexistent/lfw.bin"}, "data: /nonexistent/lfw.bin does not exist", "--data: /nonexistent/lfw.bin"),
    ({"data": ".", "pairs": 5}, "pairs 5: the 10-fold protocol needs at least 20", "--pairs 5: the 10-fold"),
    ({"data": ".", "flip_mode": "avg"}, "flip_mode 'avg': expected one of sum, concat", "--flip-mode 'avg'"),
])
def test_accuracy_errors_name_the_parameter_or_the_option(kwargs, python, cli):
    with pytest.raises(CommandError, match="^" + python.replace("(", r"\(")):
        b.accuracy(**kwargs)
    with option_names(), pytest.raises(CommandError, match="^" + cli):
        b.accuracy(**kwargs)
    with pytest.raises(CommandError, match="issame: required"):
        b.accuracy(np.zeros((40, 8)))


# ------------------------------------------------------------------------------------------------ sweep

def test_tiny_sweep_result_rows_csv_and_report(tiny, tmp_path):
    settings = b.SweepSettings(rows=["f32"], batches=[1, 2], rounds=1, seconds=0.1, pairs=20)
    lines: list[str] = []
    r = b.sweep(tiny["pb"], data=tiny["lfw"], settings=settings, progress=lines.append)
    assert isinstance(r, b.SweepResult) and [row.key for row in r.rows] == ["f32"]
    row = r.row("f32")
    assert row.status == "ok", row.status
    assert row.accuracy is not None and row.throughput > 0 and row.best_batch in (1, 2)
    assert len(row.throughput_rounds) == 1 and row.latency_p99_ms >= row.latency_median_ms
    assert any(line.startswith("sweep: 1 of 1 rows run") for line in lines)
    csv_rows = r.csv_rows()
    assert len(csv_rows) == 1 and csv_rows[0]["key"] == "f32" and csv_rows[0]["precision_check"] == "ok"
    assert csv_rows[0]["throughput"] == row.throughput
    doc = json.loads(r.to_json())
    assert doc["pairs"] == 20 and doc["rounds"] == 1 and doc["rows"][0]["status"] == "ok"
    assert "openvino f32" in r.report() and "pairs: 20; accuracy gate" in r.report()
    assert r.plot(tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(KeyError, match="no row 'int8'"):
        r.row("int8")


@pytest.mark.parametrize("settings, message", [
    (b.SweepSettings(rounds=0), "rounds 0: expected at least 1"),
    (b.SweepSettings(rows=["f32", "fp8"]), "rows ['f32', 'fp8']: expected a subset of"),
    (b.SweepSettings(batches=[0, 4]), "batches [0, 4]: every batch size must be 1..256"),
    (b.SweepSettings(seconds=0.0), "seconds 0.0: expected 0.05..600"),
])
def test_sweep_settings_are_checked_before_anything_runs(settings, message):
    with pytest.raises(CommandError) as info:
        b.sweep("/nonexistent.pb", settings=settings)
    assert str(info.value).startswith(message)


# ------------------------------------------------------------------------------------------------ msame

def test_msame_compare_from_a_log(tmp_path):
    (tmp_path / "run.log").write_text(LOG)
    r = b.msame_compare(log=tmp_path / "run.log")
    assert isinstance(r, b.MsameComparison) and not r.failed and r.error is None
    rows = {what: (m, p) for what, m, p in r.rows}
    assert rows["mean (ms), as msame printed it"] == ("1.00", "-")
    assert rows["mean (ms), from per-execute times"] == ("1.002", "-")
    assert [c["figure"] for c in r.csv_rows()] == list(rows)
    assert r.to_dict()["msame"]["status"] == "ok" and "pymfn" not in r.to_dict()
    with pytest.raises(CommandError, match="^passes must be >= 1"):
        b.msame_compare(log=tmp_path / "run.log", passes=0)
    with pytest.raises(CommandError, match="^give log and/or msame_output"):
        b.msame_compare()


def test_msame_compare_runs_msame_and_pymfn_side_by_side(om, msame_exe, inputs, tmp_path, monkeypatch):  # noqa: F811
    for key, value in _msame_double.environment("host").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    r = b.msame_compare(om, inputs, run_msame=True, msame=msame_exe, folder_run=False)
    assert not r.failed, r.error
    assert r.timing is not None and len(r.timing.compute_ms) == len(r.timing.files) == 12
    c = r.comparisons["timing pass vs msame"]
    assert (c["rows_compared"], c["rows_differing"]) == (12, 0)
    assert "12 rows compared by file name, 0 differ (bit-identical)" in r.report()
    assert r.to_dict()["pymfn"]["executes"] == 12
    assert not any(p.exists() for p in r.temporaries)  # msame's temporary output folder is gone


def test_a_failed_msame_log_is_a_result_not_an_exception(tmp_path):
    (tmp_path / "run.log").write_text(LOG.replace("Inference time: 0.751ms\n", "[ERROR] execute model failed\n"))
    r = b.msame_compare(log=tmp_path / "run.log")
    assert r.failed and r.error.startswith("msame run failed: 1 [ERROR] line(s)")
    assert "msame run FAILED" in r.report() and r.to_dict()["msame"]["status"] == "failed"


# ------------------------------------------------------------------------------------------------ regress

def test_regress_of_saved_runs_gives_verdicts_csv_and_the_commands_report(tmp_path, capsys):
    argv = _saved_sides(tmp_path, np.random.default_rng(1), 1.0, 1.3)
    baseline = [argv[i + 1] for i in range(0, len(argv), 2) if argv[i] == "--baseline"]
    candidate = [argv[i + 1] for i in range(0, len(argv), 2) if argv[i] == "--candidate"]
    r = b.regress(baseline, candidate)
    assert isinstance(r, b.RegressResult) and r.mode == "saved-runs"
    latency = "bench/test_bench_engines.py::test_latency_b1_vs_benchmark_app"
    assert latency in r.slower and r.exit_code == 4 and r.any_slower
    v = r.verdicts[latency]
    assert v.verdict == "slower" and v.ci_low > 1.0 and v.ratio == pytest.approx(1.3, rel=0.05)
    csv_rows = r.csv_rows()
    assert [row["benchmark"] for row in csv_rows] == list(r.verdicts) and csv_rows[0]["n_baseline"] == 4

    rc, out, _ = _cli(["bench", "regress", *argv, "--json", str(tmp_path / "r.json")], capsys)
    assert rc == 4
    assert out == r.report() + f"\n\nJSON written to {tmp_path / 'r.json'}\n"
    assert json.loads((tmp_path / "r.json").read_text()) == json.loads(r.to_json())


def test_regress_errors_name_the_parameter(tmp_path):
    with pytest.raises(CommandError, match="^threshold 1.5: expected a fraction"):
        b.regress("HEAD", settings=b.RegressSettings(threshold=1.5))
    with pytest.raises(CommandError, match="^rounds 4: at confidence 0.95 the signed-rank interval needs >= 6"):
        b.regress("HEAD", settings=b.RegressSettings(rounds=4))
    with pytest.raises(CommandError, match="^baseline no-such-ref-4711: not a commit"):
        b.regress("no-such-ref-4711", settings=b.RegressSettings(benchmarks=["latency"]))
    with option_names(), pytest.raises(CommandError, match="^--baseline was given 2 times"):
        b.regress(["HEAD", "HEAD~1"])

"""`python -m pymfn quantize`: calibration choice, the IR and its record, errors, and INT8 really running.

Everything here runs on a tiny frozen graph and generated face-sized JPEGs (no shared data, a few seconds);
the LFW accuracy gates of the real model live in tests/test_precision.py.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from test_openvino_engine import write_tiny_pb

from pymfn.runtime import precision
from pymfn.export import quantize as q


def write_jpegs(folder: Path, count: int, size: int = 112, identities: int = 3, seed: int = 0) -> list[Path]:
    """``count`` random-noise JPEGs in identity sub-folders, like lfw_train_112."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        sub = folder / f"person_{i % identities}"
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"img_{i:04d}.jpg"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def write_lfw_style(path: Path, count: int, seed: int = 1) -> Path:
    """An lfw.bin-style pickle ``(jpeg bytes list, issame)`` of ``count`` images."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    bins = []
    for _ in range(count):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)).save(buf, format="JPEG")
        bins.append(buf.getvalue())
    path.write_bytes(pickle.dumps((bins, [True] * (count // 2)), protocol=4))
    return path


@pytest.fixture(scope="module")
def tiny_pb(tmp_path_factory) -> Path:
    return write_tiny_pb(tmp_path_factory.mktemp("q") / "tiny.pb")


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("faces") / "faces"
    write_jpegs(folder, 20)
    return folder


@pytest.fixture(scope="module")
def quantized(tiny_pb, faces, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("qout") / "tiny_int8.xml"
    calibration = q.load_calibration(faces, count=12, seed=3)
    record = q.quantize_model(tiny_pb, out, calibration, q.QuantizeSettings(fast_bias_correction=True))
    return out, record


def run_cli(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pymfn", "quantize", *argv], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


# ---------------------------------------------------------------- calibration set

def test_calibration_is_a_seeded_choice_of_exactly_count_images(faces):
    a = q.load_calibration(faces, count=12, seed=3)
    b = q.load_calibration(faces, count=12, seed=3)
    c = q.load_calibration(faces, count=12, seed=4)
    assert a.names == b.names and a.digest() == b.digest()
    assert a.names != c.names
    assert len(a.names) == len(set(a.names)) == 12 and a.images.shape == (12, 112, 112, 3)
    everything = sorted(p.relative_to(faces).as_posix() for p in faces.rglob("*.jpg"))
    assert set(a.names) <= set(everything) and a.available == len(everything) == 20
    # preprocessing is the reference one: (x - 127.5) / 128 of the decoded RGB pixels
    from PIL import Image

    first = np.asarray(Image.open(faces / a.names[0]).convert("RGB")).astype(np.float32)
    np.testing.assert_array_equal(a.samples()[0], (first - 127.5) * 0.0078125)


def test_more_images_than_the_source_holds_is_an_error_not_a_smaller_set(faces):
    with pytest.raises(q.QuantizeError, match=r"holds 20 images but --count asks for 21"):
        q.load_calibration(faces, count=21)


def test_lfw_bin_style_file_calibrates_without_labels(tmp_path):
    src = write_lfw_style(tmp_path / "mini.bin", 10)
    cal = q.load_calibration(src, count=6, seed=0)
    assert cal.kind == "lfw.bin" and cal.available == 10 and all(n.startswith("#") for n in cal.names)
    assert "no labels" in q.overlap_note(src)


def test_wrongly_sized_images_are_named(tmp_path):
    write_jpegs(tmp_path / "small", 4, size=64)
    with pytest.raises(Exception, match=r"img_\d+\.jpg.*64x64; expected 112x112"):
        q.load_calibration(tmp_path / "small", count=4)


def test_overlap_with_lfw_is_stated_for_the_default_set(tmp_path, monkeypatch):
    train = tmp_path / "shared" / "data" / "lfw_train_112"
    train.mkdir(parents=True)
    monkeypatch.setenv("PYMFN_SHARED", str(tmp_path / "shared"))
    assert q.default_calibration_source() == train.resolve()
    assert "belong to people LFW evaluates" in q.overlap_note(train)


# ---------------------------------------------------------------- the quantized model

def test_ir_and_record_say_what_was_built(quantized, tiny_pb, faces):
    out, record = quantized
    assert out.is_file() and out.with_suffix(".bin").is_file()
    assert q.read_record(out) == record
    assert record["output"]["fake_quantize_ops"] > 0
    assert record["model"]["sha256"] == q.file_sha256(tiny_pb)
    cal = record["calibration"]
    assert cal["count"] == len(cal["images"]) == 12 and cal["seed"] == 3 and cal["labels_used"] is False
    assert cal["source"] == str(faces) and cal["available"] == 20
    assert record["nncf"] == {"preset": "performance", "subset_size": 12, "fast_bias_correction": True,
                              "bias_correction": "fast", "ignored_scope": {"types": [], "names": []}}
    import nncf
    import openvino as ov

    assert record["tool_versions"]["nncf"] == nncf.__version__ == "3.4.0"
    assert record["tool_versions"]["openvino"] == ov.get_version()
    assert not list(out.parent.glob(".*"))  # no temp files left behind


def test_int8_runs_int8_and_reports_it(core, quantized):
    out, _ = quantized
    engine = core.OpenVINOEngine(str(out), precision="int8")
    props = engine.properties()
    if not precision.host_support()["int8"]["runs"]:  # no int8 on this CPU: the report must say so
        assert props["precision_check"].startswith("mismatch: requested int8"), props
        return
    assert props["requested_precision"] == "int8" and props["precision_check"] == "ok", props
    assert {precision.meaning(k) for k in precision.parse_counts(props["runtime_precision"])} == {"int8"}, props
    assert int(props["fake_quantize_ops"]) > 0


def test_int8_output_stays_close_to_float(core, quantized, tiny_pb, faces):
    """The quantized tiny model embeds the calibration faces like the float one (cosine > 0.95)."""
    out, _ = quantized
    x = q.load_calibration(faces, count=8, seed=9).samples()
    ref = core.OpenVINOEngine(str(tiny_pb), precision="f32")
    int8 = core.OpenVINOEngine(str(out), precision="int8")
    from pymfn.bench.lfw_accuracy import embed_array

    a, b = embed_array(ref, x, 4), embed_array(int8, x, 4)
    cos = np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.95, cos


def test_already_quantized_model_is_refused(quantized, faces, tmp_path):
    out, _ = quantized
    with pytest.raises(q.QuantizeError, match="already quantized"):
        q.quantize_model(out, tmp_path / "twice.xml", q.load_calibration(faces, count=4))


def test_ignored_scope_that_matches_nothing_is_an_error(tiny_pb, faces, tmp_path):
    settings = q.QuantizeSettings(ignored_types=["NoSuchOp"])
    with pytest.raises(q.QuantizeError, match="NoSuchOp"):
        q.quantize_model(tiny_pb, tmp_path / "x.xml", q.load_calibration(faces, count=4), settings)
    assert not (tmp_path / "x.xml").exists()


# ---------------------------------------------------------------- command line

def test_cli_writes_ir_record_and_calibration_bins(tiny_pb, faces, tmp_path):
    out = tmp_path / "m" / "q.xml"
    proc = run_cli(str(tiny_pb), "--output", str(out), "--calibration", str(faces), "--count", "5",
                   "--fast-bias-correction", "--save-calibration", str(tmp_path / "cal"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    record = json.loads((tmp_path / "m" / "q.quantization.json").read_text())
    bins = sorted((tmp_path / "cal").glob("*.bin"))
    assert len(bins) == 5 and all(b.stat().st_size == 112 * 112 * 3 * 4 for b in bins)
    cal = q.load_calibration(faces, count=5, seed=0)
    assert record["calibration"]["images"] == cal.names
    np.testing.assert_array_equal(np.fromfile(tmp_path / "cal" / "0.bin", np.float32).reshape(112, 112, 3),
                                  cal.samples()[0])
    index = (tmp_path / "cal" / ".index.txt").read_text().splitlines()
    assert index[0] == f"0\t{cal.names[0]}"


@pytest.mark.parametrize("argv, expected", [
    (["--output", "{tmp}/dir.xml"], "--output {tmp}/dir.xml: is an existing directory"),
    (["--output", "{tmp}/q.onnx"], "expected an OpenVINO IR name ending in .xml"),
    (["--output", "{tmp}/q.xml", "--count", "0"], "--count 0: expected 1..10000"),
    (["--output", "{tmp}/q.xml", "--calibration", "{tmp}/none"], "--calibration {tmp}/none: no such"),
    (["--output", "{tmp}/q.xml", "--calibration", "{faces}", "--count", "50"], "holds 20 images but --count asks for 50"),
])
def test_cli_errors_are_one_line_naming_the_option(argv, expected, tiny_pb, faces, tmp_path):
    fill = lambda s: s.format(tmp=tmp_path, faces=faces)  # noqa: E731
    (tmp_path / "dir.xml").mkdir()
    proc = run_cli(str(tiny_pb), *map(fill, argv))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert fill(expected) in lines[0] and "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("q.*"))


def test_a_fifo_as_model_is_named_not_read(tmp_path):
    fifo = tmp_path / "m.pb"
    os.mkfifo(fifo)
    with pytest.raises(q.QuantizeError, match="m.pb: not a regular file"):
        q.read_float_model(fifo)


def test_cli_checks_the_output_before_reading_the_model(tmp_path):
    """A bad --output fails first, even when the model is missing too: no work is done for nothing."""
    proc = run_cli(str(tmp_path / "missing.pb"), "--output", str(tmp_path))
    assert proc.returncode == 1 and "--output" in proc.stderr and "missing.pb" not in proc.stderr

"""pymfn.export.convert: the atc command we build, its validation, atc discovery/execution, AIPP config, and the
host-side targets (om-emu round trip through the emulator, OpenVINO IR, ONNX).

The tests that "run atc" use a FAKE atc script put on PATH: they test our command building, log
streaming, exit-code and om-header checks and the atomic rename, not Huawei's converter.
"""
from __future__ import annotations

import os
import stat
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pymfn.export import convert
from pymfn.export import om
from pymfn.cli import main as cli_main

REFERENCE = ("atc --model=MobileFaceNet.pb --framework=3 --output=tf_MobileFaceNet --soc_version=Ascend310 "
             "--input_shape='Placeholder:1,112,112,3' --precision_mode=allow_fp32_to_fp16 "
             "--op_select_implmode=high_precision")


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = cli_main(["convert", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_reference_command_exact(capsys):
    rc, out, _ = run_cli(capsys, "MobileFaceNet.pb", "--output", "tf_MobileFaceNet", "--dry-run")
    assert rc == 0 and out.strip() == REFERENCE
    # the .om suffix on --output is accepted and dropped (atc appends it)
    rc, out, _ = run_cli(capsys, "MobileFaceNet.pb", "--output", "tf_MobileFaceNet.om", "--dry-run")
    assert out.strip() == REFERENCE


def test_dynamic_batch_and_options_in_command(capsys):
    rc, out, _ = run_cli(capsys, "m.pb", "--output", "o", "--dynamic-batch", "1,2,4,8", "--output-type", "FP16",
                         "--fusion-switch-file", "fusion switch.cfg", "--log", "info", "--precision-mode",
                         "force_fp16", "--soc-version", "Ascend310P3", "--dry-run")
    assert rc == 0
    cmd = out.strip()
    assert "--input_shape='Placeholder:-1,112,112,3' --dynamic_batch_size=\"1,2,4,8\"" in cmd
    assert "--precision_mode=force_fp16" in cmd and "--soc_version=Ascend310P3" in cmd
    assert "--output_type=FP16" in cmd and "--log=info" in cmd
    assert "--fusion_switch_file='fusion switch.cfg'" in cmd  # quoted for the shell
    opts = convert.AtcOptions(model="m.pb", output="o", dynamic_batch=[1, 2, 4, 8])
    argv = convert.atc_argv(opts)
    assert "--input_shape=Placeholder:-1,112,112,3" in argv and "--dynamic_batch_size=1,2,4,8" in argv


@pytest.mark.parametrize("value,needle", [
    ("8", "2..100 batch sizes"),
    (",".join(str(i) for i in range(1, 102)), "2..100 batch sizes"),
    ("0,2", "1..2048"),
    ("1,4096", "1..2048"),
    ("1,1", "distinct"),
    ("1,two", "comma-separated integers"),
])
def test_dynamic_batch_validation(capsys, value, needle):
    rc, out, err = run_cli(capsys, "m.pb", "--dynamic-batch", value, "--dry-run")
    assert rc == 1 and needle in err and "--dynamic-batch" in err and out == ""


def test_dynamic_batch_edges_accepted():
    assert convert.parse_dynamic_batch("1,2048") == [1, 2048]
    assert len(convert.parse_dynamic_batch(",".join(str(i) for i in range(1, 101)))) == 100


def test_input_shape_validation(capsys):
    rc, _, err = run_cli(capsys, "m.pb", "--input-shape=-1,112,112,3", "--dry-run")
    assert rc == 1 and "--dynamic-batch" in err
    rc, _, err = run_cli(capsys, "m.pb", "--input-shape", "1,x,112,3", "--dry-run")
    assert rc == 1 and "--input-shape" in err
    rc, _, err = run_cli(capsys, "m.pb", "--input-shape", "1,112,-1,3", "--dry-run")
    assert rc == 1 and "only the first" in err
    rc, out, _ = run_cli(capsys, "m.pb", "--input-name", "input", "--input-shape", "4,112,112,3", "--dry-run")
    assert rc == 0 and "--input_shape='input:4,112,112,3'" in out


def test_aipp_config_content():
    rgb = convert.aipp_config("rgb")
    assert rgb == textwrap.dedent("""\
        aipp_op {
          aipp_mode: static
          input_format: RGB888_U8
          min_chn_0: 127.5
          min_chn_1: 127.5
          min_chn_2: 127.5
          var_reci_chn_0: 0.0078125
          var_reci_chn_1: 0.0078125
          var_reci_chn_2: 0.0078125
        }
        """)
    bgr = convert.aipp_config("bgr")
    assert "rbuv_swap_switch: true" in bgr and bgr.replace("  rbuv_swap_switch: true\n", "") == rgb


def test_aipp_written_and_passed(tmp_path, capsys):
    base = tmp_path / "mfn"
    rc, out, _ = run_cli(capsys, "m.pb", "--output", str(base), "--aipp", "bgr", "--dry-run")
    assert rc == 0 and f"--insert_op_conf={base}_aipp.cfg" in out and "37,632 bytes" in out
    assert "image2bin --uint8 SOURCE" in out  # bgr is image2bin's default order
    rc, out, _ = run_cli(capsys, "m.pb", "--output", str(base), "--aipp", "rgb", "--dry-run")
    assert "image2bin --uint8 --rgb" in out
    assert not Path(f"{base}_aipp.cfg").exists()  # a dry run writes nothing
    rc, _, err = run_cli(capsys, str(tmp_path / "missing.pb"), "--output", str(base), "--aipp", "rgb")
    assert rc == 1 and "missing.pb" in err and not Path(f"{base}_aipp.cfg").exists()


def test_aipp_config_written_without_atc(tmp_path, monkeypatch, capsys):
    """Without atc the AIPP config is still written (the CANN machine needs it) and the error shows the
    command that uses it."""
    _no_atc_env(monkeypatch, tmp_path)
    pb = tmp_path / "m.pb"
    pb.write_bytes(b"graph")
    base = tmp_path / "mfn"
    rc, _, err = run_cli(capsys, str(pb), "--output", str(base), "--aipp", "bgr")
    assert rc == 1 and f"--insert_op_conf={base}_aipp.cfg" in err
    assert Path(f"{base}_aipp.cfg").read_text() == convert.aipp_config("bgr")


def _no_atc_env(monkeypatch, tmp_path):
    empty = tmp_path / "emptybin"
    empty.mkdir(exist_ok=True)
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("ASCEND_TOOLKIT_HOME", str(tmp_path / "no-cann"))
    monkeypatch.setattr(convert, "CANN_ROOTS", (str(tmp_path / "no-cann-2"),))


def test_missing_atc_prints_the_command(tmp_path, monkeypatch, capsys):
    pb = tmp_path / "MobileFaceNet.pb"
    pb.write_bytes(b"not really a graph")  # atc is looked up before the graph is read
    _no_atc_env(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)
    rc, out, err = run_cli(capsys, "MobileFaceNet.pb", "--output", "tf_MobileFaceNet")
    assert rc == 1 and "atc" in err and "not found" in err
    assert REFERENCE in err  # the exact command to run on a CANN machine
    assert not (tmp_path / "tf_MobileFaceNet.om").exists()


def test_find_atc_under_cann_root(tmp_path, monkeypatch):
    _no_atc_env(monkeypatch, tmp_path)
    assert convert.find_atc() is None
    atc = tmp_path / "cann" / "compiler" / "bin" / "atc"
    atc.parent.mkdir(parents=True)
    atc.write_text("#!/bin/sh\n")
    atc.chmod(0o755)
    monkeypatch.setenv("ASCEND_TOOLKIT_HOME", str(tmp_path / "cann"))
    assert convert.find_atc() == atc


FAKE_ATC = """#!{python}
# FAKE atc for tests: records its argv, prints a log, and writes <--output>.om with a genuine om header
# (or misbehaves as told by FAKE_ATC_MODE). It does not convert anything.
import os, struct, sys
open(os.environ["FAKE_ATC_ARGV"], "w").write("\\n".join(sys.argv[1:]))
print("ATC start working now, please wait for a moment.")
mode = os.environ.get("FAKE_ATC_MODE", "ok")
if mode == "fail":
    print("E10001: fake failure"); sys.exit(3)
out = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--output=")][0] + ".om"
payload = b"\\x00" * 512
head = bytearray(256)
struct.pack_into("<III", head, 0, 0x444F4D49 if mode == "ok" else 0x12345678, 256, 1)
struct.pack_into("<I", head, 76, len(payload))
head[84:84 + 4] = b"fake"
open(out, "wb").write(bytes(head) + payload)
print("ATC run success, welcome to the next use.")
"""


@pytest.fixture
def fake_atc(tmp_path, monkeypatch):
    _no_atc_env(monkeypatch, tmp_path)
    bindir = tmp_path / "emptybin"
    atc = bindir / "atc"
    atc.write_text(FAKE_ATC.format(python=sys.executable))
    atc.chmod(atc.stat().st_mode | stat.S_IXUSR)
    argv_file = tmp_path / "atc_argv.txt"
    monkeypatch.setenv("FAKE_ATC_ARGV", str(argv_file))
    return argv_file


def test_fake_atc_run(tmp_path, fake_atc, capsys):
    pb = tmp_path / "MobileFaceNet.pb"
    pb.write_bytes(b"graph")
    out_base = tmp_path / "out" / "tf_MobileFaceNet"
    rc, out, err = run_cli(capsys, str(pb), "--output", str(out_base), "--dynamic-batch", "1,2,4,8")
    assert rc == 0, err
    assert "[atc] ATC run success" in out  # atc's log is streamed
    argv = fake_atc.read_text().split("\n")
    assert argv[0] == f"--model={pb}" and "--framework=3" in argv
    assert "--input_shape=Placeholder:-1,112,112,3" in argv and "--dynamic_batch_size=1,2,4,8" in argv
    tmp_output = [a for a in argv if a.startswith("--output=")][0].split("=", 1)[1]
    assert tmp_output != str(out_base)  # atc wrote to a temp name...
    final = Path(str(out_base) + ".om")
    assert om.read_om_header(final).name == "fake"  # ...renamed into place after the header check
    assert sorted(p.name for p in final.parent.iterdir()) == ["tf_MobileFaceNet.om"]  # no temp left


@pytest.mark.parametrize("mode,needle", [("fail", "exited with code 3"), ("badheader", "invalid om file")])
def test_fake_atc_failures_leave_nothing(tmp_path, fake_atc, monkeypatch, capsys, mode, needle):
    monkeypatch.setenv("FAKE_ATC_MODE", mode)
    pb = tmp_path / "m.pb"
    pb.write_bytes(b"graph")
    rc, _, err = run_cli(capsys, str(pb), "--output", str(tmp_path / "o" / "m"))
    assert rc == 1 and needle in err
    assert not (tmp_path / "o").exists()  # not even the folder the failed run had to create


@pytest.mark.parametrize("argv,needle", [
    (["--target", "om-emu", "--soc-version", "Ascend310"], "--soc-version"),
    (["--target", "om-emu", "--dry-run"], "--dry-run"),
    (["--target", "openvino", "--precision-mode", "force_fp16"], "--precision-mode"),
    (["--target", "onnx", "--output-type", "FP16"], "--output-type"),
    (["--target", "om", "--opset", "17"], "--opset"),
])
def test_options_foreign_to_the_target_are_refused(capsys, argv, needle):
    rc, _, err = run_cli(capsys, "m.pb", *argv)
    assert rc == 1 and needle in err and "not applicable" in err


def test_host_targets_reject_om_only_options(capsys):
    rc, _, err = run_cli(capsys, "m.pb", "--target", "onnx", "--dynamic-batch", "1,2")
    assert rc == 1 and "om/om-emu" in err
    rc, _, err = run_cli(capsys, "m.pb", "--target", "openvino", "--aipp", "rgb")
    assert rc == 1 and "--aipp" in err


def test_help_is_useful(capsys):
    with pytest.raises(SystemExit):
        cli_main(["convert", "--help"])
    out = capsys.readouterr().out
    for word in ("--dynamic-batch", "--aipp", "om-emu", "must_keep_origin_dtype", "--dry-run"):
        assert word in out


# ---------------------------------------------------------------- real conversions of a tiny frozen graph

@pytest.fixture(scope="module")
def tiny_pb(tmp_path_factory) -> Path:
    """A small frozen TF graph: Placeholder [-1,16,16,3] -> conv -> relu -> dense 8 -> l2norm -> fp16
    'the_outputs' (the reference model's output convention)."""
    tf = pytest.importorskip("tensorflow")
    tf1 = tf.compat.v1
    rng = np.random.RandomState(0)
    g = tf1.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, 16, 16, 3])
        y = tf.nn.relu(tf.nn.conv2d(x, tf.constant(rng.randn(3, 3, 3, 4).astype(np.float32) * 0.3), 2, "SAME"))
        y = tf.matmul(tf.reshape(y, [-1, 256]), tf.constant(rng.randn(256, 8).astype(np.float32) * 0.1))
        tf.cast(tf.nn.l2_normalize(y, 1, 1e-10), tf.float16, name="the_outputs")
    path = tmp_path_factory.mktemp("pb") / "tiny.pb"
    path.write_bytes(g.as_graph_def().SerializeToString())
    return path


def _ov_reference(model_path: Path, x: np.ndarray) -> np.ndarray:
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(model_path)) if model_path.suffix == ".xml"
                                  else ov.convert_model(str(model_path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return np.asarray(compiled(x)[0], np.float32)


def _payload_f32_on_fp16_inputs(om_path: Path, x: np.ndarray) -> np.ndarray:
    """What the emulator claims to compute for an fp16 om: its payload IR (fp16 weights) in f32, on inputs
    rounded to fp16."""
    import openvino as ov

    _, _, xml, weights = om.read_emulator_om(om_path)
    core = ov.Core()
    model = core.read_model(xml.decode("utf-8"), ov.Tensor(np.frombuffer(weights, np.uint8).copy()))
    model.reshape({model.inputs[0]: list(x.shape)})
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "EXECUTION_MODE_HINT": "ACCURACY"})
    return np.asarray(compiled(x.astype(np.float16).astype(np.float32))[0], np.float16)


@pytest.mark.slow  # imports TensorFlow and converts graphs
def test_om_emu_round_trip_through_emulator(tiny_pb, tmp_path, capsys):
    """pb -> emulator om (static and dynamic) -> executed by libascendcl.so == OpenVINO f32 on the pb."""
    sys.path.insert(0, str(Path(__file__).parent))
    import test_emulator as te

    emu = te.find_emulator()
    out = tmp_path / "tiny.om"
    rc, text, err = run_cli(capsys, str(tiny_pb), "--target", "om-emu", "--output", str(out), "--input-shape",
                            "1,16,16,3", "--precision-mode", "must_keep_origin_dtype")
    assert rc == 0, err
    header, meta, _, _ = om.read_emulator_om(out)
    assert header.is_emulator and meta.precision == "f32"
    assert [(t.name, t.dtype, t.dims) for t in meta.inputs] == [("Placeholder", "float32", [1, 16, 16, 3])]
    assert [(t.name, t.dtype, t.dims) for t in meta.outputs] == [("the_outputs", "float16", [1, 8])]
    dyn = tmp_path / "tiny_dyn.om"
    rc, _, err = run_cli(capsys, str(tiny_pb), "--target", "om-emu", "--output", str(dyn), "--input-shape",
                         "1,16,16,3", "--dynamic-batch", "1,2,4,8", "--output-type", "FP32")
    assert rc == 0, err
    _, dmeta, _, _ = om.read_emulator_om(dyn)
    assert dmeta.dynamic_batch == [1, 2, 4, 8] and dmeta.precision == "f16"
    assert dmeta.inputs[0].dims == [-1, 16, 16, 3] and dmeta.outputs[0].dtype == "float32"
    if emu is None:
        te._fail_if_built("libascendcl.so")
        pytest.skip("emulator not built: conversion checked, execution not")
    x = np.random.RandomState(2).uniform(-1, 1, (3, 1, 16, 16, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    ref = _ov_reference(tiny_pb, x[:, 0])
    r, _ = te.run_scenario(emu, "static", {"om": str(out), "x": str(tmp_path / "x.npy")})
    np.testing.assert_allclose(np.asarray(r["outputs"], np.float32), ref, atol=2 ** -10)
    assert r["leaks_at_finalize"] == 0
    # AIPP stand-in: uint8 BGR files in, normalisation and channel swap inside the model
    u8 = tmp_path / "tiny_u8.om"
    rc, _, err = run_cli(capsys, str(tiny_pb), "--target", "om-emu", "--output", str(u8), "--input-shape",
                         "1,16,16,3", "--aipp", "bgr", "--precision-mode", "must_keep_origin_dtype")
    assert rc == 0, err
    pix = np.random.RandomState(4).randint(0, 256, (3, 1, 16, 16, 3)).astype(np.uint8)
    np.save(tmp_path / "pix.npy", pix)
    ref_u8 = _ov_reference(tiny_pb, (pix[:, 0, ..., ::-1].astype(np.float32) - 127.5) * 0.0078125)
    r, _ = te.run_scenario(emu, "static", {"om": str(u8), "x": str(tmp_path / "pix.npy")})
    assert r["in_size"] == 16 * 16 * 3 and r["in_dtype"] == 4  # ACL_UINT8: 4x less input than float32
    np.testing.assert_allclose(np.asarray(r["outputs"], np.float32), ref_u8, atol=2 ** -10)


@pytest.mark.slow  # imports TensorFlow and converts graphs
def test_openvino_and_onnx_targets(tiny_pb, tmp_path, capsys):
    x = np.random.RandomState(3).uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    ref = _ov_reference(tiny_pb, x)
    xml = tmp_path / "ir" / "tiny.xml"
    rc, _, err = run_cli(capsys, str(tiny_pb), "--target", "openvino", "--output", str(xml))
    assert rc == 0, err and xml.with_suffix(".bin").is_file()
    np.testing.assert_array_equal(_ov_reference(xml, x), ref)  # dynamic batch kept: batch 2 runs
    onnx_path = tmp_path / "tiny.onnx"
    rc, _, err = run_cli(capsys, str(tiny_pb), "--target", "onnx", "--output", str(onnx_path))
    assert rc == 0, err
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(onnx_path))
    assert model.opset_import[0].version >= 13
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0].astype(np.float32)
    np.testing.assert_allclose(got, ref, atol=2e-3)


@pytest.mark.slow  # imports TensorFlow and converts graphs
def test_om_emu_bad_input_name(tiny_pb, tmp_path, capsys):
    rc, _, err = run_cli(capsys, str(tiny_pb), "--target", "om-emu", "--output", str(tmp_path / "x.om"),
                         "--input-name", "images", "--input-shape", "1,16,16,3")
    assert rc == 1 and "no input named 'images'" in err and "Placeholder" in err
    assert not (tmp_path / "x.om").exists()


@pytest.mark.slow  # builds (or reuses from the cache) the default MobileFaceNet and compiles it
def test_reference_model_on_emulator_with_lfw_faces(lfw_bin, tmp_path, capsys):
    """The reference deployment on the emulator: MobileFaceNet with float16 'the_outputs', converted with the
    reference atc options, fed image2bin-style BGR faces from lfw.bin; outputs agree with OpenVINO f32."""
    sys.path.insert(0, str(Path(__file__).parent))
    import test_emulator as te

    from pymfn.export.default_model import default_model
    from pymfn.inputs.lfw_bin import decode_images, read_lfw_bin

    emu = te.find_emulator()
    if emu is None:
        te._fail_if_built("libascendcl.so")
        pytest.skip("emulator not built")
    pb = default_model(fp16_output=True, quiet=True).path
    bins, _ = read_lfw_bin(lfw_bin)
    x = (decode_images(bins[:6], color="bgr").astype(np.float32) - 127.5) * 0.0078125  # image2bin
    np.save(tmp_path / "x.npy", x[:, None])
    ref = _ov_reference(pb, x)
    emb = ref.shape[1]
    # reference options (allow_fp32_to_fp16); the f32 path is checked to one fp16 ulp on the tiny model
    out = tmp_path / "tf_MobileFaceNet.om"
    rc, _, err = run_cli(capsys, str(pb), "--target", "om-emu", "--output", str(out))
    assert rc == 0, err
    r, _ = te.run_scenario(emu, "static", {"om": str(out), "x": str(tmp_path / "x.npy")})
    assert r["in_size"] == 150_528 and r["out_size"] == emb * 2 and r["out_dtype"] == 1  # fp16 output
    got = np.asarray(r["outputs"], np.float32)
    # the emulator's arithmetic on every host: f32 on the om's fp16 weights and fp16-rounded inputs (never bf16,
    # whose 8-bit mantissa missed the bound below by 0.00635 on a host without fp16 units), to one fp16 ulp
    same = _payload_f32_on_fp16_inputs(out, x).reshape(got.shape)
    assert np.all(np.abs(got - same) <= np.spacing(np.abs(same)).astype(np.float32)), np.abs(got - same).max()
    # fp16 weights + fp16-rounded inputs against f32 on the pb: the same embeddings up to a small angle
    cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() > 0.999, cos
    assert np.abs(got - ref).max() < 5e-3
    assert r["leaks_at_finalize"] == 0


@pytest.mark.parametrize("target", ["om-emu", "onnx", "openvino"])
def test_output_checked_before_converting(tiny_pb, tmp_path, capsys, target):
    """--output as an existing directory used to fail after the conversion, naming a temp file."""
    rc, out, err = run_cli(capsys, str(tiny_pb), "--target", target, "--output", str(tmp_path))
    assert rc == 1 and out == ""
    assert err == f"pymfn convert: error: --output {tmp_path}: is an existing directory; give a file name\n"
    rc, _, err = run_cli(capsys, str(tiny_pb), "--target", target, "--output", "/proc/pymfn-out.x")
    assert rc == 1 and "cannot write in /proc" in err and err.count("\n") == 1


def test_fifo_model_is_rejected_not_read(tmp_path, capsys):
    fifo = tmp_path / "m.pb"
    os.mkfifo(fifo)
    rc, _, err = run_cli(capsys, str(fifo), "--target", "openvino", "--output", str(tmp_path / "m.xml"))
    assert rc == 1 and err == f"pymfn convert: error: {fifo}: not a regular file; expected a frozen TensorFlow .pb\n"

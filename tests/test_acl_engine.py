"""AclEngine against pymfn's ACL emulator: model description, parity with OpenVINO f32 on the same .pb,
static and dynamic batch, async slots, both run modes, leak-free teardown and the typed errors.

The models are a tiny frozen TF graph with MobileFaceNet's interface (input ``Placeholder`` NHWC float32,
output ``the_outputs`` = float16 of an L2-normalised embedding), converted by ``pymfn convert --target
om-emu``, so the whole module runs in seconds. Run modes, leak counts and PYMFN_ACL selection are checked
in subprocesses: the runtime is chosen once per process and its counters are process-wide.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pymfn import config
from pymfn.cli import main as cli_main

H = W = 16
EMB = 16


@pytest.fixture(scope="module")
def acl(core):
    if not hasattr(core, "AclEngine"):
        pytest.skip(f"this build has no AscendCL engine (build_info()['acl'] = {core.build_info()['acl']!r})")
    try:
        rt = core.acl_runtime()
    except core.EngineError as exc:
        if core.build_info()["acl"] == "emulated":  # the build made the emulator: not finding it is a bug
            pytest.fail(f"this build compiled the ACL emulator but the engine cannot load it: {exc}")
        pytest.skip(f"no usable AscendCL runtime: {exc}")
    if not rt["emulator"]:
        pytest.skip(f"these tests need pymfn's emulator; the loaded runtime is {rt['runtime']}")
    return core


def _tiny_pb(path: Path) -> Path:
    """A frozen graph shaped like the reference: conv, PReLU-free head, l2_normalize, cast to float16."""
    import tensorflow as tf

    rng = np.random.default_rng(7)
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, H, W, 3], name="Placeholder")
        k = tf.constant(rng.standard_normal((3, 3, 3, 8)).astype(np.float32) * 0.4)
        y = tf.nn.relu(tf.nn.conv2d(x, k, strides=1, padding="SAME"))
        k2 = tf.constant(rng.standard_normal((3, 3, 8, 8)).astype(np.float32) * 0.3)
        y = tf.nn.relu(tf.nn.conv2d(y, k2, strides=2, padding="SAME"))
        y = tf.reduce_mean(y, axis=[1, 2])
        d = tf.constant(rng.standard_normal((8, EMB)).astype(np.float32))
        y = tf.matmul(y, d) + tf.constant(rng.standard_normal(EMB).astype(np.float32) * 0.1)
        y = tf.nn.l2_normalize(y, 1, 1e-10)
        tf.cast(y, tf.float16, name="the_outputs")
    path.write_bytes(g.as_graph_def().SerializeToString())
    return path


def _convert(pb: Path, out: Path, *extra: str) -> Path:

    rc = cli_main(["convert", str(pb), "--target", "om-emu", "--output", str(out), *extra])
    assert rc == 0 and out.is_file()
    return out


@pytest.fixture(scope="module")
def models(acl, tmp_path_factory):
    d = tmp_path_factory.mktemp("acl_models")
    pb = _tiny_pb(d / "tiny.pb")
    shape = f"--input-shape=1,{H},{W},3"
    return {
        "pb": pb,
        # f32 payload: the emulator computes in f32, so outputs must match OpenVINO f32 up to fp16 rounding
        "static": _convert(pb, d / "static.om", shape, "--precision-mode", "must_keep_origin_dtype"),
        "dynamic": _convert(pb, d / "dynamic.om", shape, "--dynamic-batch", "1,2,4,8",
                            "--precision-mode", "must_keep_origin_dtype"),
        "fp16": _convert(pb, d / "fp16.om", shape),  # the reference's allow_fp32_to_fp16
    }


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, H, W, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def ov_reference(acl, models):
    """OpenVINO f32 on the same .pb (the reference the om must reproduce)."""
    eng = acl.OpenVINOEngine(str(models["pb"]), precision="f32")
    x = _images(8)
    return x, eng.execute([x])[0]


# ------------------------------------------------------------------------------------------ description

def test_runtime_is_the_emulator_next_to_core(acl):
    rt = acl.acl_runtime()
    assert rt["runtime"] == "emulator"
    assert Path(rt["library"]).parent == Path(acl.__file__).parent
    assert Path(rt["library"]).name == "libascendcl.so"


def test_describes_static_model(acl, models):
    e = acl.AclEngine(str(models["static"]))
    assert isinstance(e, acl.Engine) and e.kind == "acl" and e.model_path == str(models["static"])
    (i,), (o,) = e.inputs(), e.outputs()
    assert (i.name, i.dtype, list(i.shape), i.sample_bytes) == ("Placeholder", "float32", [1, H, W, 3], H * W * 3 * 4)
    assert (o.name, o.dtype, list(o.shape), o.sample_bytes) == ("the_outputs", "float16", [1, EMB], EMB * 2)
    assert e.supported_batches() == [1] and e.max_inflight() == 1
    p = e.properties()
    assert p["acl_runtime"] == "emulator" and p["run_mode"] == "ACL_HOST" and p["dynamic_batch"] == "static"
    assert p["om_name"] == "static"
    # must_keep_origin_dtype: the emulator computes f32, as the device would
    assert (p["emulator_compute_precision"], p["emulator_device_precision"]) == ("f32", "f32")
    assert "must_keep_origin_dtype" in p["emulator_precision_reason"]


def test_properties_say_what_the_emulator_compiled(acl, models):
    """The emulator's compile record of an fp16 om: f32 arithmetic on fp16-rounded weights and inputs on every
    host, the device's fp16 beside it, and what OpenVINO's execution graph ran (by meaning)."""
    from pymfn.runtime import precision

    e = acl.AclEngine(str(models["fp16"]))
    p = e.properties()
    assert (p["emulator_compute_precision"], p["emulator_device_precision"]) == ("f32", "f16")
    assert p["emulator_precision_reason"].startswith("f32 on fp16-rounded weights and inputs; device arithmetic fp16")
    assert {precision.meaning(k) for k in precision.parse_counts(p["emulator_runtime_precision"])} == {"f32"}
    assert p["emulator_stored_weights_precision"].startswith("f16 x")  # the fp16 weights, widened exactly
    assert p["emulator_fake_quantize_ops"] == "0" and "Convolution: f32" in p["emulator_runtime_precision_by_layer_type"]
    assert "runtime=emulator compute=f32 (device f16)" in repr(e)


def test_describes_dynamic_model_without_the_mbatch_input(acl, models):
    e = acl.AclEngine(str(models["dynamic"]))
    (i,), (o,) = e.inputs(), e.outputs()  # ascend_mbatch_shape_data is fed by the engine, not listed
    assert list(i.shape) == [-1, H, W, 3] and i.sample_bytes == H * W * 3 * 4
    assert list(o.shape) == [-1, EMB] and o.sample_bytes == EMB * 2
    assert e.supported_batches() == [1, 2, 4, 8]
    assert e.properties()["dynamic_batch"] == "1,2,4,8"


# ------------------------------------------------------------------------------------------ numerics

def test_static_outputs_equal_openvino_f32_within_fp16_rounding(acl, models, ov_reference):
    x, ref = ov_reference
    e = acl.AclEngine(str(models["static"]))
    got = np.concatenate([e.execute([x[i:i + 1]])[0] for i in range(len(x))])
    assert got.dtype == np.float16 and got.shape == (8, EMB)
    # both sides cast an f32 result to fp16: at most one fp16 ulp apart (<= 2**-11 for |v| <= 1)
    np.testing.assert_allclose(got.astype(np.float32), ref.astype(np.float32), rtol=0, atol=2 ** -11)


@pytest.mark.parametrize("batch", [1, 2, 4, 8])
def test_dynamic_batch_valid_part_matches_reference(acl, models, ov_reference, batch):
    x, ref = ov_reference
    e = acl.AclEngine(str(models["dynamic"]))
    e.prepare(batch)
    out = np.full((batch, EMB), np.nan, np.float16)
    times = e.execute_into([x[:batch]], [out])
    assert set(times) == {"h2d_ms", "compute_ms", "d2h_ms"} and all(v >= 0 for v in times.values())
    np.testing.assert_allclose(out.astype(np.float32), ref[:batch].astype(np.float32), rtol=0, atol=2 ** -11)
    # only the valid size*batch/maxBatch bytes come back
    assert e.copy_stats()["d2h_bytes"] == batch * EMB * 2
    assert e.copy_stats()["h2d_bytes"] == batch * H * W * 3 * 4


def test_fp16_om_is_close_to_f32(acl, models, ov_reference):
    x, ref = ov_reference
    e = acl.AclEngine(str(models["fp16"]))
    got = np.concatenate([e.execute([x[i:i + 1]])[0] for i in range(len(x))]).astype(np.float32)
    cos = np.sum(got * ref.astype(np.float32), axis=1) / np.linalg.norm(got, axis=1)
    assert cos.min() > 0.999  # f32 on fp16-rounded weights and inputs: close to f32 on the pb, not bit-exact


def test_runner_drives_the_engine(acl, models, ov_reference):
    x, ref = ov_reference
    e = acl.AclEngine(str(models["dynamic"]))
    e.prepare(4)
    outs = acl.infer_all(e, acl.ArrayDataset(x[:7]).reader(4, 0))  # 2 batches, the last padded
    got = np.frombuffer(bytes(outs[0]), np.float16).reshape(7, EMB) if not isinstance(outs[0], np.ndarray) \
        else outs[0].reshape(7, EMB)
    np.testing.assert_allclose(got.astype(np.float32), ref[:7].astype(np.float32), rtol=0, atol=2 ** -11)


def test_infer_all_with_two_requests_in_flight(acl, models, ov_reference):
    """What `bench accuracy` does on an .om: 2 ACL requests round-robin; same rows, same order as sync."""
    x, _ = ov_reference
    sync = acl.AclEngine(str(models["dynamic"]))
    two = acl.AclEngine(str(models["dynamic"]), num_requests=2)
    want = acl.infer_all(sync, acl.ArrayDataset(x[:7]).reader(2, 0))[0]
    got = acl.infer_all(two, acl.ArrayDataset(x[:7]).reader(2, 0), 2)[0]  # 4 batches, the last padded
    assert np.asarray(got).shape == np.asarray(want).shape
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


# ------------------------------------------------------------------------------------------ batches, async

def test_batch_not_offered_lists_the_offered_ones(acl, models):
    dyn = acl.AclEngine(str(models["dynamic"]))
    with pytest.raises(acl.InvalidArgument, match=r"batch size 3 .*1,2,4,8"):
        dyn.prepare(3)
    with pytest.raises(acl.InvalidArgument, match="batch size 16"):
        dyn.execute([_images(16)])
    st = acl.AclEngine(str(models["static"]))
    with pytest.raises(acl.InvalidArgument, match=r"static batch 1"):
        st.prepare(2)


def test_binding_mismatch_is_rejected(acl, models):
    e = acl.AclEngine(str(models["static"]))
    with pytest.raises(acl.InvalidArgument, match="dtype"):
        e.execute_into([_images(1).astype(np.float64)], [np.zeros((1, EMB), np.float16)])
    with pytest.raises(acl.InvalidArgument, match="bytes"):
        e.execute_into([_images(1)], [np.zeros((1, EMB + 1), np.float16)])
    with pytest.raises(acl.InvalidArgument, match="inputs"):
        e.execute_into([_images(1), _images(1)], [np.zeros((1, EMB), np.float16)])


def test_async_slots_match_sync(acl, models, ov_reference):
    x, ref = ov_reference
    e = acl.AclEngine(str(models["dynamic"]), num_requests=2)
    assert e.max_inflight() == 2
    ids = e.properties()["model_ids"].split(",")
    assert len(set(ids)) == 2  # one model id per slot: never one id on two streams
    e.prepare(4)
    outs = [np.zeros((4, EMB), np.float16) for _ in range(2)]
    e.start(0, [x[:4]], [outs[0]])
    e.start(1, [x[4:]], [outs[1]])
    with pytest.raises(acl.InvalidArgument, match="busy"):
        e.start(0, [x[:4]], [outs[0]])
    with pytest.raises(acl.InvalidArgument, match="in flight"):
        e.prepare(2)
    t1, t0 = e.wait(1), e.wait(0)
    assert t0["compute_ms"] > 0 and t1["compute_ms"] > 0
    np.testing.assert_allclose(np.concatenate(outs).astype(np.float32), ref.astype(np.float32), rtol=0, atol=2 ** -11)
    with pytest.raises(acl.InvalidArgument, match="no request in flight"):
        e.wait(0)
    with pytest.raises(acl.InvalidArgument, match="out of range"):
        e.wait(2)


# ------------------------------------------------------------------------------------------ errors

def test_non_om_file_is_a_format_error(acl, tmp_path):
    bad = tmp_path / "model.om"
    bad.write_bytes(b"this is not an om file" * 20)
    with pytest.raises(acl.FormatError) as ei:
        acl.AclEngine(str(bad))
    assert ei.value.path == str(bad) and "not an Ascend om file" in str(ei.value)
    short = tmp_path / "short.om"
    short.write_bytes(b"IMOD")
    with pytest.raises(acl.FormatError, match="short.om"):
        acl.AclEngine(str(short))
    with pytest.raises(acl.InputError, match="cannot open"):
        acl.AclEngine(str(tmp_path / "missing.om"))


def test_truncated_om_is_a_format_error(acl, models, tmp_path):
    cut = tmp_path / "cut.om"
    cut.write_bytes(models["static"].read_bytes()[:5000])
    with pytest.raises(acl.FormatError, match="truncated") as ei:
        acl.AclEngine(str(cut))
    assert ei.value.path == str(cut)


def test_real_om_payload_is_an_acl_error_with_code(acl, tmp_path):
    from pymfn.export import om

    real = tmp_path / "real.om"
    om.write_om_header(real, b"\x00" * 4096, name="real_model")  # a valid header, not emulator payload
    with pytest.raises(acl.AclError) as ei:
        acl.AclEngine(str(real))
    assert ei.value.code == 100013 and ei.value.code_name == "ACL_ERROR_PARSE_MODEL"
    assert "aclmdlLoadFromFile" in str(ei.value) and str(real) in str(ei.value)


def test_invalid_device_is_an_acl_error(acl, models):
    with pytest.raises(acl.AclError) as ei:
        acl.AclEngine(str(models["static"]), device=7)
    assert ei.value.code == 200002 and ei.value.code_name == "ACL_ERROR_INVALID_DEVICE"
    assert ei.value.recent_msg  # aclGetRecentErrMsg() travels with the exception
    with pytest.raises(acl.InvalidArgument, match="num_requests"):
        acl.AclEngine(str(models["static"]), num_requests=0)


# ------------------------------------------------------------------------------------------ subprocesses

_MODE_SCRIPT = textwrap.dedent("""
    import gc, json, sys
    import numpy as np
    import pymfn
    core = pymfn.load_core()
    path, xfile = sys.argv[1], sys.argv[2]
    x = np.load(xfile)
    e = core.AclEngine(path, num_requests=2)
    e.prepare(4)
    plain = np.zeros((4, %d), np.float16)
    t_plain = e.execute_into([x[:4]], [plain])
    c_plain = e.copy_stats()
    buf = e.input_buffer(0)            # pinned host (ACL_HOST) or the device buffer itself (ACL_DEVICE)
    buf[:4] = x[:4]
    own = np.zeros((4, %d), np.float16)
    t_own = e.execute_into([buf[:4]], [own])
    c_own = e.copy_stats()
    own_diff = float(np.abs(own.astype(float) - plain.astype(float)).max())
    try:
        e.execute_into([buf[1:5]], [np.zeros((4, %d), np.float16)])
        inside = "no error"
    except core.InvalidArgument as ex:
        inside = str(ex)
    late = np.zeros((4, %d), np.float16)
    e.start(1, [x[4:8]], [late])
    e.wait(1)
    props = e.properties()
    del e, buf
    gc.collect()
    leaks = core.acl_emulator_leaks()
    print(json.dumps({"props": props, "plain": plain.astype(float).tolist(), "own_diff": own_diff, "inside": inside,
                      "late": late.astype(float).tolist(),
                      "t_plain": t_plain, "t_own": t_own, "c_plain": c_plain, "c_own": c_own,
                      "leaks": leaks["total"], "report": leaks["report"], "finalize": leaks["leaks_at_finalize"],
                      "refs": core.acl_runtime()["acl_init_refcount"]}))
""" % (EMB, EMB, EMB, EMB))


def _run_py(code: str, *args: str, env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update(env_extra)
    env["PYTHONPATH"] = os.pathsep.join([str(config.PROJECT_ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize("mode", ["host", "device"])
def test_run_modes_copies_and_zero_leaks(acl, models, ov_reference, tmp_path, mode):
    x, ref = ov_reference
    np.save(tmp_path / "x.npy", x)
    proc = _run_py(_MODE_SCRIPT, str(models["dynamic"]), str(tmp_path / "x.npy"),
                   env_extra={"PYMFN_ACL_EMU_RUN_MODE": mode, "PYMFN_ACL": "emulator"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["props"]["run_mode"] == ("ACL_HOST" if mode == "host" else "ACL_DEVICE")
    assert r["props"]["acl_runtime"] == "emulator" and r["props"]["acl_selection"] == "PYMFN_ACL=emulator"
    np.testing.assert_allclose(np.array(r["plain"]), ref[:4].astype(np.float32), rtol=0, atol=2 ** -11)
    assert r["own_diff"] == 0.0
    np.testing.assert_allclose(np.array(r["late"]), ref[4:8].astype(np.float32), rtol=0, atol=2 ** -11)
    # caller memory always costs one whole-batch copy per input
    assert r["c_plain"]["h2d_copies"] == 1 and r["c_plain"]["h2d_bytes"] == 4 * H * W * 3 * 4
    own_copies = r["c_own"]["h2d_copies"] - r["c_plain"]["h2d_copies"]
    if mode == "device":
        assert own_copies == 0 and r["t_own"]["h2d_ms"] == 0.0  # read straight into device memory
        assert "inside input_buffer() but not at its start" in r["inside"]  # would be an overlapping memcpy
    else:
        assert own_copies == 1  # ACL_HOST: pinned source, but the H2D copy is unavoidable
        assert r["inside"] == "no error"  # pinned host -> device never overlaps
    # destroyed engine: nothing outstanding, aclFinalize ran (last engine gone) and found nothing
    assert r["leaks"] == 0 and r["report"] == "" and r["finalize"] == 0 and r["refs"] == 0
    assert "outstanding" not in proc.stderr


def test_pymfn_acl_real_without_cann_is_a_clear_error(acl, models):
    if any(Path(p).exists() for p in ("/usr/local/Ascend/ascend-toolkit/latest", "/usr/local/Ascend/nnae/latest")):
        pytest.skip("a CANN toolkit is installed here")
    code = textwrap.dedent("""
        import sys, pymfn
        core = pymfn.load_core()
        for call in (lambda: core.acl_runtime(), lambda: core.AclEngine(sys.argv[1])):
            try:
                call()
                print("NO ERROR")
            except core.EngineError as e:
                print(type(e).__name__ + ": " + str(e))
    """)
    proc = _run_py(code, str(models["static"]), env_extra={"PYMFN_ACL": "real", "ASCEND_TOOLKIT_HOME": "/nonexistent/cann"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("EngineError: PYMFN_ACL=real but no CANN runtime") for line in lines)
    assert "/nonexistent/cann" in lines[0] and "PYMFN_ACL=emulator" in lines[0]


def test_bad_pymfn_acl_value(acl):
    proc = _run_py("import pymfn; c = pymfn.load_core()\ntry:\n c.acl_runtime()\nexcept c.InvalidArgument as e: print(e)",
                   env_extra={"PYMFN_ACL": "gpu"})
    assert "PYMFN_ACL='gpu'" in proc.stdout


@pytest.mark.slow
def test_mobilefacenet_om_matches_openvino_f32(acl, tmp_path):
    """The real network (the cached default model, float16 output like the reference om): the f32 om
    equals OpenVINO f32 on the same .pb up to fp16 rounding; the reference precision mode stays close."""
    from pymfn.export.default_model import default_model

    pb = default_model(fp16_output=True, quiet=True).path
    f32 = _convert(pb, tmp_path / "mfn_f32.om", "--dynamic-batch", "1,2,4,8", "--precision-mode", "must_keep_origin_dtype")
    ref_mode = _convert(pb, tmp_path / "mfn.om")  # the reference atc flags: batch 1, allow_fp32_to_fp16
    x = np.random.default_rng(3).uniform(-1, 1, (4, 112, 112, 3)).astype(np.float32)
    ov = acl.OpenVINOEngine(str(pb), precision="f32").execute([x])[0].astype(np.float32)
    e = acl.AclEngine(str(f32))
    out = e.outputs()[0]  # 128-d random model, or 192-d with the pretrained sirius weights
    assert out.dtype == "float16" and out.sample_bytes == 2 * ov.shape[1] and e.supported_batches() == [1, 2, 4, 8]
    got = e.execute([x])[0].astype(np.float32)
    np.testing.assert_allclose(got, ov, rtol=0, atol=2 ** -11)
    e16 = acl.AclEngine(str(ref_mode))
    got16 = np.concatenate([e16.execute([x[i:i + 1]])[0] for i in range(4)]).astype(np.float32)
    cos = np.sum(got16 * ov, axis=1) / (np.linalg.norm(got16, axis=1) * np.linalg.norm(ov, axis=1))
    assert cos.min() > 0.99, cos


def test_cann_root_is_searched_but_the_emulator_is_never_called_hardware(acl, tmp_path):
    """A 'CANN' install whose libascendcl.so is really the emulator: found through ASCEND_TOOLKIT_HOME,
    yet reported as the emulator because the library itself says so."""
    root = tmp_path / "cann"
    lib = root / "runtime" / "lib64"
    lib.mkdir(parents=True)
    (lib / "libascendcl.so").symlink_to(acl.acl_runtime()["library"])
    (root / "runtime" / "version.info").write_text("Version=7.0.RC1\n")
    code = "import json, pymfn; c = pymfn.load_core(); print(json.dumps(c.acl_runtime()))"
    proc = _run_py(code, env_extra={"ASCEND_TOOLKIT_HOME": str(root), "PYMFN_ACL": "auto"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["library"] == str(lib / "libascendcl.so") and r["cann_root"] == str(root)
    assert r["searched"][0] == str(root)
    assert r["runtime"] == "emulator" and "identifies itself as pymfn's emulator" in r["selection"]
    proc = _run_py(code, env_extra={"ASCEND_TOOLKIT_HOME": str(root), "PYMFN_ACL": "emulator"})
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["selection"] == "PYMFN_ACL=emulator" and r["cann_root"] is None
    assert r["library"] == acl.acl_runtime()["library"]

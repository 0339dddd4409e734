"""The runner refuses a dataset that does not fit the model before anything executes.

Before this check, ``infer_all``/``run_benchmark`` trusted the reader: a [4, 10] float32 .npy into a
112x112x3 model read past the mapping (SIGSEGV through OpenVINO, SIGBUS through the ACL engine), a
56x56x3 packed file gave all-NaN embeddings with exit 0, and an int8 array into a float32 model gave
finite garbage. Now every mismatch of bytes per sample, element type or stated layout is a
ShapeMismatch naming the dataset and the model input, and absurd reader sizes are InvalidArgument.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pymfn.inputs import pack
from pymfn.inputs.datasets import open_dataset
from test_openvino_engine import write_tiny_pb
from pymfn.cli import main as cli_main

pytestmark = pytest.mark.filterwarnings("ignore")

MODEL_SAMPLE = 112 * 112 * 3 * 4


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """The tiny 112x112x3 frozen graph, and (when this build has the ACL emulator) its emulator oms."""
    import pymfn

    d = tmp_path_factory.mktemp("fit")
    found = {"pb": write_tiny_pb(d / "mfn.pb")}
    core = pymfn.load_core()
    if hasattr(core, "AclEngine") and core.build_info()["acl"] == "emulated":
        shape = "--input-shape=1,112,112,3"
        for name, extra in (("static", []), ("dynamic", ["--dynamic-batch", "1,2,4,8"])):
            out = d / f"mfn_{name}.om"
            assert cli_main(["convert", str(found["pb"]), "--target", "om-emu", "--output", str(out), shape, *extra,
                                 "--precision-mode", "must_keep_origin_dtype"]) == 0
            found[name] = out
    return found


def _engine(core, models, which: str, **kw):
    if which not in models:
        pytest.skip("this build has no ACL emulator")
    if which == "pb":
        return core.OpenVINOEngine(str(models["pb"]), **kw)
    return core.AclEngine(str(models[which]), **kw)


@pytest.fixture
def tiny_npy(tmp_path) -> Path:
    path = tmp_path / "tiny.npy"
    np.save(path, np.ones((4, 10), np.float32))
    return path


def _both_entry_points(core, engine, make_reader):
    """infer_all and run_benchmark, each with a fresh reader: both must raise the same way."""
    batch = make_reader().batch_size
    settings = core.RunSettings(batch_size=batch, warmup_iterations=1, min_iterations=1, min_duration_ms=0)
    return [lambda: core.infer_all(engine, make_reader()),
            lambda: core.run_benchmark(engine, make_reader(), settings)]


# ------------------------------------------------------------------------- the issue's reproductions

@pytest.mark.parametrize("which", ["pb", "static", "dynamic"])
def test_tiny_npy_is_refused_naming_both_sides(core, models, tiny_npy, which):
    engine = _engine(core, models, which)
    ds = open_dataset(tiny_npy)
    kind = "openvino" if which == "pb" else "acl"
    for call in _both_entry_points(core, engine, lambda: ds.reader(1)):
        with pytest.raises(core.ShapeMismatch) as ei:
            call()
        msg = str(ei.value)
        assert f"dataset npy {tiny_npy}: 40 bytes per sample (float32 [10]) but {kind} model " in msg
        assert f"input 'Placeholder' expects {MODEL_SAMPLE} bytes (float32 [112, 112, 3])" in msg
        assert "\n" not in msg
        assert ei.value.path == str(tiny_npy)


def test_issue_command_exits_with_an_error_not_a_signal(models, tmp_path):
    # The issue's one-liner, in a fresh process: before the fix it died of SIGSEGV.
    code = textwrap.dedent(f"""
        import numpy as np, pymfn
        from pymfn.inputs.datasets import open_dataset
        from pymfn.runtime.engines import open_engine
        np.save('tiny.npy', np.ones((4, 10), np.float32))
        c = pymfn.load_core()
        try:
            c.infer_all(open_engine({str(models['pb'])!r}), open_dataset('tiny.npy').reader(4))
        except c.ShapeMismatch as e:
            print('refused:', e)
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert "refused: infer_all: dataset npy tiny.npy: 40 bytes per sample" in proc.stdout


@pytest.mark.parametrize("which", ["pb", "static"])
def test_packed_56x56_is_refused_not_nan(core, models, tmp_path, which):
    engine = _engine(core, models, which)
    path = tmp_path / "small.pack"
    with pack.PackedWriter(path, "float32", (56, 56, 3)) as w:
        w.append(np.random.default_rng(0).uniform(-1, 1, (5, 56, 56, 3)).astype(np.float32))
    ds = open_dataset(path)
    for call in _both_entry_points(core, engine, lambda: ds.reader(1)):
        with pytest.raises(core.ShapeMismatch, match=r"dataset packed .*small.pack: 37632 bytes per sample "
                                                     r"\(float32 \[56, 56, 3\]\) but .* expects 150528 bytes"):
            call()


@pytest.mark.parametrize("which", ["pb", "dynamic"])
@pytest.mark.parametrize("dtype, differs", [("int8", "sample sizes differ"), ("int32", "element types differ"),
                                            ("uint8", "sample sizes differ")])
def test_wrong_dtype_is_refused(core, models, which, dtype, differs):
    engine = _engine(core, models, which)
    ds = core.ArrayDataset(np.zeros((3, 112, 112, 3), dtype))
    for call in _both_entry_points(core, engine, lambda: ds.reader(1)):
        with pytest.raises(core.ShapeMismatch, match=rf"\({dtype} \[112, 112, 3\]\) but .*\(float32 \[112, 112, "
                                                     rf"3\]\): the {differs}"):
            call()


def test_same_bytes_other_layout_is_refused_flat_is_accepted(core, models):
    engine = _engine(core, models, "pb")
    nchw = core.ArrayDataset(np.zeros((2, 3, 112, 112), np.float32))
    with pytest.raises(core.ShapeMismatch, match=r"\(float32 \[3, 112, 112\]\) .*: the sample shapes differ"):
        core.infer_all(engine, nchw.reader(1))
    # A flat row states no layout: same bytes and dtype are accepted (folder datasets without a shape).
    flat = np.random.default_rng(1).uniform(-1, 1, (2, 112 * 112 * 3)).astype(np.float32)
    got = core.infer_all(engine, core.ArrayDataset(flat).reader(2))[0]
    want = engine.execute([flat.reshape(2, 112, 112, 3)])[0]
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_folder_of_wrong_size_bins_is_refused(core, models, tmp_path):
    engine = _engine(core, models, "pb")
    folder = tmp_path / "bins"
    folder.mkdir()
    for i in range(3):
        np.ones((56, 56, 3), np.float32).tofile(folder / f"{i}.bin")
    ds = core.FolderDataset(str(folder), 56 * 56 * 3 * 4, "float32", [56, 56, 3])
    with pytest.raises(core.ShapeMismatch, match=rf"dataset folder {folder}: 37632 bytes per sample") as ei:
        core.infer_all(engine, ds.reader(2))
    assert ei.value.path == str(folder)


# ------------------------------------------------------------------------ padding and dynamic batch

def test_dynamic_batch_padding_rows_stay_inside_the_buffers(core, models):
    # 7 samples in batches of 4 and 8 (the last batch padded; a batch larger than the dataset): every
    # valid row equals the batch-1 result, and nothing past the reader's buffer is read (sanitizer run).
    engine = _engine(core, models, "dynamic")
    x = np.random.default_rng(2).uniform(-1, 1, (7, 112, 112, 3)).astype(np.float32)
    one = core.infer_all(engine, core.ArrayDataset(x).reader(1))[0]
    for batch in (2, 4, 8):
        got = core.infer_all(engine, core.ArrayDataset(x).reader(batch))[0]
        np.testing.assert_allclose(got, one, atol=1e-6)


def test_dynamic_batch_model_names_its_data_input_not_the_batch_input(core, models):
    engine = _engine(core, models, "dynamic")
    ds = core.ArrayDataset(np.zeros((3, 10), np.float32))
    with pytest.raises(core.ShapeMismatch, match="input 'Placeholder' expects 150528 bytes") as ei:
        core.infer_all(engine, ds.reader(2))
    assert "ascend_mbatch_shape_data" not in str(ei.value)
    good = core.ArrayDataset(np.zeros((3, 112, 112, 3), np.float32))
    with pytest.raises(core.InvalidArgument, match=r"batch size 3 is not supported .*\(supported: 1, 2, 4, 8\)"):
        core.infer_all(engine, good.reader(3))


# ------------------------------------------------------------------------- Python engines, same rules

def test_tf_engine_is_checked_through_the_protocol(core, models):
    from pymfn.runtime.engines import TFEngine

    engine = TFEngine(models["pb"])
    bad = core.ArrayDataset(np.zeros((2, 112, 112, 3), np.int8))
    with pytest.raises(core.ShapeMismatch, match=rf"but tf model {models['pb']} input 'Placeholder' expects "
                                                 r"150528 bytes \(float32 \[112, 112, 3\]\)"):
        core.infer_all(engine, bad.reader(2))


def _python_engine(core, inputs, outputs):
    class Declared(core.Engine):
        kind = "declared"
        model_path = "<declared>"

        def inputs(self):
            return inputs()

        def outputs(self):
            return outputs()

        def execute(self, arrays):
            return [np.zeros((arrays[0].shape[0], 2), np.float32)]

    return Declared()


def test_tensor_info_must_agree_with_itself(core):
    with pytest.raises(core.InvalidArgument, match=r"sample_bytes 40 disagrees with shape \[-1, 112, 112, 3\]"):
        core.TensorInfo("x", "float32", [-1, 112, 112, 3], 40)
    with pytest.raises(core.InvalidArgument, match="sample_bytes must be >= 1"):
        core.TensorInfo("x", "float32", [-1, 4], 0)
    with pytest.raises(core.InvalidArgument, match="overflows"):
        core.TensorInfo("x", "float32", [-1, 2**40, 2**40])
    # A TensorInfo edited after construction: the trampoline refuses to view the runner's buffers with it.
    info = core.TensorInfo("x", "float32", [-1, 10])
    info.shape = [-1, 112, 112, 3]
    eng = _python_engine(core, lambda: [info], lambda: [core.TensorInfo("y", "float32", [-1, 2])])
    with pytest.raises(core.EngineError, match=r"tensor 'x' declares sample_bytes 40 but shape"):
        core.infer_all(eng, core.ArrayDataset(np.zeros((2, 10), np.float32)).reader(1))


def test_absurd_output_size_is_an_invalid_argument(core):
    eng = _python_engine(core, lambda: [core.TensorInfo("x", "float32", [-1, 4])],
                         lambda: [core.TensorInfo("y", "uint8", [-1, 2**25, 2**25])])
    ds = core.ArrayDataset(np.zeros((2, 4), np.float32))
    with pytest.raises(core.InvalidArgument, match=r"output 'y'.* more than this machine's .* of memory"):
        core.infer_all(eng, ds.reader(1))
    with pytest.raises(core.InvalidArgument, match=r"output 'y'.* more than this machine's .* of memory"):
        core.run_benchmark(eng, ds.reader(1), core.RunSettings(min_iterations=1, min_duration_ms=0))


# ------------------------------------------------------------------------------ absurd reader sizes

def _sources(core, tmp_path):
    data = np.arange(4 * 10, dtype=np.float32).reshape(4, 10)
    folder = tmp_path / "bins"
    folder.mkdir()
    for i, row in enumerate(data):
        row.tofile(folder / f"{i}.bin")
    packed = tmp_path / "x.pack"
    with pack.PackedWriter(packed, "float32", (10,)) as w:
        w.append(data)
    return data, {"array": core.ArrayDataset(data), "folder": core.FolderDataset(str(folder), 40),
                  "packed": core.PackedDataset(str(packed))}


@pytest.mark.parametrize("source", ["array", "folder", "packed"])
def test_reader_with_absurd_batch_size_is_an_invalid_argument(core, tmp_path, source):
    _, sources = _sources(core, tmp_path)
    ds = sources[source]
    with pytest.raises(core.InvalidArgument, match=r"reader\(batch_size=1000000000000.*more than this machine's"):
        ds.reader(10**12)
    with pytest.raises(core.InvalidArgument, match=r"batch_size = 10{30} is too large"):
        ds.reader(10**30)
    with pytest.raises(core.InvalidArgument, match="batch_size must be an int, got float"):
        ds.reader(2.5)
    with pytest.raises(core.InvalidArgument, match="prefetch = .* is too large"):
        ds.reader(2, 2**70)
    assert ds.reader(np.int64(2)).batch_size == 2  # numpy integers are integers


@pytest.mark.parametrize("source", ["array", "folder", "packed"])
def test_huge_prefetch_is_bounded_by_the_pass(core, tmp_path, source):
    # prefetch is "up to": more than a pass has batches reads the whole pass ahead, no more (and the
    # packed readahead loop no longer walks 10**12 empty batch indices).
    data, sources = _sources(core, tmp_path)
    reader = sources[source].reader(3, 10**12)
    rows = np.concatenate([b.valid_data.copy() for b in reader])
    np.testing.assert_array_equal(rows, data)


def test_folder_io_threads_are_capped(core, tmp_path):
    _, sources = _sources(core, tmp_path)
    with pytest.raises(core.InvalidArgument, match=r"threads = 1000000 I/O threads; at most 64"):
        sources["folder"].reader(1, 2, threads=10**6)

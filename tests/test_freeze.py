"""Freezing: frozen pb == checkpoint graph, fp16 output, interface (names, dynamic batch), errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from pymfn.export import freeze
from pymfn.training import model as mfn
from pymfn.cli import main as cli_main

EMB = 128


@pytest.fixture(scope="module")
def random_ckpt(tmp_path_factory) -> Path:
    return freeze.make_random_checkpoint(tmp_path_factory.mktemp("ck") / "ckpt", EMB, seed=3)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    rng = np.random.RandomState(1)
    return mfn.normalize(rng.randint(0, 256, (5, 112, 112, 3)).astype(np.uint8))


@pytest.fixture(scope="module")
def frozen_fp32(tmp_path_factory) -> Path:
    """freeze_random with the fixture checkpoint's seed: must give the same network."""
    return freeze.freeze_random(tmp_path_factory.mktemp("pb") / "model.pb", EMB, seed=3)


def _checkpoint_graph_embeddings(ckpt: Path, images: np.ndarray) -> np.ndarray:
    """The same network evaluated straight from the checkpoint variables (no freezing)."""
    graph, x, out = freeze.build_inference_graph(EMB)
    with graph.as_default(), tf.Session(graph=graph) as sess:
        tf.train.Saver(mfn.model_variables()).restore(sess, tf.train.latest_checkpoint(str(ckpt)))
        return sess.run(out, {x: images})


def test_frozen_equals_checkpoint_graph(random_ckpt, frozen_fp32, images) -> None:
    """Also shows freeze_random is seeded: it and make_random_checkpoint(seed=3) are built separately."""
    ref = _checkpoint_graph_embeddings(random_ckpt, images)
    got = freeze.run_frozen(frozen_fp32, images)
    assert got.dtype == np.float32 and got.shape == (5, EMB)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert np.abs(got - ref).max() <= 1e-5
    # calibrated BN: random images give clearly different embeddings, not one collapsed vector
    assert np.sum((got[0] - got[1]) ** 2) > 1e-3


def test_frozen_interface(frozen_fp32, images) -> None:
    graph_def, inp, out = freeze.load_frozen(frozen_fp32)
    assert (inp, out) == ("Placeholder:0", "embeddings:0")
    ops = {n.op for n in graph_def.node}
    assert not ops & {"VarHandleOp", "VariableV2", "ReadVariableOp", "If", "StatelessIf", "Switch", "Merge"}
    bns = [n for n in graph_def.node if n.op.startswith("FusedBatchNorm")]
    assert len(bns) == 50 and all(not n.attr["is_training"].b for n in bns)
    placeholder = next(n for n in graph_def.node if n.op == "Placeholder")
    dims = [d.size for d in placeholder.attr["shape"].shape.dim]
    assert dims == [-1, 112, 112, 3]
    # dynamic batch: 1 and 5 images through the same graph give the same per-image result
    one = freeze.run_frozen(frozen_fp32, images[:1])
    five = freeze.run_frozen(frozen_fp32, images)
    np.testing.assert_allclose(one[0], five[0], atol=1e-5)
    assert 3.5e6 < frozen_fp32.stat().st_size < 5e6  # ~1.0M float32 parameters


def test_fp16_output_and_custom_names(random_ckpt, images, tmp_path, capsys) -> None:
    pb16 = freeze.freeze_checkpoint(random_ckpt, tmp_path / "m16.pb", fp16_output=True)
    _, inp, out = freeze.load_frozen(pb16)
    assert (inp, out) == ("Placeholder:0", "the_outputs:0")
    pb32 = tmp_path / "named.pb"
    rc = cli_main(["freeze", "--ckpt", str(random_ckpt), "--out", str(pb32), "--input-name", "input",
                      "--output-name", "emb", "--embedding-size", str(EMB)])
    assert rc == 0 and "input:0" in capsys.readouterr().out
    _, inp, out = freeze.load_frozen(pb32)
    assert (inp, out) == ("input:0", "emb:0")
    e16 = freeze.run_frozen(pb16, images)
    e32 = freeze.run_frozen(pb32, images)
    assert e16.dtype == np.float16 and e32.dtype == np.float32
    # the fp32 part is the same graph, so the result is the fp32 embedding rounded to nearest fp16
    np.testing.assert_array_equal(e16, e32.astype(np.float16))
    assert 0 < np.abs(e16.astype(np.float32) - e32).max() <= 2.0 ** -12


def test_checkpoint_errors(tmp_path, random_ckpt, capsys) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        freeze.freeze_checkpoint(tmp_path / "nowhere", tmp_path / "a.pb")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="empty.*no TensorFlow checkpoint"):
        freeze.freeze_checkpoint(empty, tmp_path / "a.pb")
    # corrupt: a copy of the checkpoint whose data file is garbage of the same name
    bad = tmp_path / "corrupt"
    bad.mkdir()
    for f in random_ckpt.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    for f in bad.glob("*.index"):
        f.write_bytes(b"this is not a tensor bundle index" * 10)
    with pytest.raises(freeze.CheckpointError, match="corrupt"):
        freeze.freeze_checkpoint(bad, tmp_path / "a.pb")
    with pytest.raises(freeze.CheckpointError, match="128-d.*192"):
        freeze.freeze_checkpoint(random_ckpt, tmp_path / "a.pb", embedding_size=192)
    assert not (tmp_path / "a.pb").exists()
    assert cli_main(["freeze", "--ckpt", str(tmp_path / "nowhere"), "--out", str(tmp_path / "a.pb")]) == 1
    assert "nowhere" in capsys.readouterr().err


def test_load_frozen_rejects_non_graphs(tmp_path) -> None:
    junk = tmp_path / "junk.pb"
    junk.write_bytes(b"\xff\xfe not a protobuf \x00\x01" * 7)
    with pytest.raises(freeze.FrozenGraphError, match="junk.pb"):
        freeze.load_frozen(junk)
    empty = tmp_path / "empty.pb"
    empty.write_bytes(b"")
    with pytest.raises(freeze.FrozenGraphError, match="empty.pb.*no nodes"):
        freeze.load_frozen(empty)
    with pytest.raises(FileNotFoundError, match="absent.pb"):
        freeze.load_frozen(tmp_path / "absent.pb")


def test_out_checked_before_freezing_and_sizes_bounded(tmp_path, capsys) -> None:
    """--out as an existing directory failed only after the graph was built, with the temp file's name in
    the message; a huge --embedding-size for --random tried to build a graph of that width."""
    (tmp_path / "ck").mkdir()  # no checkpoint here either: the --out error must come first
    assert cli_main(["freeze", "--ckpt", str(tmp_path / "ck"), "--out", str(tmp_path)]) == 1
    assert capsys.readouterr().err == f"pymfn freeze: error: --out {tmp_path}: is an existing directory; give a file name\n"
    assert cli_main(["freeze", "--random", "--out", "/proc/pymfn.pb"]) == 1
    assert "--out /proc/pymfn.pb: cannot write in /proc" in capsys.readouterr().err
    assert cli_main(["freeze", "--random", "--out", str(tmp_path / "a.pb"), "--embedding-size", str(10**12)]) == 1
    assert "--embedding-size must be 1..65536" in capsys.readouterr().err
    assert cli_main(["freeze", "--random", "--out", str(tmp_path / "a.pb"), "--seed", "-1"]) == 1
    assert "--seed must be" in capsys.readouterr().err
    assert not (tmp_path / "a.pb").exists()


def test_truncated_checkpoint_data_is_a_checkpoint_error(random_ckpt, tmp_path) -> None:
    """A .data file cut short raised a bare IndexError ('Read less bytes than requested'): an internal error."""
    cut = tmp_path / "cut"
    cut.mkdir()
    for f in random_ckpt.iterdir():
        data = f.read_bytes()
        (cut / f.name).write_bytes(data[:1000] if ".data-" in f.name else data)
    with pytest.raises(freeze.CheckpointError, match=r"cannot read .*truncated or corrupt checkpoint data "
                                                      r"\(Read less bytes than requested\)"):
        freeze.freeze_checkpoint(cut, tmp_path / "a.pb")
    assert not (tmp_path / "a.pb").exists()

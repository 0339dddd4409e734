"""ArcFace loss, learning-rate schedules, resume/checkpoint errors, LFW protocol, and a CI-sized training run."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from pymfn.training import tfrecords as data
from pymfn.training import train
from pymfn.training.train import TrainConfig, TrainError
from pymfn.cli import main as cli_main


def _session_run(build):
    import tensorflow.compat.v1 as tf

    with tf.Graph().as_default():
        tensors = build(tf)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            return sess.run(tensors)


# --------------------------------------------------------------------------------------------- ArcFace


def _arcface_numpy(cos, labels, s, m):
    theta = np.arccos(np.clip(cos, -1, 1))
    target = np.where(theta + m <= math.pi, np.cos(theta + m), cos - m * math.sin(m))
    logits = s * cos.copy()
    rows = np.arange(len(labels))
    logits[rows, labels] = s * target[rows, labels]
    return logits


def test_arcface_margin_formula():
    from pymfn.training.losses import arcface_margin

    cos = np.array([[0.9, 0.1, -0.2], [-0.95, 0.3, 0.0], [0.5, -0.999, 1.0]], np.float32)
    labels = np.array([0, 0, 1])
    out = _session_run(lambda tf: arcface_margin(tf.constant(cos), tf.one_hot(labels, 3), s=64.0, m=0.5))
    np.testing.assert_allclose(out, _arcface_numpy(cos.astype(np.float64), labels, 64.0, 0.5), atol=2e-4)
    # row 1 (theta ~ 2.82 > pi - 0.5) takes the fallback cos - m sin m, not cos(theta + m)
    assert out[1, 0] == pytest.approx(64 * (-0.95 - 0.5 * math.sin(0.5)), abs=1e-3)
    # the target logit decreases monotonically in theta over [0, pi], across the switch at pi - m
    theta = np.linspace(0, math.pi, 2001)
    c = np.cos(theta).astype(np.float32)[:, None]
    curve = _session_run(lambda tf: arcface_margin(tf.constant(c), tf.ones([len(c), 1]), s=1.0, m=0.5))[:, 0]
    assert np.all(np.diff(curve) <= 1e-6)
    assert curve[0] == pytest.approx(math.cos(0.5), abs=1e-5) and curve[-1] == pytest.approx(-1 - 0.5 * math.sin(0.5), abs=1e-4)
    with pytest.raises(ValueError, match="margin"):
        _session_run(lambda tf: arcface_margin(tf.constant(cos), tf.one_hot(labels, 3), m=2.0))


def test_arcface_head_normalises_and_matches_numpy():
    from pymfn.training.losses import arcface

    rng = np.random.RandomState(0)
    emb = rng.randn(6, 8).astype(np.float32) * 3
    labels = np.array([0, 1, 2, 3, 4, 0])
    w = rng.randn(8, 5).astype(np.float32)

    def run(scale):
        import tensorflow.compat.v1 as tf

        with tf.Graph().as_default():
            out = arcface(tf.constant(emb), tf.constant(labels), 5, s=30.0, m=0.3, weight_decay=1e-3)
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                sess.run(tf.assign(out.weights, w * scale[None, :]))  # separate run: no read/assign race
                return sess.run([out.logits, out.loss, tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES)])

    logits, loss, reg = run(np.ones(5, np.float32))
    logits2, _, _ = run(np.array([1, 2, 3, 0.5, 10], np.float32))
    np.testing.assert_allclose(logits, logits2, atol=1e-3)  # class centres are normalised
    cos = (emb / np.linalg.norm(emb, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=0, keepdims=True))
    want = _arcface_numpy(cos, labels, 30.0, 0.3)
    np.testing.assert_allclose(logits, want, atol=1e-3)
    z = want - want.max(axis=1, keepdims=True)
    ce = -(z[np.arange(6), labels] - np.log(np.exp(z).sum(axis=1)))
    assert loss == pytest.approx(ce.mean(), rel=1e-4)
    assert len(reg) == 1  # the class-centre L2 penalty is registered for the trainer to add


# --------------------------------------------------------------------------------------- schedules, CLI


@pytest.mark.parametrize("schedule,expect", [
    ("constant", {0: 0.01, 50: 0.01, 99: 0.01}),
    ("step", {0: 0.01, 19: 0.01, 20: 0.001, 49: 0.001, 50: 0.0001}),
    ("cosine", {0: 0.01, 50: 0.005 + 0.5 * 0.0, 100: 0.0}),
])
def test_learning_rate(schedule, expect):
    cfg = TrainConfig(data="", ckpt_dir="", lr=0.01, lr_schedule=schedule, lr_decay_epochs=[2, 5])

    def build(tf):
        step = tf.placeholder(tf.int64, [])
        return step, train.learning_rate(cfg, step, steps_per_epoch=10, total_steps=100)

    import tensorflow.compat.v1 as tf

    with tf.Graph().as_default():
        step, lr = build(tf)
        with tf.Session() as sess:
            for s, want in expect.items():
                assert sess.run(lr, {step: s}) == pytest.approx(want, abs=1e-7), (schedule, s)


def test_warmup():
    cfg = TrainConfig(data="", ckpt_dir="", lr=0.1, warmup_steps=10)
    import tensorflow.compat.v1 as tf

    with tf.Graph().as_default():
        step = tf.placeholder(tf.int64, [])
        lr = train.learning_rate(cfg, step, 10, 100)
        with tf.Session() as sess:
            assert sess.run(lr, {step: 0}) == pytest.approx(0.01)
            assert sess.run(lr, {step: 4}) == pytest.approx(0.05)
            assert sess.run(lr, {step: 10}) == pytest.approx(0.1)


def test_reference_flags():
    from pymfn.cli import parser_for
    from pymfn.cli import train as train_cli

    p = parser_for("pymfn train", train_cli)
    ref = train_cli.config_from_args(p.parse_args(["--data", "d", "--ckpt-dir", "c", "-max_epoch", "3",
                                                   "-train_batch_size", "16"]))
    new = train_cli.config_from_args(p.parse_args(["--data", "d", "--ckpt-dir", "c", "--max-epoch", "3",
                                                   "--train-batch-size", "16"]))
    assert ref == new and ref.max_epoch == 3 and ref.batch_size == 16
    d = train_cli.config_from_args(p.parse_args(["--data", "d", "--ckpt-dir", "c"]))
    assert (d.batch_size, d.lr, d.optimizer, d.weight_decay, d.max_epoch, d.arcface_s, d.arcface_m,
            d.embedding_size) == (64, 0.01, "adam", 1e-5, 10, 64.0, 0.5, 128)


def test_bad_options_and_data(tmp_path, capsys):
    assert cli_main(["train", "--data", str(tmp_path / "none"), "--ckpt-dir", str(tmp_path / "c")]) == 1
    assert "--data: training data not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli_main(["train", "--data", str(tmp_path / "empty"), "--ckpt-dir", str(tmp_path / "c")]) == 1
    assert "no images found" in capsys.readouterr().err
    assert cli_main(["train", "--data", "x", "--ckpt-dir", "c", "--train-batch-size", "0"]) == 1
    assert "--train-batch-size must be >= 1" in capsys.readouterr().err
    assert cli_main(["train", "--data", "x", "--ckpt-dir", "c", "--eval-lfw", str(tmp_path / "lfw.bin")]) == 1
    assert "lfw.bin not found" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ LFW protocol


def test_ten_fold_accuracy_agrees_with_eval_module():
    rng = np.random.RandomState(1)
    issame = np.tile(np.repeat([True, False], 30), 10)
    a = rng.randn(600, 16)
    b = np.where(issame[:, None], a + 0.9 * rng.randn(600, 16), rng.randn(600, 16))
    emb = np.empty((1200, 16))
    emb[0::2], emb[1::2] = a, b
    mean, std = train.ten_fold_accuracy(emb, issame)
    assert 0.6 < mean < 1.0
    ev = pytest.importorskip("pymfn.metrics.lfw")
    res = ev.evaluate(emb, issame)
    assert mean == pytest.approx(res.accuracy, abs=1e-12) and std == pytest.approx(res.accuracy_std, abs=1e-12)


def test_subset_pairs_is_balanced_per_fold():
    issame = np.tile(np.repeat([True, False], 300), 10)
    keep = train.subset_pairs(issame, 1000)
    assert len(keep) == 1000 and issame[keep].sum() == 500
    assert all(((keep >= 600 * k) & (keep < 600 * (k + 1))).sum() == 100 for k in range(10))
    with pytest.raises(TrainError, match="at least 20"):
        train.subset_pairs(issame, 10)


# ------------------------------------------------------------------------------------ checkpoint errors


def test_find_resume_checkpoint(tmp_path):
    assert train.find_resume_checkpoint(tmp_path / "missing") is None
    assert train.find_resume_checkpoint(tmp_path) is None
    state = tmp_path / "checkpoint"
    state.write_text("this is { not a checkpoint state")
    with pytest.raises(TrainError, match=r"checkpoint: corrupt checkpoint state file"):
        train.find_resume_checkpoint(tmp_path)
    state.write_text('model_checkpoint_path: "model.ckpt-7"\n')
    with pytest.raises(TrainError, match=r"model\.ckpt-7\.index is missing"):
        train.find_resume_checkpoint(tmp_path)
    (tmp_path / "model.ckpt-7.index").write_bytes(b"")
    assert train.find_resume_checkpoint(tmp_path) == str(tmp_path / "model.ckpt-7")
    state.write_text('model_checkpoint_path: "/elsewhere/old/model.ckpt-7"\n')  # directory was moved
    assert train.find_resume_checkpoint(tmp_path) == str(tmp_path / "model.ckpt-7")
    state.unlink()
    (tmp_path / "model.ckpt-12.index").write_bytes(b"")
    assert train.find_resume_checkpoint(tmp_path) == str(tmp_path / "model.ckpt-12")


@pytest.mark.parametrize("damage", ["corrupt", "missing_data", "shape"])
def test_restore_errors_name_the_checkpoint(tmp_path, damage):
    import tensorflow.compat.v1 as tf

    prefix = str(tmp_path / "model.ckpt-1")
    with tf.Graph().as_default():
        tf.get_variable("w", [4, 3], initializer=tf.ones_initializer())
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            tf.train.Saver().save(sess, prefix)
    data_file = tmp_path / "model.ckpt-1.data-00000-of-00001"
    if damage == "corrupt":
        data_file.write_bytes(b"\x00garbage" * 3)
        (tmp_path / "model.ckpt-1.index").write_bytes(b"not an index at all")
    elif damage == "missing_data":
        data_file.unlink()
    with tf.Graph().as_default():
        tf.get_variable("w", [4, 5] if damage == "shape" else [4, 3])
        saver = tf.train.Saver()
        with tf.Session() as sess:
            with pytest.raises(TrainError, match=r"checkpoint .*model\.ckpt-1"):
                train._restore(saver, sess, prefix)


# ------------------------------------------------------------------------------------------- training


def _tiny_model(images, is_training, embedding_size, weight_decay, reuse=None):
    """A linear stand-in backbone: exercises the loop mechanics in a second, not the network."""
    import tensorflow.compat.v1 as tf

    with tf.variable_scope("tiny", reuse=reuse):
        x = tf.nn.avg_pool(images, [1, 8, 8, 1], [1, 8, 8, 1], "VALID")  # 14x14x3
        w = tf.get_variable("w", [14 * 14 * 3, embedding_size])
        return tf.matmul(tf.reshape(x, [-1, 14 * 14 * 3]), w)


def _tiny_tfrecords(tmp_path):
    from PIL import Image

    root = tmp_path / "tree"
    rng = np.random.RandomState(0)
    for c in range(3):
        (root / f"id{c}").mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.randint(0, 255, (112, 112, 3), dtype=np.uint8)).save(root / f"id{c}" / f"{i}.jpg")
    data.tfrecords_from_tree(root, tmp_path / "tfr", num_shards=1)
    return tmp_path / "tfr"


def test_loop_mechanics_with_stand_in_model(tmp_path):
    tfr = _tiny_tfrecords(tmp_path)
    cfg = TrainConfig(data=str(tfr), ckpt_dir=str(tmp_path / "ck"), batch_size=4, max_epoch=2, save_every=2,
                      keep=2, progress=False, lr_schedule="cosine", summary_every=1)
    res = train.train(cfg, model_fn=_tiny_model)
    assert res.final_step == 6 and res.steps == list(range(1, 7))  # 2 epochs of 12 images at batch 4
    kept = sorted(p.name for p in (tmp_path / "ck").glob("model.ckpt-*.index"))
    assert kept == ["model.ckpt-4.index", "model.ckpt-6.index"]  # --keep 2
    # --init-from: a fresh run starts from the backbone weights of another run (fine-tuning)
    import tensorflow.compat.v1 as tf

    ft = TrainConfig(**{**cfg.__dict__, "ckpt_dir": str(tmp_path / "ft"), "init_from": str(tmp_path / "ck"),
                        "max_steps": 1, "lr": 1e-7, "lr_schedule": "constant"})
    assert train.train(ft, model_fn=_tiny_model).final_step == 1
    w_a = tf.train.load_variable(str(tmp_path / "ck" / "model.ckpt-6"), "tiny/w")
    w_b = tf.train.load_variable(str(tmp_path / "ft" / "model.ckpt-1"), "tiny/w")
    np.testing.assert_allclose(w_a, w_b, atol=1e-5)
    with pytest.raises(TrainError, match=r"--init-from: no checkpoint in directory"):
        train.train(TrainConfig(**{**ft.__dict__, "ckpt_dir": str(tmp_path / "ft2"), "init_from": str(tmp_path)}),
                    model_fn=_tiny_model)
    with pytest.raises(TrainError, match=r"tiny/w has shape \[588, 128\] there, \[588, 16\] here"):
        train.train(TrainConfig(**{**ft.__dict__, "ckpt_dir": str(tmp_path / "ft3"), "embedding_size": 16}),
                    model_fn=_tiny_model)

    # a truncated shard is refused up front: its size differs from the one pymfn_data.json records
    shard = next(tfr.glob("*.tfrecord"))
    shard.write_bytes(shard.read_bytes()[:5000])
    with pytest.raises(TrainError, match=rf"{shard}: truncated shard: 5000 bytes"):
        train.train(TrainConfig(**{**cfg.__dict__, "ckpt_dir": str(tmp_path / "ck2")}), model_fn=_tiny_model)
    # without recorded sizes (older metadata) the pipeline fails, and the shard is named after the fact
    # (TF 2 itself only said "Graph execution error:")
    meta_path = tfr / data.META_NAME
    meta = json.loads(meta_path.read_text())
    del meta["shard_bytes"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(TrainError, match=rf"shard {shard} is truncated or corrupt \(truncated record at 0"):
        train.train(TrainConfig(**{**cfg.__dict__, "ckpt_dir": str(tmp_path / "ck2"), "shuffle_buffer": 1}),
                    model_fn=_tiny_model)
    # cut to fewer bytes than the listed records can occupy: refused before the graph is built
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(TrainError, match=rf"{shard}: truncated shard: 100 bytes cannot hold the 12 records"):
        train.train(TrainConfig(**{**cfg.__dict__, "ckpt_dir": str(tmp_path / "ck3")}), model_fn=_tiny_model)


def test_damaged_shard_among_several_is_named(tmp_path):
    """tf.data interleaves the shards; the error must still name the broken one, not the first."""
    from PIL import Image

    root = tmp_path / "tree"
    rng = np.random.RandomState(1)
    for c in range(2):
        (root / f"id{c}").mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.randint(0, 255, (112, 112, 3), dtype=np.uint8)).save(root / f"id{c}" / f"{i}.jpg")
    data.tfrecords_from_tree(root, tmp_path / "tfr", num_shards=3)
    shards = sorted((tmp_path / "tfr").glob("*.tfrecord"))
    raw = bytearray(shards[1].read_bytes())
    raw[200] ^= 0xFF  # inside the first record's data: a CRC mismatch, the file length unchanged
    shards[1].write_bytes(bytes(raw))
    assert [Path(s).name for s, _ in data.find_damaged_shards([str(s) for s in shards])] == [shards[1].name]
    cfg = TrainConfig(data=str(tmp_path / "tfr"), ckpt_dir=str(tmp_path / "ck"), batch_size=2, max_steps=8,
                      progress=False, shuffle_buffer=1)
    with pytest.raises(TrainError, match=rf"shard {shards[1]} is truncated or corrupt \(corrupted record"):
        train.train(cfg, model_fn=_tiny_model)


def test_ckpt_dir_checked_before_any_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    # --data does not exist either: the --ckpt-dir error must come first (before data and LFW are read)
    with pytest.raises(TrainError, match=r"--ckpt-dir .*file/ck: .*file is not a directory"):
        train.train(TrainConfig(data=str(tmp_path / "nodata"), ckpt_dir=str(blocker / "ck")))
    with pytest.raises(TrainError, match=r"--ckpt-dir /proc/pymfn-ck: cannot write in /proc"):
        train.train(TrainConfig(data=str(tmp_path / "nodata"), ckpt_dir="/proc/pymfn-ck"))



def _small_tree(src, dst, identities: int, per_identity: int):
    names = [p.name for p in sorted(src.iterdir()) if p.is_dir() and len(list(p.iterdir())) >= per_identity]
    for name in names[:identities]:
        (dst / name).mkdir(parents=True)
        for f in sorted((src / name).iterdir())[:per_identity]:
            (dst / name / f.name).symlink_to(f)
    return dst


@pytest.mark.slow
def test_training_loss_falls_and_resumes(lfw_train_dir, tmp_path):
    tree = _small_tree(lfw_train_dir, tmp_path / "tree", identities=8, per_identity=8)
    assert cli_main(["data", "tfrecord", "--from", str(tree), "--out", str(tmp_path / "tfr"), "--shards", "2"]) == 0
    ckpt = tmp_path / "ckpt"
    cfg = TrainConfig(data=str(tmp_path / "tfr"), ckpt_dir=str(ckpt), batch_size=8, max_steps=32,
                      save_every=1000, summary_every=4, progress=False, seed=0, threads=2, shuffle_buffer=64)
    res = train.train(cfg)
    assert res.start_step == 0 and res.final_step == 32 and len(res.losses) == 32
    assert all(np.isfinite(res.losses))
    first, last = np.mean(res.losses[:8]), np.mean(res.losses[-8:])
    assert last < 0.7 * first, f"loss did not fall: first 8 steps {first:.2f}, last 8 steps {last:.2f}"
    info = json.loads((ckpt / "pymfn_model.json").read_text())
    assert info["embedding_size"] == 128 and info["num_classes"] == 8
    assert (ckpt / "model.ckpt-32.index").exists() and list(ckpt.glob("events.out.tfevents.*"))

    # same directory again: resumes at 32 (weights and Adam state restored), runs to 34
    res2 = train.train(TrainConfig(**{**cfg.__dict__, "max_steps": 34}))
    assert res2.resumed_from == str(ckpt / "model.ckpt-32") and res2.start_step == 32 and res2.final_step == 34
    assert np.mean(res2.losses) < first

    # a different architecture against these checkpoints is refused, naming the info file
    with pytest.raises(TrainError, match="pymfn_model.json: checkpoints .* have embedding size 128"):
        train.train(TrainConfig(**{**cfg.__dict__, "embedding_size": 64, "max_steps": 40}))


def test_data_checked_against_the_configuration_before_building(tmp_path):
    tfr = _tiny_tfrecords(tmp_path)  # 12 images, 3 identities
    cfg = TrainConfig(data=str(tfr), ckpt_dir=str(tmp_path / "ck"), progress=False)
    with pytest.raises(TrainError, match=rf"--train-batch-size 64: --data {tfr} has only 12 training images"):
        train.train(cfg, model_fn=_tiny_model)
    meta_path = tfr / data.META_NAME
    meta = json.loads(meta_path.read_text())
    for classes, needle in [(1, "1 identity; ArcFace training needs at least 2"),
                            (10**12, "identities make a .* GiB ArcFace head")]:
        meta_path.write_text(json.dumps(dict(meta, num_classes=classes)))
        with pytest.raises(TrainError, match=needle):
            train.train(TrainConfig(**{**cfg.__dict__, "batch_size": 4}), model_fn=_tiny_model)
    assert not (tmp_path / "ck").exists()


@pytest.mark.parametrize("option, value", [("lr", float("nan")), ("lr", float("inf")), ("arcface_m", 2.0),
                                           ("threads", -1), ("embedding_size", 10**9), ("shuffle_buffer", 0)])
def test_bad_numbers_are_refused_before_any_work(tmp_path, option, value):
    cfg = TrainConfig(data=str(tmp_path / "none"), ckpt_dir=str(tmp_path / "ck"), **{option: value})
    with pytest.raises(TrainError, match=f"--{option.replace('_', '-')} must be"):
        train.train(cfg)

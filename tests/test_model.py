"""MobileFaceNet graph: parameter count from the paper's table, shapes, BN/weight-decay wiring, normalize."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from pymfn.training import model as mfn


def _expected_parameters(embedding_size: int) -> int:
    """Count from the architecture table by hand (independent of the graph code).

    Per layer: kernel + BN gamma/beta (2 per channel) + PReLU alpha (1 per channel) where present.
    """
    def conv(k: int, cin: int, cout: int, prelu: bool) -> int:
        return k * k * cin * cout + 2 * cout + (cout if prelu else 0)

    def dw(k: int, ch: int, prelu: bool) -> int:
        return k * k * ch + 2 * ch + (ch if prelu else 0)

    total = conv(3, 3, 64, True) + dw(3, 64, True)
    table = [(2, 64, 5), (4, 128, 1), (2, 128, 6), (4, 128, 1), (2, 128, 2)]  # (t, c, n); strides don't count
    cin = 64
    for t, c, n in table:
        for _ in range(n):
            hidden = cin * t
            total += conv(1, cin, hidden, True) + dw(3, hidden, True) + conv(1, hidden, c, False)
            cin = c
    total += conv(1, 128, 512, True)          # conv 1x1 512
    total += dw(7, 512, False)                # linear GDConv 7x7
    total += conv(1, 512, embedding_size, False)  # linear conv 1x1 + BN
    return total


def test_parameter_count_matches_table() -> None:
    expected = _expected_parameters(128)
    assert mfn.count_parameters(128) == expected
    assert 0.95e6 < expected < 1.05e6  # "about 1.0M" as in the paper


@pytest.fixture(scope="module")
def train_graph():
    """One graph with a bool tensor for is_training, embedding 192."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [None, 112, 112, 3])
        training = tf.placeholder_with_default(False, [])
        y = mfn.mobilefacenet(x, training, embedding_size=192, weight_decay=1e-4)
        sess = tf.Session(graph=graph)
        sess.run(tf.global_variables_initializer())
    yield graph, sess, x, training, y
    sess.close()


def test_graph_wiring(train_graph) -> None:
    graph, _, _, _, y = train_graph
    assert y.shape.as_list() == [None, 192]
    with graph.as_default():
        kernels = [v for v in tf.trainable_variables() if v.op.name.endswith("weights")]
        reg = tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES)
        updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
        bn_means = [v for v in tf.global_variables() if v.op.name.endswith("moving_mean")]
        trainable_names = {v.op.name for v in tf.trainable_variables()}
        n_trainable = sum(int(np.prod(v.shape.as_list())) for v in tf.trainable_variables())
    assert n_trainable == _expected_parameters(192)  # the real variables of a 192-d training graph
    # conv1, conv2_dw, 15 blocks x 3, conv3, gdconv, embedding
    assert len(kernels) == 1 + 1 + 15 * 3 + 3 == len(reg)
    assert len(bn_means) == len(kernels)  # every conv has a BN
    assert len(updates) == 2 * len(bn_means)
    assert not any(n.endswith(("moving_mean", "moving_variance")) for n in trainable_names)
    op_types = {op.type for op in graph.get_operations()}
    assert {"Conv2D", "DepthwiseConv2dNative", "Relu", "Abs"} <= op_types


def test_weight_decay_value(train_graph) -> None:
    graph, sess, *_ = train_graph
    with graph.as_default():
        reg = tf.add_n(tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES))
        kernels = [v for v in tf.trainable_variables() if v.op.name.endswith("weights")]
        values = sess.run(kernels)
        got = sess.run(reg)
    expected = 1e-4 * sum(float(np.sum(v.astype(np.float64) ** 2)) / 2 for v in values)
    assert got == pytest.approx(expected, rel=1e-4)


def test_bn_moving_stats_follow_is_training(train_graph) -> None:
    graph, sess, x, training, y = train_graph
    with graph.as_default():
        updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
        mean = [v for v in tf.global_variables() if v.op.name == "MobileFaceNet/conv1/bn/moving_mean"][0]
    images = np.random.RandomState(0).uniform(-1, 1, (4, 112, 112, 3)).astype(np.float32)
    before = sess.run(mean)
    sess.run(updates, {x: images, training: False})
    np.testing.assert_array_equal(sess.run(mean), before)  # inference branch: exact no-op
    out_train = sess.run(y, {x: images, training: True})
    sess.run(updates, {x: images, training: True})
    after = sess.run(mean)
    assert np.abs(after - before).max() > 0
    # decay 0.995: the step moves 0.5% of the way towards the batch mean
    with graph.as_default():
        conv1 = graph.get_tensor_by_name("MobileFaceNet/conv1/Conv2D:0")
    batch_mean = sess.run(conv1, {x: images}).mean(axis=(0, 1, 2))
    np.testing.assert_allclose(after, before + (batch_mean - before) * (1 - 0.995), rtol=1e-3, atol=1e-6)
    assert out_train.shape == (4, 192) and np.isfinite(out_train).all()


def test_normalize() -> None:
    u8 = np.array([[0, 255, 128]], np.uint8)
    out = mfn.normalize(u8)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.array([[-127.5 / 128, 127.5 / 128, 0.5 / 128]], np.float32))
    np.testing.assert_array_equal(mfn.normalize(u8.astype(np.float64)), out)
    with tf.Graph().as_default(), tf.Session() as sess:
        np.testing.assert_array_equal(sess.run(mfn.normalize(tf.constant(u8))), out)
    with pytest.raises(TypeError, match="dtype"):
        mfn.normalize(np.array(["a"]))


def test_bad_inputs_are_rejected() -> None:
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match=r"\[N, 112, 112, 3\]"):
            mfn.mobilefacenet(tf.placeholder(tf.float32, [None, 96, 96, 3]), False)
        with pytest.raises(ValueError, match=r"\[N, 112, 112, 3\]"):
            mfn.mobilefacenet(tf.placeholder(tf.float32, [None, 3, 112, 112]), False)
        with pytest.raises(TypeError, match="float32"):
            mfn.mobilefacenet(tf.placeholder(tf.uint8, [None, 112, 112, 3]), False)
        with pytest.raises(ValueError, match="embedding_size"):
            mfn.mobilefacenet(tf.placeholder(tf.float32, [None, 112, 112, 3]), False, embedding_size=0)


def test_model_info_roundtrip(tmp_path) -> None:
    assert mfn.read_model_info(tmp_path) is None
    mfn.write_model_info(tmp_path, 192, source="x")
    info = mfn.read_model_info(tmp_path)
    assert info["embedding_size"] == 192 and info["source"] == "x"
    (tmp_path / mfn.MODEL_INFO_FILE).write_text("{not json")
    with pytest.raises(ValueError, match=mfn.MODEL_INFO_FILE):
        mfn.read_model_info(tmp_path)
    (tmp_path / mfn.MODEL_INFO_FILE).write_text('{"embedding_size": "big"}')
    with pytest.raises(ValueError, match="embedding_size"):
        mfn.read_model_info(tmp_path)

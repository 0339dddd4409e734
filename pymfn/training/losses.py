"""ArcFace (additive angular margin) loss, TF 1.15-compatible graph code.

ArcFace (Deng et al., 2019) classifies normalised embeddings against normalised class centres with
logits ``s * cos(theta_j)``, except that the true class uses ``s * cos(theta_y + m)``: the network must
beat the other classes by an angle ``m``, which is what makes the embeddings verify well.

``cos(theta + m)`` stops being monotonic in theta once ``theta + m > pi``: a very wrong sample would
then get a *larger* target logit as it grows worse. InsightFace's standard formulation (not the
"easy margin" variant) therefore switches, for ``theta > pi - m``, to the linear fallback
``cos(theta) - m * sin(m)`` (a CosFace-style additive margin), which keeps the target logit decreasing
in theta all the way to pi. It is not continuous at the switch: it steps down from -1 to
``-cos(m) - m sin(m)`` (-1.117 for m=0.5), still in the decreasing direction. We do the same.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import tensorflow.compat.v1 as tf


@dataclass
class ArcFaceOutput:
    logits: tf.Tensor  # [N, C] scaled logits with the margin on the true class (what the loss sees)
    cos: tf.Tensor  # [N, C] plain cosines, no margin: argmax gives the classification for accuracy
    loss: tf.Tensor  # scalar mean cross-entropy
    weights: tf.Variable  # [E, C] class centres (unnormalised)


def arcface_margin(cos: tf.Tensor, one_hot: tf.Tensor, s: float = 64.0, m: float = 0.5) -> tf.Tensor:
    """Turn cosines [N, C] into ArcFace logits: ``s * cos(theta + m)`` on the true class (with the
    ``cos - m sin m`` fallback past ``pi - m``), ``s * cos`` elsewhere."""
    if s <= 0:
        raise ValueError(f"ArcFace scale s must be > 0, got {s}")
    if not 0 <= m < math.pi / 2:
        raise ValueError(f"ArcFace margin m must be in [0, pi/2), got {m}")
    cos = tf.clip_by_value(cos, -1.0, 1.0)
    sin = tf.sqrt(tf.maximum(1.0 - tf.square(cos), 0.0))
    cos_m = cos * math.cos(m) - sin * math.sin(m)  # cos(theta + m)
    threshold = math.cos(math.pi - m)  # theta > pi - m  <=>  cos < cos(pi - m)
    cos_m = tf.where(cos > threshold, cos_m, cos - m * math.sin(m))
    return s * (one_hot * cos_m + (1.0 - one_hot) * cos)


def arcface(embeddings: tf.Tensor, labels: tf.Tensor, num_classes: int, s: float = 64.0, m: float = 0.5,
            weight_decay: float = 0.0, scope: str = "arcface") -> ArcFaceOutput:
    """ArcFace head and loss on ``embeddings`` [N, E] (prelogits; normalised here) and int ``labels`` [N].

    Creates the class-centre matrix ``scope/weights`` [E, C] with ``tf.get_variable`` (so it saves and
    restores like the backbone). Its L2 penalty (``weight_decay``) goes to REGULARIZATION_LOSSES, like
    the backbone's, so the caller adds all regularisation in one place. Returns logits and loss.
    """
    if num_classes < 2:
        raise ValueError(f"ArcFace needs at least 2 classes, got {num_classes}")
    emb_size = embeddings.shape[-1]
    emb_size = int(emb_size) if emb_size is not None else None
    if emb_size is None:
        raise ValueError("embeddings need a static last dimension")
    with tf.variable_scope(scope):
        reg = (lambda w: weight_decay * tf.nn.l2_loss(w)) if weight_decay > 0 else None
        weights = tf.get_variable("weights", [emb_size, num_classes], tf.float32,
                                  initializer=tf.glorot_uniform_initializer(), regularizer=reg)
        emb_n = tf.nn.l2_normalize(embeddings, 1, 1e-10)
        w_n = tf.nn.l2_normalize(weights, 0, 1e-10)
        cos = tf.matmul(emb_n, w_n, name="cos")
        labels = tf.cast(labels, tf.int32)
        one_hot = tf.one_hot(labels, num_classes, dtype=cos.dtype)
        logits = tf.identity(arcface_margin(cos, one_hot, s, m), name="logits")
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits),
                              name="loss")
    return ArcFaceOutput(logits, cos, loss, weights)

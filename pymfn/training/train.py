"""Train MobileFaceNet with the ArcFace loss (the library behind ``pymfn train``).

The loop is TF1 graph-mode code (``tensorflow.compat.v1``, ``tf.get_variable``, ``tf.data``, ``tf.train``
savers and optimizers) so the same script runs here on TF 2.x CPU and on an Ascend 910 with TF 1.15 and
npu_bridge (``--device npu`` only swaps the session config). Defaults are the reference's: batch 64,
Adam, lr 0.01, weight decay 1e-5, 10 epochs, ArcFace s=64 m=0.5, 128-d embedding.

Checkpoints: ``--ckpt-dir`` holds ``model.ckpt-<step>`` (the last ``--keep`` of them), TensorBoard event
files, and ``pymfn_model.json`` (architecture, ``embedding_size``, classes) that the freeze step reads.
Running again with the same ``--ckpt-dir`` resumes from the newest checkpoint; anything unreadable
there is an error naming the file, never a silent restart from scratch. (The input pipeline restarts
its shuffle on resume; the step count, weights and optimizer state continue.)
"""
from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable, Sequence

import numpy as np

from pymfn.errors import CommandError, one_line
from pymfn.files.outputs import check_output_dir

CHECKPOINT_PREFIX = "model.ckpt"
MODEL_INFO_FILE = "pymfn_model.json"  # same name as pymfn.training.model.MODEL_INFO_FILE
MAX_EMBEDDING_SIZE = 65536  # far above face embeddings (128..512); larger is a typo that would exhaust memory


class TrainError(RuntimeError):
    """Training cannot start or continue; the message names the file or option at fault."""


@dataclass
class TrainConfig:
    data: str
    ckpt_dir: str
    batch_size: int = 64
    max_epoch: int = 10
    max_steps: int | None = None  # absolute global step to stop at (caps max_epoch)
    lr: float = 0.01
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 1e-5
    embedding_size: int = 128
    arcface_s: float = 64.0
    arcface_m: float = 0.5
    lr_schedule: str = "constant"
    lr_decay_epochs: Sequence[float] = ()
    lr_decay_factor: float = 0.1
    lr_min: float = 0.0
    warmup_steps: int = 0
    keep: int = 5
    save_every: int = 1000
    summary_every: int = 10
    eval_lfw: str | None = None
    eval_every: int = 2000
    eval_batch: int = 100
    eval_pairs: int | None = None  # balanced subset of LFW pairs (fast smoke evaluation); None = all 6000
    init_from: str | None = None  # checkpoint (or dir) whose backbone weights start a fresh run (fine-tuning)
    device: str = "cpu"
    precision_mode: str = "allow_mix_precision"
    fusion_switch_file: str | None = None
    threads: int = 0
    seed: int = 0
    flip: bool = True
    shuffle_buffer: int = 10000
    progress: bool = True


@dataclass
class TrainResult:
    """What a run did, for callers and tests: per-step loss and accuracy of the steps run in this call."""

    start_step: int
    final_step: int
    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # ArcFace cross-entropy (without weight decay)
    accuracies: list[float] = field(default_factory=list)  # batch accuracy, argmax of cosines (no margin)
    lfw: list[tuple[int, float, float]] = field(default_factory=list)  # (step, mean accuracy, std)
    checkpoint: str | None = None
    resumed_from: str | None = None


# ------------------------------------------------------------------------------------------ checkpoints


def find_resume_checkpoint(ckpt_dir: str | os.PathLike) -> str | None:
    """The checkpoint prefix to resume from, None for a fresh directory, TrainError if it is damaged.

    TensorFlow's own ``latest_checkpoint`` logs a warning and returns None for an unparsable or dangling
    ``checkpoint`` file, which would silently restart training from scratch over the old run; we refuse.
    """
    from google.protobuf import text_format
    from tensorflow.python.training.checkpoint_state_pb2 import CheckpointState

    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return None
    state_file = ckpt_dir / "checkpoint"
    if state_file.exists():
        try:
            state = text_format.Parse(state_file.read_text(encoding="utf-8"), CheckpointState())
        except (text_format.ParseError, UnicodeDecodeError) as exc:
            raise TrainError(f"{state_file}: corrupt checkpoint state file ({exc}); fix or delete it, or use "
                             "another --ckpt-dir") from None
        if not state.model_checkpoint_path:
            raise TrainError(f"{state_file}: names no checkpoint (model_checkpoint_path is empty)")
        prefix = state.model_checkpoint_path
        if not os.path.isabs(prefix):
            prefix = str(ckpt_dir / prefix)
        elif not os.path.exists(prefix + ".index"):
            local = str(ckpt_dir / Path(prefix).name)
            if os.path.exists(local + ".index"):
                prefix = local  # the directory moved since the state file was written
        if not os.path.exists(prefix + ".index"):
            raise TrainError(f"{state_file} points to checkpoint {prefix}, but {prefix}.index is missing")
        return prefix
    indexes = sorted(ckpt_dir.glob(f"{CHECKPOINT_PREFIX}-*.index"))
    if indexes:
        def step_of(p: Path) -> int:
            m = re.search(r"-(\d+)\.index$", p.name)
            return int(m.group(1)) if m else -1
        best = max(indexes, key=step_of)
        print(f"note: {state_file} missing; resuming from the highest-step checkpoint {best.with_suffix('')}",
              file=sys.stderr)
        return str(best.with_suffix(""))
    return None


def _init_checkpoint(path: str) -> str:
    """Checkpoint prefix for --init-from: a prefix, or a directory (its newest checkpoint)."""
    if Path(path).is_dir():
        prefix = find_resume_checkpoint(path)
        if prefix is None:
            raise TrainError(f"--init-from: no checkpoint in directory {path}")
        return prefix
    if not os.path.exists(path + ".index"):
        raise TrainError(f"--init-from: checkpoint {path} not found ({path}.index missing)")
    return path


def _restore(saver, sess, prefix: str, var_list=None) -> None:
    """Restore ``var_list`` (default: all global variables) from ``prefix`` after checking that every
    one exists there with the same shape; every failure is a TrainError naming the checkpoint."""
    import tensorflow.compat.v1 as tf

    # Resource variables accept a restored value of any shape, so compare shapes first: a checkpoint
    # of another configuration must fail here, not train on silently reshaped weights.
    try:
        stored = dict(tf.train.list_variables(prefix))
    except (tf.errors.OpError, ValueError) as exc:
        raise TrainError(f"checkpoint {prefix} is corrupt or unreadable: {_first_line(exc)}") from None
    for var in var_list if var_list is not None else sess.graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES):
        name, shape = var.op.name, var.shape.as_list()
        if name not in stored:
            raise TrainError(f"checkpoint {prefix} lacks variable {name}; was it written by another architecture?")
        if list(stored[name]) != shape:
            raise TrainError(f"checkpoint {prefix} does not match this model: {name} has shape "
                             f"{list(stored[name])} there, {shape} here (different --embedding-size or "
                             "number of classes?)")
    try:
        saver.restore(sess, prefix)
    except tf.errors.NotFoundError as exc:
        raise TrainError(f"checkpoint {prefix} lacks variables of this model or its data files are missing "
                         f"({_first_line(exc)}); was it written by another architecture?") from None
    except tf.errors.InvalidArgumentError as exc:
        raise TrainError(f"checkpoint {prefix} does not match this model: {_first_line(exc)} (different "
                         "--embedding-size or number of classes?)") from None
    except (tf.errors.DataLossError, tf.errors.OpError, ValueError) as exc:
        raise TrainError(f"checkpoint {prefix} is corrupt or unreadable: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    from pymfn.training.tfrecords import tf_error_text

    return tf_error_text(exc)


def _check_model_info(ckpt_dir: Path, cfg: TrainConfig, num_classes: int) -> None:
    path = ckpt_dir / MODEL_INFO_FILE
    if not path.exists():
        return
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TrainError(f"{path}: unreadable model info ({exc})") from None
    if not isinstance(info, dict):
        raise TrainError(f"{path}: expected a JSON object")
    if info.get("embedding_size") not in (None, cfg.embedding_size):
        raise TrainError(f"{path}: checkpoints in {ckpt_dir} have embedding size {info['embedding_size']}, "
                         f"this run asks for {cfg.embedding_size}")
    if info.get("num_classes") not in (None, num_classes):
        raise TrainError(f"{path}: checkpoints in {ckpt_dir} were trained on {info['num_classes']} classes, "
                         f"the data has {num_classes}")


def _write_model_info(ckpt_dir: Path, cfg: TrainConfig, num_classes: int) -> None:
    extra = {"num_classes": num_classes, "image_size": 112, "input": "RGB, (x - 127.5) / 128",
             "arcface": {"s": cfg.arcface_s, "m": cfg.arcface_m}}
    try:
        from pymfn.training.model import write_model_info
    except ImportError:
        from pymfn.files.atomic import write_file, json_bytes

        write_file(ckpt_dir / MODEL_INFO_FILE, json_bytes({"embedding_size": cfg.embedding_size, **extra}, sort_keys=True))
        return
    write_model_info(ckpt_dir, cfg.embedding_size, **extra)


# ------------------------------------------------------------------------------------------------- LFW


def lfw_verification(embeddings: np.ndarray, issame: np.ndarray) -> tuple[float, float]:
    """LFW accuracy (mean, std over 10 folds) of embeddings in pair order.

    Uses ``pymfn.metrics.lfw.evaluate`` (the project's full InsightFace protocol) when importable; otherwise
    :func:`ten_fold_accuracy`, this module's own implementation of the accuracy part of that protocol.
    """
    try:
        from pymfn.metrics.lfw import evaluate
    except ImportError:
        return ten_fold_accuracy(embeddings, issame)
    res = evaluate(embeddings, issame)
    return float(res.accuracy), float(res.accuracy_std)


def ten_fold_accuracy(embeddings: np.ndarray, issame: np.ndarray, folds: int = 10) -> tuple[float, float]:
    """InsightFace's protocol, no flip: L2-normalise, squared distance, 10 contiguous folds, threshold
    from ``arange(0, 4, 0.01)`` picked on 9 folds (first best), accuracy on the held-out one."""
    emb = np.asarray(embeddings, np.float64)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-10)
    same = np.asarray(issame, bool)
    if emb.shape[0] != 2 * same.shape[0]:
        raise ValueError(f"{emb.shape[0]} embeddings for {same.shape[0]} pairs (need 2 per pair)")
    dist = np.sum((emb[0::2] - emb[1::2]) ** 2, axis=1)
    thresholds = np.arange(0, 4, 0.01)
    pred = dist[None, :] < thresholds[:, None]  # [T, P]
    correct = pred == same[None, :]
    n = same.shape[0]
    bounds = np.linspace(0, n, folds + 1).astype(int)
    accs = []
    for k in range(folds):
        test = np.zeros(n, bool)
        test[bounds[k]:bounds[k + 1]] = True
        best = int(np.argmax(correct[:, ~test].mean(axis=1)))
        accs.append(correct[best, test].mean())
    return float(np.mean(accs)), float(np.std(accs))


def subset_pairs(issame: np.ndarray, pairs: int, folds: int = 10) -> np.ndarray:
    """Indices of a balanced subset of ``pairs`` pairs that keeps the 10-fold structure: from each
    contiguous fold the first ``pairs / (2 * folds)`` same-person and as many different-person pairs."""
    same = np.asarray(issame, bool)
    per = pairs // (2 * folds)
    if per < 1:
        raise TrainError(f"--eval-pairs must be at least {2 * folds} (one same and one different pair per fold)")
    bounds = np.linspace(0, len(same), folds + 1).astype(int)
    chosen = []
    for k in range(folds):
        idx = np.arange(bounds[k], bounds[k + 1])
        pos, neg = idx[same[idx]][:per], idx[~same[idx]][:per]
        if len(pos) < per or len(neg) < per:
            raise TrainError(f"--eval-pairs {pairs}: fold {k} has only {len(pos)} same / {len(neg)} different pairs")
        chosen.append(np.sort(np.concatenate([pos, neg])))
    return np.concatenate(chosen)


def load_lfw_images(path: str, pairs: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 RGB [2P,112,112,3] and issame [P] from an InsightFace lfw.bin (via pymfn.inputs.lfw_bin), optionally
    reduced to a balanced ``pairs``-pair subset."""
    from pymfn.inputs import lfw_bin as lfw

    try:
        if pairs is None:
            return lfw.load_lfw(path, color="rgb", cache=False)
        bins, issame = lfw.read_lfw_bin(path)
        if pairs > len(issame):
            raise TrainError(f"--eval-pairs {pairs}: {path} has only {len(issame)} pairs")
        keep = subset_pairs(issame, pairs)
        picked = [bins[2 * i + j] for i in keep for j in (0, 1)]
        return lfw.decode_images(picked, color="rgb", source=str(path)), np.asarray(issame)[keep]
    except FileNotFoundError:
        raise TrainError(f"--eval-lfw: {path} not found (expected an InsightFace lfw.bin)") from None
    except ValueError as exc:
        raise TrainError(f"--eval-lfw: {exc}") from None


# ------------------------------------------------------------------------------------------------ graph


def learning_rate(cfg: TrainConfig, global_step, steps_per_epoch: int, total_steps: int):
    """The lr tensor: constant, step (x factor at each of --lr-decay-epochs) or cosine (to --lr-min over
    the run), each optionally after a linear warm-up of --warmup-steps."""
    import tensorflow.compat.v1 as tf

    step = tf.cast(global_step, tf.float32)
    if cfg.lr_schedule == "constant":
        lr = tf.constant(cfg.lr, tf.float32)
    elif cfg.lr_schedule == "step":
        if not cfg.lr_decay_epochs:
            raise TrainError("--lr-schedule step needs --lr-decay-epochs (e.g. 4,7,9)")
        bounds = [int(round(e * steps_per_epoch)) for e in cfg.lr_decay_epochs]
        if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
            raise TrainError(f"--lr-decay-epochs must increase, got {list(cfg.lr_decay_epochs)}")
        # the step run at global_step == bound is the first of the decayed epoch
        passed = tf.reduce_sum(tf.cast(step >= tf.constant(bounds, tf.float32), tf.float32))
        lr = cfg.lr * tf.pow(tf.constant(cfg.lr_decay_factor, tf.float32), passed)
    elif cfg.lr_schedule == "cosine":
        span = max(1, total_steps - cfg.warmup_steps)
        progress = tf.clip_by_value((step - cfg.warmup_steps) / span, 0.0, 1.0)
        lr = cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1.0 + tf.cos(math.pi * progress))
    else:
        raise TrainError(f"unknown --lr-schedule {cfg.lr_schedule!r} (constant, step or cosine)")
    if cfg.warmup_steps > 0:
        lr = tf.where(step < cfg.warmup_steps, cfg.lr * (step + 1.0) / cfg.warmup_steps, lr)
    return tf.identity(lr, name="learning_rate")


def _default_model_fn() -> Callable:
    try:
        from pymfn.training.model import mobilefacenet
    except ImportError as exc:
        raise TrainError(f"pymfn.training.model is not available ({exc})") from None
    return mobilefacenet


def _session_config(cfg: TrainConfig):
    import tensorflow.compat.v1 as tf

    if cfg.device == "npu":
        from pymfn.training import npu

        npu.import_npu_bridge()
        return npu.npu_session_config(precision_mode=cfg.precision_mode, fusion_switch_file=cfg.fusion_switch_file,
                                      intra_op_threads=cfg.threads, inter_op_threads=cfg.threads)
    if cfg.device != "cpu":
        raise TrainError(f"--device must be cpu or npu, got {cfg.device!r}")
    return tf.ConfigProto(intra_op_parallelism_threads=cfg.threads, inter_op_parallelism_threads=cfg.threads)


def _validate(cfg: TrainConfig) -> None:
    checks = [
        (cfg.batch_size >= 1, f"--train-batch-size must be >= 1, got {cfg.batch_size}"),
        (cfg.max_epoch >= 1, f"--max-epoch must be >= 1, got {cfg.max_epoch}"),
        (cfg.max_steps is None or cfg.max_steps >= 1, f"--max-steps must be >= 1, got {cfg.max_steps}"),
        (cfg.lr > 0, f"--lr must be > 0, got {cfg.lr}"),
        (cfg.weight_decay >= 0, f"--weight-decay must be >= 0, got {cfg.weight_decay}"),
        (cfg.embedding_size >= 1, f"--embedding-size must be >= 1, got {cfg.embedding_size}"),
        (cfg.keep >= 1, f"--keep must be >= 1, got {cfg.keep}"),
        (cfg.save_every >= 1, f"--save-every must be >= 1, got {cfg.save_every}"),
        (cfg.eval_every >= 1, f"--eval-every must be >= 1, got {cfg.eval_every}"),
        (cfg.summary_every >= 1, f"--summary-every must be >= 1, got {cfg.summary_every}"),
        (cfg.optimizer in ("adam", "momentum", "sgd"), f"--optimizer must be adam, momentum or sgd, got {cfg.optimizer!r}"),
        (cfg.warmup_steps >= 0, f"--warmup-steps must be >= 0, got {cfg.warmup_steps}"),
        (cfg.eval_pairs is None or cfg.eval_pairs >= 20, f"--eval-pairs must be >= 20, got {cfg.eval_pairs}"),
        (cfg.eval_batch >= 1, f"--eval-batch must be >= 1, got {cfg.eval_batch}"),
        (cfg.embedding_size <= MAX_EMBEDDING_SIZE,
         f"--embedding-size must be <= {MAX_EMBEDDING_SIZE}, got {cfg.embedding_size}"),
        (cfg.threads >= 0, f"--threads must be >= 0 (0 = TensorFlow's default), got {cfg.threads}"),
        (cfg.shuffle_buffer >= 1, f"--shuffle-buffer must be >= 1, got {cfg.shuffle_buffer}"),
        (cfg.arcface_s > 0, f"--arcface-s must be > 0, got {cfg.arcface_s}"),
        (0 <= cfg.arcface_m < math.pi / 2, f"--arcface-m must be in [0, pi/2), got {cfg.arcface_m}"),
        (0 < cfg.lr_decay_factor <= 1, f"--lr-decay-factor must be in (0, 1], got {cfg.lr_decay_factor}"),
        (0 <= cfg.lr_min <= cfg.lr, f"--lr-min must be in [0, --lr], got {cfg.lr_min}"),
        (cfg.momentum >= 0, f"momentum must be >= 0, got {cfg.momentum}"),
    ]
    # NaN compares false with everything and inf passes '> 0': either would train into a NaN loss.
    floats = {"--lr": cfg.lr, "--weight-decay": cfg.weight_decay, "--arcface-s": cfg.arcface_s,
              "--arcface-m": cfg.arcface_m, "--lr-min": cfg.lr_min, "--lr-decay-factor": cfg.lr_decay_factor,
              "momentum": cfg.momentum}
    checks[:0] = [(math.isfinite(v), f"{name} must be a finite number, got {v}") for name, v in floats.items()]
    checks.append((all(math.isfinite(e) and e >= 0 for e in cfg.lr_decay_epochs),
                   f"--lr-decay-epochs must be finite and >= 0, got {list(cfg.lr_decay_epochs)}"))
    for ok, message in checks:
        if not ok:
            raise TrainError(message)
    if cfg.eval_lfw is not None and not Path(cfg.eval_lfw).is_file():
        raise TrainError(f"--eval-lfw: {cfg.eval_lfw} not found (expected an InsightFace lfw.bin)")


def _check_source(cfg: TrainConfig, source) -> None:
    """What the data must offer this configuration; checked before TensorFlow builds anything.

    The ArcFace head is an [embedding, classes] matrix (three copies with Adam): a corrupt class count in
    the metadata must be an error naming the data, not an out-of-memory kill while building the graph.
    """
    if source.num_classes < 2:
        raise TrainError(f"--data {cfg.data}: {source.num_classes} identit{'y' if source.num_classes == 1 else 'ies'}; "
                         "ArcFace training needs at least 2")
    if source.num_images < cfg.batch_size:
        raise TrainError(f"--train-batch-size {cfg.batch_size}: --data {cfg.data} has only {source.num_images} "
                         "training images (batches are fixed-size and never padded)")
    head_bytes = 3 * 4 * cfg.embedding_size * source.num_classes
    if head_bytes > _physical_memory():
        raise TrainError(f"--data {cfg.data}: {source.num_classes} identities make a {head_bytes / 2**30:.0f} GiB "
                         "ArcFace head (weights + Adam slots), more than this machine's memory; is the metadata "
                         "corrupt?")


def _physical_memory() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 2**63


def _summary(tf, **values: float):
    return tf.Summary(value=[tf.Summary.Value(tag=k, simple_value=float(v)) for k, v in values.items()])


def _step_error(exc, step: int, cfg: TrainConfig, source) -> TrainError:
    """A failed training step as a TrainError that says what to fix.

    A failure in the input pipeline (the IteratorGetNext op, or any DataLossError) means the data: the
    shards are then scanned to name the damaged one(s), since tf.data does not say which interleaved
    file it was reading.
    """
    import tensorflow.compat.v1 as tf

    from pymfn.training import tfrecords as pdata

    reason = _first_line(exc)
    op_type = getattr(getattr(exc, "op", None), "type", "")
    if not (isinstance(exc, tf.errors.DataLossError) or op_type == "IteratorGetNext"):
        return TrainError(f"training step {step} failed: {reason}")
    if source.kind == "tfrecord":
        damaged = pdata.find_damaged_shards(source.files)
        if damaged:
            (shard, why), more = damaged[0], len(damaged) - 1
            also = f" (and {more} more shard{'s' * (more > 1)}: {', '.join(Path(d).name for d, _ in damaged[1:4])})" \
                if more else ""
            return TrainError(f"--data {cfg.data}: shard {shard} is truncated or corrupt ({why}){also}; "
                              "write the shards again with `python -m pymfn data tfrecord`")
    return TrainError(f"--data {cfg.data}: a training record could not be read or decoded at step {step} "
                      f"({reason}); `python -m pymfn data tfrecord` verifies every image when writing shards")


def train(cfg: TrainConfig, model_fn: Callable | None = None) -> TrainResult:
    """Run (or resume) training as configured; returns the per-step history of this call.

    ``model_fn(images, is_training, embedding_size, weight_decay, reuse=...)`` builds the backbone
    (default: ``pymfn.training.model.mobilefacenet``); it must put its L2 losses in REGULARIZATION_LOSSES and its
    BN updates in UPDATE_OPS.
    """
    from pymfn.files.atomic import hold, refuse_overlap

    # Cheap checks first, before TensorFlow's import: a wrong path is reported in a fraction of a second.
    _validate(cfg)
    try:  # before the data is opened and LFW decoded, not after the first hour of training
        check_output_dir(cfg.ckpt_dir, "--ckpt-dir")
    except CommandError as exc:
        raise TrainError(str(exc)) from None
    refuse_overlap([(f"--ckpt-dir {cfg.ckpt_dir}", Path(cfg.ckpt_dir))],
                   [(f"--data {cfg.data}", Path(cfg.data)),
                    (f"--eval-lfw {cfg.eval_lfw}", Path(cfg.eval_lfw) if cfg.eval_lfw else None)])
    # One trainer per checkpoint folder: a second one would interleave its checkpoints with the first's.
    with hold([Path(cfg.ckpt_dir)], option="--ckpt-dir", wait=0.0):
        remove_tensorflow_temps(Path(cfg.ckpt_dir))
        return _train_locked(cfg, model_fn)


# What TensorFlow's savers leave in a checkpoint folder when killed while saving: the sharded bundle's
# "<prefix>_temp/" folder, "checkpoint.tmp<uuid>" state files and BundleWriter's "*.tempstate<N>" files.
_TF_TEMP_DIR = re.compile(rf"^{re.escape(CHECKPOINT_PREFIX)}(-\d+)?_temp$")
_TF_TEMP_PART = re.compile(r"^part-\d+-of-\d+\.(index|data-\d+-of-\d+)(\.tempstate\d+)?$")
_TF_TEMP_FILE = re.compile(r"^(checkpoint\.tmp[0-9a-f]{32}|.+\.tempstate\d+)$")


def remove_tensorflow_temps(ckpt_dir: Path, prog: str = "pymfn train") -> list[Path]:
    """Delete what a killed save left in ``ckpt_dir`` (the caller holds its lock, so no save is running);
    one stderr line says what went."""
    from pymfn.files.atomic import remove_path

    if not ckpt_dir.is_dir():
        return []
    gone = []
    for entry in os.scandir(ckpt_dir):
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False) and _TF_TEMP_DIR.match(entry.name):
            if all(_TF_TEMP_PART.match(p.name) for p in path.iterdir()):
                gone.append(path)
        elif entry.is_file(follow_symlinks=False) and _TF_TEMP_FILE.match(entry.name):
            gone.append(path)
    for path in gone:
        remove_path(path)
    if gone:
        names = ", ".join(p.name for p in gone[:3]) + (f" and {len(gone) - 3} more" if len(gone) > 3 else "")
        print(f"{prog}: removed {len(gone)} stale temp output(s) of an interrupted checkpoint save in {ckpt_dir}: "
              f"{names}", file=sys.stderr)
    return gone


def _train_locked(cfg: TrainConfig, model_fn: Callable | None) -> TrainResult:
    from tqdm import tqdm

    from pymfn.training import tfrecords as pdata

    # --device npu without npu_bridge fails before any work
    session_config = _session_config(cfg) if cfg.device == "npu" else None
    try:
        source = pdata.open_source(cfg.data)
    except pdata.DataError as exc:
        raise TrainError(f"--data: {exc}") from None
    if source.image_size != 112:
        raise TrainError(f"--data: images are {source.image_size}px; MobileFaceNet needs 112x112")
    _check_source(cfg, source)

    import tensorflow.compat.v1 as tf

    from pymfn.training.losses import arcface

    session_config = session_config or _session_config(cfg)
    model_fn = model_fn or _default_model_fn()
    ckpt_dir = Path(cfg.ckpt_dir)
    if ckpt_dir.exists() and not ckpt_dir.is_dir():
        raise TrainError(f"--ckpt-dir {ckpt_dir} exists and is not a directory")
    resume = find_resume_checkpoint(ckpt_dir)
    if resume is not None:
        _check_model_info(ckpt_dir, cfg, source.num_classes)
    lfw_data = load_lfw_images(cfg.eval_lfw, cfg.eval_pairs) if cfg.eval_lfw else None

    steps_per_epoch = source.num_images // cfg.batch_size
    total_steps = cfg.max_epoch * steps_per_epoch
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)

    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(cfg.seed)
        dataset = pdata.train_dataset(source, cfg.batch_size, seed=cfg.seed, flip=cfg.flip,
                                      shuffle_buffer=cfg.shuffle_buffer)
        iterator = tf.data.make_initializable_iterator(dataset)
        images, labels = iterator.get_next()
        global_step = tf.train.get_or_create_global_step()

        before = set(tf.global_variables())
        prelogits = model_fn(images, True, cfg.embedding_size, cfg.weight_decay)
        backbone_vars = [v for v in tf.global_variables() if v not in before]
        head = arcface(prelogits, labels, source.num_classes, cfg.arcface_s, cfg.arcface_m, cfg.weight_decay)
        # Snapshot now: a second (eval) tower must not add its ops to the training step.
        reg_losses = list(tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES))
        update_ops = list(tf.get_collection(tf.GraphKeys.UPDATE_OPS))
        reg = tf.add_n(reg_losses, name="weight_decay") if reg_losses else tf.constant(0.0)
        total_loss = tf.add(head.loss, reg, name="total_loss")
        accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(head.cos, 1, output_type=tf.int32), labels),
                                          tf.float32), name="accuracy")
        lr = learning_rate(cfg, global_step, steps_per_epoch, total_steps)
        if cfg.optimizer == "adam":
            opt = tf.train.AdamOptimizer(lr)
        elif cfg.optimizer == "momentum":
            opt = tf.train.MomentumOptimizer(lr, cfg.momentum)
        else:
            opt = tf.train.GradientDescentOptimizer(lr)
        with tf.control_dependencies(update_ops):
            train_op = opt.minimize(total_loss, global_step=global_step)

        summaries = tf.summary.merge([
            tf.summary.scalar("loss/total", total_loss), tf.summary.scalar("loss/arcface", head.loss),
            tf.summary.scalar("loss/weight_decay", reg), tf.summary.scalar("accuracy", accuracy),
            tf.summary.scalar("learning_rate", lr)])

        eval_input = eval_emb = None
        if lfw_data is not None:
            eval_input = tf.placeholder(tf.float32, [None, 112, 112, 3], name="lfw_images")
            eval_emb = model_fn(eval_input, False, cfg.embedding_size, cfg.weight_decay, reuse=True)

        saver = tf.train.Saver(max_to_keep=cfg.keep)
        init_saver = tf.train.Saver(backbone_vars) if cfg.init_from and resume is None else None
        init = tf.global_variables_initializer()
    graph.finalize()

    result = TrainResult(start_step=0, final_step=0, resumed_from=resume)
    session = tf.Session(graph=graph, config=session_config)
    writer = None
    graph_ctx = graph.as_default()  # FileWriter refuses to work outside a graph context under TF2
    graph_ctx.__enter__()
    try:
        session.run(init)
        if resume is not None:
            _restore(saver, session, resume)
            if cfg.init_from:
                print(f"note: --init-from ignored, resuming {resume}", file=sys.stderr)
        elif init_saver is not None:
            assert cfg.init_from is not None
            prefix = _init_checkpoint(cfg.init_from)
            _restore(init_saver, session, prefix, backbone_vars)
            print(f"initialised {len(backbone_vars)} backbone variables from {prefix}", file=sys.stderr)
        session.run(iterator.initializer)
        step = int(session.run(global_step))
        result.start_step = result.final_step = step
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        _write_model_info(ckpt_dir, cfg, source.num_classes)
        writer = tf.summary.FileWriter(str(ckpt_dir), graph if resume is None else None)
        if resume is not None:
            print(f"resumed from {resume} at step {step}", file=sys.stderr)
        if step >= total_steps:
            print(f"nothing to do: step {step} >= {total_steps} (max epoch {cfg.max_epoch}, "
                  f"max steps {cfg.max_steps})", file=sys.stderr)

        # None = tqdm's "only on a terminal": in a log file a bar buries the one-line error
        progress_off = None if cfg.progress else True

        def evaluate(at_step: int) -> None:
            assert lfw_data is not None and eval_emb is not None
            imgs, issame = lfw_data
            out = []
            for i in tqdm(range(0, len(imgs), cfg.eval_batch), desc="LFW embeddings", unit="batch",
                          leave=False, disable=progress_off):
                batch = (imgs[i:i + cfg.eval_batch].astype(np.float32) - 127.5) * 0.0078125
                out.append(session.run(eval_emb, {eval_input: batch}))
            try:
                mean, std = lfw_verification(np.concatenate(out), issame)
            except ValueError as exc:  # e.g. embeddings collapsed early in training: report, keep training
                tqdm.write(f"step {at_step}: LFW not scored: {one_line(exc)}")
                return
            result.lfw.append((at_step, mean, std))
            writer.add_summary(_summary(tf, **{"lfw/accuracy": mean}), at_step)
            tqdm.write(f"step {at_step}: LFW accuracy {100 * mean:.2f}% +- {100 * std:.2f} "
                       f"({len(issame)} pairs)")

        window: deque[tuple[float, int]] = deque(maxlen=20)
        bar = tqdm(total=total_steps, initial=min(step, total_steps), desc="train", unit="step",
                   disable=progress_off, dynamic_ncols=True)
        t_last = time.perf_counter()
        last_saved = step if resume is not None else -1
        while step < total_steps:
            fetches = [train_op, head.loss, accuracy]
            want_summary = (step + 1) % cfg.summary_every == 0
            if want_summary:
                fetches.append(summaries)
            try:
                out = session.run(fetches)
            except tf.errors.OpError as exc:
                raise _step_error(exc, step + 1, cfg, source) from None
            # global_step grows by exactly 1 per run; fetching it alongside train_op would race the update
            loss_v, acc_v, step = float(out[1]), float(out[2]), step + 1
            if not math.isfinite(loss_v):
                raise TrainError(f"loss became {loss_v} at step {step}; lower --lr or check the data "
                                 f"(last good checkpoint in {ckpt_dir})")
            if want_summary:
                writer.add_summary(out[3], step)
            now = time.perf_counter()
            window.append((now - t_last, cfg.batch_size))
            t_last = now
            result.steps.append(step)
            result.losses.append(loss_v)
            result.accuracies.append(acc_v)
            ips = sum(n for _, n in window) / max(sum(t for t, _ in window), 1e-9)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_v:.3f}", acc=f"{acc_v:.2f}", img_s=f"{ips:.1f}",
                            epoch=f"{step / max(steps_per_epoch, 1):.2f}")
            if step % cfg.save_every == 0:
                result.checkpoint = saver.save(session, str(ckpt_dir / CHECKPOINT_PREFIX), global_step=step)
                last_saved = step
            if lfw_data is not None and step % cfg.eval_every == 0:
                evaluate(step)
                t_last = time.perf_counter()
        bar.close()
        if step != last_saved and step > 0:
            result.checkpoint = saver.save(session, str(ckpt_dir / CHECKPOINT_PREFIX), global_step=step)
        if lfw_data is not None and (not result.lfw or result.lfw[-1][0] != step):
            evaluate(step)
        result.final_step = step
    finally:
        if writer is not None:
            writer.close()
        session.close()
        graph_ctx.__exit__(None, None, None)
    return result

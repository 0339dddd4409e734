"""Train MobileFaceNet with the ArcFace loss on TFRecords written by `pymfn data tfrecord` (or an
identity-per-folder image tree directly). Defaults are the reference recipe: batch 64, Adam, lr 0.01,
weight decay 1e-5, 10 epochs, ArcFace s=64 m=0.5, 128-d embedding, random horizontal flip. Re-running with
the same --ckpt-dir resumes from its newest checkpoint."""
from __future__ import annotations

import argparse

import numpy as np

from pymfn.training.train import TrainConfig, train


def _float_list(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = ("examples:\n"
                "  pymfn train --data data/lfw_tfr --ckpt-dir runs/lfw --eval-lfw ../shared/data/lfw/lfw.bin\n"
                "  pymfn train --data data/ms1m_tfr --ckpt-dir runs/ms1m -max_epoch 10 -train_batch_size 64 --device npu\n"
                "TensorBoard: tensorboard --logdir <ckpt-dir> (loss, accuracy, learning_rate, lfw/accuracy).")
    g = p.add_argument_group("data and output")
    g.add_argument("--data", required=True, metavar="DIR",
                   help="TFRecord directory (with pymfn_data.json) or an image tree Name/*.jpg")
    g.add_argument("--ckpt-dir", required=True, metavar="DIR",
                   help="checkpoints, TensorBoard events and pymfn_model.json; resumed automatically")
    g.add_argument("--keep", type=int, default=5, metavar="N", help="checkpoints to keep (default 5)")
    g.add_argument("--save-every", type=int, default=1000, metavar="STEPS",
                   help="checkpoint interval; one is always written at the end (default 1000)")
    g.add_argument("--summary-every", type=int, default=10, metavar="STEPS",
                   help="TensorBoard summary interval (default 10)")
    g = p.add_argument_group("schedule")
    g.add_argument("--max-epoch", "-max_epoch", dest="max_epoch", type=int, default=10, metavar="N",
                   help="epochs to train (default 10)")
    g.add_argument("--train-batch-size", "-train_batch_size", dest="batch_size", type=int, default=64,
                   metavar="N", help="batch size (default 64)")
    g.add_argument("--max-steps", type=int, default=None, metavar="N",
                   help="stop at this global step even before --max-epoch (tests, smoke runs)")
    g.add_argument("--lr", type=float, default=0.01, help="base learning rate (default 0.01)")
    g.add_argument("--lr-schedule", choices=("constant", "step", "cosine"), default="constant",
                   help="constant; step: x --lr-decay-factor at each of --lr-decay-epochs; cosine: to --lr-min")
    g.add_argument("--lr-decay-epochs", type=_float_list, default=[], metavar="E1,E2,..",
                   help="epochs at which the step schedule decays (e.g. 4,7,9; default none)")
    g.add_argument("--lr-decay-factor", type=float, default=0.1, help="step schedule factor (default 0.1)")
    g.add_argument("--lr-min", type=float, default=0.0, help="cosine schedule floor (default 0)")
    g.add_argument("--warmup-steps", type=int, default=0, help="linear warm-up steps before the schedule")
    g.add_argument("--optimizer", choices=("adam", "momentum", "sgd"), default="adam", help="default adam")
    g.add_argument("--weight-decay", type=float, default=1e-5, help="L2 factor on every weight (default 1e-5)")
    g = p.add_argument_group("model and loss")
    g.add_argument("--embedding-size", type=int, default=128, help="embedding dimension (default 128)")
    g.add_argument("--arcface-s", type=float, default=64.0, help="ArcFace scale s (default 64)")
    g.add_argument("--arcface-m", type=float, default=0.5, help="ArcFace angular margin m, radians (default 0.5)")
    g.add_argument("--no-flip", action="store_true", help="disable the random horizontal flip")
    g.add_argument("--init-from", metavar="CKPT", default=None,
                   help="start a fresh run from this checkpoint's backbone weights (prefix or directory, e.g. "
                        "from `pymfn import-weights`); the ArcFace head starts new. Ignored on resume")
    g.add_argument("--shuffle-buffer", type=int, default=10000, help="tf.data shuffle buffer (default 10000)")
    g.add_argument("--seed", type=int, default=0, help="graph and data seed (default 0)")
    g = p.add_argument_group("evaluation")
    g.add_argument("--eval-lfw", metavar="LFW_BIN", default=None,
                   help="InsightFace lfw.bin: report 10-fold LFW accuracy every --eval-every steps and at the end")
    g.add_argument("--eval-every", type=int, default=2000, metavar="STEPS", help="default 2000")
    g.add_argument("--eval-batch", type=int, default=100, help="LFW embedding batch (default 100)")
    g.add_argument("--eval-pairs", type=int, default=None, metavar="N",
                   help="evaluate on a balanced subset of N pairs (N/20 same + N/20 different per fold) "
                        "instead of all 6000: a quick smoke figure on slow machines")
    g = p.add_argument_group("device")
    g.add_argument("--device", choices=("cpu", "npu"), default="cpu",
                   help="npu = Ascend 910 through npu_bridge (TF 1.15 + CANN TF plugin)")
    g.add_argument("--precision-mode", default="allow_mix_precision", help="NPU precision mode (default allow_mix_precision)")
    g.add_argument("--fusion-switch-file", default=None, help="NPU fusion switch config file")
    g.add_argument("--threads", type=int, default=0,
                   help="TF intra/inter-op threads (0 = TF default; 1 to share a small machine)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        data=args.data, ckpt_dir=args.ckpt_dir, batch_size=args.batch_size, max_epoch=args.max_epoch,
        max_steps=args.max_steps, lr=args.lr, optimizer=args.optimizer, weight_decay=args.weight_decay,
        embedding_size=args.embedding_size, arcface_s=args.arcface_s, arcface_m=args.arcface_m,
        lr_schedule=args.lr_schedule, lr_decay_epochs=args.lr_decay_epochs, lr_decay_factor=args.lr_decay_factor,
        lr_min=args.lr_min, warmup_steps=args.warmup_steps, keep=args.keep, save_every=args.save_every,
        summary_every=args.summary_every, eval_lfw=args.eval_lfw, eval_every=args.eval_every,
        eval_batch=args.eval_batch, eval_pairs=args.eval_pairs, device=args.device, precision_mode=args.precision_mode,
        fusion_switch_file=args.fusion_switch_file, threads=args.threads, seed=args.seed,
        flip=not args.no_flip, init_from=args.init_from, shuffle_buffer=args.shuffle_buffer, progress=not args.no_progress)


def run(args: argparse.Namespace) -> int:
    result = train(config_from_args(args))
    msg = f"done: step {result.final_step}"
    if result.losses:
        k = min(20, len(result.losses))
        msg += f", loss {np.mean(result.losses[:k]):.3f} -> {np.mean(result.losses[-k:]):.3f} (mean of {k} steps)"
    if result.lfw:
        msg += f", LFW {100 * result.lfw[-1][1]:.2f}%"
    if result.checkpoint:
        msg += f", checkpoint {result.checkpoint}"
    print(msg)
    return 0

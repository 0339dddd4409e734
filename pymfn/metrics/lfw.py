"""LFW verification accuracy, computed exactly as InsightFace / FaceNet do (see shared/docs/lfw-protocol.md).

Published LFW numbers come from one specific recipe, so every detail is kept: pair order
(``emb[0::2]`` vs ``emb[1::2]``), squared L2 distance on L2-normalised embeddings, "same" iff
``dist < threshold`` (strict), 10 contiguous folds, the threshold grid ``np.arange(0, 4, 0.01)`` with the
first best threshold on ties, population std, ROC averaged over the test folds, and VAL@FAR=1e-3 on
``np.arange(0, 4, 0.001)``.

What differs from the reference code is only *how* it is computed: instead of scanning every pair once per
threshold (400 + 4,000 passes per fold), the distances of each fold are sorted once and
``np.searchsorted`` gives, for all thresholds at once, how many same/different pairs fall strictly below
each threshold. Counts are integers, so the chosen thresholds, accuracies and ROC points are bit-for-bit
those of the loop code (the tests check it), at a few hundred times the speed.

VAL threshold: the reference interpolates (FAR -> threshold) with ``scipy.interpolate.interp1d(...,
kind="slinear")``, which modern SciPy refuses because FAR repeats. Old SciPy built a degree-1 B-spline with
the points as knots, i.e. linear interpolation between the *last* threshold of the FAR plateau below the
target and the *first* threshold of the plateau above it. ``np.interp`` does exactly that on a
non-decreasing FAR curve (up to the last bit of rounding); we repeat the spline's own arithmetic so the
thresholds match the legacy ones exactly, and the tests compare against an emulation of the old spline.
(The workaround some forks use, ``interp1d`` on ``np.unique(far_train)``, keeps the *first* threshold of
each plateau and so gives lower thresholds than the published figures; it is not used.)

Flip TTA follows InsightFace: add the *raw* embeddings of an image and of its mirror, then L2-normalise
(FaceNet instead concatenates the normalised halves; not used here).

Embeddings from which no figure could mean anything are refused with an error naming their source rather
than scored: NaN or infinity, all-zero rows, rows that all point one way, and sets whose pair distances all
fall inside one step of the threshold grid (the protocol would report the share of the larger class, a
plausible-looking "50%"). Rows whose norm overflows or underflows the dtype are normalised after an exact
power-of-two scaling instead.
"""
from __future__ import annotations

import io
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Sequence

import numpy as np

from pymfn.files.atomic import atomic_write, write_json
from pymfn.errors import CommandError
from pymfn.files.readfile import InputFileError, read_regular_file
from pymfn.inputs.pairs import IssameError, as_issame, load_issame
from pymfn.inputs.pairs import _load_npy as parse_npy_bytes  # the one guarded .npy parser (header size vs bytes)

__all__ = [
    "ACC_THRESHOLDS",
    "VAL_THRESHOLDS",
    "VerificationResult",
    "DegenerateEmbeddingsError",
    "check_embeddings",
    "l2_normalize",
    "combine_flip",
    "pair_distances",
    "fold_bounds",
    "evaluate",
    "evaluate_distances",
    "plot_roc",
    "evaluate_files",
    "write_result_json",
]

# The reference grids, built the same way so the float values are identical.
ACC_THRESHOLDS = np.arange(0, 4, 0.01)
VAL_THRESHOLDS = np.arange(0, 4, 0.001)


@dataclass
class VerificationResult:
    """Outcome of the 10-fold LFW protocol. Accuracies are fractions (0.9923, not 99.23)."""

    accuracy: float  # mean test-fold accuracy
    accuracy_std: float  # population std over folds
    fold_accuracy: list[float]
    thresholds: list[float]  # best threshold chosen on the training folds, one per fold
    val: float  # VAL (TAR) at the FAR target, mean over folds
    val_std: float
    far: float  # FAR actually reached on the test folds, mean
    auc: float
    eer: float
    tpr: np.ndarray  # ROC over ACC_THRESHOLDS, averaged over test folds
    fpr: np.ndarray
    pairs: int
    folds: int = 10
    far_target: float = 1e-3
    val_thresholds: list[float] = field(default_factory=list)  # interpolated VAL threshold per fold
    warnings: list[str] = field(default_factory=list)  # what makes some figures less meaningful than usual

    def to_dict(self, curve: bool = False) -> dict[str, Any]:
        """JSON-friendly dict; ``curve=True`` adds the ROC points (400 each)."""
        d: dict[str, Any] = {
            "accuracy": float(self.accuracy),
            "accuracy_std": float(self.accuracy_std),
            "fold_accuracy": [float(a) for a in self.fold_accuracy],
            "thresholds": [float(t) for t in self.thresholds],
            "val": float(self.val),
            "val_std": float(self.val_std),
            "far": float(self.far),
            "far_target": float(self.far_target),
            "val_thresholds": [float(t) for t in self.val_thresholds],
            "auc": float(self.auc),
            "eer": float(self.eer),
            "pairs": int(self.pairs),
            "folds": int(self.folds),
            "auc_eer_over": "all pairs",
            "warnings": list(self.warnings),
        }
        if curve:
            d["tpr"] = [float(v) for v in self.tpr]
            d["fpr"] = [float(v) for v in self.fpr]
        return d

    def summary(self) -> str:
        return (f"LFW accuracy {100 * self.accuracy:.2f}% +- {100 * self.accuracy_std:.2f} "
                f"({self.pairs} pairs, {self.folds} folds); VAL {100 * self.val:.2f}% +- {100 * self.val_std:.2f} "
                f"@ FAR {self.far:.5f} (target {self.far_target:g}); AUC {self.auc:.4f}; EER {self.eer:.4f}")


class DegenerateEmbeddingsError(ValueError):
    """Embeddings whose verification figures would mean nothing (zero rows, one shared direction, every
    pair at the same distance); the message names the source and what is wrong with it."""


def _as_float_matrix(x: Any, name: str) -> np.ndarray:
    """``x`` as a float32/float64 [N, D] matrix of finite numbers; ``name`` (the source: a file, an option)
    starts every error message."""
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array [N, D], got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError(f"{name}: embedding dimension is 0")
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{name}: expected numbers, got dtype {arr.dtype}")
    if arr.dtype not in (np.float32, np.float64):
        # float16 (Ascend om output) and integers are widened: distances in fp16 would lose pairs
        arr = arr.astype(np.float32)
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        more = f" ({len(bad)} of {len(arr)} rows do)" if len(bad) > 1 else ""
        raise ValueError(f"{name}: row {int(bad[0])} contains NaN or infinity{more}; a model or conversion fault "
                         "(or the wrong file)")
    return arr


def check_embeddings(x: Any, source: str = "embeddings") -> np.ndarray:
    """``x`` as a finite float matrix, refused when no verification figure computed from it could mean
    anything: a row of zeros has no direction (its distance to everything is the same), and rows that
    all point the same way put every pair at distance 0. Both come from broken models or wrong files,
    and the protocol would turn them into a plausible "50%". ``source`` names the input in errors."""
    arr = _as_float_matrix(x, source)
    zero = ~arr.any(axis=1)
    if zero.any():
        rows = np.flatnonzero(zero)
        which = f"all {len(arr)} rows are zeros" if len(rows) == len(arr) else \
            f"row {int(rows[0])} is all zeros" + (f" ({len(rows)} of {len(arr)} rows are)" if len(rows) > 1 else "")
        raise DegenerateEmbeddingsError(f"{source}: {which}; a zero embedding has no direction, so distances and "
                                        "accuracy would mean nothing (a model or conversion fault?)")
    if len(arr) > 1:
        unit = l2_normalize(arr)
        if (unit == unit[0]).all():
            raise DegenerateEmbeddingsError(f"{source}: all {len(arr)} rows point the same way (every pair at "
                                            "distance 0); a constant model output or the wrong file")
    return arr


def l2_normalize(x: Any, name: str = "embeddings") -> np.ndarray:
    """Rows scaled to unit L2 norm, the way ``sklearn.preprocessing.normalize`` does it (same bits).

    float32/float64 keep their dtype (the reference keeps float32 model outputs as float32), other
    dtypes become float32. All-zero rows stay zero.

    Where sklearn's arithmetic fails, rows are first scaled by a power of two (exact) so their largest
    value lies in [0.5, 1): a norm that overflows (float32 rows of 1e20 give inf, then NaN) and a norm
    below 10 eps (rows of 1e-40 square to 0; sklearn then leaves the row as it is, at a distance of
    about 1 from everything). Every row whose norm sklearn computes normally keeps sklearn's bits.
    """
    arr = _as_float_matrix(x, name)
    norms = np.sqrt(np.einsum("ij,ij->i", arr, arr))
    tiny = 10 * np.finfo(norms.dtype).eps
    rescale = ~np.isfinite(norms) | (norms < tiny)
    if rescale.any():
        rows = np.flatnonzero(rescale & arr.any(axis=1))
        if len(rows):
            arr = arr.copy()
            _, exponent = np.frexp(np.abs(arr[rows]).max(axis=1))
            arr[rows] = np.ldexp(arr[rows], -exponent[:, np.newaxis]).astype(arr.dtype, copy=False)
            norms[rows] = np.sqrt(np.einsum("ij,ij->i", arr[rows], arr[rows]))
    norms[norms < tiny] = 1.0
    return arr / norms[:, np.newaxis]


FLIP_MODES = ("sum", "concat")


def combine_flip(emb: Any, emb_flipped: Any, mode: str = "sum", names: tuple[str, str] = ("emb", "emb_flipped")
                 ) -> np.ndarray:
    """Flip TTA: one normalised embedding per image from the image's and its mirror's raw embeddings.

    ``mode="sum"`` is InsightFace's: L2-normalise(raw + raw_mirror), so the larger raw embedding weighs
    more. ``mode="concat"`` L2-normalises each half and concatenates them (then normalises), which makes
    the squared distance the mean of the two halves' squared distances — the other common variant
    (FaceNet-style evaluation code); both are reported in the README. ``names`` name the two inputs in
    errors; each is checked on its own (``check_embeddings``: a zero half would pass unnoticed in the sum).
    """
    if mode not in FLIP_MODES:
        raise ValueError(f"combine_flip: mode={mode!r}; expected one of {', '.join(FLIP_MODES)}")
    a = check_embeddings(emb, names[0])
    b = check_embeddings(emb_flipped, names[1])
    if a.shape != b.shape:
        raise ValueError(f"combine_flip: {names[0]} has shape {a.shape} but {names[1]} has {b.shape}")
    if mode == "concat":
        return l2_normalize(np.concatenate([l2_normalize(a), l2_normalize(b)], axis=1))
    with np.errstate(over="ignore"):
        total = a + b
    over = ~np.isfinite(total).all(axis=1)
    if over.any():  # raw values near the dtype's limit: sum the rows scaled by one power of two (exact)
        _, exponent = np.frexp(np.maximum(np.abs(a[over]).max(axis=1), np.abs(b[over]).max(axis=1)))
        total[over] = np.ldexp(a[over], -exponent[:, np.newaxis]) + np.ldexp(b[over], -exponent[:, np.newaxis])
    return l2_normalize(check_embeddings(total, f"{names[0]} + {names[1]}"))


def pair_distances(embeddings: np.ndarray) -> np.ndarray:
    """Squared L2 distance of pair k = rows 2k and 2k+1 (computed as the reference does)."""
    e1 = embeddings[0::2]
    e2 = embeddings[1::2]
    return np.sum(np.square(np.subtract(e1, e2)), 1)


def fold_bounds(n: int, nrof_folds: int) -> list[tuple[int, int]]:
    """Contiguous test folds as ``KFold(n_splits, shuffle=False)`` makes them (first n % k folds one larger)."""
    sizes = np.full(nrof_folds, n // nrof_folds, dtype=np.int64)
    sizes[: n % nrof_folds] += 1
    stops = np.cumsum(sizes)
    return [(int(s - z), int(s)) for s, z in zip(stops, sizes, strict=True)]


def _rate(num: np.ndarray, den: int) -> np.ndarray:
    # reference: 0 when the denominator is 0, else float(num) / float(den)
    if den == 0:
        return np.zeros(np.shape(num), dtype=np.float64)
    return np.asarray(num, dtype=np.float64) / float(den)


def evaluate_distances(dist: Any, issame: Any, nrof_folds: int = 10, far_target: float = 1e-3,
                       source: str = "dist") -> VerificationResult:
    """The protocol on precomputed pair distances (squared L2). See ``evaluate``.

    Refused (``DegenerateEmbeddingsError`` naming ``source``) when both classes are present but every
    distance lies in one step of the threshold grid: then no threshold separates anything and the
    "accuracy" is merely the share of the larger class.
    """
    d = np.asarray(dist)
    same = np.asarray(issame)
    if d.ndim != 1:
        raise ValueError(f"dist: expected one distance per pair (1-D), got shape {d.shape}")
    same = as_issame(same, "issame", pairs=len(d))
    n = len(d)
    if not isinstance(nrof_folds, (int, np.integer)) or nrof_folds < 1 or nrof_folds > n:
        raise ValueError(f"nrof_folds={nrof_folds}: expected an integer in 1..{n} (number of pairs)")
    if not (0 < far_target < 1):
        raise ValueError(f"far_target={far_target}: expected a rate in (0, 1)")
    if d.dtype.kind != "f" or not np.isfinite(d).all():
        raise ValueError("dist: expected finite floating-point distances")
    # the reference compares float32 distances with float64 thresholds in float64: widening is exact
    d = d.astype(np.float64)
    _refuse_inseparable(d, same, source)

    folds = fold_bounds(n, nrof_folds) if nrof_folds > 1 else [(0, n)]
    ta, tv = ACC_THRESHOLDS, VAL_THRESHOLDS
    k = len(folds)
    # per fold: sorted same / different distances, and "how many < t" for every threshold
    sorted_same, sorted_diff = [], []
    tp_a = np.empty((k, len(ta)), dtype=np.int64)
    fp_a = np.empty((k, len(ta)), dtype=np.int64)
    tp_v = np.empty((k, len(tv)), dtype=np.int64)
    fp_v = np.empty((k, len(tv)), dtype=np.int64)
    n_same = np.empty(k, dtype=np.int64)
    n_diff = np.empty(k, dtype=np.int64)
    for f, (a, b) in enumerate(folds):
        s = np.sort(d[a:b][same[a:b]])
        o = np.sort(d[a:b][~same[a:b]])
        sorted_same.append(s)
        sorted_diff.append(o)
        n_same[f], n_diff[f] = len(s), len(o)
        tp_a[f] = np.searchsorted(s, ta, side="left")  # count of d < t
        fp_a[f] = np.searchsorted(o, ta, side="left")
        tp_v[f] = np.searchsorted(s, tv, side="left")
        fp_v[f] = np.searchsorted(o, tv, side="left")

    if nrof_folds > 1:  # train = everything but the test fold
        tr_tp_a, tr_fp_a = tp_a.sum(0) - tp_a, fp_a.sum(0) - fp_a
        tr_fp_v = fp_v.sum(0) - fp_v
        tr_diff = n_diff.sum() - n_diff
    else:  # InsightFace's LFold with one split trains and tests on everything
        tr_tp_a, tr_fp_a, tr_fp_v, tr_diff = tp_a, fp_a, fp_v, n_diff

    fold_acc = np.zeros(k)
    best_thr = []
    tprs = np.zeros((k, len(ta)))
    fprs = np.zeros((k, len(ta)))
    val = np.zeros(k)
    far = np.zeros(k)
    val_thr = []
    for f, (a, b) in enumerate(folds):
        size = b - a
        # train accuracy = (TP + TN) / n_train; TN = n_diff - FP. Integer scores: ties are exact.
        best = int(np.argmax(tr_tp_a[f] - tr_fp_a[f]))
        best_thr.append(float(ta[best]))
        tprs[f] = _rate(tp_a[f], int(n_same[f]))
        fprs[f] = _rate(fp_a[f], int(n_diff[f]))
        tp, fp = int(tp_a[f, best]), int(fp_a[f, best])
        fold_acc[f] = float(tp + (int(n_diff[f]) - fp)) / size

        far_train = _rate(tr_fp_v[f], int(tr_diff[f]))
        thr = _legacy_slinear(far_target, far_train, tv) if np.max(far_train) >= far_target else 0.0
        val_thr.append(thr)
        ta_n = int(np.searchsorted(sorted_same[f], thr, side="left"))
        fa_n = int(np.searchsorted(sorted_diff[f], thr, side="left"))
        val[f] = float(_rate(ta_n, int(n_same[f])))
        far[f] = float(_rate(fa_n, int(n_diff[f])))

    tpr = np.mean(tprs, 0)
    fpr = np.mean(fprs, 0)
    all_fpr, all_tpr = roc_all_pairs(d, same)
    return VerificationResult(
        accuracy=float(np.mean(fold_acc)), accuracy_std=float(np.std(fold_acc)),
        fold_accuracy=[float(x) for x in fold_acc], thresholds=best_thr,
        val=float(np.mean(val)), val_std=float(np.std(val)), far=float(np.mean(far)),
        auc=_auc(all_fpr, all_tpr), eer=_eer(all_fpr, all_tpr), tpr=tpr, fpr=fpr, pairs=n, folds=nrof_folds,
        far_target=float(far_target), val_thresholds=val_thr, warnings=_fold_warnings(n_same, n_diff, folds),
    )


def _refuse_inseparable(d: np.ndarray, same: np.ndarray, source: str) -> None:
    if not (same.any() and (~same).any()):  # one class: nothing to separate (reported as a warning)
        return
    cell = np.searchsorted(ACC_THRESHOLDS, d, side="right")  # thresholds <= d: same predictions for all of them
    if cell.min() != cell.max():
        return
    lo = float(ACC_THRESHOLDS[cell[0] - 1]) if cell[0] > 0 else float("-inf")
    hi = f"{ACC_THRESHOLDS[cell[0]]:g}" if cell[0] < len(ACC_THRESHOLDS) else "inf"
    spread = "are all equal" if d.min() == d.max() else f"all lie in [{lo:g}, {hi})"
    raise DegenerateEmbeddingsError(
        f"{source}: the {len(d)} pair distances {spread} (one step of the threshold grid), so no threshold tells "
        "same from different pairs and the accuracy would only be the share of the larger class (embeddings "
        "that barely differ: a constant model output or the wrong file)")


def roc_all_pairs(dist: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The exact ROC over all pairs (score = -distance), one point per distinct distance.

    The same points as ``sklearn.metrics.roc_curve(same, -dist, drop_intermediate=False)``. AUC and EER
    come from this curve, not from the fold-averaged one: a fold holding one class has no ROC of its own
    (its FPR or TPR is 0 at every threshold), and averaging such folds gave AUC 0.25 for a perfectly
    separated set. Empty arrays when one class is absent altogether.
    """
    n_same = int(np.count_nonzero(same))
    n_diff = len(same) - n_same
    if n_same == 0 or n_diff == 0:
        return np.zeros(0), np.zeros(0)
    order = np.argsort(dist, kind="mergesort")
    d, s = dist[order], same[order]
    last = np.r_[np.flatnonzero(np.diff(d) != 0), len(d) - 1]  # last pair of each run of equal distances
    tp = np.cumsum(s)[last]
    fp = np.cumsum(~s)[last]
    return np.r_[0.0, fp / n_diff], np.r_[0.0, tp / n_same]


def _fold_warnings(n_same: np.ndarray, n_diff: np.ndarray, folds: list[tuple[int, int]]) -> list[str]:
    """Say when folds hold one class: their accuracy says little, and AUC/EER were taken over all pairs."""
    out = []
    total_same, total_diff = int(n_same.sum()), int(n_diff.sum())
    if total_same == 0 or total_diff == 0:
        out.append(f"all {total_same + total_diff} pairs are {'different' if total_same == 0 else 'same'}: "
                   "AUC and EER are undefined (NaN)")
        return out
    one = [f for f in range(len(folds)) if n_same[f] == 0 or n_diff[f] == 0]
    if one:
        shown = ", ".join(str(f + 1) for f in one[:10]) + (" ..." if len(one) > 10 else "")
        out.append(f"{len(one)} of {len(folds)} folds hold only one class (fold {shown}; folds are contiguous "
                   "runs of pairs, so the labels are probably sorted): their accuracy and ROC say little; "
                   "AUC and EER are computed over all pairs")
    return out


def _legacy_slinear(x: float, xp: np.ndarray, fp: np.ndarray) -> float:
    """``interp1d(xp, fp, kind="slinear")(x)`` as SciPy < 1.9 computed it, for non-decreasing ``xp``.

    Old SciPy turned the points into a degree-1 B-spline (knots ``r_[xp0, xp, xp_last]``, coefficients
    ``fp``) and evaluated it with de Boor's recursion on the interval ``xp[j] <= x < xp[j+1]``, skipping
    zero-length intervals. That is ``np.interp`` (last point of the lower plateau to first point of the
    next one), but we repeat the spline's arithmetic so the threshold is the same to the last bit.
    """
    n = len(xp)
    if not (xp[0] <= x <= xp[-1]):
        raise ValueError(f"interpolation point {x} outside [{xp[0]}, {xp[-1]}]")
    if n == 1:
        return float(fp[0])
    j = min(int(np.searchsorted(xp, x, side="right")) - 1, n - 2)
    x0, x1 = float(xp[j]), float(xp[j + 1])
    if x1 == x0:  # only at the right end with a final plateau: the degenerate interval gives 0
        return 0.0
    w = 1.0 / (x1 - x0)
    return 0.0 + float(fp[j]) * (0.0 + w * (x1 - x)) + float(fp[j + 1]) * (w * (x - x0))


def _auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Trapezoidal area under an ROC (what ``sklearn.metrics.auc`` returns for it); NaN for no curve."""
    if len(fpr) == 0:
        return float("nan")
    return float(np.trapezoid(tpr, fpr))


def _eer(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Equal error rate: the FPR where FPR == 1 - TPR on the piecewise-linear ROC.

    Along increasing thresholds both rates grow, so g = FPR + TPR - 1 is non-decreasing; the crossing is
    found on the first segment where g turns >= 0 (FaceNet finds the same root with brentq).
    NaN when the curve never reaches FPR + TPR = 1.
    """
    if len(fpr) == 0:
        return float("nan")
    g = fpr + tpr - 1.0
    hit = np.flatnonzero(g >= 0)
    if len(hit) == 0:
        return float("nan")
    i = int(hit[0])
    if i == 0 or g[i] == 0:
        return float(fpr[i])
    alpha = -g[i - 1] / (g[i] - g[i - 1])
    return float(fpr[i - 1] + alpha * (fpr[i] - fpr[i - 1]))


def evaluate(embeddings: Any, issame: Any, nrof_folds: int = 10, far_target: float = 1e-3,
             flipped: Any = None, flip_mode: str = "sum", source: str = "embeddings",
             flipped_source: str = "flipped") -> VerificationResult:
    """Run the LFW protocol on embeddings in pair order (rows 2k, 2k+1 = pair k).

    Embeddings are L2-normalised here (normalising twice is harmless), so raw model outputs can be
    passed. ``flipped``: raw embeddings of the mirrored images (``lfw.mirror``) for flip TTA, i.e.
    ``combine_flip(embeddings, flipped, flip_mode)``. ``source`` (and ``flipped_source``) name the inputs
    in errors, e.g. the file they came from.

    Embeddings from which no figure could mean anything raise ``DegenerateEmbeddingsError``: NaN or
    infinity, zero rows, rows all pointing one way, or pairs all at distances one threshold step apart
    (``check_embeddings``, ``evaluate_distances``).
    """
    if flipped is None:
        emb = l2_normalize(check_embeddings(embeddings, source), source)
    else:
        emb = combine_flip(embeddings, flipped, flip_mode, names=(source, flipped_source))
    same = np.asarray(issame)
    if same.ndim != 1:
        raise ValueError(f"issame: expected a 1-D array of booleans, got shape {same.shape}")
    if emb.shape[0] != 2 * len(same):
        raise ValueError(f"{source}: {emb.shape[0]} rows for {len(same)} pairs "
                         f"(expected 2 * len(issame) = {2 * len(same)} rows in pair order)")
    return evaluate_distances(pair_distances(emb), same, nrof_folds=nrof_folds, far_target=far_target,
                              source=source)


def plot_roc(result: VerificationResult, path: str | os.PathLike, title: str | None = None,
             log_fpr: bool = True) -> None:
    """Save the averaged ROC curve (format from the file suffix: png, pdf, svg). Written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    fig = Figure(figsize=(5.5, 4.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    keep = result.fpr > 0 if log_fpr else np.ones_like(result.fpr, dtype=bool)
    ax.plot(result.fpr[keep], result.tpr[keep], lw=1.5,
            label=f"acc {100 * result.accuracy:.2f}%, AUC {result.auc:.4f}, EER {result.eer:.4f}")
    if log_fpr:
        ax.set_xscale("log")
    ax.axvline(result.far_target, color="grey", ls=":", lw=1, label=f"FAR {result.far_target:g}")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    shown = result.tpr[keep]
    low = float(shown.min()) if shown.size else 0.0  # zoom on the part of the curve that is drawn
    ax.set_ylim(max(0.0, low - 0.01), 1.002)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title or f"LFW ROC ({result.pairs} pairs, {result.folds} folds)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format=fmt)
    except ValueError as exc:
        raise ValueError(f"{path}: cannot write a plot in format '{fmt}' ({exc})") from None
    with atomic_write(path) as f:
        f.write(buf.getvalue())


# ---------------------------------------------------------------------------------------------- CLI


# The embedding sizes a MobileFaceNet of this project can have: 128 (model.py's default, the paper and the
# reference om's ``the_outputs``: 128 x float16 = 256 bytes per file) and 192 (the pretrained sirius-ai
# weights, weights.py). An msame output file of another size is read with the wrong dtype or is not an
# embedding at all.
MOBILEFACENET_EMBEDDING_SIZES = (128, 192)
OUTPUT_DTYPES = ("float16", "float32")


def _sizes_text(sizes: Sequence[int]) -> str:
    return " or ".join(str(v) for v in sizes)


def check_embedding_size(elements: int, dtype: Any, sizes: Sequence[int], where: str, option: str,
                         fmt: str = "BIN") -> None:
    """Fail unless one output file holds an embedding of an expected size in ``dtype``.

    Reading float16 files as float32 halves the element count (and pairs up random halves of two
    values): evaluating that gives a plausible-looking wrong accuracy, so the byte count is checked and
    the dtype that fits is named.
    """
    if elements in sizes:
        return
    dt = np.dtype(dtype)
    if fmt.upper() == "TXT":
        raise ValueError(f"{where}: each output file holds {elements} values but the model's embedding has "
                         f"{_sizes_text(sizes)} (wrong folder? pass --embedding-size if the model differs)")
    nbytes = elements * dt.itemsize
    msg = (f"{where}: each output file is {nbytes} bytes; as {dt.name} that is {elements} values, but the "
           f"model's embedding has {_sizes_text(sizes)}")
    fits = [(name, nbytes // np.dtype(name).itemsize) for name in OUTPUT_DTYPES
            if name != dt.name and nbytes % np.dtype(name).itemsize == 0
            and nbytes // np.dtype(name).itemsize in sizes]
    if fits:
        name, count = fits[0]
        msg += f"; as {name} that is {count} values: pass {option} {name}"
    else:
        msg += " in float16 or float32 (wrong folder? pass --embedding-size if the model differs)"
    raise ValueError(msg)


def read_msame_embeddings(folder: str | os.PathLike, dtype: str, sizes: Sequence[int], option: str,
                          pairs: int | None = None) -> np.ndarray:
    """Output 0 of an msame run as embeddings ``[N, E]``, checked: each file holds one embedding of an
    expected size (``check_embedding_size``) and only finite values (the error names the file)."""
    from pymfn.inputs import msame

    res = msame.read_msame_outputs(folder, dtype, count=None if pairs is None else 2 * pairs)
    emb = res.outputs[0]
    emb = emb.reshape(len(emb), -1)
    check_embedding_size(emb.shape[1], dtype, sizes, str(res.run_dir), option, res.fmt)
    bad = np.flatnonzero(~np.isfinite(emb.astype(np.float32, copy=False)).all(axis=1))
    if len(bad):
        i = int(bad[0])
        name = f"{res.stems[i]}_output_0.{res.fmt.lower()}"
        raise ValueError(f"{res.run_dir / name}: holds NaN or infinity ({len(bad)} file(s) do); a model or "
                         f"conversion fault, or {option} names the wrong dtype")
    return emb


def _load_npy(path: Path, option: str) -> np.ndarray:
    """An embeddings .npy, read like pair labels are: ``np.load`` on a FIFO waits forever for a writer, so
    the file is opened non-blocking and must be a regular file (``read_regular_file``), and the header's
    size is checked against the bytes present before numpy allocates (``pymfn.inputs.pairs``'s .npy parser)."""
    if not path.exists():
        raise FileNotFoundError(f"{option} {path}: no such file")
    try:
        raw = read_regular_file(path, "an embeddings .npy file")
    except InputFileError as exc:
        raise ValueError(f"{option} {exc}") from None
    try:
        return parse_npy_bytes(raw, path)
    except IssameError as exc:  # the parser's error type; the message is about the .npy, not labels
        raise ValueError(f"{option} {exc}") from None


def print_warnings(result: VerificationResult, prog: str) -> None:
    for w in result.warnings:
        print(f"{prog}: warning: {w}", file=sys.stderr)


def evaluate_files(issame: str | os.PathLike, *, embeddings: str | os.PathLike | None = None,
                   msame_dir: str | os.PathLike | None = None, flip: str | os.PathLike | None = None,
                   dtype: str = "float16", embedding_sizes: Sequence[int] | None = None,
                   folds: int = 10) -> VerificationResult:
    """The LFW protocol on embeddings read from a .npy (``embeddings``) or an msame output folder
    (``msame_dir``, output files of ``dtype`` holding one of ``embedding_sizes`` values), with pair labels
    from ``issame`` (.npy, lfw.bin or text) and optional mirrored-image embeddings ``flip``.

    Every input is checked before it is scored (errors name the ``pymfn eval`` option that gave it)."""
    if (embeddings is None) == (msame_dir is None):
        raise CommandError("give the embeddings .npy or --msame-dir (exactly one)")
    if embedding_sizes is not None and any(e <= 0 for e in embedding_sizes):
        raise CommandError(f"--embedding-size {list(embedding_sizes)}: expected positive numbers of values")
    if folds < 1:
        raise CommandError(f"--folds {folds}: expected 1 or more folds (10 is the protocol's)")
    labels = load_issame(issame)
    if msame_dir is not None:
        sizes = tuple(embedding_sizes or MOBILEFACENET_EMBEDDING_SIZES)
        emb = read_msame_embeddings(msame_dir, dtype, sizes, "--dtype", pairs=len(labels))
        source = f"--msame-dir {msame_dir}"
    else:
        emb = _load_npy(Path(embeddings), "embeddings")
        source = f"embeddings {embeddings}"  # as the file errors of _load_npy name it
    flipped, flipped_source = None, f"--flip {flip}"
    if flip is not None:
        flipped = _load_npy(Path(flip), "--flip")
    # the inputs' own errors (non-finite, zero or identical rows) come before --folds is judged
    emb = check_embeddings(emb, source)
    if flipped is not None:
        flipped = check_embeddings(flipped, flipped_source)
    if emb.shape[0] == 2 * len(labels) and folds > len(labels):  # (a row-count mismatch: evaluate says so)
        raise CommandError(f"--folds {folds}: more folds than the {len(labels)} pairs in {issame} "
                           "(give --folds at most the number of pairs)")
    return evaluate(emb, labels, nrof_folds=folds, flipped=flipped, source=source, flipped_source=flipped_source)


def write_result_json(result: VerificationResult, path: Path) -> None:
    """Strict JSON: an undefined figure (AUC and EER when all pairs share one class) is null, with why."""
    why = next((w for w in result.warnings if "undefined" in w), "undefined for these pairs")
    write_json(path, result.to_dict(), reasons={"auc": why, "eer": why})

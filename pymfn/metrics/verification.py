"""Verification at low false-accept rates: the all-pairs protocol over an identity-labelled embedding set.

Every unordered pair of rows is a trial: **genuine** when both rows carry the same identity, **impostor**
otherwise. The score is the cosine similarity of the L2-normalised embeddings (computed in float64); a pair
is accepted when its score is above the threshold.

For each target FAR ``f`` (1e-2 ... 1e-6) the threshold is resolved on the impostor scores themselves: with
``n_imp`` impostor pairs and ``k = floor(f * n_imp)``, the threshold is the (k+1)-th largest impostor score,
so at most ``k`` impostors are accepted (exactly ``k`` unless scores tie). With lfw_train_112 (5,985 images,
17.9 M pairs) FAR 1e-6 means k = 17 accepted impostors. The largest impostor scores are kept exactly by a
streaming top-K (K = floor(max FAR * n_imp) + 1, with their pair indices, ~16 bytes each); when K would exceed
``max_topk`` the thresholds come from a 65,536-bin histogram of impostor scores instead (threshold at a bin
edge, counts still exact, the achieved FAR at or below the target). A target with ``f * n_imp < 1`` cannot be
resolved and is reported as such (threshold = the largest impostor score).

Nothing of size ``pairs`` is ever held: scores are computed in ``block x block`` tiles of the upper triangle
(blocked matrix products); per tile the genuine scores are kept (they are few), impostor scores only feed the
top-K and the histogram.

Intervals (95 %):

* ``tar_ci``: Clopper-Pearson on accepted / genuine pairs, treating pairs as independent trials; pairs
  that share an image or an identity are not independent, so this interval is too narrow;
* ``tar_ci_identity``: identity bootstrap - identities (with >= 2 images) resampled with replacement
  ``bootstrap`` times, TAR recomputed at the fixed threshold; it keeps within-identity correlation;
* ``far_ci``: Clopper-Pearson on accepted / impostor pairs (the uncertainty of the operating point).

``compare`` runs two embedding sets of the same rows (two precisions, two builds) through one pass: TAR of
each at its own thresholds, the TAR difference with a paired identity-bootstrap interval, decision flips of
genuine and of accepted impostor pairs, per-row embedding agreement and the score drift over all pairs.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from collections.abc import Sequence

import numpy as np

DEFAULT_FARS = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
DEFAULT_BLOCK = 1024
DEFAULT_MAX_TOPK = 8_000_000
HIST_BINS = 1 << 16
# Candidates gathered before the top-K buffer is cut back to K (amortises the partition).
TOPK_SLACK = 100_000
CONFIDENCE = 0.95


class VerificationError(ValueError):
    """Embeddings or labels that cannot be evaluated; the message is complete."""


def clopper_pearson(successes: int, trials: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact (Clopper-Pearson) binomial interval."""
    from scipy.stats import beta

    if trials <= 0:
        return (math.nan, math.nan)
    a = (1.0 - confidence) / 2.0
    lo = 0.0 if successes == 0 else float(beta.ppf(a, successes, trials - successes + 1))
    hi = 1.0 if successes == trials else float(beta.ppf(1.0 - a, successes + 1, trials - successes))
    return (lo, hi)


@dataclass
class OperatingPoint:
    far_target: float
    resolved: bool  # far_target * impostor_pairs >= 1
    threshold: float  # accept when score > threshold (exact) or bin >= threshold edge (histogram)
    impostors_accepted: int
    far: float
    far_ci: tuple[float, float]
    genuine_accepted: int
    tar: float
    tar_ci: tuple[float, float]
    tar_ci_identity: tuple[float, float]


@dataclass
class AllPairsResult:
    rows: int
    identities: int
    identities_with_pairs: int
    genuine_pairs: int
    impostor_pairs: int
    threshold_method: str  # "exact top-K" or "histogram (65536 bins)"
    points: list[OperatingPoint]
    genuine_score_mean: float
    impostor_score_max: float
    seconds: float
    block: int
    bootstrap: int
    protocol: str = ("all pairs i<j; genuine = same identity; score = cosine of L2-normalised embeddings (float64); "
                     "accept score > threshold; threshold = (floor(FAR*impostors)+1)-th largest impostor score")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Comparison:
    a: AllPairsResult
    b: AllPairsResult
    names: tuple[str, str]
    delta_tar: list[dict[str, Any]]  # per FAR: tar_b - tar_a with a paired identity-bootstrap interval, flips
    row_cosine_min: float
    row_cosine_mean: float
    score_drift_max: float
    score_drift_mean: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -------------------------------------------------------------------------------------------------- the scan


def _normalised(emb: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(emb)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise VerificationError(f"{name}: expected embeddings [rows >= 2, size >= 1], got shape {list(x.shape)}")
    if x.dtype.kind not in "fiu":
        raise VerificationError(f"{name}: embeddings are {x.dtype}, expected numbers")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        bad = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
        raise VerificationError(f"{name}: row {bad} is not finite")
    norms = np.linalg.norm(x, axis=1)
    if (norms == 0).any():
        raise VerificationError(f"{name}: row {int(np.flatnonzero(norms == 0)[0])} is all zeros (no direction)")
    x /= norms[:, None]
    return x


def _check_labels(labels: Any, rows: int, name: str) -> np.ndarray:
    lab = np.asarray(labels)
    if lab.ndim != 1 or len(lab) != rows:
        raise VerificationError(f"{name}: {lab.shape} labels for {rows} rows (expected one identity label per row)")
    if lab.dtype.kind not in "iu":
        raise VerificationError(f"{name}: labels are {lab.dtype}, expected integer identity ids")
    if (lab < 0).any():
        raise VerificationError(f"{name}: row {int(np.flatnonzero(lab < 0)[0])} has no identity (label -1); the "
                                "all-pairs protocol needs an identity for every row (an image tree source)")
    return lab.astype(np.int64)


@dataclass
class _TopK:
    keep: int
    values: np.ndarray = field(default_factory=lambda: np.empty(0))
    rows: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    floor: float = -math.inf
    parts: list = field(default_factory=list)
    pending: int = 0

    def offer(self, values: np.ndarray, rows: np.ndarray) -> None:
        if len(values):
            self.parts.append((values, rows))
            self.pending += len(values)
            if self.pending > 3 * self.keep + TOPK_SLACK:
                self._shrink()

    def _shrink(self) -> None:
        vals = np.concatenate([self.values] + [v for v, _ in self.parts])
        rows = np.concatenate([self.rows] + [r for _, r in self.parts])
        self.parts, self.pending = [], 0
        if len(vals) > self.keep:
            idx = np.argpartition(vals, len(vals) - self.keep)[len(vals) - self.keep:]
            vals, rows = vals[idx], rows[idx]
            self.floor = float(vals.min())
        self.values, self.rows = vals, rows

    def sorted_desc(self) -> tuple[np.ndarray, np.ndarray]:
        self._shrink()
        order = np.argsort(-self.values, kind="stable")
        return self.values[order], self.rows[order]


@dataclass
class _Scan:
    genuine: list[np.ndarray]  # per set: genuine scores, in scan order (aligned across sets)
    genuine_identity: np.ndarray
    impostor_pairs: int
    hist: list[np.ndarray]
    top: list[_TopK] | None
    drift_max: float
    drift_sum: float
    pairs: int
    impostor_max: list[float]


def _hist_bins(s: np.ndarray) -> np.ndarray:
    return np.clip(((s + 1.0) * (HIST_BINS / 2.0)).astype(np.int64), 0, HIST_BINS - 1)


def _scan(sets: Sequence[np.ndarray], labels: np.ndarray, keep: int | None, block: int) -> _Scan:
    n = len(labels)
    gen: list[list[np.ndarray]] = [[] for _ in sets]
    gen_id: list[np.ndarray] = []
    hist = [np.zeros(HIST_BINS, np.int64) for _ in sets]
    top = [_TopK(keep) for _ in sets] if keep else None
    imp_max = [-math.inf for _ in sets]
    n_imp = 0
    drift_max, drift_sum, pairs = 0.0, 0.0, 0
    for i0 in range(0, n, block):
        i1 = min(n, i0 + block)
        li = labels[i0:i1]
        for j0 in range(i0, n, block):
            j1 = min(n, j0 + block)
            same = li[:, None] == labels[j0:j1][None, :]
            valid = np.ones(same.shape, bool) if j0 != i0 else np.triu(np.ones(same.shape, bool), 1)
            gen_mask = same & valid
            imp_mask = valid & ~same
            n_imp += int(imp_mask.sum())
            pairs += int(valid.sum())
            gr, gc = np.nonzero(gen_mask)
            if len(gr):
                gen_id.append(li[gr])
            scores = []
            for s, x in enumerate(sets):
                sc = x[i0:i1] @ x[j0:j1].T
                scores.append(sc)
                if len(gr):
                    gen[s].append(sc[gr, gc])
                imp = sc[imp_mask]
                if len(imp):
                    hist[s] += np.bincount(_hist_bins(imp), minlength=HIST_BINS)
                    imp_max[s] = max(imp_max[s], float(imp.max()))
                if top is not None:
                    cand = imp_mask & (sc > top[s].floor)
                    r, c = np.nonzero(cand)
                    top[s].offer(sc[r, c], (i0 + r).astype(np.int64) * n + (j0 + c))
            if len(sets) == 2:
                d = np.abs(scores[0] - scores[1])[valid]
                if len(d):
                    drift_max = max(drift_max, float(d.max()))
                    drift_sum += float(d.sum())
    genuine = [np.concatenate(g) if g else np.empty(0) for g in gen]
    gid = np.concatenate(gen_id) if gen_id else np.empty(0, np.int64)
    return _Scan(genuine, gid, n_imp, hist, top, drift_max, drift_sum, pairs, imp_max)


# -------------------------------------------------------------------------------------------------- results


@dataclass
class _Thresholds:
    method: str
    values: list[float]  # per FAR
    accepted_imp: list[int]
    resolved: list[bool]
    accepted_rows: list[np.ndarray | None]  # pair codes of accepted impostors (exact method)


def _thresholds(scan: _Scan, s: int, fars: Sequence[float]) -> _Thresholds:
    n_imp = scan.impostor_pairs
    values, accepted, resolved, rows_acc = [], [], [], []
    if scan.top is not None:
        vals, rows = scan.top[s].sorted_desc()
        for f in fars:
            k = int(math.floor(f * n_imp))
            resolved.append(k >= 1)
            k = min(k, len(vals) - 1)
            tau = float(vals[k])
            above = int(np.searchsorted(-vals, -tau, side="left"))  # impostors with score > tau
            values.append(tau)
            accepted.append(above)
            rows_acc.append(rows[:above])
        return _Thresholds("exact top-K", values, accepted, resolved, rows_acc)
    above_from = np.cumsum(scan.hist[s][::-1])[::-1]  # impostors in bins >= b
    for f in fars:
        k = int(math.floor(f * n_imp))
        resolved.append(k >= 1)
        ok = np.flatnonzero(above_from <= k)
        b = int(ok[0]) if len(ok) else HIST_BINS  # HIST_BINS: accept nothing (the top bin alone is too many)
        values.append(-1.0 + 2.0 * b / HIST_BINS)
        accepted.append(int(above_from[b]) if b < HIST_BINS else 0)
        rows_acc.append(None)
    return _Thresholds(f"histogram ({HIST_BINS} bins)", values, accepted, resolved, rows_acc)


def _accepted_genuine(genuine: np.ndarray, th: _Thresholds, i: int) -> np.ndarray:
    if th.method.startswith("exact"):
        return genuine > th.values[i]
    return _hist_bins(genuine) >= round((th.values[i] + 1.0) * HIST_BINS / 2.0)


def _identity_weights(gid: np.ndarray, bootstrap: int, seed: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    ids, inverse = np.unique(gid, return_inverse=True)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(len(ids), np.full(len(ids), 1.0 / len(ids)), size=bootstrap) if len(ids) else \
        np.zeros((bootstrap, 0))
    totals = np.bincount(inverse, minlength=len(ids)).astype(np.float64)
    return ids, inverse, weights.astype(np.float64), totals


def _percentile_ci(samples: np.ndarray) -> tuple[float, float]:
    a = (1.0 - CONFIDENCE) / 2.0 * 100
    if not len(samples) or not np.isfinite(samples).any():
        return (math.nan, math.nan)
    return (float(np.nanpercentile(samples, a)), float(np.nanpercentile(samples, 100 - a)))


def _result(scan: _Scan, s: int, labels: np.ndarray, fars: Sequence[float], bootstrap: int, seed: int,
            seconds: float, block: int) -> tuple[AllPairsResult, _Thresholds, list[np.ndarray], np.ndarray]:
    genuine = scan.genuine[s]
    th = _thresholds(scan, s, fars)
    _, inverse, weights, totals = _identity_weights(scan.genuine_identity, bootstrap, seed)
    points, boot = [], []
    for i, f in enumerate(fars):
        acc = _accepted_genuine(genuine, th, i)
        per_id = np.bincount(inverse, weights=acc.astype(np.float64), minlength=len(totals))
        with np.errstate(invalid="ignore", divide="ignore"):
            tar_boot = (weights @ per_id) / (weights @ totals)
        boot.append(tar_boot)
        n_acc = int(acc.sum())
        points.append(OperatingPoint(
            far_target=f, resolved=th.resolved[i], threshold=th.values[i],
            impostors_accepted=th.accepted_imp[i], far=th.accepted_imp[i] / max(scan.impostor_pairs, 1),
            far_ci=clopper_pearson(th.accepted_imp[i], scan.impostor_pairs),
            genuine_accepted=n_acc, tar=n_acc / len(genuine) if len(genuine) else math.nan,
            tar_ci=clopper_pearson(n_acc, len(genuine)), tar_ci_identity=_percentile_ci(tar_boot)))
    result = AllPairsResult(
        rows=len(labels), identities=len(np.unique(labels)), identities_with_pairs=len(totals),
        genuine_pairs=len(genuine), impostor_pairs=scan.impostor_pairs, threshold_method=th.method, points=points,
        genuine_score_mean=float(genuine.mean()) if len(genuine) else math.nan,
        impostor_score_max=scan.impostor_max[s], seconds=seconds, block=block, bootstrap=bootstrap)
    return result, th, boot, inverse


def _keep_for(fars: Sequence[float], n_imp: int, max_topk: int) -> int | None:
    keep = int(math.floor(max(fars) * n_imp)) + 1
    return keep if keep <= max_topk else None


def _impostor_pairs(labels: np.ndarray) -> int:
    n = len(labels)
    counts = np.bincount(np.unique(labels, return_inverse=True)[1]).astype(np.int64)
    return n * (n - 1) // 2 - int((counts * (counts - 1) // 2).sum())


def _check_fars(fars: Sequence[float]) -> list[float]:
    out = [float(f) for f in fars]
    if not out or any(not (0.0 < f < 1.0) for f in out):
        raise VerificationError(f"FAR targets {out}: expected numbers between 0 and 1 (exclusive)")
    return out


def all_pairs(embeddings: np.ndarray, labels: Any, fars: Sequence[float] = DEFAULT_FARS, *,
              block: int = DEFAULT_BLOCK, bootstrap: int = 1000, seed: int = 0, max_topk: int = DEFAULT_MAX_TOPK,
              name: str = "embeddings") -> AllPairsResult:
    """TAR at each target FAR over all pairs of ``embeddings`` (rows) with identity ``labels``."""
    t0 = time.perf_counter()
    fars = _check_fars(fars)
    x = _normalised(embeddings, name)
    lab = _check_labels(labels, len(x), name)
    if block < 1:
        raise VerificationError(f"block {block}: expected a positive tile size")
    keep = _keep_for(fars, _impostor_pairs(lab), max_topk)
    scan = _scan([x], lab, keep, block)
    if not len(scan.genuine[0]) or not scan.impostor_pairs:
        raise VerificationError(f"{name}: {len(scan.genuine[0])} genuine and {scan.impostor_pairs} impostor pairs; "
                                "the protocol needs identities with at least 2 images and at least 2 identities")
    return _result(scan, 0, lab, fars, bootstrap, seed, time.perf_counter() - t0, block)[0]


def compare(a: np.ndarray, b: np.ndarray, labels: Any, fars: Sequence[float] = DEFAULT_FARS, *,
            names: tuple[str, str] = ("a", "b"), block: int = DEFAULT_BLOCK, bootstrap: int = 1000, seed: int = 0,
            max_topk: int = DEFAULT_MAX_TOPK) -> Comparison:
    """Two embedding sets of the same rows in one pass: each one's TAR@FAR and what changed from a to b."""
    t0 = time.perf_counter()
    fars = _check_fars(fars)
    xa, xb = _normalised(a, names[0]), _normalised(b, names[1])
    if xa.shape[0] != xb.shape[0]:
        raise VerificationError(f"{names[1]}: {xb.shape[0]} rows, {names[0]} has {xa.shape[0]} (the same images?)")
    lab = _check_labels(labels, len(xa), names[0])
    keep = _keep_for(fars, _impostor_pairs(lab), max_topk)
    scan = _scan([xa, xb], lab, keep, block)
    if not len(scan.genuine[0]) or not scan.impostor_pairs:
        raise VerificationError(f"{names[0]}: no genuine or no impostor pairs")
    seconds = time.perf_counter() - t0
    ra, tha, boot_a, _ = _result(scan, 0, lab, fars, bootstrap, seed, seconds, block)
    rb, thb, boot_b, _ = _result(scan, 1, lab, fars, bootstrap, seed, seconds, block)  # same seed: paired
    n = len(lab)
    deltas = []
    for i, f in enumerate(fars):
        acc_a = _accepted_genuine(scan.genuine[0], tha, i)
        acc_b = _accepted_genuine(scan.genuine[1], thb, i)
        entry: dict[str, Any] = {
            "far_target": f, "tar_a": ra.points[i].tar, "tar_b": rb.points[i].tar,
            "delta_tar": rb.points[i].tar - ra.points[i].tar,
            "delta_tar_ci_identity": _percentile_ci(boot_b[i] - boot_a[i]),
            "genuine_accepted_by_a_only": int((acc_a & ~acc_b).sum()),
            "genuine_accepted_by_b_only": int((acc_b & ~acc_a).sum()),
        }
        rows_a = tha.accepted_rows[i]
        if rows_a is not None:  # impostors a accepts: are they accepted by b at b's threshold?
            r, c = rows_a // n, rows_a % n
            sb = np.einsum("ij,ij->i", xb[r], xb[c])
            entry["impostors_accepted_by_a_rejected_by_b"] = int((sb <= thb.values[i]).sum())
            rows_b = thb.accepted_rows[i]
            r, c = rows_b // n, rows_b % n
            sa = np.einsum("ij,ij->i", xa[r], xa[c])
            entry["impostors_accepted_by_b_rejected_by_a"] = int((sa <= tha.values[i]).sum())
        deltas.append(entry)
    cos = np.einsum("ij,ij->i", xa, xb)
    return Comparison(ra, rb, names, deltas, float(cos.min()), float(cos.mean()), scan.drift_max,
                      scan.drift_sum / max(scan.pairs, 1), time.perf_counter() - t0)


def format_result(r: AllPairsResult, title: str) -> list[str]:
    lines = [f"{title}: {r.rows} rows, {r.identities} identities ({r.identities_with_pairs} with pairs), "
             f"{r.genuine_pairs:,} genuine and {r.impostor_pairs:,} impostor pairs; thresholds: {r.threshold_method}",
             f"  {'FAR target':>10}  {'threshold':>9}  {'FAR (95% CI)':>31}  {'TAR':>8}  {'CI pairs':>17}  "
             f"{'CI identity bootstrap':>21}"]
    for p in r.points:
        flag = "" if p.resolved else "  (not resolvable: fewer than 1 impostor at this FAR)"
        lines.append(f"  {p.far_target:>10.0e}  {p.threshold:>9.5f}  {p.far:>9.2e} [{p.far_ci[0]:.2e}, {p.far_ci[1]:.2e}]"
                     f"  {p.tar * 100:>7.3f}%  [{p.tar_ci[0] * 100:6.3f}, {p.tar_ci[1] * 100:6.3f}]  "
                     f"[{p.tar_ci_identity[0] * 100:7.3f}, {p.tar_ci_identity[1] * 100:7.3f}]{flag}")
    return lines

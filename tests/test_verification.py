"""The all-pairs verification protocol against brute force on synthetic identity-labelled embeddings."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pymfn.metrics import verification as V


def _synthetic(identities: int = 40, per: int = 12, dim: int = 16, noise: float = 0.9, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((identities, dim))
    sizes = rng.integers(1, per + 1, identities)  # some identities with a single image (no genuine pairs)
    labels = np.repeat(np.arange(identities), sizes)
    emb = centres[labels] + noise * rng.standard_normal((len(labels), dim))
    perm = rng.permutation(len(labels))  # identities interleaved, not contiguous
    return emb[perm].astype(np.float32), labels[perm]


def _brute(emb: np.ndarray, labels: np.ndarray):
    x = emb.astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    s = x @ x.T
    i, j = np.triu_indices(len(x), 1)
    same = labels[i] == labels[j]
    return s[i, j][same], s[i, j][~same]


@pytest.mark.parametrize("block,slack", [(7, 0), (64, 0), (5000, V.TOPK_SLACK)])
def test_exact_thresholds_and_tar_equal_brute_force(block: int, slack: int, monkeypatch) -> None:
    monkeypatch.setattr(V, "TOPK_SLACK", slack)  # 0: the top-K buffer is cut back many times during the scan
    emb, labels = _synthetic()
    gen, imp = _brute(emb, labels)
    fars = (1e-1, 1e-2, 1e-3, 1e-4)
    r = V.all_pairs(emb, labels, fars, block=block, bootstrap=200)
    assert (r.genuine_pairs, r.impostor_pairs) == (len(gen), len(imp))
    assert r.threshold_method == "exact top-K"
    desc = np.sort(imp)[::-1]
    for p, f in zip(r.points, fars):
        k = int(math.floor(f * len(imp)))
        assert p.resolved == (k >= 1)
        assert p.threshold == pytest.approx(desc[k], abs=1e-12)
        assert p.impostors_accepted == int((imp > desc[k]).sum()) == k  # no ties in continuous data
        assert p.genuine_accepted == int((gen > desc[k]).sum())
        assert p.tar == p.genuine_accepted / len(gen)
        assert p.tar_ci[0] <= p.tar <= p.tar_ci[1]
        assert p.tar_ci_identity[0] <= p.tar_ci_identity[1]
    assert r.impostor_score_max == pytest.approx(desc[0], abs=1e-12)


def test_unresolvable_far_is_flagged() -> None:
    emb, labels = _synthetic(identities=6, per=4)
    _, imp = _brute(emb, labels)
    r = V.all_pairs(emb, labels, (1e-6,), bootstrap=0)
    p = r.points[0]
    assert not p.resolved and p.impostors_accepted == 0
    assert p.threshold == pytest.approx(imp.max(), abs=1e-12)


def test_histogram_thresholds_when_top_k_is_too_large() -> None:
    emb, labels = _synthetic(seed=3)
    gen, imp = _brute(emb, labels)
    fars = (1e-1, 1e-2)
    r = V.all_pairs(emb, labels, fars, max_topk=10, bootstrap=0)
    assert r.threshold_method.startswith("histogram")
    def bins(s):
        return np.clip(((s + 1.0) * (V.HIST_BINS / 2.0)).astype(np.int64), 0, V.HIST_BINS - 1)

    gb, ib = bins(gen), bins(imp)
    for p, f in zip(r.points, fars):
        k = int(math.floor(f * len(imp)))
        edge = round((p.threshold + 1.0) * V.HIST_BINS / 2.0)
        assert p.impostors_accepted == int((ib >= edge).sum()) <= k < int((ib >= edge - 1).sum())
        assert p.genuine_accepted == int((gb >= edge).sum())
    exact = V.all_pairs(emb, labels, fars, bootstrap=0)
    for h, e in zip(r.points, exact.points):  # a bin edge below the exact threshold at most one bin away
        assert e.threshold - 2.0 / V.HIST_BINS <= h.threshold <= e.threshold + 2.0 / V.HIST_BINS


def test_compare_identical_sets_and_a_perturbed_one() -> None:
    emb, labels = _synthetic(seed=5)
    same = V.compare(emb, emb.copy(), labels, (1e-2, 1e-3), bootstrap=100)
    assert same.score_drift_max == 0.0 and same.row_cosine_min == pytest.approx(1.0)
    for d in same.delta_tar:
        assert d["delta_tar"] == 0 and d["genuine_accepted_by_a_only"] == d["genuine_accepted_by_b_only"] == 0
        assert d["impostors_accepted_by_a_rejected_by_b"] == 0
    rng = np.random.default_rng(1)
    noisy = emb + 0.3 * rng.standard_normal(emb.shape).astype(np.float32)
    c = V.compare(emb, noisy, labels, (1e-2, 1e-3), bootstrap=100)
    gen_a, imp_a = _brute(emb, labels)
    gen_b, imp_b = _brute(noisy, labels)
    assert c.score_drift_max == pytest.approx(np.abs(np.r_[gen_a, imp_a] - np.r_[gen_b, imp_b]).max(), abs=1e-12)
    for d, f in zip(c.delta_tar, (1e-2, 1e-3)):
        ta = np.sort(imp_a)[::-1][int(f * len(imp_a))]
        tb = np.sort(imp_b)[::-1][int(f * len(imp_b))]
        assert d["tar_a"] == (gen_a > ta).mean() and d["tar_b"] == (gen_b > tb).mean()
        # genuine pairs come in the same order from both sets (brute force order differs: compare counts)
        assert d["tar_b"] - d["tar_a"] == pytest.approx(
            (d["genuine_accepted_by_b_only"] - d["genuine_accepted_by_a_only"]) / len(gen_a))
        acc_a = imp_a > ta
        assert d["impostors_accepted_by_a_rejected_by_b"] == int((acc_a & ~(imp_b > tb)).sum())


def test_bad_inputs_are_named() -> None:
    emb, labels = _synthetic(identities=4, per=3)
    with pytest.raises(V.VerificationError, match="labels"):
        V.all_pairs(emb, labels[:-1])
    bad = emb.copy()
    bad[2] = np.nan
    with pytest.raises(V.VerificationError, match="row 2 is not finite"):
        V.all_pairs(bad, labels)
    with pytest.raises(V.VerificationError, match="label -1"):
        V.all_pairs(emb, np.full(len(emb), -1))
    with pytest.raises(V.VerificationError, match="FAR"):
        V.all_pairs(emb, labels, (0.0,))
    with pytest.raises(V.VerificationError, match="genuine"):
        V.all_pairs(emb, np.arange(len(emb)))

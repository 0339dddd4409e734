"""pymfn.metrics.lfw against straightforward re-implementations of the reference protocol.

`ref_roc` / `ref_val` below are written the way FaceNet's `calculate_roc` / `calculate_val` (and InsightFace's
copies) work: scikit-learn KFold, one pass over the pairs per threshold, and for VAL the legacy SciPy
`interp1d(kind="slinear")`, emulated with the degree-1 B-spline old SciPy built (knots = the FAR points,
coefficients = the thresholds). Results must agree exactly, not approximately.
"""
from __future__ import annotations

import re

import json

import numpy as np
import pytest
from scipy.interpolate import BSpline
from scipy.optimize import brentq
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import KFold
from sklearn.preprocessing import normalize as sk_normalize

from pymfn.metrics import lfw as ev
from pymfn.cli import main as cli_main


# ----------------------------------------------------------------------------------- reference code


def _cli_error(capsys, argv: list[str]) -> str:
    """The one stderr line of a failing ``pymfn`` command, without its ``pymfn <cmd>: error: `` prefix."""
    capsys.readouterr()
    assert cli_main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    prefix = f"pymfn {argv[0]}: error: "
    assert err.startswith(prefix), err
    return err[len(prefix):].rstrip("\n")

def _acc(threshold, dist, same):
    pred = np.less(dist, threshold)
    tp = np.sum(np.logical_and(pred, same))
    fp = np.sum(np.logical_and(pred, np.logical_not(same)))
    tn = np.sum(np.logical_and(np.logical_not(pred), np.logical_not(same)))
    fn = np.sum(np.logical_and(np.logical_not(pred), same))
    tpr = 0 if (tp + fn == 0) else float(tp) / float(tp + fn)
    fpr = 0 if (fp + tn == 0) else float(fp) / float(fp + tn)
    return tpr, fpr, float(tp + tn) / dist.size


def _val_far(threshold, dist, same):
    pred = np.less(dist, threshold)
    ta = np.sum(np.logical_and(pred, same))
    fa = np.sum(np.logical_and(pred, np.logical_not(same)))
    return float(ta) / float(np.sum(same)), float(fa) / float(np.sum(np.logical_not(same)))


def _splits(n, k):
    idx = np.arange(n)
    if k == 1:  # InsightFace LFold
        return [(idx, idx)]
    return list(KFold(n_splits=k, shuffle=False).split(idx))


def legacy_slinear(far_train, thresholds, x):
    """Old SciPy interp1d(kind='slinear'): stable sort, then make_interp_spline's k=1 shortcut
    (knots r_[x0, x, x_last], coefficients = y) evaluated as a B-spline."""
    order = np.argsort(far_train, kind="mergesort")
    xs, ys = far_train[order], thresholds[order]
    spline = BSpline.construct_fast(np.r_[xs[0], xs, xs[-1]], ys, 1)
    return float(spline(x))


def ref_roc(dist, same, k=10):
    th = np.arange(0, 4, 0.01)
    splits = _splits(len(dist), k)
    tprs = np.zeros((k, len(th)))
    fprs = np.zeros((k, len(th)))
    accuracy = np.zeros(k)
    best = []
    for f, (tr, te) in enumerate(splits):
        acc_train = np.zeros(len(th))
        for i, t in enumerate(th):
            _, _, acc_train[i] = _acc(t, dist[tr], same[tr])
        b = np.argmax(acc_train)
        best.append(th[b])
        for i, t in enumerate(th):
            tprs[f, i], fprs[f, i], _ = _acc(t, dist[te], same[te])
        _, _, accuracy[f] = _acc(th[b], dist[te], same[te])
    return np.mean(tprs, 0), np.mean(fprs, 0), accuracy, best


def ref_val(dist, same, far_target=1e-3, k=10):
    th = np.arange(0, 4, 0.001)
    splits = _splits(len(dist), k)
    val = np.zeros(k)
    far = np.zeros(k)
    thr_used = []
    for f, (tr, te) in enumerate(splits):
        far_train = np.zeros(len(th))
        for i, t in enumerate(th):
            _, far_train[i] = _val_far(t, dist[tr], same[tr])
        thr = legacy_slinear(far_train, th, far_target) if np.max(far_train) >= far_target else 0.0
        thr_used.append(thr)
        val[f], far[f] = _val_far(thr, dist[te], same[te])
    return np.mean(val), np.std(val), np.mean(far), thr_used


def synthetic_embeddings(pairs: int, seed: int, dim: int = 16, noise: float = 1.0, dtype=np.float32):
    """Pairs in order; same pairs are noisy copies, different pairs independent. Raw (not unit) rows."""
    rng = np.random.default_rng(seed)
    same = np.zeros(pairs, dtype=bool)
    same[rng.permutation(pairs)[: pairs // 2]] = True
    a = rng.standard_normal((pairs, dim))
    b = np.where(same[:, None], a + noise * rng.standard_normal((pairs, dim)), rng.standard_normal((pairs, dim)))
    emb = np.empty((2 * pairs, dim))
    emb[0::2], emb[1::2] = a * rng.uniform(0.5, 3, (pairs, 1)), b
    return emb.astype(dtype), same


# -------------------------------------------------------------------------------------------- tests

@pytest.mark.parametrize("pairs,folds,seed,dtype", [
    (2400, 10, 0, np.float32),  # LFW-like; the 6,000-pair case is checked by bench/test_bench_eval.py
    (1234, 7, 1, np.float64),  # folds of unequal size, like KFold
    (300, 1, 3, np.float32),  # LFold: train == test
])
def test_matches_reference_loops_exactly(pairs, folds, seed, dtype):
    emb, same = synthetic_embeddings(pairs, seed, dtype=dtype)
    res = ev.evaluate(emb, same, nrof_folds=folds)
    e = sk_normalize(emb)
    dist = np.sum(np.square(np.subtract(e[0::2], e[1::2])), 1)
    tpr, fpr, acc, best = ref_roc(dist, same, folds)
    val, val_std, far, thr = ref_val(dist, same, 1e-3, folds)
    assert res.fold_accuracy == acc.tolist()
    assert res.accuracy == np.mean(acc) and res.accuracy_std == np.std(acc)
    assert res.thresholds == [float(t) for t in best]
    assert np.array_equal(res.tpr, tpr) and np.array_equal(res.fpr, fpr)
    assert res.val_thresholds == thr
    assert (res.val, res.val_std, res.far) == (val, val_std, far)
    assert res.pairs == pairs and res.folds == folds
    assert 0.5 < res.accuracy < 1.0  # the data is neither trivial nor random
    assert 0 < res.val < 1


def test_strict_less_and_ties_on_grid():
    # distances exactly on grid points: "< t" vs "<= t" and first-best-on-ties both matter here
    rng = np.random.default_rng(5)
    n = 1000
    same = rng.random(n) < 0.5
    grid = np.arange(0, 4, 0.01)
    dist = np.where(same, grid[rng.integers(40, 160, n)], grid[rng.integers(120, 300, n)])
    res = ev.evaluate_distances(dist, same)
    tpr, fpr, acc, best = ref_roc(dist, same)
    val, val_std, far, thr = ref_val(dist, same)
    assert res.fold_accuracy == acc.tolist() and res.thresholds == [float(t) for t in best]
    assert np.array_equal(res.tpr, tpr) and np.array_equal(res.fpr, fpr)
    assert (res.val, res.val_std, res.far) == (val, val_std, far)
    assert res.val_thresholds == thr


def test_legacy_interpolation_is_not_a_unique_dedup():
    """The common fork workaround, interp1d on np.unique(far_train) (first threshold of each plateau),
    interpolates from the *first* threshold of the lower plateau and so picks lower thresholds than the
    legacy figure; ours must equal the legacy spline, not the workaround."""
    from scipy.interpolate import interp1d

    emb, same = synthetic_embeddings(6000, 21)
    res = ev.evaluate(emb, same)
    dist = ev.pair_distances(ev.l2_normalize(emb))
    th = np.arange(0, 4, 0.001)
    differs = 0
    for f, (a, b) in enumerate(ev.fold_bounds(len(dist), 10)):
        train = np.r_[0:a, b:len(dist)]
        d, s = dist[train], same[train]
        far_train = np.array([np.sum((d < t) & ~s) / np.sum(~s) for t in th])
        legacy = legacy_slinear(far_train, th, 1e-3)
        u, idx = np.unique(far_train, return_index=True)
        dedup = float(interp1d(u, th[idx], kind="slinear")(1e-3))
        assert res.val_thresholds[f] == legacy
        differs += dedup != legacy
    assert differs > 0


def test_legacy_val_when_far_hits_target_exactly():
    # 2 folds of 4000 pairs with 2000 different pairs each: a training FAR of 2/2000 == 1e-3 exactly,
    # so the interpolation lands on a plateau; np.interp and the old spline both take its last threshold
    rng = np.random.default_rng(11)
    n = 8000
    same = np.zeros(n, bool)
    same[np.r_[0:2000, 4000:6000]] = True
    dist = np.where(same, rng.uniform(0.2, 1.5, n), rng.uniform(1.0, 3.5, n))
    res = ev.evaluate_distances(dist, same, nrof_folds=2)
    val, val_std, far, thr = ref_val(dist, same, 1e-3, 2)
    assert res.val_thresholds == thr and (res.val, res.val_std, res.far) == (val, val_std, far)


def test_val_is_zero_when_far_target_unreachable():
    # different pairs all beyond the last VAL threshold (3.999): training FAR never reaches 1e-3
    n = 600
    same = np.arange(n) % 2 == 0
    dist = np.where(same, 0.5, 3.9995)
    res = ev.evaluate_distances(dist, same)
    assert res.val_thresholds == [0.0] * 10
    assert res.val == 0.0 and res.far == 0.0
    assert res.accuracy == 1.0 and res.thresholds == [0.51] * 10  # first threshold above 0.5


def test_perfect_and_random_separation():
    n = 1000
    same = np.arange(n) % 2 == 0
    res = ev.evaluate_distances(np.where(same, 0.1, 2.0), same)
    assert res.accuracy == 1.0 and res.accuracy_std == 0.0 and res.eer == 0.0 and res.auc > 0.999
    rng = np.random.default_rng(0)
    res = ev.evaluate_distances(rng.uniform(0, 4, 20000), rng.random(20000) < 0.5)
    assert abs(res.auc - 0.5) < 0.03 and abs(res.eer - 0.5) < 0.03


def test_kfold_bounds_match_sklearn():
    for n, k in [(6000, 10), (1234, 10), (17, 4), (10, 10)]:
        ours = ev.fold_bounds(n, k)
        ref = [(int(te[0]), int(te[-1]) + 1) for _, te in KFold(n_splits=k).split(np.arange(n))]
        assert ours == ref


def test_auc_and_eer_against_sklearn_and_brentq():
    emb, same = synthetic_embeddings(3000, 7, noise=1.3)
    res = ev.evaluate(emb, same)
    dist = ev.pair_distances(ev.l2_normalize(emb)).astype(np.float64)
    # over all pairs, with the distance as the score of "different"
    assert res.auc == pytest.approx(roc_auc_score(same, -dist), abs=1e-12)
    fpr, tpr, _ = roc_curve(same, -dist, drop_intermediate=False)
    ours_fpr, ours_tpr = ev.roc_all_pairs(dist, same)
    np.testing.assert_allclose(ours_fpr, fpr, atol=1e-15)
    np.testing.assert_allclose(ours_tpr, tpr, atol=1e-15)
    # FaceNet: eer = brentq(lambda x: 1 - x - interp1d(fpr, tpr)(x), 0, 1) (np.interp here)
    eer = brentq(lambda x: 1.0 - x - np.interp(x, fpr, tpr), 0.0, 1.0, xtol=1e-14)
    assert res.eer == pytest.approx(eer, abs=1e-9)
    assert 0.0 < res.eer < 0.5
    assert res.warnings == []


def test_auc_eer_over_all_pairs_when_folds_hold_one_class():
    """Sorted labels put one class per contiguous fold; the per-fold ROC average gave AUC 0.25 and
    EER 0 for a set scikit-learn scores 1.0. Now AUC/EER use all pairs, and the result warns."""
    same = np.r_[np.ones(50, bool), np.zeros(50, bool)]  # sorted: folds 1-5 all same, 6-10 all different
    dist = np.where(same, 0.2, 1.5) + np.linspace(0, 0.1, 100)
    res = ev.evaluate_distances(dist, same)
    assert res.auc == roc_auc_score(same, -dist) == 1.0
    assert res.eer == 0.0
    assert len(res.warnings) == 1 and "10 of 10 folds hold only one class" in res.warnings[0]
    assert res.to_dict()["warnings"] == res.warnings and res.to_dict()["auc_eer_over"] == "all pairs"
    # a partly overlapping sorted set: still sklearn's figure
    dist2 = np.where(same, 0.5, 0.9) + np.random.default_rng(1).uniform(0, 0.6, 100)
    res2 = ev.evaluate_distances(dist2, same)
    assert res2.auc == pytest.approx(roc_auc_score(same, -dist2), abs=1e-12)
    # one class altogether: undefined, said so
    res3 = ev.evaluate_distances(dist, np.ones(100, bool))
    assert np.isnan(res3.auc) and np.isnan(res3.eer) and "AUC and EER are undefined" in res3.warnings[0]


def test_l2_normalize_is_sklearn_bit_for_bit():
    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64):
        x = (rng.standard_normal((50, 128)) * 7).astype(dtype)
        x[4] = 0  # zero row stays zero
        ours = ev.l2_normalize(x)
        assert ours.dtype == dtype
        assert np.array_equal(ours, sk_normalize(x))
    half = rng.standard_normal((4, 8)).astype(np.float16)
    assert ev.l2_normalize(half).dtype == np.float32


def test_combine_flip_sums_raw_then_normalises():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((10, 16)).astype(np.float32), 5 * rng.standard_normal((10, 16)).astype(np.float32)
    assert np.array_equal(ev.combine_flip(a, b), sk_normalize(a + b))
    # not the same as summing normalised halves: the larger raw embedding weighs more
    assert not np.allclose(ev.combine_flip(a, b), sk_normalize(sk_normalize(a) + sk_normalize(b)))
    with pytest.raises(ValueError, match="emb_flipped has"):
        ev.combine_flip(a, b[:5])
    emb, same = synthetic_embeddings(300, 1)
    flip = emb + np.random.default_rng(2).standard_normal(emb.shape).astype(np.float32)
    assert ev.evaluate(emb, same, flipped=flip).to_dict() == ev.evaluate(ev.combine_flip(emb, flip), same).to_dict()


def test_combine_flip_concat_averages_the_halves_squared_distances():
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((10, 16)), 3 * rng.standard_normal((10, 16))
    got = ev.combine_flip(a, b, mode="concat")
    assert got.shape == (10, 32)
    np.testing.assert_allclose(got, sk_normalize(np.hstack([sk_normalize(a), sk_normalize(b)])), atol=1e-6)
    # squared distance of the concatenation = mean of the halves' squared distances
    d = ev.pair_distances(got)
    na, nb = sk_normalize(a), sk_normalize(b)
    want = (np.sum((na[0::2] - na[1::2]) ** 2, 1) + np.sum((nb[0::2] - nb[1::2]) ** 2, 1)) / 2
    np.testing.assert_allclose(d, want, atol=1e-5)
    with pytest.raises(ValueError, match="mode='avg'"):
        ev.combine_flip(a, b, mode="avg")


def test_bad_inputs_have_clear_errors():
    emb, same = synthetic_embeddings(100, 0)
    with pytest.raises(ValueError, match=r"199 rows for 100 pairs"):
        ev.evaluate(emb[:199], same)
    with pytest.raises(ValueError, match=r"2-D array"):
        ev.evaluate(emb[:, 0], same)
    bad = emb.copy()
    bad[17, 3] = np.nan
    with pytest.raises(ValueError, match=r"row 17 contains NaN"):
        ev.evaluate(bad, same)
    with pytest.raises(ValueError, match=r"nrof_folds=101"):
        ev.evaluate(emb, same, nrof_folds=101)
    with pytest.raises(ValueError, match=r"nrof_folds=0"):
        ev.evaluate(emb, same, nrof_folds=0)
    with pytest.raises(ValueError, match=r"issame: label \d+ is 2 .*expected booleans or 0/1"):
        ev.evaluate(emb, np.where(same, 2, 0))
    with pytest.raises(ValueError, match=r"issame: labels are float64; expected booleans or 0/1"):
        ev.evaluate(emb, same.astype(float))
    with pytest.raises(ValueError, match=r"far_target"):
        ev.evaluate(emb, same, far_target=0)
    with pytest.raises(ValueError, match=r"dtype"):
        ev.evaluate(np.full((200, 3), "x"), same)


def test_result_to_dict_is_json(tmp_path):
    emb, same = synthetic_embeddings(600, 9)
    res = ev.evaluate(emb, same)
    d = json.loads(json.dumps(res.to_dict()))
    for key in ("accuracy", "accuracy_std", "fold_accuracy", "thresholds", "val", "val_std", "far", "auc", "eer", "pairs"):
        assert key in d
    assert d["pairs"] == 600 and len(d["fold_accuracy"]) == 10 and d["accuracy"] == res.accuracy
    assert len(res.to_dict(curve=True)["tpr"]) == 400
    assert "LFW accuracy" in res.summary()


def test_plot_roc_writes_image_atomically(tmp_path):
    emb, same = synthetic_embeddings(600, 9)
    res = ev.evaluate(emb, same)
    out = tmp_path / "sub" / "roc.png"
    ev.plot_roc(res, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ev.plot_roc(res, tmp_path / "roc.svg", log_fpr=False)
    assert b"<svg" in (tmp_path / "roc.svg").read_bytes()[:500]
    with pytest.raises(ValueError, match="roc.xyz"):
        ev.plot_roc(res, tmp_path / "roc.xyz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["roc.svg", "sub"]  # no temp leftovers


def test_cli_from_npy_and_msame_folder(tmp_path, capsys):
    emb, same = synthetic_embeddings(300, 12)
    np.save(tmp_path / "emb.npy", emb)
    np.save(tmp_path / "issame.npy", same)
    rc = cli_main(["eval", str(tmp_path / "emb.npy"), "--issame", str(tmp_path / "issame.npy"),
                  "--json", str(tmp_path / "r.json")])
    assert rc == 0
    assert json.loads((tmp_path / "r.json").read_text())["accuracy"] == ev.evaluate(emb, same).accuracy
    # msame folder layout: {i}_output_0.bin, float16 (what the reference om writes)
    out = tmp_path / "om" / "2022113_9_31_13_612340"
    out.mkdir(parents=True)
    for i, row in enumerate(ev.l2_normalize(emb).astype(np.float16)):
        row.tofile(out / f"{i}_output_0.bin")
    rc = cli_main(["eval", "--msame-dir", str(tmp_path / "om"), "--issame", str(tmp_path / "issame.npy"),
                  "--embedding-size", "16"])
    assert rc == 0 and "LFW accuracy" in capsys.readouterr().out
    (out / "7_output_0.bin").unlink()
    from pymfn.__main__ import main as pymfn_main

    assert pymfn_main(["eval", "--msame-dir", str(out), "--issame", str(tmp_path / "issame.npy"),
                       "--embedding-size", "16"]) == 1
    err = capsys.readouterr().err
    assert "missing index(es): 7" in err and err.count("\n") == 1


# --------------------------------------------------------------------------- msame folders

def _msame_run(root, rows: np.ndarray):
    run = root / "20240101_120000"
    run.mkdir(parents=True)
    for i, row in enumerate(rows):
        row.tofile(run / f"{i}_output_0.bin")
    return run


def test_msame_files_read_with_the_wrong_dtype_are_an_error(tmp_path):
    """`--output-dtype float32` on float16 files halved the element count and reported 60% with exit 0."""
    emb, same = synthetic_embeddings(50, 3, dim=128)
    run = _msame_run(tmp_path / "om", ev.l2_normalize(emb).astype(np.float16))
    with pytest.raises(ValueError) as ei:
        ev.read_msame_embeddings(tmp_path / "om", "float32", ev.MOBILEFACENET_EMBEDDING_SIZES, "--output-dtype")
    msg = str(ei.value)
    assert msg.startswith(f"{run}: each output file is 256 bytes; as float32 that is 64 values, but the model's "
                          "embedding has 128 or 192")
    assert msg.endswith("as float16 that is 128 values: pass --output-dtype float16")
    got = ev.read_msame_embeddings(tmp_path / "om", "float16", ev.MOBILEFACENET_EMBEDDING_SIZES, "--output-dtype")
    assert got.shape == (100, 128)
    # 192-d float32 (the sirius weights) read as float16: 384 values, float32 fits
    run2 = _msame_run(tmp_path / "om2", np.ones((4, 192), np.float32))
    with pytest.raises(ValueError, match=r"768 bytes; as float16 that is 384 values.*pass --dtype float32"):
        ev.read_msame_embeddings(run2, "float16", ev.MOBILEFACENET_EMBEDDING_SIZES, "--dtype")
    # nothing fits
    run3 = _msame_run(tmp_path / "om3", np.ones((4, 10), np.float16))
    with pytest.raises(ValueError, match=r"20 bytes; as float16 that is 10 values.*in float16 or float32"):
        ev.read_msame_embeddings(run3, "float16", ev.MOBILEFACENET_EMBEDDING_SIZES, "--dtype")


def test_msame_nan_names_the_file(tmp_path):
    rows = np.ones((6, 128), np.float16)
    rows[4, 7] = np.inf
    run = _msame_run(tmp_path / "om", rows)
    # pymfn.inputs.msame may find it first (it checks too); either way the message starts with the file
    with pytest.raises(ValueError, match=rf"^{run}/4_output_0.bin: .*(NaN|inf)"):
        ev.read_msame_embeddings(tmp_path / "om", "float16", (128,), "--dtype")


def test_eval_cli_reports_the_dtype_mismatch_in_one_line(tmp_path, capsys):
    from pymfn.__main__ import main as pymfn_main

    emb, same = synthetic_embeddings(50, 3, dim=128)
    _msame_run(tmp_path / "om", ev.l2_normalize(emb).astype(np.float16))
    np.save(tmp_path / "issame.npy", same)
    argv = ["eval", "--msame-dir", str(tmp_path / "om"), "--issame", str(tmp_path / "issame.npy")]
    assert pymfn_main(argv + ["--dtype", "float32", "--json", str(tmp_path / "r.json")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pass --dtype float16" in err and not (tmp_path / "r.json").exists()
    assert pymfn_main(argv) == 0


# --------------------------------------------------------------------------- CLI argument checks

def test_cli_folds_are_checked_by_option_name(tmp_path, capsys):
    """`--folds 0` used to surface as the library's 'nrof_folds=0'; more folds than pairs likewise."""
    emb, same = synthetic_embeddings(6, 1)
    np.save(tmp_path / "emb.npy", emb)
    np.save(tmp_path / "issame.npy", same)
    argv = [str(tmp_path / "emb.npy"), "--issame", str(tmp_path / "issame.npy")]
    assert re.search(r"^--folds 0: expected 1 or more", _cli_error(capsys, ["eval", *argv, "--folds", "0"]))
    assert re.search(rf"^--folds 7: more folds than the 6 pairs in {tmp_path / 'issame.npy'}", _cli_error(capsys, ["eval", *argv, "--folds", "7"]))
    assert cli_main(["eval", *argv, "--folds", "6"]) == 0


def test_cli_embeddings_must_be_a_regular_npy(tmp_path, capsys):
    """A directory or a FIFO as the embeddings is refused without reading (np.load on a FIFO blocked forever;
    the opening is non-blocking now, so this test cannot hang on the FIFO)."""
    import os

    same = np.array([True, False])
    np.save(tmp_path / "issame.npy", same)
    os.mkfifo(tmp_path / "emb.npy")
    (tmp_path / "dir.npy").mkdir()
    for name, kind in [("emb.npy", "FIFO"), ("dir.npy", "directory")]:
        assert re.search(rf"^embeddings {tmp_path / name}: is a {kind}", _cli_error(capsys, ["eval", str(tmp_path / name), "--issame", str(tmp_path / "issame.npy")]))
    np.save(tmp_path / "ok.npy", np.ones((4, 8), np.float32))
    assert re.search(rf"^--flip {tmp_path / 'emb.npy'}: is a FIFO", _cli_error(capsys, ["eval", str(tmp_path / "ok.npy"), "--flip", str(tmp_path / "emb.npy"), "--issame", str(tmp_path / "issame.npy")]))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "ok.npy").read_bytes()[:100])
    assert re.search(rf"^embeddings {tmp_path / 'cut.npy'}: not a readable .npy file", _cli_error(capsys, ["eval", str(tmp_path / "cut.npy"), "--issame", str(tmp_path / "issame.npy")]))


# ----------------------------------------------------------------- embeddings no figure can be taken from

def test_degenerate_embeddings_are_refused_naming_the_source():
    """All-zero rows, identical rows and collapsed rows used to score "50%" with exit 0."""
    emb, same = synthetic_embeddings(300, 13)
    cases = {
        "all zero": (np.zeros_like(emb), r"^z\.npy: all 600 rows are zeros"),
        "one zero row": (np.where(np.arange(600)[:, None] == 41, 0, emb).astype(np.float32),
                         r"^z\.npy: row 41 is all zeros"),
        "identical rows": (np.tile(emb[:1], (600, 1)), r"^z\.npy: all 600 rows point the same way"),
        # multiples of one vector: normalised, they differ in the last bits only
        "collapsed": (np.outer(np.linspace(1, 2, 600), emb[0]).astype(np.float32),
                      r"^z\.npy: the 300 pair distances all lie in \[0, 0\.01\)"),
    }
    for name, (bad, pattern) in cases.items():
        with pytest.raises(ev.DegenerateEmbeddingsError, match=pattern):
            ev.evaluate(bad, same, source="z.npy")
    bad = emb.copy()
    bad[5, 2] = np.inf
    with pytest.raises(ValueError, match=r"^emb\.npy: row 5 contains NaN or infinity"):
        ev.evaluate(bad, same, source="emb.npy")
    # flip TTA: each half is checked, not only the sum (a zero half would pass unnoticed)
    with pytest.raises(ev.DegenerateEmbeddingsError, match=r"^--flip m\.npy: all 600 rows are zeros"):
        ev.evaluate(emb, same, flipped=np.zeros_like(emb), source="e.npy", flipped_source="--flip m.npy")
    with pytest.raises(ev.DegenerateEmbeddingsError, match=r"^a \+ b: row 0 is all zeros"):
        ev.combine_flip(emb, np.where(np.arange(600)[:, None] == 0, -emb, emb), names=("a", "b"))
    # distances: both classes inside one grid step is refused, a single class is only a warning
    with pytest.raises(ev.DegenerateEmbeddingsError, match=r"^d: the 300 pair distances are all equal"):
        ev.evaluate_distances(np.full(300, 0.7), same, source="d")
    assert ev.evaluate_distances(np.full(300, 0.7), np.ones(300, bool)).warnings


@pytest.mark.parametrize("dtype,scale", [(np.float32, 1e20), (np.float32, 1e-40), (np.float32, 1e-20),
                                         (np.float64, 1e300), (np.float64, 1e-300)])
def test_norms_beyond_the_dtype_are_computed_not_scored_as_chance(dtype, scale):
    """float32 rows of 1e20 overflowed to NaN-free garbage and rows of 1e-40 squared to 0 (left unnormalised):
    both scored "50%". Scaled by a power of two first, they give the figures of the unscaled rows."""
    emb, same = synthetic_embeddings(300, 14, dtype=dtype)
    ref = ev.evaluate(emb, same)
    scaled = (emb.astype(np.float64) * scale).astype(dtype)
    unit = ev.l2_normalize(scaled)
    assert unit.dtype == dtype and np.all(np.isfinite(unit))
    tol = 2e-5 if scale < 1e-38 and dtype == np.float32 else 1e-6  # float32 subnormals keep ~17 bits
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=tol)
    np.testing.assert_allclose(unit, ev.l2_normalize(emb), atol=tol)
    res = ev.evaluate(scaled, same)
    assert res.accuracy == ref.accuracy and res.auc == pytest.approx(ref.auc, abs=1e-3)
    # flip TTA whose raw sum would overflow
    big = (np.finfo(dtype).max / 2 * np.sign(emb[:4])).astype(dtype)
    total = ev.combine_flip(big, big * dtype(1.5))
    assert np.all(np.isfinite(total)) and np.allclose(total, ev.l2_normalize(big))


def test_normal_rows_keep_sklearn_bits_next_to_rescaled_ones():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((20, 64)).astype(np.float32)
    mixed = x.copy()
    mixed[3] *= np.float32(1e20)
    mixed[9] *= np.float32(1e-41)
    got = ev.l2_normalize(mixed)
    keep = np.setdiff1d(np.arange(20), [3, 9])
    assert np.array_equal(got[keep], sk_normalize(x)[keep])
    np.testing.assert_allclose(got[[3, 9]], sk_normalize(x)[[3, 9]], atol=1e-4)


def test_cli_refuses_degenerate_embeddings_in_one_line(tmp_path, capsys):
    from pymfn.__main__ import main as pymfn_main

    _, same = synthetic_embeddings(600, 15)
    np.save(tmp_path / "is.npy", same)
    np.save(tmp_path / "z.npy", np.zeros((1200, 128), np.float32))
    argv = ["eval", str(tmp_path / "z.npy"), "--issame", str(tmp_path / "is.npy"), "--json", str(tmp_path / "r.json")]
    assert pymfn_main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "50.00%" not in captured.err
    assert captured.err == (f"pymfn eval: error: embeddings {tmp_path / 'z.npy'}: all 1200 rows are zeros; a zero embedding has "
                            "no direction, so distances and accuracy would mean nothing (a model or conversion "
                            "fault?)\n")
    assert not (tmp_path / "r.json").exists()

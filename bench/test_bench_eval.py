"""LFW evaluation and image2bin speed, each against a peer timed in the same run.

* evaluate(): pymfn's sorted-count protocol vs the reference loop-over-thresholds code (FaceNet's
  calculate_roc / calculate_val as written in tests/test_eval.py) on 6,000 synthetic pairs, the LFW
  size. Both must give identical results; the ratio is reported (target >= 10x) in extra_info.
* image2bin on the first images of lfw.bin vs a plain per-image loop like the reference script
  (decode one JPEG, float64 maths, cast, write). Images/s of both and the ratio in extra_info.
* decode of lfw.bin JPEGs: the thread pool vs one thread.

Ratios, not absolute times, are what to compare across machines. With ``--benchmark-disable`` (CI short
mode) every benchmark body still runs once and the equality checks still hold.

    PYTHONPATH=. python -m pytest bench/test_bench_eval.py --benchmark-only
"""
from __future__ import annotations

import importlib.util
import io
import os
import time
from pathlib import Path

import numpy as np
import pytest

from pymfn import config
from pymfn.metrics import lfw as ev
from pymfn.inputs import image2bin as i2b
from pymfn.inputs import lfw_bin as lfw

ROOT = Path(__file__).resolve().parent.parent
QUICK = os.environ.get("PYMFN_BENCH_QUICK", "") not in ("", "0")
I2B_IMAGES = 256 if QUICK else 1024


def _reference_module():
    """The loop-based reference protocol lives with the exactness tests; load it from there."""
    spec = importlib.util.spec_from_file_location("pymfn_eval_reference", ROOT / "tests" / "test_eval.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def ref():
    return _reference_module()


@pytest.fixture(scope="module")
def lfw_bin() -> Path:
    path = config.lfw_bin_path()
    if not path.exists():
        pytest.skip(f"LFW lfw.bin not found at {path} (set PYMFN_SHARED)")
    return path


def _best_of(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def test_bench_evaluate_vs_reference_loops(benchmark, ref):
    emb, same = ref.synthetic_embeddings(6000, seed=2024)
    ours = benchmark(ev.evaluate, emb, same)

    e = ev.l2_normalize(emb)
    dist = ev.pair_distances(e)
    t0 = time.perf_counter()
    tpr, fpr, acc, best = ref.ref_roc(dist, same)
    val, val_std, far, thr = ref.ref_val(dist, same)
    t_ref = time.perf_counter() - t0
    t_ours = _best_of(lambda: ev.evaluate(emb, same), 5)  # same clock as the reference, same run

    assert ours.fold_accuracy == acc.tolist() and ours.thresholds == [float(t) for t in best]
    assert np.array_equal(ours.tpr, tpr) and np.array_equal(ours.fpr, fpr)
    assert (ours.val, ours.val_std, ours.far) == (val, val_std, far) and ours.val_thresholds == thr
    ratio = t_ref / t_ours
    benchmark.extra_info.update(pairs=6000, reference_s=round(t_ref, 4), ours_s=round(t_ours, 5),
                                speedup=round(ratio, 1), accuracy=ours.accuracy)
    print(f"\nLFW protocol on 6000 pairs: reference loops {t_ref:.3f} s, pymfn {1000 * t_ours:.2f} ms, {ratio:.0f}x")
    assert ratio >= 10, f"evaluate() only {ratio:.1f}x faster than the reference loops"


def _reference_image2bin(bins: list[bytes], out: Path) -> None:
    """The reference script's loop: decode (BGR), (x - 127.5) * 0.0078125 in float64, cast, one file each."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    for i, b in enumerate(bins):
        img = np.asarray(Image.open(io.BytesIO(b)).convert("RGB"))[..., ::-1]
        ((img - 127.5) * 0.0078125).astype(np.float32).tofile(out / f"{i}.bin")


def test_bench_image2bin_vs_plain_loop(benchmark, lfw_bin, tmp_path):
    bins, _ = lfw.read_lfw_bin(lfw_bin)
    bins = bins[:I2B_IMAGES]
    # a small lfw.bin of the subset, so both sides decode the same bytes
    import pickle

    src = tmp_path / "subset.bin"
    src.write_bytes(pickle.dumps((bins, [True] * (len(bins) // 2))))
    out = tmp_path / "ours"
    benchmark.pedantic(i2b.image2bin, args=(src, out), rounds=3, iterations=1)
    rep = 1 if benchmark.disabled else 2
    t_ours = _best_of(lambda: i2b.image2bin(src, out), rep)
    t_ref = _best_of(lambda: _reference_image2bin(bins, tmp_path / "ref"), rep)
    for i in (0, len(bins) // 2, len(bins) - 1):
        assert (out / f"{i}.bin").read_bytes() == (tmp_path / "ref" / f"{i}.bin").read_bytes()
    n = len(bins)
    benchmark.extra_info.update(images=n, ours_img_s=round(n / t_ours), reference_img_s=round(n / t_ref),
                                speedup=round(t_ref / t_ours, 2))
    print(f"\nimage2bin {n} images: pymfn {n / t_ours:.0f} img/s, plain loop {n / t_ref:.0f} img/s "
          f"({t_ref / t_ours:.2f}x)")


def test_bench_decode_threads_vs_one(benchmark, lfw_bin):
    bins, _ = lfw.read_lfw_bin(lfw_bin)
    bins = bins[: 1000 if QUICK else 4000]
    pooled = benchmark(lfw.decode_images, bins)
    rep = 1 if benchmark.disabled else 2
    t_pool = _best_of(lambda: lfw.decode_images(bins), rep)
    t_one = _best_of(lambda: lfw.decode_images(bins, workers=1), rep)
    assert np.array_equal(pooled[:50], lfw.decode_images(bins[:50], workers=1))
    benchmark.extra_info.update(images=len(bins), pool_img_s=round(len(bins) / t_pool),
                                one_thread_img_s=round(len(bins) / t_one), speedup=round(t_one / t_pool, 2),
                                workers=lfw._workers(len(bins)))
    print(f"\ndecode {len(bins)} JPEGs: pool {len(bins) / t_pool:.0f} img/s, one thread {len(bins) / t_one:.0f} img/s")

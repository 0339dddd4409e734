"""Batched loading of per-image .bin files: the native reader vs a naive Python loop; a packed file; and the
input copy a Python engine gets.

The data set is the msame/image2bin layout at full LFW size: 12,000 fp32 files of 112x112x3
(150,528 bytes each, 1.8 GB), made once from lfw.bin by image2bin into the cache (random data of the
same size when ../shared is absent) and read in batches of 64 from a warm page cache. Every figure is relative to a peer measured in the
same run (the naive loop), so the ratio means something on a busy or slow machine; absolute GB/s
are reported in extra_info, not asserted. Besides wall-clock GB/s, "GB per CPU-second" (bytes over
process CPU time, all threads) is reported: it is what a loader costs when the cores are shared.

Short mode for CI: PYMFN_BENCH_QUICK=1 uses 600 files.

    PYTHONPATH=. python -m pytest bench/test_bench_loader.py --benchmark-only
"""
from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import numpy as np
import pytest

from pymfn import config
from pymfn.inputs import pack
from pymfn.files.atomic import atomic_dir

SHAPE = (112, 112, 3)
SAMPLE_BYTES = 112 * 112 * 3 * 4
BATCH = 64
QUICK = os.environ.get("PYMFN_BENCH_QUICK", "") not in ("", "0")
COUNT = 600 if QUICK else 12000


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)  # all threads of this process
    return r.ru_utime + r.ru_stime


def _warm(files: list[str]) -> None:
    """Read every file once so the timed passes see a warm page cache."""
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(1 << 20):
                pass


@pytest.fixture(scope="module")
def core():
    """The native module (bench/ does not share tests/conftest.py)."""
    import pymfn

    return pymfn.load_core()


@pytest.fixture(scope="module")
def bench_bins() -> Path:
    """COUNT fp32 .bin files in the cache, built once (atomically) and reused by later runs.

    Made from lfw.bin with pymfn's image2bin (the issue's data set: the reference BGR preprocessing) when
    ../shared has it; otherwise from seeded random numbers of the same size (a loader does not look at
    the values, so the speed is the same; the source is recorded in extra_info either way).
    """
    from tqdm import tqdm

    lfw = config.lfw_bin_path()
    if lfw.is_file():
        from pymfn.inputs.image2bin import image2bin

        folder = config.cache_dir() / f"bench-bins-lfw-{COUNT}"
        if not (folder.is_dir() and sum(n.endswith(".bin") for n in os.listdir(folder)) == COUNT):
            image2bin(lfw, folder, color="bgr", dtype="float32", limit=COUNT, progress=True)
        return folder
    folder = config.cache_dir() / f"bench-bins-{COUNT}"
    if folder.is_dir() and len(os.listdir(folder)) == COUNT:
        return folder
    rng = np.random.default_rng(1234)
    with atomic_dir(folder) as tmp:
        for i in tqdm(range(COUNT), desc="bench bins (random: no lfw.bin)", unit="file"):
            rng.standard_normal(SAMPLE_BYTES // 4, dtype=np.float32).tofile(tmp / f"{i}.bin")
    return folder


@pytest.fixture(scope="module")
def bench_packed(bench_bins) -> Path:
    out = config.cache_dir() / f"{bench_bins.name}.pack"  # follows the source of the bins
    try:
        h = pack.read_header(out)
        if h.count == COUNT and h.sample_shape == SHAPE:
            return out
    except (OSError, ValueError):
        pass
    return pack.pack_folder(bench_bins, out, sample_shape=SHAPE)


def _naive_pass(files: list[str]) -> int:
    """The obvious Python loader: np.fromfile per file, np.stack per batch (last batch unpadded)."""
    n = 0
    for i in range(0, len(files), BATCH):
        batch = np.stack([np.fromfile(f, dtype=np.float32) for f in files[i:i + BATCH]])
        n += batch.shape[0]
    return n


def _pread_ceiling_pass(files: list[str]) -> int:
    """Not a loader: one thread preads every file into ONE reused buffer (no batching, no second copy).

    It measures what the kernel alone costs to copy warm page-cache files out (open + pread + close),
    i.e. the per-core ceiling any folder loader is held to; Python adds ~2 us per 150 KB file on top.
    """
    buf = bytearray(SAMPLE_BYTES)
    view = memoryview(buf)
    n = 0
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            n += os.preadv(fd, [view], 0) == SAMPLE_BYTES
        finally:
            os.close(fd)
    return n


def _native_pass(ds, prefetch: int, threads: int) -> int:
    n = 0
    reader = ds.reader(BATCH, prefetch=prefetch, threads=threads)  # thread start-up is inside the timing
    while (b := reader.next()) is not None:
        n += b.valid_rows
    return n


def _timed(fn, rounds: int) -> tuple[float, float]:
    """Best wall time and the CPU time of that round."""
    best = (float("inf"), 0.0)
    for _ in range(rounds):
        c0, t0 = _cpu_seconds(), time.perf_counter()
        fn()
        dt, dc = time.perf_counter() - t0, _cpu_seconds() - c0
        best = min(best, (dt, dc))
    return best


@pytest.mark.parametrize("io,prefetch,threads", [("mmap", 2, 0), ("mmap", 4, 2), ("mmap", 0, 0), ("pread", 2, 0),
                                                ("pread", 0, 0)],
                         ids=["mmap-prefetch2-auto", "mmap-prefetch4-2threads", "mmap-sync", "pread-prefetch2-auto",
                              "pread-sync"])
def test_folder_reader_vs_naive(benchmark, core, bench_bins, io, prefetch, threads):
    ds = core.FolderDataset(bench_bins, SAMPLE_BYTES, "float32", list(SHAPE), io=io)
    files = ds.files()
    assert len(files) == COUNT
    total = COUNT * SAMPLE_BYTES
    _warm(files)

    naive_wall, naive_cpu = _timed(lambda: _naive_pass(files), rounds=2)
    ceiling_wall, _ = _timed(lambda: _pread_ceiling_pass(files), rounds=2)
    t0 = time.perf_counter()
    assert _native_pass(ds, prefetch, threads) == COUNT  # warm-up (io=mmap: maps every file) + the count
    first_pass_wall = time.perf_counter() - t0
    cpu_before = _cpu_seconds()
    benchmark.pedantic(_native_pass, args=(ds, prefetch, threads), rounds=5 if QUICK else 3, iterations=1)
    native_cpu = (_cpu_seconds() - cpu_before) / benchmark.stats.stats.rounds
    native_wall = benchmark.stats.stats.min

    ratio = naive_wall / native_wall
    info = {
        "files": COUNT, "source": "lfw.bin" if "-lfw-" in bench_bins.name else "random", "bytes_per_pass": total,
        "batch": BATCH, "io": io, "prefetch": prefetch, "threads": threads,
        "native_gb_per_s": round(total / native_wall / 1e9, 3),
        "native_first_pass_gb_per_s": round(total / first_pass_wall / 1e9, 3),  # one pass, not a best-of
        "naive_gb_per_s": round(total / naive_wall / 1e9, 3),
        "speedup_vs_naive": round(ratio, 2),
        "single_thread_pread_gb_per_s": round(total / ceiling_wall / 1e9, 3),
        "native_over_single_thread_pread": round(ceiling_wall / native_wall, 2),
        "native_gb_per_cpu_s": round(total / native_cpu / 1e9, 3) if native_cpu > 0 else None,
        "naive_gb_per_cpu_s": round(total / naive_cpu / 1e9, 3) if naive_cpu > 0 else None,
    }
    benchmark.extra_info.update(info)
    print(f"\nfolder reader {io=} {prefetch=} {threads=}: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    # Relative claims only (absolute GB/s depend on the machine and its load). The target is >= 5x the
    # naive loop with >= 2 GB/s on an idle 2-core host; the floor asserted here is what still holds
    # on a heavily shared one (the pread reader measured 4.2-4.8x at load average 14), so a failure
    # means a regression such as per-file overhead creeping back, not a noisy neighbour. Quick mode
    # (CI) only reports: a pass over 600 files takes a few ms, where thread start-up and a single
    # scheduler hiccup decide the ratio (one run in ~30 fell below 2x there).
    if not QUICK:
        assert ratio >= 2.0, f"native folder reader only {ratio:.2f}x the naive loop"
    stats = ds.reader(BATCH, prefetch=prefetch, threads=threads)
    for _ in stats:
        pass
    s = stats.stats()
    assert s["bytes_copied"] == total  # one host copy per byte: from the mapping or by pread, into the batch
    assert s["bytes_read"] == (total if io == "pread" else 0)


def test_packed_reader_guarded_copy(benchmark, core, bench_packed):
    """A packed file's batches are copied out of the mapping under the SIGBUS guard and the file is fstat-ed
    after every copy (a pack cut short during a run is an error, not a dead process). The peer, measured
    in the same run, is the copy with nothing around it: numpy copying the same batches out of a memmap of
    the same file into one reused buffer. The ratio is what the guard and the check cost on top of the copy
    any safe reader must make; the copy itself is reported per batch, to set against an engine's batch."""
    ds = core.PackedDataset(bench_packed, dtype="float32", sample_shape=list(SHAPE))
    reader = ds.reader(BATCH)
    arr = np.memmap(bench_packed, dtype=np.float32, mode="r", offset=ds.header_bytes, shape=(COUNT, *SHAPE))
    arr.sum(dtype=np.float64)  # fault the mapping in: warm page cache, like the folder benchmark
    buf = np.empty((BATCH, *SHAPE), np.float32)

    def plain_copy_pass() -> int:
        n = 0
        for i in range(0, COUNT, BATCH):
            rows = arr[i:i + BATCH]
            buf[:len(rows)] = rows
            n += len(rows)
        return n

    def one_pass() -> int:
        reader.rewind()
        n = 0
        while (b := reader.next()) is not None:
            n += b.valid_rows
        return n

    assert plain_copy_pass() == one_pass() == COUNT  # warm both paths
    peer_wall, _ = _timed(plain_copy_pass, rounds=5 if QUICK else 3)
    assert benchmark.pedantic(one_pass, rounds=5 if QUICK else 3, iterations=1) == COUNT
    ours_wall = benchmark.stats.stats.min
    s = reader.stats()
    passes = s["batches"] // reader.num_batches
    assert s["bytes_copied"] == passes * COUNT * SAMPLE_BYTES and s["bytes_read"] == 0  # one copy of every byte
    total = COUNT * SAMPLE_BYTES
    info = {"files": COUNT, "passes": passes, "bytes_per_pass": total,
            "reader_gb_per_s": round(total / ours_wall / 1e9, 3),
            "plain_copy_gb_per_s": round(total / peer_wall / 1e9, 3),
            "reader_over_plain_copy": round(ours_wall / peer_wall, 3),
            "copy_ms_per_batch": round(ours_wall / reader.num_batches * 1e3, 3)}
    benchmark.extra_info.update(info)
    print("\npacked reader (guarded copy): " + ", ".join(f"{k}={v}" for k, v in info.items()))
    # The guard is a sigsetjmp and the check one fstat per batch: next to a 9.6 MB memcpy both are noise
    # (0.98x the plain copy in two quick runs at load 10-16; single 20 ms passes there spread 0.6-3x, which
    # is why quick mode only reports). On full 1.8 GB passes the reader must stay within 2x of the bare
    # copy: a failure means per-batch or per-page overhead crept in, not a noisy neighbour.
    if not QUICK:
        assert ours_wall <= 2.0 * peer_wall, f"guarded packed reader {ours_wall / peer_wall:.2f}x the plain copy"


def test_python_engine_input_copy(benchmark, core):
    """A Python engine gets input arrays that own a copy of the batch (it may keep them after execute). What
    that copy costs is measured against the engine it exists for: the TensorFlow reference engine on
    pymfn's default model, batch 64, in the same run. Ours: run_benchmark with a Python engine that does
    nothing (returns a ready output), so its time per batch is the copy plus the Python call overhead."""
    from pymfn.export.default_model import default_model
    from pymfn.runtime.engines import TFEngine

    x = np.random.default_rng(0).uniform(-1, 1, (2 * BATCH, *SHAPE)).astype(np.float32)
    out = np.zeros((BATCH, 128), np.float32)

    class Noop(core.Engine):
        kind = "noop"
        model_path = "noop"

        def __init__(self) -> None:
            super().__init__()

        def inputs(self):
            return [core.TensorInfo("Placeholder", "float32", [-1, *SHAPE])]

        def outputs(self):
            return [core.TensorInfo("embeddings", "float32", [-1, 128])]

        def execute(self, inputs):
            return [out]

    def median_ms(engine, iterations: int, warmup: int = 2) -> float:
        s = core.RunSettings(batch_size=BATCH, warmup_iterations=warmup, min_iterations=iterations, min_duration_ms=0)
        return core.run_benchmark(engine, core.ArrayDataset(x).reader(BATCH), s).latency.median

    tf_engine = TFEngine(default_model(quiet=True).path, threads=0)
    noop = Noop()
    rounds = []
    # Interleaved: both see the same machine state. A TF batch of 64 takes seconds, so quick mode (CI) runs
    # one round of one batch after one warm-up batch.
    for _ in range(1 if QUICK else 3):
        rounds.append((median_ms(noop, 50), median_ms(tf_engine, 1 if QUICK else 3, 1 if QUICK else 2)))
    noop_ms = min(r[0] for r in rounds)
    tf_ms = min(r[1] for r in rounds)
    buf = np.empty_like(x[:BATCH])
    copy_s, _ = _timed(lambda: np.copyto(buf, x[BATCH:]), rounds=20)
    benchmark.pedantic(lambda: median_ms(noop, 20), rounds=1, iterations=1)
    info = {"batch": BATCH, "bytes_per_batch": BATCH * SAMPLE_BYTES, "python_engine_noop_ms_per_batch": round(noop_ms, 3),
            "numpy_copy_ms_per_batch": round(copy_s * 1e3, 3), "tf_engine_ms_per_batch": round(tf_ms, 1),
            "noop_over_tf": round(noop_ms / tf_ms, 4)}
    benchmark.extra_info.update(info)
    print("\npython engine input copy: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    # The copy and the call are a small share of any real Python engine's batch (measured 0.3% of the
    # TensorFlow engine's on a 2-core Zen 3); 5% leaves room for a loaded host without passing vacuously.
    if not QUICK:
        assert noop_ms < 0.05 * tf_ms, f"input copy + call {noop_ms:.2f} ms = {noop_ms / tf_ms:.1%} of a TF batch"


def test_prefetch_overlaps_compute(benchmark, core, bench_bins):
    """What the background pool is for: while the engine computes on batch i, batch i+1 is read.

    The "engine" sleeps as long as a synchronous read of one batch takes. The figure of merit is the
    stall: time the consumer spends inside next() per pass. Synchronously it is the whole read time;
    with prefetch=2 the reads happen during the compute and the stall should nearly vanish. Wall time
    per pass is reported too (ideal 2x, but sleep overshoot on a busy host blurs it). The
    synchronous reader measured in the same run is the peer.
    """
    ds = core.FolderDataset(bench_bins, SAMPLE_BYTES, "float32", list(SHAPE))
    _warm(ds.files())
    batches = -(-COUNT // BATCH)
    compute_s = _timed(lambda: _native_pass(ds, 0, 0), rounds=2)[0] / batches
    stalls: dict[int, list[float]] = {0: [], 2: []}

    def consume(prefetch: int) -> int:
        n, stall = 0, 0.0
        reader = ds.reader(BATCH, prefetch=prefetch)
        while True:
            t0 = time.perf_counter()
            b = reader.next()
            stall += time.perf_counter() - t0
            if b is None:
                break
            time.sleep(compute_s)  # the engine's turn
            n += b.valid_rows
        stalls[prefetch].append(stall)
        return n

    sync_wall = _timed(lambda: consume(0), rounds=2)[0]
    assert benchmark.pedantic(consume, args=(2,), rounds=2, iterations=1) == COUNT
    stall_sync, stall_pf = min(stalls[0]), min(stalls[2])
    overlap = sync_wall / benchmark.stats.stats.min
    benchmark.extra_info.update({"compute_ms_per_batch": round(compute_s * 1e3, 3),
                                 "stall_s_sync": round(stall_sync, 4), "stall_s_prefetch2": round(stall_pf, 4),
                                 "sync_pass_s": round(sync_wall, 3),
                                 "prefetch2_pass_s": round(benchmark.stats.stats.min, 3),
                                 "wall_speedup": round(overlap, 2), "ideal_wall_speedup": 2.0})
    print(f"\nprefetch overlap: compute {compute_s * 1e3:.2f} ms/batch; stall per pass sync {stall_sync:.3f} s, "
          f"prefetch=2 {stall_pf:.3f} s; wall sync {sync_wall:.2f} s, prefetch=2 {benchmark.stats.stats.min:.2f} s "
          f"-> {overlap:.2f}x (ideal 2x)")
    if not QUICK:  # quick mode (CI) stalls are tens of ms: too short to judge, reported only
        assert stall_pf < 0.5 * stall_sync, "prefetching should hide most of the read time behind the compute"

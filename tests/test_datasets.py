"""Native datasets: folder of .bin files, packed file, numpy array (pymfn._core + pymfn.inputs.datasets)."""
from __future__ import annotations

import gc
import os
import time
from pathlib import Path

import numpy as np
import pytest

from pymfn.inputs import pack
from pymfn.inputs.datasets import open_dataset

SHAPE = (2, 3, 4)
SAMPLE_BYTES = 2 * 3 * 4 * 4  # float32


def make_bins(folder: Path, n: int, shape=SHAPE, seed: int = 0) -> np.ndarray:
    """Write n per-sample .bin files (natural numbering) and return the samples in natural order."""
    folder.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(seed).standard_normal((n, *shape)).astype(np.float32)
    for i in range(n):
        data[i].tofile(folder / f"{i}.bin")
    return data


def read_all(reader) -> tuple[np.ndarray, list]:
    """Concatenate the valid rows of one pass; also return the views' metadata."""
    rows, meta = [], []
    for b in reader:
        rows.append(b.valid_data.copy())
        meta.append((b.batch_index, b.first_sample, b.valid_rows, b.batch_rows))
    return np.concatenate(rows), meta


@pytest.fixture
def bins(tmp_path):
    folder = tmp_path / "bins"
    return folder, make_bins(folder, 10)


# ---------------------------------------------------------------- folder source

def test_natural_and_lexicographic_order(core, tmp_path):
    data = make_bins(tmp_path / "b", 12)
    nat = core.FolderDataset(tmp_path / "b", SAMPLE_BYTES, "float32", list(SHAPE))
    lex = core.FolderDataset(tmp_path / "b", SAMPLE_BYTES, "float32", list(SHAPE), order="lexicographic")
    assert [Path(f).name for f in nat.files()] == [f"{i}.bin" for i in range(12)]
    lex_names = [Path(f).name for f in lex.files()]
    assert lex_names == sorted(f"{i}.bin" for i in range(12))
    assert lex_names[:4] == ["0.bin", "1.bin", "10.bin", "11.bin"]
    assert nat.order == "natural" and lex.order == "lexicographic"
    # The samples follow the file order.
    got_nat, _ = read_all(nat.reader(5))
    np.testing.assert_array_equal(got_nat, data)
    got_lex, _ = read_all(lex.reader(5))
    np.testing.assert_array_equal(got_lex, data[[int(n[:-4]) for n in lex_names]])


def test_natural_sort_matches_python(core):
    names = ["10.bin", "2.bin", "a10b2.bin", "a10b10.bin", "a2b.bin", "01.bin", "1.bin", "001.bin", "x.bin",
             "B.bin", "b.bin", "1a.bin", "1-.bin", "99999999999999999999999.bin", "100000000000000000000000.bin",
             "é1.bin", "img_0009.bin", "img_10.bin"]
    for order in ("natural", "lexicographic"):
        assert core.sort_file_names(names, order) == pack.sort_names(names, order)
    nat = core.sort_file_names(names, "natural")
    assert nat.index("2.bin") < nat.index("10.bin")
    assert nat.index("99999999999999999999999.bin") < nat.index("100000000000000000000000.bin")
    assert nat.index("img_0009.bin") < nat.index("img_10.bin")
    # Random names: the C++ comparator and the Python key agree (both must be total orders).
    rng = np.random.default_rng(1)
    alphabet = list("ab0123_.9")
    rand = ["".join(rng.choice(alphabet, size=rng.integers(1, 8))) + ".bin" for _ in range(300)]
    assert core.sort_file_names(rand, "natural") == pack.sort_names(rand, "natural")
    with pytest.raises(core.InvalidArgument, match="order"):
        core.sort_file_names(names, "random")


@pytest.mark.parametrize("io", ["mmap", "pread"])
def test_folder_bytes_padding_and_stats(core, bins, io):
    folder, data = bins
    ds = core.FolderDataset(str(folder), SAMPLE_BYTES, "float32", list(SHAPE), io=io)
    assert ds.io == io and f", {io}," in ds.describe()
    assert (ds.sample_count, ds.sample_bytes, ds.dtype, ds.sample_shape) == (10, SAMPLE_BYTES, "float32", list(SHAPE))
    assert "10 files" in ds.describe()
    r = ds.reader(4, prefetch=2)
    assert (r.num_batches, r.batch_size, len(r)) == (3, 4, 3)
    views = []
    for b in r:
        assert b.data.shape == (4, *SHAPE) and b.data.dtype == np.float32
        assert not b.data.flags.writeable
        assert b.address % 4096 == 0  # aligned batch buffers
        views.append((b.batch_index, b.first_sample, b.valid_rows, b.batch_rows, b.data.copy()))
    assert [v[:4] for v in views] == [(0, 0, 4, 4), (1, 4, 4, 4), (2, 8, 2, 4)]
    got = np.concatenate([v[4][:v[2]] for v in views])
    np.testing.assert_array_equal(got, data)
    assert not views[-1][4][2:].any(), "padding rows must be zeros"
    assert r.next() is None
    s = r.stats()
    # One host copy per sample byte either way; only pread goes through read().
    read = 10 * SAMPLE_BYTES if io == "pread" else 0
    assert s == {"batches": 3, "bytes_copied": 10 * SAMPLE_BYTES, "bytes_read": read, "padded_batches": 1}
    assert ds.mapped_files == (10 if io == "mmap" else 0)


@pytest.mark.parametrize("io", ["mmap", "pread"])
@pytest.mark.parametrize("prefetch,threads", [(0, 0), (1, 1), (3, 0), (4, 2), (8, 3)])
def test_prefetch_and_rewind_multiple_passes(core, tmp_path, prefetch, threads, io):
    data = make_bins(tmp_path / "b", 23)
    ds = core.FolderDataset(tmp_path / "b", SAMPLE_BYTES, sample_shape=list(SHAPE), io=io)
    r = ds.reader(3, prefetch=prefetch, threads=threads)
    for _ in range(3):
        got, meta = read_all(r)
        np.testing.assert_array_equal(got, data)
        assert [m[0] for m in meta] == list(range(8)) and meta[-1][2] == 2
        r.rewind()
    # Rewind in the middle of a pass (workers may be mid-fill) restarts from sample 0.
    first = r.next()
    r.next()
    r.rewind()
    again = r.next()
    assert again.batch_index == 0 and first.batch_index == 0
    np.testing.assert_array_equal(again.data, data[:3])
    s = r.stats()
    assert s["batches"] == 3 * 8 + 3
    assert s["padded_batches"] == 3
    assert s["bytes_copied"] >= (3 * 23 + 9) * SAMPLE_BYTES
    assert s["bytes_read"] == (s["bytes_copied"] if io == "pread" else 0)


def _wait_for(pred, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.005)
    return False


def _threads() -> set[int]:
    return {int(t) for t in os.listdir("/proc/self/task")}


def _all_blocked(tids: set[int]) -> bool:
    """Every thread of `tids` (that still exists) is asleep in the kernel (state S: waiting, not runnable)."""
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/stat", "rb") as f:
                stat = f.read()
        except FileNotFoundError:
            continue
        if stat[stat.rfind(b")") + 2:].split()[0] != b"S":
            return False
    return True


def _settled(reader, tids: set[int], looks: int = 6, timeout: float = 30.0) -> bool:
    """The pool has done all it is going to: on `looks` consecutive looks 20 ms apart (>= 100 ms) every pool
    thread was blocked and the bytes copied did not change. A wait on a loaded machine (threads runnable but
    not running) does not count as settled, unlike a fixed sleep."""
    deadline = time.monotonic() + timeout
    seen, streak = None, 0
    while time.monotonic() < deadline:
        copied = reader.stats()["bytes_copied"]
        if _all_blocked(tids) and copied == seen:
            streak += 1
            if streak >= looks:
                return True
        else:
            streak = 0
        seen = copied
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("prefetch", [1, 3])
def test_background_pool_stays_prefetch_batches_ahead(core, tmp_path, prefetch):
    """Without any next() call the pool reads exactly `prefetch` batches, then one more per batch consumed. "Then
    no more" is checked once the pool's threads are blocked and its counters still (not after a sleep that a
    loaded machine could spend without running them at all)."""
    make_bins(tmp_path / "b", 40, shape=(8,))
    before = _threads()
    r = core.FolderDataset(tmp_path / "b", 32, sample_shape=[8]).reader(4, prefetch=prefetch)
    batch_bytes = 4 * 32
    assert _wait_for(lambda: r.stats()["bytes_copied"] == prefetch * batch_bytes)
    pool = _threads() - before
    assert pool, "the reader started no threads of its own"
    assert _settled(r, pool), "the pool's threads never settled"
    assert r.stats()["bytes_copied"] == prefetch * batch_bytes and r.stats()["batches"] == 0
    r.next()
    r.next()
    assert _wait_for(lambda: r.stats()["bytes_copied"] == (prefetch + 2) * batch_bytes)
    assert _settled(r, pool), "the pool's threads never settled"
    assert r.stats()["bytes_copied"] == (prefetch + 2) * batch_bytes


def test_many_small_batches_keep_their_content(core, tmp_path):
    """Batch size 1 with a deep ring and two threads: each view must hold its own sample."""
    data = make_bins(tmp_path / "b", 200, shape=(16,))
    r = core.FolderDataset(tmp_path / "b", 64, sample_shape=[16]).reader(1, prefetch=6, threads=2)
    for i, b in enumerate(r):
        assert b.first_sample == i
        np.testing.assert_array_equal(b.data[0], data[i])


def test_batch_larger_than_dataset(core, bins):
    folder, data = bins
    r = core.FolderDataset(folder, SAMPLE_BYTES, sample_shape=list(SHAPE)).reader(64, prefetch=4)
    assert r.num_batches == 1
    b = r.next()
    assert (b.valid_rows, b.batch_rows, b.data.shape) == (10, 64, (64, *SHAPE))
    np.testing.assert_array_equal(b.valid_data, data)
    assert not b.data[10:].any()
    assert r.next() is None


def test_shape_free_folder_gives_flat_rows(core, bins):
    folder, data = bins
    b = core.FolderDataset(folder, SAMPLE_BYTES, "float32").reader(10).next()
    assert b.data.shape == (10, SAMPLE_BYTES // 4)
    np.testing.assert_array_equal(b.data, data.reshape(10, -1))
    u8 = core.FolderDataset(folder, SAMPLE_BYTES, "uint8").reader(10).next()
    assert u8.data.shape == (10, SAMPLE_BYTES) and u8.data.dtype == np.uint8
    assert u8.data.tobytes() == data.tobytes()


def test_folder_skips_dotfiles_and_other_names_and_follows_symlinks(core, bins, tmp_path):
    folder, data = bins
    (folder / ".hidden.bin").write_bytes(b"x")      # wrong size, but skipped
    (folder / "notes.txt").write_text("not a sample")
    (folder / "10.bin.tmp").write_bytes(b"zz")
    other = tmp_path / "elsewhere.raw"
    data[3].tofile(other)
    os.symlink(other, folder / "10.bin")
    ds = core.FolderDataset(folder, SAMPLE_BYTES, sample_shape=list(SHAPE))
    assert ds.sample_count == 11 and Path(ds.files()[-1]).name == "10.bin"
    got, _ = read_all(ds.reader(4))
    np.testing.assert_array_equal(got[10], data[3])


# ---------------------------------------------------------------- folder: bad input

def test_missing_and_empty_folder(core, tmp_path):
    with pytest.raises(core.InputError, match="no such directory") as e:
        core.FolderDataset(tmp_path / "nope", SAMPLE_BYTES)
    assert e.value.path == str(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(core.InputError, match="no .bin files") as e:
        core.FolderDataset(tmp_path / "empty", SAMPLE_BYTES)
    assert e.value.path == str(tmp_path / "empty")
    f = tmp_path / "file.bin"
    f.write_bytes(b"\0" * SAMPLE_BYTES)
    with pytest.raises(core.InputError, match="not a directory"):
        core.FolderDataset(f, SAMPLE_BYTES)


def test_unreadable_entries(core, bins):
    folder, _ = bins
    (folder / "5x.bin").mkdir()
    with pytest.raises(core.InputError, match="is a directory") as e:
        core.FolderDataset(folder, SAMPLE_BYTES)
    assert e.value.path == str(folder / "5x.bin")
    (folder / "5x.bin").rmdir()
    os.symlink(folder / "missing-target", folder / "77.bin")
    with pytest.raises(core.InputError, match="dangling symbolic link") as e:
        core.FolderDataset(folder, SAMPLE_BYTES)
    assert e.value.path == str(folder / "77.bin")


def test_size_mismatch_names_file_and_sizes(core, bins):
    folder, _ = bins
    (folder / "4.bin").write_bytes(b"\0" * 10)
    (folder / "7.bin").write_bytes(b"\0" * 20)
    with pytest.raises(core.ShapeMismatch) as e:
        core.FolderDataset(folder, SAMPLE_BYTES, sample_shape=list(SHAPE))
    assert e.value.path == str(folder / "4.bin")
    msg = str(e.value)
    assert "10 bytes" in msg and f"{SAMPLE_BYTES} bytes" in msg and "2 of 10 files" in msg
    assert isinstance(e.value, core.InputError) and isinstance(e.value, ValueError)


@pytest.mark.parametrize("io", ["mmap", "pread"])
def test_file_changed_after_open_fails_at_read(core, bins, io):
    folder, data = bins
    ds = core.FolderDataset(folder, SAMPLE_BYTES, sample_shape=list(SHAPE), io=io)
    read_all(ds.reader(4))  # io=mmap: every file is mapped now; the checks below run against mappings
    (folder / "6.bin").write_bytes(b"\0" * (SAMPLE_BYTES - 4))
    for prefetch in (0, 2):
        r = ds.reader(4, prefetch=prefetch)
        r.next()
        with pytest.raises(core.ShapeMismatch, match="changed after the folder was opened") as e:
            r.next()
        assert e.value.path == str(folder / "6.bin")
        with pytest.raises(core.ShapeMismatch):  # sticky until rewind
            r.next()
    # Put back with the same bytes: still not the file the dataset listed (it was rewritten since).
    data[6].tofile(folder / "6.bin")
    r.rewind()
    r.next()
    with pytest.raises(core.InputError, match="rewritten.*changed after the folder was opened") as e:
        r.next()
    assert e.value.path == str(folder / "6.bin")
    # A dataset opened now lists the file as it is and reads it.
    got, _ = read_all(core.FolderDataset(folder, SAMPLE_BYTES, sample_shape=list(SHAPE), io=io).reader(4))
    np.testing.assert_array_equal(got, data)
    os.unlink(folder / "6.bin")
    r.rewind()
    r.next()
    with pytest.raises(core.InputError, match="cannot open sample file"):
        r.next()


@pytest.mark.parametrize("io", ["mmap", "pread"])
def test_folder_is_read_as_it_was_when_opened(core, bins, tmp_path, io):
    """Every read checks the file against its listing: a file replaced or rewritten since is an error
    naming it, never bytes of another file, whether or not it is mapped already."""
    folder, data = bins
    ds = core.FolderDataset(folder, SAMPLE_BYTES, sample_shape=list(SHAPE), io=io)
    assert ds.io == io and ds.mapped_files == 0  # mapped lazily, on first read
    r = ds.reader(5, prefetch=2)
    np.testing.assert_array_equal(read_all(r)[0], data)
    assert ds.mapped_files == (10 if io == "mmap" else 0)
    r.rewind()
    np.testing.assert_array_equal(read_all(r)[0], data)
    s = r.stats()
    assert s["bytes_read"] == (20 * SAMPLE_BYTES if io == "pread" else 0) and s["bytes_copied"] == 20 * SAMPLE_BYTES
    # Replaced by a new inode (written elsewhere and renamed over): the mapping still holds the old bytes,
    # but the path names another file now.
    staged = tmp_path / "staged.bin"
    (data[7] + 100).tofile(staged)
    os.replace(staged, folder / "7.bin")
    r.rewind()
    with pytest.raises(core.InputError, match="another file has replaced it") as e:
        read_all(r)
    assert e.value.path == str(folder / "7.bin")
    # Rewritten in place, same size, same inode: the modification time tells.
    ds = core.FolderDataset(folder, SAMPLE_BYTES, sample_shape=list(SHAPE), io=io)
    r = ds.reader(5, prefetch=0)
    read_all(r)
    st = os.stat(folder / "2.bin")
    with open(folder / "2.bin", "r+b") as f:
        f.write((-data[2]).tobytes())
    os.utime(folder / "2.bin", ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # whatever the clock's granularity
    r.rewind()
    with pytest.raises(core.InputError, match="rewritten") as e:
        read_all(r)
    assert e.value.path == str(folder / "2.bin")
    # A file that grew is an error too (it would otherwise be read short, silently).
    ds = core.FolderDataset(folder, SAMPLE_BYTES, sample_shape=list(SHAPE), io=io)
    r = ds.reader(5)
    read_all(r)
    (folder / "3.bin").write_bytes(data[3].tobytes() + b"\0\0\0\0")
    r.rewind()
    with pytest.raises(core.ShapeMismatch, match=f"now {SAMPLE_BYTES + 4} bytes") as e:
        read_all(r)
    assert e.value.path == str(folder / "3.bin")


def test_mmap_folder_readers_on_two_threads_share_the_mappings(core, tmp_path):
    import threading

    data = make_bins(tmp_path / "b", 300, shape=(16,))
    ds = core.FolderDataset(tmp_path / "b", 64, sample_shape=[16])
    results: list = [None, None]

    def run(i: int) -> None:
        results[i] = read_all(ds.reader(7, prefetch=3, threads=2))[0]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got in results:
        np.testing.assert_array_equal(got, data)
    assert ds.mapped_files == 300  # each file mapped once, whichever reader got there first


def test_mapped_copy_survives_a_file_truncated_under_it(core, tmp_path):
    """The SIGBUS guard: a copy from a mapping whose file was cut short fails instead of killing us."""
    f = tmp_path / "victim.bin"
    f.write_bytes(os.urandom(3 * 4096))
    assert core._copy_after_truncating_mapping(f, 3 * 4096, 3 * 4096) is True   # nothing cut: copies
    assert core._copy_after_truncating_mapping(f, 3 * 4096, 4096) is False       # pages 2-3 gone: SIGBUS
    f.write_bytes(os.urandom(3 * 4096))
    assert core._copy_after_truncating_mapping(f, 3 * 4096, 0) is False          # and again (not one-shot)
    with pytest.raises(core.InputError, match="cannot open") as e:
        core._copy_after_truncating_mapping(tmp_path / "absent.bin", 4096, 0)
    assert e.value.path == str(tmp_path / "absent.bin")


def test_sigbus_outside_a_guarded_copy_still_kills_the_process(tmp_path):
    """The guard's handler must hand foreign SIGBUS faults back (here: numpy.memmap of a cut file)."""
    import signal
    import subprocess
    import sys

    f = tmp_path / "cut.bin"
    f.write_bytes(b"\1" * 3 * 4096)
    script = f"""
import os, numpy as np, pymfn
core = pymfn.load_core()
assert core._copy_after_truncating_mapping({str(f)!r}, 3 * 4096, 0) is False  # installs the handler
with open({str(f)!r}, "wb") as fh:
    fh.write(b"\\1" * 3 * 4096)
m = np.memmap({str(f)!r}, dtype=np.uint8, mode="r")
os.truncate({str(f)!r}, 0)
print(int(m[-1]), flush=True)  # faults outside any guarded copy
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                       os.environ.get("PYTHONPATH", "")]))
    env.pop("PYTHONFAULTHANDLER", None)
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == -signal.SIGBUS, (p.returncode, p.stdout, p.stderr[-2000:])


def test_guarded_copy_does_not_run_on_a_stale_alternate_signal_stack(tmp_path):
    """Another library may register an alternate signal stack and later free it; the guard's handler must
    not run on it (it once did, and a fault whose handler landed on an unusable page killed the process)."""
    import subprocess
    import sys

    f = tmp_path / "victim.bin"
    f.write_bytes(b"\1" * 3 * 4096)
    script = f"""
import ctypes, mmap, pymfn
libc = ctypes.CDLL(None, use_errno=True)
core = pymfn.load_core()
size = 64 * 1024
stack = mmap.mmap(-1, size)                                   # an alternate stack, then made unusable
addr = ctypes.addressof(ctypes.c_char.from_buffer(stack))
class StackT(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]
assert libc.sigaltstack(ctypes.byref(StackT(addr, 0, size)), None) == 0
assert libc.mprotect(ctypes.c_void_p(addr), ctypes.c_size_t(size), 0) == 0   # PROT_NONE
assert core._copy_after_truncating_mapping({str(f)!r}, 3 * 4096, 4096) is False
print("survived", flush=True)
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                       os.environ.get("PYTHONPATH", "")]))
    env.pop("PYTHONFAULTHANDLER", None)
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0 and "survived" in p.stdout, (p.returncode, p.stdout, p.stderr[-2000:])


def test_bad_arguments(core, bins):
    folder, _ = bins
    with pytest.raises(core.InvalidArgument, match="sample_shape"):
        core.FolderDataset(folder, SAMPLE_BYTES, "float32", [2, 3, 5])
    with pytest.raises(core.InvalidArgument, match="multiple"):
        core.FolderDataset(folder, 7, "float32")
    with pytest.raises(core.InvalidArgument, match="sample_bytes"):
        core.FolderDataset(folder, 0)
    with pytest.raises(core.InvalidArgument, match="unknown dtype"):
        core.FolderDataset(folder, SAMPLE_BYTES, "float64")
    with pytest.raises(core.InvalidArgument, match="unknown file order"):
        core.FolderDataset(folder, SAMPLE_BYTES, order="random")
    with pytest.raises(core.InvalidArgument, match="expected 'mmap' or 'pread'"):
        core.FolderDataset(folder, SAMPLE_BYTES, io="read")
    ds = core.FolderDataset(folder, SAMPLE_BYTES)
    with pytest.raises(core.InvalidArgument, match="batch_size"):
        ds.reader(0)
    with pytest.raises(core.InvalidArgument, match="prefetch"):
        ds.reader(2, prefetch=-1)


# ---------------------------------------------------------------- packed source

def write_packed(path: Path, data: np.ndarray) -> Path:
    with pack.PackedWriter(path, data.dtype.name, data.shape[1:]) as w:
        w.append(data)
    return path


def test_packed_batches_are_copied_out_of_the_mapping(core, tmp_path):
    """Batches of a pack never point into its mapping (a truncated file would fault under whoever reads
    it): each is one guarded copy into the reader's aligned buffer."""
    data = np.random.default_rng(2).standard_normal((10, *SHAPE)).astype(np.float32)
    ds = core.PackedDataset(write_packed(tmp_path / "x.pack", data))
    assert (ds.sample_count, ds.sample_bytes, ds.dtype, ds.sample_shape) == (10, SAMPLE_BYTES, "float32", list(SHAPE))
    assert ds.header_bytes == 4096 and ds.file_bytes == 4096 + 10 * SAMPLE_BYTES
    r = ds.reader(5)
    addrs = set()
    for b in r:
        addrs.add(b.data.__array_interface__["data"][0])
        np.testing.assert_array_equal(b.data, data[b.first_sample:b.first_sample + 5])
    assert len(addrs) == 1 and addrs.pop() % 4096 == 0  # one reused, page-aligned buffer
    assert r.stats() == {"batches": 2, "bytes_copied": 10 * SAMPLE_BYTES, "bytes_read": 0, "padded_batches": 0}


def test_packed_partial_batch_is_zero_padded(core, tmp_path):
    data = np.arange(7 * 6, dtype=np.uint8).reshape(7, 6)
    ds = core.PackedDataset(write_packed(tmp_path / "x.pack", data))
    r = ds.reader(3)
    for _ in range(2):  # two passes
        got, meta = read_all(r)
        np.testing.assert_array_equal(got, data)
        assert meta[-1] == (2, 6, 1, 3)
        r.rewind()
    last = list(r)[-1]
    assert not last.data[1:].any()
    assert r.stats() == {"batches": 9, "bytes_copied": 3 * data.nbytes, "bytes_read": 0, "padded_batches": 3}
    big = ds.reader(100)
    b = big.next()
    np.testing.assert_array_equal(b.valid_data, data)
    assert big.stats()["bytes_copied"] == data.nbytes and not b.data[7:].any()


def test_packed_expectations(core, tmp_path):
    data = np.zeros((3, *SHAPE), np.float32)
    p = write_packed(tmp_path / "x.pack", data)
    core.PackedDataset(p, sample_bytes=SAMPLE_BYTES, dtype="float32", sample_shape=list(SHAPE))
    with pytest.raises(core.ShapeMismatch, match="float32 but the model expects uint8") as e:
        core.PackedDataset(p, dtype="uint8")
    assert e.value.path == str(p)
    with pytest.raises(core.ShapeMismatch, match=r"\[2, 3, 4\] but the model expects \[4, 3, 2\]"):
        core.PackedDataset(p, sample_shape=[4, 3, 2])
    with pytest.raises(core.ShapeMismatch, match=f"{SAMPLE_BYTES} bytes but the model expects 12 bytes"):
        core.PackedDataset(p, sample_bytes=12)


def test_packed_bad_files(core, tmp_path):
    data = np.ones((4, 8), np.float32)
    good = write_packed(tmp_path / "good.pack", data)
    raw = good.read_bytes()
    trunc = tmp_path / "trunc.pack"
    trunc.write_bytes(raw[:-5])
    with pytest.raises(core.FormatError, match="truncated") as e:
        core.PackedDataset(trunc)
    assert e.value.path == str(trunc)
    assert f"{len(raw) - 5} bytes" in str(e.value) and f"{len(raw)} bytes" in str(e.value)
    magic = tmp_path / "magic.pack"
    magic.write_bytes(b"NOTPACK\0" + raw[8:])
    with pytest.raises(core.FormatError, match="bad magic"):
        core.PackedDataset(magic)
    tiny = tmp_path / "tiny.pack"
    tiny.write_bytes(b"PYMFN")
    with pytest.raises(core.FormatError, match="too short"):
        core.PackedDataset(tiny)
    with pytest.raises(core.InputError, match="No such file") as e:
        core.PackedDataset(tmp_path / "absent.pack")
    assert e.value.path == str(tmp_path / "absent.pack")
    with pytest.raises(core.InputError, match="not a regular file"):
        core.PackedDataset(tmp_path)
    # The views stay valid after the dataset object is gone (the reader keeps the mapping).
    r = core.PackedDataset(good).reader(4)
    gc.collect()
    np.testing.assert_array_equal(r.next().data, data)


# ---------------------------------------------------------------- numpy source

def test_array_zero_copy(core):
    arr = np.random.default_rng(3).standard_normal((11, *SHAPE)).astype(np.float32)
    ds = core.ArrayDataset(arr)
    assert (ds.sample_count, ds.sample_bytes, ds.sample_shape) == (11, SAMPLE_BYTES, list(SHAPE))
    r = ds.reader(4)
    base = arr.__array_interface__["data"][0]
    for b in r:
        if b.valid_rows == b.batch_rows:
            assert b.data.__array_interface__["data"][0] == base + b.first_sample * SAMPLE_BYTES
        np.testing.assert_array_equal(b.valid_data, arr[b.first_sample:b.first_sample + b.valid_rows])
    assert r.stats() == {"batches": 3, "bytes_copied": 3 * SAMPLE_BYTES, "bytes_read": 0, "padded_batches": 1}


def test_array_kept_alive(core):
    arr = np.arange(12, dtype=np.int32).reshape(4, 3)
    r = core.ArrayDataset(arr).reader(2)
    del arr
    gc.collect()
    b = r.next()
    np.testing.assert_array_equal(b.data, [[0, 1, 2], [3, 4, 5]])


def test_array_that_maps_a_file_is_read_through_guarded_copies(core, tmp_path):
    """An array whose memory maps a file (np.load(mmap_mode=...), a slice of one, a deleted file) is found in
    /proc/self/maps: its batches are copies (a page of it can vanish under a reader), checked against the
    file. Plain memory stays zero-copy."""
    data = np.random.default_rng(4).standard_normal((10, *SHAPE)).astype(np.float32)
    f = tmp_path / "x.npy"
    np.save(f, data)
    for arr, rows in ((np.load(f, mmap_mode="r"), data), (np.load(f, mmap_mode="c"), data),
                      (np.load(f, mmap_mode="r")[3:], data[3:])):
        ds = core.ArrayDataset(arr)
        assert ds.mapped_file == str(f.resolve())
        r = ds.reader(4)
        got, _ = read_all(r)
        np.testing.assert_array_equal(got, rows)
        assert r.stats()["bytes_copied"] == rows.nbytes
        b = ds.reader(4).next()
        start = arr.__array_interface__["data"][0]
        assert not start <= b.data.__array_interface__["data"][0] < start + arr.nbytes  # not a view of the file
    assert core.ArrayDataset(np.array(np.load(f, mmap_mode="r"))).mapped_file is None
    gone = tmp_path / "gone.npy"
    np.save(gone, data)
    arr = np.load(gone, mmap_mode="r")
    os.unlink(gone)  # nothing left to check against, but still read through the guard
    ds = core.ArrayDataset(arr, origin="npy gone.npy", path="gone.npy")
    assert ds.mapped_file == "gone.npy"
    np.testing.assert_array_equal(read_all(ds.reader(3))[0], data)


def test_open_dataset_npy_change_names_the_file_as_given(core, tmp_path, monkeypatch):
    data = np.ones((8, 1024), np.float32)
    np.save(tmp_path / "x.npy", data)
    monkeypatch.chdir(tmp_path)
    ds = open_dataset("x.npy")
    r = ds.reader(2)
    r.next()
    os.truncate("x.npy", 128)  # the header only: every sample is gone
    with pytest.raises(core.InputError, match=r"^x\.npy: the file changed during the run \(it is now 128 bytes") as e:
        r.next()
    assert e.value.path == "x.npy"
    with pytest.raises(core.InputError):  # and stays failed
        r.next()


def test_array_bad_input(core):
    with pytest.raises(core.InvalidArgument, match="C-contiguous"):
        core.ArrayDataset(np.zeros((4, 3), np.float32, order="F"))
    with pytest.raises(core.InvalidArgument, match="C-contiguous"):
        core.ArrayDataset(np.zeros((4, 6), np.float32)[:, ::2])
    with pytest.raises(core.InvalidArgument, match="float64"):
        core.ArrayDataset(np.zeros((4, 3)))
    with pytest.raises(core.InvalidArgument, match=">f4"):
        core.ArrayDataset(np.zeros((4, 3), ">f4"))
    with pytest.raises(core.InvalidArgument, match="numpy.ndarray"):
        core.ArrayDataset([[1.0, 2.0]])
    with pytest.raises(core.InvalidArgument, match="no samples"):
        core.ArrayDataset(np.zeros((0, 3), np.float32))
    with pytest.raises(core.InvalidArgument, match="0-d"):
        core.ArrayDataset(np.zeros((), np.float32))


# ---------------------------------------------------------------- open_dataset

def test_open_dataset_dispatch(core, bins, tmp_path):
    folder, data = bins
    ds = open_dataset(folder, sample_shape=SHAPE)
    assert isinstance(ds, core.FolderDataset) and ds.sample_bytes == SAMPLE_BYTES
    packed = write_packed(tmp_path / "samples.dat", data)  # recognised by magic, not by name
    ds = open_dataset(packed, dtype="float32", sample_shape=SHAPE)
    assert isinstance(ds, core.PackedDataset)
    np.save(tmp_path / "x.npy", data)
    ds = open_dataset(tmp_path / "x.npy", sample_bytes=SAMPLE_BYTES)
    assert isinstance(ds, core.ArrayDataset) and ds.describe().startswith("npy ")
    np.testing.assert_array_equal(read_all(ds.reader(4))[0], data)
    ds = open_dataset(data)
    assert isinstance(ds, core.ArrayDataset) and isinstance(ds, core.Dataset)


def test_open_dataset_errors(core, bins, tmp_path):
    folder, data = bins
    with pytest.raises(core.InvalidArgument, match="sample_bytes or sample_shape"):
        open_dataset(folder)
    with pytest.raises(core.InvalidArgument, match="disagrees"):
        open_dataset(folder, sample_bytes=10, sample_shape=SHAPE)
    with pytest.raises(core.InputError, match="no such file") as e:
        open_dataset(tmp_path / "nothing")
    assert e.value.path == str(tmp_path / "nothing")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"hello world")
    with pytest.raises(core.FormatError, match="not a packed file"):
        open_dataset(junk)
    np.save(tmp_path / "f.npy", np.asfortranarray(np.zeros((3, 4), np.float32)))
    with pytest.raises(core.InputError, match="Fortran"):
        open_dataset(tmp_path / "f.npy")
    with pytest.raises(core.ShapeMismatch, match="model expects uint8"):
        open_dataset(data, dtype="uint8")
    with pytest.raises(core.ShapeMismatch, match="model expects"):
        open_dataset(data, sample_shape=(24,))
    packed = write_packed(tmp_path / "p.pack", data)
    with pytest.raises(core.ShapeMismatch):
        open_dataset(packed, dtype="float16")
    with pytest.raises(TypeError):
        open_dataset(42)


@pytest.mark.parametrize("prefetch", [0, 3])
def test_concurrent_python_consumers_get_each_batch_once(core, tmp_path, prefetch):
    """Two Python threads sharing one reader (GIL released in next()) split the batches between them."""
    import threading

    make_bins(tmp_path / "b", 300, shape=(4,))
    r = core.FolderDataset(tmp_path / "b", 16, sample_shape=[4]).reader(2, prefetch=prefetch)
    seen: list[tuple[int, int]] = []
    lock = threading.Lock()

    def consume():
        while (b := r.next()) is not None:
            with lock:
                seen.append((b.first_sample, b.valid_rows))

    threads = [threading.Thread(target=consume) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(s for s, _ in seen) == list(range(0, 300, 2))
    assert all(v == 2 for _, v in seen)


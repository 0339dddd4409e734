"""Property tests for the data commands' untrusted inputs: ``lfw.bin`` pickles and folders of bins/images.

The property: whatever the input, ``pymfn.inputs.lfw_bin.read_lfw_bin`` / ``decode_images`` and ``pymfn.inputs.pack.pack_folder``
/ ``pymfn.inputs.image2bin.image2bin`` either succeed with a result consistent with the input, or raise their typed
error (``LfwFormatError``, ``ImageDecodeError``, ``InputFileError`` and the other ValueError/OSError kinds)
whose message names the file. Never another exception, never a hang (a FIFO in the folder is the classic),
never an allocation out of proportion to the input (``tracemalloc`` bounds the Python/numpy heap; image
sizes are checked from headers before Pillow allocates pixels). Malicious pickles stay refused.

The normal test run tries a bounded number of examples per test, deterministically (the same ones every
run). A long campaign needs no code change:

    PYMFN_FUZZ_EXAMPLES=20000 PYMFN_FUZZ_RANDOM=1 .venv/bin/python -m pytest -q -p no:cacheprovider \\
        tests/test_fuzz_data_inputs.py

``PYMFN_FUZZ_EXAMPLES`` is the number of examples per test (default 60); ``PYMFN_FUZZ_RANDOM=1`` makes
Hypothesis explore new random examples instead of the fixed sequence (a failure prints the shrunk input and
a ``@reproduce_failure`` blob).
"""
from __future__ import annotations

import contextlib
import io
import os
import pickle
import signal
import struct
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from pymfn.inputs import image2bin as i2b
from pymfn.inputs import lfw_bin as lfw
from pymfn.inputs import pack

EXAMPLES = int(os.environ.get("PYMFN_FUZZ_EXAMPLES", "") or 60)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                derandomize=not os.environ.get("PYMFN_FUZZ_RANDOM"),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

SECONDS_PER_CALL = 20.0  # generous: the machine is shared; a blocked FIFO read never returns at all
HEAP_BYTES_BASE = 48 << 20
HEAP_BYTES_PER_INPUT_BYTE = 64


class Hung(Exception):
    pass


@contextlib.contextmanager
def watchdog(seconds: float) -> Iterator[None]:
    """Raise Hung in the main thread if the block runs longer than ``seconds`` (interrupts a blocked read)."""
    def fire(signum, frame):
        raise Hung(f"still running after {seconds:.0f} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def bounded(call: Callable[[], Any], input_bytes: int, allowed: tuple[type[BaseException], ...],
            names: str, label: str) -> Any:
    """Run ``call``: return its result or the allowed exception (whose message must contain ``names``);
    fail on any other exception, on a hang and on a runaway allocation."""
    tracemalloc.start()
    t0 = time.monotonic()
    try:
        with watchdog(SECONDS_PER_CALL):
            result = call()
    except Hung:
        raise
    except allowed as exc:
        assert names in str(exc), f"the error does not name {names!r}: {exc}"
        assert "\n" not in str(exc).strip(), f"multi-line error: {exc!r}"
        result = exc
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert time.monotonic() - t0 < SECONDS_PER_CALL
    event(f"{label}: {type(result).__name__ if isinstance(result, BaseException) else 'ok'}")
    limit = HEAP_BYTES_BASE + HEAP_BYTES_PER_INPUT_BYTE * input_bytes
    assert peak < limit, f"peak allocation {peak} bytes for {input_bytes} bytes of input"
    return result


def jpeg(seed: int, size: int = 112) -> bytes:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((size, size))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    return buf.getvalue()


GOOD_JPEGS = [jpeg(i) for i in range(4)]


def claiming(data: bytes, width: int, height: int) -> bytes:
    """A JPEG whose SOF0 header claims another size (without changing the data)."""
    b = bytearray(data)
    sof = b.index(b"\xff\xc0")
    struct.pack_into(">HH", b, sof + 5, height, width)
    return bytes(b)


# ----------------------------------------------------------------------------------------------- lfw.bin

def check_lfw_bytes(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.bin"
        path.write_bytes(data)
        got = bounded(lambda: lfw.read_lfw_bin(path), len(data), (lfw.LfwFormatError,), str(path), "read_lfw_bin")
        if isinstance(got, BaseException):
            assert got.path == str(path)
            return
        bins, issame = got
        assert isinstance(bins, list) and all(isinstance(b, bytes) for b in bins)
        assert issame.dtype == np.bool_ and issame.ndim == 1 and len(bins) == 2 * len(issame) > 0
        assert sum(len(b) for b in bins) <= len(data)
        images = bounded(lambda: lfw.decode_images(bins, source=str(path)), len(data), (lfw.ImageDecodeError,),
                         str(path), "decode_images")
        if not isinstance(images, BaseException):
            assert images.shape == (len(bins), 112, 112, 3) and images.dtype == np.uint8


@FUZZ
@given(st.binary(max_size=2048), st.sampled_from([b"", b"\x80\x02", b"\x80\x04", b"\x80\x05"]))
def test_lfw_bin_arbitrary_bytes(tail, head):
    check_lfw_bytes(head + tail)


# Python objects an lfw.bin pickle might hold, right or wrong.
LEAVES = st.one_of(
    st.sampled_from(GOOD_JPEGS),
    st.builds(claiming, st.sampled_from(GOOD_JPEGS), st.sampled_from([111, 112, 113, 10000, 30000]),
              st.sampled_from([112, 10000, 30000])),
    st.binary(max_size=64), st.builds(bytearray, st.binary(max_size=64)), st.text(max_size=16),
    st.booleans(), st.integers(-3, 300), st.none(), st.floats(allow_nan=True),
    st.builds(lambda b: np.frombuffer(b, np.uint8), st.sampled_from(GOOD_JPEGS)),
    st.builds(np.array, st.lists(st.booleans(), max_size=8)),
    st.builds(lambda n: np.arange(n), st.integers(0, 8)),
    st.builds(lambda n: np.zeros((n, n)), st.integers(0, 4)),
    st.builds(np.bool_, st.booleans()),
)
OBJECTS = st.recursive(LEAVES, lambda inner: st.one_of(st.lists(inner, max_size=6), st.tuples(inner, inner),
                                                       st.dictionaries(st.text(max_size=3), inner, max_size=3)),
                       max_leaves=24)
LFW_LIKE = st.one_of(
    OBJECTS,
    st.tuples(st.lists(LEAVES, max_size=8), st.lists(st.one_of(st.booleans(), st.integers(-1, 2)), max_size=4)),
    st.builds(lambda n, same: ([GOOD_JPEGS[i % 4] for i in range(2 * n)], same[:n] + [True] * (n - len(same))),
              st.integers(1, 3), st.lists(st.booleans(), max_size=3)),
)


@FUZZ
@given(LFW_LIKE, st.integers(0, 5), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4),
       st.one_of(st.none(), st.integers(1, 10**6)))
def test_lfw_bin_structures_and_mutations(obj, protocol, flips, cut):
    data = bytearray(pickle.dumps(obj, protocol=protocol))
    for pos, value in flips:
        data[pos % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    check_lfw_bytes(bytes(data))


class _Evil:
    def __init__(self, call: Any, args: tuple) -> None:
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


@FUZZ
@given(st.sampled_from([(os.system, ("true",)), (eval, ("1",)), (open, ("/etc/passwd",)),
                        (getattr, ("x", "upper")), (np.load, ("x.npy",)), (pickle.loads, (b"",)),
                        (bytearray, (1 << 34,)), (np.ndarray, ((1 << 34,),))]),
       st.integers(2, 5))
def test_malicious_pickles_stay_refused(target, protocol):
    data = pickle.dumps(([_Evil(*target), GOOD_JPEGS[0]], [True]), protocol=protocol)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "evil.bin"
        path.write_bytes(data)
        with pytest.raises(lfw.LfwFormatError, match="evil.bin: not a valid lfw.bin pickle"):
            bounded(lambda: lfw.read_lfw_bin(path), len(data), (), str(path), "malicious")


# ------------------------------------------------------------------------------------------ bin folders

SAMPLE_SHAPE = (2, 2, 3)
SAMPLE_BYTES = 2 * 2 * 3 * 4

ENTRY_NAMES = st.sampled_from(["0.bin", "1.bin", "2.bin", "10.bin", "a.bin", ".hidden.bin", "x.jpg", "y.PNG",
                               "sub/3.jpg", "sub/4.bin", ".dot/5.jpg", "notes.txt", "z.jpeg", "w.bmp"])
GOOD_SAMPLE = st.tuples(st.just("sample"), st.binary(min_size=SAMPLE_BYTES, max_size=SAMPLE_BYTES))
GOOD_JPEG = st.tuples(st.just("jpeg"), st.sampled_from(GOOD_JPEGS))
ENTRY_KINDS = st.one_of(  # one_of picks a branch uniformly: the good kinds are repeated to succeed often enough
    GOOD_SAMPLE, GOOD_SAMPLE, GOOD_SAMPLE, GOOD_JPEG, GOOD_JPEG, GOOD_JPEG,
    st.tuples(st.just("bytes"), st.binary(max_size=200)),
    st.tuples(st.just("bomb"), st.sampled_from([113, 10000, 30000])),
    st.tuples(st.just("fifo"), st.none()),
    st.tuples(st.just("dir"), st.none()),
    st.tuples(st.just("dangling"), st.none()),
    st.tuples(st.just("link"), st.none()),
    st.tuples(st.just("device"), st.none()),
)


def make_folder(root: Path, entries: list[tuple[str, tuple[str, Any]]]) -> int:
    """Create the entries under root; returns the bytes written (the input size for the heap bound)."""
    root.mkdir()
    written = 0
    for name, (kind, value) in entries:
        path = root / name
        if path.exists() or path.is_symlink():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind in ("sample", "bytes"):
            path.write_bytes(value)
            written += len(value)
        elif kind == "jpeg":
            path.write_bytes(value)
            written += len(value)
        elif kind == "bomb":
            path.write_bytes(claiming(GOOD_JPEGS[0], value, value))
            written += len(GOOD_JPEGS[0])
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "dir":
            path.mkdir()
        elif kind == "dangling":
            path.symlink_to(root / "does-not-exist")
        elif kind == "link":
            real = root.parent / f"real-{len(list(root.parent.iterdir()))}"
            real.write_bytes(b"\1" * SAMPLE_BYTES)
            path.symlink_to(real)
            written += SAMPLE_BYTES
        elif kind == "device":
            path.symlink_to("/dev/zero")
    return written


FOLDERS = st.lists(st.tuples(ENTRY_NAMES, ENTRY_KINDS), max_size=8)
ALLOWED = (ValueError, OSError)  # InputFileError, ImageDecodeError, PackedFormatError, FileNotFoundError, ...


@FUZZ
@given(FOLDERS, st.sampled_from(["auto", "bins", "images"]), st.sampled_from(["natural", "lexicographic"]))
def test_pack_folder_parses_or_names_the_file(entries, kind, order):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "src"
        size = make_folder(root, entries)
        out = Path(tmp) / "out.pack"
        got = bounded(lambda: pack.pack_folder(root, out, dtype="float32" if kind != "images" else "uint8",
                                               sample_shape=SAMPLE_SHAPE if kind != "images" else (112, 112, 3),
                                               order=order, kind=kind, progress=False),
                      size, ALLOWED, str(root), f"pack_folder {kind}")
        if isinstance(got, BaseException):
            assert not out.exists(), "a failed pack must not leave an output"
            assert not [p for p in Path(tmp).iterdir() if ".pymfn-" in p.name], "nor a temp file"
            return
        arr = pack.read_packed(out)
        listed = pack.list_bins(root, order) if arr.dtype == np.float32 else pack.list_images(root, order)
        assert len(arr) == len(listed) > 0
        if arr.dtype == np.float32:
            assert arr.reshape(len(arr), -1).view(np.uint8).tobytes() == b"".join(p.read_bytes() for p in listed)


@FUZZ
@given(FOLDERS)
def test_image2bin_folder_parses_or_names_the_file(entries):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "src"
        size = make_folder(root, entries)
        out = Path(tmp) / "bins"
        got = bounded(lambda: i2b.image2bin(root, out), size, ALLOWED, str(root), "image2bin")
        if isinstance(got, BaseException):
            assert not out.exists()
            assert not [p for p in Path(tmp).iterdir() if ".pymfn-" in p.name]
            return
        listed = i2b.list_images(root)
        assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == \
            sorted(f"{i}.bin" for i in range(len(listed)))
        assert all((out / f"{i}.bin").stat().st_size == 112 * 112 * 3 * 4 for i in range(len(listed)))


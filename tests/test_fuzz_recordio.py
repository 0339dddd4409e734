"""Fuzz/property tests of the RecordIO (.rec) and index (.idx) parsers: every damaged input either parses
or raises RecordIOError (or DataError, one level up) naming the file; never another exception, a hang or
an allocation beyond the size of the file.

The default run tries a few hundred seeded mutations per test (a few seconds). A long campaign:

    PYMFN_FUZZ_EXAMPLES=200000 PYMFN_FUZZ_SEED=1000 .venv/bin/python -m pytest -q -p no:cacheprovider \\
        tests/test_fuzz_recordio.py

(see tests/_fuzz.py; a failure message names the seed and the mutation, so it replays exactly).
"""
from __future__ import annotations

import contextlib
import io
import signal
import tracemalloc
from pathlib import Path
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from _fuzz import examples, mutations

from pymfn.training import recordio
from pymfn.training.recordio import RecordIOError, RecordReader

PER_EXAMPLE_SECONDS = 5.0  # a parse of a few-KB file that takes this long is a hang
ALLOWANCE = 256 * 1024  # bytes of Python bookkeeping a parse may allocate beyond a few copies of the file


def _jpeg(seed: int, magic_inside: bool = False) -> bytes:
    """A tiny real JPEG; optionally with the RecordIO magic word 4-byte aligned inside (a multi-part record)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(buf, format="JPEG")
    data = buf.getvalue()
    if magic_inside:
        cut = 24  # the 24-byte IRHeader precedes the image in the payload: keep the word aligned there
        data = data[:cut] + recordio._MAGIC_BYTES + data[cut:]
    return data


@pytest.fixture(scope="module")
def insightface_set(tmp_path_factory) -> tuple[Path, Path]:
    """A valid InsightFace-style set: header record, 6 images of 3 identities (one multi-part), id records."""
    root = tmp_path_factory.mktemp("rec")
    images = [(_jpeg(i, magic_inside=(i == 2)), i % 3) for i in range(6)]
    rec, idx = root / "train.rec", root / "train.idx"
    recordio.write_insightface_rec(rec, idx, images)
    return rec, idx


def _header_ranges(rec: Path, idx: Path) -> list[tuple[int, int]]:
    """The 8-byte record headers plus the 24-byte IRHeaders: where damage changes the parse."""
    with RecordReader(rec, idx) as reader:
        starts = sorted(reader.index.values())
    return [(s, s + 8 + 24 + 8) for s in starts]


@contextlib.contextmanager
def _bounded(what: str, file_size: int, seconds: float = PER_EXAMPLE_SECONDS) -> Iterator[None]:
    """Fail (instead of hanging) after PER_EXAMPLE_SECONDS, and fail if the parse allocated far more than
    the file holds."""
    def on_alarm(signum, frame):
        raise TimeoutError(f"{what}: parse still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    tracemalloc.start()
    try:
        yield
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert peak <= 4 * file_size + ALLOWANCE, f"{what}: parse allocated {peak} bytes for a {file_size}-byte file"


def _check(what: str, size: int, parse: Callable[[], object], names: tuple[Path, ...],
           errors: tuple[type[Exception], ...] = (RecordIOError,), seconds: float = PER_EXAMPLE_SECONDS) -> str:
    """Run ``parse``; 'parsed' or 'rejected' (a typed error naming one of ``names``); anything else fails."""
    try:
        with _bounded(what, size, seconds):
            parse()
        return "parsed"
    except errors as e:
        assert any(str(n) in str(e) for n in names), f"{what}: error does not name the file: {e}"
        return "rejected"
    except Exception as e:  # pragma: no cover - the failure report
        pytest.fail(f"{what}: {type(e).__name__}: {e}")


def _read_everything(rec: Path, idx: Path | None) -> None:
    """What the data command does with a set: image keys from the header, every record unpacked; plus a
    sequential pass over the whole file."""
    with RecordReader(rec, idx) as reader:
        if idx is not None:
            for key in recordio.insightface_image_keys(reader):
                recordio.unpack(reader.read_idx(key), where=f"{rec} record {key}")
            for key in reader.keys:
                reader.read_idx(key)
        for payload in reader:
            recordio.unpack(payload, where=f"{rec} (sequential)") if len(payload) >= 24 else None


def test_clean_set_parses(insightface_set) -> None:
    rec, idx = insightface_set
    with RecordReader(rec, idx) as reader:
        keys = recordio.insightface_image_keys(reader)
        assert keys == [1, 2, 3, 4, 5, 6]
        header, img = recordio.unpack(reader.read_idx(3))
        assert header.class_label == 2 and img == _jpeg(2, magic_inside=True)


def test_fuzz_rec_file(insightface_set, tmp_path) -> None:
    rec, idx = insightface_set
    clean = rec.read_bytes()
    target, target_idx = tmp_path / "train.rec", tmp_path / "train.idx"
    target_idx.write_bytes(idx.read_bytes())
    seen = {"parsed": 0, "rejected": 0}
    for what, data in mutations(clean, examples(), hot=_header_ranges(rec, idx)):
        target.write_bytes(data)
        # an idx offset beyond a truncated file is the idx's fault: either file may be named
        outcome = _check(what, len(data), lambda: _read_everything(target, target_idx), (target, target_idx))
        seen[outcome] += 1
    assert seen["rejected"] > 0 and seen["parsed"] > 0, seen


def test_fuzz_rec_file_sequential(insightface_set, tmp_path) -> None:
    """Without an index: only the record framing guides the reader."""
    rec, idx = insightface_set
    target = tmp_path / "train.rec"
    for what, data in mutations(rec.read_bytes(), examples(), hot=_header_ranges(rec, idx)):
        target.write_bytes(data)
        _check(what, len(data), lambda: _read_everything(target, None), (target,))


def test_fuzz_idx_file(insightface_set, tmp_path) -> None:
    rec, idx = insightface_set
    target_rec, target = tmp_path / "train.rec", tmp_path / "train.idx"
    target_rec.write_bytes(rec.read_bytes())
    clean = idx.read_bytes()
    seen = {"parsed": 0, "rejected": 0}
    for what, data in mutations(clean, examples(), hot=[(0, len(clean))]):
        target.write_bytes(data)
        outcome = _check(what, len(data) + rec.stat().st_size, lambda: _read_everything(target_rec, target),
                         (target, target_rec))
        seen[outcome] += 1
    assert seen["rejected"] > 0, seen


def test_fuzz_data_command_on_damaged_sets(insightface_set, tmp_path) -> None:
    """One level up: `pymfn data tfrecord` on a damaged set writes shards or raises DataError/RecordIOError
    naming the file, and never leaves a partial output directory."""
    import tensorflow  # noqa: F401 - imported before the clock runs (it takes seconds)

    from pymfn.training import tfrecords as data

    rec, idx = insightface_set
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.idx").write_bytes(idx.read_bytes())
    out = tmp_path / "out"
    for n, (what, blob) in enumerate(mutations(rec.read_bytes(), max(1, examples() // 10),
                                               hot=_header_ranges(rec, idx))):
        (src / "train.rec").write_bytes(blob)
        outcome = _check(what, len(blob), lambda: data.tfrecords_from_recordio(src, out, 2, 8, 0),
                         (src / "train.rec", src / "train.idx"), errors=(RecordIOError, data.DataError),
                         seconds=60)
        if outcome == "rejected":
            assert not out.exists(), f"{what}: partial output left behind"
        else:
            assert (out / data.META_NAME).is_file()


@pytest.mark.parametrize("label", [float("nan"), float("inf"), -1.0, 1.5, 1e30])
def test_corrupt_labels_are_data_errors(tmp_path, label) -> None:
    """Regression: NaN raised a bare ValueError, inf an OverflowError (reported as an internal error)."""
    from pymfn.training import tfrecords as data

    src = tmp_path / "src"
    src.mkdir()
    recordio.write_insightface_rec(src / "train.rec", src / "train.idx", [(_jpeg(0), 0), (_jpeg(1), 1)])
    with RecordReader(src / "train.rec", src / "train.idx") as reader:
        offsets = dict(reader.index)
    raw = bytearray((src / "train.rec").read_bytes())
    label_at = offsets[2] + 8 + 4  # record header, then IRHeader.flag; the float label follows
    raw[label_at:label_at + 4] = np.array([label], "<f4").tobytes()
    (src / "train.rec").write_bytes(bytes(raw))
    with pytest.raises(data.DataError, match=r"train.rec record 2: label .* is not an integer"):
        data.tfrecords_from_recordio(src, tmp_path / "out", 1, 8, 0)


def test_corrupt_header_range_is_bounded(tmp_path) -> None:
    """Regression: a header record claiming 1e30 image keys built a list of that length (hang, memory)."""
    rec, idx = tmp_path / "train.rec", tmp_path / "train.idx"
    with recordio.RecordWriter(rec, idx) as w:
        w.write(recordio.pack(None, b"", label=(1e30, 2e30)), key=0)
        w.write(recordio.pack(None, _jpeg(0), label=0.0), key=1)
    with RecordReader(rec, idx) as reader, _bounded("header 1e30", rec.stat().st_size):
        with pytest.raises(RecordIOError, match="header record 0 says images are keys"):
            recordio.insightface_image_keys(reader)


def test_huge_length_field_does_not_allocate(tmp_path) -> None:
    """Regression: a 29-bit length of 512 MB made read() allocate that much before finding the file short."""
    rec = tmp_path / "x.rec"
    rec.write_bytes(recordio._MAGIC_BYTES + (recordio._LEN_MASK).to_bytes(4, "little") + b"abc")
    with RecordReader(rec) as reader, _bounded("512 MB length", 11):
        with pytest.raises(RecordIOError, match="truncated record at byte 0"):
            reader.read_at(0)


def test_fifo_and_directory_are_rejected(tmp_path) -> None:
    import os

    fifo = tmp_path / "x.rec"
    os.mkfifo(fifo)
    with pytest.raises(RecordIOError, match="not a regular file"):
        RecordReader(fifo)
    rec = tmp_path / "y.rec"
    recordio.write_insightface_rec(rec, tmp_path / "y.idx", [(_jpeg(0), 0)])
    (tmp_path / "z.idx").mkdir()
    with pytest.raises(RecordIOError, match="z.idx: not a regular file"):
        RecordReader(rec, tmp_path / "z.idx")

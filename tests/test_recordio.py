"""MXNet RecordIO reader/writer and InsightFace IRHeader, checked against the byte layout dmlc-core uses."""
from __future__ import annotations

import struct

import pytest

from pymfn.training import recordio
from pymfn.training.recordio import MAGIC, IRHeader, RecordIOError, RecordReader, RecordWriter

MAGIC_BYTES = struct.pack("<I", MAGIC)


def _write(tmp_path, payloads, name="t"):
    rec, idx = tmp_path / f"{name}.rec", tmp_path / f"{name}.idx"
    with RecordWriter(rec, idx) as w:
        for p in payloads:
            w.write(p)
    return rec, idx


def test_single_record_byte_layout(tmp_path):
    rec, idx = _write(tmp_path, [b"abcde"])
    # magic, length 5 with cflag 0, payload, 3 bytes of zero padding to a 4-byte boundary
    assert rec.read_bytes() == MAGIC_BYTES + struct.pack("<I", 5) + b"abcde" + b"\0\0\0"
    assert idx.read_text() == "0\t0\n"


def test_roundtrip_various_lengths(tmp_path):
    payloads = [b"", b"x", b"ab", b"abc", b"abcd", bytes(range(256)) * 3, b"\xff" * 1001]
    rec, idx = _write(tmp_path, payloads)
    with RecordReader(rec, idx) as r:
        assert r.keys == list(range(len(payloads)))
        assert [r.read_idx(k) for k in r.keys] == payloads
        assert list(r) == payloads
    offsets = [int(line.split("\t")[1]) for line in idx.read_text().splitlines()]
    assert offsets[0] == 0 and offsets == sorted(offsets)
    assert all(o % 4 == 0 for o in offsets)


def test_aligned_magic_is_split_into_parts(tmp_path):
    # two aligned magic words -> parts with cflag 1, 2, 3; an unaligned one stays inside a part
    payload = b"AAAA" + MAGIC_BYTES + b"BB" + MAGIC_BYTES + b"CC" + MAGIC_BYTES + b"DDD"
    assert payload.index(MAGIC_BYTES, 10) % 4 == 2  # the middle occurrence is unaligned
    rec, idx = _write(tmp_path, [payload, b"next"])
    raw = rec.read_bytes()
    flags, off = [], 0
    while off < len(raw):
        magic, lrec = struct.unpack_from("<II", raw, off)
        assert magic == MAGIC
        flags.append(lrec >> 29)
        length = lrec & ((1 << 29) - 1)
        off += 8 + length + (-length % 4)
    assert flags == [1, 2, 3, 0]
    with RecordReader(rec, idx) as r:
        assert r.read_idx(0) == payload
        assert r.read_idx(1) == b"next"


def test_irheader_pack_unpack():
    data = recordio.pack(None, b"JPEGDATA", label=7.0, id=3, id2=9)
    assert len(data) == 24 + 8
    assert struct.unpack_from("<IfQQ", data) == (0, 7.0, 3, 9)
    header, img = recordio.unpack(data)
    assert header == IRHeader(0, 7.0, 3, 9) and img == b"JPEGDATA"
    assert header.class_label == 7

    data = recordio.pack(None, b"IMG", label=(1.0, 2.5))
    assert struct.unpack_from("<IfQQ", data)[0] == 2
    header, img = recordio.unpack(data)
    assert header.flag == 2 and header.label == (1.0, 2.5) and img == b"IMG" and header.class_label == 1


def test_unpack_errors():
    with pytest.raises(RecordIOError, match="24-byte IRHeader"):
        recordio.unpack(b"short", where="rec 5")
    bad = struct.pack("<IfQQ", 5, 0.0, 0, 0) + b"\0" * 8  # says 5 labels, has 2
    with pytest.raises(RecordIOError, match="rec 9: IRHeader says 5 label values"):
        recordio.unpack(bad, where="rec 9")


def test_insightface_layout(tmp_path):
    images = [(b"img%d" % i, i % 3) for i in range(7)]
    rec, idx = tmp_path / "train.rec", tmp_path / "train.idx"
    recordio.write_insightface_rec(rec, idx, images)
    with RecordReader(rec, idx) as r:
        keys = recordio.insightface_image_keys(r)
        assert keys == list(range(1, 8))
        got = [recordio.unpack(r.read_idx(k)) for k in keys]
        assert [(img, h.class_label) for h, img in got] == images
        head, _ = recordio.unpack(r.read_idx(0))
        assert head.label == (8.0, 11.0)  # 3 identity records follow the 7 images
        ident, _ = recordio.unpack(r.read_idx(8))
        assert ident.label == (1.0, 8.0)  # label 0 -> image keys 1, 4, 7


def test_bad_magic_names_file_and_offset(tmp_path):
    path = tmp_path / "bad.rec"
    path.write_bytes(struct.pack("<II", 0x12345678, 4) + b"abcd")
    with RecordReader(path) as r, pytest.raises(RecordIOError, match=r"bad\.rec: bad magic 0x12345678 at byte 0"):
        list(r)


def test_truncated_record(tmp_path):
    rec, idx = _write(tmp_path, [b"a" * 100, b"b" * 100])
    data = rec.read_bytes()
    rec.write_bytes(data[:-30])
    idx.write_text("0\t0\n")  # keep idx offsets inside the file
    with RecordReader(rec, idx) as r:
        assert r.read_idx(0) == b"a" * 100
        with pytest.raises(RecordIOError, match=r"t\.rec: truncated record at byte 108"):
            list(r)
    rec.write_bytes(data[:108 + 5])  # cut inside the second record's 8-byte header
    with RecordReader(rec) as r, pytest.raises(RecordIOError, match="truncated record header at byte 108"):
        list(r)


def test_broken_multipart(tmp_path):
    path = tmp_path / "mp.rec"
    part = lambda flag, data: MAGIC_BYTES + struct.pack("<I", (flag << 29) | len(data)) + data  # noqa: E731
    path.write_bytes(part(2, b"abcd"))
    with RecordReader(path) as r, pytest.raises(RecordIOError, match="starts with continuation flag 2"):
        list(r)
    path.write_bytes(part(1, b"abcd"))
    with RecordReader(path) as r, pytest.raises(RecordIOError, match="cut off by the end of the file"):
        list(r)
    path.write_bytes(part(1, b"abcd") + part(0, b"efgh"))
    with RecordReader(path) as r, pytest.raises(RecordIOError, match="has flag 0"):
        list(r)


def test_missing_and_bad_idx(tmp_path):
    rec, idx = _write(tmp_path, [b"abcd"])
    idx.unlink()
    with pytest.raises(FileNotFoundError, match=r"t\.idx"):
        RecordReader(rec, idx)
    idx.write_text("0 0\n")
    with pytest.raises(RecordIOError, match=r"t\.idx:1: expected 'key<TAB>offset'"):
        RecordReader(rec, idx)
    idx.write_text("0\t999\n")
    with pytest.raises(RecordIOError, match=r"offset 999 is outside"):
        RecordReader(rec, idx)
    idx.write_text("0\t4\n")  # points into the middle of a record
    with RecordReader(rec, idx) as r, pytest.raises(RecordIOError, match="bad magic"):
        r.read_idx(0)
    with pytest.raises(FileNotFoundError, match="nothere.rec"):
        RecordReader(tmp_path / "nothere.rec")


def test_writer_is_atomic(tmp_path):
    rec, idx = tmp_path / "a.rec", tmp_path / "a.idx"
    with pytest.raises(RuntimeError):
        with RecordWriter(rec, idx) as w:
            w.write(b"abcd")
            raise RuntimeError("boom")
    assert not rec.exists() and not idx.exists()
    assert not list(tmp_path.iterdir())
    with RecordWriter(rec, idx) as w:
        w.write(b"x", key=5)
        with pytest.raises(ValueError, match="duplicate record key 5"):
            w.write(b"y", key=5)
    assert idx.read_text() == "5\t0\n"

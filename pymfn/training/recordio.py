"""MXNet RecordIO (the container InsightFace ships MS1M-refined in), read and written without mxnet.

Why our own implementation: mxnet is unmaintained and does not install on current Python, yet the
InsightFace training sets only exist as ``train.rec`` + ``train.idx``. The format is small:

* A ``.rec`` file is a sequence of records. Each record is ``uint32 magic (0xced7230a)``,
  ``uint32 lrec`` whose top 3 bits are a continuation flag (cflag) and low 29 bits the payload length,
  then the payload, zero-padded to a multiple of 4 bytes. All integers little-endian.
* dmlc's writer never lets the magic word appear 4-byte aligned inside a payload: it cuts the payload
  at each aligned occurrence, drops those 4 bytes and writes the pieces as parts with cflag
  1 (first), 2 (middle), 3 (last). A reader glues the parts back with the magic word in between.
  cflag 0 is a record in one piece.
* The ``.idx`` file is text, one ``key<TAB>byte offset`` line per record.
* InsightFace payloads start with an ``IRHeader``: ``uint32 flag, float32 label, uint64 id, uint64 id2``
  (24 bytes). When ``flag > 0`` the label is instead an array of ``flag`` float32 values that follows
  the header. The image (JPEG bytes) comes after that.
* In InsightFace sets, record 0 is a header whose label array ``(a, b)`` says that image records are
  keys ``1 .. a-1`` (identity records ``a .. b-1`` follow and are not images).
"""
from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from collections.abc import Iterator, Sequence

from pymfn.files.atomic import atomic_write

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_LEN_MASK = (1 << 29) - 1
_IR_FORMAT = "<IfQQ"
_IR_SIZE = struct.calcsize(_IR_FORMAT)  # 24


class RecordIOError(ValueError):
    """A .rec/.idx file is malformed. The message names the file and, where known, the byte offset."""


@dataclass
class IRHeader:
    """InsightFace/MXNet image-record header. ``label`` is a float, or a tuple when ``flag > 0``."""

    flag: int
    label: float | tuple[float, ...]
    id: int = 0
    id2: int = 0
    extra: dict = field(default_factory=dict, repr=False)

    @property
    def class_label(self) -> int:
        """The identity label as an int (first element when the label is an array)."""
        value = self.label[0] if isinstance(self.label, tuple) else self.label
        return int(value)


def pack(header: IRHeader | None, payload: bytes, *, label: float | Sequence[float] | None = None,
         id: int = 0, id2: int = 0) -> bytes:
    """Build an InsightFace record payload: IRHeader (+ label array) + ``payload``.

    Pass either a header or ``label`` (a number gives flag 0, a sequence gives flag = its length).
    """
    if header is None:
        if label is None:
            raise ValueError("pack: give a header or a label")
        if isinstance(label, (int, float)):
            header = IRHeader(0, float(label), id, id2)
        else:
            header = IRHeader(len(label), tuple(float(v) for v in label), id, id2)
    if isinstance(header.label, tuple):
        if header.flag != len(header.label):
            raise ValueError(f"pack: flag {header.flag} does not match label length {len(header.label)}")
        head = struct.pack(_IR_FORMAT, header.flag, 0.0, header.id, header.id2)
        head += struct.pack(f"<{len(header.label)}f", *header.label)
    else:
        if header.flag != 0:
            raise ValueError("pack: a scalar label needs flag 0")
        head = struct.pack(_IR_FORMAT, 0, float(header.label), header.id, header.id2)
    return head + bytes(payload)


def unpack(record: bytes, *, where: str = "record") -> tuple[IRHeader, bytes]:
    """Split an InsightFace record payload into (IRHeader, image bytes). ``where`` names it in errors."""
    if len(record) < _IR_SIZE:
        raise RecordIOError(f"{where}: {len(record)} bytes is shorter than the 24-byte IRHeader")
    flag, label, id_, id2 = struct.unpack_from(_IR_FORMAT, record, 0)
    if flag == 0:
        return IRHeader(0, float(label), id_, id2), bytes(record[_IR_SIZE:])
    end = _IR_SIZE + 4 * flag
    if len(record) < end:
        raise RecordIOError(f"{where}: IRHeader says {flag} label values but the record has only "
                            f"{len(record) - _IR_SIZE} bytes after the header")
    labels = struct.unpack_from(f"<{flag}f", record, _IR_SIZE)
    return IRHeader(flag, tuple(float(v) for v in labels), id_, id2), bytes(record[end:])


def _pad4(n: int) -> int:
    return (4 - n % 4) % 4


class RecordWriter:
    """Write a ``.rec`` (and, when ``idx_path`` is given, its ``.idx``) atomically.

    Both files appear only when the writer is closed without error (use it as a context manager).
    """

    def __init__(self, rec_path: str | os.PathLike, idx_path: str | os.PathLike | None = None) -> None:
        self.rec_path = Path(rec_path)
        self.idx_path = Path(idx_path) if idx_path is not None else None
        self._rec_cm = atomic_write(self.rec_path, "wb")
        self._rec: IO[bytes] = self._rec_cm.__enter__()
        self._index: list[tuple[int, int]] = []
        self._keys: set[int] = set()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._rec_cm.__exit__(exc_type, exc, tb)

    def tell(self) -> int:
        return self._rec.tell()

    def _write_part(self, cflag: int, data: bytes) -> None:
        if len(data) > _LEN_MASK:
            raise ValueError(f"record part of {len(data)} bytes exceeds the 29-bit RecordIO length field")
        self._rec.write(_MAGIC_BYTES)
        self._rec.write(struct.pack("<I", (cflag << 29) | len(data)))
        self._rec.write(data)
        self._rec.write(b"\0" * _pad4(len(data)))

    def write(self, data: bytes, key: int | None = None) -> int:
        """Append one record; returns its byte offset. ``key`` (for the .idx) defaults to a running count."""
        if key is None:
            key = len(self._index)
        if key in self._keys:
            raise ValueError(f"{self.rec_path}: duplicate record key {key}")
        offset = self._rec.tell()
        data = bytes(data)
        # Cut at every 4-byte-aligned magic word, like dmlc-core, so readers can resync on the magic.
        start, parts = 0, []
        i = data.find(_MAGIC_BYTES)
        while i >= 0:
            if i % 4 == 0:
                parts.append(data[start:i])
                start = i + 4
                i = data.find(_MAGIC_BYTES, start)
            else:
                i = data.find(_MAGIC_BYTES, i + 1)
        parts.append(data[start:])
        if len(parts) == 1:
            self._write_part(0, parts[0])
        else:
            for n, part in enumerate(parts):
                self._write_part(1 if n == 0 else (3 if n == len(parts) - 1 else 2), part)
        self._index.append((key, offset))
        self._keys.add(key)
        return offset

    def close(self) -> None:
        if self._rec.closed:
            return
        self._rec_cm.__exit__(None, None, None)
        if self.idx_path is not None:
            with atomic_write(self.idx_path, "w") as f:
                for key, offset in self._index:
                    f.write(f"{key}\t{offset}\n")


class RecordReader:
    """Random and sequential access to a ``.rec`` file, with an optional ``.idx`` for keys.

    Errors name the file and byte offset: a wrong magic word, a record running past the end of the file,
    a broken multi-part sequence, an idx offset outside the file.
    """

    def __init__(self, rec_path: str | os.PathLike, idx_path: str | os.PathLike | None = None) -> None:
        self.rec_path = Path(rec_path)
        if not self.rec_path.exists():
            raise FileNotFoundError(f"RecordIO file not found: {self.rec_path}")
        if not self.rec_path.is_file():  # a directory, FIFO or device: reading it would fail or block
            raise RecordIOError(f"{self.rec_path}: not a regular file (expected an MXNet RecordIO .rec file)")
        self.size = self.rec_path.stat().st_size
        self._f = open(self.rec_path, "rb")
        self.idx_path = Path(idx_path) if idx_path is not None else None
        self.index: dict[int, int] = {}
        self.keys: list[int] = []
        if self.idx_path is not None:
            self._load_index()

    def _load_index(self) -> None:
        assert self.idx_path is not None
        if not self.idx_path.exists():
            raise FileNotFoundError(f"RecordIO index not found: {self.idx_path} (expected beside {self.rec_path}; "
                                    "each line 'key<TAB>offset')")
        if not self.idx_path.is_file():
            raise RecordIOError(f"{self.idx_path}: not a regular file (expected a RecordIO .idx text file)")
        with open(self.idx_path, encoding="ascii", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                fields = line.split("\t")
                try:
                    if len(fields) != 2:
                        raise ValueError
                    key, offset = int(fields[0]), int(fields[1])
                except ValueError:
                    raise RecordIOError(f"{self.idx_path}:{lineno}: expected 'key<TAB>offset', got {line[:60]!r}") from None
                if not 0 <= offset < self.size:
                    raise RecordIOError(f"{self.idx_path}:{lineno}: offset {offset} is outside {self.rec_path} "
                                        f"({self.size} bytes)")
                if key in self.index:
                    raise RecordIOError(f"{self.idx_path}:{lineno}: duplicate key {key}")
                self.index[key] = offset
                self.keys.append(key)
        if not self.keys:
            raise RecordIOError(f"{self.idx_path}: index is empty")

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> RecordReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _read_part(self, offset: int) -> tuple[int, bytes, int]:
        """Read the part at ``offset``; returns (cflag, data, offset of the next part)."""
        self._f.seek(offset)
        head = self._f.read(8)
        if len(head) == 0:
            raise EOFError
        if len(head) < 8:
            raise RecordIOError(f"{self.rec_path}: truncated record header at byte {offset} "
                                f"({len(head)} of 8 bytes before end of file)")
        magic, lrec = struct.unpack("<II", head)
        if magic != MAGIC:
            raise RecordIOError(f"{self.rec_path}: bad magic 0x{magic:08x} at byte {offset} "
                                f"(expected 0x{MAGIC:08x}; not an MXNet RecordIO file, or a wrong idx offset)")
        cflag, length = lrec >> 29, lrec & _LEN_MASK
        if cflag > 3:
            raise RecordIOError(f"{self.rec_path}: invalid continuation flag {cflag} at byte {offset}")
        if offset + 8 + length > self.size:
            # checked before reading: read(length) would first allocate up to 512 MB for a corrupt length
            raise RecordIOError(f"{self.rec_path}: truncated record at byte {offset}: header says {length} bytes, "
                                f"only {max(self.size - offset - 8, 0)} left in the file")
        data = self._f.read(length)
        if len(data) < length:
            raise RecordIOError(f"{self.rec_path}: truncated record at byte {offset}: header says {length} bytes, "
                                f"only {len(data)} left in the file")
        return cflag, data, offset + 8 + length + _pad4(length)

    def read_at(self, offset: int) -> tuple[bytes, int]:
        """Read the whole (possibly multi-part) record at ``offset``; returns (payload, next offset)."""
        cflag, data, nxt = self._read_part(offset)
        if cflag == 0:
            return data, nxt
        if cflag != 1:
            raise RecordIOError(f"{self.rec_path}: record at byte {offset} starts with continuation flag {cflag} "
                                "(expected 0 or 1)")
        pieces = [data]
        while True:
            try:
                part_offset = nxt
                cflag, data, nxt = self._read_part(part_offset)
            except EOFError:
                raise RecordIOError(f"{self.rec_path}: multi-part record at byte {offset} is cut off by the end "
                                    "of the file") from None
            if cflag not in (2, 3):
                raise RecordIOError(f"{self.rec_path}: multi-part record at byte {offset}: part at byte "
                                    f"{part_offset} has flag {cflag} (expected 2 or 3)")
            pieces.append(data)
            if cflag == 3:
                return _MAGIC_BYTES.join(pieces), nxt

    def read_idx(self, key: int) -> bytes:
        """Payload of the record with ``key`` (needs the .idx)."""
        if key not in self.index:
            where = self.idx_path if self.idx_path is not None else "(no .idx given)"
            raise KeyError(f"record key {key} not in {where}")
        return self.read_at(self.index[key])[0]

    def __iter__(self) -> Iterator[bytes]:
        """All records in file order (ignores the .idx)."""
        offset = 0
        while offset < self.size:
            data, offset = self.read_at(offset)
            yield data


def insightface_image_keys(reader: RecordReader) -> list[int]:
    """Keys of the image records of an InsightFace ``train.rec``.

    With the InsightFace header record 0 (flag > 0, label ``(a, b)``) the images are keys ``1 .. a-1``;
    without it every indexed record is an image.
    """
    if 0 in reader.index:
        header, _ = unpack(reader.read_idx(0), where=f"{reader.rec_path} record 0")
        if header.flag > 0 and isinstance(header.label, tuple):
            first = header.label[0]
            # Checked before range(): a corrupt header (NaN, 1e30) must not become a huge key list.
            if not (math.isfinite(first) and first == int(first) and 1 <= first <= len(reader.index)):
                raise RecordIOError(f"{reader.rec_path}: header record 0 says images are keys 1..{first} - 1, "
                                    f"which does not fit the {len(reader.index)} records of {reader.idx_path}")
            end = int(first)
            keys = list(range(1, end))
            missing = [k for k in keys if k not in reader.index]
            if missing:
                raise RecordIOError(f"{reader.rec_path}: header record says images are keys 1..{end - 1}, but "
                                    f"{reader.idx_path} lacks {len(missing)} of them (first: {missing[0]})")
            return keys
    return list(reader.keys)


def write_insightface_rec(rec_path: str | os.PathLike, idx_path: str | os.PathLike,
                          images: Sequence[tuple[bytes, int]]) -> None:
    """Write (jpeg bytes, label) pairs as an InsightFace-style set: header record 0, image records
    1..n, then one identity record per label giving its image key range, as InsightFace's tools do."""
    by_label: dict[int, list[int]] = {}
    for key, (_, label) in enumerate(images, 1):
        by_label.setdefault(int(label), []).append(key)
    n = len(images)
    first_id = n + 1
    end_id = first_id + len(by_label)
    with RecordWriter(rec_path, idx_path) as w:
        w.write(pack(None, b"", label=(float(first_id), float(end_id))), key=0)
        for key, (jpeg, label) in enumerate(images, 1):
            w.write(pack(None, jpeg, label=float(label)), key=key)
        for i, label in enumerate(sorted(by_label)):
            keys = by_label[label]
            w.write(pack(None, b"", label=(float(min(keys)), float(max(keys) + 1))), key=first_id + i)

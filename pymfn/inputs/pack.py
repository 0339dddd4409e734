"""Pack samples into one mmap-able file, and read such files back.

Why a packed file: a folder of 12,000 per-image ``.bin`` files (the msame / image2bin layout) costs a
syscall round-trip and a host copy per sample. Packed, the samples sit back to back after a
page-sized header, so the native loader (``pymfn._core.PackedDataset``) maps the file once and copies
each batch out of the mapping with one memcpy (guarded against the file shrinking under it; see
docs/inputs.md): no syscall per sample.

The layout is defined in ``csrc/core/packed_format.h`` (little-endian)::

    0    8   magic b"PYMFNPK\\0"
    8    4   uint32 version (1)
    12   4   uint32 header_bytes (4096: samples start page-aligned)
    16   4   uint32 dtype code (0 float32, 1 float16, 2 int8, 3 int32, 4 uint8; = aclDataType)
    20   4   uint32 ndim (1..8)
    24   8   uint64 count
    32   8   uint64 sample_bytes (= prod(dims) * itemsize)
    40   64  int64 dims[8] (unused entries 0)
    104  ... zero up to header_bytes; then count * sample_bytes of samples. Nothing after.

``read_packed`` applies the same checks as the C++ reader, so a file this module accepts, the
native loader accepts too (tests/test_pack.py checks both against the same broken files).

CLI: ``python -m pymfn pack --from DIR --out FILE [--dtype float32] [--shape 112,112,3]``.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
import stat
import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from pymfn.files.atomic import FILE_MODE, Transaction, hold, json_bytes, probe_writable, refuse_overlap
from pymfn.errors import CommandError
from pymfn.files.outputs import check_output_path
from pymfn.files.readfile import InputFileError, file_kind, read_regular_file

MAGIC = b"PYMFNPK\0"
VERSION = 1
HEADER_BYTES = 4096
MAX_DIMS = 8
_HEADER = struct.Struct("<8sIIIIQQ8q")  # 104 bytes, mirrors pymfn::PackedHeader
assert _HEADER.size == 104

# dtype name -> code; the codes equal AscendCL's aclDataType (and pymfn::DType).
DTYPE_CODES: dict[str, int] = {"float32": 0, "float16": 1, "int8": 2, "int32": 3, "uint8": 4}
_CODE_DTYPES = {code: name for name, code in DTYPE_CODES.items()}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


class PackedFormatError(ValueError):
    """A packed file whose header is malformed or whose length disagrees with the header.

    The C++ loader raises ``pymfn._core.FormatError`` for the same conditions; both are ValueErrors.
    """

    def __init__(self, path: str | os.PathLike, message: str) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: {message}")


@dataclass(frozen=True)
class PackedHeader:
    """The decoded, validated header of a packed file."""

    version: int
    header_bytes: int
    dtype: str
    sample_shape: tuple[int, ...]
    count: int
    sample_bytes: int

    def encode(self) -> bytes:
        dims = list(self.sample_shape) + [0] * (MAX_DIMS - len(self.sample_shape))
        raw = _HEADER.pack(MAGIC, self.version, self.header_bytes, DTYPE_CODES[self.dtype],
                           len(self.sample_shape), self.count, self.sample_bytes, *dims)
        return raw + b"\0" * (self.header_bytes - len(raw))


def _check_dtype(dtype: str | np.dtype) -> np.dtype:
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if name not in DTYPE_CODES:
        raise ValueError(f"dtype {name!r} cannot be packed (expected one of {', '.join(DTYPE_CODES)})")
    return np.dtype(name).newbyteorder("<")


def _check_shape(sample_shape: Iterable[int]) -> tuple[int, ...]:
    shape = tuple(int(d) for d in sample_shape)
    if not 1 <= len(shape) <= MAX_DIMS:
        raise ValueError(f"sample shape {shape} must have 1..{MAX_DIMS} dimensions")
    if any(d <= 0 for d in shape):
        raise ValueError(f"sample shape {shape} has a non-positive dimension")
    return shape


def parse_header(raw: bytes, file_size: int, path: str | os.PathLike) -> PackedHeader:
    """Decode and validate a header; the same checks, in the same order, as validate_packed_header()."""
    if len(raw) < _HEADER.size:
        raise PackedFormatError(path, f"file is {file_size} bytes, too short for the {_HEADER.size}-byte packed header")
    magic, version, header_bytes, code, ndim, count, sample_bytes, *dims = _HEADER.unpack_from(raw)
    if magic != MAGIC:
        raise PackedFormatError(path, 'bad magic: not a pymfn packed file (expected "PYMFNPK\\0" at offset 0)')
    if version != VERSION:
        raise PackedFormatError(path, f"unsupported packed format version {version} (this build reads version {VERSION})")
    if header_bytes < _HEADER.size or header_bytes % HEADER_BYTES:
        raise PackedFormatError(path, f"header_bytes {header_bytes} is invalid (expected a multiple of {HEADER_BYTES})")
    if code not in _CODE_DTYPES:
        raise PackedFormatError(path, f"unknown dtype code {code} (expected 0 float32, 1 float16, 2 int8, 3 int32 or 4 uint8)")
    if not 1 <= ndim <= MAX_DIMS:
        raise PackedFormatError(path, f"ndim {ndim} is out of range 1..{MAX_DIMS}")
    for i, d in enumerate(dims):
        if i < ndim and d <= 0:
            raise PackedFormatError(path, f"dims[{i}] = {d} is not positive")
        if i >= ndim and d != 0:
            raise PackedFormatError(path, f"dims[{i}] = {d} past ndim {ndim} must be 0")
    dtype = _CODE_DTYPES[code]
    expect = math.prod(dims[:ndim]) * np.dtype(dtype).itemsize
    if sample_bytes != expect:
        raise PackedFormatError(path, f"header sample_bytes {sample_bytes} disagrees with dims x {dtype} = {expect} bytes")
    want = header_bytes + count * sample_bytes
    if file_size != want:
        why = "the file is truncated" if file_size < want else "trailing bytes after the last sample"
        raise PackedFormatError(path, f"file is {file_size} bytes but the header describes {want} bytes "
                                      f"({header_bytes} header + {count} samples x {sample_bytes}): {why}")
    return PackedHeader(version, header_bytes, dtype, tuple(dims[:ndim]), count, sample_bytes)


def _open_nonblocking(path: Path) -> tuple[int, int]:
    """``(descriptor, st_mode)`` of ``path`` opened read-only with O_NONBLOCK, which makes opening a FIFO
    return at once instead of waiting for a writer; the mode comes from fstat on the open descriptor, so
    the check and the read concern the same file. Raises OSError naming the path."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise type(exc)(exc.errno, f"{path}: cannot open ({exc.strerror or exc}); expected a packed file") from None
    try:
        return fd, os.fstat(fd).st_mode
    except BaseException:
        os.close(fd)
        raise


def read_header(path: str | os.PathLike) -> PackedHeader:
    """Read and validate the header of a packed file.

    Raises PackedFormatError for a malformed header and for anything that is not a regular file (a
    directory, or a FIFO that would block a plain ``open().read()`` forever); OSError (FileNotFoundError,
    PermissionError) naming the path when it cannot be opened.
    """
    path = Path(path)
    fd, mode = _open_nonblocking(path)
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise PackedFormatError(path, f"is a {file_kind(mode)}, not a regular file (expected a packed sample file)")
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        return parse_header(f.read(_HEADER.size), size, path)


def is_packed(path: str | os.PathLike) -> bool:
    """True if ``path`` is a regular file starting with the packed magic (header not validated).

    Never blocks: a FIFO, a directory or a device is simply not a packed file."""
    try:
        fd, mode = _open_nonblocking(Path(path))
    except OSError:
        return False
    if not stat.S_ISREG(mode):
        os.close(fd)
        return False
    with os.fdopen(fd, "rb") as f:
        return f.read(len(MAGIC)) == MAGIC


def read_packed(path: str | os.PathLike) -> np.memmap:
    """A read-only memmap ``[count, *sample_shape]`` of a validated packed file (no data is read)."""
    header = read_header(path)
    if header.count == 0:
        raise PackedFormatError(path, "packed file contains no samples")
    return np.memmap(path, dtype=np.dtype(header.dtype).newbyteorder("<"), mode="r", offset=header.header_bytes,
                     shape=(header.count, *header.sample_shape))


# ---------------------------------------------------------------- pack sets: a pack and its sidecars
#
# image2bin --packed writes FILE plus FILE.issame.npy (pair labels), FILE.index.txt (sample -> source)
# and FILE.image2bin.json (how the samples were made). Labels that outlive their pack are wrong labels:
# the record (FILE.image2bin.json) binds the set together. It names the pack by size, header hash and
# CRC-32 of the samples (plus the inode and mtime, a shortcut that spares re-reading a 1.8 GB pack on
# every run), and each sidecar by SHA-256. The set is one pymfn.files.atomic.Transaction: the pack, then the
# sidecars are renamed into place, the old set's leftovers deleted, and the record renamed last; a reader
# accepts labels only when the record matches both the pack and the labels. A process killed during
# the commit leaves a journal that the next writer into the same target completes; until then the old
# record stands and the reader rejects the half-renamed set with an error saying what happened.

ISSAME_SUFFIX = ".issame.npy"
INDEX_SUFFIX = ".index.txt"
RECORD_SUFFIX = ".image2bin.json"
SIDECAR_SUFFIXES = (ISSAME_SUFFIX, INDEX_SUFFIX, RECORD_SUFFIX)
MAX_RECORD_BYTES = 16 << 20


class PackLabelsError(ValueError):
    """Sidecar labels that cannot be trusted to belong to their pack; the message says why and what to do."""


def sidecar_path(pack_path: str | os.PathLike, suffix: str) -> Path:
    p = Path(pack_path)
    return p.with_name(p.name + suffix)


def set_paths(pack_path: str | os.PathLike) -> list[Path]:
    """The pack and every sidecar name that belongs to it (for overwrite checks and stale-temp cleanup)."""
    return [Path(pack_path)] + [sidecar_path(pack_path, s) for s in SIDECAR_SUFFIXES]


@dataclass(frozen=True)
class PackIdentity:
    """What a record knows about the pack it belongs to."""

    size: int
    header_sha256: str
    samples_crc32: int
    dev: int
    ino: int
    mtime_ns: int

    def to_json(self) -> dict:
        return {"bytes": self.size, "header_sha256": self.header_sha256, "samples_crc32": self.samples_crc32,
                "dev": self.dev, "ino": self.ino, "mtime_ns": self.mtime_ns}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _set_members(target: Path, sidecars: Mapping[str, bytes], record: Mapping | None) -> tuple[dict[Path, bytes], bool]:
    """The sidecar files of a new set (path -> content) and whether it has a record."""
    unknown = set(sidecars) - {ISSAME_SUFFIX, INDEX_SUFFIX}
    if unknown:
        raise ValueError(f"pack set: unknown sidecar(s) {sorted(unknown)}")
    return {sidecar_path(target, suffix): data for suffix, data in sidecars.items()}, bool(sidecars) or record is not None


def stage_pack_set(tx: Transaction, target: Path, identity: PackIdentity, sidecars: Mapping[str, bytes] | None = None,
                   record: Mapping | None = None) -> None:
    """Put a finished pack's sidecars and record into ``tx`` (whose temp for ``target`` holds the pack).

    ``sidecars`` maps ISSAME_SUFFIX / INDEX_SUFFIX to file contents; ``record`` is extra content for the
    record (how the samples were made). With neither, ``target`` becomes a plain pack and every sidecar of
    a previous set is deleted. The record is the set's binding record: committed last, after the old
    set's leftovers are gone (see the comment above).
    """
    sidecars = dict(sidecars or {})
    files, has_record = _set_members(target, sidecars, record)
    for path, data in files.items():
        tx.write_bytes(path, data)
    for suffix in (ISSAME_SUFFIX, INDEX_SUFFIX):
        if suffix not in sidecars:
            tx.discard(sidecar_path(target, suffix))
    rec = sidecar_path(target, RECORD_SUFFIX)
    if has_record:
        doc = dict(record or {})
        doc["pack"] = identity.to_json()
        doc["sidecars"] = {suffix: _sha256(data) for suffix, data in sidecars.items()}
        tx.write_bytes(rec, json_bytes(doc), last=True)
    else:
        tx.discard(rec)


def _identity_of_open_file(fd: int, header: bytes, crc: int) -> PackIdentity:
    st = os.fstat(fd)
    return PackIdentity(st.st_size, _sha256(header), crc, st.st_dev, st.st_ino, st.st_mtime_ns)


def _pack_matches(path: Path, want: Mapping) -> bool:
    """True when ``path`` is the pack the record describes (same file, or a byte-identical copy)."""
    try:
        st = path.stat()
        size, crc, head = int(want["bytes"]), int(want["samples_crc32"]), str(want["header_sha256"])
        if st.st_size != size:
            return False
        if (st.st_dev, st.st_ino, st.st_mtime_ns) == (want.get("dev"), want.get("ino"), want.get("mtime_ns")):
            return True  # the very file the writer renamed into place, untouched since
        header = read_header(path)
        with open(path, "rb") as f:
            if _sha256(f.read(header.header_bytes)) != head:
                return False
            value = 0
            while chunk := f.read(1 << 24):
                value = zlib.crc32(chunk, value)
        return value == crc
    except (OSError, KeyError, TypeError, ValueError):
        return False


def read_pack_issame(pack_path: str | os.PathLike, pairs: int | None = None) -> np.ndarray:
    """The pair labels stored beside a packed file, only if its record proves they belong to it.

    Raises FileNotFoundError when there are no labels, PackLabelsError when they cannot be trusted.
    """
    from pymfn.inputs.pairs import load_issame

    pack_path = Path(pack_path)
    labels = sidecar_path(pack_path, ISSAME_SUFFIX)
    record_path = sidecar_path(pack_path, RECORD_SUFFIX)
    advice = (f"rerun image2bin to write the pack and its labels together, or pass --issame {labels} "
              "if you know they belong to this pack")
    if not labels.exists():
        if record_path.exists() and ISSAME_SUFFIX in _record_sidecars(record_path):
            raise PackLabelsError(f"{labels}: missing although {record_path.name} lists it (a write was "
                                  f"interrupted?); {advice}")
        raise FileNotFoundError(f"{labels}: no pair labels beside {pack_path.name} "
                                "(image2bin writes them only when the source is an lfw.bin)")
    if not record_path.exists():
        raise PackLabelsError(f"{labels}: no {record_path.name} binding these labels to {pack_path.name} (the pack "
                              f"was replaced or a write was interrupted, or an older pymfn wrote them); {advice}")
    record = _read_record(record_path)
    want = record.get("sidecars", {}).get(ISSAME_SUFFIX) if isinstance(record.get("sidecars"), dict) else None
    if want is None or not isinstance(record.get("pack"), dict):
        raise PackLabelsError(f"{labels}: {record_path.name} does not list these labels (left over from an earlier "
                              f"pack, or written by an older pymfn); {advice}")
    raw = read_regular_file(labels, "a pair label file", max_bytes=MAX_RECORD_BYTES << 6)
    if _sha256(raw) != want:
        raise PackLabelsError(f"{labels}: not the labels {record_path.name} was written with (changed since, or a "
                              f"write was interrupted); {advice}")
    if not _pack_matches(pack_path, record["pack"]):
        raise PackLabelsError(f"{labels}: written for a different {pack_path.name} (the pack was replaced or "
                              f"changed after the labels were written, or a write was interrupted); {advice}")
    return load_issame(labels, pairs)


def _read_record(path: Path) -> dict:
    try:
        doc = json.loads(read_regular_file(path, "a pack record", max_bytes=MAX_RECORD_BYTES))
    except (ValueError, UnicodeDecodeError) as exc:
        raise PackLabelsError(f"{path}: not a readable pack record ({exc})") from None
    if not isinstance(doc, dict):
        raise PackLabelsError(f"{path}: not a pack record (expected a JSON object)")
    return doc


def _record_sidecars(path: Path) -> dict:
    try:
        doc = _read_record(path)
    except (PackLabelsError, OSError):
        return {}
    side = doc.get("sidecars")
    return side if isinstance(side, dict) else {}


class PackedWriter:
    """Writes a packed file sample by sample; use it as a context manager.

    Data goes to a temp file beside ``path`` (named after this process, so a later run can remove it if
    this one is killed) that is renamed into place only when the block exits cleanly, so a crash or an
    error never leaves a half-written packed file. Appended samples must match ``dtype`` exactly (no
    silent casts: a float64 array is an error, not a conversion) and ``sample_shape``. When ``count`` is
    given, appending more, or closing with fewer, is an error.

    ``sidecars`` / ``record`` are committed with the pack as one set (``stage_pack_set``); without them
    the new pack replaces any previous set whole, so no old labels stay beside it. ``extra`` files (path ->
    content, e.g. a manifest) are committed in the same transaction.
    """

    def __init__(self, path: str | os.PathLike, dtype: str, sample_shape: Sequence[int], count: int | None = None,
                 *, sidecars: Mapping[str, bytes] | None = None, record: Mapping | None = None,
                 extra: Mapping[str | os.PathLike, bytes] | None = None) -> None:
        self.path = Path(path)
        self.dtype = _check_dtype(dtype)
        self.sample_shape = _check_shape(sample_shape)
        self.sample_bytes = math.prod(self.sample_shape) * self.dtype.itemsize
        if count is not None and count < 1:
            raise ValueError(f"count must be positive when given, got {count}")
        self.expected_count = count
        self.count = 0
        self.sidecars = dict(sidecars or {})
        self.record = None if record is None else dict(record)
        self.extra = {Path(p): data for p, data in (extra or {}).items()}
        self._file = None
        self._tx: Transaction | None = None
        self._crc = 0

    def __enter__(self) -> PackedWriter:
        tx = Transaction(self.path, also=set_paths(self.path)[1:] + list(self.extra))
        tx.__enter__()
        try:
            self._file = open(tx.file(self.path), "r+b")
            self._file.write(b"\0" * HEADER_BYTES)  # placeholder until the count is known
        except BaseException:
            tx.__exit__(*sys.exc_info())
            raise
        self._tx = tx
        return self

    def append(self, samples: np.ndarray) -> None:
        """Append one sample ``[*sample_shape]`` or a stack of them ``[k, *sample_shape]``."""
        if self._file is None:
            raise RuntimeError("PackedWriter.append() outside a `with PackedWriter(...)` block")
        arr = np.asarray(samples)
        if arr.dtype != self.dtype:
            raise TypeError(f"{self.path}: samples are {arr.dtype} but the file holds {self.dtype.name}; "
                            f"convert explicitly (e.g. .astype('{self.dtype.name}')) if that is intended")
        if arr.shape == self.sample_shape:
            arr = arr[None]
        elif arr.shape[1:] != self.sample_shape:
            raise ValueError(f"{self.path}: samples of shape {arr.shape} do not match the sample shape "
                             f"{self.sample_shape} (expected [k, *{self.sample_shape}] or one sample)")
        if self.expected_count is not None and self.count + len(arr) > self.expected_count:
            raise ValueError(f"{self.path}: appending {len(arr)} samples would exceed the declared count "
                             f"{self.expected_count} (already {self.count})")
        data = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
        self._crc = zlib.crc32(data, self._crc)
        self._file.write(data.data)
        self.count += len(arr)

    def __exit__(self, exc_type, exc, tb) -> bool:
        f, self._file = self._file, None
        tx, self._tx = self._tx, None
        if tx is None:
            return False
        try:
            if exc_type is None:
                self._finish(f, tx)
        except BaseException:
            if f is not None and not f.closed:
                f.close()
            tx.__exit__(*sys.exc_info())  # removes the temps; raises a write failure naming the output
            raise
        if f is not None and not f.closed:
            f.close()
        tx.__exit__(exc_type, exc, tb)  # commits the set (or, after an error, removes the temps)
        return False

    def _finish(self, f: BinaryIO, tx: Transaction) -> None:
        if self.count == 0:
            raise ValueError(f"{self.path}: no samples were appended; refusing to write an empty packed file")
        if self.expected_count is not None and self.count != self.expected_count:
            raise ValueError(f"{self.path}: {self.count} samples appended but {self.expected_count} were declared")
        header = PackedHeader(VERSION, HEADER_BYTES, self.dtype.name, self.sample_shape, self.count,
                              self.sample_bytes).encode()
        f.seek(0)
        f.write(header)
        f.flush()
        os.fsync(f.fileno())
        # The temp file is created 0600; packed data sets are meant to be shared (e.g. read by another
        # user's benchmark run), so give the result the usual umask-based mode.
        os.fchmod(f.fileno(), FILE_MODE)
        identity = _identity_of_open_file(f.fileno(), header, self._crc)
        f.close()
        for path, data in self.extra.items():
            tx.write_bytes(path, data)
        stage_pack_set(tx, self.path, identity, self.sidecars, self.record)


# ---------------------------------------------------------------- listing folders (same order as C++)

_DIGITS = re.compile(rb"[0-9]+")


def natural_key(name: str) -> tuple:
    """Sort key equal to the C++ natural_less(): digit runs compare by value, other bytes by value,
    ties (``01`` vs ``1``) broken by plain byte order."""
    raw = os.fsencode(name)
    items: list[tuple[int, int, bytes]] = []
    pos = 0
    for m in _DIGITS.finditer(raw):
        items.extend((c, 0, b"") for c in raw[pos:m.start()])
        run = m.group().lstrip(b"0") or b"0"
        items.append((0x30, len(run), run))  # any digit compares like '0' against a non-digit byte
        pos = m.end()
    items.extend((c, 0, b"") for c in raw[pos:])
    return (tuple(items), raw)


def sort_names(names: Iterable[str], order: str = "natural") -> list[str]:
    """Sort file names like FolderDataset: 'natural' (2.bin before 10.bin) or 'lexicographic' (msame)."""
    if order == "natural":
        return sorted(names, key=natural_key)
    if order in ("lexicographic", "lex"):
        return sorted(names, key=os.fsencode)
    raise ValueError(f"unknown order {order!r} (expected 'natural' or 'lexicographic')")


def _require_dir(src: Path) -> None:
    if not src.exists():
        raise FileNotFoundError(f"{src}: no such directory")
    if not src.is_dir():
        raise NotADirectoryError(f"{src}: not a directory (expected a folder of .bin files or images)")


def require_regular_file(path: Path, what: str) -> None:
    """Fail on anything a listing picked up that is not a regular file (following symlinks).

    A FIFO named ``a.jpg`` would block the reader forever and a device would never end; the read itself
    (``read_regular_file``) checks again on the open descriptor, this check names the problem early.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: dangling symbolic link (its target does not exist)") from None
    if not stat.S_ISREG(st.st_mode):
        raise InputFileError(path, f"is a {file_kind(st.st_mode)}, not a regular file (expected {what})")


def list_bins(src_dir: str | os.PathLike, order: str = "natural") -> list[Path]:
    """The *.bin sample files of a folder in dataset order, with FolderDataset's rules: dot-files are
    skipped; a *.bin entry that is not a regular file (directory, FIFO, dangling symlink) is an error."""
    src = Path(src_dir)
    _require_dir(src)
    names = [e.name for e in os.scandir(src) if not e.name.startswith(".") and e.name.endswith(".bin")]
    out = []
    for name in sort_names(names, order):
        path = src / name
        require_regular_file(path, "a raw sample file")
        out.append(path)
    return out


def list_images(src_dir: str | os.PathLike, order: str = "natural") -> list[Path]:
    """Image files (jpg/png/bmp) under a folder, recursively (hidden entries skipped), ordered by relative
    path. An entry with an image suffix that is not a regular file is an error, never skipped or read."""
    src = Path(src_dir)
    _require_dir(src)
    rel = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames + dirnames:
            if name.startswith(".") or Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            path = Path(dirpath, name)
            require_regular_file(path, "an image file")
            rel.append(path.relative_to(src).as_posix())
    return [src / r for r in sort_names(rel, order)]


# Any encoded image of a face crop is far below this; it bounds what one file can make us read.
MAX_IMAGE_FILE_BYTES = 64 << 20


def load_image(path: Path, sample_shape: tuple[int, ...], dtype: np.dtype, channels: str) -> np.ndarray:
    """Decode one image into a sample like the reference image2bin: HWC, RGB (or BGR), then either raw
    uint8 or float32 ``(x - 127.5) * 0.0078125``. A size mismatch is an error, never a silent resize, and
    it is found from the header before any pixel is decoded (a 20000x20000 JPEG costs nothing)."""
    from PIL import Image

    from pymfn.inputs.lfw_bin import quiet_bomb_warnings

    if len(sample_shape) != 3 or sample_shape[2] not in (1, 3):
        raise ValueError(f"image samples need a shape H,W,C with C = 1 or 3, got {sample_shape}")
    if dtype not in (np.uint8, np.float32):
        raise ValueError(f"images can be packed as float32 (normalised) or uint8 (raw), not {dtype.name}")
    raw = read_regular_file(path, "an image file", max_bytes=MAX_IMAGE_FILE_BYTES)
    height, width, chans = sample_shape
    try:
        with quiet_bomb_warnings(), Image.open(io.BytesIO(raw)) as im:
            if im.size != (width, height):
                raise InputFileError(path, f"image is {im.size[0]}x{im.size[1]} (WxH) but the sample shape is "
                                           f"{sample_shape} (HWC); align/resize images first")
            im = im.convert("L" if chans == 1 else "RGB")
            arr = np.asarray(im, dtype=np.uint8)
    except InputFileError:
        raise
    except Image.DecompressionBombError as exc:
        raise InputFileError(path, f"header claims a far larger image than {width}x{height} ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - Pillow fails on corrupt data in many ways; report them all as one
        raise InputFileError(path, f"cannot decode the image ({type(exc).__name__}: {exc})") from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape != sample_shape:
        raise InputFileError(path, f"decoded to {arr.shape}, expected {sample_shape}")
    if channels == "bgr" and arr.shape[2] == 3:
        arr = arr[:, :, ::-1]
    if dtype == np.uint8:
        return np.ascontiguousarray(arr)
    return ((arr.astype(np.float32) - 127.5) * 0.0078125).astype(np.float32)


def _labels_to_carry(src: Path, files: list[Path], order: str) -> tuple[dict[str, bytes], dict | None, str | None]:
    """Sidecars of an image2bin folder that stay true for the pack: its labels and record, when the pack
    keeps the folder's sample order ({i}.bin for i = 0..N-1 in natural order). Returns (sidecars, record,
    note): the note says why labels present in the folder were not carried."""
    from pymfn.inputs.pairs import load_issame

    labels = src / ISSAME_SUFFIX
    if not labels.exists():
        return {}, None, None
    numbered = [f.name for f in files] == [f"{i}.bin" for i in range(len(files))]
    if order != "natural" or not numbered:
        why = "--order lexicographic reorders the samples" if order != "natural" else "the files are not 0.bin..N-1.bin"
        return {}, None, f"not carrying {labels} over: {why}, so its pair order would not match the pack"
    if len(files) % 2:
        raise ValueError(f"{labels}: pair labels beside an odd number of samples ({len(files)})")
    issame = load_issame(labels, pairs=len(files) // 2)
    buf = io.BytesIO()
    np.save(buf, issame)
    record: dict = {}
    meta = src / RECORD_SUFFIX
    if meta.exists():
        with contextlib.suppress(ValueError, OSError):
            made = json.loads(read_regular_file(meta, "an image2bin record", max_bytes=MAX_RECORD_BYTES))
            if isinstance(made, dict):
                record = {k: v for k, v in made.items() if k not in ("pack", "sidecars")}
    record.update({"files": "packed", "packed_from": str(src.resolve())})
    sidecars = {ISSAME_SUFFIX: buf.getvalue()}
    index = src / INDEX_SUFFIX
    if index.exists():
        sidecars[INDEX_SUFFIX] = read_regular_file(index, "an image2bin index", max_bytes=MAX_RECORD_BYTES << 4)
    return sidecars, record, None


def pack_folder(src_dir: str | os.PathLike, out: str | os.PathLike, dtype: str = "float32",
                sample_shape: Sequence[int] = (112, 112, 3), order: str = "natural", kind: str = "auto",
                channels: str = "rgb", manifest: str | os.PathLike | None = None, progress: bool = True,
                carry_labels: bool = True) -> Path:
    """Pack a folder of per-sample .bin files, or of images, into one packed file at ``out``.

    kind: 'bins' (every *.bin must be exactly prod(sample_shape) * itemsize bytes), 'images' (decoded
    with load_image) or 'auto' (bins if the folder has any *.bin file, else images). The optional
    manifest lists the source of each sample, one relative path per line, in packed order.

    An existing ``out`` is replaced with its whole set: the sidecars of a previous image2bin pack go
    too. When ``src_dir`` is an image2bin folder whose labels stay valid in the pack (see
    ``_labels_to_carry``), they come along (``carry_labels``).
    """
    from tqdm import tqdm

    src = Path(src_dir)
    out = Path(out)
    np_dtype = _check_dtype(dtype)
    shape = _check_shape(sample_shape)
    if channels not in ("rgb", "bgr"):
        raise ValueError(f"channels must be 'rgb' or 'bgr', got {channels!r}")
    if kind == "auto":
        _require_dir(src)
        kind = "bins" if any(not n.startswith(".") and n.endswith(".bin") for n in os.listdir(src)) else "images"
    if kind == "bins":
        files = list_bins(src, order)
    elif kind == "images":
        files = list_images(src, order)
    else:
        raise ValueError(f"kind must be 'auto', 'bins' or 'images', got {kind!r}")
    if not files:
        raise ValueError(f"{src}: contains no {'.bin files' if kind == 'bins' else 'images (jpg/png/bmp)'}")
    sidecars, record, note = _labels_to_carry(src, files, order) if kind == "bins" and carry_labels else ({}, None, None)
    if note:
        print(f"pymfn pack: note: {note}", file=sys.stderr)
    extra = {}
    if manifest is not None:
        extra[Path(manifest)] = "".join(p.relative_to(src).as_posix() + "\n" for p in files).encode("utf-8")

    sample_what = f"a {np_dtype.name} {shape} sample"
    with PackedWriter(out, np_dtype.name, shape, count=len(files), sidecars=sidecars, record=record,
                      extra=extra) as writer:
        # disable=None is tqdm's "only on a terminal" (as train/data decide): in a log or a pipe a bar
        # would stand before the one-line error
        for path in tqdm(files, desc=f"pack {src.name}", unit="file", disable=None if progress else True):
            if kind == "bins":
                raw = read_regular_file(path, sample_what, exact_bytes=writer.sample_bytes)
                writer.append(np.frombuffer(raw, dtype=np_dtype).reshape(shape))
            else:
                writer.append(load_image(path, shape, np_dtype, channels))
    return out


# ---------------------------------------------------------------- overwrite rule (pack and image2bin)

def check_target(target: str | os.PathLike, force: bool, option: str, *, directory: bool = False) -> Path:
    """The one overwrite rule of ``pack`` and ``image2bin``: an existing output (or any file of its set) is
    replaced only with ``--force``; a file is never replaced by a folder or the other way round.

    Called before any work, so a refusal costs nothing.
    """
    target = Path(target)
    if directory:
        if target.exists() and not target.is_dir():
            raise CommandError(f"{option} {target}: exists and is not a folder; choose another output")
        if target.exists() and not force:
            raise CommandError(f"{option} {target}: already exists (use --force to replace it)")
        parent = target.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise CommandError(f"{option} {target}: {parent} is not a folder")
        try:  # the output folder is built under a temp name in the same place: try that once, now
            probe_writable(parent, target.name)
        except OSError as exc:
            raise CommandError(f"{option} {target}: cannot create a folder in {parent} ({exc.strerror or exc})") from None
        return target
    check_output_path(target, option)
    existing = [p for p in set_paths(target) if p.exists() or p.is_symlink()]
    if existing and not force:
        names = ", ".join(p.name for p in existing)
        raise CommandError(f"{option} {target}: already exists ({names}; use --force to replace it)")
    return target


def parse_shape(text: str) -> tuple[int, ...]:
    """A sample shape written ``112,112,3`` or ``112x112x3``; ValueError saying what is wrong."""
    return _check_shape(int(t) for t in text.replace("x", ",").split(",") if t.strip())


def pack_checked(src: str | os.PathLike, out: str | os.PathLike, *, dtype: str = "float32",
                 sample_shape: Sequence[int] = (112, 112, 3), order: str = "natural", kind: str = "auto",
                 channels: str = "rgb", manifest: str | os.PathLike | None = None, progress: bool = True,
                 force: bool = False) -> Path:
    """:func:`pack_folder` with the checks of ``pymfn pack``: outputs are not the source, an existing ``out``
    is replaced only with ``force``, one writer per output at a time."""
    src, out = Path(src), Path(out)
    manifest = Path(manifest) if manifest is not None else None
    members = set_paths(out)
    labels = {p: f"--out {out}" + ("" if p == out else f" ({p.name})") for p in members}
    outputs = [(labels[p], p) for p in members]
    if manifest is not None:
        labels[manifest] = f"--manifest {manifest}"
        outputs.append((labels[manifest], manifest))
    refuse_overlap(outputs, [(f"--from {src}", src)])
    # the lock first: a second `pack` into the same --out is refused now, not replaced after the work
    with hold([p for _, p in outputs], labels=labels):
        check_target(out, force, "--out")
        if manifest is not None:
            check_output_path(manifest, "--manifest")
        return pack_folder(src, out, dtype=dtype, sample_shape=sample_shape, order=order, kind=kind,
                           channels=channels, manifest=manifest, progress=progress)

"""Pack samples into one mmap-able file, and read such files back.

Why a packed file: a folder of 12,000 per-image ``.bin`` files (the msame / image2bin layout) costs a
syscall round-trip and a host copy per sample. Packed, the samples sit back to back after a
page-sized header, so the native loader (``pymfn._core.PackedDataset``) maps the file and hands an
engine a pointer into the mapping: zero host copies per batch.

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

import argparse
import math
import os
import re
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from pymfn._atomic import atomic_write

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


def read_header(path: str | os.PathLike) -> PackedHeader:
    """Read and validate the header of a packed file (raises PackedFormatError / FileNotFoundError)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory, expected a packed sample file")
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        return parse_header(f.read(_HEADER.size), size, path)


def is_packed(path: str | os.PathLike) -> bool:
    """True if ``path`` is a regular file starting with the packed magic (header not validated)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except (IsADirectoryError, FileNotFoundError, PermissionError):
        return False


def read_packed(path: str | os.PathLike) -> np.memmap:
    """A read-only memmap ``[count, *sample_shape]`` of a validated packed file (no data is read)."""
    header = read_header(path)
    if header.count == 0:
        raise PackedFormatError(path, "packed file contains no samples")
    return np.memmap(path, dtype=np.dtype(header.dtype).newbyteorder("<"), mode="r", offset=header.header_bytes,
                     shape=(header.count, *header.sample_shape))


class PackedWriter:
    """Writes a packed file sample by sample; use it as a context manager.

    Data goes to a temp file beside ``path`` that is renamed into place only when the block exits
    cleanly, so a crash or an error never leaves a half-written packed file. Appended samples must
    match ``dtype`` exactly (no silent casts: a float64 array is an error, not a conversion) and
    ``sample_shape``. When ``count`` is given, appending more, or closing with fewer, is an error.
    """

    def __init__(self, path: str | os.PathLike, dtype: str, sample_shape: Sequence[int], count: int | None = None) -> None:
        self.path = Path(path)
        self.dtype = _check_dtype(dtype)
        self.sample_shape = _check_shape(sample_shape)
        self.sample_bytes = math.prod(self.sample_shape) * self.dtype.itemsize
        if count is not None and count < 1:
            raise ValueError(f"count must be positive when given, got {count}")
        self.expected_count = count
        self.count = 0
        self._ctx = None
        self._file = None

    def __enter__(self) -> "PackedWriter":
        self._ctx = atomic_write(self.path)
        self._file = self._ctx.__enter__()
        self._file.write(b"\0" * HEADER_BYTES)  # placeholder until the count is known
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
        self._file.write(np.ascontiguousarray(arr).data)
        self.count += len(arr)

    def __exit__(self, exc_type, exc, tb) -> bool:
        ctx, self._ctx = self._ctx, None
        f, self._file = self._file, None
        if exc_type is not None:
            return bool(ctx.__exit__(exc_type, exc, tb))
        try:
            if self.count == 0:
                raise ValueError(f"{self.path}: no samples were appended; refusing to write an empty packed file")
            if self.expected_count is not None and self.count != self.expected_count:
                raise ValueError(f"{self.path}: {self.count} samples appended but {self.expected_count} were declared")
            header = PackedHeader(VERSION, HEADER_BYTES, self.dtype.name, self.sample_shape, self.count, self.sample_bytes)
            f.seek(0)
            f.write(header.encode())
            f.seek(0, os.SEEK_END)
            # The temp file is created 0600; give the result the usual umask-based mode, since packed
            # data sets are meant to be shared (e.g. read by another user's benchmark run).
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(f.fileno(), 0o666 & ~umask)
        except BaseException as e:
            ctx.__exit__(type(e), e, e.__traceback__)
            raise
        return bool(ctx.__exit__(None, None, None))


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


def list_bins(src_dir: str | os.PathLike, order: str = "natural") -> list[Path]:
    """The *.bin sample files of a folder in dataset order, with FolderDataset's rules: dot-files are
    skipped; a *.bin entry that is not a regular file (directory, dangling symlink) is an error."""
    src = Path(src_dir)
    _require_dir(src)
    names = [e.name for e in os.scandir(src) if not e.name.startswith(".") and e.name.endswith(".bin")]
    out = []
    for name in sort_names(names, order):
        path = src / name
        if not path.exists():
            raise FileNotFoundError(f"{path}: dangling symbolic link (its target does not exist)")
        if not path.is_file():
            raise ValueError(f"{path}: is not a regular file (expected a raw sample file)")
        out.append(path)
    return out


def list_images(src_dir: str | os.PathLike, order: str = "natural") -> list[Path]:
    """Image files (jpg/png/bmp) under a folder, recursively, ordered by relative path."""
    src = Path(src_dir)
    _require_dir(src)
    rel = [p.relative_to(src).as_posix() for p in src.rglob("*")
           if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
           and not any(part.startswith(".") for part in p.relative_to(src).parts)]
    return [src / r for r in sort_names(rel, order)]


def load_image(path: Path, sample_shape: tuple[int, ...], dtype: np.dtype, channels: str) -> np.ndarray:
    """Decode one image into a sample like the reference image2bin: HWC, RGB (or BGR), then either raw
    uint8 or float32 ``(x - 127.5) * 0.0078125``. A size mismatch is an error, never a silent resize."""
    from PIL import Image

    if len(sample_shape) != 3 or sample_shape[2] not in (1, 3):
        raise ValueError(f"image samples need a shape H,W,C with C = 1 or 3, got {sample_shape}")
    with Image.open(path) as im:
        im = im.convert("L" if sample_shape[2] == 1 else "RGB")
        arr = np.asarray(im, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape != sample_shape:
        raise ValueError(f"{path}: image is {arr.shape[1]}x{arr.shape[0]}x{arr.shape[2]} (WxHxC) but the sample "
                         f"shape is {sample_shape} (HWC); align/resize images first")
    if channels == "bgr" and arr.shape[2] == 3:
        arr = arr[:, :, ::-1]
    if dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if dtype == np.float32:
        return ((arr.astype(np.float32) - 127.5) * 0.0078125).astype(np.float32)
    raise ValueError(f"images can be packed as float32 (normalised) or uint8 (raw), not {dtype.name}")


def pack_folder(src_dir: str | os.PathLike, out: str | os.PathLike, dtype: str = "float32",
                sample_shape: Sequence[int] = (112, 112, 3), order: str = "natural", kind: str = "auto",
                channels: str = "rgb", manifest: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Pack a folder of per-sample .bin files, or of images, into one packed file at ``out``.

    kind: 'bins' (every *.bin must be exactly prod(sample_shape) * itemsize bytes), 'images' (decoded
    with load_image) or 'auto' (bins if the folder has any *.bin file, else images). The optional
    manifest lists the source of each sample, one relative path per line, in packed order.
    """
    from tqdm import tqdm

    src = Path(src_dir)
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

    out = Path(out)
    with PackedWriter(out, np_dtype.name, shape, count=len(files)) as writer:
        for path in tqdm(files, desc=f"pack {src.name}", unit="file", disable=not progress):
            if kind == "bins":
                raw = path.read_bytes()
                if len(raw) != writer.sample_bytes:
                    raise ValueError(f"{path}: file is {len(raw)} bytes but {np_dtype.name} {shape} samples are "
                                     f"{writer.sample_bytes} bytes")
                writer.append(np.frombuffer(raw, dtype=np_dtype).reshape(shape))
            else:
                writer.append(load_image(path, shape, np_dtype, channels))
    if manifest is not None:
        with atomic_write(manifest, "w") as f:
            f.writelines(p.relative_to(src).as_posix() + "\n" for p in files)
    return out


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        return _check_shape(int(t) for t in text.replace("x", ",").split(",") if t.strip())
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"bad shape {text!r}: {e}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pymfn pack",
        description="Pack a folder of per-sample .bin files (msame / image2bin layout) or of images into one\n"
                    "packed file that the native loader maps into memory: batches are then pointers into the\n"
                    "file, with no per-sample reads or host copies. The output is written atomically (a failed\n"
                    "run leaves no partial file). Images must already be aligned to --shape: nothing is resized.",
        epilog="examples:\n"
               "  python -m pymfn pack --from lfw_bins/ --out lfw.pack            # 112x112x3 float32 bins\n"
               "  python -m pymfn pack --from faces/ --out faces.pack --dtype uint8   # raw images\n"
               "  python -m pymfn pack --from bins/ --out x.pack --order lexicographic  # msame's file order",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from", dest="src", required=True, type=Path,
                   help="folder of *.bin files (one sample each) or of images (searched recursively)")
    p.add_argument("--out", required=True, type=Path, help="packed file to write")
    p.add_argument("--dtype", default="float32", choices=list(DTYPE_CODES),
                   help="sample element type (default float32). For images: float32 = (x-127.5)*0.0078125 "
                        "like image2bin, uint8 = raw pixels")
    p.add_argument("--shape", default=(112, 112, 3), type=_parse_shape,
                   help="shape of one sample, e.g. 112,112,3 (default; HWC for images)")
    p.add_argument("--order", default="natural", choices=["natural", "lexicographic"],
                   help="sample order: natural (2.bin before 10.bin, default) or lexicographic (msame's)")
    p.add_argument("--kind", default="auto", choices=["auto", "bins", "images"],
                   help="what the folder holds (auto: bins if it has any *.bin file, else images)")
    p.add_argument("--channels", default="rgb", choices=["rgb", "bgr"],
                   help="channel order for images (default rgb, what the pretrained model expects)")
    p.add_argument("--manifest", type=Path, default=None,
                   help="also write the source path of each sample, one per line, in packed order")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        out = pack_folder(args.src, args.out, dtype=args.dtype, sample_shape=args.shape, order=args.order,
                          kind=args.kind, channels=args.channels, manifest=args.manifest, progress=not args.quiet)
    except (OSError, ValueError, TypeError) as e:
        print(f"pymfn pack: error: {e}", file=sys.stderr)
        return 1
    h = read_header(out)
    print(f"wrote {out}: {h.count} samples of {h.dtype} {list(h.sample_shape)} "
          f"({h.header_bytes + h.count * h.sample_bytes} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

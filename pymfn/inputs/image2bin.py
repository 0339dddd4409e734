"""Turn ``lfw.bin`` or a folder of images into per-image ``.bin`` inputs (msame's folder layout) or one
packed file.

This is step 4 of the reference Ascend pipeline (see shared/docs/ascend.md): decode each JPEG as OpenCV
does (BGR), compute ``(x - 127.5) * 0.0078125``, store float32 NHWC ``1x112x112x3`` as ``{i}.bin``
(150,528 bytes) for i = 0..N-1 in ``lfw.bin`` order. ``--rgb`` keeps RGB (what the model was trained on),
``--uint8`` stores raw pixels (37,632 bytes) for om models with AIPP doing the normalisation on the chip.

Bookkeeping files are dot-files so that msame, which feeds *every* non-hidden file of an input folder to
the model, never sees them:

* ``.issame.npy``  pair labels (bool) when the source is ``lfw.bin``, so accuracy can be computed from the
  model outputs alone (``pymfn eval --msame-dir OUT --issame BINS/.issame.npy``);
* ``.index.txt``   ``i<TAB>relative/path`` for a folder source (sorted path order);
* ``.image2bin.json``  how the bins were made (source, colour, dtype, shape, count).

With ``--packed FILE`` the same samples go into one mmap-able packed file (``pymfn.inputs.pack``) and the
bookkeeping files sit beside it as ``FILE.issame.npy``, ``FILE.index.txt`` and ``FILE.image2bin.json``;
the last one records which pack the others belong to, and labels are only read through it
(``read_issame``), so a pack replaced later (or a run killed half-way) never pairs new samples with old
labels.

Everything is atomic (``pymfn.files.atomic``): the folder is built under a temporary name and swapped into
place; a packed file and its bookkeeping are committed as one set. A replaced output needs ``--force``
(the same rule as ``pymfn pack``); a second run into an output that is being written is refused, and an
output that is also the source (or inside it, or holding it) is refused. Temp outputs of a killed run
are removed by the next run into the same target.
"""
from __future__ import annotations

import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterator

import numpy as np

from pymfn.files.atomic import atomic_dir, hold, json_bytes, refuse_overlap
from pymfn.errors import CommandError
from pymfn.files.readfile import read_regular_file
from pymfn.inputs.pairs import load_issame
from pymfn.inputs.lfw_bin import decode_images, read_lfw_bin
from pymfn.inputs import pack
from pymfn.inputs.pack import (INDEX_SUFFIX, ISSAME_SUFFIX, MAX_IMAGE_FILE_BYTES, RECORD_SUFFIX, PackedWriter,
                        check_target, read_pack_issame, require_regular_file, set_paths)

__all__ = [
    "IMAGE_EXTENSIONS",
    "ISSAME_FILE",
    "INDEX_FILE",
    "META_FILE",
    "SCALE",
    "image2bin",
    "list_images",
    "preprocess",
    "read_issame",
    "verify_bins_folder",
    "FolderRecordError",
    "image2bin_checked",
    "Image2binResult",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
# The same names inside a bins folder and (as FILE + name) beside a packed file.
ISSAME_FILE = ISSAME_SUFFIX
INDEX_FILE = INDEX_SUFFIX
META_FILE = RECORD_SUFFIX
SCALE = 0.0078125  # 1/128, the reference image2bin's factor
SIZE = 112
CHUNK = 256  # images decoded/written per step (38 MB of float32)


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files under ``folder`` (recursively, hidden entries skipped) in sorted relative-path order.

    An entry with an image suffix that is not a regular file (a FIFO, a device, a folder named x.jpg, a
    dangling link) is an error: reading a FIFO would block forever.
    """
    root = Path(folder)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames + dirnames:
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS):
                path = Path(dirpath, name)
                require_regular_file(path, "an image file")
                found.append(path)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def preprocess(images: np.ndarray, dtype: str = "float32") -> np.ndarray:
    """uint8 ``[N,H,W,3]`` -> the model input: float32 ``(x - 127.5) * 0.0078125`` or the raw uint8 pixels.

    In float32 both steps are exact (half-integers times a power of two), so the values equal the
    reference's float64 computation cast to float32, bit for bit.
    """
    if dtype == "uint8":
        return np.ascontiguousarray(images, dtype=np.uint8)
    if dtype == "float32":
        out = images.astype(np.float32)
        out -= np.float32(127.5)
        out *= np.float32(SCALE)
        return out
    raise ValueError(f"dtype={dtype!r}: expected 'float32' or 'uint8'")


def read_issame(bins: str | os.PathLike, pairs: int | None = None) -> np.ndarray:
    """Pair labels written by ``image2bin`` for a bins folder or a packed file (checked: see pymfn.inputs.pairs).

    Labels are accepted only beside the samples they were written for: a folder must still hold exactly
    the bins its record lists (``verify_bins_folder``), and a packed file's record must prove the labels
    were written with this very pack (``pymfn.inputs.pack.read_pack_issame``).
    """
    p = Path(bins)
    if p.is_dir():
        f = p / ISSAME_FILE
        if not f.exists():
            raise FileNotFoundError(f"{f}: no pair labels (image2bin writes them only when the source is an lfw.bin)")
        record = verify_bins_folder(p)
        labels = load_issame(f, pairs)
        recorded_pairs = record["count"] // 2
        if len(labels) != recorded_pairs:
            raise FolderRecordError(f"{f}: {len(labels)} pair labels but {p / META_FILE} records "
                                    f"{record['count']} images ({recorded_pairs} pairs); {_RERUN}")
        return labels
    return read_pack_issame(p, pairs)


class FolderRecordError(ValueError):
    """A bins folder that no longer holds what its ``.image2bin.json`` records (labels would not fit it)."""


_RERUN = "rerun image2bin, or pass --issame if you know the labels fit these bins"
_INDEXED_NAMES = "{i}.bin, i = 0..count-1"


def _listed_bins(folder: Path) -> dict[str, int]:
    """``*.bin`` entries a FolderDataset would read (hidden names skipped) -> size in bytes (-1: not a file)."""
    found = {}
    with os.scandir(folder) as it:
        for e in it:
            if e.name.startswith(".") or len(e.name) < 5 or not e.name.endswith(".bin"):
                continue
            try:
                st = e.stat()  # follows symlinks, as the dataset does
                found[e.name] = st.st_size if e.is_file() else -1
            except OSError:
                found[e.name] = -1
    return found


def _names_text(names: list[str], limit: int = 3) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def verify_bins_folder(folder: str | os.PathLike) -> dict:
    """Check a bins folder against the ``.image2bin.json`` written with it; return the record.

    The record states how many samples were written, how they are named (``{i}.bin``, i = 0..count-1, or
    an explicit ``names`` list) and their size. Labels are bound to that set: a folder with a file
    missing, an extra ``*.bin`` (which shifts the order of every later sample) or a file of another size
    would be scored with labels of other images. Raises ``FolderRecordError`` (a ValueError) naming the
    folder and what differs, ``FileNotFoundError`` when there is no record. When the record lists the
    SHA-256 of the labels (``sidecars``), the labels are checked too. Reads only names and sizes, so it
    costs a directory listing, not a pass over the samples.
    """
    import hashlib

    folder = Path(folder)
    meta = folder / META_FILE
    if not meta.exists():
        raise FolderRecordError(f"{folder}: no {META_FILE} binding its pair labels to its bins (an older pymfn or "
                                f"another tool wrote the folder); {_RERUN}")
    try:
        record = json.loads(read_regular_file(meta, "an image2bin record", max_bytes=16 << 20))
    except (ValueError, UnicodeDecodeError) as exc:
        raise FolderRecordError(f"{meta}: not a readable image2bin record ({exc}); {_RERUN}") from None
    count = record.get("count") if isinstance(record, dict) else None
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise FolderRecordError(f"{meta}: not an image2bin record of a bins folder (no sample count); {_RERUN}")
    names = record.get("names")
    if isinstance(names, list) and all(isinstance(n, str) for n in names) and len(names) == count:
        expected = list(names)
        described = f"{count} files {_names_text(expected, 2)}"
    elif record.get("files") == _INDEXED_NAMES:
        expected = [f"{i}.bin" for i in range(count)]
        described = f"{count} files 0.bin..{count - 1}.bin"
    else:
        raise FolderRecordError(f"{meta}: does not record the names of the bins (files = {record.get('files')!r}); "
                                f"{_RERUN}")
    found = _listed_bins(folder)
    want = set(expected)
    missing = [n for n in expected if n not in found]
    extra = sorted((n for n in found if n not in want), key=pack.natural_key)
    sample_bytes = record.get("sample_bytes")
    resized = [n for n in expected if n in found and isinstance(sample_bytes, int) and found[n] != sample_bytes]
    problems = []
    if missing:
        problems.append(f"missing {_names_text(missing)}")
    if extra:
        problems.append(f"not in the record: {_names_text(extra)}")
    if resized:
        problems.append(f"not {sample_bytes} bytes: {_names_text(resized)}")
    if problems:
        raise FolderRecordError(f"{folder}: the bins no longer match {META_FILE} ({described}; {'; '.join(problems)}), "
                                f"so its pair labels would be scored against other images; {_RERUN}")
    want_labels = record.get("sidecars", {}).get(ISSAME_FILE) if isinstance(record.get("sidecars"), dict) else None
    if isinstance(want_labels, str):
        raw = read_regular_file(folder / ISSAME_FILE, "a pair label file", max_bytes=1 << 30)
        if hashlib.sha256(raw).hexdigest() != want_labels:
            raise FolderRecordError(f"{folder / ISSAME_FILE}: not the labels {META_FILE} was written with; {_RERUN}")
    return record


def _sidecar(out: Path, packed: bool, name: str) -> Path:
    return out.with_name(out.name + name) if packed else out / name


def _source_chunks(source: Path, limit: int | None, color: str
                   ) -> tuple[int, Iterator[tuple[int, np.ndarray]], np.ndarray | None, list[str] | None]:
    """(count, iterator of (start, uint8 images), issame or None, relative names or None)."""
    if source.is_dir():
        files = list_images(source)
        if not files:
            raise FileNotFoundError(f"{source}: no images ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
        if limit is not None:
            files = files[:limit]
        names = [f.relative_to(source).as_posix() for f in files]

        def gen_dir() -> Iterator[tuple[int, np.ndarray]]:
            for s in range(0, len(files), CHUNK):
                part = files[s:s + CHUNK]
                data = []
                for f in part:
                    data.append(read_regular_file(f, "an image file", max_bytes=MAX_IMAGE_FILE_BYTES))
                yield s, decode_images(data, color=color, size=SIZE, source=[str(f) for f in part], first_index=s)

        return len(files), gen_dir(), None, names
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such lfw.bin file or image folder")
    bins, issame = read_lfw_bin(source)
    if limit is not None:
        if limit % 2:
            raise ValueError(f"limit={limit}: must be even for an lfw.bin source (images come in pairs)")
        bins, issame = bins[:limit], issame[: limit // 2]

    def gen_bin() -> Iterator[tuple[int, np.ndarray]]:
        for s in range(0, len(bins), CHUNK):
            yield s, decode_images(bins[s:s + CHUNK], color=color, size=SIZE, source=str(source), first_index=s)

    return len(bins), gen_bin(), issame, None


def image2bin(source: str | os.PathLike, out: str | os.PathLike, color: str = "bgr", dtype: str = "float32",
              packed: bool = False, *, limit: int | None = None, progress: bool = False) -> Path:
    """Write one ``{i}.bin`` per image into folder ``out`` (or, ``packed=True``, one packed file ``out``).

    ``source`` is an ``lfw.bin`` (pair order kept, labels saved as ``.issame.npy``) or a folder of
    112x112 images (sorted relative paths, mapping saved as ``.index.txt``). ``color`` is ``"bgr"`` (the
    reference, via OpenCV) or ``"rgb"``; ``dtype`` ``"float32"`` (normalised) or ``"uint8"`` (raw pixels).
    ``limit`` keeps the first N images. An existing ``out`` is replaced only once the new one is complete.
    Returns the path written.
    """
    source, out = Path(source), Path(out)
    color = color.lower()
    if color not in ("bgr", "rgb"):
        raise ValueError(f"color={color!r}: expected 'bgr' or 'rgb'")
    if dtype not in ("float32", "uint8"):
        raise ValueError(f"dtype={dtype!r}: expected 'float32' or 'uint8'")
    if limit is not None and limit <= 0:
        raise ValueError(f"limit={limit}: expected a positive number of images")
    count, chunks, issame, names = _source_chunks(source, limit, color)
    shape = (SIZE, SIZE, 3)
    sample_bytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    meta = {"source": str(source.resolve()), "count": count, "color": color, "dtype": dtype,
            "shape": [1, *shape], "layout": "NHWC", "sample_bytes": sample_bytes,
            "normalisation": "(x - 127.5) * 0.0078125" if dtype == "float32" else "none (raw pixels)",
            "files": "packed" if packed else "{i}.bin, i = 0..count-1"}

    bar = None
    if progress:
        from tqdm import tqdm

        # disable=None: only on a terminal (as train/data do); in a log a bar buries the one-line error
        bar = tqdm(total=count, desc="image2bin", unit="img", disable=None)
    try:
        if packed:
            # the pack, its labels, index and record are committed as one set (see pymfn.inputs.pack)
            with PackedWriter(out, dtype, shape, count=count, sidecars=_sidecars(issame, names), record=meta) as writer:
                for _, imgs in chunks:
                    writer.append(preprocess(imgs, dtype))
                    if bar is not None:
                        bar.update(len(imgs))
        else:
            with atomic_dir(out) as tmp:  # bins and bookkeeping appear together, in one rename
                for start, imgs in chunks:
                    for j, sample in enumerate(preprocess(imgs, dtype)):
                        sample.tofile(tmp / f"{start + j}.bin")
                    if bar is not None:
                        bar.update(len(imgs))
                for name, data in _sidecars(issame, names).items():
                    (tmp / name).write_bytes(data)
                (tmp / META_FILE).write_bytes(json_bytes(meta))  # inside the folder: one rename commits all
    finally:
        if bar is not None:
            bar.close()
    return out


def _sidecars(issame: np.ndarray | None, names: list[str] | None) -> dict[str, bytes]:
    """Bookkeeping file name -> content: labels for an lfw.bin source, the index for a folder source."""
    files = {}
    if issame is not None:
        buf = io.BytesIO()
        np.save(buf, np.asarray(issame, dtype=bool))
        files[ISSAME_FILE] = buf.getvalue()
    if names is not None:
        files[INDEX_FILE] = "".join(f"{i}\t{n}\n" for i, n in enumerate(names)).encode("utf-8")
    return files


def _check_limit(limit: int | None, source: Path) -> None:
    """``--limit`` judged by its option name before any work (the library's own check says ``limit=``)."""
    if limit is None:
        return
    if limit <= 0:
        raise CommandError(f"--limit {limit}: expected a positive number of images")
    if limit % 2 and not source.is_dir():
        raise CommandError(f"--limit {limit}: must be even for an lfw.bin source (images come in pairs)")


@dataclass
class Image2binResult:
    """Where ``image2bin_checked`` wrote, its record (``.image2bin.json``) and the seconds it took."""

    path: Path
    meta: dict
    seconds: float


def image2bin_checked(source: str | Path, *, out: str | Path | None = None, packed: str | Path | None = None,
                      color: str = "bgr", dtype: str = "float32", limit: int | None = None, force: bool = False,
                      progress: bool = True) -> Image2binResult:
    """:func:`image2bin` into the folder ``out`` or the packed file ``packed`` (exactly one), with the checks
    of ``pymfn image2bin``: ``limit`` judged first, the output not the source, an existing output replaced
    only with ``force``, one writer per output at a time."""
    if (out is None) == (packed is None):
        raise CommandError("give either an output folder OUT or --packed FILE (exactly one)")
    source = Path(source)
    _check_limit(limit, source)
    target, option = (Path(packed), "--packed") if packed is not None else (Path(out), "OUT")
    members = set_paths(target) if packed is not None else [target]
    labels = {p: f"{option} {target}" + ("" if p == target else f" ({p.name})") for p in members}
    refuse_overlap([(labels[p], p) for p in members], [(str(source), source)])
    # the lock first: a second image2bin into the same output is refused now, not silently replaced later
    with hold(members, labels=labels):
        checked = check_target(target, force, option, directory=packed is None)
        t0 = time.perf_counter()
        path = image2bin(source, checked, color=color, dtype=dtype, packed=packed is not None, limit=limit,
                         progress=progress)
    meta = json.loads(_sidecar(path, packed is not None, META_FILE).read_text())
    return Image2binResult(path, meta, time.perf_counter() - t0)

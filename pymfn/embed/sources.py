"""The image sources ``pymfn embed`` reads, behind one interface: rows in a fixed order, read by range.

* an **image tree**: a folder of JPEG/PNG/BMP files, one sub-folder per identity (``Name/Name_0001.jpg``);
  rows are the images in sorted relative-path order, the label of a row is its top-level folder;
* an **lfw.bin** (InsightFace pickle): rows are its images in pair order, no identity labels;
* a **packed file** (``pymfn pack`` / ``image2bin --packed``): rows are its samples, already model inputs;
* a **bins folder** (``image2bin``, msame layout): rows are its ``*.bin`` files in natural order.

Image sources yield decoded uint8 images (the embedding step normalises them for the model);
packs and bins yield the stored model inputs as they are. Every source has a fingerprint (what the
manifest records so that a resumed run refuses a source that changed) and every read returns the sha256
of the raw bytes it consumed (what a shard records about its input).
"""
from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pymfn.errors import CommandError

IMAGE_TREE = "image-tree"
LFW_BIN = "lfw.bin"
PACK = "pack"
BINS = "bins"


@dataclass
class Source:
    """One image source: ``count`` rows, optional identity labels, a name per row."""

    path: Path
    kind: str
    count: int
    names: list[str]  # per row: relative path, bin file name or "#index"
    identities: list[str] = field(default_factory=list)  # label i -> identity name (image trees)
    labels: np.ndarray | None = None  # int32 per row, identity index; None when the source has none
    fingerprint: dict[str, Any] = field(default_factory=dict)
    sample_dtype: str = "uint8"  # uint8 images to normalise, or the stored model-input dtype
    sample_shape: tuple[int, ...] = (112, 112, 3)
    color: str = "rgb"
    _state: Any = None  # what read() needs (file list, JPEG bytes, memmap)

    @property
    def decoded_images(self) -> bool:
        """True when rows are decoded images (normalised by the embedding step), False for model inputs."""
        return self.kind in (IMAGE_TREE, LFW_BIN)

    def describe(self) -> str:
        what = {IMAGE_TREE: f"image tree, {len(self.identities)} identities", LFW_BIN: "lfw.bin",
                PACK: "packed file", BINS: "bins folder"}[self.kind]
        return f"{self.path} ({what}, {self.count} rows)"

    def read(self, start: int, stop: int) -> tuple[np.ndarray, str]:
        """Rows ``[start, stop)`` and the sha256 of the raw bytes they came from."""
        h = hashlib.sha256()
        if self.kind == IMAGE_TREE:
            from pymfn.files.readfile import read_regular_file
            from pymfn.inputs.lfw_bin import decode_images
            from pymfn.inputs.pack import MAX_IMAGE_FILE_BYTES

            files = self._state[start:stop]
            data = [read_regular_file(f, "an image file", max_bytes=MAX_IMAGE_FILE_BYTES) for f in files]
            for d in data:
                h.update(len(d).to_bytes(8, "little"))
                h.update(d)
            return decode_images(data, color=self.color, size=self.sample_shape[0],
                                 source=[str(f) for f in files], first_index=start), h.hexdigest()
        if self.kind == LFW_BIN:
            from pymfn.inputs.lfw_bin import decode_images

            data = self._state[start:stop]
            for d in data:
                h.update(len(d).to_bytes(8, "little"))
                h.update(d)
            return decode_images(data, color=self.color, size=self.sample_shape[0], source=str(self.path),
                                 first_index=start), h.hexdigest()
        if self.kind == PACK:
            rows = np.ascontiguousarray(self._state[start:stop])
            h.update(rows.tobytes())
            return rows, h.hexdigest()
        from pymfn.files.readfile import read_regular_file  # BINS

        sample_bytes = int(np.prod(self.sample_shape)) * np.dtype(self.sample_dtype).itemsize
        rows = np.empty((stop - start, *self.sample_shape), np.dtype(self.sample_dtype))
        for i, f in enumerate(self._state[start:stop]):
            raw = read_regular_file(f, f"a {self.sample_dtype} {list(self.sample_shape)} sample",
                                    exact_bytes=sample_bytes)
            h.update(raw)
            rows[i] = np.frombuffer(raw, np.dtype(self.sample_dtype)).reshape(self.sample_shape)
        return rows, h.hexdigest()


def _listing_fingerprint(root: Path, files: list[Path]) -> dict[str, Any]:
    """A folder's fingerprint: sha256 over (relative path, size, mtime ns) of every file, in row order."""
    h = hashlib.sha256()
    total = 0
    for f in files:
        st = f.stat()
        total += st.st_size
        h.update(f"{f.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return {"method": "listing-sha256 (relative path, size, mtime_ns)", "sha256": h.hexdigest(),
            "files": len(files), "bytes": total}


def _file_fingerprint(path: Path) -> dict[str, Any]:
    from pymfn.files.hashes import file_record

    rec = file_record(path)
    return {"method": "file-sha256", **rec}


def _is_pickle(path: Path) -> bool:
    try:
        with open(path, "rb", buffering=0) as f:  # regular files only (checked by the caller)
            return f.read(1) == pickle.PROTO
    except OSError:
        return False


def open_source(path: str | os.PathLike, option: str = "SOURCE", color: str = "rgb",
                sample_shape: tuple[int, ...] = (112, 112, 3), sample_dtype: str = "float32") -> Source:
    """Recognise and list ``path``. ``sample_shape``/``sample_dtype`` are what the model takes: a bins folder
    (which carries no header) is read as such samples; a pack is checked against them by the caller."""
    from pymfn.inputs import pack

    p = Path(path)
    if not p.exists():
        what = "dangling symbolic link" if p.is_symlink() else "does not exist"
        raise CommandError(f"{option} {path}: {what} (expected an image tree, lfw.bin, a packed file or a bins folder)")
    if p.is_dir():
        bins = [e.name for e in os.scandir(p) if not e.name.startswith(".") and e.name.endswith(".bin")]
        if bins:
            files = pack.list_bins(p)
            return Source(p, BINS, len(files), [f.name for f in files], fingerprint=_listing_fingerprint(p, files),
                          sample_dtype=sample_dtype, sample_shape=tuple(sample_shape), _state=files)
        from pymfn.inputs.image2bin import list_images

        files = list_images(p)
        if not files:
            raise CommandError(f"{option} {path}: no images (.jpg, .jpeg, .png, .bmp) and no .bin samples in this folder")
        names = [f.relative_to(p).as_posix() for f in files]
        tops = [n.split("/", 1)[0] if "/" in n else None for n in names]
        labels = None
        identities: list[str] = []
        if all(t is not None for t in tops):
            identities = sorted(set(tops))  # type: ignore[arg-type]
            index = {name: i for i, name in enumerate(identities)}
            labels = np.array([index[t] for t in tops], np.int32)
        return Source(p, IMAGE_TREE, len(files), names, identities, labels, _listing_fingerprint(p, files),
                      color=color, sample_shape=tuple(sample_shape), _state=files)
    if not p.is_file():
        raise CommandError(f"{option} {path}: not a regular file or folder")
    if pack.is_packed(p):
        mm = pack.read_packed(p)
        return Source(p, PACK, len(mm), [f"#{i}" for i in range(len(mm))], fingerprint=_file_fingerprint(p),
                      sample_dtype=str(mm.dtype.newbyteorder("=")), sample_shape=tuple(mm.shape[1:]), _state=mm)
    if _is_pickle(p):
        from pymfn.inputs.lfw_bin import read_lfw_bin

        bins, _ = read_lfw_bin(p)
        return Source(p, LFW_BIN, len(bins), [f"#{i}" for i in range(len(bins))], fingerprint=_file_fingerprint(p),
                      color=color, sample_shape=tuple(sample_shape), _state=bins)
    raise CommandError(f"{option} {path}: not an image tree, an lfw.bin pickle, a packed file or a folder of .bin samples")

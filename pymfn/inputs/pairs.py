"""Pair labels (``issame``): one loader and one rule for every command.

The rule: a flat sequence of booleans or of the integers 0 and 1, one per pair, at least one pair, and —
when the caller knows how many pairs there are — exactly that many. Anything else is an error naming the
file: ``np.arange(20)`` cast to bool would quietly turn every label but the first into "same", and a
float 0.5 has no meaning as a label.

Files: ``.npy`` (read without pickles), an InsightFace ``lfw.bin`` (its labels), or text with one label
per line (``0``/``1``/``true``/``false``, any case). The format is recognised from the content, so a
suffix does not decide how a file is read.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from pymfn.files.readfile import read_regular_file

__all__ = ["IssameError", "as_issame", "load_issame", "MAX_LABEL_FILE_BYTES"]

# An lfw.bin with its images is tens of MB; 1 GB bounds what we read for labels.
MAX_LABEL_FILE_BYTES = 1 << 30
_NPY_MAGIC = b"\x93NUMPY"
_TEXT_LABELS = {"0": False, "1": True, "false": False, "true": True}


class IssameError(ValueError):
    """Pair labels that break the rule; ``source`` names where they came from."""

    def __init__(self, source: str | os.PathLike | None, message: str) -> None:
        self.source = None if source is None else str(source)
        super().__init__(f"{self.source}: {message}" if self.source else message)


def _is_label_scalar(v: Any) -> bool:
    if isinstance(v, (bool, np.bool_)):
        return True
    return isinstance(v, (int, np.integer)) and v in (0, 1)


def as_issame(values: Any, source: str | os.PathLike | None = None, pairs: int | None = None) -> np.ndarray:
    """``values`` checked against the rule and returned as a new bool array.

    Lists and tuples are checked element by element *before* numpy sees them, so nested or huge
    structures are refused instead of being expanded.
    """
    if isinstance(values, (list, tuple)):
        for i, v in enumerate(values):
            if not _is_label_scalar(v):
                shown = repr(v) if len(repr(v)) <= 40 else type(v).__name__
                raise IssameError(source, f"label {i} is {shown}; expected booleans or 0/1, one per pair")
        arr = np.array(values, dtype=bool) if values else np.zeros(0, dtype=bool)
    elif isinstance(values, np.ndarray):
        arr = np.asarray(values)  # a plain ndarray view of any subclass
        if arr.ndim != 1:
            raise IssameError(source, f"labels have shape {arr.shape}; expected a flat list of booleans or 0/1")
        if arr.dtype == np.bool_:
            arr = arr.copy()
        elif arr.dtype.kind in "iu":
            bad = np.flatnonzero((arr != 0) & (arr != 1))
            if len(bad):
                i = int(bad[0])
                raise IssameError(source, f"label {i} is {arr[i]} ({len(bad)} labels are not 0/1); expected "
                                          "booleans or 0/1, one per pair")
            arr = arr.astype(bool)
        else:
            raise IssameError(source, f"labels are {arr.dtype}; expected booleans or 0/1 integers")
    else:
        raise IssameError(source, f"labels are a {type(values).__name__}; expected a flat list of booleans or 0/1")
    if len(arr) == 0:
        raise IssameError(source, "no labels; expected at least one pair")
    if pairs is not None and len(arr) != pairs:
        raise IssameError(source, f"{len(arr)} labels but there are {pairs} pairs; expected one label per pair")
    return arr


def _parse_text(raw: bytes, path: Path) -> np.ndarray:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IssameError(path, f"not a .npy, lfw.bin or text label file (byte {exc.start} is not UTF-8)") from None
    labels = []
    for lineno, line in enumerate(text.splitlines(), 1):
        token = line.strip()
        if not token:
            continue
        value = _TEXT_LABELS.get(token.lower())
        if value is None:
            shown = token if len(token) <= 20 else token[:20] + "..."
            raise IssameError(path, f"line {lineno} is {shown!r}; expected one label per line: 0, 1, true or false")
        labels.append(value)
    return np.array(labels, dtype=bool)


def _load_npy(raw: bytes, path: Path) -> np.ndarray:
    """A .npy from memory, its header's size checked against the bytes present before numpy allocates."""
    from numpy.lib import format as npy_format

    try:
        buf = io.BytesIO(raw)
        version = npy_format.read_magic(buf)
        if version == (1, 0):
            shape, _, dtype = npy_format.read_array_header_1_0(buf)
        elif version == (2, 0):
            shape, _, dtype = npy_format.read_array_header_2_0(buf)
        else:
            raise ValueError(f".npy format version {version[0]}.{version[1]} (labels are written as 1.0)")
        need = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if not dtype.hasobject and need > len(raw) - buf.tell():
            raise ValueError(f"header describes {need} bytes of data but the file holds {len(raw) - buf.tell()}")
        return np.load(io.BytesIO(raw), allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - a corrupt .npy fails in many ways; report them all as one
        raise IssameError(path, f"not a readable .npy file ({type(exc).__name__}: {exc})") from None


def load_issame(path: str | os.PathLike, pairs: int | None = None) -> np.ndarray:
    """Pair labels from ``path`` (.npy, lfw.bin or text), checked against the rule (see the module doc)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: pair label file not found (expected .npy, lfw.bin or a text file of 0/1)")
    raw = read_regular_file(p, "a pair label file", max_bytes=MAX_LABEL_FILE_BYTES)
    if raw.startswith(_NPY_MAGIC):
        values = _load_npy(raw, p)
    elif raw[:1] == b"\x80":  # pickle protocol >= 2: an InsightFace lfw.bin
        from pymfn.inputs.lfw_bin import read_lfw_bin

        values = read_lfw_bin(p)[1]
    else:
        values = _parse_text(raw, p)
    return as_issame(values, p, pairs)

"""Open any sample source as a native dataset: a folder of .bin files, a packed file, a .npy file or
an in-memory numpy array.

All of them become ``pymfn._core`` Dataset objects with the same reader API, so the runner and the
benchmarks do not care where samples come from::

    ds = open_dataset("lfw_bins/", sample_shape=(112, 112, 3))    # folder: needs the sample size
    ds = open_dataset("lfw.pack")                                 # packed: self-describing
    for batch in ds.reader(batch_size=64):
        batch.data, batch.valid_rows                              # numpy view, no copy

Folders carry no type information, so the caller (i.e. the model) states the sample size; the other
sources describe themselves and the caller's values, when given, are checked against them
(``ShapeMismatch`` on disagreement).

A dataset is its inputs as they were when it was opened. Files are read out of their mappings only by
SIGBUS-guarded copies and checked after every read, so a file truncated, overwritten, rewritten or
replaced during a run ends it with ``InputError`` naming the file, never with a signal (docs/inputs.md).
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from collections.abc import Sequence

import numpy as np

import pymfn
from pymfn.inputs import pack

_NPY_MAGIC = b"\x93NUMPY"


def _core():
    return pymfn.load_core()


def _input_error(cls_name: str, path: str, message: str) -> Exception:
    """An exception of the native hierarchy (InputError / ShapeMismatch / FormatError) with `.path`,
    so Python-side checks fail exactly like the C++ ones."""
    exc = getattr(_core(), cls_name)(f"{path}: {message}")
    exc.path = path
    return exc


def _expected_sample_bytes(sample_bytes: int | None, dtype: str | None, sample_shape: Sequence[int]) -> int | None:
    """Reconcile sample_bytes with dtype x sample_shape; None when neither says anything."""
    shape = tuple(int(d) for d in sample_shape)
    if not shape:
        return sample_bytes
    from_shape = math.prod(shape) * np.dtype(dtype or "float32").itemsize
    if sample_bytes is not None and sample_bytes != from_shape:
        raise _core().InvalidArgument(f"sample_bytes {sample_bytes} disagrees with sample_shape {list(shape)} of "
                                      f"{dtype or 'float32'} = {from_shape} bytes")
    return from_shape


def _array_dataset(array: np.ndarray, origin: str, sample_bytes: int | None, dtype: str | None,
                   sample_shape: Sequence[int], path: str | None = None):
    """An ArrayDataset over ``array`` after checking it against what the model expects. ``origin`` names
    it in messages ("npy /x.npy"); ``path`` is the file it came from, the ``.path`` of every error."""
    core = _core()

    def mismatch(message: str) -> Exception:
        exc = _input_error("ShapeMismatch", origin, message)
        exc.path = path or origin
        return exc

    if dtype is not None and array.dtype != np.dtype(dtype):
        raise mismatch(f"samples are {array.dtype} but the model expects {dtype}")
    if sample_shape and tuple(array.shape[1:]) != tuple(int(d) for d in sample_shape):
        raise mismatch(f"sample shape {list(array.shape[1:])} but the model expects {list(sample_shape)}")
    ds = core.ArrayDataset(array, origin=origin, path=path)
    if sample_bytes is not None and ds.sample_bytes != sample_bytes:
        raise mismatch(f"samples are {ds.sample_bytes} bytes but the model expects {sample_bytes} bytes")
    return ds


def open_dataset(source: str | os.PathLike | np.ndarray, sample_bytes: int | None = None, dtype: str | None = None,
                 sample_shape: Sequence[int] = (), order: str = "natural", folder_io: str = "mmap"):
    """Open ``source`` as a ``pymfn._core.Dataset``.

    source: a folder of per-sample ``*.bin`` files, a packed file (recognised by its magic, whatever
        its name), a ``.npy`` file (memory-mapped; batches are guarded copies out of the mapping) or a
        numpy array (used in place; must be C-contiguous; one that maps a file is read like a ``.npy``).
    sample_bytes / dtype / sample_shape: what the model expects. A folder needs sample_bytes or
        sample_shape (dtype defaults to float32 there); for self-describing sources they are checks.
    order: file order of a folder, 'natural' (2.bin before 10.bin) or 'lexicographic' (msame).
    folder_io: how a folder's files are read: 'mmap' (mapped once, copied from the mapping on every
        pass, each copy followed by a check of the file; the fast choice for repeated passes) or 'pread'
        (open + pread + close per read; nothing stays mapped). Either way a sample file changed since the
        folder was opened is an error.

    Raises the native exceptions: InputError (missing / unusable source), ShapeMismatch (does not fit
    the model), FormatError (malformed packed file), InvalidArgument (inconsistent arguments).
    """
    core = _core()
    shape = tuple(int(d) for d in sample_shape)
    if isinstance(source, np.ndarray):
        return _array_dataset(source, "numpy array", sample_bytes, dtype, shape)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source must be a path or a numpy array, got {type(source).__name__}")
    path = Path(source)
    spath = str(path)
    if not path.exists():
        what = "dangling symbolic link" if path.is_symlink() else "no such file or directory"
        raise _input_error("InputError", spath, what)
    if path.is_dir():
        expected = _expected_sample_bytes(sample_bytes, dtype, shape)
        if expected is None:
            raise core.InvalidArgument(f"{spath}: a folder of .bin files has no header; pass sample_bytes or "
                                       f"sample_shape (the model's input size)")
        return core.FolderDataset(spath, expected, dtype or "float32", list(shape), order, folder_io)
    if not path.is_file():
        raise _input_error("InputError", spath, "not a regular file or directory")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise _input_error("InputError", spath, f"cannot read: {e.strerror}") from None
    if head == pack.MAGIC:
        expected = _expected_sample_bytes(sample_bytes, dtype, shape)
        return core.PackedDataset(spath, sample_bytes=expected, dtype=dtype, sample_shape=list(shape) or None)
    if head.startswith(_NPY_MAGIC):
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as e:
            raise _input_error("FormatError", spath, f"not a loadable .npy array: {e}") from None
        if not array.flags.c_contiguous:
            raise _input_error("InputError", spath, "the .npy array is stored in Fortran order; it cannot be used in "
                                                    "place (re-save it C-contiguous)")
        return _array_dataset(array, f"npy {spath}", sample_bytes, dtype, shape, path=spath)
    raise _input_error("FormatError", spath, "not a packed file (magic PYMFNPK), a .npy file or a folder of .bin files")

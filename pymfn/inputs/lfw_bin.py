"""Read InsightFace's ``lfw.bin`` and decode its JPEGs quickly.

The file is a pickle of ``(bins, issame)``: ``bins`` holds 2 * len(issame) JPEG byte strings in pair
order (image 2k and 2k+1 form pair k). Original InsightFace files are Python 2 pickles, so we always
unpickle with ``encoding="bytes"`` and accept every form an item can take after that (``bytes``,
``bytearray``, ``str``, numpy ``uint8``/``S`` arrays).

Unpickling runs a restricted unpickler that only resolves the few numpy/builtin names such a file needs,
each through a guard that refuses arguments no lfw.bin has: a downloaded ``.bin`` must not be able to
execute code on load, nor make us allocate more than the file could describe (see ``_guarded_globals``).
The labels follow the one rule of ``pymfn.inputs.pairs``.

Decoding uses Pillow (libjpeg-turbo) in a small thread pool: the decoder releases the GIL, so two
cores decode 12,000 112x112 faces in about 2 s. Images are never resized: a size mismatch is an error,
found from the image header before any pixel is decoded (a JPEG claiming 20000x20000 costs nothing).
"""
from __future__ import annotations

import contextlib
import io
import os
import pickle
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from collections.abc import Iterator, Sequence

import numpy as np
from PIL import Image

from pymfn.files.readfile import InputFileError, read_regular_file
from pymfn.inputs.pairs import IssameError, as_issame

__all__ = [
    "LfwFormatError",
    "ImageDecodeError",
    "read_lfw_bin",
    "decode_image",
    "decode_images",
    "load_lfw",
    "mirror",
    "clear_cache",
]


class LfwFormatError(ValueError):
    """``lfw.bin`` is not a usable ``(bins, issame)`` pickle; ``path`` names the file."""

    def __init__(self, path: str | os.PathLike | None, message: str):
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)


class ImageDecodeError(ValueError):
    """One image could not be decoded; ``index`` is its position, ``source`` the file it came from."""

    def __init__(self, index: int, source: str | None, message: str):
        self.index = index
        self.source = source
        self.reason = message
        where = f"image {index}" + (f" of {source}" if source else "")
        super().__init__(f"{where}: {message}")


# Pickles can do more than describe data: REDUCE calls any global the file names, with arguments of its
# choosing. Only the names an lfw.bin needs resolve, and each to a guarded stand-in that refuses the
# arguments that would allocate more than the file could hold (``bytearray(10**12)``, an ndarray of
# shape (10**12,), an object array whose state asks for 10**12 slots). The bound for every array is the
# size of the file itself. Loading runs the pure-Python unpickler on the file's bytes in memory: the C
# unpickler grows its memo table to whatever index a PUT names (gigabytes, all written) and, reading
# from a file, pre-allocates whatever length a BINBYTES8 claims. The pure-Python one is 0.1 s slower on
# LFW's 62 MB and bounded by the input.

MAX_LFW_BIN_BYTES = 16 << 30  # far above any real evaluation set (LFW: 62 MB); refuses /dev/zero-like input


def _check_count(n: Any, limit: int, what: str) -> int:
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise pickle.UnpicklingError(f"{what} is {n!r}; expected a non-negative size")
    if n > limit:
        raise pickle.UnpicklingError(f"{what} {n} is more than the {limit}-byte file can describe")
    return int(n)


def _guarded_globals(limit: int) -> dict[tuple[str, str], Any]:
    """(module, name) -> the object an lfw.bin pickle gets for it, with sizes bounded by ``limit``."""
    from numpy._core import multiarray as _ma

    def shape_elements(shape: Any, what: str) -> int:
        if not isinstance(shape, tuple) or not all(isinstance(d, (int, np.integer)) and d >= 0 for d in shape):
            raise pickle.UnpicklingError(f"{what} shape {shape!r} is not a tuple of sizes")
        n = 1
        for d in shape:
            n *= int(d)
            _check_count(n, limit, f"{what} element count")
        return n

    class PickledArray(np.ndarray):
        """The ndarray class an lfw.bin pickle sees: it cannot be called, and its state is size-checked."""

        def __new__(cls, *args: Any, **kwargs: Any) -> PickledArray:
            raise pickle.UnpicklingError("the pickle calls numpy.ndarray directly (not part of an lfw.bin file)")

        def __setstate__(self, state: Any) -> None:
            if not isinstance(state, tuple) or len(state) not in (4, 5):
                raise pickle.UnpicklingError("ndarray state is not numpy's (version, shape, dtype, fortran, data)")
            shape, dtype, raw = state[-4], state[-3], state[-1]
            if not isinstance(dtype, np.dtype):
                raise pickle.UnpicklingError(f"ndarray state names dtype {type(dtype).__name__}, not a numpy dtype")
            n = shape_elements(shape, "ndarray")
            if dtype.hasobject:
                if not isinstance(raw, list) or len(raw) != n:
                    raise pickle.UnpicklingError(f"object ndarray of {n} elements with a state of "
                                                 f"{len(raw) if isinstance(raw, list) else type(raw).__name__}")
            else:
                if not isinstance(raw, (bytes, bytearray)) or len(raw) != n * dtype.itemsize:
                    raise pickle.UnpicklingError(f"ndarray of {n} x {dtype.itemsize} bytes with "
                                                 f"{len(raw) if isinstance(raw, (bytes, bytearray)) else 'no'} bytes of data")
            super().__setstate__(state)

    def reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
        if subtype is not PickledArray:
            raise pickle.UnpicklingError("_reconstruct of something other than numpy.ndarray")
        dt = np.dtype(dtype) if isinstance(dtype, (bytes, str)) else dtype
        if not isinstance(dt, np.dtype):
            raise pickle.UnpicklingError(f"_reconstruct with dtype {type(dtype).__name__}")
        _check_count(shape_elements(shape if isinstance(shape, tuple) else (shape,), "ndarray") * max(dt.itemsize, 1),
                     limit, "ndarray bytes")
        return _ma._reconstruct(PickledArray, shape, dt)

    def frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:  # protocol 5 arrays
        if isinstance(buf, pickle.PickleBuffer):
            buf = bytes(buf)
        if not isinstance(buf, (bytes, bytearray)) or not isinstance(dtype, np.dtype) or dtype.hasobject:
            raise pickle.UnpicklingError("_frombuffer with arguments an ndarray pickle never has")
        if shape_elements(tuple(shape), "ndarray") * dtype.itemsize != len(buf):
            raise pickle.UnpicklingError(f"_frombuffer: shape {shape} of {dtype} does not match {len(buf)} bytes")
        return np.frombuffer(buf, dtype=dtype).reshape(shape, order="F" if order == "F" else "C")

    def scalar(dtype: Any, *args: Any) -> Any:
        if not isinstance(dtype, np.dtype) or dtype.itemsize > limit:
            raise pickle.UnpicklingError("numpy scalar with an impossible dtype")
        return _ma.scalar(dtype, *args)

    def make_dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
        if not isinstance(spec, (str, bytes)):
            raise pickle.UnpicklingError(f"numpy.dtype({type(spec).__name__}) is not part of an lfw.bin file")
        return np.dtype(spec.decode("latin-1") if isinstance(spec, bytes) else spec, align=bool(align), copy=bool(copy))

    def byte_string(kind: type) -> Any:
        def build(*args: Any) -> Any:
            # bytes()/bytearray() of a string or bytes, as pickles of them do; never of a number (a size)
            if not args:
                return kind()
            if isinstance(args[0], (bytes, bytearray)) and len(args) == 1:
                return kind(args[0])
            if isinstance(args[0], str) and len(args) == 2 and args[1] in ("latin1", "latin-1"):
                return kind(args[0], "latin-1")
            raise pickle.UnpicklingError(f"{kind.__name__}() with arguments an lfw.bin pickle never has")
        return build

    def encode(text: Any, encoding: Any = "latin1") -> bytes:  # Python 3 bytes pickled with protocol < 3
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise pickle.UnpicklingError("_codecs.encode with arguments an lfw.bin pickle never has")
        return text.encode("latin-1")

    return {
        # Python 2 numpy pickles name numpy.core.*; numpy 2 writes numpy._core
        ("numpy.core.multiarray", "_reconstruct"): reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): reconstruct,
        ("numpy.core.multiarray", "scalar"): scalar,
        ("numpy._core.multiarray", "scalar"): scalar,
        ("numpy.core.numeric", "_frombuffer"): frombuffer,
        ("numpy._core.numeric", "_frombuffer"): frombuffer,
        ("numpy", "ndarray"): PickledArray,
        ("numpy", "dtype"): make_dtype,
        ("numpy", "bool_"): np.bool_,
        ("builtins", "bytearray"): byte_string(bytearray),
        ("__builtin__", "bytearray"): byte_string(bytearray),
        ("builtins", "bytes"): byte_string(bytes),
        ("__builtin__", "bytes"): byte_string(bytes),
        ("_codecs", "encode"): encode,
    }


class _RestrictedUnpickler(pickle._Unpickler):  # the pure-Python unpickler: see the comment above
    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data), encoding="bytes")
        self._globals = _guarded_globals(len(data))

    def find_class(self, module: str, name: str) -> Any:
        found = self._globals.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name} (not part of an lfw.bin file)")
        return found


def _as_bytes(item: Any, index: int, path: str) -> bytes:
    """One ``bins`` entry as bytes, whatever Python 2/3 pickling turned it into."""
    if isinstance(item, bytes):
        return item
    if isinstance(item, (bytearray, memoryview)):
        return bytes(item)
    if isinstance(item, str):  # Python 2 str read with encoding="latin1"
        try:
            return item.encode("latin-1")
        except UnicodeEncodeError:
            raise LfwFormatError(path, f"bins[{index}] is a text string with non-byte characters, not JPEG data") from None
    if isinstance(item, np.ndarray):
        if item.dtype == np.uint8 or item.dtype == np.int8:
            return item.tobytes()
        if item.dtype.kind == "S" and item.size == 1:
            return item.reshape(()).item()
    raise LfwFormatError(path, f"bins[{index}] is {type(item).__name__}"
                         f"{'/' + str(item.dtype) if isinstance(item, np.ndarray) else ''}; expected JPEG bytes")


def _item_length(item: Any) -> int:
    if isinstance(item, np.ndarray):
        return int(item.nbytes)
    try:
        return len(item)
    except TypeError:
        return 0


def _as_issame(raw: Any, path: str) -> np.ndarray:
    if isinstance(raw, (list, tuple)) and len(raw) == 0:
        return np.zeros(0, dtype=bool)  # reported by the caller as "issame is empty"
    try:
        return as_issame(raw, None)
    except IssameError as exc:
        raise LfwFormatError(path, f"issame: {exc}") from None


def read_lfw_bin(path: str | os.PathLike) -> tuple[list[bytes], np.ndarray]:
    """Read ``(bins, issame)`` from an InsightFace ``.bin`` file.

    Returns the JPEG byte strings (in pair order) and ``issame`` as a bool array. Raises
    ``FileNotFoundError`` for a missing file and ``LfwFormatError`` (naming the file) for a corrupt pickle,
    a wrong structure, or ``len(bins) != 2 * len(issame)``.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: lfw.bin file not found")
    try:
        data = read_regular_file(p, "an lfw.bin pickle", max_bytes=MAX_LFW_BIN_BYTES)
    except InputFileError as exc:
        raise LfwFormatError(p, str(exc)[len(str(p)) + 2:]) from None
    try:
        obj = _RestrictedUnpickler(data).load()
    except RecursionError:
        raise LfwFormatError(p, "not a valid lfw.bin pickle (nested too deeply)") from None
    except Exception as exc:  # corrupt data can make the unpickler fail in many ways; none may escape raw
        raise LfwFormatError(p, f"not a valid lfw.bin pickle ({type(exc).__name__}: {_short(exc)})") from None
    if not isinstance(obj, (tuple, list)) or len(obj) != 2:
        raise LfwFormatError(p, f"pickle holds {type(obj).__name__}; expected a (bins, issame) pair")
    raw_bins, raw_issame = obj
    if isinstance(raw_bins, np.ndarray):
        raw_bins = np.asarray(raw_bins)  # the plain ndarray behind the unpickler's guarded class
    if not isinstance(raw_bins, (list, tuple, np.ndarray)) or (isinstance(raw_bins, np.ndarray) and raw_bins.ndim == 0):
        raise LfwFormatError(p, f"bins is {type(raw_bins).__name__}; expected a list of JPEG byte strings")
    issame = _as_issame(raw_issame, str(p))
    if len(issame) == 0:
        raise LfwFormatError(p, "issame is empty; expected at least one pair")
    if len(raw_bins) != 2 * len(issame):
        raise LfwFormatError(p, f"wrong pair count: {len(raw_bins)} images for {len(issame)} pairs "
                                f"(expected len(bins) == 2 * len(issame) = {2 * len(issame)})")
    total = sum(_item_length(item) for item in raw_bins)
    if total > len(data):  # only repeated references to the same data can describe more than the file holds
        raise LfwFormatError(p, f"bins describe {total} bytes of images but the file is {len(data)} bytes "
                                "(the same data referenced repeatedly)")
    bins = [_as_bytes(item, i, str(p)) for i, item in enumerate(raw_bins)]
    return bins, issame


def _short(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "..."


def decode_image(data: bytes, index: int = 0, size: int | None = 112, source: str | None = None) -> np.ndarray:
    """Decode one encoded image to uint8 RGB ``[H, W, 3]``.

    Grayscale/CMYK/palette images are converted to RGB (as OpenCV's ``IMREAD_COLOR`` does); when ``size``
    is given the image must be exactly ``size x size`` — nothing is resized, cropped or padded — and that
    is checked on the size the header claims, before any pixel is decoded.
    """
    with quiet_bomb_warnings():
        return _decode(data, index, size, source)


@contextlib.contextmanager
def quiet_bomb_warnings() -> Iterator[None]:
    """Silence Pillow's DecompressionBombWarning: the header size check below rejects such images anyway.

    ``catch_warnings`` swaps the process-wide filter list, so it is entered once by the calling thread
    (never inside the decoding threads, where concurrent entries would corrupt it).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


def _decode(data: bytes, index: int, size: int | None, source: str | None) -> np.ndarray:
    try:
        im = Image.open(io.BytesIO(data))  # reads the header only
    except Image.DecompressionBombError as exc:
        expected = f"{size}x{size}" if size else "a face crop"
        raise ImageDecodeError(index, source, f"header claims a far larger image than {expected} "
                                              f"(Pillow: {exc})") from None
    except Exception as exc:  # noqa: BLE001 - Pillow fails on corrupt data in many ways; report them all as one
        raise ImageDecodeError(index, source, f"cannot decode image data ({type(exc).__name__}: {exc})") from None
    with im:
        width, height = im.size
        if size is not None and (width, height) != (size, size):
            raise ImageDecodeError(index, source, f"is {width}x{height}; expected {size}x{size} "
                                                  "(images are never resized)")
        try:
            if im.mode != "RGB":
                im = im.convert("RGB")
            arr = np.asarray(im)
        except Exception as exc:  # noqa: BLE001
            raise ImageDecodeError(index, source, f"cannot decode image data ({type(exc).__name__}: {exc})") from None
    if arr.shape != (height, width, 3) or arr.dtype != np.uint8:
        raise ImageDecodeError(index, source, f"decoded to {arr.shape} {arr.dtype}; expected {height}x{width} RGB")
    return arr


def _check_color(color: str) -> str:
    c = color.lower()
    if c not in ("rgb", "bgr"):
        raise ValueError(f"color={color!r}: expected 'rgb' or 'bgr'")
    return c


def _workers(n_items: int) -> int:
    """Threads for decoding: the cores this process may use (capped at 8), and none for tiny jobs."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8, n_items // 64 or 1))


def decode_images(bins: Sequence[bytes], color: str = "rgb", size: int = 112, progress: bool = False,
                  source: str | Sequence[str] | None = None, workers: int | None = None,
                  first_index: int = 0) -> np.ndarray:
    """Decode JPEG byte strings to one uint8 array ``[N, size, size, 3]``.

    ``color="bgr"`` reverses the channels, giving what OpenCV's ``cv2.imdecode`` returns (the reference
    Ascend pipeline feeds BGR). Decoding runs on a thread pool (Pillow releases the GIL while decoding).
    An undecodable or wrongly sized image raises ``ImageDecodeError`` with its index (``first_index`` +
    position, for callers decoding a slice) and its source: ``source`` is one name for all images (the
    ``lfw.bin``) or one name per image (files of a folder).
    """
    color = _check_color(color)
    if source is not None and not isinstance(source, str) and len(source) != len(bins):
        raise ValueError(f"source: {len(source)} names for {len(bins)} images")
    if size <= 0:
        raise ValueError(f"size={size}: expected a positive image side")
    n = len(bins)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    if n == 0:
        return out
    n_workers = workers or _workers(n)
    chunk = max(16, min(256, -(-n // (n_workers * 4))))
    starts = list(range(0, n, chunk))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, desc="decode", unit="img")
    lock = threading.Lock()

    bgr = color == "bgr"

    def work(start: int) -> None:
        stop = min(n, start + chunk)
        for i in range(start, stop):
            src = source if source is None or isinstance(source, str) else source[i]
            img = _decode(bins[i], first_index + i, size, src)
            out[i] = img[..., ::-1] if bgr else img
        if bar is not None:
            with lock:
                bar.update(stop - start)

    try:
        with quiet_bomb_warnings():
            if n_workers == 1:
                for s in starts:
                    work(s)
            else:
                with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="pymfn-decode") as pool:
                    # list() re-raises the first worker exception (lowest chunk first)
                    list(pool.map(work, starts))
    finally:
        if bar is not None:
            bar.close()
    return out


def mirror(images: np.ndarray) -> np.ndarray:
    """Horizontal mirror of NHWC images (the flip of flip TTA: width is axis 2, not axis 1)."""
    arr = np.asarray(images)
    if arr.ndim != 4:
        raise ValueError(f"images: expected NHWC [N, H, W, C], got shape {arr.shape}")
    return np.ascontiguousarray(arr[:, :, ::-1])


# One decoded LFW kept in memory: evaluation loops (several models, flip on/off) reload it often.
_cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
_cache_lock = threading.Lock()


def clear_cache() -> None:
    """Drop the in-process cache of ``load_lfw``."""
    with _cache_lock:
        _cache.clear()


def load_lfw(path: str | os.PathLike, color: str = "rgb", cache: bool = True,
             progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Decoded LFW images ``uint8 [2P, 112, 112, 3]`` (pair order) and ``issame`` ``bool [P]``.

    With ``cache=True`` the last result is kept in memory keyed by (path, size, mtime, color), so repeated
    calls are free; the arrays returned are then read-only (copy them before modifying).
    """
    color = _check_color(color)
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"{p}: lfw.bin file not found") from None
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns, color)
    if cache:
        with _cache_lock:
            hit = _cache.get(key)
        if hit is not None:
            return hit
    bins, issame = read_lfw_bin(p)
    images = decode_images(bins, color=color, progress=progress, source=str(p))
    if cache:
        images.setflags(write=False)
        issame.setflags(write=False)
        with _cache_lock:
            _cache.clear()  # keep one decoded set (~450 MB for LFW) at most
            _cache[key] = (images, issame)
    return images, issame

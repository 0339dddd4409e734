"""Read InsightFace's ``lfw.bin`` and decode its JPEGs quickly.

The file is a pickle of ``(bins, issame)``: ``bins`` holds 2 * len(issame) JPEG byte strings in pair
order (image 2k and 2k+1 form pair k). Original InsightFace files are Python 2 pickles, so we always
unpickle with ``encoding="bytes"`` and accept every form an item can take after that (``bytes``,
``bytearray``, ``str``, numpy ``uint8``/``S`` arrays).

Unpickling runs a restricted ``Unpickler`` that only resolves the few numpy/builtin names such a file
needs: a downloaded ``.bin`` must not be able to execute code on load.

Decoding uses Pillow (libjpeg-turbo) in a small thread pool: the decoder releases the GIL, so two
cores decode 12,000 112x112 faces in about 2 s. Images are never resized: a size mismatch is an error.
"""
from __future__ import annotations

import io
import os
import pickle
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

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


# (module, name) pairs an lfw.bin pickle may legitimately reference. Python 2 numpy pickles name
# numpy.core.*; numpy 2 moved it to numpy._core (numpy.core still resolves, with a warning).
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy", "bool_"),
    ("builtins", "bytearray"),
    ("__builtin__", "bytearray"),
    ("builtins", "bytes"),
    ("_codecs", "encode"),  # Python 3 bytes pickled with protocol < 3
    ("copy_reg", "_reconstructor"),
    ("copyreg", "_reconstructor"),
    ("builtins", "object"),
    ("__builtin__", "object"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name} (not part of an lfw.bin file)")
        if module == "numpy.core.multiarray":  # avoid numpy 2's deprecation shim
            module = "numpy._core.multiarray"
        elif module == "__builtin__":
            module = "builtins"
        elif module == "copy_reg":
            module = "copyreg"
        return super().find_class(module, name)


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


def _as_issame(raw: Any, path: str) -> np.ndarray:
    try:
        arr = np.asarray(raw)
    except Exception as exc:  # ragged or exotic objects
        raise LfwFormatError(path, f"issame is not a flat list of booleans ({exc})") from None
    if arr.ndim != 1:
        raise LfwFormatError(path, f"issame has shape {arr.shape}; expected a flat list of booleans")
    if arr.dtype == np.bool_:
        return arr.copy()
    if arr.dtype.kind in "iuf" or arr.dtype == object:
        try:
            ok = np.isin(arr, [0, 1]).all()
        except TypeError:
            ok = False
        if ok:
            return arr.astype(bool)
    raise LfwFormatError(path, f"issame holds {arr.dtype} values that are not all booleans/0/1")


def read_lfw_bin(path: str | os.PathLike) -> tuple[list[bytes], np.ndarray]:
    """Read ``(bins, issame)`` from an InsightFace ``.bin`` file.

    Returns the JPEG byte strings (in pair order) and ``issame`` as a bool array. Raises
    ``FileNotFoundError`` for a missing file and ``LfwFormatError`` (naming the file) for a corrupt pickle,
    a wrong structure, or ``len(bins) != 2 * len(issame)``.
    """
    p = Path(path)
    if not p.is_file():
        if p.exists():
            raise LfwFormatError(p, "is not a regular file; expected an lfw.bin pickle")
        raise FileNotFoundError(f"{p}: lfw.bin file not found")
    try:
        with open(p, "rb") as f:
            obj = _RestrictedUnpickler(f, encoding="bytes").load()
    except Exception as exc:  # corrupt data can make the unpickler fail in many ways; none may escape raw
        raise LfwFormatError(p, f"not a valid lfw.bin pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, (tuple, list)) or len(obj) != 2:
        raise LfwFormatError(p, f"pickle holds {type(obj).__name__}; expected a (bins, issame) pair")
    raw_bins, raw_issame = obj
    if not isinstance(raw_bins, (list, tuple, np.ndarray)):
        raise LfwFormatError(p, f"bins is {type(raw_bins).__name__}; expected a list of JPEG byte strings")
    issame = _as_issame(raw_issame, str(p))
    if len(issame) == 0:
        raise LfwFormatError(p, "issame is empty; expected at least one pair")
    if len(raw_bins) != 2 * len(issame):
        raise LfwFormatError(p, f"wrong pair count: {len(raw_bins)} images for {len(issame)} pairs "
                                f"(expected len(bins) == 2 * len(issame) = {2 * len(issame)})")
    bins = [_as_bytes(item, i, str(p)) for i, item in enumerate(raw_bins)]
    return bins, issame


def decode_image(data: bytes, index: int = 0, size: int | None = 112, source: str | None = None) -> np.ndarray:
    """Decode one encoded image to uint8 RGB ``[H, W, 3]``.

    Grayscale/CMYK/palette images are converted to RGB (as OpenCV's ``IMREAD_COLOR`` does); when ``size``
    is given the image must be exactly ``size x size`` — nothing is resized, cropped or padded.
    """
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.mode != "RGB":
                im = im.convert("RGB")
            arr = np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError(index, source, f"cannot decode image data ({exc})") from None
    if size is not None and arr.shape[:2] != (size, size):
        raise ImageDecodeError(index, source, f"is {arr.shape[1]}x{arr.shape[0]}; expected {size}x{size} "
                                              "(images are never resized)")
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
            img = decode_image(bins[i], first_index + i, size, src)
            out[i] = img[..., ::-1] if bgr else img
        if bar is not None:
            with lock:
                bar.update(stop - start)

    try:
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

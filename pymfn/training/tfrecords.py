"""Training data: TFRecord shards from an image tree or InsightFace RecordIO, and the tf.data input pipeline.

Why TFRecords: the reference trains from TFRecord on Ascend 910 (TF 1.15 + npu_bridge), where feeding
from Python would starve the device. The shards hold the *encoded* JPEG plus an int64 label, so they stay
as small as the source and decoding happens in the pipeline.

Everything TensorFlow here uses ``tensorflow.compat.v1`` graph-mode APIs that also exist in TF 1.15.

Output layout of ``pymfn data tfrecord --out DIR``::

    DIR/train-00000-of-00004.tfrecord ...   features: image/encoded (bytes, JPEG), image/label (int64)
    DIR/labels.txt                          folder source only: line i = identity folder of label i
    DIR/pymfn_data.json                     num_classes, num_images, shard names and counts, image size, source
"""
from __future__ import annotations

import io
import json
import math
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from pymfn.files.atomic import atomic_dir, hold, json_bytes, refuse_overlap
from pymfn.errors import CommandError
from pymfn.files.outputs import check_output_dir
from pymfn.files.readfile import InputFileError, file_kind, read_regular_file

META_NAME = "pymfn_data.json"
LABELS_NAME = "labels.txt"
SHARD_PATTERN = "train-{index:05d}-of-{count:05d}.tfrecord"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
FEATURE_IMAGE = "image/encoded"
FEATURE_LABEL = "image/label"
MAX_LABEL = 2**31 - 2  # labels are int32 in the pipeline and num_classes = max label + 1 must fit too


class DataError(ValueError):
    """Bad training data; the message names the offending file or directory."""


# ----------------------------------------------------------------------------------------------------------
# sources


@dataclass
class ImageTree:
    """An identity-per-folder image tree: ``root/Name/*.jpg``; label = index of Name in sorted order."""

    root: Path
    files: list[tuple[Path, int]]
    class_names: list[str]
    empty_folders: list[str]


def _require_image_file(path: Path) -> Path:
    """``path`` (listed for its image suffix) if it is a regular file, following symlinks; anything else is
    an error naming it, as every other pymfn command that lists images does: a FIFO named a.jpg would
    block the reader forever, and skipping a dangling link or a folder named a.jpg loses an image silently."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"{path}: dangling symbolic link (its target does not exist); expected an image file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc}); expected an image file") from None
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"{path}: is a {file_kind(st.st_mode)}, not a regular file (expected an image file)")
    return path


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS


def scan_image_tree(root: str | os.PathLike) -> ImageTree:
    """List the images of an identity-per-folder tree. Folders with no image files are skipped (and
    reported in ``empty_folders``) so they take no label; a tree with no images at all is an error, and
    so is an entry with an image suffix that is not a regular file (a FIFO, a dangling link, a folder)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image tree not found or not a directory: {root}")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files: list[tuple[Path, int]] = []
    names: list[str] = []
    empty: list[str] = []
    for folder in folders:
        images = sorted(_require_image_file(p) for p in folder.iterdir() if _is_image_name(p.name))
        if not images:
            empty.append(folder.name)
            continue
        label = len(names)
        names.append(folder.name)
        files.extend((p, label) for p in images)
    if not files:
        rec_parts = sorted(p.name for p in root.iterdir() if p.suffix == ".idx" or p.name == "property")
        if rec_parts:  # a RecordIO set missing its .rec (format detection sends .rec-less folders here)
            raise DataError(f"{root}: an InsightFace RecordIO folder ({', '.join(rec_parts)}) without its .rec data "
                            "file: train.rec is missing (it must sit beside train.idx)")
        loose = [p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
        hint = (f" ({len(loose)} images lie directly in it: put each identity's images in its own sub-folder)"
                if loose else "")
        raise DataError(f"no images found in image tree {root}: expected one sub-folder per identity holding "
                        f"{'/'.join(IMAGE_EXTENSIONS)} files{hint}")
    return ImageTree(root, files, names, empty)


def check_image(data: bytes, where: str, image_size: int | None = 112, verify: bool = True) -> bytes:
    """Return JPEG bytes for ``data`` after checking it decodes (fully) to an RGB-convertible image of
    ``image_size`` x ``image_size``. Non-JPEG images (PNG, BMP) are re-encoded as JPEG (quality 95),
    since the shards promise JPEG. ``where`` names the source in errors."""
    is_jpeg = data[:3] == b"\xff\xd8\xff"
    if not verify and is_jpeg:
        return data
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # full decode: catches truncated files that Image.open alone accepts
            size, fmt = img.size, img.format
            if image_size is not None and size != (image_size, image_size):
                raise DataError(f"{where}: image is {size[0]}x{size[1]}, expected {image_size}x{image_size} "
                                "(align/resize faces first, or pass --image-size)")
            if fmt == "JPEG":
                return data
            buf = io.BytesIO()
            img.convert("RGB").save(buf, format="JPEG", quality=95)
            return buf.getvalue()
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{where}: unreadable or corrupt image ({exc})") from None


MAX_IMAGE_FILE_BYTES = 64 << 20  # far above any encoded face crop; bounds what one file can make us read


def _read_file(path: Path) -> bytes:
    """An image file's bytes, opened non-blocking and only if it is (still) a regular file."""
    try:
        return read_regular_file(path, "an image file", max_bytes=MAX_IMAGE_FILE_BYTES)
    except InputFileError as exc:
        raise DataError(str(exc)) from None
    except OSError as exc:
        text = exc.strerror or str(exc)
        raise DataError(text if str(path) in text else f"{path}: cannot read image file ({text})") from None


def find_recordio(path: str | os.PathLike) -> tuple[Path, Path]:
    """Locate (train.rec, train.idx) from a directory or a .rec path; the .idx is required."""
    path = Path(path)
    if path.is_dir():
        recs = sorted(path.glob("*.rec"))
        if not recs:
            raise DataError(f"{path}: no .rec file in this folder (an InsightFace RecordIO set is train.rec with "
                            "train.idx beside it)")
        rec = path / "train.rec" if (path / "train.rec").exists() else recs[0]
        if len(recs) > 1 and rec.name != "train.rec":
            raise DataError(f"several .rec files in {path} and none is train.rec: pass the .rec path")
    elif path.is_file():
        rec = path
    else:
        raise DataError(f"RecordIO source not found: {path}")
    idx = rec.with_suffix(".idx")
    if not idx.is_file():
        raise DataError(f"RecordIO index missing: {idx} (InsightFace sets ship train.rec with train.idx; "
                        "random access and the image list need it)")
    return rec, idx


def detect_format(path: str | os.PathLike) -> str:
    """'recordio' for a .rec file or a directory holding one, else 'folder'."""
    path = Path(path)
    if path.is_file() and path.suffix == ".rec":
        return "recordio"
    if path.is_dir() and any(path.glob("*.rec")):
        return "recordio"
    return "folder"


# ----------------------------------------------------------------------------------------------------------
# TFRecord writing


def _tf():
    import tensorflow.compat.v1 as tf

    return tf


def make_example(jpeg: bytes, label: int):
    """One tf.train.Example with the two features the pipeline parses."""
    tf = _tf()
    return tf.train.Example(features=tf.train.Features(feature={
        FEATURE_IMAGE: tf.train.Feature(bytes_list=tf.train.BytesList(value=[jpeg])),
        FEATURE_LABEL: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
    }))


def write_shards(examples: Iterable[tuple[bytes, int]], out_dir: str | os.PathLike, num_shards: int,
                 total: int, meta: dict, labels: Sequence[str] | None = None, desc: str = "tfrecord") -> dict:
    """Write (jpeg, label) pairs round-robin into ``num_shards`` TFRecord files under ``out_dir``.

    The directory is built under a temp name and renamed into place at the end, so an interrupted run
    leaves no half-written dataset. Returns the metadata written to pymfn_data.json.
    """
    from tqdm import tqdm

    tf = _tf()
    if num_shards < 1:
        raise DataError(f"--shards must be >= 1, got {num_shards}")
    num_shards = min(num_shards, max(total, 1))
    names = [SHARD_PATTERN.format(index=i, count=num_shards) for i in range(num_shards)]
    counts = [0] * num_shards
    max_label = -1
    with atomic_dir(out_dir) as tmp:
        writers = [tf.io.TFRecordWriter(str(tmp / n)) for n in names]
        try:
            # disable=None: a bar on a terminal only; in logs it would bury the one-line error
            for i, (jpeg, label) in enumerate(tqdm(examples, total=total, desc=desc, unit="img", disable=None)):
                writers[i % num_shards].write(make_example(jpeg, label).SerializeToString())
                counts[i % num_shards] += 1
                max_label = max(max_label, int(label))
        finally:
            for w in writers:
                w.close()
        n = sum(counts)
        if n == 0:
            raise DataError("no examples to write")
        # Byte sizes let every later run detect a truncated shard up front, even one cut exactly at a
        # record boundary, which TensorFlow's reader takes for a clean end of file.
        sizes = [(tmp / name).stat().st_size for name in names]
        meta = dict(meta, num_images=n, shards=names, shard_counts=counts, shard_bytes=sizes)
        meta.setdefault("num_classes", max_label + 1)
        if labels is not None:
            (tmp / LABELS_NAME).write_text("".join(f"{name}\n" for name in labels), encoding="utf-8")
        (tmp / META_NAME).write_bytes(json_bytes(meta))
    return meta


def tfrecords_from_tree(root: str | os.PathLike, out_dir: str | os.PathLike, num_shards: int = 4,
                        image_size: int | None = 112, seed: int = 0, verify: bool = True) -> dict:
    """Image tree -> TFRecord shards. Examples are written in a seeded random order so every shard
    mixes identities (the pipeline's shuffle buffer is then enough)."""
    tree = scan_image_tree(root)
    if tree.empty_folders:
        print(f"note: {len(tree.empty_folders)} folder(s) without images skipped (no label given), e.g. "
              f"{tree.empty_folders[0]!r}", file=sys.stderr)
    order = np.random.RandomState(seed).permutation(len(tree.files)) if seed >= 0 else range(len(tree.files))

    def gen() -> Iterator[tuple[bytes, int]]:
        for i in order:
            path, label = tree.files[i]
            yield check_image(_read_file(path), str(path), image_size, verify), label

    meta = {"source": str(Path(root).resolve()), "format": "folder", "num_classes": len(tree.class_names),
            "image_size": image_size, "seed": seed}
    return write_shards(gen(), out_dir, num_shards, len(tree.files), meta, labels=tree.class_names)


def tfrecords_from_recordio(src: str | os.PathLike, out_dir: str | os.PathLike, num_shards: int = 4,
                            image_size: int | None = 112, seed: int = 0, verify: bool = True) -> dict:
    """InsightFace train.rec/train.idx -> TFRecord shards (labels taken from each IRHeader)."""
    from pymfn.training import recordio

    rec, idx = find_recordio(src)
    reader = recordio.RecordReader(rec, idx)
    try:
        keys = recordio.insightface_image_keys(reader)
        if not keys:
            raise DataError(f"{rec}: no image records")
        order = [keys[i] for i in np.random.RandomState(seed).permutation(len(keys))] if seed >= 0 else keys
        labels_seen: set[int] = set()

        def gen() -> Iterator[tuple[bytes, int]]:
            for key in order:
                where = f"{rec} record {key}"
                header, img = recordio.unpack(reader.read_idx(key), where=where)
                value = header.label[0] if isinstance(header.label, tuple) else header.label
                # The pipeline reads labels as int32; NaN, fractions and huge values mean a corrupt record.
                if not (math.isfinite(value) and value == int(value) and 0 <= value <= MAX_LABEL):
                    raise DataError(f"{where}: label {value} is not an integer in 0..{MAX_LABEL} (corrupt record?)")
                labels_seen.add(int(value))
                yield check_image(img, where, image_size, verify), int(value)

        meta = {"source": str(rec.resolve()), "format": "recordio", "image_size": image_size, "seed": seed}
        meta = write_shards(gen(), out_dir, num_shards, len(order), meta)
    finally:
        reader.close()
    missing = meta["num_classes"] - len(labels_seen)
    if missing:
        print(f"note: labels run 0..{meta['num_classes'] - 1} but {missing} of them have no image", file=sys.stderr)
    return meta


# ----------------------------------------------------------------------------------------------------------
# reading: metadata and the tf.data pipeline


def load_meta(data_dir: str | os.PathLike) -> dict:
    """pymfn_data.json of a TFRecord directory, with the shard files checked to exist."""
    data_dir = Path(data_dir)
    path = data_dir / META_NAME
    if not path.is_file():
        raise DataError(f"{path} not found: {data_dir} is not a directory written by `python -m pymfn data tfrecord`")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        int(meta["num_classes"]), int(meta["num_images"]), list(meta["shards"])
        if meta.get("image_size") is not None:
            int(meta["image_size"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(f"{path}: corrupt metadata ({type(exc).__name__}: {exc})") from None
    if not all(isinstance(name, str) and name and "/" not in name and name not in (".", "..")
               for name in meta["shards"]):
        raise DataError(f"{path}: corrupt metadata (shard names must be plain file names)")
    n = len(meta["shards"])
    counts = meta.get("shard_counts") or [None] * n
    sizes = meta.get("shard_bytes") or [None] * n  # absent in data written before sizes were recorded
    for name, count, expected in zip(meta["shards"], counts, sizes, strict=False):
        shard = data_dir / name
        if not shard.is_file():
            raise DataError(f"{shard}: shard listed in {path} is missing (or not a regular file)")
        # Cheap before training. (A full scan of framing and checksums runs only if the pipeline fails:
        # find_damaged_shards.)
        size = shard.stat().st_size
        rewrite = "write the shards again with `python -m pymfn data tfrecord`"
        if isinstance(expected, int) and size != expected:
            state = "truncated" if size < expected else "changed"
            raise DataError(f"{shard}: {state} shard: {size} bytes, {path} records {expected}; {rewrite}")
        if isinstance(count, int) and size < 16 * count:  # every record takes at least 16 bytes of framing
            raise DataError(f"{shard}: truncated shard: {size} bytes cannot hold the {count} records {path} "
                            f"lists; {rewrite}")
    return meta


def find_damaged_shards(files: Sequence[str]) -> list[tuple[str, str]]:
    """(shard, reason) for every TFRecord file whose record framing or checksums are broken.

    Run after the input pipeline failed: tf.data reports "truncated record at N" or "corrupted record"
    without saying which of the interleaved shards it was reading. TensorFlow's own record reader checks
    every length and CRC at disk speed, so even large sets are scanned in seconds to minutes, and only
    when training has already stopped.
    """
    tf = _tf()
    damaged = []
    for name in files:
        try:
            for _ in tf.io.tf_record_iterator(name):
                pass
        except (tf.errors.OpError, OSError) as exc:
            damaged.append((name, tf_error_text(exc).replace("' failed with ", ": ")))
    return damaged


def tf_error_text(exc: BaseException) -> str:
    """The informative line of a TensorFlow error message.

    TF 2.x messages start with "Graph execution error:", then the Python stack where the op was built,
    and bury the reason (e.g. "truncated record at 5000") after them; the first line alone says nothing.
    """
    text = getattr(exc, "message", None) or str(exc)
    for line in text.splitlines():
        line = line.strip()
        if (not line or line.startswith(("Graph execution error", "Detected at node", "File ", "Node: ", "[[",
                                         "Instructions for updating"))):
            continue
        return line.rstrip(":")
    return type(exc).__name__


def normalise(image_uint8):
    """uint8 RGB -> float32 ``(x - 127.5) / 128``, the reference's input convention."""
    tf = _tf()
    return (tf.cast(image_uint8, tf.float32) - 127.5) * 0.0078125


def decode_image(encoded, image_size: int = 112, flip: bool = False, seed: int | None = None,
                 jpeg_only: bool = True):
    """Encoded JPEG (or, with ``jpeg_only=False``, also PNG/BMP) -> normalised float32 [size, size, 3]
    RGB, with an optional random mirror.

    JPEGs are decoded with the accurate integer IDCT, the one Pillow and OpenCV use, so training sees
    the same pixels as evaluation and deployment (TF's default fast IDCT differs by a few levels).
    """
    tf = _tf()

    def jpeg():
        return tf.image.decode_jpeg(encoded, channels=3, dct_method="INTEGER_ACCURATE")

    if jpeg_only:
        img = jpeg()
    else:
        img = tf.cond(tf.image.is_jpeg(encoded), jpeg,
                      lambda: tf.reshape(tf.image.decode_image(encoded, channels=3), [image_size, image_size, 3]))
    img = tf.ensure_shape(img, [image_size, image_size, 3])
    if flip:
        img = tf.image.random_flip_left_right(img, seed=seed)
    return normalise(img)


def parse_example(serialized, image_size: int = 112, flip: bool = False, seed: int | None = None):
    tf = _tf()
    feats = tf.parse_single_example(serialized, {
        FEATURE_IMAGE: tf.FixedLenFeature([], tf.string),
        FEATURE_LABEL: tf.FixedLenFeature([], tf.int64),
    })
    return decode_image(feats[FEATURE_IMAGE], image_size, flip, seed), tf.cast(feats[FEATURE_LABEL], tf.int32)


@dataclass
class TrainSource:
    """What the trainer needs to know about its data before building the graph."""

    kind: str  # "tfrecord" or "folder"
    num_classes: int
    num_images: int
    image_size: int
    files: list[str]  # TFRecord shards, or image paths
    labels: list[int] | None = None  # per image (folder only)


def open_source(path: str | os.PathLike, image_size: int = 112, verify: bool = True) -> TrainSource:
    """A TFRecord directory (has pymfn_data.json) or, directly, an identity-per-folder image tree.

    Image trees are decoded once up front (``verify``), so a corrupt file is reported by name now
    rather than as an anonymous decode error inside the TF pipeline mid-training.
    """
    path = Path(path)
    if (path / META_NAME).is_file():
        meta = load_meta(path)
        size = meta.get("image_size") or image_size
        return TrainSource("tfrecord", int(meta["num_classes"]), int(meta["num_images"]), int(size),
                           [str(path / n) for n in meta["shards"]])
    if not path.is_dir():
        raise DataError(f"training data not found: {path}")
    if any(path.glob("*.tfrecord")):
        raise DataError(f"{path} holds .tfrecord files but no {META_NAME}: write it with `python -m pymfn data tfrecord`")
    tree = scan_image_tree(path)
    if verify:
        from tqdm import tqdm

        for p, _ in tqdm(tree.files, desc="checking images", unit="img", leave=False, disable=None):
            check_image(_read_file(p), str(p), image_size)
    return TrainSource("folder", len(tree.class_names), len(tree.files), image_size,
                       [str(p) for p, _ in tree.files], [label for _, label in tree.files])


def train_dataset(source: TrainSource, batch_size: int, *, seed: int = 0, flip: bool = True,
                  shuffle_buffer: int = 10000, parallel: int = 2, repeat: bool = True):
    """Decode, random flip, normalise, shuffle, batch (fixed size: the NPU needs static shapes), prefetch.

    Returns a ``tf.data.Dataset`` of (images [B,112,112,3] float32, labels [B] int32).
    """
    tf = _tf()
    if batch_size < 1:
        raise DataError(f"batch size must be >= 1, got {batch_size}")
    if source.num_images < batch_size:
        raise DataError(f"only {source.num_images} training images for batch size {batch_size}")
    buffer = max(1, min(shuffle_buffer, source.num_images))
    if source.kind == "tfrecord":
        files = tf.data.Dataset.from_tensor_slices(source.files)
        ds = files.interleave(tf.data.TFRecordDataset, cycle_length=max(1, min(len(source.files), 4)),
                              block_length=1)
        ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        ds = ds.map(lambda s: parse_example(s, source.image_size, flip, seed), num_parallel_calls=parallel)
    else:
        assert source.labels is not None
        ds = tf.data.Dataset.from_tensor_slices((source.files, np.asarray(source.labels, np.int32)))
        ds = ds.shuffle(len(source.files), seed=seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        ds = ds.map(lambda p, y: (decode_image(tf.read_file(p), source.image_size, flip, seed, jpeg_only=False), y),
                    num_parallel_calls=parallel)
    return ds.batch(batch_size, drop_remainder=True).prefetch(2)


def write_tfrecords(src: str | os.PathLike, out: str | os.PathLike, *, shards: int = 4, fmt: str = "auto",
                    image_size: int = 112, seed: int = 0, verify: bool = True) -> dict:
    """TFRecord shards of the image tree or RecordIO set ``src`` into the folder ``out``; returns its metadata.

    ``fmt``: auto, folder or recordio; ``image_size`` 0 disables the size check; ``seed`` -1 keeps source
    order. ``out`` is replaced atomically, and only when it is empty or an earlier output (holds META_NAME).
    Errors name the values as the ``pymfn data tfrecord`` options that set them.
    """
    if shards < 1:
        raise CommandError(f"--shards must be >= 1, got {shards}")
    if image_size < 0:
        raise CommandError(f"--image-size must be >= 0 (0 disables the check), got {image_size}")
    if not -1 <= seed < 2**32:
        raise CommandError(f"--seed must be -1 (source order) or 0..2**32-1, got {seed}")
    refuse_overlap([(f"--out {out}", Path(out))], [(f"--from {src}", Path(src))])
    with hold([out], option="--out"):  # a second run into the same --out is refused now, not replaced later
        check_output_dir(out, "--out", marker=META_NAME)  # before minutes of decoding, not after
        fmt = detect_format(src) if fmt == "auto" else fmt
        size = image_size or None
        if fmt == "recordio":
            return tfrecords_from_recordio(src, out, shards, size, seed, verify)
        return tfrecords_from_tree(src, out, shards, size, seed, verify)

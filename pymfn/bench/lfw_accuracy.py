"""LFW verification accuracy (InsightFace protocol) of a model on lfw.bin, a folder of .bin inputs or a packed
file, of an msame output folder, or of embeddings already computed: ``accuracy(...) -> AccuracyResult``."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

import pymfn
from pymfn.bench import report
from pymfn.bench.naming import opt
from pymfn.bench.perf import choose_batch, input_spec, resolve_model
from pymfn.bench.result import Result
from pymfn.errors import CommandError
from pymfn.metrics import lfw as lfw_eval
from pymfn.runtime.engines import ENGINE_BY_SUFFIX


def _is_pickle(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(1) == b"\x80"  # pickle protocol >= 2 opcode PROTO


def _default_batch(engine: Any, requested: int | None) -> int:
    offered = list(engine.supported_batches())
    if requested is not None:
        return choose_batch(engine, requested)
    if not offered:
        return 4  # dynamic batch: with 2 requests in flight, batch 4 measured fastest here (277 vs 266 img/s at 8)
    return max(b for b in offered if b <= 64) if min(offered) <= 64 else min(offered)


FLIP_FORMULA = {"sum": "normalise(emb + emb_mirror)",
                "concat": "normalise([normalise(emb), normalise(emb_mirror)])"}

# Images normalised per chunk, not all at once: 12,000 LFW faces are 1.8 GB as float32, and allocating
# and filling that costs more (page faults) than the conversion itself.
EMBED_CHUNK = 512


def embed_array(engine: Any, samples: np.ndarray, batch: int, inflight: int = 1) -> np.ndarray:
    """Run every sample through the engine (padding of the last batch dropped) -> float32 [N, E]."""
    core = pymfn.load_core()
    reader = core.ArrayDataset(np.ascontiguousarray(samples)).reader(batch, 2)
    engine.prepare(batch)
    out = core.infer_all(engine, reader, inflight)[0]
    return np.asarray(out, dtype=np.float32).reshape(len(samples), -1)


def embed_images(engine: Any, images: np.ndarray, dtype: np.dtype, batch: int, inflight: int = 1,
                 mirrored: bool = False, progress: bool = False) -> np.ndarray:
    """Embeddings of uint8 NHWC ``images`` (or of their mirrors), preprocessing chunk by chunk.

    Float models get the reference normalisation ``(x - 127.5) * 0.0078125``; uint8 (AIPP) models get
    the pixels as they are. Chunks are whole multiples of ``batch`` so only the very last batch is padded.
    """
    chunk = max(batch, EMBED_CHUNK // batch * batch)
    parts = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(images), desc="embed (mirror)" if mirrored else "embed", unit="img", leave=False)
    try:
        for start in range(0, len(images), chunk):
            part = images[start:start + chunk]
            if mirrored:
                part = part[:, :, ::-1]
            parts.append(embed_array(engine, _prepare_images(part, dtype), batch, inflight))
            if bar is not None:
                bar.update(len(part))
    finally:
        if bar is not None:
            bar.close()
    return np.concatenate(parts) if parts else np.empty((0, 0), np.float32)


def _prepare_images(images: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype == np.uint8:
        return np.ascontiguousarray(images)  # AIPP-style model: normalisation happens inside
    out = np.empty(images.shape, dtype=np.float32)
    np.subtract(images, np.float32(127.5), out=out, dtype=np.float32)
    out *= np.float32(0.0078125)
    return out if dtype == np.float32 else out.astype(dtype)


PROTOCOL = ("InsightFace/FaceNet: squared L2 on L2-normalised embeddings, 10 contiguous folds, "
            "thresholds arange(0,4,0.01), VAL@FAR=1e-3 on arange(0,4,0.001)")
MIN_PAIRS = 20  # the 10-fold protocol: two pairs per fold at the very least


def _load_issame(issame: Any, data: Path, pairs: int | None = None) -> np.ndarray:
    """``issame`` (labels, or a file of them), else the labels image2bin wrote for ``data``; one rule for both
    (pymfn.inputs.pairs)."""
    from pymfn.inputs.pairs import as_issame, load_issame

    if issame is not None and not isinstance(issame, (str, os.PathLike)):
        return as_issame(issame, None, pairs)
    if issame is not None:
        return load_issame(issame, pairs)
    from pymfn.inputs.image2bin import read_issame

    try:
        return read_issame(data, pairs)  # the sidecar image2bin writes (.issame.npy), checked against its pack
    except FileNotFoundError as exc:
        raise CommandError(f"{opt('data')} {data}: no pair labels ({exc}); pass {opt('issame')} "
                           "lfw.bin|issame.npy|issame.txt") from None


def _embedding_sizes(embedding_size: Sequence[int] | None, model: str | os.PathLike | None,
                     engine: str | None) -> tuple[tuple[int, ...], str]:
    """The values per file an msame output folder must hold, and where that expectation comes from."""
    if embedding_size:
        if any(e <= 0 for e in embedding_size):
            raise CommandError(f"{opt('embedding_size')} {list(embedding_size)}: expected positive numbers of values")
        return tuple(int(e) for e in embedding_size), opt("embedding_size")
    if model is None:
        return lfw_eval.MOBILEFACENET_EMBEDDING_SIZES, "MobileFaceNet"
    from pymfn.runtime.engines import open_engine

    path, _, _ = resolve_model(str(model), quiet=True)
    opened = open_engine(str(path), engine=engine, threads=1)
    outputs = list(opened.outputs())
    dims = [int(d) for d in outputs[0].shape[1:]] if outputs else []
    if not dims or any(d <= 0 for d in dims):
        raise CommandError(f"{opt('model')} {path}: output 0 has no fixed size ({[list(o.shape) for o in outputs]}); "
                           f"pass {opt('embedding_size')}")
    return (int(np.prod(dims)),), f"{opt('model')} {path.name}"


def embeddings_source(data: Path, model: Path, mirrored: bool = False) -> str:
    """How errors about computed embeddings name where they came from: the data and the model that ran
    ("row 5" is then sample 5 of the data)."""
    return f"{opt('data')} {data}{' (mirrored)' if mirrored else ''} embedded by {model}"


def _looks_like_msame_output(folder: Path) -> bool:
    from pymfn.inputs import msame

    return msame.is_msame_output(folder)


def _lfw_images(data: Path, bgr: bool, pairs: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Decoded images of an lfw.bin (the first ``pairs`` pairs when given) and their labels."""
    from pymfn.inputs.lfw_bin import decode_images, load_lfw, read_lfw_bin

    color = "bgr" if bgr else "rgb"
    if pairs is None:
        return load_lfw(data, color=color)
    bins, issame = read_lfw_bin(data)
    if pairs > len(issame):
        raise CommandError(f"{opt('pairs')} {pairs}: {data} holds {len(issame)} pairs")
    return decode_images(bins[:2 * pairs], color=color, source=str(data)), np.asarray(issame[:pairs])


@dataclass
class AccuracyResult(Result):
    """LFW verification figures (``verification``) and how they were obtained: the data, the model and engine
    that embedded it (or the msame folder / array the embeddings came from), the precision that ran, timing.

    Accuracies are fractions (0.9927, not 99.27). ``to_dict()`` is the JSON ``pymfn bench accuracy --json``
    writes; ``report()`` the text it prints; ``plot(path)`` the ROC curve; ``warnings`` what it adds on stderr.
    """

    kind: ClassVar[str] = "accuracy"

    verification: lfw_eval.VerificationResult
    data: str | None                       # the file or folder given as data (None for an embeddings array)
    source: str                            # what it was read as ("lfw.bin (RGB)", "msame output folder", ...)
    flip: bool = False
    flip_mode: str | None = None           # "sum" | "concat" when flip is on
    model: str | None = None               # the model file that embedded the data (None: msame folder / array)
    engine: str | None = None              # "openvino" | "acl" | "tf" | "msame" | None (array)
    model_description: str | None = None
    batch: int | None = None
    inflight: int | None = None
    engine_properties: dict[str, str] | None = None
    precision_report: dict[str, Any] | None = None
    decode_s: float | None = None          # lfw.bin decoding time
    output_dtype: str | None = None        # msame folders: dtype the output files were read as
    embedding_size: int | None = None      # msame folders: values per file
    embedding_size_from: str | None = None
    images_embedded: int = 0               # images run through the model (twice the images with flip)
    embed_s: float = 0.0
    total_s: float = 0.0
    build_info: dict[str, Any] = field(default_factory=dict)
    host: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # printed before the figures (e.g. random weights)

    # ---------------------------------------------------------------- the figures
    @property
    def accuracy(self) -> float:
        """Mean test-fold accuracy (a fraction)."""
        return float(self.verification.accuracy)

    @property
    def accuracy_std(self) -> float:
        """Population standard deviation of the 10 fold accuracies."""
        return float(self.verification.accuracy_std)

    @property
    def thresholds(self) -> list[float]:
        """The squared-L2 threshold each training split chose, one per fold."""
        return [float(t) for t in self.verification.thresholds]

    @property
    def best_threshold(self) -> float:
        """The distance threshold the protocol chose: the median over its per-fold choices."""
        return float(np.median(self.verification.thresholds))

    @property
    def pairs(self) -> int:
        return int(self.verification.pairs)

    @property
    def fold_accuracy(self) -> list[float]:
        return [float(a) for a in self.verification.fold_accuracy]

    @property
    def val(self) -> float:
        """VAL (true accept rate) at FAR 1e-3, mean over folds."""
        return float(self.verification.val)

    @property
    def auc(self) -> float:
        return float(self.verification.auc)

    @property
    def eer(self) -> float:
        return float(self.verification.eer)

    @property
    def images_per_s(self) -> float | None:
        return (self.images_embedded / self.embed_s) if self.embed_s > 0 else None

    @property
    def protocol(self) -> str:
        return PROTOCOL + (f", flip = {FLIP_FORMULA[self.flip_mode]}" if self.flip and self.flip_mode else "")

    @property
    def warnings(self) -> list[str]:
        """What makes these figures less than they seem: the precision that ran is not the one asked for, too
        few pairs per fold, ... (the command line prints each as a warning on stderr)."""
        out = []
        if self.precision_report is not None and self.precision_report.get("check") != "ok":
            out.append(f"precision {self.precision_report['check']}")
        return out + list(self.verification.warnings)

    # ---------------------------------------------------------------- rendering
    def to_dict(self) -> dict[str, Any]:
        doc = self.verification.to_dict()
        doc.update({"data": self.data, "flip": self.flip, "flip_mode": self.flip_mode})
        if self.engine == "msame":
            doc.update({"source": self.source, "model": None, "engine": "msame", "output_dtype": self.output_dtype,
                        "embedding_size": self.embedding_size, "embedding_size_from": self.embedding_size_from})
        elif self.model is not None:
            doc.update({"model": self.model, "model_description": self.model_description, "engine": self.engine,
                        "batch": self.batch, "inflight": self.inflight, "engine_properties": self.engine_properties,
                        "precision_report": self.precision_report})
            if self.decode_s is not None:
                doc["decode_s"] = self.decode_s
            doc["source"] = self.source
        else:
            doc.update({"source": self.source, "model": None, "engine": None})
        doc["images_per_s"] = self.images_per_s
        doc["embed_s"] = self.embed_s
        doc["total_s"] = self.total_s
        doc["build_info"] = self.build_info
        doc["host"] = self.host
        doc["protocol"] = self.protocol
        return doc

    def report(self) -> str:
        v = self.verification
        flip = FLIP_FORMULA[self.flip_mode] if self.flip and self.flip_mode else "off"
        lines = list(self.notes)
        lines += [f"LFW verification — {self.model or self.data or self.source}",
                  f"  source        : {self.source}",
                  f"  pairs         : {v.pairs}   flip: {flip}",
                  f"  accuracy      : {v.accuracy * 100:.2f}% ± {v.accuracy_std * 100:.2f} (mean ± population std "
                  "over 10 folds)",
                  f"  VAL@FAR=1e-3  : {v.val * 100:.2f}% ± {v.val_std * 100:.2f} at FAR {v.far * 100:.3f}%",
                  f"  AUC / EER     : {v.auc:.4f} / {v.eer * 100:.2f}% (over all pairs)",
                  f"  thresholds    : {', '.join(f'{t:.2f}' for t in v.thresholds)}"]
        if self.images_per_s:
            lines.append(f"  embedding     : {self.images_embedded} images in {self.embed_s:.1f} s "
                         f"({self.images_per_s:.0f} images/s)")
        lines.append(f"  whole run     : {self.total_s:.1f} s")
        lines.append(f"  host          : {report.format_host(self.host)}")
        if self.precision_report is not None:
            from pymfn.runtime.precision import report_line

            lines.append(report_line(self.precision_report))
        return "\n".join(lines)

    def plot(self, path: str | os.PathLike) -> Path:
        """The ROC curve (averaged over the test folds) as PNG/PDF/SVG by suffix, written atomically."""
        lfw_eval.plot_roc(self.verification, path)
        return Path(path)


def accuracy(model: str | os.PathLike | np.ndarray | None = None, *, data: str | os.PathLike | None = None,
             issame: str | os.PathLike | Sequence[bool] | np.ndarray | None = None, engine: str | None = None,
             precision: str = "f32", threads: int = 0, batch: int | None = None, inflight: int | None = None,
             flip: bool = False, flip_mode: str = "sum", bgr: bool = False, pairs: int | None = None,
             output_dtype: str = "float16", embedding_size: int | Sequence[int] | None = None,
             progress: bool = False) -> AccuracyResult:
    """LFW verification accuracy with the InsightFace protocol (10 folds, squared L2 on normalised embeddings).

    What is measured follows from the arguments:

    * ``model`` (a .pb/.onnx/.xml/.om path, default the built-in MobileFaceNet) and ``data``: an lfw.bin (decoded
      here; ``bgr``, ``flip``/``flip_mode`` and ``pairs`` apply), a folder of per-image .bin inputs or a packed
      file (labels from ``issame`` or the ones image2bin wrote beside them), run through ``engine`` (default
      from the file type) at ``precision`` in batches of ``batch`` with ``inflight`` requests in flight;
    * ``data`` an msame output folder: its embeddings (``output_dtype``, ``embedding_size`` values per file,
      default the model's output size or MobileFaceNet's); ``issame`` is required;
    * ``model`` an array of embeddings in pair order (rows 2k, 2k+1 = pair k) with ``issame``: the protocol only.

    ``pairs`` keeps the first N pairs (at least 20; a subset is not the LFW figure). Errors raise
    ``CommandError``/``ValueError`` naming the parameter. ``progress`` shows progress bars on stderr.

    >>> import numpy as np, pymfn.bench as b
    >>> rng = np.random.default_rng(0)
    >>> a = rng.standard_normal((200, 64))
    >>> emb = np.repeat(a, 2, axis=0) + 0.1 * rng.standard_normal((400, 64))  # pairs of the same face
    >>> emb[3::4] = rng.standard_normal((100, 64))                          # every other pair: two faces
    >>> r = b.accuracy(emb, issame=[True, False] * 100)
    >>> r.pairs, r.accuracy
    (200, 1.0)

    On LFW (``PYMFN_SHARED`` holds lfw.bin), the first 200 pairs through the built-in model:

    >>> from pymfn import config
    >>> r = b.accuracy(data=config.lfw_bin_path(), pairs=200)  # doctest: +SKIP_WITHOUT_LFW
    >>> r.pairs, len(r.fold_accuracy), r.engine                # doctest: +SKIP_WITHOUT_LFW
    (200, 10, 'openvino')
    """
    if isinstance(model, np.ndarray) or (model is not None and not isinstance(model, (str, os.PathLike))):
        return _accuracy_of_embeddings(np.asarray(model), issame, pairs)
    core = pymfn.load_core()
    if data is None:
        raise CommandError(f"{opt('data')}: required (lfw.bin, a folder of .bin inputs, a packed file or an msame "
                           "output folder)")
    if flip_mode not in FLIP_FORMULA:
        raise CommandError(f"{opt('flip_mode')} {flip_mode!r}: expected one of {', '.join(FLIP_FORMULA)}")
    if pairs is not None and pairs < MIN_PAIRS:
        raise CommandError(f"{opt('pairs')} {pairs}: the 10-fold protocol needs at least {MIN_PAIRS} pairs")
    if batch is not None and batch < 1:
        raise CommandError(f"{opt('batch')} must be >= 1, got {batch}")
    if inflight is not None and not 1 <= inflight <= 64:
        raise CommandError(f"{opt('inflight')} must be in 1..64, got {inflight}")
    sizes_given = [embedding_size] if isinstance(embedding_size, int) else embedding_size
    data = Path(data)
    if not data.exists():
        raise CommandError(f"{opt('data')}: {data} does not exist (lfw.bin, a folder of .bin inputs, or an msame "
                           "output folder)")
    t_start = time.perf_counter()
    notes: list[str] = []
    fields: dict[str, Any] = {"data": str(data), "flip": bool(flip), "flip_mode": flip_mode if flip else None}
    embed_s = 0.0
    n_embedded = 0
    source = f"{opt('data')} {data}"  # what errors about the embeddings name (with the model, when one ran)

    if data.is_dir() and _looks_like_msame_output(data):
        if flip:
            raise CommandError(f"{opt('flip')} needs images; an msame output folder only holds embeddings")
        if pairs is not None:
            raise CommandError(f"{opt('pairs')}: applies to an lfw.bin; an msame output folder is scored whole")
        labels = _load_issame(issame, data)
        sizes, sizes_from = _embedding_sizes(sizes_given, model, engine)
        emb = lfw_eval.read_msame_embeddings(data, output_dtype, sizes, opt("output_dtype"), pairs=len(labels))
        fields.update({"source": "msame output folder", "engine": "msame", "output_dtype": output_dtype,
                       "embedding_size": int(emb.shape[1]), "embedding_size_from": sizes_from})
    else:
        path, description, pretrained = resolve_model(None if model is None else str(model), quiet=not progress)
        if not pretrained:
            notes.append("note: the default model has random weights (no pretrained weights under PYMFN_SHARED); "
                         "its accuracy is near chance — accuracy needs weights")
        from pymfn.runtime.engines import open_engine
        from pymfn.runtime.precision import precision_report, requested_for

        kind = engine or ENGINE_BY_SUFFIX.get(path.suffix.lower())
        inflight = inflight if inflight is not None else (1 if kind == "tf" else 2)
        opened = open_engine(str(path), engine=engine, precision=precision, threads=threads, inflight=inflight)
        info, shape, dtype = input_spec(opened)
        batch = _default_batch(opened, batch)
        fields.update({"model": str(path), "model_description": description, "engine": opened.kind, "batch": batch,
                       "inflight": inflight,
                       "engine_properties": {str(k): str(v) for k, v in dict(opened.properties()).items()},
                       "precision_report": precision_report(opened, requested_for(opened, precision), path)})
        if data.is_file() and _is_pickle(data):
            t0 = time.perf_counter()
            images, labels = _lfw_images(data, bgr, pairs)
            fields["decode_s"] = time.perf_counter() - t0
            if images.shape[1:] != shape and not (dtype == np.uint8 and images.shape[1:] == shape):
                raise CommandError(f"{opt('data')} {data}: images are {images.shape[1:]}, the model wants {shape}")
            t0 = time.perf_counter()
            emb = embed_images(opened, images, dtype, batch, inflight, progress=progress)
            n_embedded = len(images)
            source = embeddings_source(data, path)
            if flip:
                emb_flip = embed_images(opened, images, dtype, batch, inflight, mirrored=True, progress=progress)
                emb = lfw_eval.combine_flip(emb, emb_flip, flip_mode,
                                            names=(source, embeddings_source(data, path, mirrored=True)))
                n_embedded *= 2
            embed_s = time.perf_counter() - t0
            fields["source"] = f"lfw.bin ({'BGR' if bgr else 'RGB'})"
        elif data.is_dir() or data.is_file():
            if flip:
                raise CommandError(f"{opt('flip')} needs decoded images; use {opt('data')} lfw.bin (bins are already "
                                   "preprocessed)")
            if pairs is not None:
                raise CommandError(f"{opt('pairs')}: applies to an lfw.bin; a folder or packed file is scored whole")
            from pymfn.inputs.datasets import open_dataset

            ds = open_dataset(data, sample_bytes=info.sample_bytes, dtype=str(dtype), sample_shape=shape)
            count = getattr(ds, "sample_count", None)
            if count is not None and count % 2:
                raise CommandError(f"{opt('data')} {data}: {count} samples, not whole pairs")
            labels = _load_issame(issame, data, None if count is None else count // 2)  # before minutes of work
            t0 = time.perf_counter()
            opened.prepare(batch)
            emb = np.asarray(core.infer_all(opened, ds.reader(batch, 2), inflight)[0], dtype=np.float32)
            embed_s = time.perf_counter() - t0
            n_embedded = len(emb)
            source = embeddings_source(data, path)
            fields["source"] = ds.describe()
        else:
            raise CommandError(f"{opt('data')} {data}: not an lfw.bin pickle, a .bin folder, a packed file or an "
                               "msame output folder")

    if len(emb) != 2 * len(labels):
        raise CommandError(f"{opt('data')} {data}: {len(emb)} embeddings but {len(labels)} pairs need "
                           f"{2 * len(labels)}")
    verification = lfw_eval.evaluate(emb.reshape(len(emb), -1), labels, source=source)
    return AccuracyResult(verification=verification, images_embedded=n_embedded, embed_s=embed_s,
                          total_s=time.perf_counter() - t_start, build_info=dict(core.build_info()),
                          host=report.host_info(), notes=notes, **fields)


def _accuracy_of_embeddings(emb: np.ndarray, issame: Any, pairs: int | None) -> AccuracyResult:
    """The protocol on embeddings already computed (rows 2k, 2k+1 = pair k)."""
    from pymfn.inputs.pairs import as_issame

    t_start = time.perf_counter()
    if issame is None:
        raise CommandError(f"{opt('issame')}: required with an embeddings array (one label per pair)")
    if pairs is not None and pairs < MIN_PAIRS:
        raise CommandError(f"{opt('pairs')} {pairs}: the 10-fold protocol needs at least {MIN_PAIRS} pairs")
    if isinstance(issame, (str, os.PathLike)):
        from pymfn.inputs.pairs import load_issame

        labels = load_issame(issame)
    else:
        labels = as_issame(issame)
    if pairs is not None:
        if pairs > len(labels):
            raise CommandError(f"{opt('pairs')} {pairs}: {opt('issame')} holds {len(labels)} pairs")
        emb, labels = emb[:2 * pairs], labels[:pairs]
    if emb.ndim < 2 or len(emb) != 2 * len(labels):
        raise CommandError(f"embeddings of shape {list(emb.shape)}: expected 2 x {len(labels)} rows (one per image "
                           f"of the {len(labels)} pairs of {opt('issame')})")
    verification = lfw_eval.evaluate(emb.reshape(len(emb), -1), labels, source="embeddings")
    return AccuracyResult(verification=verification, data=None, source="embeddings", total_s=time.perf_counter() - t_start,
                          build_info=dict(pymfn.load_core().build_info()), host=report.host_info())

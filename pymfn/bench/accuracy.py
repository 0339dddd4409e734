"""LFW verification accuracy of a model (or of an msame/om output folder) with the InsightFace protocol."""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

import pymfn
from pymfn.files.outputs import check_output_path, save_output
from pymfn.bench import report
from pymfn.bench.perf import choose_batch, input_spec, resolve_model
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


def _load_issame(args: argparse.Namespace, data: Path, pairs: int | None = None) -> np.ndarray:
    """--issame, else the labels image2bin wrote for --data; one rule for both (pymfn.inputs.pairs)."""
    if args.issame:
        from pymfn.inputs.pairs import load_issame

        return load_issame(args.issame, pairs)
    from pymfn.inputs.image2bin import read_issame

    try:
        return read_issame(data, pairs)  # the sidecar image2bin writes (.issame.npy), checked against its pack
    except FileNotFoundError as exc:
        raise SystemExit(f"--data {data}: no pair labels ({exc}); pass --issame lfw.bin|issame.npy|issame.txt") from None


def _embedding_sizes(args: argparse.Namespace) -> tuple[tuple[int, ...], str]:
    """The values per file an msame output folder must hold, and where that expectation comes from."""
    from pymfn.metrics.lfw import MOBILEFACENET_EMBEDDING_SIZES

    if args.embedding_size:
        if any(e <= 0 for e in args.embedding_size):
            raise SystemExit(f"--embedding-size {args.embedding_size}: expected positive numbers of values")
        return tuple(args.embedding_size), "--embedding-size"
    if args.model is None:
        return MOBILEFACENET_EMBEDDING_SIZES, "MobileFaceNet"
    from pymfn.runtime.engines import open_engine

    model, _, _ = resolve_model(args.model, quiet=True)
    engine = open_engine(str(model), engine=args.engine, threads=1)
    outputs = list(engine.outputs())
    dims = [int(d) for d in outputs[0].shape[1:]] if outputs else []
    if not dims or any(d <= 0 for d in dims):
        raise SystemExit(f"--model {model}: output 0 has no fixed size ({[list(o.shape) for o in outputs]}); "
                         "pass --embedding-size")
    return (int(np.prod(dims)),), f"--model {model.name}"


def embeddings_source(data: Path, model: Path, mirrored: bool = False) -> str:
    """How errors about computed embeddings name where they came from: the --data and the model that ran
    ("row 5" is then sample 5 of --data)."""
    return f"--data {data}{' (mirrored)' if mirrored else ''} embedded by {model}"


def _looks_like_msame_output(folder: Path) -> bool:
    from pymfn.inputs import msame

    return msame.is_msame_output(folder)


def main_accuracy(args: argparse.Namespace) -> int:
    from pymfn.metrics import lfw as lfw_eval

    core = pymfn.load_core()
    check_output_path(args.json, "--json")
    check_output_path(args.plot, "--plot")
    data = Path(args.data)
    if not data.exists():
        raise SystemExit(f"--data: {data} does not exist (lfw.bin, a folder of .bin inputs, or an msame output folder)")
    t_start = time.perf_counter()
    meta: dict[str, Any] = {"data": str(data), "flip": bool(args.flip),
                            "flip_mode": args.flip_mode if args.flip else None}
    embed_s = 0.0
    n_embedded = 0
    source = f"--data {data}"  # what errors about the embeddings name (with the model, when one ran)

    if data.is_dir() and _looks_like_msame_output(data):
        if args.flip:
            raise SystemExit("--flip needs images; an msame output folder only holds embeddings")
        issame = _load_issame(args, data)
        sizes, sizes_from = _embedding_sizes(args)
        emb = lfw_eval.read_msame_embeddings(data, args.output_dtype, sizes, "--output-dtype", pairs=len(issame))
        meta.update({"source": "msame output folder", "model": None, "engine": "msame",
                     "output_dtype": args.output_dtype, "embedding_size": int(emb.shape[1]),
                     "embedding_size_from": sizes_from})
    else:
        model, description, pretrained = resolve_model(args.model, quiet=args.quiet)
        if not pretrained:
            print("note: the default model has random weights (no pretrained weights under PYMFN_SHARED); "
                  "its accuracy is near chance — accuracy needs weights")
        from pymfn.runtime.engines import open_engine

        kind = args.engine or ENGINE_BY_SUFFIX.get(model.suffix.lower())
        inflight = args.inflight if args.inflight is not None else (1 if kind == "tf" else 2)
        engine = open_engine(str(model), engine=args.engine, precision=args.precision, threads=args.threads,
                             inflight=inflight)
        info, shape, dtype = input_spec(engine)
        batch = _default_batch(engine, args.batch)
        from pymfn.runtime.precision import precision_report, requested_for

        meta.update({"model": str(model), "model_description": description, "engine": engine.kind, "batch": batch,
                     "inflight": inflight,
                     "engine_properties": {str(k): str(v) for k, v in dict(engine.properties()).items()},
                     "precision_report": precision_report(engine, requested_for(engine, args.precision), model)})
        if data.is_file() and _is_pickle(data):
            from pymfn.inputs.lfw_bin import load_lfw

            t0 = time.perf_counter()
            images, issame = load_lfw(data, color="bgr" if args.bgr else "rgb")
            meta["decode_s"] = time.perf_counter() - t0
            if images.shape[1:] != shape and not (dtype == np.uint8 and images.shape[1:] == shape):
                raise SystemExit(f"--data {data}: images are {images.shape[1:]}, the model wants {shape}")
            t0 = time.perf_counter()
            progress = not args.quiet
            emb = embed_images(engine, images, dtype, batch, inflight, progress=progress)
            n_embedded = len(images)
            source = embeddings_source(data, model)
            if args.flip:
                emb_flip = embed_images(engine, images, dtype, batch, inflight, mirrored=True, progress=progress)
                emb = lfw_eval.combine_flip(emb, emb_flip, args.flip_mode,
                                            names=(source, embeddings_source(data, model, mirrored=True)))
                n_embedded *= 2
            embed_s = time.perf_counter() - t0
            meta["source"] = f"lfw.bin ({'BGR' if args.bgr else 'RGB'})"
        elif data.is_dir() or data.is_file():
            if args.flip:
                raise SystemExit("--flip needs decoded images; use --data lfw.bin (bins are already preprocessed)")
            from pymfn.inputs.datasets import open_dataset

            ds = open_dataset(data, sample_bytes=info.sample_bytes, dtype=str(dtype), sample_shape=shape)
            count = getattr(ds, "sample_count", None)
            if count is not None and count % 2:
                raise SystemExit(f"--data {data}: {count} samples, not whole pairs")
            issame = _load_issame(args, data, None if count is None else count // 2)  # before minutes of work
            t0 = time.perf_counter()
            engine.prepare(batch)
            emb = np.asarray(core.infer_all(engine, ds.reader(batch, 2), inflight)[0], dtype=np.float32)
            embed_s = time.perf_counter() - t0
            n_embedded = len(emb)
            source = embeddings_source(data, model)
            meta["source"] = ds.describe()
        else:
            raise SystemExit(f"--data {data}: not an lfw.bin pickle, a .bin folder, a packed file or an msame output folder")

    if len(emb) != 2 * len(issame):
        raise SystemExit(f"--data {data}: {len(emb)} embeddings but {len(issame)} pairs need {2 * len(issame)}")
    result = lfw_eval.evaluate(emb.reshape(len(emb), -1), issame, source=source)
    doc = result.to_dict()
    doc.update(meta)
    doc["images_per_s"] = (n_embedded / embed_s) if embed_s > 0 else None
    doc["embed_s"] = embed_s
    doc["total_s"] = time.perf_counter() - t_start
    doc["build_info"] = dict(core.build_info())
    doc["host"] = report.host_info()
    doc["protocol"] = ("InsightFace/FaceNet: squared L2 on L2-normalised embeddings, 10 contiguous folds, "
                       "thresholds arange(0,4,0.01), VAL@FAR=1e-3 on arange(0,4,0.001)"
                       + (f", flip = {FLIP_FORMULA[args.flip_mode]}" if args.flip else ""))

    print(f"LFW verification — {doc.get('model') or data}")
    print(f"  source        : {doc.get('source')}")
    print(f"  pairs         : {doc['pairs']}   flip: {FLIP_FORMULA[args.flip_mode] if args.flip else 'off'}")
    print(f"  accuracy      : {doc['accuracy'] * 100:.2f}% ± {doc['accuracy_std'] * 100:.2f} (mean ± population std over 10 folds)")
    print(f"  VAL@FAR=1e-3  : {doc['val'] * 100:.2f}% ± {doc['val_std'] * 100:.2f} at FAR {doc['far'] * 100:.3f}%")
    print(f"  AUC / EER     : {doc['auc']:.4f} / {doc['eer'] * 100:.2f}% (over all pairs)")
    print(f"  thresholds    : {', '.join(f'{t:.2f}' for t in doc['thresholds'])}")
    if doc["images_per_s"]:
        print(f"  embedding     : {n_embedded} images in {embed_s:.1f} s ({doc['images_per_s']:.0f} images/s)")
    print(f"  whole run     : {doc['total_s']:.1f} s")
    print(f"  host          : {report.format_host(doc.get('host'))}")
    prog = "pymfn bench accuracy"
    if "precision_report" in doc:
        from pymfn.runtime.precision import report_line, warn_if_not_ok

        print(report_line(doc["precision_report"]))
        warn_if_not_ok(doc["precision_report"], prog)
    lfw_eval.print_warnings(result, prog)
    if args.json and (where := save_output(args.json, lambda p: report.write_json(doc, p), "--json", prog)):
        print(f"JSON written to {where}")
    if args.plot and (where := save_output(args.plot, lambda p: lfw_eval.plot_roc(result, p), "--plot", prog)):
        print(f"ROC plot written to {where}")
    return 0


def add_accuracy_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True,
                   help="lfw.bin (InsightFace format), a folder of per-image .bin inputs or a packed file (from image2bin), or an msame "
                   "output folder (+ --issame)")
    p.add_argument("--issame", help="pair labels, one per pair (booleans or 0/1): lfw.bin, .npy or text with one "
                   "0/1/true/false per line (default for bins and packs: the labels `python -m pymfn image2bin` "
                   "wrote with them; required for msame output folders)")
    p.add_argument("--model", help="model file; default: the built-in MobileFaceNet (see `latency --help`)")
    p.add_argument("--engine", choices=["openvino", "acl", "tf"], default=None, help="default: from the file type")
    p.add_argument("--precision", choices=["f32", "bf16", "f16", "int8"], default="f32",
                   help="OpenVINO precision (default f32; int8 needs a quantized model); the report states what ran. "
                   "An .om's precision is fixed at conversion (f32 = as converted)")
    p.add_argument("--threads", type=int, default=0, help="inference threads (0 = all cores)")
    p.add_argument("--batch", type=int, default=None,
                   help="batch size (default 4 for dynamic-batch models, else the largest offered size <= 64)")
    p.add_argument("--inflight", type=int, default=None,
                   help="requests kept in flight (default 2, the tf engine 1); with 2 OpenVINO uses its throughput "
                   "hint, which keeps both cores busy between batches")
    p.add_argument("--flip", action="store_true",
                   help="flip test-time augmentation: embed every image and its mirror, combine as --flip-mode says")
    p.add_argument("--flip-mode", choices=["sum", "concat"], default="sum",
                   help="how --flip combines the two embeddings: sum = InsightFace's normalise(raw + raw_mirror); "
                   "concat = normalise([normalise(raw), normalise(raw_mirror)]), the FaceNet-style variant")
    p.add_argument("--bgr", action="store_true",
                   help="feed BGR like the reference image2bin (costs ~0.2 pt with RGB-trained weights)")
    p.add_argument("--output-dtype", default="float16", choices=["float16", "float32"],
                   help="dtype of msame output .bin files (default float16, the reference om's the_outputs); "
                   "files whose size does not fit the embedding in this dtype are an error naming the one that fits")
    p.add_argument("--embedding-size", type=int, action="append", metavar="E",
                   help="values per msame output file (default: the --model's output size, else 128 or 192, "
                   "MobileFaceNet's sizes)")
    p.add_argument("--json", help="write accuracy, per-fold figures, thresholds, VAL/FAR, AUC, EER and timing as JSON")
    p.add_argument("--plot", help="write the ROC curve as PNG")
    p.add_argument("--quiet", action="store_true", help="fewer progress messages")

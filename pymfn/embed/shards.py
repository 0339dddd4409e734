"""Sharded, resumable embedding of an image source: plan, embed shards, merge, verify.

An output folder holds:

* ``manifest.json`` - the plan, written once: the source (path, kind, rows, fingerprint), the model
  (path, size, sha256), engine, requested precision, batch, colour, the row ranges of the shards and the
  identity names. Its ``plan_sha256`` is the hash of everything that decides the embeddings' bytes;
* ``shard-KKKKK-of-NNNNN.npy`` + ``shard-KKKKK-of-NNNNN.json`` per finished shard, committed as one set
  by the output transaction (``pymfn.files.atomic.Transaction``, the record last): float32 ``[rows, E]``
  and its record (rows, labels, paths, sha256 of the .npy and of the input bytes, plan_sha256, what ran,
  time, worker). A shard exists completely or not at all;
* after ``merge``: ``embeddings.npy`` (float32 ``[N, E]``), ``labels.npy`` (int32 ``[N]``, -1 without
  labels), ``paths.json`` and ``merged.json`` (their sizes and sha256, the plan_sha256), one set.

A rerun into the same folder checks the plan (same source fingerprint, model bytes, engine, precision,
batch: else an error naming what differs), verifies every finished shard against its record and embeds
only the shards that are missing or fail verification. ``--shard K/N`` takes the shards ``i`` with
``i % N == K``, so N workers of any scheduler cover the plan without talking to each other.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterable

import numpy as np

from pymfn.embed.sources import Source, open_source
from pymfn.errors import CommandError

FORMAT = "pymfn-embed/1"
SHARD_FORMAT = "pymfn-embed-shard/1"
MERGED_FORMAT = "pymfn-embed-merged/1"
MANIFEST = "manifest.json"
MERGED_RECORD = "merged.json"
MERGED_EMBEDDINGS = "embeddings.npy"
MERGED_LABELS = "labels.npy"
MERGED_PATHS = "paths.json"
DEFAULT_SHARD_ROWS = 1024
MAX_SHARDS = 99999
# Fields of the manifest that decide the bytes of the embeddings; their hash binds shards to the plan.
PLAN_FIELDS = ("format", "source_kind", "rows", "source_fingerprint", "color", "model_sha256", "engine",
               "precision", "batch", "shard_rows")


@dataclass
class EmbedSettings:
    """What to embed with; ``model`` None means the built-in default model."""

    model: str | None = None
    engine: str | None = None
    precision: str = "f32"
    batch: int | None = None
    threads: int = 0
    inflight: int | None = None
    shard_rows: int = DEFAULT_SHARD_ROWS
    color: str = "rgb"
    quiet: bool = True


@dataclass(frozen=True)
class ShardSpec:
    index: int
    count: int
    start: int
    stop: int

    @property
    def stem(self) -> str:
        return f"shard-{self.index:05d}-of-{self.count:05d}"

    @property
    def rows(self) -> int:
        return self.stop - self.start


@dataclass
class ShardResult:
    spec: ShardSpec
    status: str  # "embedded", "verified" (finished before), "redone" (a finished shard failed verification)
    seconds: float = 0.0
    note: str = ""


@dataclass
class EmbedRun:
    out: Path
    manifest: dict[str, Any]
    shards: list[ShardResult] = field(default_factory=list)
    embed_s: float = 0.0

    @property
    def embedded_rows(self) -> int:
        return sum(r.spec.rows for r in self.shards if r.status in ("embedded", "redone"))


def parse_shard_option(text: str) -> tuple[int, int]:
    """``--shard K/N`` -> (K, N) with 0 <= K < N."""
    parts = str(text).split("/")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise CommandError(f"--shard {text}: expected K/N with 0 <= K < N, e.g. 0/4")
    k, n = int(parts[0]), int(parts[1])
    if n < 1 or k >= n:
        raise CommandError(f"--shard {text}: expected K/N with 0 <= K < N, e.g. 0/4")
    return k, n


def plan_shards(rows: int, shard_rows: int) -> list[ShardSpec]:
    if shard_rows < 1:
        raise CommandError(f"--shard-rows {shard_rows}: expected a positive number of rows per shard")
    count = max(1, -(-rows // shard_rows))
    if count > MAX_SHARDS:
        raise CommandError(f"--shard-rows {shard_rows}: {rows} rows would make {count} shards (at most {MAX_SHARDS})")
    return [ShardSpec(i, count, i * shard_rows, min(rows, (i + 1) * shard_rows)) for i in range(count)]


def plan_sha256(manifest: dict[str, Any]) -> str:
    ident = {k: manifest.get(k) for k in PLAN_FIELDS}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


def shards_of(manifest: dict[str, Any]) -> list[ShardSpec]:
    return [ShardSpec(int(s["index"]), len(manifest["shards"]), int(s["start"]), int(s["stop"]))
            for s in manifest["shards"]]


def mine(specs: list[ShardSpec], worker: tuple[int, int] | None) -> list[ShardSpec]:
    if worker is None:
        return specs
    k, n = worker
    return [s for s in specs if s.index % n == k]


# ---------------------------------------------------------------------------------------------- engine


@dataclass
class OpenedEngine:
    engine: Any
    model: Path
    model_description: str
    pretrained: bool
    batch: int
    inflight: int
    dtype: np.dtype
    shape: tuple[int, ...]
    precision_report: dict[str, Any]


def resolve_model_path(settings: EmbedSettings) -> tuple[Path, str, bool]:
    from pymfn.bench.target import resolve_model

    return resolve_model(settings.model, quiet=settings.quiet)


def open_embed_engine(settings: EmbedSettings, model: Path | None = None) -> OpenedEngine:
    """The engine of ``settings`` (pymfn.runtime.engines), its batch and input spec."""
    from pymfn.bench.lfw_accuracy import _default_batch
    from pymfn.bench.target import input_spec
    from pymfn.runtime.engines import ENGINE_BY_SUFFIX, open_engine
    from pymfn.runtime.precision import precision_report, requested_for

    if model is None:
        model, description, pretrained = resolve_model_path(settings)
    else:
        description, pretrained = f"model {model.name}", True
    kind = settings.engine or ENGINE_BY_SUFFIX.get(model.suffix.lower())
    inflight = settings.inflight if settings.inflight is not None else (1 if kind == "tf" else 2)
    if inflight < 1:
        raise CommandError(f"--inflight {inflight}: expected at least 1")
    engine = open_engine(str(model), engine=settings.engine, precision=settings.precision, threads=settings.threads,
                         inflight=inflight)
    _, shape, dtype = input_spec(engine)
    if settings.batch is not None and settings.batch < 1:
        raise CommandError(f"--batch {settings.batch}: expected a positive batch size")
    batch = _default_batch(engine, settings.batch)
    report = precision_report(engine, requested_for(engine, settings.precision), model)
    return OpenedEngine(engine, model, description, pretrained, batch, inflight, dtype, shape, report)


def embed_rows(opened: OpenedEngine, source: Source, spec: ShardSpec) -> tuple[np.ndarray, str]:
    """Embeddings (float32 ``[rows, E]``) of one shard's rows and the sha256 of their input bytes."""
    from pymfn.bench.lfw_accuracy import embed_array, embed_images

    rows, input_sha = source.read(spec.start, spec.stop)
    if source.decoded_images:
        if rows.shape[1:] != opened.shape:
            raise CommandError(f"SOURCE {source.path}: images are {list(rows.shape[1:])}, the model takes "
                               f"{list(opened.shape)}")
        emb = embed_images(opened.engine, rows, opened.dtype, opened.batch, opened.inflight)
    else:
        emb = embed_array(opened.engine, rows, opened.batch, opened.inflight)
    emb = np.ascontiguousarray(emb, dtype=np.float32).reshape(spec.rows, -1)
    if not np.isfinite(emb).all():
        bad = int(np.flatnonzero(~np.isfinite(emb).all(axis=1))[0]) + spec.start
        raise CommandError(f"SOURCE {source.path}: row {bad} ({source.names[bad]}) has a non-finite embedding "
                           f"from {opened.model}")
    return emb, input_sha


# ---------------------------------------------------------------------------------------------- manifest


def new_manifest(source: Source, opened_model: Path, engine_kind: str, settings: EmbedSettings, batch: int,
                 embedding_size: int | None) -> dict[str, Any]:
    from pymfn.files.hashes import file_record
    import pymfn

    rec = file_record(opened_model)
    specs = plan_shards(source.count, settings.shard_rows)
    doc: dict[str, Any] = {
        "format": FORMAT,
        "source": str(source.path), "source_kind": source.kind, "rows": source.count,
        "source_fingerprint": source.fingerprint,
        "color": source.color if source.decoded_images else None,
        "model": str(opened_model), "model_bytes": rec["bytes"], "model_sha256": rec["sha256"],
        "engine": engine_kind, "precision": settings.precision, "batch": batch, "shard_rows": settings.shard_rows,
        "embedding_size": embedding_size, "dtype": "float32",
        "identities": source.identities, "has_labels": source.labels is not None,
        "shards": [{"index": s.index, "start": s.start, "stop": s.stop, "file": f"{s.stem}.npy",
                    "record": f"{s.stem}.json"} for s in specs],
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "pymfn_version": getattr(pymfn, "__version__", "unknown"),
    }
    doc["plan_sha256"] = plan_sha256(doc)
    return doc


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    said = {"source_fingerprint": "the source changed (its files, sizes or times)",
            "model_sha256": f"model bytes differ (manifest: {str(old.get('model_sha256'))[:12]}..., now "
                            f"{str(new.get('model_sha256'))[:12]}...)",
            "rows": f"rows {old.get('rows')} in the manifest, {new.get('rows')} now"}
    out = []
    for k in PLAN_FIELDS:
        if old.get(k) != new.get(k):
            out.append(said.get(k, f"{k} {old.get(k)!r} in the manifest, {new.get(k)!r} now"))
    return out


def read_manifest(out: Path, option: str = "--out") -> dict[str, Any]:
    from pymfn.files.readfile import read_regular_file

    path = out / MANIFEST
    if not path.exists():
        raise CommandError(f"{option} {out}: no {MANIFEST} (not a pymfn embed output folder)")
    try:
        doc = json.loads(read_regular_file(path, "a manifest", max_bytes=1 << 30))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CommandError(f"{option} {out}: {MANIFEST} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("shards"), list):
        raise CommandError(f"{option} {out}: {MANIFEST} is not a {FORMAT} manifest")
    try:
        specs = shards_of(doc)
    except (KeyError, TypeError, ValueError):
        raise CommandError(f"{option} {out}: {MANIFEST} has malformed shard entries") from None
    if doc.get("plan_sha256") != plan_sha256(doc):
        raise CommandError(f"{option} {out}: {MANIFEST} was edited (its plan_sha256 does not match its fields)")
    expect = 0
    for s in specs:
        if s.start != expect or s.stop <= s.start:
            raise CommandError(f"{option} {out}: {MANIFEST} shard {s.index} covers rows {s.start}..{s.stop}; "
                               f"expected it to start at {expect}")
        expect = s.stop
    if expect != doc.get("rows"):
        raise CommandError(f"{option} {out}: {MANIFEST} shards cover {expect} rows, the source has {doc.get('rows')}")
    return doc


def settle_manifest(out: Path, fresh: dict[str, Any], option: str = "--out") -> dict[str, Any]:
    """The manifest of ``out``: ``fresh`` written when there is none, else the existing one after checking that
    it plans the same embeddings (a second worker or a resumed run)."""
    from pymfn.files.atomic import hold, write_json

    path = out / MANIFEST
    with hold([path], option=option, wait=120.0):
        if path.exists():
            old = read_manifest(out, option)
            diff = _differences(old, fresh)
            if diff:
                raise CommandError(f"{option} {out}: holds embeddings of another plan ({'; '.join(diff)}); "
                                   "use another --out")
            return old
        if out.exists() and not out.is_dir():
            raise CommandError(f"{option} {out}: exists and is not a folder")
        if out.is_dir() and any(not e.name.startswith(".") for e in os.scandir(out)):
            raise CommandError(f"{option} {out}: is a folder with files but no {MANIFEST}; refusing to write "
                               "embeddings into it (choose an empty or new folder)")
        write_json(path, fresh)
        return fresh


# ---------------------------------------------------------------------------------------------- shards


def shard_problem(out: Path, manifest: dict[str, Any], spec: ShardSpec) -> str | None:
    """Why shard ``spec`` is not finished and intact (None when it is)."""
    from pymfn.files.atomic import interrupted_commit
    from pymfn.files.hashes import file_mismatch
    from pymfn.files.readfile import read_regular_file

    rec_path = out / f"{spec.stem}.json"
    if interrupted_commit(rec_path) is not None:
        return "its commit was interrupted"
    if not rec_path.exists():
        return "missing"
    try:
        rec = json.loads(read_regular_file(rec_path, "a shard record", max_bytes=1 << 30))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return f"record unreadable ({exc})"
    if not isinstance(rec, dict) or rec.get("format") != SHARD_FORMAT:
        return f"{rec_path.name} is not a {SHARD_FORMAT} record"
    if rec.get("plan_sha256") != manifest["plan_sha256"]:
        return "record belongs to another plan"
    if (rec.get("index"), rec.get("start"), rec.get("stop")) != (spec.index, spec.start, spec.stop):
        return f"record covers rows {rec.get('start')}..{rec.get('stop')}, the plan {spec.start}..{spec.stop}"
    labels, paths = rec.get("labels"), rec.get("paths")
    if not isinstance(paths, list) or len(paths) != spec.rows or (labels is not None and len(labels) != spec.rows):
        return "record's labels/paths do not have one entry per row"
    why = file_mismatch(out / f"{spec.stem}.npy", {"bytes": rec.get("bytes"), "sha256": rec.get("sha256")})
    if why is not None:
        return f"{spec.stem}.npy {why}"
    return None


def _npy_bytes(emb: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, emb, allow_pickle=False)
    return buf.getvalue()


def write_shard(out: Path, manifest: dict[str, Any], spec: ShardSpec, emb: np.ndarray, input_sha: str,
                source: Source, extra: dict[str, Any]) -> bool:
    """Commit one shard (the .npy, then its record) as a set. Returns False when an intact copy was already
    there (another worker finished it first); a copy with other bytes is an error (non-deterministic run)."""
    from pymfn.files.atomic import Transaction, json_bytes

    data = _npy_bytes(emb)
    sha = hashlib.sha256(data).hexdigest()
    rec_path, npy_path = out / f"{spec.stem}.json", out / f"{spec.stem}.npy"
    with Transaction(rec_path, also=[npy_path], option=f"--out {out}", wait=600.0) as tx:
        if shard_problem(out, manifest, spec) is None:
            old = json.loads(rec_path.read_bytes())
            if old["sha256"] != sha:
                raise CommandError(f"--out {out}: {spec.stem} was written meanwhile by {old.get('worker')} with other "
                                   f"bytes (sha256 {old['sha256'][:12]}... vs {sha[:12]}...): the engine is not "
                                   "deterministic across workers")
            return False
        tx.write_bytes(npy_path, data)
        labels = None if source.labels is None else [int(v) for v in source.labels[spec.start:spec.stop]]
        rec = {"format": SHARD_FORMAT, "index": spec.index, "start": spec.start, "stop": spec.stop,
               "rows": spec.rows, "shape": list(emb.shape), "dtype": "float32", "file": npy_path.name,
               "bytes": len(data), "sha256": sha, "input_sha256": input_sha, "plan_sha256": manifest["plan_sha256"],
               "labels": labels, "paths": source.names[spec.start:spec.stop],
               "worker": f"{socket.gethostname()}:{os.getpid()}",
               "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **extra}
        tx.write_bytes(rec_path, json_bytes(rec), last=True)
    return True


def embed(source_path: str | os.PathLike, out: str | os.PathLike, settings: EmbedSettings,
          worker: tuple[int, int] | None = None, progress: Callable[[str], None] | None = None,
          source_option: str = "SOURCE", out_option: str = "--out") -> EmbedRun:
    """Embed the shards of ``source_path`` into ``out`` that are this worker's and not finished yet."""
    from pymfn.files.atomic import refuse_overlap

    out = Path(out)
    say = progress or (lambda _m: None)
    refuse_overlap([(f"{out_option} {out}", out)], [(f"{source_option} {source_path}", source_path)])
    check_out_folder(out, out_option)
    source = open_source(source_path, source_option, settings.color)  # before the model: a bad source fails fast
    opened = open_embed_engine(settings)
    if settings.model is not None:
        refuse_overlap([(f"{out_option} {out}", out)], [(f"--model {settings.model}", opened.model)])
    bind_source(source, opened, source_option)
    outputs = list(opened.engine.outputs())
    dims = [int(d) for d in outputs[0].shape[1:]] if outputs else []
    size = int(np.prod(dims)) if dims and all(d > 0 for d in dims) else None
    fresh = new_manifest(source, opened.model, opened.engine.kind, settings, opened.batch, size)
    manifest = settle_manifest(out, fresh, out_option)
    run = EmbedRun(out, manifest)
    extra = {"engine": opened.engine.kind, "precision_ran": opened.precision_report.get("runtime"),
             "precision_check": opened.precision_report.get("check"), "threads": settings.threads,
             "inflight": opened.inflight}
    t0 = time.perf_counter()
    hidden = [e.name for e in os.scandir(out) if e.name.startswith(".")]  # locks, temps, journals
    for spec in mine(shards_of(manifest), worker):
        if any(name.startswith(f".{spec.stem}.") for name in hidden):
            _settle_leftovers(out, spec)
        why = shard_problem(out, manifest, spec)
        if why is None:
            run.shards.append(ShardResult(spec, "verified"))
            continue
        status = "embedded" if why == "missing" else "redone"
        if status == "redone":
            print(f"{_prog()}: {spec.stem}: {why}; embedding it again", file=sys.stderr)
        ts = time.perf_counter()
        emb, input_sha = embed_rows(opened, source, spec)
        if size is not None and emb.shape[1] != size:
            raise CommandError(f"--model {opened.model}: gave {emb.shape[1]} values per row, its output says {size}")
        seconds = time.perf_counter() - ts
        wrote = write_shard(out, manifest, spec, emb, input_sha, source, dict(extra, embed_s=round(seconds, 3)))
        run.shards.append(ShardResult(spec, status if wrote else "verified", seconds))
        say(f"{spec.stem}: rows {spec.start}..{spec.stop} {'embedded' if wrote else 'already written by another worker'}"
            f" in {seconds:.1f} s ({spec.rows / max(seconds, 1e-9):.0f} rows/s)")
    run.embed_s = time.perf_counter() - t0
    return run


def check_out_folder(out: Path, option: str = "--out") -> None:
    """Fail before any work when ``out`` cannot become (or is not) an embed output folder."""
    from pymfn.files.atomic import probe_writable

    if os.path.lexists(out) and not out.is_dir():
        raise CommandError(f"{option} {out}: exists and is not a folder")
    if out.is_dir() and not (out / MANIFEST).exists() and any(not e.name.startswith(".") for e in os.scandir(out)):
        raise CommandError(f"{option} {out}: is a folder with files but no {MANIFEST}; refusing to write "
                           "embeddings into it (choose an empty or new folder)")
    parent = out
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise CommandError(f"{option} {out}: {parent} is not a folder")
    try:
        probe_writable(parent, MANIFEST if parent == out else out.name)
    except OSError as exc:
        raise CommandError(f"{option} {out}: cannot write in {parent} ({exc.strerror or exc})") from None


def bind_source(source: Source, opened: OpenedEngine, option: str = "SOURCE") -> None:
    """Check ``source`` against what the model takes; a bins folder (no header) is read as the model's samples."""
    if source.kind == "bins":
        source.sample_shape = opened.shape
        source.sample_dtype = "uint8" if opened.dtype == np.uint8 else str(opened.dtype)
    elif not source.decoded_images and (tuple(source.sample_shape) != opened.shape
                                        or np.dtype(source.sample_dtype) != opened.dtype):
        raise CommandError(f"{option} {source.path}: samples are {source.sample_dtype} "
                           f"{list(source.sample_shape)}, the model takes {opened.dtype} {list(opened.shape)}")
    elif source.decoded_images and opened.shape[-1] != 3:
        raise CommandError(f"{option} {source.path}: images are RGB, the model takes {list(opened.shape)}")
    elif source.decoded_images:
        source.sample_shape = opened.shape


def _settle_leftovers(out: Path, spec: ShardSpec) -> None:
    """Complete the commit a killed worker left half-done, and drop the lock files and temps it left (taking
    the shard's lock does both); a shard a live worker is writing is left alone."""
    from pymfn.files.atomic import OutputBusyError, hold

    rec, npy = out / f"{spec.stem}.json", out / f"{spec.stem}.npy"
    try:
        with hold([rec, npy], option=f"--out {out}", wait=0.0, prog=_prog()):
            pass
    except OutputBusyError:
        pass


def _prog() -> str:
    from pymfn.errors import program_name

    return program_name()


# ---------------------------------------------------------------------------------------------- verify / merge


@dataclass
class Verification:
    out: Path
    manifest: dict[str, Any]
    finished: list[int]
    problems: dict[int, str]
    merged: str | None  # "absent", "ok" or why the merged set does not verify

    @property
    def complete(self) -> bool:
        return not self.problems


def verify(out: str | os.PathLike, option: str = "--out") -> Verification:
    """Check every shard of the plan against its record (and the merged set, when there is one)."""
    out = Path(out)
    manifest = read_manifest(out, option)
    finished, problems = [], {}
    for spec in shards_of(manifest):
        why = shard_problem(out, manifest, spec)
        if why is None:
            finished.append(spec.index)
        else:
            problems[spec.index] = why
    merged = merged_problem(out, manifest) if (out / MERGED_RECORD).exists() else "absent"
    return Verification(out, manifest, finished, problems, merged)


def merged_problem(out: Path, manifest: dict[str, Any]) -> str:
    from pymfn.files.hashes import file_mismatch

    try:
        rec = json.loads((out / MERGED_RECORD).read_bytes())
    except (OSError, ValueError) as exc:
        return f"{MERGED_RECORD} unreadable ({exc})"
    if not isinstance(rec, dict) or rec.get("format") != MERGED_FORMAT:
        return f"{MERGED_RECORD} is not a {MERGED_FORMAT} record"
    if rec.get("plan_sha256") != manifest["plan_sha256"]:
        return f"{MERGED_RECORD} belongs to another plan"
    for name in (MERGED_EMBEDDINGS, MERGED_LABELS, MERGED_PATHS):
        why = file_mismatch(out / name, rec.get("files", {}).get(name))
        if why is not None:
            return f"{name} {why}"
    return "ok"


def _npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    import io

    from numpy.lib import format as npformat

    buf = io.BytesIO()
    npformat.write_array_header_1_0(buf, {"descr": npformat.dtype_to_descr(dtype), "fortran_order": False,
                                          "shape": shape})
    return buf.getvalue()


def merge(out: str | os.PathLike, option: str = "--out") -> dict[str, Any]:
    """Verify every shard, then write ``embeddings.npy``, ``labels.npy``, ``paths.json`` and ``merged.json`` as one
    set, streaming shard by shard (memory holds one shard). Returns the merged record."""
    from pymfn.files.atomic import Transaction, json_bytes

    out = Path(out)
    v = verify(out, option)
    if not v.complete:
        first = sorted(v.problems)[:3]
        raise CommandError(f"{option} {out}: {len(v.problems)} of {len(v.problems) + len(v.finished)} shards are not "
                           "finished or fail verification ("
                           + "; ".join(f"shard {i}: {v.problems[i]}" for i in first)
                           + (" ..." if len(v.problems) > 3 else "") + "); rerun `pymfn embed` on the source")
    manifest = v.manifest
    specs = shards_of(manifest)
    records = [json.loads((out / f"{s.stem}.json").read_bytes()) for s in specs]
    widths = {int(r["shape"][1]) for r in records}
    if len(widths) != 1:
        raise CommandError(f"{option} {out}: shards have different embedding sizes {sorted(widths)}")
    width = widths.pop()
    rows = int(manifest["rows"])
    labels = np.full(rows, -1, np.int32)
    paths: list[str] = []
    for s, r in zip(specs, records, strict=True):
        if r.get("labels") is not None:
            labels[s.start:s.stop] = r["labels"]
        paths.extend(r["paths"])
    files = {MERGED_EMBEDDINGS: out / MERGED_EMBEDDINGS, MERGED_LABELS: out / MERGED_LABELS,
             MERGED_PATHS: out / MERGED_PATHS}
    hashes: dict[str, dict[str, Any]] = {}
    with Transaction(out / MERGED_RECORD, also=list(files.values()), option=option, wait=600.0) as tx:
        h = hashlib.sha256()
        size = 0
        with tx.open(files[MERGED_EMBEDDINGS]) as f:
            head = _npy_header((rows, width), np.dtype("<f4"))
            f.write(head)
            h.update(head)
            size += len(head)
            for s, r in zip(specs, records, strict=True):
                emb = np.load(out / f"{s.stem}.npy", allow_pickle=False)
                if hashlib.sha256(_npy_bytes(emb)).hexdigest() != r["sha256"]:  # changed since verify()
                    raise CommandError(f"{option} {out}: {s.stem}.npy changed during the merge")
                data = np.ascontiguousarray(emb, dtype="<f4").tobytes()
                f.write(data)
                h.update(data)
                size += len(data)
        hashes[MERGED_EMBEDDINGS] = {"bytes": size, "sha256": h.hexdigest()}
        for name, data in ((MERGED_LABELS, _npy_bytes(labels)),
                           (MERGED_PATHS, json.dumps(paths, ensure_ascii=False).encode())):
            tx.write_bytes(files[name], data)
            hashes[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        rec = {"format": MERGED_FORMAT, "plan_sha256": manifest["plan_sha256"], "rows": rows, "embedding_size": width,
               "identities": manifest.get("identities", []), "has_labels": manifest.get("has_labels", False),
               "shards": len(specs), "files": hashes,
               "merged": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        tx.write_bytes(out / MERGED_RECORD, json_bytes(rec), last=True)
    return rec


def load_merged(out: str | os.PathLike, option: str = "--out") -> tuple[np.ndarray, np.ndarray, list[str], dict]:
    """(embeddings, labels, paths, manifest) of a merged output folder, after verifying the merged set."""
    out = Path(out)
    manifest = read_manifest(out, option)
    if not (out / MERGED_RECORD).exists():
        raise CommandError(f"{option} {out}: not merged yet (no {MERGED_RECORD}); run `pymfn embed --merge {out}`")
    why = merged_problem(out, manifest)
    if why != "ok":
        raise CommandError(f"{option} {out}: merged set does not verify: {why}")
    emb = np.load(out / MERGED_EMBEDDINGS, mmap_mode="r", allow_pickle=False)
    labels = np.load(out / MERGED_LABELS, allow_pickle=False)
    paths = json.loads((out / MERGED_PATHS).read_bytes())
    return emb, labels, paths, manifest


def finished_indices(out: Path, manifest: dict[str, Any], specs: Iterable[ShardSpec]) -> list[int]:
    return [s.index for s in specs if shard_problem(out, manifest, s) is None]

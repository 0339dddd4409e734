"""The shards of ``pymfn embed`` as a Ray Data pipeline (optional extra ``pymfn[ray]``).

One dataset row per pending shard flows through two stages of Ray Data's streaming executor:

1. **read** (CPU tasks, ``map_batches`` with a function): each task opens the source by path on its node
   (checking it has the fingerprint the manifest recorded), reads and decodes the shard's images;
2. **embed** (an actor pool, ``map_batches`` with a class): each actor opens one engine (one model load per
   actor; ``--actor-resources NPU=1`` pins it to an accelerator on Ascend hosts) and embeds the shard.

Ray Data bounds the data in flight between the stages (backpressure), retries the tasks of a lost worker
and restarts lost actors. The driver receives each shard's embeddings (E x 4 bytes per row) and commits it
with the same output transaction as a single process (``shards.write_shard``), so the output folder only
needs to be writable by the driver, a shard is committed once, and a killed driver resumes like any run.
The bytes equal a single-process run's: the same plan, batch and engine settings produce each shard.
"""
from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable

import numpy as np

from pymfn.embed import shards
from pymfn.embed.sources import open_source
from pymfn.errors import CommandError

_SOURCES: dict[tuple, Any] = {}  # per worker process: opened sources by (path, color, shape, dtype)


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def _un_npy(b: bytes) -> np.ndarray:
    return np.load(io.BytesIO(b), allow_pickle=False)


def _worker_source(plan: dict[str, Any]):
    key = (plan["source"], plan["color"], tuple(plan["shape"]), plan["dtype"])
    src = _SOURCES.get(key)
    if src is None:
        src = open_source(plan["source"], "SOURCE", plan["color"] or "rgb")
        if src.kind == "bins":
            src.sample_shape, src.sample_dtype = tuple(plan["shape"]), plan["dtype"]
        elif src.decoded_images:
            src.sample_shape = tuple(plan["shape"])
        if src.fingerprint != plan["fingerprint"]:
            raise CommandError(f"SOURCE {plan['source']}: on node {os.uname().nodename} it differs from the source "
                               "the manifest was planned on (fingerprint)")
        _SOURCES.clear()
        _SOURCES[key] = src
    return src


def read_shards(batch: dict[str, np.ndarray], plan: dict[str, Any]) -> dict[str, np.ndarray]:
    """Read stage: decoded rows (as .npy bytes) and the input sha256 of each shard in the batch."""
    src = _worker_source(plan)
    rows, shas = [], []
    for start, stop in zip(batch["start"], batch["stop"], strict=True):
        data, sha = src.read(int(start), int(stop))
        rows.append(_npy(data))
        shas.append(sha)
    return {"index": batch["index"], "start": batch["start"], "stop": batch["stop"],
            "rows": np.array(rows, dtype=object), "input_sha256": np.array(shas, dtype=object)}


class ShardEmbedder:
    """Embed stage: one engine per actor."""

    def __init__(self, settings: shards.EmbedSettings, model: str, plan: dict[str, Any]) -> None:
        # The engine opens on a thread: Ray Data waits for the pool's first actor to be constructed before it
        # starts any read task, so opening here would put the model compile before the first shard's read
        # instead of beside it. A failure to open is raised by the first call, never here: Ray's teardown of
        # an actor whose constructor raised can leave its worker process spinning.
        self.error: Exception | None = None
        self.plan = plan
        self.decoded = plan["decoded_images"]
        self.opening = threading.Thread(target=self._open, args=(settings, Path(model)), daemon=True)
        self.opening.start()

    def _open(self, settings: shards.EmbedSettings, model: Path) -> None:
        try:
            self.opened = shards.open_embed_engine(settings, model)
            if self.opened.batch != self.plan["batch"]:
                raise CommandError(f"--batch: the actor's engine chose batch {self.opened.batch}, the plan says "
                                   f"{self.plan['batch']}")
        except Exception as exc:  # noqa: BLE001 - raised by __call__
            self.error = exc

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from pymfn.bench.lfw_accuracy import embed_array, embed_images

        self.opening.join()
        if self.error is not None:
            raise self.error

        out, secs = [], []
        for raw in batch["rows"]:
            rows = _un_npy(raw)
            t0 = time.perf_counter()
            o = self.opened
            emb = (embed_images(o.engine, rows, o.dtype, o.batch, o.inflight) if self.decoded
                   else embed_array(o.engine, rows, o.batch, o.inflight))
            secs.append(time.perf_counter() - t0)
            out.append(_npy(np.ascontiguousarray(emb, dtype=np.float32).reshape(len(rows), -1)))
        return {"index": batch["index"], "input_sha256": batch["input_sha256"],
                "embeddings": np.array(out, dtype=object), "embed_s": np.array(secs),
                "node": np.array([os.uname().nodename] * len(out), dtype=object),
                "pid": np.array([os.getpid()] * len(out))}


def _resources(text: str | None) -> dict[str, float]:
    if not text:
        return {}
    out = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise CommandError(f"--actor-resources {text}: expected NAME=N[,NAME=N...], e.g. NPU=1") from None
        if not name.strip() or out[name.strip()] <= 0:
            raise CommandError(f"--actor-resources {text}: expected NAME=N with N > 0")
    return out


def _import_ray():
    try:
        import ray
    except ImportError:
        raise CommandError("--ray: Ray is not installed (pip install 'pymfn[ray]' or pip install 'ray[data]')") from None
    return ray


def embed_on_ray(source_path: str | os.PathLike, out: str | os.PathLike, settings: shards.EmbedSettings, *,
                 address: str | None = "local", actors: int | None = None, actor_cpus: float = 1.0,
                 actor_resources: str | None = None, read_cpus: float = 0.5,
                 progress: Callable[[str], None] | None = None, init: bool = True) -> shards.EmbedRun:
    """Plan (or resume) ``out`` like ``shards.embed`` and run its pending shards on Ray."""
    from pymfn.files.atomic import refuse_overlap

    ray = _import_ray()
    say = progress or (lambda _m: None)
    out = Path(out)
    resources = _resources(actor_resources)
    refuse_overlap([(f"--out {out}", out)], [(f"SOURCE {source_path}", source_path)])
    shards.check_out_folder(out)
    source = open_source(source_path, "SOURCE", settings.color)
    opened = shards.open_embed_engine(settings)  # on the driver: the plan needs the model, batch and input spec
    shards.bind_source(source, opened)
    outputs = list(opened.engine.outputs())
    dims = [int(d) for d in outputs[0].shape[1:]] if outputs else []
    size = int(np.prod(dims)) if dims and all(d > 0 for d in dims) else None
    manifest = shards.settle_manifest(out, shards.new_manifest(source, opened.model, opened.engine.kind, settings,
                                                               opened.batch, size))
    del opened
    run = shards.EmbedRun(out, manifest)
    pending = []
    for spec in shards.shards_of(manifest):
        if shards.shard_problem(out, manifest, spec) is None:
            run.shards.append(shards.ShardResult(spec, "verified"))
        else:
            pending.append(spec)
    t0 = time.perf_counter()
    if not pending:
        return run
    import logging

    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if init and not ray.is_initialized():
        ray.init(address=None if address in (None, "local") else address, log_to_driver=False,
                 include_dashboard=False, ignore_reinit_error=True, logging_level=logging.WARNING)
    plan = {"source": str(Path(source_path).resolve()), "color": source.color, "shape": list(source.sample_shape),
            "dtype": source.sample_dtype, "fingerprint": source.fingerprint, "batch": manifest["batch"],
            "decoded_images": source.decoded_images}
    n_actors = actors or max(1, int(ray.cluster_resources().get("CPU", 2) // max(actor_cpus, 1.0) // 2) or 1)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ds = ray.data.from_items([{"index": s.index, "start": s.start, "stop": s.stop} for s in pending],
                             override_num_blocks=len(pending))
    # Ray Data retries the tasks of a lost node and restarts lost pool actors by default.
    ds = ds.map_batches(read_shards, fn_kwargs={"plan": plan}, batch_size=1, num_cpus=read_cpus)
    ds = ds.map_batches(ShardEmbedder, fn_constructor_kwargs={"settings": settings, "model": str(Path(
        manifest["model"]).resolve()), "plan": plan}, batch_size=1, compute=ray.data.ActorPoolStrategy(min_size=1, max_size=n_actors),
        num_cpus=actor_cpus, resources=resources or None)
    by_index = {s.index: s for s in pending}
    extra = {"engine": manifest["engine"], "threads": settings.threads, "runner": "ray"}
    seen: set[int] = set()
    for row in ds.iter_rows():
        spec = by_index[int(row["index"])]
        seen.add(spec.index)  # a shard delivered twice (a retried task) is committed once: write_shard checks
        emb = _un_npy(row["embeddings"])
        wrote = shards.write_shard(out, manifest, spec, emb, str(row["input_sha256"]), source,
                                   dict(extra, embed_s=round(float(row["embed_s"]), 3),
                                        worker_node=str(row["node"]), worker_pid=int(row["pid"])))
        run.shards.append(shards.ShardResult(spec, "embedded" if wrote else "verified", float(row["embed_s"])))
        say(f"{spec.stem}: rows {spec.start}..{spec.stop} embedded on {row['node']} (pid {row['pid']}) in "
            f"{float(row['embed_s']):.1f} s")
    missing = set(by_index) - seen
    if missing:
        raise CommandError(f"--ray: the pipeline ended without shards {sorted(missing)[:5]}; rerun to finish them")
    run.embed_s = time.perf_counter() - t0
    return run

"""What Ray costs: `pymfn embed` of one source in one process vs the same plan through `--ray` (local Ray),
interleaved (single, ray, single, ray, ...) so that both see the same machine load.

    python bench/embed_ray_overhead.py SOURCE --model M [--rounds 2] [--shard-rows 1024] [--actors 1]

Each run embeds into a fresh folder; the figure is wall time of the embedding loop (shards.EmbedRun.embed_s:
after the plan, Ray's start-up excluded) and of the whole call (Ray start-up included), with the bytes of the
merged embeddings compared between the two. Needs Ray (pip install 'ray[data]').
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return platform.processor()
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return f"{fields.get('Model name', '?').strip()}, {fields.get('CPU(s)', '?').strip()} CPUs"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source")
    ap.add_argument("--model", required=True)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--shard-rows", type=int, default=1024)
    ap.add_argument("--actors", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--read-cpus", type=float, default=0.5, help="CPUs each read (decode) task reserves")
    ap.add_argument("--json")
    args = ap.parse_args()

    import ray

    from pymfn.embed import ray_pipeline, shards

    settings = shards.EmbedSettings(model=args.model, shard_rows=args.shard_rows, threads=args.threads)
    work = Path(tempfile.mkdtemp(prefix="embed-ray-bench-"))
    t0 = time.perf_counter()
    ray.init(log_to_driver=False, include_dashboard=False)
    ray_start_s = time.perf_counter() - t0
    runs: dict[str, list[dict]] = {"single": [], "ray": []}
    digests = set()
    try:
        for r in range(args.rounds):
            for mode in ("single", "ray"):
                out = work / f"{mode}-{r}"
                t = time.perf_counter()
                if mode == "single":
                    run = shards.embed(args.source, out, settings)
                else:
                    run = ray_pipeline.embed_on_ray(args.source, out, settings, actors=args.actors, init=False,
                                                    read_cpus=args.read_cpus)
                whole = time.perf_counter() - t
                shards.merge(out)
                digests.add(json.loads((out / "merged.json").read_text())["files"]["embeddings.npy"]["sha256"])
                runs[mode].append({"embed_s": run.embed_s, "call_s": whole, "rows": run.embedded_rows})
                print(f"round {r} {mode:6s}: embedding {run.embed_s:7.1f} s, whole call {whole:7.1f} s, "
                      f"{run.embedded_rows / run.embed_s:6.1f} rows/s", flush=True)
                shutil.rmtree(out)
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    med = {m: statistics.median(x["embed_s"] for x in v) for m, v in runs.items()}
    # Round 0's Ray pipeline is the first of a fresh Ray instance: its worker processes start cold (spawn, import
    # pymfn and OpenVINO); later rounds reuse them, as the pipelines of a long-running cluster do.
    paired = [r["embed_s"] / s["embed_s"] for s, r in zip(runs["single"], runs["ray"])]
    doc = {"date": time.strftime("%Y-%m-%d"), "cpu": _cpu(), "command": " ".join(sys.argv), "ray_init_s": ray_start_s,
           "runs": runs, "median_embed_s": med, "ray_over_single": med["ray"] / med["single"],
           "ray_over_single_per_round": paired, "same_bytes": len(digests) == 1}
    print(f"median embedding: single {med['single']:.1f} s, ray {med['ray']:.1f} s -> ray/single "
          f"{doc['ray_over_single']:.3f} (ray.init {ray_start_s:.1f} s not included); per round "
          f"{', '.join(f'{x:.3f}' for x in paired)} (round 0: Ray's workers start cold); merged bytes identical: "
          f"{doc['same_bytes']}; {doc['cpu']}, {doc['date']}")
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2))
    return 0 if doc["same_bytes"] else 1


if __name__ == "__main__":
    sys.exit(main())

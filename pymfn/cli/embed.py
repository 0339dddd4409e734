"""Embed an image source into a folder of sharded .npy files with a manifest; resumable, splittable, verifiable.

  pymfn embed SOURCE --out DIR [--model M --engine E --precision P]   embed (resumes a killed run), then merge
  pymfn embed SOURCE --out DIR --shard K/N                            only this worker's shards (no merge)
  pymfn embed SOURCE --out DIR --ray [ADDRESS]                        the same shards on a Ray cluster
  pymfn embed --merge DIR                                             verify every shard, write embeddings.npy
  pymfn embed --verify DIR                                            check shards and merged set, exit 1 if not

SOURCE is an image tree (one folder per identity), an lfw.bin, a packed file or a folder of .bin samples.
Format and resume rules: docs/embed.md.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from pymfn.errors import CommandError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", nargs="?", metavar="SOURCE",
                   help="image tree (identity folders), lfw.bin, packed file or folder of .bin samples")
    p.add_argument("--out", help="output folder (created; a rerun into it resumes)")
    p.add_argument("--merge", metavar="DIR", help="verify every shard of DIR and write the merged embeddings")
    p.add_argument("--verify", metavar="DIR", help="check every shard (and the merged set) of DIR against the manifest")
    p.add_argument("--model", help="model file; default: the built-in MobileFaceNet")
    p.add_argument("--engine", choices=["openvino", "acl", "tf"], default=None, help="default: from the file type")
    p.add_argument("--precision", choices=["f32", "bf16", "f16", "int8"], default="f32",
                   help="OpenVINO precision; an .om runs what it was converted for")
    p.add_argument("--batch", type=int, default=None, help="batch size (default as `bench accuracy`); part of the plan")
    p.add_argument("--threads", type=int, default=0, help="inference threads (0 = all cores)")
    p.add_argument("--inflight", type=int, default=None, help="requests in flight (default 2, tf 1)")
    p.add_argument("--shard-rows", type=int, default=1024, help="rows per shard (part of the plan)")
    p.add_argument("--shard", metavar="K/N", help="embed only shards i with i %% N == K (worker K of N); no merge")
    p.add_argument("--bgr", action="store_true", help="feed BGR instead of RGB (image sources)")
    p.add_argument("--no-merge", action="store_true", help="leave the shards unmerged when all are finished")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run the shards as a Ray Data pipeline: a local Ray (default) or the cluster at ADDRESS")
    p.add_argument("--actors", type=int, default=None, help="with --ray: engine actors (default: one per node CPU pair)")
    p.add_argument("--actor-cpus", type=float, default=1.0, help="with --ray: CPUs reserved per engine actor")
    p.add_argument("--actor-resources", default=None, metavar="NAME=N,...",
                   help="with --ray: custom resources per actor, e.g. NPU=1 on Ascend hosts")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def _check_conflicts(args: argparse.Namespace) -> None:
    modes = [m for m in ("merge", "verify") if getattr(args, m)]
    if len(modes) > 1:
        raise CommandError("--merge and --verify: give one of them")
    if modes:
        extra = [o for o, v in (("SOURCE", args.source), ("--out", args.out), ("--shard", args.shard),
                                ("--ray", args.ray)) if v]
        if extra:
            raise CommandError(f"--{modes[0]}: takes only the output folder; drop {', '.join(extra)}")
        return
    if not args.source:
        raise CommandError("SOURCE: missing (or use --merge DIR / --verify DIR)")
    if not args.out:
        raise CommandError("--out: missing (the output folder)")
    if args.shard and args.ray:
        raise CommandError("--shard with --ray: Ray schedules the shards itself; give one of them")
    for opt, value in (("--batch", args.batch), ("--shard-rows", args.shard_rows), ("--inflight", args.inflight),
                       ("--actors", args.actors)):
        if value is not None and value < 1:
            raise CommandError(f"{opt} {value}: expected a positive number")
    if args.threads < 0:
        raise CommandError(f"--threads {args.threads}: expected 0 (all cores) or more")
    if not args.actor_cpus > 0:
        raise CommandError(f"--actor-cpus {args.actor_cpus}: expected a positive number of CPUs")


def _say_verification(v) -> int:
    total = len(v.finished) + len(v.problems)
    print(f"{v.out}: {len(v.finished)} of {total} shards finished and intact; merged set: {v.merged}")
    for i in sorted(v.problems)[:10]:
        print(f"  shard {i}: {v.problems[i]}")
    if len(v.problems) > 10:
        print(f"  ... and {len(v.problems) - 10} more")
    if v.problems:
        raise CommandError(f"--verify {v.out}: {len(v.problems)} of {total} shards are missing or fail verification")
    if v.merged not in ("ok", "absent"):
        raise CommandError(f"--verify {v.out}: the merged set does not verify: {v.merged}")
    return 0


def run(args: argparse.Namespace) -> int:
    from pymfn.embed import shards

    _check_conflicts(args)
    if args.verify:
        return _say_verification(shards.verify(args.verify, "--verify"))
    if args.merge:
        rec = shards.merge(args.merge, "--merge")
        print(f"merged {rec['rows']} rows x {rec['embedding_size']} from {rec['shards']} shards into "
              f"{Path(args.merge) / shards.MERGED_EMBEDDINGS}")
        return 0
    worker = shards.parse_shard_option(args.shard) if args.shard else None
    settings = shards.EmbedSettings(model=args.model, engine=args.engine, precision=args.precision, batch=args.batch,
                                    threads=args.threads, inflight=args.inflight, shard_rows=args.shard_rows,
                                    color="bgr" if args.bgr else "rgb", quiet=args.quiet)
    say = (lambda m: None) if args.quiet else (lambda m: print(m, flush=True))
    if args.ray:
        from pymfn.embed import ray_pipeline

        run_ = ray_pipeline.embed_on_ray(args.source, args.out, settings, address=args.ray, actors=args.actors,
                                         actor_cpus=args.actor_cpus, actor_resources=args.actor_resources,
                                         progress=say)
    else:
        run_ = shards.embed(args.source, args.out, settings, worker, progress=say)
    m = run_.manifest
    done = sum(1 for r in run_.shards if r.status == "verified")
    print(f"{m['source']}: {m['rows']} rows, {len(m['shards'])} shards; this run embedded "
          f"{run_.embedded_rows} rows in {run_.embed_s:.1f} s, {done} shard(s) were already finished "
          f"({m['engine']}, {m['precision']}, batch {m['batch']}, model sha256 {m['model_sha256'][:12]}...)")
    if worker is not None or args.no_merge:
        return 0
    v = shards.verify(args.out)
    if not v.complete:
        print(f"{len(v.problems)} shard(s) are not finished yet (other workers?); merge later with "
              f"`pymfn embed --merge {args.out}`")
        return 0
    if v.merged == "ok":
        print(f"merged set {Path(args.out) / shards.MERGED_EMBEDDINGS} already verifies")
        return 0
    rec = shards.merge(args.out)
    print(f"merged {rec['rows']} rows x {rec['embedding_size']} into {Path(args.out) / shards.MERGED_EMBEDDINGS}")
    return 0

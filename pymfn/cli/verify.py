"""All-pairs verification of an identity-labelled embedding set: TAR at FAR 1e-2 ... 1e-6 with 95% intervals,
and what changes between two sets of the same images (another precision or build).

  pymfn verify EMB_DIR                              a `pymfn embed` output folder of an image tree (merged)
  pymfn verify EMB.npy --labels LABELS.npy          embeddings [N, E] and one integer identity per row
  pymfn verify F32_DIR --compare INT8_DIR [...]     each --compare set against the first, pair by pair

Every pair i<j is a trial (genuine = same identity); thresholds are resolved on the impostor scores themselves;
nothing of size "pairs" is held in memory. Protocol and intervals: docs/embed.md.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from pymfn.errors import CommandError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("embeddings", metavar="EMB", help="a merged `pymfn embed` output folder, or a .npy [N, E]")
    p.add_argument("--labels", help="identity per row (.npy of integers, or a `pymfn embed` folder whose labels to "
                   "use); default: the labels of the EMB folder")
    p.add_argument("--compare", action="append", default=[], metavar="EMB2",
                   help="another embedding set of the same rows (folder or .npy); repeatable")
    p.add_argument("--far", type=float, action="append", metavar="F",
                   help="target false-accept rates (default 1e-2 1e-3 1e-4 1e-5 1e-6); repeatable")
    p.add_argument("--block", type=int, default=1024, help="tile size of the blocked similarity (rows)")
    p.add_argument("--bootstrap", type=int, default=1000, help="identity-bootstrap resamples (0 = none)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--json", help="write every figure as JSON")


def _load_set(path: str, option: str) -> tuple[np.ndarray, np.ndarray | None, list[str] | None, dict[str, Any] | None]:
    from pymfn.embed import shards

    p = Path(path)
    if not p.exists():
        raise CommandError(f"{option} {path}: does not exist (a `pymfn embed` output folder or a .npy file)")
    if p.is_dir():
        emb, labels, paths, manifest = shards.load_merged(p, option)
        return np.asarray(emb), (labels if manifest.get("has_labels") else None), paths, manifest
    if not p.is_file():
        raise CommandError(f"{option} {path}: not a regular file or folder")
    try:
        arr = np.load(p, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise CommandError(f"{option} {path}: not a loadable .npy array ({exc})") from None
    return np.asarray(arr), None, None, None


def _load_labels(path: str, rows: int) -> np.ndarray:
    p = Path(path)
    if p.is_dir():
        _, labels, _, manifest = _load_set(path, "--labels")
        if labels is None:
            raise CommandError(f"--labels {path}: that output has no identity labels (not an image tree)")
        return labels
    if not p.is_file():
        raise CommandError(f"--labels {path}: does not exist or is not a regular file")
    try:
        labels = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise CommandError(f"--labels {path}: not a loadable .npy array ({exc})") from None
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise CommandError(f"--labels {path}: expected a 1-d array of integer identities, got {labels.dtype} "
                           f"{list(labels.shape)}")
    if len(labels) != rows:
        raise CommandError(f"--labels {path}: {len(labels)} labels for {rows} embeddings")
    return labels


def run(args: argparse.Namespace) -> int:
    from pymfn.files.atomic import refuse_overlap, write_json
    from pymfn.files.outputs import check_output_path, save_output
    from pymfn.metrics import verification as V

    fars = args.far or list(V.DEFAULT_FARS)
    for f in fars:
        if not 0.0 < f < 1.0:
            raise CommandError(f"--far {f}: expected a rate between 0 and 1 (exclusive)")
    if args.block < 1:
        raise CommandError(f"--block {args.block}: expected a positive number of rows")
    if args.bootstrap < 0:
        raise CommandError(f"--bootstrap {args.bootstrap}: expected 0 or more resamples")
    check_output_path(args.json, "--json")
    refuse_overlap([(f"--json {args.json}", args.json)],
                   [(f"EMB {args.embeddings}", args.embeddings), (f"--labels {args.labels}", args.labels)]
                   + [(f"--compare {c}", c) for c in args.compare])
    emb, labels, paths, _ = _load_set(args.embeddings, "EMB")
    if args.labels:
        labels = _load_labels(args.labels, len(emb))
    if labels is None:
        raise CommandError(f"EMB {args.embeddings}: no identity labels; pass --labels (the all-pairs protocol needs "
                           "an identity per row)")
    others = []
    for c in args.compare:
        e2, _, p2, _ = _load_set(c, "--compare")
        if e2.shape[0] != emb.shape[0]:
            raise CommandError(f"--compare {c}: {e2.shape[0]} rows, EMB has {emb.shape[0]}")
        if paths is not None and p2 is not None and p2 != paths:
            first = next(i for i, (a, b) in enumerate(zip(paths, p2, strict=False)) if a != b)
            raise CommandError(f"--compare {c}: row {first} is {p2[first]}, in EMB it is {paths[first]} "
                               "(not the same images in the same order)")
        others.append((c, e2))
    t0 = time.perf_counter()
    try:
        doc: dict[str, Any] = {"embeddings": args.embeddings, "fars": fars}
        if not others:
            r = V.all_pairs(emb, labels, fars, block=args.block, bootstrap=args.bootstrap, seed=args.seed,
                            name=f"EMB {args.embeddings}")
            print("\n".join(V.format_result(r, args.embeddings)))
            doc["result"] = r.to_dict()
        else:
            doc["comparisons"] = []
            for name, e2 in others:
                c = V.compare(emb, e2, labels, fars, names=(args.embeddings, name), block=args.block,
                              bootstrap=args.bootstrap, seed=args.seed)
                if not doc["comparisons"]:
                    print("\n".join(V.format_result(c.a, args.embeddings)))
                print("\n".join(V.format_result(c.b, name)))
                print(f"  {name} vs {args.embeddings}: row cosine min {c.row_cosine_min:.6f} mean "
                      f"{c.row_cosine_mean:.6f}; score drift over all pairs max {c.score_drift_max:.2e} "
                      f"mean {c.score_drift_mean:.2e}")
                for d in c.delta_tar:
                    lo, hi = d["delta_tar_ci_identity"]
                    flips = (f"genuine flips +{d['genuine_accepted_by_b_only']}/-{d['genuine_accepted_by_a_only']}")
                    if "impostors_accepted_by_b_rejected_by_a" in d:
                        flips += (f", impostors newly accepted {d['impostors_accepted_by_b_rejected_by_a']}, "
                                  f"no longer accepted {d['impostors_accepted_by_a_rejected_by_b']}")
                    print(f"    FAR {d['far_target']:.0e}: delta TAR {d['delta_tar'] * 100:+.3f} pt "
                          f"[{lo * 100:+.3f}, {hi * 100:+.3f}] (identity bootstrap); {flips}")
                doc["comparisons"].append(c.to_dict())
    except V.VerificationError as exc:
        raise CommandError(str(exc)) from None
    doc["seconds"] = time.perf_counter() - t0
    print(f"all-pairs evaluation: {doc['seconds']:.1f} s")
    if args.json and (where := save_output(args.json, lambda p: write_json(p, doc), "--json", "pymfn verify")):
        print(f"JSON written to {where}")
    return 0

"""Measure `pymfn.bench regress`'s own error rates on this machine: false alarms and sensitivity.

* false alarms: one build against a byte-identical copy of itself (two folders, so two sets of files in
  the page cache, as with two real builds), repeated; every verdict other than "no change" is an error.
* sensitivity: the same pair with the candidate's engine slowed down by the test-only switch
  PYMFN_TEST_EXECUTE_SLOWDOWN (10%, 20%: regress's measuring process wraps the engine in a SlowedEngine,
  csrc/engines/slowed/slowed_engine.h, a pause of that fraction of each request's own time); the latency
  benchmark must come out "slower". Under load a pause
  costs more than its length (the inference threads must be rescheduled), so the summary reports the
  ratio the runs measured beside the nominal size, and, for an exact size, the same-build rounds
  multiplied by 1 + s (the detection rate of a slowdown of exactly s under the noise really measured).

Every comparison is a plain `python -m pymfn.bench regress ... --json` run, kept in --out (the campaign
resumes where it stopped). The summary also re-decides the stored rounds at other thresholds, which is
exact: the verdict is a function of the per-round values alone.

    python bench/regress_error_rates.py --out regress-rates --runs 20           # ~2 h on 2 busy cores
    python bench/regress_error_rates.py --out regress-ci --runs 20 --rounds 8   # the settings .ci/run uses
    python bench/regress_error_rates.py --out regress-rates --summary-only --also-rounds 8
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pymfn.bench import stats
from pymfn.bench.regression import compare as regress

CONDITIONS = {"same build": 0.0, "10% slower execute": 0.10, "20% slower execute": 0.20}
FLAGGED = (stats.SLOWER, stats.FASTER)  # a change claimed; for the same build against itself, a false alarm


def prepare_builds(ref: str, repo: Path | None, out: Path) -> tuple[Path, Path]:
    """Two byte-identical copies of ``ref``'s build (from regress's cache, built if needed) under ``out``.

    Copies, not the cache entry itself: regress prunes its cache, and a campaign takes hours."""
    from pymfn.bench.regression.builds import default_repo, resolve_builds

    build = resolve_builds({"b": ("--ref", ref)}, repo or default_repo(), lambda m: print(f"[rates] {m}"))["b"]
    copies = []
    for side in ("a", "b"):
        dest = out / f"build-{side}"
        if not (dest / "pymfn").is_dir():
            shutil.copytree(build.root / "pymfn", dest / "pymfn", symlinks=True)
            (dest / "source.txt").write_text(f"{ref} = {build.commit}\n")
        copies.append(dest)
    return copies[0], copies[1]


def run_one(path: Path, baseline: Path, candidate: Path, slowdown: float, benchmarks: str,
            settings: dict[str, Any]) -> None:
    cmd = [sys.executable, "-m", "pymfn.bench", "regress", "--baseline", str(baseline), "--candidate",
           str(candidate), "--benchmarks", benchmarks, "--rounds", str(settings["rounds"]), "--seconds",
           str(settings["seconds"]), "--chunks", str(settings["chunks"]), "--quiet", "--json", str(path)]
    if slowdown:
        cmd += ["--candidate-env", f"PYMFN_TEST_EXECUTE_SLOWDOWN={slowdown}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode not in (0, 4):
        raise SystemExit(f"regress failed (exit {proc.returncode}): {proc.stderr.strip()}")


def _check_settings(out: Path, settings: dict[str, Any]) -> None:
    """A resumed campaign must keep its settings: runs of different settings would be summarised as one."""
    record = out / "settings.json"
    if record.exists():
        before = json.loads(record.read_text())
        if before != settings:
            raise SystemExit(f"{out} holds runs made with {before}; this call asks for {settings}: use another --out")
    else:
        record.write_text(json.dumps(settings) + "\n")


def campaign(args: argparse.Namespace) -> None:
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    settings = {"rounds": args.rounds, "seconds": args.seconds, "chunks": args.chunks}
    _check_settings(out, settings)
    baseline, candidate = (args.build, args.build) if args.build else prepare_builds(args.ref, args.repo, out)
    plan = [(name, f) for name, f in CONDITIONS.items() if f in args.slowdowns]
    for i in range(args.runs):  # conditions interleaved so a busy hour does not land on one of them only
        for name, fraction in plan:
            path = out / f"slowdown-{fraction:.2f}" / f"run-{i:03d}.json"
            if path.exists():
                continue
            path.parent.mkdir(exist_ok=True)
            t0 = time.monotonic()
            load_before = os.getloadavg()[0]
            run_one(path, baseline, candidate, fraction, "latency,throughput,loader" if fraction == 0 else "latency",
                    settings)
            print(f"[rates] {name} run {i + 1}/{args.runs}: {time.monotonic() - t0:.0f} s, 1-min load average "
                  f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after", flush=True)


def summarise(out: Path, thresholds: list[float], also_rounds: list[int]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for name, fraction in CONDITIONS.items():
        docs = [json.loads(p.read_text()) for p in sorted((out / f"slowdown-{fraction:.2f}").glob("run-*.json"))]
        if not docs:
            continue
        per_bench: dict[str, Any] = {}
        for bench in docs[0]["results"]:
            rows = [d["results"][bench] for d in docs]
            estimates = [r["ratio"] for r in rows]
            entry: dict[str, Any] = {"comparisons": len(rows),
                                     "median_ratio": statistics.median(estimates),
                                     "ratio_range": [min(estimates), max(estimates)],
                                     "pooled_ratio": stats.compare_ratios(
                                         [v for r in rows for v in r["round_ratios"]], 0.1).ratio,
                                     "median_ci_halfwidth": statistics.median(
                                         (r["ci_high"] / r["ci_low"]) ** 0.5 - 1 for r in rows)}
            for t in thresholds:
                verdicts = [stats.compare_ratios(r["round_ratios"], t, docs[0]["confidence"]).verdict for r in rows]
                entry[f"flagged_at_{t:g}"] = sum(v in FLAGGED for v in verdicts) / len(verdicts)
                entry[f"slower_at_{t:g}"] = sum(v == stats.SLOWER for v in verdicts) / len(verdicts)
            if fraction == 0:
                entry["scaled"] = _scaled_detection(rows, thresholds, docs[0]["confidence"])
            for k in also_rounds:
                entry[f"first_{k}_rounds"] = _first_rounds(rows, k, thresholds, docs[0]["confidence"])
            per_bench[bench] = entry
        loads = [d["host"].get("load_average", [None])[0] for d in docs]
        summary[name] = {"slowdown": fraction, "runs": len(docs), "rounds": docs[0]["rounds"],
                         "seconds": docs[0]["seconds"], "chunks": docs[0]["chunks"],
                         "load_average_1min": [min(loads), statistics.median(loads), max(loads)],
                         "benchmarks": per_bench}
    return summary


def _first_rounds(rows: list[dict[str, Any]], k: int, thresholds: list[float], confidence: float) -> dict[str, float]:
    """Share of comparisons flagged when only each run's first ``k`` rounds count: what ``--rounds k`` gives.

    Exact up to the load of the moment: every round is its own pair of fresh processes, and a run with
    ``--rounds k`` measures exactly these rounds (same seconds, chunks and A/B order) and stops."""
    out = {}
    for t in thresholds:
        verdicts = [stats.compare_ratios(r["round_ratios"][:k], t, confidence).verdict for r in rows]
        out[f"flagged_at_{t:g}"] = sum(v in FLAGGED for v in verdicts) / len(verdicts)
        out[f"slower_at_{t:g}"] = sum(v == stats.SLOWER for v in verdicts) / len(verdicts)
    return out


SCALED = (0.05, 0.10, 0.15, 0.20, 0.30)


def _scaled_detection(rows: list[dict[str, Any]], thresholds: list[float], confidence: float) -> dict[str, float]:
    """Slowdowns of exactly 1+s injected into the measured same-build rounds (per-round ratios x (1+s)).

    The switch's slowdown is exact only on a quiet machine: a pause after each inference costs a reschedule
    when the cores are busy, so at load 3-5 a "10%" switch measured 1.1-2x. Scaling real A/A rounds gives
    the detection rate of a slowdown of exactly that size under the noise this machine really had, for
    every benchmark (the switch only reaches the engine's execute)."""
    out = {}
    for size in SCALED:
        for t in thresholds:
            hits = sum(stats.compare_ratios([v * (1 + size) for v in r["round_ratios"]], t, confidence).verdict
                       == stats.SLOWER for r in rows)
            out[f"{size:g}@{t:g}"] = hits / len(rows)
    return out


def print_summary(summary: dict[str, Any], thresholds: list[float]) -> None:
    for name, s in summary.items():
        lo, mid, hi = s["load_average_1min"]
        print(f"\n{name}: {s['runs']} comparisons of {s['rounds']} rounds x {s['seconds']:g} s in {s['chunks']} chunks "
              f"(1-min load average at the end of a run: {lo:.1f} / {mid:.1f} / {hi:.1f} min/median/max)")
        for bench, e in s["benchmarks"].items():
            rates = ", ".join(f"t={t:.0%}: flagged {e[f'flagged_at_{t:g}']:.0%} (slower {e[f'slower_at_{t:g}']:.0%})"
                              for t in thresholds)
            lo_r, hi_r = e["ratio_range"]
            print(f"  {bench:<10} measured ratio: median of the runs {e['median_ratio']:.3f} (range {lo_r:.3f}-"
                  f"{hi_r:.3f}, all rounds pooled {e['pooled_ratio']:.3f}), median CI half-width "
                  f"{e['median_ci_halfwidth']:.1%}; {rates}")
            for key in (k for k in e if k.startswith("first_")):
                rates = ", ".join(f"t={t:.0%}: flagged {e[key][f'flagged_at_{t:g}']:.0%} "
                                  f"(slower {e[key][f'slower_at_{t:g}']:.0%})" for t in thresholds)
                print(f"  {'':<10} {key.replace('_', ' ')} only: {rates}")
            if "scaled" in e:
                for t in thresholds:
                    caught = ", ".join(f"{size:.0%}: {e['scaled'][f'{size:g}@{t:g}']:.0%}" for size in SCALED)
                    print(f"  {'':<10} exact slowdowns injected into these rounds, caught at t={t:.0%}: {caught}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder for the runs' JSON and the summary")
    p.add_argument("--runs", type=int, default=20, help="comparisons per condition (default 20)")
    p.add_argument("--rounds", type=int, default=regress.DEFAULT_ROUNDS,
                   help=f"rounds per comparison (default: regress's {regress.DEFAULT_ROUNDS})")
    p.add_argument("--seconds", type=float, default=regress.DEFAULT_SECONDS,
                   help=f"regress --seconds (default {regress.DEFAULT_SECONDS:g})")
    p.add_argument("--chunks", type=int, default=regress.DEFAULT_CHUNKS,
                   help=f"regress --chunks (default {regress.DEFAULT_CHUNKS})")
    p.add_argument("--ref", default="HEAD", help="commit to build and compare with itself (default HEAD)")
    p.add_argument("--repo", type=Path, help="git repository of --ref (default: the project pymfn runs from)")
    p.add_argument("--build", type=Path, help="or a folder holding a built pymfn (compared with itself, no copy)")
    p.add_argument("--slowdowns", default="0,0.1,0.2", help="conditions to run (default 0,0.1,0.2)")
    p.add_argument("--thresholds", default="0.05,0.1,0.15", help="thresholds to summarise at (default 0.05,0.1,0.15)")
    p.add_argument("--also-rounds", default="", help="also re-decide each run from its first K rounds only "
                   "(comma-separated K values; what --rounds K would have given)")
    p.add_argument("--summary-only", action="store_true", help="do not run; summarise what --out holds")
    args = p.parse_args()
    args.slowdowns = [float(x) for x in args.slowdowns.split(",")]
    thresholds = [float(x) for x in args.thresholds.split(",")]
    if not args.summary_only:
        campaign(args)
    also_rounds = [int(x) for x in args.also_rounds.split(",") if x.strip()]
    summary = summarise(args.out, thresholds, also_rounds)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print_summary(summary, thresholds)
    print(f"\nCPU: {next((ln for ln in open('/proc/cpuinfo') if ln.startswith('model name')), '?').strip()}, "
          f"{os.cpu_count()} logical cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`pymfn bench regress`: its options, over pymfn.bench.regression.compare (whose docstring is the --help description)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pymfn.bench.naming import option_names
from pymfn.bench.regression.compare import (
    BENCHMARKS,
    DEFAULT_CHUNKS,
    DEFAULT_ROUNDS,
    DEFAULT_SECONDS,
    DEFAULT_THRESHOLD,
    RegressSettings,
    regress,
)
from pymfn.bench.report import write_json
from pymfn.cli.bench._options import run_checked
from pymfn.errors import CommandError
from pymfn.cli.bench._csv import save_csv
from pymfn.files.outputs import check_output_path, save_output

from pymfn.bench.regression import compare as _library

DESCRIPTION = _library.__doc__

PROG = "pymfn bench regress"


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what to compare")
    g.add_argument("--baseline", action="append", required=True, metavar="REF|DIR|RUN.json",
                   help="a git commit (HEAD~1, a tag, a sha: built once and cached under "
                   "$XDG_CACHE_HOME/pymfn/regress), a folder holding a built pymfn package, or saved pytest-benchmark "
                   "run(s) (.json; repeat the option for several)")
    g.add_argument("--candidate", action="append", metavar="REF|DIR|RUN.json",
                   help="the same kinds; default: this install (the working tree for an editable install)")
    g.add_argument("--repo", type=Path, default=None,
                   help="git repository in which commits are looked up (default: the project this pymfn runs from)")
    g = p.add_argument_group("interleaved runs")
    g.add_argument("--benchmarks", default=",".join(BENCHMARKS),
                   help=f"comma-separated subset of {', '.join(BENCHMARKS)} (default: all)")
    g.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                   help=f"paired rounds, each one fresh process per build (default {DEFAULT_ROUNDS}; even keeps "
                   "the A B | B A order balanced)")
    g.add_argument("--seconds", type=float, default=DEFAULT_SECONDS,
                   help=f"measuring time per benchmark, build and round (default {DEFAULT_SECONDS})")
    g.add_argument("--chunks", type=int, default=DEFAULT_CHUNKS,
                   help=f"that time is cut into this many chunks, alternated between the builds (default "
                   f"{DEFAULT_CHUNKS})")
    g.add_argument("--model", help="model file both builds run (default: the built-in MobileFaceNet .pb)")
    g.add_argument("--threads", type=int, default=0, help="inference threads (0 = OpenVINO's default)")
    g.add_argument("--baseline-env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra environment for the baseline's processes (repeatable)")
    g.add_argument("--candidate-env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra environment for the candidate's processes (repeatable); e.g. "
                   "PYMFN_TEST_EXECUTE_SLOWDOWN=0.2 wraps the measured engine in a SlowedEngine, every request 20%% "
                   "slower (test-only switch, used to measure this tool's sensitivity)")
    g.add_argument("--keep-builds", type=int, default=8,
                   help="cached commit builds kept after the run, most recently used first (default 8)")
    g = p.add_argument_group("verdict and output")
    g.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help=f"smallest change that counts, as a fraction (default {DEFAULT_THRESHOLD}: 10%%)")
    g.add_argument("--confidence", type=float, default=0.95, help="confidence level of the intervals (default 0.95)")
    g.add_argument("--json", help="write settings, builds, every round's values and the verdicts as JSON")
    g.add_argument("--csv", metavar="PATH", help="write one CSV row per benchmark: ratio, interval, verdict "
                   "(columns: docs/exports.md)")
    g.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def _parse_env(items: list[str], option: str) -> dict[str, str]:
    env = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not name.replace("_", "").isalnum():
            raise CommandError(f"{option} {item!r}: expected NAME=VALUE")
        env[name] = value
    return env


def parse_benchmarks(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if not names or unknown:
        raise CommandError(f"--benchmarks {text!r}: expected a comma-separated subset of {', '.join(BENCHMARKS)}")
    return list(dict.fromkeys(names))


def parse_env(items: list[str], option: str) -> dict[str, str]:
    env = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not name.replace("_", "").isalnum():
            raise CommandError(f"{option} {item!r}: expected NAME=VALUE")
        env[name] = value
    return env


def run(args: argparse.Namespace) -> int:
    return run_checked(args, "regress", _run)


def _run(args: argparse.Namespace) -> int:
    settings = RegressSettings(benchmarks=BENCHMARKS, rounds=args.rounds, seconds=args.seconds, chunks=args.chunks,
                               threads=args.threads, threshold=args.threshold, confidence=args.confidence,
                               keep_builds=args.keep_builds)
    with option_names():
        settings.check_verdict()
    check_output_path(args.json, "--json")
    check_output_path(args.csv, "--csv")
    settings.benchmarks = parse_benchmarks(args.benchmarks)
    settings.baseline_env = parse_env(args.baseline_env, "--baseline-env")
    settings.candidate_env = parse_env(args.candidate_env, "--candidate-env")

    def log(message: str) -> None:
        print(f"[regress] {message}", file=sys.stderr, flush=True)

    with option_names():
        result = regress(args.baseline, args.candidate, repo=args.repo, model=args.model, settings=settings,
                         log=None if args.quiet else log)
    print(result.report())
    doc = result.to_dict()
    if args.json and (where := save_output(args.json, lambda p: write_json(doc, Path(p)), "--json", PROG)):
        print(f"\nJSON written to {where}")
    save_csv(args.csv, result, PROG)
    return result.exit_code

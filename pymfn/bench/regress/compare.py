"""`python -m pymfn.bench regress`: is the candidate slower than the baseline, beyond the noise of this machine?

Comparing absolute times of two runs taken minutes apart does not work on a shared machine: the same
build measured twice differs by tens of percent. So both builds are measured in the same session,
interleaved. Every round starts one fresh process per build (both stay alive, one measuring at a time)
and alternates short chunks between them, A B | B A | A B ..., so both builds see the same machine
state within a fraction of a second; which build starts alternates from round to round. The unit of
statistics is the *round*: its ratio candidate / baseline is the median over its chunk pairs of the
pair's ratio. Fresh processes per round matter: a process's own luck (memory layout, thread placement) is
then one more random effect per round instead of a bias of the whole comparison. The verdict comes from
the Hodges-Lehmann estimate of the per-round ratio and its exact signed-rank confidence interval
(pymfn.bench.stats):

  slower     estimate >= 1 + threshold and the whole interval above 1     -> exit code 4
  faster     estimate <= 1/(1 + threshold) and the whole interval below 1
  no change  otherwise (the reason says whether the interval is narrow or simply too wide)

Benchmarks (each a time-like figure, larger = slower; all builds use the same model file and inputs):
  latency     OpenVINO engine, batch 1, one request: median ms per request
  throughput  OpenVINO engine, batch 4, 2 requests in flight: ms per sample (1000 / samples per s)
  loader      folder of .bin files in batches of 64 (default reader): median CPU ms per pass (all threads;
              wall time of a few-ms pass on a loaded machine is mostly scheduling)

Saved pytest-benchmark runs (``--baseline a.json --candidate b.json``, each option repeatable) are
compared by the peer-normalised ratios the suites record in extra_info, with the same verdict; each
saved run is one sample (pymfn.bench.regress.saved says why), so the interval needs 4 runs per side.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pymfn.errors import CommandError
from pymfn.files.outputs import check_output_path, save_output
from pymfn.bench import stats
from pymfn.bench.report import format_host, host_info
from pymfn.bench.regress.builds import Build, default_repo, prune, regress_cache, resolve_builds
from pymfn.bench.regress.saved import collect, looks_like_saved_run

EXIT_SLOWER = 4
BENCHMARKS = ("latency", "throughput", "loader")
UNITS = {"latency": "ms per request (median)", "throughput": "ms per sample (1000 / samples per s)",
         "loader": "CPU ms per pass of 512 files (median)"}
DEFAULT_THRESHOLD = 0.10
DEFAULT_ROUNDS = 16
DEFAULT_SECONDS = 1.0
DEFAULT_CHUNKS = 16
LOADER_FILES = 512
SAMPLE_BYTES = 112 * 112 * 3 * 4
WORKER = Path(__file__).with_name("regress_worker.py")
PROG = "pymfn bench regress"


# ------------------------------------------------------------------------------------------------ arguments
def add_regress_arguments(p: argparse.ArgumentParser) -> None:
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
    g.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def _parse_env(items: list[str], option: str) -> dict[str, str]:
    env = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not name.replace("_", "").isalnum():
            raise CommandError(f"{option} {item!r}: expected NAME=VALUE")
        env[name] = value
    return env


def _check_numbers(args: argparse.Namespace) -> None:
    if not 0.0 < args.threshold < 1.0:
        raise CommandError(f"--threshold {args.threshold}: expected a fraction between 0 and 1 (0.1 = 10%)")
    if not 0.5 <= args.confidence < 1.0:
        raise CommandError(f"--confidence {args.confidence}: expected a level in [0.5, 1), e.g. 0.95")
    if args.keep_builds < 0:
        raise CommandError(f"--keep-builds {args.keep_builds}: expected >= 0")


# ------------------------------------------------------------------------------------------------ entry point
def main_regress(args: argparse.Namespace) -> int:
    _check_numbers(args)
    check_output_path(args.json, "--json")
    baseline, candidate = args.baseline, args.candidate or []
    saved = [looks_like_saved_run(s) for s in (*baseline, *candidate)]
    if any(saved):
        if not all(saved) or not candidate:
            raise CommandError("saved-run comparison needs pytest-benchmark .json files on both sides: "
                               "--baseline RUN.json ... --candidate RUN.json ...")
        doc = compare_saved_runs(args, [Path(s) for s in baseline], [Path(s) for s in candidate])
    else:
        for option, values in (("--baseline", baseline), ("--candidate", candidate)):
            if len(values) > 1:
                raise CommandError(f"{option} was given {len(values)} times; a build comparison takes one each "
                                   "(only saved .json runs can be pooled)")
        doc = compare_builds(args, baseline[0], candidate[0] if candidate else None)
    if args.json and (where := save_output(args.json, lambda p: _write_json(doc, p), "--json", PROG)):
        print(f"\nJSON written to {where}")
    return EXIT_SLOWER if doc["any_slower"] else 0


def _write_json(doc: dict[str, Any], path: Path) -> None:
    from pymfn.bench.report import write_json

    write_json(doc, path)


def _log(args: argparse.Namespace) -> Any:
    def log(message: str) -> None:
        if not args.quiet:
            print(f"[regress] {message}", file=sys.stderr, flush=True)
    return log


# ------------------------------------------------------------------------------------------------ interleaved runs
def _benchmarks(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if not names or unknown:
        raise CommandError(f"--benchmarks {text!r}: expected a comma-separated subset of {', '.join(BENCHMARKS)}")
    return list(dict.fromkeys(names))


def _checked_run_args(args: argparse.Namespace) -> tuple[list[str], dict[str, dict[str, str]]]:
    """Every cheap check before anything is built or measured: (benchmark names, per-side extra env)."""
    names = _benchmarks(args.benchmarks)
    need = stats.min_paired_rounds(args.confidence)
    if args.rounds < need:
        raise CommandError(f"--rounds {args.rounds}: at confidence {args.confidence} the signed-rank interval needs "
                           f">= {need} rounds")
    if args.seconds <= 0:
        raise CommandError(f"--seconds {args.seconds}: expected > 0")
    if args.chunks < 1:
        raise CommandError(f"--chunks {args.chunks}: expected >= 1")
    if args.threads < 0:
        raise CommandError(f"--threads {args.threads}: expected >= 0")
    envs = {"baseline": _parse_env(args.baseline_env, "--baseline-env"),
            "candidate": _parse_env(args.candidate_env, "--candidate-env")}
    return names, envs


def compare_builds(args: argparse.Namespace, baseline_spec: str, candidate_spec: str | None) -> dict[str, Any]:
    log = _log(args)
    names, envs = _checked_run_args(args)
    from pymfn.bench.perf import resolve_model

    model, model_desc, _ = resolve_model(args.model, quiet=True)  # a bad --model fails before any build
    repo = (args.repo or default_repo()).resolve()
    builds = resolve_builds({"baseline": ("--baseline", baseline_spec), "candidate": ("--candidate", candidate_spec)},
                            repo, log)
    with tempfile.TemporaryDirectory(prefix="pymfn-regress-") as tmp:
        loader_dir = _make_loader_bins(Path(tmp)) if "loader" in names else None
        spec = {"model": str(Path(model).resolve()), "benchmarks": names, "seconds": args.seconds,
                "threads": args.threads, "loader_dir": str(loader_dir) if loader_dir else None}
        rounds = _interleave(builds, envs, spec, args.rounds, args.chunks, log)
    removed = prune(regress_cache(), args.keep_builds)
    if removed:
        log(f"pruned {len(removed)} old cached build(s) (--keep-builds {args.keep_builds})")

    results = {}
    for name in names:
        ratios = [r["ratio"][name] for r in rounds]
        cmp = stats.compare_ratios(ratios, args.threshold, args.confidence)
        results[name] = {"unit": UNITS[name], "round_ratios": ratios,
                         "baseline_values": [r["baseline"][name]["value"] for r in rounds],
                         "candidate_values": [r["candidate"][name]["value"] for r in rounds], **cmp.as_dict()}
    doc = {
        "mode": "interleaved", "threshold": args.threshold, "confidence": args.confidence, "rounds": args.rounds,
        "seconds": args.seconds, "chunks": args.chunks,
        "order": "per round: both builds' processes alive, chunks alternated A B | B A; A = baseline in odd rounds",
        "model": spec["model"],
        "model_description": model_desc, "threads": args.threads,
        "builds": {side: b.as_dict() for side, b in builds.items()}, "env": envs,
        "results": results, "any_slower": any(r["verdict"] == stats.SLOWER for r in results.values()),
        "host": host_info(),  # with the load average, which the error-rate campaign reports per run
    }
    print(format_builds_table(doc))
    return doc


def _make_loader_bins(folder: Path) -> Path:
    """LOADER_FILES random fp32 sample files: a loader does not look at the values, only moves the bytes."""
    import numpy as np

    out = folder / "bins"
    out.mkdir()
    rng = np.random.default_rng(7)
    for i in range(LOADER_FILES):
        rng.standard_normal(SAMPLE_BYTES // 4, dtype=np.float32).tofile(out / f"{i}.bin")
    return out


def _interleave(builds: dict[str, Build], envs: dict[str, dict[str, str]], spec: dict[str, Any], rounds: int,
                chunks: int, log: Any) -> list[dict[str, Any]]:
    """``rounds`` rounds; each starts one fresh process per build and alternates short chunks between them."""
    results = []
    started = time.monotonic()
    for i in range(rounds):
        order = ("baseline", "candidate") if i % 2 == 0 else ("candidate", "baseline")
        got = _one_round(builds, envs, spec, order, chunks, f"round {i + 1}")
        results.append({"first": order[0], **got})
        ratios = ", ".join(f"{n} {got['ratio'][n]:.3f}" for n in spec["benchmarks"])
        log(f"round {i + 1}/{rounds}: candidate/baseline {ratios} [{time.monotonic() - started:.0f} s]")
    return results


def _one_round(builds: dict[str, Build], envs: dict[str, dict[str, str]], spec: dict[str, Any],
               order: tuple[str, str], chunks: int, when: str) -> dict[str, Any]:
    """Per benchmark: one discarded warm-up chunk each, then ``chunks`` chunk pairs in A B | B A order.

    The round's ratio is the median over its chunk pairs of (candidate chunk median / baseline chunk median):
    the two chunks of a pair ran a fraction of a second apart, so a neighbour's burst that hits a few chunks
    moves a few pair ratios, not the round (on this machine that cut the spread of same-build round ratios
    by a third against pooling each side's chunks first). Each side's median over all its chunks' values is
    kept beside it for the report.
    """
    chunk_s = spec["seconds"] / chunks
    procs = {side: WorkerProcess(builds[side], envs[side], spec, when) for side in order}
    out: dict[str, Any] = {"baseline": {}, "candidate": {}, "ratio": {}}
    try:
        for side in order:
            procs[side].wait_ready()
        for name in spec["benchmarks"]:
            for side in order:
                procs[side].chunk(name, chunk_s)  # warm-up: first inferences after compiling, reader threads
            values: dict[str, list[float]] = {side: [] for side in order}
            log_ratios = []
            for j in range(chunks):
                pair = {}
                for side in (order if j % 2 == 0 else order[::-1]):
                    chunk = procs[side].chunk(name, chunk_s)
                    values[side].extend(chunk)
                    pair[side] = statistics.median(chunk)
                log_ratios.append(math.log(pair["candidate"] / pair["baseline"]))
            for side in order:
                out[side][name] = {"value": statistics.median(values[side]), "count": len(values[side])}
            out["ratio"][name] = math.exp(statistics.median(log_ratios))
    finally:
        for proc in procs.values():
            proc.close()
    return out


def _worker_env(build: Build, extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(build.root), env.get("PYTHONPATH", "")) if p)
    env["PYMFN_CORE_DIR"] = str(build.core_dir)
    env.update(extra)
    return env


class WorkerProcess:
    """One build's measuring process (pymfn/bench/regress_worker.py), spoken to one JSON line at a time."""

    STARTUP_S = 180.0

    def __init__(self, build: Build, extra_env: dict[str, str], spec: dict[str, Any], when: str) -> None:
        self.build = build
        self.when = when
        self.who = f"{build.option} {build.spec or '(this install)'}"
        self.stderr = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: a chatty library cannot block it
        self.proc = subprocess.Popen([sys.executable, "-P", str(WORKER), json.dumps(spec)],
                                     env=_worker_env(build, extra_env), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True,
                                     cwd=tempfile.gettempdir())

    def _read(self, timeout: float, what: str) -> dict[str, Any]:
        """The next protocol line; anything else a library prints on stdout is skipped."""
        deadline = time.monotonic() + timeout
        while True:
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            line = self.proc.stdout.readline() if ready else ""
            if not line:
                self._fail(what, timed_out=not ready)
            try:
                msg = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(msg, dict):
                break
        if "error" in msg:
            raise CommandError(f"{self.who}: {msg['error']} ({self.when})")
        return msg

    def _fail(self, what: str, timed_out: bool) -> None:
        if timed_out:
            raise CommandError(f"{self.who}: the measuring process gave no answer to {what} ({self.when})")
        rc = self.proc.wait(timeout=30)
        died = f"killed by signal {-rc}" if rc < 0 else f"exit {rc}"
        self.stderr.seek(0)
        lines = [ln.strip() for ln in self.stderr.read().splitlines() if ln.strip()]
        raise CommandError(f"{self.who}: the measuring process ended ({died}) during {what} ({self.when})"
                           + (f": {lines[-1]}" if lines else ""))

    def wait_ready(self) -> None:
        msg = self._read(self.STARTUP_S, "start-up")
        _check_imported(self.build, msg, self.who)

    def chunk(self, name: str, seconds: float) -> list[float]:
        try:
            self.proc.stdin.write(f"{name} {seconds}\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            self._fail(f"benchmark {name}", timed_out=False)
        return self._read(60.0 + 20.0 * seconds, f"benchmark {name}")["values"]

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
        except (BrokenPipeError, OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        finally:
            self.stderr.close()


def _check_imported(build: Build, ready: dict[str, Any], who: str) -> None:
    """A mix-up (the same pymfn measured on both sides) would make every comparison 'no change': refuse it."""
    package = (build.root / "pymfn").resolve()
    if Path(ready["pymfn_file"]).parent != package:
        raise CommandError(f"{who}: the measuring process imported pymfn from {ready['pymfn_file']}, expected {package}")
    if Path(ready["core_file"]).parent != build.core_dir.resolve():
        raise CommandError(f"{who}: the measuring process loaded the native core {ready['core_file']}, expected one "
                           f"in {build.core_dir}")


# ------------------------------------------------------------------------------------------------ saved runs
def compare_saved_runs(args: argparse.Namespace, baseline: list[Path], candidate: list[Path]) -> dict[str, Any]:
    base = collect(baseline, "--baseline")
    cand = collect(candidate, "--candidate")
    results: dict[str, Any] = {}
    for name in sorted(set(base.values) & set(cand.values)):
        cmp = stats.compare_samples(base.values[name], cand.values[name], args.threshold, args.confidence)
        results[name] = {"ratio_source": cand.rules[name], "baseline_values": base.values[name],
                         "candidate_values": cand.values[name], **cmp.as_dict()}
    if not results:
        raise CommandError("no benchmark with a peer-normalised ratio appears in both the baseline and the "
                           "candidate runs; nothing to compare")
    doc = {
        "mode": "saved-runs", "threshold": args.threshold, "confidence": args.confidence,
        "baseline_runs": [str(p) for p in baseline], "candidate_runs": [str(p) for p in candidate],
        "results": results, "any_slower": any(r["verdict"] == stats.SLOWER for r in results.values()),
        "only_in_baseline": sorted(set(base.values) - set(cand.values)),
        "only_in_candidate": sorted(set(cand.values) - set(base.values)),
        "without_peer_ratio": sorted(base.unrated | cand.unrated),
    }
    print(format_saved_table(doc))
    return doc


# ------------------------------------------------------------------------------------------------ reports
def _ci(r: dict[str, Any]) -> str:
    if r["ci_low"] is None or r["ci_high"] is None:
        return "(too few samples)"
    return f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]"


def _verdict_cell(r: dict[str, Any]) -> str:
    return r["verdict"].upper() if r["verdict"] == stats.SLOWER else r["verdict"]


def _rows(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*header), fmt.format(*("-" * w for w in widths)), *(fmt.format(*row) for row in rows)]


def _footer(doc: dict[str, Any]) -> list[str]:
    t = doc["threshold"]
    lines = [f"ratio = candidate time / baseline time (> 1 = slower): Hodges-Lehmann estimate, {doc['confidence']:.0%} "
             f"distribution-free interval.",
             f"slower = estimate >= {1 + t:.2f} and interval above 1; faster = estimate <= {1 / (1 + t):.3f} and "
             "interval below 1."]
    slower = [n for n, r in doc["results"].items() if r["verdict"] == stats.SLOWER]
    undecided = [n for n, r in doc["results"].items() if r["verdict"] == stats.UNDECIDED]
    result = (f"RESULT: slower beyond {t:.0%}: {', '.join(slower)} (exit {EXIT_SLOWER})" if slower
              else f"RESULT: no slowdown beyond {t:.0%} detected")
    if undecided:
        result += (f"; NOT TESTED (too few samples for a {doc['confidence']:.0%} interval): {', '.join(undecided)}"
                   + (" - saved runs count one value each: at least 4 runs per side" if doc["mode"] == "saved-runs"
                      else ""))
    lines.append(result)
    return lines


def format_builds_table(doc: dict[str, Any]) -> str:
    b, c = doc["builds"]["baseline"], doc["builds"]["candidate"]
    out = [f"pymfn bench regress: {doc['rounds']} rounds (a fresh process per build and round), each measuring "
           f"{doc['seconds']:g} s per benchmark and build in {doc['chunks']} chunks alternated A B | B A",
           f"  baseline : {b['description']}", f"  candidate: {c['description']}",
           f"  host     : {format_host(doc.get('host'))}"]
    for side, env in doc["env"].items():
        if env:
            out.append(f"  {side} environment: {' '.join(f'{k}={v}' for k, v in env.items())}")
    out.append("")
    rows = []
    for name, r in doc["results"].items():
        rows.append([name, r["unit"], f"{statistics.median(r['baseline_values']):.4g}",
                     f"{statistics.median(r['candidate_values']):.4g}", f"{r['ratio']:.3f}", _ci(r), _verdict_cell(r),
                     r["reason"]])
    out += _rows(["benchmark", "metric", "baseline", "candidate", "ratio", f"{doc['confidence']:.0%} CI", "verdict",
                  "why"], rows)
    out.append("")
    return "\n".join(out + _footer(doc))


def format_saved_table(doc: dict[str, Any]) -> str:
    out = [f"pymfn bench regress (saved runs): {len(doc['baseline_runs'])} baseline vs {len(doc['candidate_runs'])} "
           "candidate run(s), peer-normalised ratios from extra_info", ""]
    rows = [[name, r["ratio_source"], f"{r['n_baseline']}/{r['n_candidate']}", f"{r['ratio']:.3f}", _ci(r),
             _verdict_cell(r), r["reason"]] for name, r in doc["results"].items()]
    out += _rows(["benchmark", "compared as (time-like)", "n", "ratio", f"{doc['confidence']:.0%} CI", "verdict",
                  "why"], rows)
    for key, what in (("only_in_baseline", "only in the baseline runs"), ("only_in_candidate", "only in the candidate "
                      "runs"), ("without_peer_ratio", "no peer-normalised ratio recorded, not compared")):
        if doc[key]:
            out.append(f"{what}: {', '.join(doc[key])}")
    out.append("")
    return "\n".join(out + _footer(doc))

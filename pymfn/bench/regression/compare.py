"""``regress(baseline, candidate) -> RegressResult``: is the candidate slower than the baseline, beyond the noise of this machine?

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
saved run is one sample (pymfn.bench.regression.saved says why), so the interval needs 4 runs per side.
"""
from __future__ import annotations

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
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping, Sequence

from pymfn.errors import CommandError
from pymfn.bench import stats
from pymfn.bench.naming import opt
from pymfn.bench.result import Result
from pymfn.bench.report import format_host, host_info
from pymfn.bench.regression.builds import Build, default_repo, prune, regress_cache, resolve_builds
from pymfn.bench.regression.saved import collect, looks_like_saved_run

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
WORKER = Path(__file__).with_name("worker.py")


# ------------------------------------------------------------------------------------------------ settings
@dataclass
class RegressSettings:
    """How the builds are measured and judged (the defaults are ``pymfn bench regress``'s)."""

    benchmarks: Sequence[str] = BENCHMARKS    # subset of BENCHMARKS
    rounds: int = DEFAULT_ROUNDS              # paired rounds, each one fresh process per build (even: A B | B A balanced)
    seconds: float = DEFAULT_SECONDS          # measuring time per benchmark, build and round
    chunks: int = DEFAULT_CHUNKS              # that time cut into this many chunks, alternated between the builds
    threads: int = 0                          # inference threads (0 = OpenVINO's default)
    threshold: float = DEFAULT_THRESHOLD      # smallest change that counts, as a fraction
    confidence: float = 0.95                  # confidence level of the intervals
    keep_builds: int = 8                      # cached commit builds kept after the run
    baseline_env: Mapping[str, str] = field(default_factory=dict)   # extra environment of the baseline's processes
    candidate_env: Mapping[str, str] = field(default_factory=dict)  # ... and of the candidate's

    def check_verdict(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise CommandError(f"{opt('threshold')} {self.threshold}: expected a fraction between 0 and 1 (0.1 = 10%)")
        if not 0.5 <= self.confidence < 1.0:
            raise CommandError(f"{opt('confidence')} {self.confidence}: expected a level in [0.5, 1), e.g. 0.95")
        if self.keep_builds < 0:
            raise CommandError(f"{opt('keep_builds')} {self.keep_builds}: expected >= 0")

    def check_runs(self) -> list[str]:
        """Every cheap check before anything is built or measured; the benchmark names without repeats."""
        names = list(dict.fromkeys(self.benchmarks))
        if not names or any(n not in BENCHMARKS for n in names):
            raise CommandError(f"{opt('benchmarks')} {list(self.benchmarks)!r}: expected a subset of "
                               f"{', '.join(BENCHMARKS)}")
        need = stats.min_paired_rounds(self.confidence)
        if self.rounds < need:
            raise CommandError(f"{opt('rounds')} {self.rounds}: at confidence {self.confidence} the signed-rank interval "
                               f"needs >= {need} rounds")
        if self.seconds <= 0:
            raise CommandError(f"{opt('seconds')} {self.seconds}: expected > 0")
        if self.chunks < 1:
            raise CommandError(f"{opt('chunks')} {self.chunks}: expected >= 1")
        if self.threads < 0:
            raise CommandError(f"{opt('threads')} {self.threads}: expected >= 0")
        for param, env in (("baseline_env", self.baseline_env), ("candidate_env", self.candidate_env)):
            for name in env:
                if not name or not name.replace("_", "").isalnum():
                    raise CommandError(f"{opt(param)} {name!r}: expected an environment variable name")
        return names


# ------------------------------------------------------------------------------------------------ result
@dataclass(frozen=True)
class Verdict:
    """One benchmark's verdict: the candidate / baseline time ratio (> 1 = slower), its interval, and why."""

    benchmark: str
    verdict: str                 # stats.SLOWER | stats.FASTER | stats.NO_CHANGE | stats.UNDECIDED
    ratio: float
    ci_low: float | None         # None: too few samples for an interval
    ci_high: float | None
    reason: str


@dataclass
class RegressResult(Result):
    """The comparison of two builds (``mode`` "interleaved") or of saved pytest-benchmark runs ("saved-runs"):
    per benchmark a ratio, its distribution-free interval and a verdict. ``document`` is the JSON
    ``pymfn bench regress --json`` writes (``to_dict()``); ``report()`` the table it prints; ``csv_rows()``
    one row per benchmark; ``exit_code`` the command's status (4 when anything is slower)."""

    kind: ClassVar[str] = "regress"

    document: dict[str, Any]

    @property
    def mode(self) -> str:
        return self.document["mode"]

    @property
    def verdicts(self) -> dict[str, Verdict]:
        return {name: Verdict(name, r["verdict"], r["ratio"], r["ci_low"], r["ci_high"], r["reason"])
                for name, r in self.document["results"].items()}

    @property
    def slower(self) -> list[str]:
        """The benchmarks the candidate is slower on, beyond the threshold and the noise."""
        return [name for name, v in self.verdicts.items() if v.verdict == stats.SLOWER]

    @property
    def any_slower(self) -> bool:
        return bool(self.document["any_slower"])

    @property
    def exit_code(self) -> int:
        return EXIT_SLOWER if self.any_slower else 0

    def to_dict(self) -> dict[str, Any]:
        return self.document

    def report(self) -> str:
        if self.mode == "saved-runs":
            return format_saved_table(self.document)
        return format_builds_table(self.document)

    def csv_rows(self) -> list[dict[str, Any]]:
        rows = []
        for name, r in self.document["results"].items():
            row: dict[str, Any] = {"benchmark": name}
            if self.mode == "saved-runs":
                row.update({"compared_as": r["ratio_source"], "n_baseline": r["n_baseline"],
                            "n_candidate": r["n_candidate"]})
            else:
                row.update({"unit": r["unit"], "baseline": statistics.median(r["baseline_values"]),
                            "candidate": statistics.median(r["candidate_values"])})
            row.update({"ratio": r["ratio"], "ci_low": r["ci_low"], "ci_high": r["ci_high"], "verdict": r["verdict"],
                        "reason": r["reason"]})
            rows.append(row)
        return rows


# ------------------------------------------------------------------------------------------------ entry point
def regress(baseline: str | os.PathLike | Sequence[str | os.PathLike], candidate: str | os.PathLike |
            Sequence[str | os.PathLike] | None = None, *, repo: str | os.PathLike | None = None,
            model: str | os.PathLike | None = None, settings: RegressSettings | None = None,
            log: Callable[[str], None] | None = None) -> RegressResult:
    """Is ``candidate`` slower than ``baseline``, beyond the noise of this machine?

    Each side is a git commit (built once and cached under $XDG_CACHE_HOME/pymfn/regress; looked up in ``repo``,
    default the project this pymfn runs from), a folder holding a built pymfn package, or — on both sides —
    saved pytest-benchmark run(s) (.json; several per side are pooled). ``candidate`` None is this install.
    Builds are measured interleaved in fresh processes per round (``settings``; ``model`` is the model both
    run, default the built-in MobileFaceNet); saved runs are compared by their peer-normalised ratios.
    ``log`` receives progress lines. Bad arguments raise ``CommandError`` naming the parameter.

    >>> import json, pathlib, tempfile, pymfn.bench as b
    >>> def saved(path, speedup):  # a pytest-benchmark run recording the loader's speedup over a naive reader
    ...     row = {"fullname": "bench/test_bench_loader.py::test_folder_reader_vs_naive[mmap]",
    ...            "stats": {"median": 0.1}, "extra_info": {"speedup_vs_naive": speedup}}
    ...     path.write_text(json.dumps({"benchmarks": [row]}))
    ...     return path
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> base = [saved(tmp / f"b{i}.json", 5.0 + 0.1 * i) for i in range(4)]
    >>> cand = [saved(tmp / f"c{i}.json", 2.5 + 0.1 * i) for i in range(4)]  # half the speedup: 2x slower
    >>> r = b.regress(base, cand)
    >>> r.slower, r.exit_code, round(r.verdicts[r.slower[0]].ratio, 1)
    (['bench/test_bench_loader.py::test_folder_reader_vs_naive[mmap]'], 4, 1.9)
    """
    settings = settings or RegressSettings()
    settings.check_verdict()
    baseline_specs = _specs(baseline)
    candidate_specs = _specs(candidate) if candidate is not None else []
    saved = [looks_like_saved_run(s) for s in (*baseline_specs, *candidate_specs)]
    if any(saved):
        if not all(saved) or not candidate_specs:
            raise CommandError(f"saved-run comparison needs pytest-benchmark .json files on both sides: "
                               f"{opt('baseline')} RUN.json ... {opt('candidate')} RUN.json ...")
        doc = compare_saved_runs(settings, [Path(s) for s in baseline_specs], [Path(s) for s in candidate_specs])
    else:
        for param, values in (("baseline", baseline_specs), ("candidate", candidate_specs)):
            if len(values) > 1:
                raise CommandError(f"{opt(param)} was given {len(values)} times; a build comparison takes one each "
                                   "(only saved .json runs can be pooled)")
        doc = compare_builds(settings, baseline_specs[0], candidate_specs[0] if candidate_specs else None,
                             repo=repo, model=model, log=log or (lambda message: None))
    return RegressResult(doc)


def _specs(side: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    if isinstance(side, (str, os.PathLike)):
        return [os.fspath(side)]
    return [os.fspath(s) for s in side]


# ------------------------------------------------------------------------------------------------ interleaved runs
def compare_builds(settings: RegressSettings, baseline_spec: str, candidate_spec: str | None, *,
                   repo: str | os.PathLike | None = None, model: str | os.PathLike | None = None,
                   log: Callable[[str], None] = lambda message: None) -> dict[str, Any]:
    names = settings.check_runs()
    envs = {"baseline": dict(settings.baseline_env), "candidate": dict(settings.candidate_env)}
    from pymfn.bench.perf import resolve_model

    model_path, model_desc, _ = resolve_model(None if model is None else os.fspath(model), quiet=True)  # fails before any build
    repo_path = (Path(repo) if repo else default_repo()).resolve()
    builds = resolve_builds({"baseline": (opt("baseline"), baseline_spec),
                             "candidate": (opt("candidate"), candidate_spec)}, repo_path, log)
    with tempfile.TemporaryDirectory(prefix="pymfn-regress-") as tmp:
        loader_dir = _make_loader_bins(Path(tmp)) if "loader" in names else None
        spec = {"model": str(Path(model_path).resolve()), "benchmarks": names, "seconds": settings.seconds,
                "threads": settings.threads, "loader_dir": str(loader_dir) if loader_dir else None}
        rounds = _interleave(builds, envs, spec, settings.rounds, settings.chunks, log)
    removed = prune(regress_cache(), settings.keep_builds)
    if removed:
        log(f"pruned {len(removed)} old cached build(s) ({opt('keep_builds')} {settings.keep_builds})")

    results = {}
    for name in names:
        ratios = [r["ratio"][name] for r in rounds]
        cmp = stats.compare_ratios(ratios, settings.threshold, settings.confidence)
        results[name] = {"unit": UNITS[name], "round_ratios": ratios,
                         "baseline_values": [r["baseline"][name]["value"] for r in rounds],
                         "candidate_values": [r["candidate"][name]["value"] for r in rounds], **cmp.as_dict()}
    return {
        "mode": "interleaved", "threshold": settings.threshold, "confidence": settings.confidence,
        "rounds": settings.rounds, "seconds": settings.seconds, "chunks": settings.chunks,
        "order": "per round: both builds' processes alive, chunks alternated A B | B A; A = baseline in odd rounds",
        "model": spec["model"],
        "model_description": model_desc, "threads": settings.threads,
        "builds": {side: b.as_dict() for side, b in builds.items()}, "env": envs,
        "results": results, "any_slower": any(r["verdict"] == stats.SLOWER for r in results.values()),
        "host": host_info(),  # with the load average, which the error-rate campaign reports per run
    }


# ------------------------------------------------------------------------------------------------ saved runs
def compare_saved_runs(settings: RegressSettings, baseline: list[Path], candidate: list[Path]) -> dict[str, Any]:
    base = collect(baseline, opt("baseline"))
    cand = collect(candidate, opt("candidate"))
    results: dict[str, Any] = {}
    for name in sorted(set(base.values) & set(cand.values)):
        cmp = stats.compare_samples(base.values[name], cand.values[name], settings.threshold, settings.confidence)
        results[name] = {"ratio_source": cand.rules[name], "baseline_values": base.values[name],
                         "candidate_values": cand.values[name], **cmp.as_dict()}
    if not results:
        raise CommandError("no benchmark with a peer-normalised ratio appears in both the baseline and the "
                           "candidate runs; nothing to compare")
    return {
        "mode": "saved-runs", "threshold": settings.threshold, "confidence": settings.confidence,
        "baseline_runs": [str(p) for p in baseline], "candidate_runs": [str(p) for p in candidate],
        "results": results, "any_slower": any(r["verdict"] == stats.SLOWER for r in results.values()),
        "only_in_baseline": sorted(set(base.values) - set(cand.values)),
        "only_in_candidate": sorted(set(cand.values) - set(base.values)),
        "without_peer_ratio": sorted(base.unrated | cand.unrated),
    }

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
    """One build's measuring process (pymfn/bench/regression/worker.py), spoken to one JSON line at a time."""

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

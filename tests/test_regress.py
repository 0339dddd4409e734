"""`pymfn.bench regress`: the statistics (known distributions -> known verdicts), saved-run comparisons, the
CLI's one-line errors, the test-only slowdown switch, and interleaved runs end to end."""
from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from pymfn import config
from pymfn.bench import stats
from pymfn.bench.__main__ import main as bench_main
from pymfn.bench.regression.compare import EXIT_SLOWER

# ------------------------------------------------------------------------------------------------ statistics


@pytest.mark.parametrize("n", [6, 9, 14])
def test_signed_rank_null_distribution_matches_scipy(n):
    """The exact CDF the intervals are read from gives scipy's exact one-sided p-values."""
    cdf = stats._signed_rank_cdf(n)
    rng = np.random.default_rng(n)
    for _ in range(5):
        d = rng.normal(0.3, 1.0, n)
        ranks = scipy.stats.rankdata(np.abs(d))
        t_plus = int(ranks[d > 0].sum())
        p = scipy.stats.wilcoxon(d, alternative="less", method="exact").pvalue
        assert cdf[t_plus] == pytest.approx(p, rel=1e-9)


@pytest.mark.parametrize("m,n", [(4, 4), (5, 7), (9, 9)])
def test_rank_sum_null_distribution_matches_scipy(m, n):
    cdf = stats._rank_sum_cdf(m, n)
    rng = np.random.default_rng(m * 100 + n)
    for _ in range(5):
        x, y = rng.normal(0, 1, m), rng.normal(0.5, 1, n)
        u = int(sum(a > b for a in x for b in y))  # pairs where the baseline value is larger
        p = scipy.stats.mannwhitneyu(x, y, alternative="greater", method="exact").pvalue
        assert 1.0 - (cdf[u - 1] if u > 0 else 0.0) == pytest.approx(p, rel=1e-9)


def test_interval_matches_r_wilcox_test_for_n_10():
    """R: wilcox.test(d, conf.int=TRUE) with n = 10 uses the 9th and 47th Walsh averages (achieved 95.1%)."""
    d = np.arange(1, 11, dtype=float)
    est, lo, hi, achieved = stats.paired_log_interval(d, 0.95)
    walsh = np.sort([(d[i] + d[j]) / 2 for i in range(10) for j in range(i, 10)])
    assert (lo, hi) == (walsh[8], walsh[46])
    assert est == pytest.approx(5.5)
    assert achieved == pytest.approx(1 - 2 * 25 / 1024)


def test_min_paired_rounds():
    assert stats.min_paired_rounds(0.95) == 6
    assert stats.min_paired_rounds(0.99) == 8
    with pytest.raises(ValueError):
        stats.paired_log_interval([], 0.95)


def test_too_few_rounds_give_no_interval_and_no_verdict():
    c = stats.compare_paired([1.0] * 5, [2.0] * 5, threshold=0.1)  # 5 rounds cannot reach 95%
    assert (c.ci_low, c.ci_high) == (0.0, math.inf)
    assert c.verdict == stats.UNDECIDED and "too few" in c.reason
    assert c.as_dict()["ci_low"] is None and c.as_dict()["ci_high"] is None  # JSON null, not Infinity


def _paired(rng, true_ratio: float, sigma: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    base = 3.0 * np.exp(rng.normal(0, 0.3, n))          # the machine's drift: shared by both sides of a round
    cand = base * true_ratio * np.exp(rng.normal(0, sigma, n))
    return base, cand


@pytest.mark.parametrize("true_ratio,sigma,expected,why", [
    (1.00, 0.02, stats.NO_CHANGE, "interval inside"),
    (1.25, 0.02, stats.SLOWER, "excludes 1"),
    (0.75, 0.02, stats.FASTER, "excludes 1"),
    (1.04, 0.005, stats.NO_CHANGE, "a real change smaller than"),  # real but below the threshold
    (1.00, 0.60, stats.NO_CHANGE, "inconclusive"),             # too noisy to tell
])
def test_known_distributions_give_known_verdicts(true_ratio, sigma, expected, why):
    base, cand = _paired(np.random.default_rng(42), true_ratio, sigma, 12)
    c = stats.compare_paired(base, cand, threshold=0.10)
    assert c.verdict == expected and why in c.reason, c
    assert c.ci_low <= c.ratio <= c.ci_high


def test_verdict_rule_boundaries():
    assert stats.verdict(1.10, 1.01, 1.2, 0.10)[0] == stats.SLOWER
    assert stats.verdict(1.09, 1.01, 1.2, 0.10)[0] == stats.NO_CHANGE   # significant but below the threshold
    assert stats.verdict(1.30, 0.99, 1.6, 0.10)[0] == stats.NO_CHANGE   # big but not significant
    assert stats.verdict(1 / 1.1, 0.8, 0.99, 0.10)[0] == stats.FASTER


def test_same_build_false_alarm_rate_is_bounded_even_with_heavy_tails():
    """Exchangeable A/B rounds (the same build) -> symmetric log-ratios -> the interval misses 1 at most 5%
    of the time, whatever the noise. Cauchy noise would wreck a mean/bootstrap interval; not this one."""
    rng = np.random.default_rng(7)
    trials, misses, flagged = 3000, 0, 0
    for _ in range(trials):
        noise = rng.standard_cauchy(12) * 0.05
        c = stats.compare_paired(np.ones(12), np.exp(noise), threshold=0.10)
        misses += c.ci_low > 1.0 or c.ci_high < 1.0
        flagged += c.verdict != stats.NO_CHANGE
    assert misses / trials <= 0.05
    assert flagged <= misses


def test_two_sample_interval_coverage():
    rng = np.random.default_rng(11)
    trials, misses = 1500, 0
    for _ in range(trials):
        c = stats.compare_samples(np.exp(rng.normal(0, 0.2, 6)), np.exp(rng.normal(0, 0.2, 7)), threshold=0.1)
        misses += c.ci_low > 1.0 or c.ci_high < 1.0
    assert misses / trials <= 0.05


def test_a_20_percent_slowdown_in_moderate_noise_is_caught():
    rng = np.random.default_rng(3)
    caught = sum(stats.compare_paired(*_paired(rng, 1.2, 0.05, 12), threshold=0.10).verdict == stats.SLOWER
                 for _ in range(400))
    assert caught / 400 >= 0.95


@pytest.mark.parametrize("base,cand,msg", [
    ([1.0, 2.0], [1.0], "as many"),
    ([1.0, 0.0], [1.0, 1.0], "finite positive"),
    ([1.0, float("nan")], [1.0, 1.0], "finite positive"),
])
def test_bad_values_are_rejected(base, cand, msg):
    with pytest.raises(ValueError, match=msg):
        stats.compare_paired(base, cand, threshold=0.1)


# ------------------------------------------------------------------------------------------------ saved runs


def _saved_run(path: Path, pymfn_ms: list[float], peer_ms: list[float], speedup: float) -> Path:
    doc = {"benchmarks": [
        {"fullname": "bench/test_bench_engines.py::test_latency_b1_vs_benchmark_app", "stats": {"median": 9.9},
         "extra_info": {"pymfn_medians_ms": pymfn_ms, "benchmark_app_medians_ms": peer_ms,
                        "ratio_pymfn_over_benchmark_app": 1.0}},
        {"fullname": "bench/test_bench_loader.py::test_folder_reader_vs_naive[mmap]", "stats": {"median": 0.1},
         "extra_info": {"speedup_vs_naive": speedup}},
        {"fullname": "bench/test_bench_loader.py::test_packed_reader_zero_copy", "stats": {"median": 0.1},
         "extra_info": {"batches_per_s": 1000}},
    ]}
    path.write_text(json.dumps(doc))
    return path


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    rc = bench_main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def _strict_json(path: Path) -> dict:
    """JSON as other languages read it: Infinity / NaN are not JSON."""
    def refuse(name: str) -> None:
        raise ValueError(f"{path} holds {name}, which is not JSON")
    return json.loads(path.read_text(), parse_constant=refuse)


def _saved_sides(tmp_path: Path, rng, base_ratio: float, cand_ratio: float, runs: int = 4,
                 cand_scale: float = 1.0) -> list[str]:
    """``runs`` saved runs per side; each session's pymfn/peer ratio is drawn around the side's ratio."""
    argv = []
    for side, ratio, scale in (("baseline", base_ratio, 1.0), ("candidate", cand_ratio, cand_scale)):
        for i in range(runs):
            peer = [scale * p for p in 3.0 + rng.uniform(0, 0.3, 9)]  # absolute times: the machine's load
            session = ratio * (1.0 + rng.normal(0, 0.02))
            ours = [p * session * (1.0 + rng.normal(0, 0.01)) for p in peer]
            argv += [f"--{side}", str(_saved_run(tmp_path / f"{side}{i}.json", ours, peer, 5.0))]
    return argv


def test_saved_runs_use_peer_ratios_not_absolute_times(tmp_path, capsys):
    """The candidate runs' absolute times are 2x (a busier machine) but their ratios to the peer are the same."""
    argv = _saved_sides(tmp_path, np.random.default_rng(0), 1.0, 1.0, cand_scale=2.0)
    rc, out, err = _run(["regress", *argv, "--json", str(tmp_path / "cmp.json")], capsys)
    assert rc == 0, err
    doc = _strict_json(tmp_path / "cmp.json")
    lat = doc["results"]["bench/test_bench_engines.py::test_latency_b1_vs_benchmark_app"]
    assert lat["verdict"] == stats.NO_CHANGE and lat["n_baseline"] == lat["n_candidate"] == 4
    assert lat["ratio"] == pytest.approx(1.0, abs=0.03)
    assert doc["without_peer_ratio"] == ["bench/test_bench_loader.py::test_packed_reader_zero_copy"]
    assert "no slowdown beyond 10% detected" in out and "NOT TESTED" not in out


def test_saved_runs_flag_a_slower_candidate_with_exit_code(tmp_path, capsys):
    argv = _saved_sides(tmp_path, np.random.default_rng(1), 1.0, 1.3)
    rc, out, err = _run(["regress", *argv], capsys)
    assert rc == EXIT_SLOWER, out + err
    assert "SLOWER" in out and "test_latency_b1_vs_benchmark_app" in out.split("RESULT:")[1]


def test_saved_runs_rounds_of_one_session_are_one_sample(tmp_path, capsys):
    """Two sessions of the same code can differ by 25% in pymfn/benchmark_app while each session's 9 rounds
    agree within 1% (measured: 0.86 and 1.10 in two sessions). Rounds pooled as independent samples made
    that a confident SLOWER from one run per side; a session is one sample, so 1 vs 1 decides nothing."""
    rng = np.random.default_rng(5)
    peer = list(3.0 + rng.uniform(0, 0.3, 9))
    base = _saved_run(tmp_path / "base.json", [p * 0.88 * (1 + rng.normal(0, 0.01)) for p in peer], peer, 5.0)
    cand = _saved_run(tmp_path / "cand.json", [p * 1.10 * (1 + rng.normal(0, 0.01)) for p in peer], peer, 5.0)
    rc, out, err = _run(["regress", "--baseline", str(base), "--candidate", str(cand), "--json",
                         str(tmp_path / "cmp.json")], capsys)
    assert rc == 0, out + err
    lat = _strict_json(tmp_path / "cmp.json")["results"]["bench/test_bench_engines.py::test_latency_b1_vs_benchmark_app"]
    assert lat["verdict"] == stats.UNDECIDED and lat["n_baseline"] == lat["n_candidate"] == 1
    assert lat["ratio"] == pytest.approx(1.10 / 0.88, rel=0.02)  # the run's value: median of its round ratios
    assert lat["ci_low"] is None and lat["ci_high"] is None
    result = out.split("RESULT:")[1]
    assert "NOT TESTED" in result and "test_latency_b1_vs_benchmark_app" in result and "4 runs per side" in result


def test_saved_runs_one_ratio_per_run_needs_several_runs(tmp_path, capsys):
    """The loader suite records one speedup per run: 1 vs 1 run cannot reach 95%; 4 vs 4 can."""
    peer = [3.0] * 9
    one = [_saved_run(tmp_path / "b0.json", peer, peer, 5.0)]
    other = [_saved_run(tmp_path / "c0.json", peer, peer, 2.5)]  # the loader lost half its speedup
    rc, out, _ = _run(["regress", "--baseline", str(one[0]), "--candidate", str(other[0]), "--json",
                       str(tmp_path / "one.json")], capsys)
    loader = _strict_json(tmp_path / "one.json")["results"][
        "bench/test_bench_loader.py::test_folder_reader_vs_naive[mmap]"]
    assert loader["verdict"] == stats.UNDECIDED and "too few" in loader["reason"]
    argv = ["regress"]
    for i in range(4):
        argv += ["--baseline", str(_saved_run(tmp_path / f"b{i}.json", peer, peer, 5.0 + 0.1 * i))]
        argv += ["--candidate", str(_saved_run(tmp_path / f"c{i}.json", peer, peer, 2.5 + 0.1 * i))]
    rc, out, _ = _run(argv + ["--json", str(tmp_path / "four.json")], capsys)
    assert rc == EXIT_SLOWER
    loader = json.loads((tmp_path / "four.json").read_text())["results"][
        "bench/test_bench_loader.py::test_folder_reader_vs_naive[mmap]"]
    assert loader["verdict"] == stats.SLOWER and loader["ratio"] == pytest.approx(2.0, rel=0.05)


@pytest.mark.parametrize("content,msg", [
    ("{not json", "not JSON"),
    ('{"benchmarks": 3}', "not a pytest-benchmark run"),
    ('[1, 2]', "not a pytest-benchmark run"),
])
def test_saved_run_bad_files_are_one_line_errors(tmp_path, capsys, content, msg):
    good = _saved_run(tmp_path / "good.json", [1.0] * 9, [1.0] * 9, 5.0)
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    rc, _, err = _run(["regress", "--baseline", str(good), "--candidate", str(bad)], capsys)
    assert rc == 1
    assert err.strip().count("\n") == 0 and msg in err and "--candidate" in err and "bad.json" in err


def test_saved_run_on_one_side_only_is_an_error(tmp_path, capsys):
    good = _saved_run(tmp_path / "good.json", [1.0] * 9, [1.0] * 9, 5.0)
    rc, _, err = _run(["regress", "--baseline", str(good), "--candidate", "HEAD"], capsys)
    assert rc == 1 and "both sides" in err and err.count("\n") == 1
    rc, _, err = _run(["regress", "--baseline", str(tmp_path / "missing.json"), "--candidate", str(good)], capsys)
    assert rc == 1 and "missing.json: no such file" in err


# ------------------------------------------------------------------------------------------------ CLI errors


@pytest.mark.parametrize("argv,msg", [
    (["--baseline", "no-such-ref-4711"], "--baseline no-such-ref-4711: not a commit in the git repository"),
    (["--baseline", "HEAD", "--candidate", "HEAD~100000"], "--candidate HEAD~100000: not a commit"),
    (["--baseline", "HEAD", "--rounds", "4"], "--rounds 4: at confidence 0.95 the signed-rank interval needs >= 6"),
    (["--baseline", "HEAD", "--threshold", "1.5"], "--threshold 1.5: expected a fraction"),
    (["--baseline", "HEAD", "--benchmarks", "latency,speed"], "--benchmarks 'latency,speed': expected"),
    (["--baseline", "HEAD", "--candidate-env", "NOEQUALS"], "--candidate-env 'NOEQUALS': expected NAME=VALUE"),
    (["--baseline", "HEAD", "--baseline", "HEAD~1"], "--baseline was given 2 times"),
    (["--baseline", "HEAD", "--seconds", "0"], "--seconds 0.0: expected > 0"),
    (["--baseline", "no-such-ref-4711", "--model", "/nonexistent/m.pb"], "--model: /nonexistent/m.pb does not exist"),
])
def test_bad_arguments_are_one_line_errors(capsys, argv, msg):
    rc, out, err = _run(["regress", *argv], capsys)
    assert rc == 1, (out, err)
    assert err.startswith("pymfn bench regress: error: ") and err.count("\n") == 1 and msg in err, err


def test_folder_without_a_built_pymfn_is_rejected(tmp_path, capsys):
    (tmp_path / "pymfn").mkdir()
    (tmp_path / "pymfn" / "__init__.py").write_text("")
    rc, _, err = _run(["regress", "--baseline", str(tmp_path)], capsys)
    assert rc == 1 and "has no built native core" in err and err.count("\n") == 1
    rc, _, err = _run(["regress", "--baseline", str(tmp_path / "pymfn" / "__init__.py")], capsys)
    assert rc == 1 and "is a file" in err


def test_baseline_not_in_a_git_repository_is_explained(tmp_path, capsys):
    rc, _, err = _run(["regress", "--baseline", "HEAD~1", "--repo", str(tmp_path)], capsys)
    assert rc == 1 and "is not a git repository" in err and "--repo" in err


def test_a_build_whose_core_cannot_load_is_a_one_line_error(tmp_path, capsys):
    """The measuring process reports the import failure of the baseline build; nothing is half-measured."""
    pkg = tmp_path / "pymfn"
    pkg.mkdir()
    (pkg / "__init__.py").write_text((Path(config.PROJECT_ROOT) / "pymfn" / "__init__.py").read_text())
    (pkg / "_core.cpython-311-x86_64-linux-gnu.so").write_bytes(b"not an ELF file")
    rc, _, err = _run(["regress", "--baseline", str(tmp_path), "--benchmarks", "latency", "--rounds", "6",
                       "--quiet", "--json", str(tmp_path / "out.json")], capsys)
    assert rc == 1 and err.count("\n") == 1, err
    assert f"--baseline {tmp_path}: import:" in err and "(round 1)" in err
    assert not (tmp_path / "out.json").exists()


def _fake_build(folder: Path, init_code: str) -> Path:
    pkg = folder / "pymfn"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(init_code)
    (pkg / "_core.cpython-311-x86_64-linux-gnu.so").write_bytes(b"placeholder")
    return folder


def test_a_measuring_process_killed_by_a_signal_is_a_one_line_error(tmp_path, capsys):
    """A build that crashes (here: SIGSEGV on import, after printing noise on stdout) ends the run with one
    line naming the build and the signal; the parent does not crash or hang."""
    build = _fake_build(tmp_path / "crashy", "import os, signal\nprint('banner')\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    rc, _, err = _run(["regress", "--baseline", str(build), "--benchmarks", "latency", "--quiet"], capsys)
    assert rc == 1 and err.count("\n") == 1, err
    assert f"--baseline {build}: the measuring process ended (killed by signal 11) during start-up (round 1)" in err


# ------------------------------------------------------------------------------------------------ slowdown switch


SWITCH = "PYMFN_TEST_EXECUTE_SLOWDOWN"


def _open_with_switch(core, monkeypatch, value: str):
    """The engine regress's measuring process benchmarks with the switch set to ``value``."""
    from pymfn.bench.regression import worker

    monkeypatch.setenv(SWITCH, value)
    try:
        return worker._slowed(core, core.SimulatedEngine())
    finally:
        monkeypatch.delenv(SWITCH)


@pytest.fixture()
def slowdown_switch_built(core) -> None:
    if not hasattr(core, "SlowedEngine"):
        pytest.skip("this install's native core predates SlowedEngine (rebuild it: pip install -e .)")


@pytest.mark.parametrize("value", ["not-a-number", "-0.1", "nan", "inf", "11", "0.1x", " "])
def test_slowdown_switch_rejects_bad_values(slowdown_switch_built, core, monkeypatch, value):
    with pytest.raises(ValueError) as info:  # core.InvalidArgument is a ValueError
        _open_with_switch(core, monkeypatch, value)
    assert "must be in [0, 10]" in str(info.value) or f"{SWITCH}='{value}': expected a fraction in [0, 10]" in str(
        info.value)


@pytest.mark.parametrize("value", ["", "0", "0.5", "10"])
def test_slowdown_switch_accepts_fractions(slowdown_switch_built, core, monkeypatch, value):
    engine = _open_with_switch(core, monkeypatch, value)
    if value:
        assert isinstance(engine, core.SlowedEngine) and engine.fraction == float(value)
        assert "slowdown" in engine.properties()
    else:
        assert isinstance(engine, core.SimulatedEngine)


# ------------------------------------------------------------------------------------------------ end to end


@pytest.mark.slow
def test_interleaved_run_detects_an_injected_2x_slowdown(slowdown_switch_built, tmp_path, capsys):
    """This install against itself, the candidate's execute made 100% slower by the test-only switch: latency
    must come out SLOWER with exit code 4 (each of the 6 rounds' ratios must exceed 1 for that; at load
    average 5 they were 1.67-2.31)."""
    root = str(config.PROJECT_ROOT)
    rc, out, err = _run(["regress", "--baseline", root, "--candidate", root, "--benchmarks", "latency",
                         "--rounds", "6", "--seconds", "0.4", "--chunks", "4", "--quiet",
                         "--candidate-env", "PYMFN_TEST_EXECUTE_SLOWDOWN=1.0", "--json", str(tmp_path / "r.json")],
                        capsys)
    doc = json.loads((tmp_path / "r.json").read_text())
    assert rc == EXIT_SLOWER, out + err
    lat = doc["results"]["latency"]
    assert lat["verdict"] == stats.SLOWER and lat["ratio"] > 1.3, lat
    assert len(lat["round_ratios"]) == 6 and doc["env"]["candidate"] == {"PYMFN_TEST_EXECUTE_SLOWDOWN": "1.0"}
    assert doc["builds"]["baseline"]["root"] == doc["builds"]["candidate"]["root"] == root
    assert "RESULT: slower beyond 10%: latency (exit 4)" in out


@pytest.mark.slow
@pytest.mark.acceptance  # builds the native core of another commit (about 100 s)
def test_regress_against_head_builds_the_commit_and_compares(tmp_path, capsys):
    """The working tree's install against HEAD, built from git into the cache (a minute or more the first time)."""
    head = subprocess.run(["git", "-C", str(config.PROJECT_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    rc, out, err = _run(["regress", "--baseline", head.stdout.strip(), "--benchmarks", "latency", "--rounds", "6",
                         "--seconds", "0.3", "--chunks", "2", "--quiet", "--json", str(tmp_path / "r.json")], capsys)
    assert rc in (0, EXIT_SLOWER), err
    doc = json.loads((tmp_path / "r.json").read_text())
    base = doc["builds"]["baseline"]
    assert base["commit"] == head.stdout.strip()
    assert Path(base["root"], "build.json").is_file()
    assert doc["builds"]["candidate"]["root"] == str(config.PROJECT_ROOT)
    assert len(doc["results"]["latency"]["baseline_values"]) == 6


# ------------------------------------------------------------------------------------------------ commit builds


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


# A CMake project that "builds" instantly: it writes a placeholder _core module where setup.py would put it.
FAKE_CMAKE = """cmake_minimum_required(VERSION 3.18)
project(fake NONE)
file(WRITE "${PYMFN_OUTPUT_DIR}/_core.cpython-311-x86_64-linux-gnu.so" "placeholder")
"""


@pytest.fixture()
def fake_repo(tmp_path, monkeypatch) -> Path:
    """A git repository shaped like pymfn (pymfn/, csrc/, CMakeLists.txt) with a cache of its own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    repo = tmp_path / "repo"
    (repo / "pymfn").mkdir(parents=True)
    (repo / "csrc").mkdir()
    (repo / "pymfn" / "__init__.py").write_text("")
    (repo / "csrc" / "a.cpp").write_text("// v1\n")
    (repo / "CMakeLists.txt").write_text(FAKE_CMAKE)
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "one")
    return repo


def _commit(repo: Path, path: str, text: str, message: str) -> str:
    (repo / path).write_text(text)
    _git(repo, "commit", "-q", "-am", message)
    return _git(repo, "rev-parse", "HEAD")


def test_commit_builds_are_cached_and_share_unchanged_native_code(fake_repo):
    from pymfn.bench.regression.builds import prune, regress_cache, resolve_builds

    messages: list[str] = []
    first = _git(fake_repo, "rev-parse", "HEAD")
    second = _commit(fake_repo, "pymfn/__init__.py", "x = 1\n", "python only")
    third = _commit(fake_repo, "csrc/a.cpp", "// v2\n", "native change")
    builds = resolve_builds({"a": ("--baseline", first), "b": ("--candidate", "HEAD~1")}, fake_repo, messages.append)
    assert builds["a"].commit == first and builds["b"].commit == second
    for b in builds.values():
        assert (b.root / "build.json").is_file() and (b.core_dir / "_core.cpython-311-x86_64-linux-gnu.so").is_file()
    assert (builds["b"].root / "pymfn" / "__init__.py").read_text() == "x = 1\n"  # the commit's own Python
    assert sum("building the native core" in m for m in messages) == 1      # second commit: same csrc
    assert any("native core unchanged" in m for m in messages)

    messages.clear()
    again = resolve_builds({"a": ("--baseline", first), "c": ("--candidate", third)}, fake_repo, messages.append)
    assert again["a"].root == builds["a"].root
    assert sum("building the native core" in m for m in messages) == 1      # only the changed csrc
    cache = regress_cache()
    assert len(list((cache / "commits").iterdir())) == 3 and len(list((cache / "native").iterdir())) == 2
    removed = prune(cache, keep=1)
    assert len(list((cache / "commits").iterdir())) == 1 and len(removed) == 3
    assert _git(fake_repo, "worktree", "list").count("\n") == 0            # no worktrees were made


def test_a_cached_commit_build_is_rebuilt_after_a_toolchain_change(fake_repo, monkeypatch):
    """The commit folder holds a binary built against one OpenVINO; after an upgrade it must not be reused."""
    from pymfn.bench.regression import builds as regress_builds

    messages: list[str] = []
    sha = _git(fake_repo, "rev-parse", "HEAD")
    first = regress_builds.resolve_builds({"a": ("--baseline", sha)}, fake_repo, messages.append)["a"]
    built = json.loads((first.root / "build.json").read_text())["built"]
    assert sum("building the native core" in m for m in messages) == 1
    messages.clear()
    real = regress_builds._toolchain_id
    monkeypatch.setattr(regress_builds, "_toolchain_id", lambda: real() + "\nopenvino==9999.0")
    again = regress_builds.resolve_builds({"a": ("--baseline", sha)}, fake_repo, messages.append)["a"]
    assert again.root == first.root
    assert any("another toolchain; rebuilding" in m for m in messages)
    assert sum("building the native core" in m for m in messages) == 1
    assert json.loads((again.root / "build.json").read_text())["built"] > built
    messages.clear()
    regress_builds.resolve_builds({"a": ("--baseline", sha)}, fake_repo, messages.append)  # same toolchain: reused
    assert not messages


def test_failed_native_build_is_a_one_line_error_with_the_log(fake_repo, capsys):
    bad = _commit(fake_repo, "CMakeLists.txt", 'cmake_minimum_required(VERSION 3.18)\nmessage(FATAL_ERROR "boom")\n',
                  "broken build")
    rc, _, err = _run(["regress", "--baseline", "HEAD", "--repo", str(fake_repo), "--quiet"], capsys)
    assert rc == 1 and err.count("\n") == 1
    assert f"building the native core of HEAD ({bad[:12]}) failed (cmake -S exit 1); log: " in err
    log = Path(err.rsplit("log: ", 1)[1].strip())
    assert "boom" in log.read_text()
    from pymfn.bench.regression.builds import regress_cache

    assert not (regress_cache() / "commits" / bad).exists()   # nothing half-built is left to be reused


def test_commit_without_native_sources_is_rejected(fake_repo, capsys):
    _git(fake_repo, "rm", "-q", "-r", "csrc")
    _git(fake_repo, "commit", "-q", "-m", "no csrc")
    rc, _, err = _run(["regress", "--baseline", "HEAD", "--repo", str(fake_repo)], capsys)
    assert rc == 1 and "has no csrc: it predates pymfn's native core" in err


def test_a_cached_build_that_fails_its_hashes_is_rebuilt(fake_repo):
    """A commit or native build is reused only while its files hash to what was recorded when it was built."""
    from pymfn.bench.regression.builds import BUILD_RECORD, CORE_GLOB, NATIVE_RECORD, regress_cache, resolve_builds

    sha = _git(fake_repo, "rev-parse", "HEAD")
    messages: list[str] = []
    first = resolve_builds({"a": ("--baseline", sha)}, fake_repo, messages.append)["a"]
    record = json.loads((first.root / BUILD_RECORD).read_text())
    assert "pymfn/__init__.py" in record["files"] and BUILD_RECORD not in record["files"]
    messages.clear()
    resolve_builds({"a": ("--baseline", sha)}, fake_repo, messages.append)
    assert not messages  # intact: reused silently

    def flip_first_byte(path: Path) -> None:
        path.write_bytes(b"X" + path.read_bytes()[1:])

    core_name = next((first.root / "pymfn").glob(CORE_GLOB)).name
    for damage, why in [(lambda r: flip_first_byte(r / "pymfn" / core_name), f"pymfn/{core_name} has sha256"),
                        (lambda r: (r / "pymfn" / "__init__.py").write_text("x = 1\n"),
                         "pymfn/__init__.py is 6 bytes, 0 recorded"),
                        (lambda r: (r / "pymfn" / "__init__.py").unlink(), "lacks pymfn/__init__.py"),
                        (lambda r: (r / "pymfn" / "extra.py").write_text(""), "holds pymfn/extra.py")]:
        damage(first.root)
        messages.clear()
        again = resolve_builds({"a": ("--baseline", sha)}, fake_repo, messages.append)["a"]
        assert any(f"the cached build {first.root} fails its hash check ({why}" in m and m.endswith("; rebuilding")
                   for m in messages), messages
        assert (again.root / "pymfn" / "__init__.py").read_text() == ""  # the commit's own files again
        assert (again.root / "pymfn" / core_name).read_bytes() == b"placeholder"
        assert not (again.root / "pymfn" / "extra.py").exists()

    # the shared native build: a flipped library is rebuilt, not copied into the next commit build
    native = next((regress_cache() / "native").iterdir())
    assert json.loads((native / NATIVE_RECORD).read_text())
    core = next(native.glob(CORE_GLOB))
    core.write_bytes(b"X" + core.read_bytes()[1:])
    second = _commit(fake_repo, "pymfn/__init__.py", "y = 2\n", "python only")
    messages.clear()
    built = resolve_builds({"b": ("--candidate", second)}, fake_repo, messages.append)["b"]
    assert any("the cached native build" in m and "fails its hash check" in m for m in messages), messages
    assert next((built.root / "pymfn").glob(CORE_GLOB)).read_bytes() == b"placeholder"
    assert not (built.root / "pymfn" / NATIVE_RECORD).exists()


def test_tree_manifest_records_links_and_sees_them_change(tmp_path):
    """A native build holds the emulator's toolkit root, a folder of relative links: they are part of the
    recorded build (a cached build is reusable), and a changed link is a mismatch."""
    import os

    from pymfn.files import hashes as _hashes

    (tmp_path / "lib.so").write_bytes(b"\x7fELF")
    (tmp_path / "toolkit").mkdir()
    os.symlink("../lib.so", tmp_path / "toolkit" / "lib.so")
    manifest = _hashes.tree_manifest(tmp_path)
    assert manifest["toolkit/lib.so"] == {"symlink": "../lib.so"}
    assert _hashes.tree_mismatch(tmp_path, manifest) is None
    os.remove(tmp_path / "toolkit" / "lib.so")
    os.symlink("/elsewhere/lib.so", tmp_path / "toolkit" / "lib.so")
    assert "toolkit/lib.so is not the link" in _hashes.tree_mismatch(tmp_path, manifest)

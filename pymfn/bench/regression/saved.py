"""Compare saved pytest-benchmark runs by the peer-normalised ratios the suites record, not absolute times.

Absolute medians of two runs taken minutes apart on a shared machine differ by tens of percent for no
reason in the code. Every suite in bench/ therefore measures a peer in the same run (OpenVINO's
benchmark_app, the TensorFlow engine, a naive numpy loader, the reference evaluation loop) and stores
the ratio in ``extra_info``; the load of the moment hits both sides of that ratio. This module reads
those ratios back, turns each into a *time-like* value (ours / peer; larger = slower), and compares the
two sides with the same statistics and verdict as the interleaved `regress` runs
(``stats.compare_samples``: the runs are not paired, so it is the rank-sum interval).

The unit is the saved *run*: each contributes one value per benchmark (the median of its per-round
ratios where the suite records rounds, else its summary ratio). The rounds of one run are not
independent samples: they share one process, one compiled model and one benchmark_app session, and
whole sessions differ (pymfn / benchmark_app at batch 1 measured 0.86 in one session and 1.10 in
another, each from 9 tight rounds). Pooling rounds would turn such a session difference into a
confident "slower". So the interval needs several saved runs per side: 4 per side at 95%.
"""
from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pymfn.errors import CommandError


@dataclass(frozen=True)
class RatioRule:
    """How one kind of benchmark stores its peer ratio, as time-like values (ours / peer)."""

    describe: str
    needs: tuple[str, ...]                                 # extra_info keys that identify the rule
    values: Callable[[dict[str, Any]], list[float]]


def _per_round(ours_key: str, peer_key: str, invert: bool = False) -> Callable[[dict[str, Any]], list[float]]:
    """The run's value: the median over its paired rounds of ours / peer (rounds ran back to back)."""
    def values(info: dict[str, Any]) -> list[float]:
        ours, peer = info[ours_key], info[peer_key]
        if not isinstance(ours, list) or not isinstance(peer, list) or len(ours) != len(peer) or not ours:
            raise ValueError(f"'{ours_key}' and '{peer_key}' must be equal-length lists")
        return [statistics.median((p / o) if invert else (o / p) for o, p in zip(ours, peer))]
    return values


def _one(key: str, invert: bool) -> Callable[[dict[str, Any]], list[float]]:
    def values(info: dict[str, Any]) -> list[float]:
        v = float(info[key])
        return [1.0 / v if invert else v]
    return values


# First match wins; rules with per-round lists come before their one-number fallbacks.
RULES: list[RatioRule] = [
    RatioRule("pymfn ms / benchmark_app ms, median over rounds", ("pymfn_medians_ms", "benchmark_app_medians_ms"),
              _per_round("pymfn_medians_ms", "benchmark_app_medians_ms")),
    RatioRule("pymfn ms / OpenVINO Python loop ms, median over rounds", ("pymfn_medians_ms", "openvino_python_medians_ms"),
              _per_round("pymfn_medians_ms", "openvino_python_medians_ms")),
    RatioRule("OpenVINO engine ms / TensorFlow engine ms, median over rounds", ("openvino_medians_ms", "tensorflow_medians_ms"),
              _per_round("openvino_medians_ms", "tensorflow_medians_ms")),
    RatioRule("benchmark_app samples/s / pymfn samples/s, median over rounds",
              ("pymfn_throughputs_per_s", "benchmark_app_throughputs_fps"),
              _per_round("pymfn_throughputs_per_s", "benchmark_app_throughputs_fps", invert=True)),
    RatioRule("1 / ratio_pymfn_over_benchmark_app (throughput)", ("ratio_pymfn_over_benchmark_app",
                                                                  "pymfn_throughput_per_s"),
              _one("ratio_pymfn_over_benchmark_app", invert=True)),
    RatioRule("ratio_pymfn_over_benchmark_app", ("ratio_pymfn_over_benchmark_app",),
              _one("ratio_pymfn_over_benchmark_app", invert=False)),
    RatioRule("ratio_pymfn_over_openvino_python", ("ratio_pymfn_over_openvino_python",),
              _one("ratio_pymfn_over_openvino_python", invert=False)),
    RatioRule("1 / speedup_openvino_over_tf", ("speedup_openvino_over_tf",), _one("speedup_openvino_over_tf", True)),
    RatioRule("naive loader time / ours: 1 / speedup_vs_naive", ("speedup_vs_naive",), _one("speedup_vs_naive", True)),
    RatioRule("prefetch pass / synchronous pass: 1 / wall_speedup", ("wall_speedup",), _one("wall_speedup", True)),
    RatioRule("ours / reference: 1 / speedup", ("speedup",), _one("speedup", True)),
]


def time_like_values(info: dict[str, Any]) -> tuple[list[float], str] | None:
    """([the run's value], rule description) for one benchmark's extra_info, or None without a peer ratio."""
    for rule in RULES:
        if all(k in info for k in rule.needs):
            return rule.values(info), rule.describe
    return None


def load_run(path: Path, option: str) -> list[dict[str, Any]]:
    """The benchmark entries of one saved pytest-benchmark JSON, or a one-line error naming the file."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise CommandError(f"{option} {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"{option} {path}: cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise CommandError(f"{option} {path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    benches = doc.get("benchmarks") if isinstance(doc, dict) else None
    if not isinstance(benches, list) or not all(isinstance(b, dict) and "fullname" in b for b in benches):
        raise CommandError(f"{option} {path}: not a pytest-benchmark run (expected a 'benchmarks' list of entries "
                           "with 'fullname'; save one with pytest --benchmark-autosave or --benchmark-json)")
    return benches


@dataclass
class SideValues:
    """Time-like values per benchmark pooled over one side's saved runs."""

    values: dict[str, list[float]]   # one value per saved run
    rules: dict[str, str]
    unrated: set[str]                 # benchmarks present but without a peer ratio


def collect(paths: list[Path], option: str) -> SideValues:
    side = SideValues({}, {}, set())
    for path in paths:
        for bench in load_run(path, option):
            name = bench["fullname"]
            try:
                found = time_like_values(bench.get("extra_info") or {})
            except (ValueError, TypeError, ZeroDivisionError, KeyError) as exc:
                raise CommandError(f"{option} {path}: benchmark {name}: unusable extra_info ({exc})") from None
            if found is None:
                side.unrated.add(name)
                continue
            values, rule = found
            if not all(v > 0 and v == v and v != float("inf") for v in values):
                raise CommandError(f"{option} {path}: benchmark {name}: ratios must be finite and positive, got "
                                   f"{values}")
            side.values.setdefault(name, []).extend(values)
            side.rules[name] = rule
    return side


def looks_like_saved_run(spec: str) -> bool:
    return spec.endswith(".json")

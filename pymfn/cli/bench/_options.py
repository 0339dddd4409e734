"""Checks shared by the bench commands: numeric options in range, a run window that can finish, and runner and
library messages worded with the options the user typed."""
from __future__ import annotations

import argparse
import math
import re
from typing import Callable

from pymfn.bench import settings
from pymfn.bench.settings import RunSettings, SettingError
from pymfn.errors import CommandError


# option -> smallest allowed value; checked before any model is built or loaded, so a typo costs no wait.
_MINIMUM = {"batch": 1, "inflight": 1, "warmup": 0, "warmup_ms": 0.0, "min_iterations": 1, "min_duration": 0.0,
            "max_duration": 1e-9, "threads": 0, "streams": 0, "prefetch": 0, "embedding_size": 1,
            "min_queries": 1, "peak_runs": 1, "samples_per_query": 1, "late_ms": 0.0, "schedule_seed": 0,
            "seed": 0, "budget": 1e-9, "max_batch": 1, "max_queue_delay_ms": 0.0, "keep_warm": 0}
# option -> largest allowed value: what the engines offer (request slots) and what the runner holds.
_MAXIMUM = {"inflight": 64, "schedule_seed": 2**64 - 1, "max_batch": 4096, "max_queue_delay_ms": 60000.0, "keep_warm": 256}


def check_numbers(args: argparse.Namespace) -> None:
    """Every numeric option of the chosen command is finite and in range (NaN fails every comparison), and the
    run's time window holds together: --max-duration caps the whole run, warm-up included."""
    for name, low in _MINIMUM.items():
        value = getattr(args, name, None)
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]  # accuracy's --embedding-size may repeat
        high = _MAXIMUM.get(name, math.inf)
        for v in values:
            if not ((isinstance(v, int) or math.isfinite(v)) and low <= v <= high):
                bound = "> 0" if low == 1e-9 else f">= {low}"
                if high != math.inf:
                    bound = f"in {low}..{high}"
                raise SystemExit(f"--{name.replace('_', '-')} must be {bound}, got {v}")
    check_time_window(args)


def check_time_window(args: argparse.Namespace) -> None:
    """Warm-up and the minimum measurement fit in --max-duration (else the run could never finish as asked)."""
    cap = getattr(args, "max_duration", None)
    if cap is None:
        return
    probe = args.probe_duration if getattr(args, "find_peak", False) else None
    try:  # the settings check their own window when made
        minimum = args.min_duration if getattr(args, "until_stable", None) is None else min(args.window_s, cap)
        st = RunSettings(warmup_ms=getattr(args, "warmup_ms", 0.0), min_duration_s=minimum, max_duration_s=cap)
        settings.check_time_window(st, probe_duration_s=probe)
    except SettingError as exc:
        raise SystemExit(setting_words(str(exc))) from None


# pymfn.bench setting (named `so` in its messages) -> the option that sets it.
OPTION_OF_SETTING = {
    "model": "--model", "input": "--input", "batch": "--batch", "inflight": "--inflight",
    "warmup_iterations": "--warmup", "warmup_ms": "--warmup-ms", "min_iterations": "--min-iterations",
    "min_duration_s": "--min-duration", "max_duration_s": "--max-duration", "scope": "--scope",
    "threads": "--threads", "streams": "--streams", "devices": "--device", "prefetch": "--prefetch", "seed": "--seed",
    "order": "--order", "folder_io": "--folder-io", "percentile": "--percentile", "min_queries": "--min-queries",
    "schedule_seed": "--schedule-seed", "late_ms": "--late-ms", "spin_ms": "--spin-ms", "qps": "--qps",
    "max_batch": "--max-batch", "max_queue_delay_ms": "--max-queue-delay-ms", "keep_warm_threads": "--keep-warm",
    "p99_ms": "--p99-ms", "interval_ms": "--interval-ms", "bound_ms": "--bound-ms",
    "samples_per_query": "--samples-per-query", "peak_runs": "--peak-runs", "peak_tolerance": "--peak-tolerance",
    "probe_duration_s": "--probe-duration", "bound_x_median": "--bound-x-median", "budget_s": "--budget",
    "threshold_pct": "--until-stable", "windows": "--stable-windows", "window_s": "--window-s",
    "hosts": "--hosts", "local_nodes": "--ray-local-nodes", "actor_cpus": "--actor-cpus",
    "actor_resources": "--actor-resources", "address": "--ray",
}


def setting_words(message: str) -> str:
    """A pymfn.bench SettingError in the words of the command line: "`min_duration_s` 5" -> "--min-duration 5"."""
    return re.sub(r"`(\w+)`", lambda m: OPTION_OF_SETTING.get(m.group(1), m.group(1)), message)


# RunSettings field -> the option that sets it, where both use the same unit (durations are seconds on the
# command line and ms in RunSettings: those are checked up front, see check_time_window).
_OPTION_OF_FIELD = {"batch_size": "--batch", "warmup_iterations": "--warmup", "warmup_ms": "--warmup-ms",
                    "min_iterations": "--min-iterations", "inflight": "--inflight", "target_qps": "--qps",
                    "schedule_seed": "--schedule-seed", "samples_per_query": "--samples-per-query",
                    "query_interval_ms": "--interval-ms", "min_query_count": "--min-queries",
                    "late_threshold_ms": "--late-ms", "scheduler_spin_ms": "--spin-ms",
                    "max_batch": "--max-batch", "max_queue_delay_ms": "--max-queue-delay-ms",
                    "keep_warm_threads": "--keep-warm"}


def option_names(message: str, command: str) -> str:
    """A runner message in the words of the command line: "RunSettings.inflight" -> "--inflight"."""
    fields = dict(_OPTION_OF_FIELD, latency_bound_ms="--p99-ms" if command == "server" else "--bound-ms")
    return re.sub(r"\bRunSettings\.(\w+)", lambda m: fields.get(m.group(1), m.group(0)), message)



def run_checked(args: argparse.Namespace, command: str, body: Callable[[argparse.Namespace], int | None]) -> int:
    """``body(args)`` after ``check_numbers``; a runner InvalidArgument is reworded with option names."""
    check_numbers(args)
    try:
        return int(body(args) or 0)
    except SettingError as exc:
        raise CommandError(setting_words(str(exc))) from exc
    except ValueError as exc:
        import pymfn

        if not isinstance(exc, pymfn.load_core().InvalidArgument):
            raise
        worded = option_names(str(exc), command)
        if worded == str(exc):
            raise
        raise CommandError(worded) from exc


def check_scenario_numbers(args: argparse.Namespace) -> None:
    """The scenario options check_numbers cannot express (open intervals, upper bounds), and a schedule that can
    hold --min-queries within --max-duration (or a search within --budget)."""
    for name in ("qps", "p99_ms", "interval_ms", "bound_ms", "probe_duration", "bound_x_median"):
        v = getattr(args, name, None)
        if v is not None and not (math.isfinite(v) and v > 0):
            raise SystemExit(f"--{name.replace('_', '-')} must be > 0, got {v}")
    if not (math.isfinite(args.percentile) and 0 < args.percentile < 100):
        raise SystemExit(f"--percentile must be in (0, 100), got {args.percentile}")
    tol = getattr(args, "peak_tolerance", None)
    if tol is not None and not (math.isfinite(tol) and 0 < tol < 0.5):
        raise SystemExit(f"--peak-tolerance must be in (0, 0.5), got {tol}")
    if not (math.isfinite(args.spin_ms) and 0 <= args.spin_ms <= 1000):
        raise SystemExit(f"--spin-ms must be in 0..1000, got {args.spin_ms}")
    try:
        st = settings.ScenarioSettings(warmup_ms=args.warmup_ms, min_duration_s=args.min_duration,
                                       max_duration_s=args.max_duration, min_queries=args.min_queries)
        if getattr(args, "find_peak", False):
            settings.check_search_fits(st, settings.PeakSearchSettings(
                peak_runs=args.peak_runs, probe_duration_s=args.probe_duration), args.budget)
        elif getattr(args, "qps", None) is not None:
            settings.check_schedule_fits(st, qps=args.qps)
        elif getattr(args, "interval_ms", None) is not None:
            settings.check_schedule_fits(st, interval_ms=args.interval_ms)
    except SettingError as exc:
        raise SystemExit(setting_words(str(exc))) from None

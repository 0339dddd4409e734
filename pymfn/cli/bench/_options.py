"""Checks shared by the bench commands: numeric options in range, a run window that can finish, and runner
messages worded with the options the user typed."""
from __future__ import annotations

import argparse
import math
import re
from typing import Callable

from pymfn.errors import CommandError


# option -> smallest allowed value; checked before any model is built or loaded, so a typo costs no wait.
_MINIMUM = {"batch": 1, "inflight": 1, "warmup": 0, "warmup_ms": 0.0, "min_iterations": 1, "min_duration": 0.0,
            "max_duration": 1e-9, "threads": 0, "streams": 0, "prefetch": 0, "embedding_size": 1,
            "min_queries": 1, "peak_runs": 1, "samples_per_query": 1, "late_ms": 0.0, "schedule_seed": 0,
            "seed": 0, "budget": 1e-9}
# option -> largest allowed value: what the engines offer (request slots) and what the runner holds.
_MAXIMUM = {"inflight": 64, "schedule_seed": 2**64 - 1}


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
    warmup_s = getattr(args, "warmup_ms", 0.0) / 1000.0
    if warmup_s >= cap:
        raise SystemExit(f"--warmup-ms {args.warmup_ms:g} ({warmup_s:g} s) does not fit in --max-duration {cap:g} s, "
                         "which caps the whole run, warm-up included; raise --max-duration or shorten the warm-up")
    durations = [("--min-duration", args.min_duration)]
    if getattr(args, "find_peak", False):
        durations.append(("--probe-duration", args.probe_duration))
    for option, seconds in durations:
        if seconds + warmup_s > cap:
            plus = f" plus --warmup-ms {args.warmup_ms:g}" if warmup_s else ""
            raise SystemExit(f"{option} {seconds:g} s{plus} is more than --max-duration {cap:g} s, which caps the "
                             "whole run, warm-up included")


# RunSettings field -> the option that sets it, where both use the same unit (durations are seconds on the
# command line and ms in RunSettings: those are checked up front, see check_time_window).
_OPTION_OF_FIELD = {"batch_size": "--batch", "warmup_iterations": "--warmup", "warmup_ms": "--warmup-ms",
                    "min_iterations": "--min-iterations", "inflight": "--inflight", "target_qps": "--qps",
                    "schedule_seed": "--schedule-seed", "samples_per_query": "--samples-per-query",
                    "query_interval_ms": "--interval-ms", "min_query_count": "--min-queries",
                    "late_threshold_ms": "--late-ms", "scheduler_spin_ms": "--spin-ms"}


def option_names(message: str, command: str) -> str:
    """A runner message in the words of the command line: "RunSettings.inflight" -> "--inflight"."""
    fields = dict(_OPTION_OF_FIELD, latency_bound_ms="--p99-ms" if command == "server" else "--bound-ms")
    return re.sub(r"\bRunSettings\.(\w+)", lambda m: fields.get(m.group(1), m.group(0)), message)



def run_checked(args: argparse.Namespace, command: str, body: Callable[[argparse.Namespace], int | None]) -> int:
    """``body(args)`` after ``check_numbers``; a runner InvalidArgument is reworded with option names."""
    check_numbers(args)
    try:
        return int(body(args) or 0)
    except ValueError as exc:
        import pymfn

        if not isinstance(exc, pymfn.load_core().InvalidArgument):
            raise
        worded = option_names(str(exc), command)
        if worded == str(exc):
            raise
        raise CommandError(worded) from exc

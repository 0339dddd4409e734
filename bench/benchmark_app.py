"""Run OpenVINO's own ``benchmark_app`` (shipped with the openvino wheel) and parse its figures.

pymfn's OpenVINO numbers are only credible next to the vendor tool measured on the same machine in the
same session, so the benchmarks call this helper instead of quoting old figures. It can also be used
from the command line::

    python bench/benchmark_app.py MODEL.pb --hint latency --shape 1,112,112,3 -t 10

benchmark_app refuses ``-nthreads``/``-nstreams`` together with a performance hint (a UI rule of the
tool, not of OpenVINO); when threads or streams are given, this helper switches to ``-hint none`` with
explicit streams (1 for "latency", like the hint would choose) and the synchronous API for latency.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Sequence


class BenchmarkAppError(RuntimeError):
    """benchmark_app missing, failed, or printed a report this parser does not understand."""


@dataclass
class BenchmarkAppResult:
    """Figures from benchmark_app's final report (latencies in ms, throughput in samples/s)."""

    command: list[str]
    count: int
    duration_ms: float
    median_ms: float
    average_ms: float
    min_ms: float
    max_ms: float
    throughput_fps: float
    # "Querying optimal runtime parameters" section: NUM_STREAMS, INFERENCE_NUM_THREADS, ...
    config: dict[str, str] = field(default_factory=dict)
    output: str = ""

    def summary(self) -> dict[str, object]:
        return {"command": " ".join(self.command), "count": self.count, "median_ms": self.median_ms,
                "average_ms": self.average_ms, "min_ms": self.min_ms, "max_ms": self.max_ms,
                "throughput_fps": self.throughput_fps, "threads": self.config.get("INFERENCE_NUM_THREADS"),
                "streams": self.config.get("NUM_STREAMS"), "nireq": self.config.get("OPTIMAL_NUMBER_OF_INFER_REQUESTS")}


def find_benchmark_app() -> str:
    """The benchmark_app next to this Python (the wheel installs it into the venv's bin), else on PATH."""
    here = Path(sys.executable).parent / "benchmark_app"
    if here.exists():
        return str(here)
    found = shutil.which("benchmark_app")
    if not found:
        raise BenchmarkAppError("benchmark_app not found next to the Python interpreter or on PATH "
                                "(it ships with `pip install openvino`)")
    return found


_NUMBER = r"([0-9]+(?:\.[0-9]+)?)"


def parse_output(text: str, command: Sequence[str] = ()) -> BenchmarkAppResult:
    """Parse benchmark_app's stdout. Raises BenchmarkAppError naming the missing field."""

    def grab(pattern: str, what: str) -> float:
        m = re.search(pattern, text)
        if not m:
            raise BenchmarkAppError(f"benchmark_app output has no {what} line (pattern {pattern!r}); "
                                    f"last lines:\n{_tail(text)}")
        return float(m.group(1))

    # The latency block lists Median/Average/Min/Max after "Latency:"; group-by-shape runs add more blocks,
    # so read the first block only.
    lat_at = text.find("Latency:")
    if lat_at < 0:
        raise BenchmarkAppError(f"benchmark_app output has no 'Latency:' block; last lines:\n{_tail(text)}")
    lat = text[lat_at:]
    config: dict[str, str] = {}
    for m in re.finditer(r"^\[ INFO \]\s{3}([A-Z_]+):\s*(.*)$", text, flags=re.M):
        config.setdefault(m.group(1), m.group(2).strip())
    return BenchmarkAppResult(
        command=list(command),
        count=int(grab(r"Count:\s+([0-9]+) iterations", "Count")),
        duration_ms=grab(rf"Duration:\s+{_NUMBER} ms", "Duration"),
        median_ms=_grab_in(lat, "Median", text),
        average_ms=_grab_in(lat, "Average", text),
        min_ms=_grab_in(lat, "Min", text),
        max_ms=_grab_in(lat, "Max", text),
        throughput_fps=grab(rf"Throughput:\s+{_NUMBER} FPS", "Throughput"),
        config=config,
        output=text,
    )


def _grab_in(block: str, name: str, full: str) -> float:
    m = re.search(rf"{name}:\s+{_NUMBER} ms", block)
    if not m:
        raise BenchmarkAppError(f"benchmark_app latency block has no {name}; last lines:\n{_tail(full)}")
    return float(m.group(1))


def _tail(text: str, n: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def build_command(model: str | os.PathLike, *, hint: str = "latency", precision: str = "f32", threads: int = 0,
                  streams: int = 0, nireq: int = 0, shape: Sequence[int] | None = None, time_s: float = 10.0,
                  device: str = "CPU") -> list[str]:
    """benchmark_app arguments for one run (see the module docstring for the hint/threads rule)."""
    if hint not in ("latency", "throughput"):
        raise ValueError(f"hint must be 'latency' or 'throughput', got {hint!r}")
    if time_s <= 0:
        raise ValueError(f"time_s must be > 0, got {time_s}")
    cmd = [find_benchmark_app(), "-m", str(model), "-d", device, "-infer_precision", precision,
           "-t", str(max(1, int(round(time_s))))]
    if threads or streams:
        cmd += ["-hint", "none"]
        n_streams = streams or (1 if hint == "latency" else 0)
        if n_streams:
            cmd += ["-nstreams", str(n_streams)]
        if threads:
            cmd += ["-nthreads", str(threads)]
        if hint == "latency":
            cmd += ["-api", "sync"]
    else:
        cmd += ["-hint", hint]
    if nireq:
        cmd += ["-nireq", str(nireq)]
    if shape is not None:
        cmd += ["-shape", "[" + ",".join(str(int(d)) for d in shape) + "]"]
    return cmd


def run_benchmark_app(model: str | os.PathLike, *, timeout_s: float | None = None, **kw) -> BenchmarkAppResult:
    """Run benchmark_app on ``model`` (keywords as :func:`build_command`) and parse its report."""
    if not Path(model).is_file():
        raise BenchmarkAppError(f"{model}: model file not found")
    cmd = build_command(model, **kw)
    limit = timeout_s if timeout_s is not None else 120 + 3 * float(kw.get("time_s", 10.0))
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=limit)
    except subprocess.TimeoutExpired as e:
        raise BenchmarkAppError(f"benchmark_app did not finish within {limit:.0f} s: {' '.join(cmd)}") from e
    if proc.returncode != 0:
        raise BenchmarkAppError(f"benchmark_app failed (exit {proc.returncode}): {' '.join(cmd)}\n{_tail(proc.stdout)}")
    return parse_output(proc.stdout, cmd)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Run OpenVINO's benchmark_app on a model and print the figures pymfn's benchmarks compare "
                    "against (median latency, throughput, the threads/streams it chose).")
    p.add_argument("model", help=".pb, .onnx or OpenVINO .xml")
    p.add_argument("--hint", choices=["latency", "throughput"], default="latency")
    p.add_argument("--precision", default="f32", help="-infer_precision (default f32)")
    p.add_argument("--threads", type=int, default=0, help="-nthreads (forces -hint none, see module doc)")
    p.add_argument("--streams", type=int, default=0, help="-nstreams (forces -hint none)")
    p.add_argument("--nireq", type=int, default=0, help="-nireq (0 = benchmark_app's choice)")
    p.add_argument("--shape", help="input shape for dynamic models, e.g. 1,112,112,3")
    p.add_argument("-t", "--time", type=float, default=10.0, help="seconds to measure (default 10)")
    args = p.parse_args(argv)
    shape = [int(d) for d in args.shape.split(",")] if args.shape else None
    try:
        r = run_benchmark_app(args.model, hint=args.hint, precision=args.precision, threads=args.threads,
                              streams=args.streams, nireq=args.nireq, shape=shape, time_s=args.time)
    except BenchmarkAppError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for k, v in r.summary().items():
        print(f"{k:>15}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

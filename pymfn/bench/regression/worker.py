"""The measuring process of `pymfn.bench regress`: one per build and round, driven over stdin/stdout.

`regress` starts this file as ``python -P worker.py '<json spec>'`` with PYTHONPATH and
PYMFN_CORE_DIR pointing at the build under test, so ``import pymfn`` below is *that* build's package
(an older commit's, or the working tree's). That is why this file imports nothing from ``pymfn.bench``
(an older build may not have this module) and uses only the long-standing public API: ``load_core``,
``open_engine`` (``pymfn.runtime.engines``, ``pymfn.engines`` in builds before the layered package),
``RunSettings``, ``run_benchmark``, ``ArrayDataset``, ``FolderDataset``.

Protocol (one JSON object per line on stdout):
  start-up        -> {"ready": true, "pymfn_file": ..., "core_file": ...}   (or {"error": ...})
  "<bench> <s>"   -> {"values": [...]}   one chunk of about <s> s (wall); time-like values (larger = slower)
  "quit"          -> exits
The parent alternates short chunks between the two builds' processes (both alive, one measuring at a
time), so both see the same machine state within a fraction of a second.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

SHAPE = (112, 112, 3)
SAMPLE_BYTES = 112 * 112 * 3 * 4
LOADER_BATCH = 64
THROUGHPUT_BATCH, THROUGHPUT_INFLIGHT = 4, 2


def _settings(core: Any, batch: int, inflight: int, seconds: float) -> Any:
    s = core.RunSettings()
    s.batch_size = batch
    s.inflight = inflight
    s.warmup_iterations = 2
    s.min_iterations = 5
    s.min_duration_ms = seconds * 1000.0
    s.max_duration_ms = max(10_000.0, 20_000.0 * seconds)
    s.scope = core.TimingScope.kCompute
    return s


def _open_engine(*args: Any, **kwargs: Any) -> Any:
    try:
        from pymfn.runtime.engines import open_engine
    except ImportError:  # a build from before the layered package
        from pymfn.engines import open_engine  # type: ignore[no-redef]
    return open_engine(*args, **kwargs)


SLOWDOWN_ENV = "PYMFN_TEST_EXECUTE_SLOWDOWN"


def _slowed(core: Any, engine: Any) -> Any:
    """``engine``, or with PYMFN_TEST_EXECUTE_SLOWDOWN=0.2 in the environment ``core.SlowedEngine(engine, 0.2)``:
    every request 20% slower. The test-only switch regress's error-rate campaign sets on the candidate's side
    (--candidate-env) to measure what regress detects."""
    text = os.environ.get(SLOWDOWN_ENV, "")
    if not text:
        return engine
    try:
        fraction = float(text)
    except ValueError:
        raise ValueError(f"{SLOWDOWN_ENV}='{text}': expected a fraction in [0, 10] (0.1 = every request 10% "
                         "slower; test-only switch)") from None
    if not hasattr(core, "SlowedEngine"):  # a build from before the wrapper: its OpenVINO engine reads the switch
        return engine
    return core.SlowedEngine(engine, fraction=fraction)


def _images(batch: int) -> Any:
    import numpy as np

    return np.random.default_rng(0).uniform(-1.0, 1.0, (max(16, 4 * batch), *SHAPE)).astype(np.float32)


class Latency:
    """Batch 1, one request in flight: every request's milliseconds (the runner's clock, compute scope)."""

    def __init__(self, core: Any, spec: dict) -> None:
        self.core = core
        self.engine = _slowed(core, _open_engine(spec["model"], precision="f32", threads=spec.get("threads", 0)))
        self.reader = core.ArrayDataset(_images(1)).reader(1)

    def chunk(self, seconds: float) -> list[float]:
        result = self.core.run_benchmark(self.engine, self.reader, _settings(self.core, 1, 1, seconds))
        return [float(x) for x in result.samples_ms]


class Throughput:
    """Batch 4, 2 requests in flight (throughput hint): one value per chunk, ms per sample (1000 / samples/s)."""

    def __init__(self, core: Any, spec: dict) -> None:
        self.core = core
        self.engine = _slowed(core, _open_engine(spec["model"], precision="f32", threads=spec.get("threads", 0),
                                                inflight=THROUGHPUT_INFLIGHT))
        self.reader = core.ArrayDataset(_images(THROUGHPUT_BATCH)).reader(THROUGHPUT_BATCH)

    def chunk(self, seconds: float) -> list[float]:
        settings = _settings(self.core, THROUGHPUT_BATCH, THROUGHPUT_INFLIGHT, seconds)
        result = self.core.run_benchmark(self.engine, self.reader, settings)
        return [1000.0 / float(result.throughput_per_s)]


class Loader:
    """A folder of .bin files read in batches of 64 by the default reader, warm page cache: CPU ms per pass.

    CPU time of the whole process (the reader's threads included), not wall time: a pass takes a few ms,
    and on a loaded machine its wall time is mostly how soon the reader's threads were scheduled (A/A
    chunk ratios of 0.2-4.8 measured at load average 9); the CPU it burns is the loader's own cost and
    halves the spread. What it cannot see is a loss of overlap that costs no CPU; bench/test_bench_loader.py
    measures that (prefetch vs synchronous) within one run.
    """

    def __init__(self, core: Any, spec: dict) -> None:
        self.ds = core.FolderDataset(spec["loader_dir"], SAMPLE_BYTES, "float32", list(SHAPE))
        self.one_pass()  # maps the files (io=mmap) and faults them in

    def one_pass(self) -> float:
        t0 = time.process_time()
        reader = self.ds.reader(LOADER_BATCH, 2)  # reader start-up is part of a pass, as in bench/test_bench_loader.py
        rows = 0
        while (batch := reader.next()) is not None:
            rows += batch.valid_rows
        if rows != len(self.ds):
            raise RuntimeError(f"loader pass returned {rows} rows, expected {len(self.ds)}")
        return (time.process_time() - t0) * 1000.0

    def chunk(self, seconds: float) -> list[float]:
        passes: list[float] = []
        start = time.perf_counter()  # the chunk's length is wall time, like the engine chunks
        while len(passes) < 2 or time.perf_counter() - start < seconds:
            passes.append(self.one_pass())
        return passes


BENCHMARKS: dict[str, Callable[[Any, dict], Any]] = {"latency": Latency, "throughput": Throughput, "loader": Loader}


def _one_line(exc: BaseException) -> str:
    text = " | ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _say(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    try:
        import pymfn

        core = pymfn.load_core()
        ready = {"ready": True, "pymfn_file": str(Path(pymfn.__file__).resolve()),
                 "core_file": str(Path(core.__file__).resolve())}
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line
        _say({"error": f"import: {_one_line(exc)}"})
        return 0
    benches = {}
    for name in spec["benchmarks"]:
        try:
            benches[name] = BENCHMARKS[name](core, spec)
        except Exception as exc:  # noqa: BLE001
            _say({"error": f"benchmark {name}: {_one_line(exc)}"})
            return 0
    _say(ready)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        try:
            _say({"values": benches[words[0]].chunk(float(words[1]))})
        except Exception as exc:  # noqa: BLE001
            _say({"error": f"benchmark {words[0]}: {_one_line(exc)}"})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

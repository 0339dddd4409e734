"""Audits of a timed run, after LoadGen's compliance tests.

* TEST01 -- the outputs are real: a seeded sample of the run's requests is recorded while it is timed
  (``_core.RecordingEngine``: inputs and outputs copied, the other requests untouched); afterwards each recorded
  input is run again on the same engine and its outputs must be bit-identical to those logged during the run.
* TEST04 -- no result caching: back-to-back runs of the engine on fresh unique inputs and on one input repeated,
  interleaved over several rounds; the repeated input must not be faster by more than ``threshold`` (a system
  that remembers results answers a repeated input without computing it).
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from pymfn.bench.settings import check_int, check_number

#: TEST04's unique inputs of one run are held in memory at most this large.
MAX_UNIQUE_BYTES = 256 * 2**20


@dataclass(frozen=True)
class AuditSettings:
    """How :func:`run_audit` checks a run.

    >>> from pymfn.bench.audit import AuditSettings
    >>> AuditSettings().threshold
    0.1
    """

    #: TEST01: share of the run's requests whose inputs and outputs are recorded, at most ``max_records``
    fraction: float = 0.1
    max_records: int = 64
    #: seed of the TEST01 sample and of TEST04's inputs
    seed: int = 0
    #: TEST04: interleaved pairs of runs (unique inputs, one input repeated) and requests per run
    rounds: int = 3
    requests: int = 64
    #: TEST04 fails when the repeated input's median latency is below (1 - threshold) x the unique inputs'
    threshold: float = 0.10

    def __post_init__(self) -> None:
        check_number("fraction", self.fraction, 0.0, low_open=True, high=1.0)
        check_int("max_records", self.max_records, 1, 1_000_000)
        check_int("seed", self.seed, 0, 2**64 - 1)
        check_int("rounds", self.rounds, 1, 100)
        check_int("requests", self.requests, 2, 1_000_000)
        check_number("threshold", self.threshold, 0.0, low_open=True, high=1.0, high_open=True)


def recording(core: Any, engines: list[Any], st: AuditSettings) -> list[Any]:
    """The run's engines wrapped so that a seeded sample of their requests is recorded (TEST01)."""
    return [core.RecordingEngine(e, fraction=st.fraction, max_records=st.max_records, seed=st.seed + i)
            for i, e in enumerate(engines)]


def run_audit(core: Any, recorders: list[Any], batch: int, st: AuditSettings, *,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """TEST01 on what ``recorders`` logged during the run, then TEST04 on the first engine; both as JSON-ready
    dicts with a ``verdict`` of PASS / FAIL (TEST01: NO SAMPLE when no request was recorded)."""
    test01 = outputs_audit(recorders)
    if log is not None:
        log(f"audit: TEST01 {test01['verdict']}; TEST04 runs {st.rounds} x 2 runs of {st.requests} requests")
    test04 = caching_audit(core, recorders[0].engine, batch, st)
    return {"test01": test01, "test04": test04, "settings": {
        "fraction": st.fraction, "max_records": st.max_records, "seed": st.seed, "rounds": st.rounds,
        "requests": st.requests, "threshold": st.threshold}}


def attach_audit(doc: dict[str, Any], core: Any, recorders: list[Any], batch: int, st: AuditSettings,
                 log: Callable[[str], None] | None = None) -> None:
    """``doc["audit"]`` after a run: skipped when the run was interrupted; Ctrl-C during the audit marks both."""
    if doc.get("interrupted"):
        doc["audit"] = {"interrupted": True}
        return
    try:
        doc["audit"] = run_audit(core, recorders, batch, st, log=log)
    except KeyboardInterrupt:
        doc["audit"] = {"interrupted": True}
        doc["interrupted"] = True


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def outputs_audit(recorders: list[Any]) -> dict[str, Any]:
    """TEST01: each recorded request run again on its engine; its outputs must be bit-identical."""
    checked = differing = 0
    max_abs = 0.0
    seen = 0
    for rec in recorders:
        seen += int(rec.requests_seen)
        for record in rec.records():
            again = rec.engine.execute(record["inputs"])
            checked += 1
            if not all(_same_bits(np.asarray(x), np.asarray(y)) for x, y in zip(record["outputs"], again)):
                differing += 1
                for x, y in zip(record["outputs"], again):
                    if np.asarray(x).shape == np.asarray(y).shape:
                        diff = np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))
                        max_abs = max(max_abs, float(np.nanmax(diff)) if diff.size else 0.0)
    verdict = "NO SAMPLE" if checked == 0 else "PASS" if differing == 0 else "FAIL"
    return {"verdict": verdict, "requests_seen": seen, "recorded": checked, "differing": differing,
            "max_abs_difference": max_abs}


def caching_audit(core: Any, engine: Any, batch: int, st: AuditSettings) -> dict[str, Any]:
    """TEST04: median latency of one input repeated vs fresh unique inputs, interleaved rounds."""
    from pymfn.bench.target import input_spec

    _, shape, dtype = input_spec(engine)
    sample_bytes = int(np.prod(shape)) * dtype.itemsize
    rows = max(batch, min(st.requests * batch, MAX_UNIQUE_BYTES // max(sample_bytes, 1)) // batch * batch)
    requests = rows // batch
    rng = np.random.default_rng(st.seed)

    def inputs(n: int) -> np.ndarray:
        if dtype == np.uint8:
            return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
        return rng.uniform(-1.0, 1.0, size=(n, *shape)).astype(dtype)

    def median_ms(data: np.ndarray) -> float:
        native = core.RunSettings(batch_size=batch, warmup_iterations=1, min_iterations=requests,
                                  min_duration_ms=0.0, max_duration_ms=600000.0)
        return float(core.run_benchmark(engine, core.ArrayDataset(data).reader(batch), native).latency.median)

    unique_ms, repeated_ms = [], []
    for _ in range(st.rounds):
        unique_ms.append(median_ms(inputs(rows)))  # fresh inputs every round: nothing seen before
        repeated_ms.append(median_ms(np.repeat(inputs(1), batch, axis=0)))
    unique, repeated = statistics.median(unique_ms), statistics.median(repeated_ms)
    ratio = repeated / unique if unique > 0 else float("nan")
    verdict = "PASS" if ratio >= 1.0 - st.threshold else "FAIL"
    return {"verdict": verdict, "ratio": ratio, "unique_median_ms": unique, "repeated_median_ms": repeated,
            "unique_run_medians_ms": unique_ms, "repeated_run_medians_ms": repeated_ms,
            "requests_per_run": requests}


def audit_lines(audit: dict[str, Any] | None) -> list[str]:
    """The report's lines for an audit (none without one)."""
    if not audit:
        return []
    if audit.get("interrupted"):
        return ["Audit: interrupted before it finished; no verdict"]
    t1, t4 = audit["test01"], audit["test04"]
    if t1["verdict"] == "NO SAMPLE":
        first = f"NO SAMPLE: none of the {t1['requests_seen']} requests was recorded (a longer run, or a larger fraction)"
    elif t1["verdict"] == "PASS":
        first = (f"PASS, {t1['recorded']} of the run's {t1['requests_seen']} requests (warm-up included) recorded, "
                 "each bit-identical when run again")
    else:
        first = (f"FAIL, {t1['differing']} of {t1['recorded']} recorded requests differ when run again "
                 f"(max |difference| {t1['max_abs_difference']:.3g})")
    limit = 1.0 - audit["settings"]["threshold"]
    return [f"Audit TEST01 (outputs logged during the run = a re-run): {first}",
            f"Audit TEST04 (one input repeated is not faster): {t4['verdict']}, median {t4['repeated_median_ms']:.3f} ms "
            f"repeated vs {t4['unique_median_ms']:.3f} ms on unique inputs (ratio {t4['ratio']:.3f}, fails below "
            f"{limit:.2f}; {audit['settings']['rounds']} interleaved rounds of {t4['requests_per_run']} requests)"]

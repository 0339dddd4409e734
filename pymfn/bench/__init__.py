"""pymfn.bench: measure MobileFaceNet deployments from Python; ``pymfn bench <command>`` is a thin layer over it.

Timed runs (the timing loop is C++, ``pymfn._core``, GIL released)::

    import pymfn.bench as b
    r = b.latency(b.default_model())                     # or a path: .pb, .onnx, .xml, .om
    print(r.median_ms, r.p99_ms, r.throughput_per_s)
    print(r.report())                                    # the table `pymfn bench latency` prints
    r.to_json("latency.json"); r.plot("latency.png")

:func:`latency`, :func:`throughput`, :func:`server`, :func:`find_peak` and :func:`multistream` take their knobs
in :class:`RunSettings` / :class:`ScenarioSettings` / :class:`PeakSearchSettings` and return results (dataclasses
with ``report()``, ``to_dict()``, ``to_json()``, ``to_csv()``, ``plot()``). A run stopped by Ctrl-C or SIGTERM
returns what it measured with ``interrupted=True``. :func:`fleet_throughput` runs throughput on every host of a
Ray cluster at once and reports the aggregate on one clock (:class:`FleetSettings`, extra ``pymfn[ray]``).
"""
from pymfn.bench.perf import (LatencyResult, LatencyStats, OfflineResult, ThroughputResult, latency,
                              throughput)
from pymfn.bench.result import Result
from pymfn.bench.fleet import FleetResult, FleetSettings, fleet_throughput
from pymfn.bench.scenarios import (MultistreamResult, PeakResult, ScenarioRunResult, ServerResult, find_peak,
                                   multistream, server)
from pymfn.bench.settings import PeakSearchSettings, RunSettings, ScenarioSettings, SettingError
from pymfn.bench.stability import StabilitySettings
from pymfn.bench.target import default_model
from pymfn.bench.lfw_accuracy import AccuracyResult, accuracy
from pymfn.bench.msame_comparison import MsameComparison, msame_compare
from pymfn.bench.precision_sweep import SweepResult, SweepSettings, sweep
from pymfn.bench.audit import AuditSettings
from pymfn.bench.loadgen_harness import LoadgenResult, loadgen_run
from pymfn.bench.regression.compare import RegressResult, RegressSettings, Verdict, regress

__all__ = [
    "default_model", "latency", "throughput", "server", "find_peak", "multistream", "fleet_throughput",
    "RunSettings", "ScenarioSettings", "PeakSearchSettings", "SettingError", "StabilitySettings",
    "Result", "LatencyStats", "OfflineResult", "LatencyResult", "ThroughputResult", "ScenarioRunResult",
    "ServerResult", "MultistreamResult", "PeakResult", "FleetSettings", "FleetResult",
    "accuracy", "sweep", "msame_compare", "regress", "loadgen_run", "LoadgenResult", "AuditSettings",
    "AccuracyResult", "SweepResult", "SweepSettings", "MsameComparison", "RegressResult", "RegressSettings", "Verdict",
]

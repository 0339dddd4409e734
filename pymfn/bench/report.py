"""Turning a RunResult into what people read: a trtexec-style table, JSON, and a latency plot."""
from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np

from pymfn._atomic import atomic_write

PERCENTILE_METHOD = (
    "linear interpolation between closest ranks (numpy 'linear', h = (n-1)*q); std is the population std"
)

METRIC_EXPLANATIONS = [
    ("latency", "time of one request: one batch through the engine, measured with a monotonic clock (steady_clock)"),
    ("scope compute", "only the engine's execute call is timed (what msame and ais_bench report)"),
    ("scope end-to-end", "batch fetch from the input source + execute + output fetch are timed"),
    ("throughput", "samples processed / wall-clock time of the measured phase (not derived from the mean latency)"),
    ("p90/p95/p99/p99.9", "percentiles of the per-request latencies; p99.9 needs >= 1000 requests to mean anything"),
    ("CV", "coefficient of variation = std / mean; above 5% the run is noisy and medians are safer than means"),
    ("h2d / compute / d2h", "engine-reported stages: host-to-device copy, execute, device-to-host copy (ACL engine)"),
]


def host_info() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
    }


def latency_dict(stats: Any) -> dict[str, float]:
    keys = ["min", "mean", "median", "p90", "p95", "p99", "p999", "max", "std", "cv"]
    return {k: float(getattr(stats, k)) for k in keys}


def result_to_json(result: Any, meta: dict[str, Any]) -> dict[str, Any]:
    """Combine run metadata with a pymfn._core.RunResult into the JSON document the CLI writes."""
    doc = dict(meta)
    doc.update(
        {
            "iterations": int(result.iterations),
            "warmup": int(result.warmup_iterations),
            "samples_processed": int(result.samples_processed),
            "wall_ms": float(result.wall_ms),
            "latency_ms": latency_dict(result.latency),
            "throughput_per_s": float(result.throughput_per_s),
            "stage_means_ms": {k: float(v) for k, v in dict(result.stage_means_ms).items()},
            "stopped_on_max_duration": bool(result.stopped_on_max_duration),
            "warnings": list(result.warnings),
            "percentile_method": PERCENTILE_METHOD,
            "samples_ms": [float(x) for x in np.asarray(result.samples_ms)],
            "start_offsets_ms": [float(x) for x in np.asarray(result.start_offsets_ms)],
        }
    )
    return doc


def write_json(doc: dict[str, Any], path: str | os.PathLike) -> None:
    with atomic_write(path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


def format_table(doc: dict[str, Any]) -> str:
    lat = doc["latency_ms"]
    out = []
    title = f"pymfn {doc['mode']}: {doc['engine']} engine, batch {doc['batch']}, {doc['precision']}, scope {doc['scope']}"
    out.append("=" * len(title))
    out.append(title)
    out.append("=" * len(title))
    rows = [
        ("Model", doc["model"]),
        ("Model kind", doc.get("model_description", "")),
        ("Engine", ", ".join(f"{k}={v}" for k, v in sorted(doc.get("engine_properties", {}).items()))),
        ("Input", doc.get("input", "")),
        ("In flight", str(doc.get("inflight", 1))),
        ("Warm-up", f"{doc['warmup']} iterations"),
        ("Measured", f"{doc['iterations']} iterations, {doc['samples_processed']} samples in {doc['wall_ms'] / 1000:.3f} s"),
        ("Throughput", f"{doc['throughput_per_s']:.1f} samples/s"),
    ]
    if doc.get("timing_note"):
        rows.append(("Note", doc["timing_note"]))
    width = max(len(r[0]) for r in rows)
    out += [f"{k:<{width}} : {v}" for k, v in rows if v != ""]
    out.append("")
    out.append("Latency (ms)   min      mean     median   p90      p95      p99      p99.9    max      std      CV")
    out.append(
        "               "
        + " ".join(f"{lat[k]:<8.3f}" for k in ["min", "mean", "median", "p90", "p95", "p99", "p999", "max", "std"])
        + f" {lat['cv'] * 100:.1f}%"
    )
    stages = doc.get("stage_means_ms") or {}
    if stages:
        out.append("Stages (mean)  " + "  ".join(f"{k.replace('_ms', '')} {v:.3f} ms" for k, v in sorted(stages.items())))
    out.append("")
    out.append("What the figures mean:")
    out += [f"  {name:<18} {text}" for name, text in METRIC_EXPLANATIONS]
    out.append(f"  {'percentiles':<18} {PERCENTILE_METHOD}")
    for w in doc.get("warnings", []):
        out.append(f"WARNING: {w}")
    return "\n".join(out)


def plot_latency(doc: dict[str, Any], path: str | os.PathLike) -> None:
    """Histogram of request latencies next to the per-iteration trace (spot drift, throttling, GC)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = np.asarray(doc["samples_ms"], dtype=np.float64)
    lat = doc["latency_ms"]
    fig, (ax_hist, ax_trace) = plt.subplots(1, 2, figsize=(12, 4.5))
    ax_hist.hist(samples, bins=min(100, max(10, samples.size // 20)), color="#4477aa")
    for key, style in (("median", "-"), ("p99", "--")):
        ax_hist.axvline(lat[key], color="#cc3311", linestyle=style, label=f"{key} {lat[key]:.3f} ms")
    ax_hist.set_xlabel("latency (ms)")
    ax_hist.set_ylabel("requests")
    ax_hist.legend()
    ax_hist.set_title("latency histogram")
    ax_trace.plot(np.arange(samples.size), samples, linewidth=0.6, color="#4477aa")
    ax_trace.set_xlabel("iteration")
    ax_trace.set_ylabel("latency (ms)")
    ax_trace.set_title("per-iteration trace")
    fig.suptitle(f"{doc['engine']} batch {doc['batch']} {doc['precision']} ({doc['scope']}) — {Path(doc['model']).name}")
    fig.tight_layout()
    suffix = Path(path).suffix or ".png"
    with atomic_write(path) as f:
        fig.savefig(f, format=suffix.lstrip("."), dpi=100)
    plt.close(fig)

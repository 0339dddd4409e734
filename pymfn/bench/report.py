"""Turning a RunResult into what people read: a trtexec-style table, JSON, and a latency plot."""
from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np

from pymfn.files import atomic as _atomic
from pymfn.files.atomic import atomic_write, refuse_overlap

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
    ("h2d / compute / d2h", "engine-reported stages: host-to-device copy, execute, device-to-host copy (ACL engine); "
     "ACL compute = aclmdlExecute alone, msame's scope"),
]

DEVICE_EXPLANATIONS = [
    ("aggregate", "all samples of all devices / the common wall time, from the first device's first measured start to "
     "the last device's last completion, on one clock (never a sum of per-device rates)"),
    ("per device", "each device's samples over its own first start .. last completion (for comparing devices)"),
    ("skew", "start: spread of the devices' first measured starts; end: spread of their last completions"),
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
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_isa": cpu_isa(),
        "logical_cpus": os.cpu_count(),
        "load_average": load,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
    }


def cpu_isa() -> list[str]:
    """The CPU flags that decide inference speed (vector width, bf16/f16/int8 units). This project's machines
    change CPU model between sessions (AVX2-only one day, AVX-512 with AMX the next), so every figure carries them."""
    from pymfn.runtime.precision import cpu_flags

    keep = {"sse4_2", "fma", "f16c"}
    return sorted(f for f in cpu_flags() if f.startswith(("avx", "amx")) or f in keep or "vnni" in f)


def busy_warning(host: dict[str, Any] | None) -> str | None:
    """A warning when other work kept at least half the CPUs busy in the minute before the run: its absolute
    times are then pessimistic (ratios against a peer measured in the same run still hold)."""
    load, cpus = (host or {}).get("load_average"), (host or {}).get("logical_cpus")
    if not load or not cpus or load[0] < 0.5 * cpus:
        return None
    return (f"busy machine: 1-min load average {load[0]:.2f} on {cpus} logical CPUs before the run; absolute times "
            "are pessimistic, compare ratios measured in one run (or rerun when idle)")


def run_warnings(result: Any, meta: dict[str, Any]) -> list[str]:
    """The runner's warnings plus the busy-machine one: what every timed report (JSON and console) lists."""
    busy = busy_warning(meta.get("host"))
    return list(result.warnings) + ([busy] if busy else [])


def format_host(host: dict[str, Any] | None) -> str:
    """One line: CPU model, logical CPUs, the load average when it was read (before the run) and the ISA flags."""
    if not host:
        return ""
    load = host.get("load_average")
    load_text = f", load average {' '.join(str(x) for x in load)}" if load else ""
    isa = " ".join(host.get("cpu_isa") or []) or "no flags readable"
    return f"{host.get('cpu', '?')}, {host.get('logical_cpus', '?')} logical CPUs{load_text}; ISA: {isa}"


def latency_dict(stats: Any) -> dict[str, float]:
    keys = ["min", "mean", "median", "p90", "p95", "p99", "p999", "max", "std", "cv"]
    return {k: float(getattr(stats, k)) for k in keys}


def stage_samples_json(samples: Any) -> tuple[dict[str, list[float]], dict[str, dict[str, float]]]:
    """Per-request engine stage samples and their statistics (same percentile method as the latency)."""
    import pymfn

    core = pymfn.load_core()
    raw = {str(k): [float(x) for x in np.asarray(v)] for k, v in dict(samples).items()}
    stats = {k: latency_dict(core.compute_stats(v)) for k, v in raw.items() if v}
    return raw, stats


def device_dict(d: Any) -> dict[str, Any]:
    return {
        "name": d.name,
        "iterations": int(d.iterations),
        "samples_processed": int(d.samples_processed),
        "first_start_ms": float(d.first_start_ms),
        "last_end_ms": float(d.last_end_ms),
        "wall_ms": float(d.wall_ms),
        "throughput_per_s": float(d.throughput_per_s),
        "latency_ms": latency_dict(d.latency),
        "stage_means_ms": {k: float(v) for k, v in dict(d.stage_means_ms).items()},
    }


def stop_fields(result: Any) -> dict[str, Any]:
    """Why a run ended, for its JSON: "stop_reason" ("minimums met", "max duration", "interrupted") and
    "interrupted" (Ctrl-C: every figure covers only what was measured before it)."""
    import pymfn

    core = pymfn.load_core()
    return {"stop_reason": core.stop_reason_name(result.stop_reason), "interrupted": bool(result.interrupted),
            "stopped_on_max_duration": bool(result.stopped_on_max_duration)}


def ended_row(doc: dict[str, Any]) -> tuple[str, str]:
    """The report row saying how the run ended, when it did not end as asked."""
    if doc.get("interrupted"):
        return ("Ended", "INTERRUPTED (Ctrl-C): the figures cover only what was measured before it")
    if doc.get("stop_reason") == "max duration":
        return ("Ended", "on --max-duration, before the minimums were met")
    return ("Ended", "")


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
            **stop_fields(result),
            "warnings": run_warnings(result, meta),
            "percentile_method": PERCENTILE_METHOD,
            "samples_ms": [float(x) for x in np.asarray(result.samples_ms)],
            "start_offsets_ms": [float(x) for x in np.asarray(result.start_offsets_ms)],
        }
    )
    # getattr: an older _core has neither field (the JSON then simply lacks them).
    doc["stage_samples_ms"], doc["stage_stats_ms"] = stage_samples_json(getattr(result, "stage_samples_ms", {}))
    devices = list(getattr(result, "devices", []))
    if devices:
        doc["devices"] = [device_dict(d) for d in devices]
        doc["sample_devices"] = [int(x) for x in np.asarray(result.sample_devices)]
        doc["start_skew_ms"] = float(result.start_skew_ms)
        doc["end_skew_ms"] = float(result.end_skew_ms)
        doc["aggregate"] = ("throughput_per_s = samples_processed / wall_ms, one clock over all devices; "
                            "devices[i].throughput_per_s is each device's own and is not summed")
    return doc


def write_json(doc: dict[str, Any], path: str | os.PathLike) -> None:
    """Strict JSON (no NaN: an undefined figure is null, with its reason under "null_reasons"), written
    atomically; never over the model or data the report describes."""
    inputs = [(f"the {key} {doc[key]}", Path(doc[key])) for key in ("model", "data") if isinstance(doc.get(key), str)]
    refuse_overlap([(str(path), Path(path))], inputs)
    _atomic.write_json(path, doc)


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
        ended_row(doc),
        ("Host", format_host(doc.get("host"))),
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
    for name, st in sorted((doc.get("stage_stats_ms") or {}).items()):
        out.append(f"Stage {name.replace('_ms', ''):<8} " + " ".join(
            f"{st[k]:<8.3f}" for k in ["min", "mean", "median", "p90", "p95", "p99", "p999", "max", "std"])
            + f" {st['cv'] * 100:.1f}%  (per request, engine-reported)")
    out += format_devices(doc)
    out.append("")
    out.append("What the figures mean:")
    out += [f"  {name:<18} {text}" for name, text in METRIC_EXPLANATIONS]
    if doc.get("devices") and len(doc["devices"]) > 1:
        out += [f"  {name:<18} {text}" for name, text in DEVICE_EXPLANATIONS]
    out.append(f"  {'percentiles':<18} {PERCENTILE_METHOD}")
    for w in doc.get("warnings", []):
        out.append(f"WARNING: {w}")
    return "\n".join(out)


def format_devices(doc: dict[str, Any]) -> list[str]:
    """Per-device rows under the aggregate (only for runs on more than one device)."""
    devices = doc.get("devices") or []
    if len(devices) < 2:
        return []
    width = max(len(d["name"]) for d in devices)
    out = ["", f"Devices ({len(devices)}, one clock): aggregate {doc['throughput_per_s']:.1f} samples/s = "
           f"{doc['samples_processed']} samples / {doc['wall_ms']:.1f} ms common wall time; "
           f"start skew {doc.get('start_skew_ms', 0):.3f} ms, end skew {doc.get('end_skew_ms', 0):.3f} ms",
           f"  {'device':<{width}}  requests  samples   samples/s  start ms  end ms     median   p99      max"]
    for d in devices:
        lat = d["latency_ms"]
        out.append(f"  {d['name']:<{width}}  {d['iterations']:<8}  {d['samples_processed']:<8}  "
                   f"{d['throughput_per_s']:<10.1f} {d['first_start_ms']:<9.3f} {d['last_end_ms']:<10.1f} "
                   f"{lat['median']:<8.3f} {lat['p99']:<8.3f} {lat['max']:.3f}")
    rates = [d["throughput_per_s"] for d in devices if d["iterations"]]
    if rates:
        out.append(f"  slowest / fastest device: {min(rates) / max(rates):.3f}")
    return out


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

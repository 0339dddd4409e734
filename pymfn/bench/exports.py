"""Tabular exports of benchmark results: the per-run CSV (``Result.csv_rows``) and the per-request CSV of raw
latencies, written atomically.

A per-request row is one measured request (latency, throughput) or one completed query (server,
multi-stream): ``index`` (0-based, in the order the runner recorded it), ``start_ms`` (when it started, from
the first measured start; for a scheduled query its *scheduled* arrival from the schedule's start) and
``latency_ms``; a scheduled query adds ``issued_ms`` and ``completed_ms`` (same origin), and every row names its
``device`` when there is more than one.
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from pymfn.files.atomic import write_file

#: The latency statistics every run's CSV row and JSON carry, as (column suffix, key in ``latency_ms``).
PERCENTILE_COLUMNS = (("p50", "median"), ("p90", "p90"), ("p95", "p95"), ("p99", "p99"), ("p99.9", "p999"),
                      ("max", "max"))

PER_REQUEST_COLUMNS = ("index", "start_ms", "latency_ms", "issued_ms", "completed_ms", "device")


def percentile_fields(stats: Mapping[str, Any], prefix: str = "latency") -> dict[str, Any]:
    """``{"latency_p50_ms": ..., ..., "latency_max_ms": ...}`` from a ``latency_ms`` statistics dict."""
    return {f"{prefix}_{name}_ms": stats.get(key) for name, key in PERCENTILE_COLUMNS}


def percentiles_of(samples_ms: Sequence[float]) -> dict[str, float | None]:
    """p50, p90, p95, p99, p99.9 and max of raw latencies (numpy's linear interpolation between closest ranks,
    the runner's method); every value None when there are no samples."""
    import numpy as np

    values = np.asarray(samples_ms, dtype=np.float64)
    names = [name for name, _ in PERCENTILE_COLUMNS]
    if values.size == 0:
        return dict.fromkeys(names)
    qs = np.percentile(values, [50, 90, 95, 99, 99.9, 100])
    return {name: float(q) for name, q in zip(names, qs)}


def per_request_rows(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The raw per-request (or per-query) latencies of one run's JSON document, one dict per row."""
    if "queries_raw" in document:
        raw = document["queries_raw"]
        devices = raw.get("device") or []
        several = len(set(devices)) > 1
        rows = []
        for i, (s, iss, c) in enumerate(zip(raw["scheduled_ms"], raw["issued_ms"], raw["completed_ms"])):
            row: dict[str, Any] = {"index": i, "start_ms": s, "latency_ms": c - s, "issued_ms": iss,
                                   "completed_ms": c}
            if several:
                row["device"] = devices[i]
            rows.append(row)
        return rows
    if "samples_ms" in document:
        latencies = document["samples_ms"]
        starts = document.get("start_offsets_ms") or [None] * len(latencies)
        devices = document.get("sample_devices") or []
        several = len(document.get("devices") or []) > 1
        rows = []
        for i, (s, lat) in enumerate(zip(starts, latencies)):
            row = {"index": i, "start_ms": s, "latency_ms": lat}
            if several and i < len(devices):
                row["device"] = devices[i]
            rows.append(row)
        return rows
    raise ValueError("this result holds no per-request latencies")


def csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """CSV of ``rows``: the header is ``columns`` (those present in some row) or the union of the rows' keys in
    first-seen order; a missing value is an empty cell."""
    present: list[str] = []
    for row in rows:
        present += [k for k in row if k not in present]
    if columns is not None:
        present = [c for c in columns if c in present]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=present, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def per_request_csv(document: Mapping[str, Any], path: str | os.PathLike | None = None) -> str:
    """The per-request CSV of one run's document; written atomically to ``path`` when given."""
    text = csv_text(per_request_rows(document), PER_REQUEST_COLUMNS)
    if path is not None:
        write_file(Path(path), text.encode())
    return text

"""Every precision this host runs, on every engine, in one run: ``sweep(...) -> SweepResult``.

A deployer's decision is speed against accuracy. One command measures the matrix side by side on the same
machine in the same run: OpenVINO in f32 / bf16 / f16 / INT8, the ACL engine on the emulator with an fp16
and an INT8 emulator om, and the TensorFlow session as the f32 reference. Each row gets

* LFW accuracy (InsightFace protocol, no flip) and its difference to OpenVINO f32 in points,
* batch-1 latency (median, p99) and the best throughput over ``--batches`` (2 requests in flight),
* the precision that really ran (from the compiled model, ``pymfn.runtime.precision``) and a verdict.

Rows this CPU cannot run (OpenVINO lacks the capability, so it would silently run another precision) are
listed with the reason and not measured. Timed phases are interleaved: every row runs once per round, rounds
alternate their order, and each figure is the median over rounds, so ratios (INT8 / bf16, INT8 / f32) come
from one run under the same conditions. The load average at the start and the end is reported beside them.
Emulator rows are HOST timings of OpenVINO inside pymfn's ACL emulator, not Ascend figures.
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import numpy as np

import pymfn
from pymfn.bench import report
from pymfn.bench.exports import percentiles_of
from pymfn.bench.naming import opt
from pymfn.bench.result import Result
from pymfn.errors import CommandError, one_line

# --rows key -> (row name, engine, requested precision)
ROW_SPECS: dict[str, tuple[str, str, str]] = {
    "tf": ("tensorflow f32", "tf", "f32"),
    "f32": ("openvino f32", "openvino", "f32"),
    "bf16": ("openvino bf16", "openvino", "bf16"),
    "f16": ("openvino f16", "openvino", "f16"),
    "int8": ("openvino int8", "openvino", "int8"),
    "om-fp16": ("acl emulator fp16 om", "acl", "f16"),
    "om-int8": ("acl emulator int8 om", "acl", "int8"),
}
REFERENCE = "f32"        # accuracy differences and throughput ratios are taken against OpenVINO f32
ACCURACY_INFLIGHT = 2
THROUGHPUT_INFLIGHT = 2
GATE_PT = 0.15           # the accuracy gate: within 0.15 pt of OpenVINO f32


@dataclass
class Row:
    """One (engine, precision) cell of the sweep, with its engines while measuring and its figures after."""

    key: str
    name: str
    engine: str
    precision: str
    model: Path | None = None
    status: str = "pending"            # ok | not run: <why> | failed: <why>
    precision_report: dict[str, Any] = field(default_factory=dict)
    accuracy: float | None = None
    accuracy_std: float | None = None
    delta_pt: float | None = None
    accuracy_s: float | None = None
    latency_samples_ms: list[float] = field(default_factory=list)
    latency_median_ms: float | None = None
    latency_p99_ms: float | None = None
    batch_search: dict[int, float] = field(default_factory=dict)
    best_batch: int | None = None
    throughput_rounds: list[float] = field(default_factory=list)
    throughput: float | None = None
    emulator: dict[str, str] = field(default_factory=dict)  # acl rows: the emulator's compile record
    lat_engine: Any = field(default=None, repr=False)
    tp_engine: Any = field(default=None, repr=False)

    @property
    def active(self) -> bool:
        return self.status in ("pending", "ok")

    def fail(self, exc: BaseException) -> None:
        self.status = f"failed: {one_line(exc)}"
        self.lat_engine = self.tp_engine = None

    def to_json(self) -> dict[str, Any]:
        keys = ("key", "name", "engine", "precision", "status", "precision_report", "accuracy", "accuracy_std",
                "delta_pt", "accuracy_s", "latency_median_ms", "latency_p99_ms", "batch_search", "best_batch",
                "throughput_rounds", "throughput", "emulator")
        doc = {k: getattr(self, k) for k in keys}
        doc["model"] = str(self.model) if self.model else None
        doc["latency_percentiles_ms"] = percentiles_of(self.latency_samples_ms)
        doc["batch_search"] = {str(b): v for b, v in self.batch_search.items()}
        return doc


# ---------------------------------------------------------------- preparing rows

@dataclass
class SweepSettings:
    """What the sweep measures and for how long (the defaults are ``pymfn bench sweep``'s)."""

    rows: Sequence[str] = tuple(ROW_SPECS)   # keys of ROW_SPECS, in the order the table lists them
    batches: Sequence[int] = (1, 4, 16)      # batch sizes tried for each row's best throughput (1..256)
    rounds: int = 5                          # interleaved timing rounds; each figure is the median over them
    seconds: float = 2.0                     # throughput per row and round (latency and batch search: half)
    pairs: int | None = None                 # the first N LFW pairs only (>= 20; None = all 6,000)

    def checked(self) -> tuple[list[str], list[int]]:
        """(row keys without repeats, sorted batch sizes); a bad value raises CommandError naming it."""
        keys = list(dict.fromkeys(self.rows))
        if not keys or any(k not in ROW_SPECS for k in keys):
            raise CommandError(f"{opt('rows')} {list(self.rows)!r}: expected a subset of {','.join(ROW_SPECS)}")
        batches = sorted({int(b) for b in self.batches})
        if not batches or any(not 1 <= b <= 256 for b in batches):
            raise CommandError(f"{opt('batches')} {list(self.batches)!r}: every batch size must be 1..256")
        if self.rounds < 1:
            raise CommandError(f"{opt('rounds')} {self.rounds}: expected at least 1")
        if not (np.isfinite(self.seconds) and 0.05 <= self.seconds <= 600):
            raise CommandError(f"{opt('seconds')} {self.seconds}: expected 0.05..600")
        if self.pairs is not None and self.pairs < 20:
            raise CommandError(f"{opt('pairs')} {self.pairs}: the 10-fold protocol needs at least 20 pairs")
        return keys, batches


def make_rows(keys: list[str], support: dict[str, dict[str, Any]], acl_available: str | None) -> list[Row]:
    """Rows in ``keys`` order; those the host cannot run are marked with the reason, never substituted."""
    rows = []
    for key in keys:
        name, engine, precision = ROW_SPECS[key]
        row = Row(key, name, engine, precision)
        if engine == "openvino" and not support[precision]["runs"]:
            row.status = f"not run: {support[precision]['why']}"
        elif engine == "acl" and acl_available:
            row.status = f"not run: {acl_available}"
        rows.append(row)
    return rows


def acl_unavailable() -> str | None:
    """Why emulator rows cannot run in this build, or None when they can."""
    core = pymfn.load_core()
    if not hasattr(core, "AclEngine"):
        return "this pymfn build has no AscendCL engine"
    if os.environ.get("PYMFN_ACL") == "real" or core.build_info().get("acl") not in ("emulated", "emulator"):
        return "the ACL engine uses real CANN here; an emulator om runs only on pymfn's emulator"
    return None


def int8_model(given: str | os.PathLike | None, pb: Path, quiet: bool) -> Path:
    """``given`` (an INT8 IR), or the cached INT8 IR of ``pb`` with pymfn quantize's defaults."""
    if given:
        path = Path(given)
        if not path.is_file():
            raise CommandError(f"{opt('int8_model')} {path}: no such file (a quantized IR from python -m pymfn quantize)")
        return path
    from pymfn.export.quantize import cached_quantized

    return cached_quantized(pb, quiet=quiet)


def assign_models(rows: list[Row], pb: Path, int8_given: str | os.PathLike | None, workdir: Path,
                  batches: list[int], quiet: bool = True) -> None:
    """Give each runnable row its model file, converting/quantizing what is needed; a failure fails the row."""
    needs_int8 = any(r.active and r.precision == "int8" for r in rows)
    int8_xml: Path | None = None
    int8_error: BaseException | None = None
    if needs_int8:
        try:
            int8_xml = int8_model(int8_given, pb, quiet)
        except Exception as exc:  # noqa: BLE001 - listed as the row's reason
            int8_error = exc
    for row in rows:
        if not row.active:
            continue
        source = int8_xml if row.precision == "int8" else pb
        if row.precision == "int8" and int8_xml is None:
            row.status = f"not run: no INT8 model ({one_line(int8_error) if int8_error else 'unknown'})"
            continue
        if row.engine != "acl":
            row.model = source
            continue
        try:
            row.model = emulator_om(source, workdir / f"{row.key}.om", batches)
        except Exception as exc:  # noqa: BLE001
            row.fail(exc)


def emulator_om(source: Path, out: Path, batches: list[int]) -> Path:
    """An emulator om of ``source`` (frozen pb -> fp16; quantized IR -> int8) offering the sweep's batches."""
    from pymfn.export.convert import convert_om_emu

    gears = batches if len(batches) >= 2 else sorted({1, *batches, 2})
    convert_om_emu(source, out, input_name="Placeholder", input_shape=[-1, 112, 112, 3], dynamic_batch=gears,
                   precision_mode="allow_fp32_to_fp16", output_type=None)
    return out


def open_engines(row: Row) -> None:
    """A latency engine (1 request) and a throughput engine (requests in flight) for the row."""
    from pymfn.runtime.engines import TFEngine, open_engine
    from pymfn.runtime.precision import precision_report

    if row.engine == "tf":
        row.lat_engine = row.tp_engine = TFEngine(row.model)
    else:
        precision = row.precision if row.engine == "openvino" else "f32"  # an om runs as converted
        row.lat_engine = open_engine(row.model, engine=row.engine, precision=precision, inflight=1)
        row.tp_engine = open_engine(row.model, engine=row.engine, precision=precision, inflight=THROUGHPUT_INFLIGHT)
    row.precision_report = precision_report(row.tp_engine, row.precision, row.model)
    if row.engine == "acl":  # what the emulator compiled the om to (its compile record)
        props = {str(k): str(v) for k, v in dict(row.tp_engine.properties()).items()}
        row.emulator = {k: v for k, v in props.items() if k.startswith("emulator_") or k == "acl_runtime"}


# ---------------------------------------------------------------- measuring

def for_each_active(rows: list[Row], fn: Callable[[Row], None], reverse: bool = False) -> None:
    """``fn(row)`` for every row still running; an exception fails that row only (the sweep goes on)."""
    for row in (reversed(rows) if reverse else rows):
        if row.active:
            try:
                fn(row)
                row.status = "ok"
            except Exception as exc:  # noqa: BLE001 - one broken row must not lose the others' figures
                row.fail(exc)


def lfw_subset(data: Path, pairs: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Decoded RGB images of the first ``pairs`` pairs of an lfw.bin (all when None) and their labels."""
    from pymfn.inputs.lfw_bin import decode_images, read_lfw_bin

    bins, issame = read_lfw_bin(data)
    if pairs is not None:
        if pairs > len(issame):
            raise CommandError(f"{opt('pairs')} {pairs}: {data} holds {len(issame)} pairs")
        bins, issame = bins[:2 * pairs], issame[:pairs]
    return decode_images(bins, color="rgb", source=str(data)), np.asarray(issame)


def measure_accuracy(row: Row, images: np.ndarray, issame: np.ndarray,
                     progress: Callable[[str], None] | None = None) -> None:
    from pymfn.bench.lfw_accuracy import embed_images
    from pymfn.metrics.lfw import evaluate

    offered = list(row.tp_engine.supported_batches())
    batch = 4 if not offered or 4 in offered else offered[0]
    inflight = 1 if row.engine == "tf" else ACCURACY_INFLIGHT
    if progress:
        progress(f"  accuracy: {row.name} ({len(images)} images)")
    t0 = time.perf_counter()
    emb = embed_images(row.tp_engine, images, np.dtype(np.float32), batch, inflight)
    row.accuracy_s = time.perf_counter() - t0
    result = evaluate(emb, issame)
    row.accuracy, row.accuracy_std = float(result.accuracy), float(result.accuracy_std)


def timed_run(engine: Any, batch: int, inflight: int, seconds: float) -> Any:
    """One runner measurement of ``engine`` on seeded random input (the figures do not depend on pixels)."""
    core = pymfn.load_core()
    engine.prepare(batch)
    info = [t for t in engine.inputs() if t.name != "ascend_mbatch_shape_data"][0]
    shape = tuple(int(d) for d in info.shape[1:])
    data = np.random.default_rng(0).uniform(-1, 1, (max(4 * batch * inflight, 16), *shape)).astype(np.dtype(info.dtype))
    settings = core.RunSettings(batch_size=batch, inflight=inflight, warmup_iterations=3, min_iterations=1,
                                min_duration_ms=seconds * 1000.0, max_duration_ms=max(seconds * 4, 30.0) * 1000.0)
    return core.run_benchmark(engine, core.ArrayDataset(data).reader(batch, 2), settings)


def measure_latency_round(row: Row, seconds: float) -> None:
    result = timed_run(row.lat_engine, 1, 1, seconds)
    row.latency_samples_ms.extend(float(x) for x in np.asarray(result.samples_ms))


def search_batch(row: Row, batches: list[int], seconds: float) -> None:
    inflight = 1 if row.engine == "tf" else THROUGHPUT_INFLIGHT
    offered = list(row.tp_engine.supported_batches())
    for b in batches:
        if offered and b not in offered:
            continue
        row.batch_search[b] = float(timed_run(row.tp_engine, b, inflight, seconds).throughput_per_s)
    row.best_batch = max(row.batch_search, key=row.batch_search.get)


def measure_throughput_round(row: Row, seconds: float) -> None:
    inflight = 1 if row.engine == "tf" else THROUGHPUT_INFLIGHT
    row.throughput_rounds.append(float(timed_run(row.tp_engine, row.best_batch, inflight, seconds).throughput_per_s))


def summarize(rows: list[Row]) -> dict[str, Any]:
    """Medians per row, accuracy differences to f32, and throughput ratios from the same rounds."""
    core = pymfn.load_core()
    ref = next((r for r in rows if r.key == REFERENCE and r.status == "ok"), None)
    for row in rows:
        if row.status != "ok":
            continue
        if row.latency_samples_ms:
            stats = core.compute_stats(row.latency_samples_ms)
            row.latency_median_ms, row.latency_p99_ms = float(stats.median), float(stats.p99)
        if row.throughput_rounds:
            row.throughput = float(np.median(row.throughput_rounds))
        if ref is not None and ref.accuracy is not None and row.accuracy is not None:
            row.delta_pt = (row.accuracy - ref.accuracy) * 100.0
    return {"int8_vs_f32": round_ratio(rows, "int8", "f32"), "int8_vs_bf16": round_ratio(rows, "int8", "bf16"),
            "bf16_vs_f32": round_ratio(rows, "bf16", "f32"), "int8_vs_best_non_int8": best_non_int8_ratio(rows)}


def round_ratio(rows: list[Row], a: str, b: str) -> float | None:
    """Median over rounds of throughput(a) / throughput(b), both measured in the same round."""
    ra = next((r for r in rows if r.key == a and r.status == "ok" and r.throughput_rounds), None)
    rb = next((r for r in rows if r.key == b and r.status == "ok" and r.throughput_rounds), None)
    if ra is None or rb is None:
        return None
    return float(np.median(np.asarray(ra.throughput_rounds) / np.asarray(rb.throughput_rounds)))


def best_non_int8_ratio(rows: list[Row]) -> dict[str, Any] | None:
    host = [r for r in rows if r.engine == "openvino" and r.status == "ok" and r.throughput]
    int8 = next((r for r in host if r.precision == "int8"), None)
    others = [r for r in host if r.precision != "int8"]
    if int8 is None or not others:
        return None
    best = max(others, key=lambda r: r.throughput)
    return {"best": best.key, "ratio": round_ratio(rows, "int8", best.key)}


# ---------------------------------------------------------------- output

def fmt(value: float | None, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def format_table(doc: dict[str, Any]) -> str:
    from pymfn.runtime.precision import emulator_line, ran_text

    head = (f"{'row':24s} {'ran':16s} {'LFW %':>7s} {'Δ f32 pt':>9s} {'b1 med ms':>9s} {'b1 p99 ms':>9s} "
            f"{'best img/s':>10s} {'batch':>5s}  precision check")
    lines = [f"host: {report.format_host(doc.get('host'))}", "", head, "-" * len(head)]
    for r in doc["rows"]:
        if not r["status"] == "ok":
            lines.append(f"{r['name']:24s} {r['status']}")
            continue
        rep = r["precision_report"]
        acc = None if r["accuracy"] is None else r["accuracy"] * 100
        check = rep.get("check", "?")
        if rep.get("emulation"):  # the emulator's arithmetic differs from the device's: say both
            check += f" (emulator {rep['emulator_compute_precision']}, device {rep['device_precision']})"
        ran = ran_text(rep.get("runtime", "?"), kernels=False)
        lines.append(f"{r['name']:24s} {ran[:16]:16s} {fmt(acc, '7.2f')} "
                     f"{fmt(r['delta_pt'], '+9.2f')} {fmt(r['latency_median_ms'], '9.3f')} {fmt(r['latency_p99_ms'], '9.3f')} "
                     f"{fmt(r['throughput'], '10.0f')} {fmt(r['best_batch'], '5d')}  {check}")
    ratios = doc["ratios"]
    lines.append("")
    lines.append("throughput ratios (median over rounds of the same run): " + ", ".join(
        f"{k.replace('_vs_', ' / ')} {v:.2f}x" for k, v in ratios.items() if isinstance(v, float)))
    best = ratios.get("int8_vs_best_non_int8")
    if best and best.get("ratio") is not None:
        lines.append(f"INT8 / best non-INT8 ({best['best']}): {best['ratio']:.2f}x (target on AMX/VNNI hosts: "
                     f">= 1.3x; {'met' if best['ratio'] >= 1.3 else 'MISSED'})")
    lines.append(f"pairs: {doc['pairs']}; accuracy gate: within {GATE_PT} pt of OpenVINO f32; load average "
                 f"{doc['load_average']['start']} at start, {doc['load_average']['end']} at end ({os.cpu_count()} CPUs)")
    if any(r["engine"] == "acl" for r in doc["rows"]):
        lines.append("acl emulator rows: HOST timings of OpenVINO inside pymfn's ACL emulator, not Ascend 310 figures")
        for r in doc["rows"]:
            if r["engine"] == "acl" and r["status"] == "ok" and (text := emulator_line(r.get("emulator", {}))):
                lines.append(f"  {r['name']}: {text}")
    return "\n".join(lines)


def plot(doc: dict[str, Any], path: Path) -> None:
    """Accuracy against best throughput, one labelled point per measured row; the gate as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pymfn.files.atomic import atomic_write

    rows = [r for r in doc["rows"] if r["status"] == "ok" and r["throughput"] and r["accuracy"] is not None]
    fig, ax = plt.subplots(figsize=(9, 5.5))
    markers = {"tf": "^", "openvino": "o", "acl": "s"}
    for r in rows:  # a legend rather than labels: several rows sit on the same accuracy
        ax.scatter(r["throughput"], r["accuracy"] * 100, s=55, marker=markers.get(r["engine"], "o"), alpha=0.8,
                   label=f"{r['name']} (ran {r['precision_report'].get('runtime', '?')}): "
                         f"{r['accuracy'] * 100:.2f}%, {r['throughput']:.0f} img/s")
    ref = next((r for r in rows if r["key"] == REFERENCE), None)
    if ref:
        ax.axhline(ref["accuracy"] * 100 - GATE_PT, ls="--", lw=0.8, color="gray", label=f"f32 - {GATE_PT} pt (gate)")
    accs = [r["accuracy"] * 100 for r in rows]
    if accs:
        ax.set_ylim(min(accs) - 0.5, max(accs) + 0.3)
    ax.legend(loc="lower right", fontsize=7)
    ax.set_xlabel("best throughput, images/s (host; emulator rows are host timings)")
    ax.set_ylabel(f"LFW accuracy, % ({doc['pairs']} pairs)")
    ax.set_title("MobileFaceNet: accuracy against throughput per engine and precision")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------- the sweep

@dataclass
class SweepResult(Result):
    """The matrix of one sweep: a ``Row`` per (engine, precision) with its accuracy, latency, throughput and
    what really ran, the throughput ratios taken in the same rounds, and the conditions (host, load, build).

    ``report()`` is the table ``pymfn bench sweep`` prints, ``to_dict()`` its JSON, ``plot(path)`` accuracy
    against throughput, ``csv_rows()`` one row per table row.
    """

    kind: ClassVar[str] = "sweep"

    model: str
    data: str
    pairs: int
    batches: list[int]
    rounds: int
    seconds_per_round: float
    rows: list[Row]
    ratios: dict[str, Any]
    host_support: dict[str, dict[str, Any]]
    load_average: dict[str, str]
    host: dict[str, Any] = field(default_factory=dict)
    build_info: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def row(self, key: str) -> Row:
        """The row of ``key`` ("f32", "int8", "om-fp16", ...)."""
        for r in self.rows:
            if r.key == key:
                return r
        raise KeyError(f"no row {key!r} in this sweep (rows: {', '.join(r.key for r in self.rows)})")

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "data": self.data, "pairs": self.pairs, "batches": list(self.batches),
                "rounds": self.rounds, "seconds_per_round": self.seconds_per_round,
                "rows": [r.to_json() for r in self.rows], "ratios": self.ratios, "host_support": self.host_support,
                "load_average": self.load_average, "host": self.host, "build_info": self.build_info}

    def report(self) -> str:
        return "\n".join([*self.notes, format_table(self.to_dict())])

    def plot(self, path: str | os.PathLike) -> Path:
        """Accuracy against best throughput (PNG), one point per measured row; the accuracy gate dashed."""
        plot(self.to_dict(), Path(path))
        return Path(path)

    def csv_rows(self) -> list[dict[str, Any]]:
        """One row per (engine, precision) row of the table."""
        out = []
        for r in self.rows:
            rep = r.precision_report
            out.append({"key": r.key, "name": r.name, "engine": r.engine, "precision": r.precision,
                        "status": r.status, "ran": rep.get("runtime"), "precision_check": rep.get("check"),
                        "accuracy": r.accuracy, "accuracy_std": r.accuracy_std, "delta_pt": r.delta_pt,
                        "latency_median_ms": r.latency_median_ms, "latency_p99_ms": r.latency_p99_ms,
                        **{f"latency_{k}_ms": v for k, v in percentiles_of(r.latency_samples_ms).items()
                           if k not in ("p50", "p99")},
                        "best_batch": r.best_batch, "throughput": r.throughput,
                        "model": str(r.model) if r.model else None})
        return out


def sweep(model: str | os.PathLike | None = None, *, data: str | os.PathLike | None = None,
          int8_model: str | os.PathLike | None = None, settings: SweepSettings | None = None,
          progress: Callable[[str], None] | None = None) -> SweepResult:
    """Measure every (engine, precision) row of ``settings.rows`` side by side in one run.

    ``model`` is the frozen float .pb (default: the built-in MobileFaceNet); the INT8 rows use ``int8_model``
    (default: pymfn quantize's defaults applied to ``model``, built once and cached) and the emulator rows an
    emulator .om converted here. ``data`` is the lfw.bin of the accuracy column (default: the shared one).
    A row the host cannot run is listed with the reason; a row that fails is marked failed and the others
    are still measured. ``progress`` receives progress lines (e.g. ``print``).

    >>> import pymfn.bench as b
    >>> from pymfn import config
    >>> small = b.SweepSettings(rows=["f32"], batches=[1], rounds=1, seconds=0.1, pairs=600)
    >>> r = b.sweep(data=config.lfw_bin_path(), settings=small)  # doctest: +SKIP_WITHOUT_LFW
    >>> r.row("f32").status, r.pairs, len(r.csv_rows())          # doctest: +SKIP_WITHOUT_LFW
    ('ok', 600, 1)
    """
    from pymfn.runtime.precision import host_support

    settings = settings or SweepSettings()
    keys, batches = settings.checked()
    pb, data_path, notes = resolve_inputs(model, data, quiet=progress is None)
    load_start = load_average()
    support = host_support()
    rows = make_rows(keys, support, acl_unavailable() if any(ROW_SPECS[k][1] == "acl" for k in keys) else None)
    seconds = settings.seconds
    with tempfile.TemporaryDirectory(prefix="pymfn-sweep-") as tmp:
        assign_models(rows, pb, int8_model, Path(tmp), batches, quiet=progress is None)
        for_each_active(rows, open_engines)
        if progress:
            progress(f"sweep: {sum(r.active for r in rows)} of {len(rows)} rows run; decoding {data_path}")
        images, issame = lfw_subset(data_path, settings.pairs)
        for_each_active(rows, lambda r: measure_accuracy(r, images, issame, progress))
        if progress:
            progress(f"  latency and throughput: {settings.rounds} interleaved rounds")
        for_each_active(rows, lambda r: search_batch(r, batches, seconds / 2))
        for k in range(settings.rounds):
            for_each_active(rows, lambda r: measure_latency_round(r, seconds / 2), reverse=bool(k % 2))
            for_each_active(rows, lambda r: measure_throughput_round(r, seconds), reverse=bool(k % 2))
        for row in rows:
            row.lat_engine = row.tp_engine = None  # release engines (and emulator models) before the files go
    ratios = summarize(rows)
    return SweepResult(model=str(pb), data=str(data_path), pairs=int(len(issame)), batches=batches,
                       rounds=settings.rounds, seconds_per_round=seconds, rows=rows, ratios=ratios,
                       host_support=support, load_average={"start": load_start, "end": load_average()},
                       host=report.host_info(), build_info=dict(pymfn.load_core().build_info()), notes=notes)


def resolve_inputs(model: str | os.PathLike | None, data: str | os.PathLike | None,
                   quiet: bool = True) -> tuple[Path, Path, list[str]]:
    """The frozen .pb (default: the built-in model), the lfw.bin (default: the shared one), and notes."""
    from pymfn import config
    from pymfn.bench.perf import resolve_model

    pb, _, pretrained = resolve_model(None if model is None else str(model), quiet=quiet)
    if pb.suffix.lower() != ".pb":
        raise CommandError(f"{opt('model')} {pb}: the sweep needs the frozen float .pb (it builds the INT8 and om "
                           f"models from it; give an INT8 IR with {opt('int8_model')})")
    notes = []
    if not pretrained:
        notes.append("note: the default model has random weights (no pretrained weights under PYMFN_SHARED): "
                     "accuracy figures are near chance")
    path = Path(data) if data else config.lfw_bin_path()
    if not path.is_file():
        raise CommandError(f"{opt('data')} {path}: no such lfw.bin (set PYMFN_SHARED or give {opt('data')})")
    return pb, path, notes


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"

"""Put Huawei msame's figures beside pymfn's for the same .om and the same input folder, scope for scope.

Three things are compared, each with its scope named in the table and the JSON.

(1) Per execute: msame times one synchronous aclmdlExecute per file with gettimeofday (microseconds; no
  warm-up). pymfn's timing pass times the same call inside its ACL engine with a monotonic clock: exactly
  one pass over the folder in msame's (lexicographic) order, every file once; its warm-up executes come
  before the pass and are extra.
(2) Whole process: msame's wall clock from start to exit (model load, every read, execute and output write)
  beside pymfn's folder run, a child process doing the same work and writing msame's output layout, timed
  by the same function.
(3) Outputs: msame's <stem>_output_<k>.bin beside pymfn's output for input <stem>.bin, paired by name: rows
  compared, rows differing (bitwise) with the largest difference, and the names missing on either side.

msame exits 0 even when executes fail; a run with [ERROR] lines, fewer outputs than inputs or missing
indices is reported as a failed msame run (exit status 1), and its averages are not shown as results. msame's
output (stdout and stderr, interleaved as it wrote them) is kept beside its outputs as <output>/<run folder>.log
and scanned whole: an [ERROR] line anywhere (also after its summary, e.g. in its teardown) or the ACL emulator's
report of resources still outstanding at aclFinalize (a leak) fails the run too.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterator

import numpy as np

import pymfn
from pymfn.inputs import msame
from pymfn.files.atomic import atomic_write
from pymfn.errors import CommandError, one_line, program_name
from pymfn.bench import report
from pymfn.bench.naming import opt
from pymfn.bench.result import Result

SCOPES = {
    "msame_per_execute": "gettimeofday around one synchronous aclmdlExecute per file (its 'model execute "
                         "success' print included); no warm-up",
    "pymfn_per_execute": "steady_clock around the same synchronous aclmdlExecute (the ACL "
                         "engine's compute stage); host-to-device and device-to-host copies excluded, as in msame",
    "msame_whole_process": "the msame process from start to exit: ACL init, model load, every file read, copied, "
                           "executed and its outputs written, teardown",
    "pymfn_whole_process": "the pymfn folder-run process from start to exit: Python start-up and imports, ACL init, "
                           "model load, every file read, copied, executed, outputs written in msame's layout, "
                           "teardown; no warm-up, like msame",
    "pymfn_timing_pass_wall": "in-process: reading every file and executing it (no model load, "
                              "no output writing, warm-up excluded)",
}


# ------------------------------------------------------------------------------------------------ inputs

@dataclass
class InputFolder:
    """The input folder as msame sees it: every non-hidden entry, in byte order."""

    path: Path
    entries: list[str]  # msame feeds all of these to the model
    bins: list[str]  # the ones pymfn reads (regular *.bin files)

    @property
    def non_bin(self) -> list[str]:
        bins = set(self.bins)
        return [e for e in self.entries if e not in bins]


def scan_inputs(folder: Path) -> InputFolder:
    if not folder.is_dir():
        raise CommandError(f"{opt('input')} {folder}: not a folder (msame's folder mode reads a folder of .bin files)")
    try:
        with os.scandir(folder) as it:
            entries = sorted(e.name for e in it if not e.name.startswith("."))
    except OSError as exc:
        raise CommandError(f"{opt('input')} {folder}: cannot list it ({exc.strerror or exc})") from None
    bins = [n for n in entries if n.endswith(".bin") and len(n) > 4 and (folder / n).is_file()]
    if not bins:
        raise CommandError(f"{opt('input')} {folder}: no .bin files in it")
    return InputFolder(folder, entries, bins)


# ------------------------------------------------------------------------------------------------ msame side

@dataclass
class MsameSide:
    """What is known about msame's run: its log, its outputs, its wall time, and whether it failed."""

    source: str  # "run", "log", "output folder" or "log + output folder"
    log: msame.MsameLog | None = None
    outputs: dict[str, list[bytes]] | None = None  # stem -> raw bytes of each output
    output_dtypes: list[str] | None = None  # how the bytes were read (TXT outputs are parsed)
    run_dir: Path | None = None
    wall_s: float | None = None
    command: list[str] | None = None
    returncode: int | None = None
    failure_reasons: list[str] = field(default_factory=list)
    log_file: Path | None = None  # msame's stdout and stderr as the comparison kept them
    emulator_report: list[str] = field(default_factory=list)  # what pymfn's ACL emulator said at aclFinalize
    notes: list[str] = field(default_factory=list)  # worth saying, not failures

    @property
    def failed(self) -> bool:
        return bool(self.failure_reasons)


# The ACL emulator's aclFinalize report (csrc/acl_emulator/lifecycle.cpp): a header line, then indented items.
EMULATOR_LEAK_HEADER = "pymfn ACL emulator: aclFinalize found outstanding resources:"
EMULATOR_NOTE_HEADER = "pymfn ACL emulator: at aclFinalize:"
ERROR_LINE = re.compile(r"^[ \t]*\[ERROR\][^\n]*", re.M)


def _report_items(lines: list[str], start: int) -> list[str]:
    items = []
    for line in lines[start + 1:]:
        if not line.startswith("  ") or not line.strip():
            break
        items.append(line.strip())
    return items


def scan_msame_output(text: str, log: msame.MsameLog | None) -> tuple[list[str], list[str], list[str]]:
    """What msame's whole output says beyond its parsed run: (failure reasons, emulator report lines, notes).

    The parsed run ends at msame's summary lines; [ERROR] lines after them (teardown) are counted here. When msame
    ran on pymfn's ACL emulator, its aclFinalize report names every resource msame left outstanding: a leak."""
    reasons: list[str] = []
    errors = [e.strip() for e in ERROR_LINE.findall(text)]
    unparsed = errors[len(log.errors):] if log is not None else errors
    if unparsed:
        shown = " | ".join(unparsed[:3]) + (" | ..." if len(unparsed) > 3 else "")
        where = "after msame's summary (outside its timed run)" if log is not None else "in msame's output"
        reasons.append(f"{len(unparsed)} [ERROR] line(s) {where}: {shown}")
    lines = text.splitlines()
    report: list[str] = []
    notes: list[str] = []
    for i, line in enumerate(lines):
        if line.strip() == EMULATOR_LEAK_HEADER:
            items = _report_items(lines, i)
            report += [line.strip(), *items]
            leaks = [x for x in items if "not counted as a leak" not in x]
            reasons.append("pymfn's ACL emulator found resources msame left outstanding at aclFinalize (a leak): "
                           + ("; ".join(leaks) or "see the log"))
            notes += [x for x in items if "not counted as a leak" in x]
        elif line.strip() == EMULATOR_NOTE_HEADER:
            items = _report_items(lines, i)
            report += [line.strip(), *items]
            notes += items
    return reasons, report, [f"ACL emulator at msame's aclFinalize: {n}" for n in notes]


def keep_msame_log(text: str, out_dir: Path, run_dir: Path | None) -> Path | None:
    """Write msame's output beside its outputs: <out_dir>/<run folder>.log (msame.log when it made no run folder).
    None (and the reason printed) when it cannot be written: the scan of the text still counts."""
    path = out_dir / (f"{run_dir.name}.log" if run_dir is not None else "msame.log")
    try:
        with atomic_write(path) as f:
            f.write(text.encode("utf-8", errors="replace"))
    except OSError as exc:
        print(f"{program_name()}: warning: could not keep msame's log as {path} ({exc.strerror or exc})", file=sys.stderr)
        return None
    return path


def read_msame_rows(run_dir: Path, dtypes: list[str]) -> tuple[dict[str, list[bytes]], list[str]]:
    """msame's outputs by stem as raw bytes (BIN), or parsed into ``dtypes`` (TXT, which holds no dtype)."""
    try:
        res = msame.read_msame_outputs(run_dir, "uint8", fmt="BIN", complete=False)
        read_as = ["raw bytes"] * len(res.outputs)
    except msame.MsameError as exc:
        if "no .bin output files" not in str(exc):
            raise
        res = msame.read_msame_outputs(run_dir, dtypes[0], fmt="TXT", complete=False, allow_nonfinite=True)
        read_as = [f"TXT parsed as {dtypes[0]}"] * len(res.outputs)
    rows = {stem: [out[i].tobytes() for out in res.outputs] for i, stem in enumerate(res.stems)}
    return rows, read_as


def _outputs_problems(rows: dict[str, list[bytes]], run_dir: Path, inputs: InputFolder | None) -> list[str]:
    """Failure reasons visible in an output folder: missing indices, fewer outputs than inputs."""
    problems = []
    stems = list(rows)
    try:
        msame.check_stem_numbering(run_dir, stems, None, 0)
    except msame.MsameError as exc:
        problems.append(f"msame outputs: {exc}")
    if inputs is not None:
        wanted = [msame.input_stem(n) for n in inputs.entries]
        missing = [s for s in wanted if s not in rows]
        if missing:
            shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
            problems.append(f"msame wrote outputs for {len(wanted) - len(missing)} of {len(wanted)} inputs; "
                            f"none for: {shown}")
    return problems


def msame_from_run(model: Path, executable: str | os.PathLike | None, inputs: InputFolder, out_dir: Path,
                   dtypes: list[str]) -> MsameSide:
    res = msame.run_msame(model, inputs.path, out_dir, msame=executable, check=False)
    side = MsameSide("run", log=res.log, run_dir=res.run_dir, wall_s=res.wall_s, command=res.command,
                     returncode=res.returncode)
    side.log_file = keep_msame_log(res.log_text, out_dir, res.run_dir)
    if res.error:
        side.failure_reasons.append(res.error)
    if res.log is not None:
        side.failure_reasons += res.log.failure_reasons(expected_files=len(inputs.entries))
    reasons, side.emulator_report, side.notes = scan_msame_output(res.log_text, res.log)
    side.failure_reasons += reasons
    if res.run_dir is None:
        side.failure_reasons.append(f"msame created no run folder under {out_dir}")
    else:
        try:
            side.outputs, side.output_dtypes = read_msame_rows(res.run_dir, dtypes)
        except msame.MsameError as exc:
            side.failure_reasons.append(f"msame outputs unusable: {exc}")
        else:
            side.failure_reasons += _outputs_problems(side.outputs, res.run_dir, inputs)
    return side


def msame_from_files(log: str | os.PathLike | None, output: str | os.PathLike | None, inputs: InputFolder | None,
                     dtypes: list[str]) -> MsameSide | None:
    """msame's side from an earlier run: its log and/or its output folder (read before anything is measured)."""
    if not (log or output):
        return None
    side = MsameSide(" + ".join(s for s, on in (("log", log), ("output folder", output)) if on))
    if log:
        try:
            text = msame.read_log_file(log)
            side.log = msame.parse_msame_log(text)
        except msame.MsameError as exc:
            raise CommandError(f"{opt('log')} {log}: {exc}") from None
        side.log_file = Path(log)
        expected = len(inputs.entries) if inputs is not None else None
        side.failure_reasons += side.log.failure_reasons(expected_files=expected)
        reasons, side.emulator_report, side.notes = scan_msame_output(text, side.log)
        side.failure_reasons += reasons
    if output:
        try:
            side.run_dir = msame.find_run_dir(output)
            side.outputs, side.output_dtypes = read_msame_rows(side.run_dir, dtypes)
        except msame.MsameError as exc:
            raise CommandError(f"{opt('msame_output')}: {exc}") from None
        side.failure_reasons += _outputs_problems(side.outputs, side.run_dir, inputs)
    return side


# ------------------------------------------------------------------------------------------------ pymfn side

@dataclass
class TimingPass:
    """pymfn's in-process pass: per-file aclmdlExecute times and outputs, every file exactly once per pass."""

    files: list[str]
    compute_ms: list[float]  # aclmdlExecute only, one per execute, in execution order
    call_ms: list[float]  # the whole execute_into call: h2d + aclmdlExecute + d2h
    outputs: dict[str, list[np.ndarray]]  # stem -> one row per model output (first pass)
    warmup_files: list[str]
    passes: int
    wall_s: float
    properties: dict[str, str]


def open_comparison_engine(model: Path) -> Any:
    """The ACL engine on ``model`` prepared for batch 1: one file per execute, as msame runs it."""
    from pymfn.runtime.engines import open_engine

    engine = open_engine(str(model), engine="acl")
    offered = list(engine.supported_batches())
    if 1 not in offered:
        raise CommandError(f"{opt('model')} {model}: msame runs one file per execute (batch 1); this model offers batch "
                           f"sizes {offered}")
    engine.prepare(1)
    return engine


def open_inputs(engine: Any, inputs: InputFolder) -> Any:
    """pymfn's reader over the folder in msame's order; every file's size is checked against the model."""
    from pymfn.bench.perf import input_spec
    from pymfn.inputs.datasets import open_dataset

    info, shape, dtype = input_spec(engine)
    return open_dataset(inputs.path, sample_bytes=info.sample_bytes, dtype=str(dtype), sample_shape=shape,
                        order="lexicographic")


def _output_buffers(engine: Any) -> list[np.ndarray]:
    outs = []
    for o in engine.outputs():
        dt = np.dtype(o.dtype)
        outs.append(np.empty((1, o.sample_bytes // dt.itemsize), dt))
    return outs


def _batches(dataset: Any) -> Iterator[Any]:
    reader = dataset.reader(1, 2)
    while (batch := reader.next()) is not None:
        yield batch


def timing_pass(engine: Any, dataset: Any, warmup: int, passes: int) -> TimingPass:
    """Warm up, then execute every file exactly ``passes`` times in msame's order, timing aclmdlExecute."""
    files = [Path(p).name for p in dataset.files()]
    outs = _output_buffers(engine)
    warmup_files = []
    for _, batch in zip(range(warmup), _cycle(dataset)):
        engine.execute_into([batch.data], outs)
        warmup_files.append(files[batch.first_sample])
    compute, call, rows = [], [], {}
    t0 = time.perf_counter()
    for p in range(passes):
        for batch in _batches(dataset):
            t = engine.execute_into([batch.data], outs)
            compute.append(float(t["compute_ms"]))
            call.append(float(t["h2d_ms"] + t["compute_ms"] + t["d2h_ms"]))
            if p == 0:
                rows[msame.input_stem(files[batch.first_sample])] = [o[0].copy() for o in outs]
    wall = time.perf_counter() - t0
    expected = passes * len(files)
    if len(compute) != expected:  # the reader must yield every file once per pass, nothing more
        raise RuntimeError(f"timing pass ran {len(compute)} executes, expected {expected} ({passes} x {len(files)})")
    props = {str(k): str(v) for k, v in dict(engine.properties()).items()}
    return TimingPass(files, compute, call, rows, warmup_files, passes, wall, props)


def _cycle(dataset: Any) -> Iterator[Any]:
    while True:
        yield from _batches(dataset)


# ------------------------------------------------------------------------------------------------ folder run

@dataclass
class FolderRun:
    """pymfn's like-for-like whole-process run (a child process), timed like msame."""

    wall_s: float
    output_dir: Path
    run_dir: Path
    phases_s: dict[str, float]
    outputs: dict[str, list[bytes]]


def folder_run(model: Path, inputs: InputFolder, out_dir: Path) -> FolderRun:
    with tempfile.TemporaryDirectory(prefix="pymfn-folder-run-") as tmp:
        summary = Path(tmp) / "summary.json"
        cmd = [sys.executable, "-m", "pymfn.cli.bench.msame_folder_run", "--model", str(model),
               "--input", str(inputs.path), "--output", str(out_dir), "--summary", str(summary)]
        proc = msame.run_timed(cmd)
        if proc.returncode != 0:
            tail = " | ".join(proc.output.strip().splitlines()[-3:])
            raise CommandError(f"pymfn folder run {proc.exit_description()}: {tail}")
        doc = json.loads(summary.read_text())
    run_dir = Path(doc["run_dir"])
    phases = {k: float(v) for k, v in doc["phases_s"].items()}
    phases["start-up, imports and exit (the rest)"] = max(0.0, proc.wall_s - sum(phases.values()))
    rows, _ = read_msame_rows(run_dir, ["uint8"])
    return FolderRun(proc.wall_s, out_dir, run_dir, phases, rows)


def folder_run_child(model: Path, input_folder: Path, output: Path, summary: Path) -> None:
    """msame's work done by pymfn in this process (``python -m pymfn.cli.bench.msame_folder_run``): the .om on
    every file of the folder, outputs written in msame's layout, the phases' times written to ``summary``."""
    t0 = time.perf_counter()
    engine = open_comparison_engine(model)
    dataset = open_inputs(engine, scan_inputs(input_folder))
    t1 = time.perf_counter()
    files = [Path(p).name for p in dataset.files()]
    outs = _output_buffers(engine)
    rows: list[list[np.ndarray]] = [[] for _ in outs]
    for batch in _batches(dataset):
        engine.execute_into([batch.data], outs)
        for k, o in enumerate(outs):
            rows[k].append(o[0].copy())
    t2 = time.perf_counter()
    run_dir = msame.write_msame_outputs(output, [msame.input_stem(f) for f in files], [np.stack(r) for r in rows])
    t3 = time.perf_counter()
    del engine, dataset
    doc = {"run_dir": str(run_dir), "files": len(files),
           "phases_s": {"ACL init and model load": t1 - t0, "read and execute every file": t2 - t1,
                        "write every output": t3 - t2}}
    report.write_json(doc, summary)


# ------------------------------------------------------------------------------------------------ outputs

def compare_outputs(reference: dict[str, list[bytes]], ours: dict[str, list[Any]], dtypes: list[str]) -> dict:
    """Pair rows by input stem and compare them byte for byte; the largest difference in the model's dtype."""
    common = [s for s in ours if s in reference]
    differing, max_diff, size_mismatch = [], 0.0, []
    for stem in common:
        row_differs = False
        for k, (theirs, mine) in enumerate(zip(reference[stem], ours[stem])):
            mine_b = mine.tobytes() if isinstance(mine, np.ndarray) else mine
            if theirs == mine_b:
                continue
            row_differs = True
            dt = np.dtype(dtypes[k])
            if len(theirs) != len(mine_b) or len(theirs) % dt.itemsize:
                size_mismatch.append(f"{stem} output {k}: {len(theirs)} vs {len(mine_b)} bytes")
                continue
            a = np.frombuffer(theirs, dt).astype(np.float64)
            b = np.frombuffer(mine_b, dt).astype(np.float64)
            both = np.isfinite(a) & np.isfinite(b)
            if both.any():
                max_diff = max(max_diff, float(np.max(np.abs(a[both] - b[both]))))
        if row_differs:
            differing.append(stem)
    n_out = {len(v) for v in reference.values()} | {len(v) for v in ours.values()}
    return {
        "pairing": "by input name: <stem>.bin <-> <stem>_output_<k>.bin",
        "rows_compared": len(common),
        "rows_differing": len(differing),
        "max_abs_diff": max_diff,
        "first_differing": differing[:10],
        "size_mismatches": size_mismatch[:10],
        "missing_in_msame": [s for s in ours if s not in reference],
        "missing_in_pymfn": [s for s in reference if s not in ours],
        "outputs_per_row": sorted(n_out),
    }


def _comparison_line(name: str, c: dict) -> str:
    line = (f"{name}: {c['rows_compared']} rows compared by file name, {c['rows_differing']} differ"
            + (f" (max |diff| {c['max_abs_diff']:.3g}; first: {', '.join(c['first_differing'][:3])})"
               if c["rows_differing"] else " (bit-identical)"))
    for side in ("msame", "pymfn"):
        missing = c[f"missing_in_{side}"]
        if missing:
            line += f"; {len(missing)} missing in {side}: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
    return line


def _comparison_warnings(name: str, c: dict) -> list[str]:
    out = []
    if c["rows_differing"]:
        out.append(f"{name}: {c['rows_differing']} of {c['rows_compared']} rows differ (max |diff| "
                   f"{c['max_abs_diff']:.3g})")
    if c["missing_in_msame"] or c["missing_in_pymfn"]:
        out.append(f"{name}: {len(c['missing_in_msame'])} input(s) without an msame output, "
                   f"{len(c['missing_in_pymfn'])} msame output(s) without a pymfn input")
    if c["size_mismatches"]:
        out.append(f"{name}: output sizes differ: {'; '.join(c['size_mismatches'][:3])}")
    return out


# ------------------------------------------------------------------------------------------------ report

def _decimals_of_per_run_lines(values: list[float]) -> int:
    """Decimals msame's per-run lines carry: microseconds (3) unless 6 significant digits leave fewer."""
    digits = [len(str(int(abs(v)))) for v in values if np.isfinite(v) and abs(v) >= 1]
    return max(0, min([3] + [6 - d for d in digits]))


def _fmt(value: float | None, decimals: int = 3) -> str:
    return "-" if value is None else f"{value:.{decimals}f}"


def _stats(samples: list[float]) -> Any:
    return pymfn.load_core().compute_stats([float(x) for x in samples])


def _noisy_warning(who: str, samples: list[float]) -> list[str]:
    if len(samples) < 2:
        return []
    threshold = pymfn.load_core().RunSettings().cv_warning_threshold
    s = _stats(samples)
    if s.cv <= threshold:
        return []
    return [f"noisy run ({who}): per-execute cv = {s.cv:.4f} > {threshold:.4f} (std {s.std:.3f} ms, mean "
            f"{s.mean:.3f} ms); medians are safer than means here"]


def build_rows(ms: MsameSide | None, tp: TimingPass | None, fr: FolderRun | None) -> list[tuple[str, str, str]]:
    """(what, msame, pymfn) table rows. msame's averages appear as it printed them (2 decimals) and recomputed
    from its per-run lines (as many decimals as those carry); a failed msame run shows FAILED instead."""
    log = ms.log if ms else None
    runs = log.run_times_ms if log else []
    dec = _decimals_of_per_run_lines(runs)
    m_stats = _stats(runs) if runs else None
    p_stats = _stats(tp.compute_ms) if tp else None

    def m(value: str) -> str:  # an msame timing figure, unless the run failed
        if log is None:
            return "-"
        return "FAILED" if ms.failed else value

    def p(value: float | None) -> str:
        return _fmt(value) if tp else "-"

    p_nf = float(np.mean(tp.compute_ms[1:])) if tp and len(tp.compute_ms) > 1 else None
    return [
        ("files executed (timed)", str(len(runs)) if log else "-",
         (f"{len(tp.compute_ms)}" + (f" ({tp.passes} passes)" if tp.passes > 1 else "")) if tp else "-"),
        ("mean (ms), as msame printed it", m(log.average_text) if log else "-", "-"),
        ("mean (ms), from per-execute times", m(_fmt(log.recomputed_average_ms(), dec)) if log else "-",
         p(p_stats.mean if p_stats else None)),
        ("mean without first (ms), as printed", m(log.average_without_first_text or "-") if log else "-", "-"),
        ("mean without first (ms), from per-execute times",
         m(_fmt(log.recomputed_without_first_ms(), dec)) if log else "-", p(p_nf)),
        ("median (ms)", m(_fmt(m_stats.median, dec) if m_stats else "-"), p(p_stats.median if p_stats else None)),
        ("p99 (ms)", m(_fmt(m_stats.p99, dec) if m_stats else "-"), p(p_stats.p99 if p_stats else None)),
        ("whole process wall (s)", _fmt(ms.wall_s) if ms and ms.wall_s is not None else "-",
         _fmt(fr.wall_s) if fr else "-"),
        ("timing pass wall (s), read + execute", "-", p(tp.wall_s if tp else None)),
    ]


def format_rows(rows: list[tuple[str, str, str]]) -> list[str]:
    width = max(len(r[0]) for r in rows)
    return [f"{'':<{width}}  {'msame':>12}  {'pymfn':>12}", *(f"{name:<{width}}  {a:>12}  {b:>12}" for name, a, b in rows)]


def scope_notes(ms: MsameSide | None, tp: TimingPass | None, fr: FolderRun | None) -> list[str]:
    """What each figure covers, including exactly which execute 'without first' leaves out on each side."""
    notes = []
    if ms and ms.log:
        first = ms.log.files[0] if ms.log.files else "the first file in its order"
        notes.append(f"per execute (msame): {SCOPES['msame_per_execute']}. 'Without first' leaves out the execute of "
                     f"{first}, msame's first execute in the process (cold).")
    if tp:
        warm = (f"after {len(tp.warmup_files)} untimed warm-up execute(s) ({', '.join(tp.warmup_files[:3])}"
                f"{' ...' if len(tp.warmup_files) > 3 else ''})" if tp.warmup_files else "with no warm-up (cold)")
        notes.append(f"per execute (pymfn timing pass): {SCOPES['pymfn_per_execute']}; one pass over the folder in msame's order, "
                     f"every file once{f' ({tp.passes} passes)' if tp.passes > 1 else ''}. 'Without first' leaves "
                     f"out the execute of {tp.files[0]}, the first timed one, {warm}.")
    if ms and ms.wall_s is not None:
        notes.append(f"whole process (msame): {SCOPES['msame_whole_process']}.")
    if fr:
        parts = ", ".join(f"{k} {v:.3f} s" for k, v in fr.phases_s.items())
        notes.append(f"whole process (pymfn folder run): {SCOPES['pymfn_whole_process']} ({parts}). Both timed from process "
                     "start to exit by the same clock.")
    if tp:
        notes.append(f"timing pass wall (pymfn): {SCOPES['pymfn_timing_pass_wall']}; not comparable to a whole "
                     "process.")
    return notes


def _log_json(log: msame.MsameLog | None) -> dict | None:
    if log is None:
        return None
    return {"mode": log.mode, "average_ms": log.average_ms, "average_text": log.average_text,
            "average_without_first_ms": log.average_without_first_ms,
            "average_without_first_text": log.average_without_first_text,
            "per_run_mean_ms": log.recomputed_average_ms(),
            "per_run_mean_without_first_ms": log.recomputed_without_first_ms(),
            "run_times_ms": list(log.run_times_ms), "files_processed": len(log.files),
            "first_file": log.files[0] if log.files else None, "errors": log.errors, "warnings": log.warnings}


def _timing_json(tp: TimingPass) -> dict:
    lat = report.latency_dict(_stats(tp.compute_ms))
    doc = {"scope": SCOPES["pymfn_per_execute"], "executes": len(tp.compute_ms), "passes": tp.passes,
           "files": len(tp.files), "first_file": tp.files[0], "warmup_executes": len(tp.warmup_files),
           "warmup_files": tp.warmup_files, "latency_ms": lat,
           "mean_without_first_ms": float(np.mean(tp.compute_ms[1:])) if len(tp.compute_ms) > 1 else None,
           "samples_ms": tp.compute_ms,
           "execute_call_ms": {"scope": "the engine's whole execute call: host-to-device copy + aclmdlExecute + "
                                        "device-to-host copy (not msame's scope)",
                               "mean": float(np.mean(tp.call_ms)), "samples_ms": tp.call_ms},
           "percentile_method": report.PERCENTILE_METHOD,
           "timing_pass_wall_s": tp.wall_s, "timing_pass_wall_scope": SCOPES["pymfn_timing_pass_wall"],
           "engine_properties": tp.properties, "acl_runtime": tp.properties.get("acl_runtime")}
    if tp.properties.get("acl_runtime") == "emulator":
        doc["timing_note"] = ("ACL emulator: these are HOST timings of pymfn's harness + OpenVINO on this CPU, not "
                              "Ascend NPU timings")
        from pymfn.runtime.precision import emulator_line

        doc["emulator_precision"] = {"summary": emulator_line(tp.properties), **{
            k[len("emulator_"):]: v for k, v in tp.properties.items()
            if k.startswith("emulator_") and "precision" in k}}
    return doc


# ------------------------------------------------------------------------------------------------ comparison

@dataclass
class MsameComparison(Result):
    """msame's figures beside pymfn's for the same .om and input folder, scope for scope, and their outputs
    compared by name. ``failed`` / ``error`` say whether the comparison failed (a failed msame run, a failed
    pymfn side); what was measured is kept either way. ``report()`` is the text ``pymfn bench msame`` prints,
    ``to_dict()`` its JSON, ``csv_rows()`` the table (one row per figure)."""

    kind: ClassVar[str] = "msame"

    inputs: InputFolder | None
    msame: MsameSide | None
    timing: TimingPass | None           # pymfn's in-process timing pass
    folder: FolderRun | None            # pymfn's whole-process folder run
    comparisons: dict[str, dict[str, Any]]
    warnings: list[str]
    errors: list[str]                   # what failed on pymfn's side
    temporaries: list[Path]             # temporary output folders (removed unless keep_outputs)
    keep_outputs: bool = False
    host: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return bool(self.errors) or (self.msame is not None and self.msame.failed)

    @property
    def error(self) -> str | None:
        """The one-line reason the comparison failed, or None."""
        if self.errors:
            return self.errors[0]
        if self.msame is not None and self.msame.failed:
            return f"msame run failed: {self.msame.failure_reasons[0]}"
        return None

    @property
    def rows(self) -> list[tuple[str, str, str]]:
        """The table: (figure, msame, pymfn) as printed."""
        return build_rows(self.msame, self.timing, self.folder)

    @property
    def kept_temporaries(self) -> list[Path]:
        return list(self.temporaries) if self.keep_outputs else []

    def _kept(self, path: Path) -> bool:
        """Whether ``path`` outlives the comparison (not in a temporary folder, or keep_outputs)."""
        return self.keep_outputs or not any(path.is_relative_to(t) for t in self.temporaries)

    def report(self) -> str:
        ms, tp, fr = self.msame, self.timing, self.folder
        lines = format_rows(self.rows) + [""]
        lines += [f"- {note}" for note in scope_notes(ms, tp, fr)]
        lines += [_comparison_line(f"outputs, {name}", c) for name, c in self.comparisons.items()]
        lines.append(f"host: {report.format_host(self.host)}")
        if tp is not None and tp.properties.get("acl_runtime") == "emulator":
            lines.append("NOTE: pymfn ran on the ACL emulator: its timings are host timings, not Ascend NPU timings.")
            from pymfn.runtime.precision import emulator_line

            if text := emulator_line(tp.properties):
                lines.append(f"precision: {text}")
        if ms is not None and ms.failed:
            lines.append("msame run FAILED (it exits 0 even so):")
            lines += [f"  - {reason}" for reason in ms.failure_reasons]
        if self.warnings:
            lines.append("Warnings:")
            lines += [f"  ! {w}" for w in self.warnings]
        if fr is not None and fr.output_dir not in self.temporaries:
            lines.append(f"pymfn folder run outputs: {fr.run_dir}")
        if ms is not None and ms.source == "run" and ms.log_file is not None and self._kept(ms.log_file):
            lines.append(f"msame's log (stdout and stderr): {ms.log_file}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        inputs, ms, tp, fr, temps = self.inputs, self.msame, self.timing, self.folder, self.temporaries
        doc: dict[str, Any] = {"scopes": SCOPES, "warnings": self.warnings, "outputs": self.comparisons,
                               "host": self.host}
        if inputs is not None:
            doc["inputs"] = {"folder": str(inputs.path), "entries": len(inputs.entries), "bin_files": len(inputs.bins),
                             "order": "lexicographic (msame's)", "not_bin": inputs.non_bin}
        if ms is not None:
            kept = ms.run_dir is not None and not any(ms.run_dir.is_relative_to(t) for t in temps)
            doc["msame"] = {"source": ms.source, "status": "failed" if ms.failed else "ok",
                            "failure_reasons": ms.failure_reasons, "command": ms.command, "returncode": ms.returncode,
                            "log": _log_json(ms.log), "whole_process_wall_s": ms.wall_s,
                            "whole_process_scope": SCOPES["msame_whole_process"] if ms.wall_s is not None else None,
                            "per_execute_scope": SCOPES["msame_per_execute"],
                            "run_dir": str(ms.run_dir) if ms.run_dir else None,
                            "outputs_read_as": ms.output_dtypes, "outputs_kept": kept or self.keep_outputs,
                            "log_file": str(ms.log_file) if ms.log_file else None,
                            "log_file_kept": bool(ms.log_file) and self._kept(ms.log_file),
                            "emulator_report": ms.emulator_report}
        if tp is not None:
            doc["pymfn"] = _timing_json(tp)
        if fr is not None:
            doc["folder_run"] = {"scope": SCOPES["pymfn_whole_process"], "whole_process_wall_s": fr.wall_s,
                                 "phases_s": fr.phases_s, "run_dir": str(fr.run_dir),
                                 "outputs_kept": fr.output_dir not in temps or self.keep_outputs}
        return doc

    def csv_rows(self) -> list[dict[str, Any]]:
        return [{"figure": what, "msame": a, "pymfn": b} for what, a, b in self.rows]


def _check_arguments(model: str | os.PathLike | None, input: str | os.PathLike | None,
                     log: str | os.PathLike | None, msame_output: str | os.PathLike | None, run_msame: bool,
                     folder_run: bool | None, pymfn_output: str | os.PathLike | None, warmup: int,
                     passes: int) -> None:
    """Every argument problem as one line, before anything runs."""
    if warmup < 0:
        raise CommandError(f"{opt('warmup')} must be >= 0, got {warmup}")
    if passes < 1:
        raise CommandError(f"{opt('passes')} must be >= 1, got {passes}")
    if (run_msame or folder_run) and not (model and input):
        which = opt("run_msame") if run_msame else opt("folder_run")
        raise CommandError(f"{which} needs {opt('model')} and {opt('input')}")
    if run_msame and log:
        raise CommandError(f"{opt('log')} and {opt('run_msame')}: the log of the run comes from the run itself; give "
                           "one of them")
    if bool(model) != bool(input):
        raise CommandError(f"{opt('model')} and {opt('input')} go together (the .om and the folder both tools run)")
    if not (log or msame_output or run_msame or (model and input)):
        raise CommandError(f"give {opt('log')} and/or {opt('msame_output')} (an earlier msame run), {opt('run_msame')} "
                           f"with {opt('model')} and {opt('input')} (msame on PATH: "
                           f"{shutil.which('msame') or 'not found'}), or {opt('model')} and {opt('input')} for "
                           "pymfn's side alone")
    if model:
        path = Path(model)
        if ".om" not in path.name:
            raise CommandError(f"{opt('model')} {path}: msame runs .om models only (the path must contain '.om')")
        if not path.is_file():
            raise CommandError(f"{opt('model')} {path}: file not found")
    if msame_output and not run_msame and not Path(msame_output).exists():
        raise CommandError(f"{opt('msame_output')} {msame_output}: does not exist (it is created only with "
                           f"{opt('run_msame')})")
    for param, value in (("msame_output", msame_output), ("pymfn_output", pymfn_output)):
        if value and Path(value).exists() and not Path(value).is_dir():
            raise CommandError(f"{opt(param)} {value}: exists and is not a folder")


def _temp_or_given(given: str | os.PathLike | None, prefix: str, temps: list[Path]) -> Path:
    if given:
        return Path(given)
    path = Path(tempfile.mkdtemp(prefix=prefix))
    temps.append(path)
    return path


def msame_compare(model: str | os.PathLike | None = None, input: str | os.PathLike | None = None, *,
                  log: str | os.PathLike | None = None, msame_output: str | os.PathLike | None = None,
                  run_msame: bool = False, msame: str | os.PathLike | None = None, warmup: int = 1, passes: int = 1,
                  folder_run: bool | None = None, pymfn_output: str | os.PathLike | None = None,
                  keep_outputs: bool = False) -> MsameComparison:
    """Huawei msame's figures beside pymfn's for the same .om (``model``) and folder of .bin files (``input``).

    msame's side comes from running it (``run_msame``: the ``msame`` executable, else $PYMFN_MSAME, else msame
    on PATH; it writes under ``msame_output``, default a temporary folder) or from an earlier run's ``log``
    and/or output folder ``msame_output``. pymfn's side is a timing pass over the folder in msame's order
    (``warmup`` untimed executes, then ``passes`` timed passes) and, with ``folder_run`` (default: on with
    ``run_msame``), a whole process doing msame's work (outputs under ``pymfn_output``, default temporary).
    Temporary folders are removed at the end unless ``keep_outputs``.

    A failed msame run or pymfn side does not raise: the result says so (``failed``, ``error``) and keeps what
    was measured. Bad arguments raise ``CommandError`` naming the parameter.

    >>> import pymfn.bench as b, pathlib, tempfile
    >>> log = pathlib.Path(tempfile.mkdtemp()) / "msame.log"
    >>> _ = log.write_text("".join(f"[INFO] start to process file:/data/{i}.bin\\n[INFO] model execute success\\n"
    ...                            f"Inference time: {ms}ms\\n" for i, ms in enumerate(["1.514", "0.742"]))
    ...                    + "Inference average time : 1.13 ms\\nInference average time without first time: 0.74 ms\\n")
    >>> r = b.msame_compare(log=log)
    >>> r.failed, r.rows[2]
    (False, ('mean (ms), from per-execute times', '1.128', '-'))
    """
    if folder_run is None:
        folder_run = bool(run_msame)  # like for like with a whole msame process, when there is one
    _check_arguments(model, input, log, msame_output, run_msame, folder_run, pymfn_output, warmup, passes)
    temps: list[Path] = []
    try:
        return _compare(Path(model) if model else None, Path(input) if input else None, log, msame_output,
                        run_msame, msame, warmup, passes, folder_run, pymfn_output, keep_outputs, temps)
    finally:
        if not keep_outputs:
            for path in temps:
                shutil.rmtree(path, ignore_errors=True)


def _compare(model: Path | None, input_folder: Path | None, log: str | os.PathLike | None,
             msame_output: str | os.PathLike | None, run_msame: bool, executable: str | os.PathLike | None,
             warmup: int, passes: int, with_folder_run: bool, pymfn_output: str | os.PathLike | None,
             keep_outputs: bool, temps: list[Path]) -> MsameComparison:
    inputs = scan_inputs(input_folder) if input_folder else None
    engine = dataset = None
    dtypes = ["float16"]
    warnings: list[str] = []
    if inputs is not None:
        engine = open_comparison_engine(model)
        dataset = open_inputs(engine, inputs)  # sizes checked before msame spends any time
        dtypes = [str(o.dtype) for o in engine.outputs()]
        if inputs.non_bin:
            warnings.append(f"{opt('input')} {inputs.path}: msame feeds every non-hidden entry to the model, pymfn "
                            f"only the .bin files; {len(inputs.non_bin)} other: {', '.join(inputs.non_bin[:5])}")
    ms = msame_from_files(log, msame_output, inputs, dtypes) if not run_msame else None
    if run_msame:
        ms = msame_from_run(model, executable, inputs, _temp_or_given(msame_output, "pymfn-msame-", temps), dtypes)
    # Once msame has run, a failure on pymfn's side must not throw msame's figures away: it is reported
    # in the result, after the table and the JSON.
    pymfn_errors: list[str] = []
    tp = fr = None
    if engine is not None:
        try:
            tp = timing_pass(engine, dataset, warmup, passes)
        except Exception as exc:  # noqa: BLE001 - reported in the result, after what was measured is saved
            pymfn_errors.append(f"pymfn timing pass: {one_line(exc)}")
    del dataset
    if with_folder_run:
        try:
            fr = folder_run(model, inputs, _temp_or_given(pymfn_output, "pymfn-folder-run-", temps))
        except Exception as exc:  # noqa: BLE001
            pymfn_errors.append(f"pymfn folder run: {one_line(exc)}")
    warnings += [f"{e} (failed)" for e in pymfn_errors]

    comparisons = {}
    if ms is not None and ms.outputs is not None and tp is not None:
        comparisons["timing pass vs msame"] = compare_outputs(ms.outputs, tp.outputs, dtypes)
    if ms is not None and ms.outputs is not None and fr is not None:
        comparisons["folder run vs msame"] = compare_outputs(ms.outputs, fr.outputs, dtypes)
    if tp is not None and fr is not None:
        comparisons["folder run vs timing pass"] = compare_outputs(fr.outputs, tp.outputs, dtypes)

    if ms is not None and ms.log is not None:
        warnings += [f"msame log: {w}" for w in ms.log.warnings]
    if ms is not None:
        warnings += ms.notes
        if not ms.failed and ms.log is not None:
            warnings += _noisy_warning("msame", ms.log.run_times_ms)
    if tp is not None:
        warnings += _noisy_warning("pymfn", tp.compute_ms)
    for name, c in comparisons.items():
        warnings += _comparison_warnings(name, c)
    if ms is not None and ms.failed:
        warnings.append(f"msame run FAILED ({len(ms.failure_reasons)} reason(s) listed above); its averages are "
                        "not results")
    return MsameComparison(inputs=inputs, msame=ms, timing=tp, folder=fr, comparisons=comparisons, warnings=warnings,
                           errors=pymfn_errors, temporaries=list(temps), keep_outputs=keep_outputs,
                           host=report.host_info())

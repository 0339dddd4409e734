"""msame compatibility: read and write msame's output folders, parse its logs, run it.

msame is the tool Ascend ModelZoo entries (including MobileFaceNet's) use to run an ``.om`` model over a
folder of ``.bin`` inputs. Our benchmarks are compared against it and our accuracy scripts must accept
either tool's output, so this module speaks its file layout exactly (facts in ``shared/docs/ascend.md``):

* outputs land in ``<output>/<timestamp>/`` where the timestamp is either the unpadded
  ``YYYYMD_H_M_S_usec`` of msame since late 2021 (``2022113_9_31_13_612340``) or the older
  ``%Y%m%d_%H%M%S`` (``20210915_104452``);
* folder mode writes ``<input stem>_output_<k>.bin`` (raw bytes) or ``.txt`` (text), loop mode
  ``<om stem>_output_<k>.bin``;
* the log prints ``Inference time: <t>ms`` per execute, then ``Inference average time : %.2f ms`` (folder
  mode, note the space before the colon) or ``Inference average time: %f ms`` (loop mode), and
  ``Inference average time without first time: ... ms`` when more than one execute ran.

Reading is strict on purpose: a missing index, a file of the wrong size or two runs in one folder would
otherwise silently shift every LFW pair and still produce a plausible accuracy.
"""
from __future__ import annotations

import datetime as _dt
import math
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Sequence

import numpy as np
from tqdm import tqdm

from pymfn.files.atomic import atomic_dir, atomic_write
from pymfn.files.outputs import check_output_dir, check_output_path

__all__ = [
    "MsameError",
    "MsameNotFoundError",
    "MsameLog",
    "MsameOutputs",
    "MsameResult",
    "find_msame",
    "check_stem_numbering",
    "find_run_dir",
    "input_stem",
    "run_timed",
    "TimedProcess",
    "format_timestamp",
    "is_msame_output",
    "parse_log",
    "read_log_file",
    "read_outputs",
    "read_logs",
    "run_msame_checked",
    "save_msame_output",
    "parse_msame_log",
    "parse_msame_logs",
    "parse_timestamp",
    "read_msame_outputs",
    "run_msame",
    "write_msame_outputs",
]


class MsameError(ValueError):
    """An msame folder, log or run is unusable; the message names the path and what was expected."""


class MsameNotFoundError(FileNotFoundError):
    """The msame executable is not installed where we looked."""


# ---------------------------------------------------------------------------------------------- timestamps

# ASCII digits only, matched with fullmatch (so "20210915_104452\n" is not a timestamp).
_NEW_TS = re.compile(r"([0-9]{4})([0-9]{2,4})_([0-9]{1,2})_([0-9]{1,2})_([0-9]{1,2})_([0-9]{1,6})")
_OLD_TS = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})_([0-9]{2})([0-9]{2})([0-9]{2})")


def parse_timestamp(name: str) -> list[_dt.datetime]:
    """Every date an msame run-folder name can stand for; empty if it is not a timestamp folder.

    The unpadded format is ambiguous (``2022113`` is 2022-1-13 or 2022-11-3), so all valid readings
    are returned and callers decide whether the ambiguity matters.
    """
    m = _OLD_TS.fullmatch(name)
    if m:
        try:
            return [_dt.datetime(*(int(g) for g in m.groups()))]
        except ValueError:
            return []
    m = _NEW_TS.fullmatch(name)
    if not m:
        return []
    year, md, hour, minute, sec, usec = m.groups()
    readings = []
    for cut in (1, 2):  # month has 1 or 2 digits, the day takes the rest
        mon, day = md[:cut], md[cut:]
        if not day or len(day) > 2 or mon.startswith("0") or day.startswith("0"):
            continue  # msame never zero-pads
        try:
            readings.append(_dt.datetime(int(year), int(mon), int(day), int(hour), int(minute), int(sec), int(usec)))
        except ValueError:
            continue
    return readings


def format_timestamp(when: _dt.datetime | None = None, style: str = "new") -> str:
    """msame's run-folder name for ``when`` (default: now, local time as msame uses).

    ``style="new"`` is the unpadded ``YYYYMD_H_M_S_usec`` of current msame, ``"old"`` the
    ``%Y%m%d_%H%M%S`` of msame before late 2021.
    """
    when = when or _dt.datetime.now()
    if style == "new":
        return (f"{when.year}{when.month}{when.day}_{when.hour}_{when.minute}_{when.second}_"
                f"{when.microsecond}")
    if style == "old":
        return when.strftime("%Y%m%d_%H%M%S")
    raise ValueError(f"format_timestamp: style must be 'new' or 'old', got {style!r}")


# ---------------------------------------------------------------------------------------------- folders

# fullmatch + DOTALL: a name with a newline in it must not pass for the name before the newline.
_OUT_NAME = re.compile(r"(?P<stem>.+)_output_(?P<k>[0-9]+)\.(?P<ext>bin|txt)", re.S)
# msame numbers outputs 0..numOutputs-1; an index beyond this is a stray file, and trusting it would
# make the completeness check walk billions of indices.
MAX_OUTPUT_INDEX = 4095
# Stems of 1..18 ASCII digits are input numbers (ModelZoo's 0.bin ... 11999.bin); longer ones are names.
_INDEX_STEM = re.compile(r"[0-9]{1,18}")


def _scandir(folder: Path) -> list[os.DirEntry]:
    """The entries of ``folder``, or MsameError naming it (permissions, vanished, not a folder)."""
    try:
        with os.scandir(folder) as it:
            return list(it)
    except OSError as exc:
        raise MsameError(f"{folder}: cannot list the folder ({exc.strerror or exc})") from None


def _is_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file()
    except OSError:  # a symlink loop or a file removed while listing
        return False


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _output_files(folder: Path) -> list[tuple[str, int, str, Path]]:
    found = []
    for entry in _scandir(folder):
        if entry.name.startswith(".") or not _is_file(entry):
            continue
        m = _OUT_NAME.fullmatch(entry.name)
        if m:
            digits = m["k"]
            if len(digits) > 4 or int(digits) > MAX_OUTPUT_INDEX:
                raise MsameError(f"{entry.path}: output index {digits[:12]}{'...' if len(digits) > 12 else ''} "
                                 f"is not a plausible msame output number (0..{MAX_OUTPUT_INDEX})")
            found.append((m["stem"], int(digits), m["ext"], Path(entry.path)))
    return found


def find_run_dir(output_dir: str | os.PathLike, run: str | None = None) -> Path:
    """The folder holding the output files of one msame run.

    ``output_dir`` may be the run folder itself (it contains ``*_output_<k>.*`` files) or msame's
    ``--output`` folder, whose timestamp subfolders are the runs. With several runs and ``run=None`` the
    newest is chosen, but only when the order is certain: an unpadded timestamp whose date is ambiguous
    and could be the newest makes this fail and asks for ``run=``.
    """
    base = Path(output_dir)
    if not base.exists():
        raise MsameError(f"{base}: msame output folder does not exist")
    if not base.is_dir():
        raise MsameError(f"{base}: expected a folder of msame outputs, found a file")
    if run is not None:
        chosen = base / run
        if not chosen.is_dir():
            raise MsameError(f"{chosen}: run folder {run!r} not found under {base}")
        return chosen
    if _output_files(base):
        return base
    runs = {}
    for entry in _scandir(base):
        if not entry.name.startswith(".") and _is_dir(entry):
            readings = parse_timestamp(entry.name)
            if readings:
                runs[entry.name] = readings
    if not runs:
        raise MsameError(f"{base}: no msame output files (<stem>_output_<k>.bin/.txt) and no timestamp "
                         "subfolders (YYYYMD_H_M_S_usec or YYYYmmdd_HHMMSS) in it")
    if len(runs) == 1:
        return base / next(iter(runs))
    # Newest = the run whose earliest reading is later than every other run's latest reading.
    latest = max(runs, key=lambda n: min(runs[n]))
    others = [n for n in runs if n != latest]
    if any(max(runs[n]) >= min(runs[latest]) for n in others):
        raise MsameError(f"{base}: {len(runs)} msame runs ({', '.join(sorted(runs))}) and their order is "
                         "ambiguous (unpadded msame timestamps can be read as two dates); pass run=<folder>")
    return base / latest


def _progress(total: int, desc: str, show: bool | None):
    """tqdm for the thousands-of-files case (LFW = 12,000 files), quiet otherwise and when not a tty."""
    if show is None:
        show = total >= 2000 and sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit="file", disable=not show, leave=False)


def _natural_key(stem: str) -> tuple:
    """Sort key putting ``2`` before ``10``. Digit runs compare by (length without leading zeros, digits),
    which is numeric order without turning a run of any length into an int."""
    parts = re.split(r"([0-9]+)", stem)
    return tuple((len(p.lstrip("0")), p.lstrip("0"), p) if i % 2 else p for i, p in enumerate(parts))


def input_stem(file_name: str) -> str:
    """The stem msame gives the outputs of input ``file_name``: everything before the last dot."""
    return file_name.rsplit(".", 1)[0] if "." in file_name else file_name


@dataclass
class MsameOutputs:
    """Outputs of one msame run, in input order.

    ``outputs[k]`` has one row per input stem: shape ``(len(stems), elements_per_file)``.
    """

    run_dir: Path
    stems: list[str]
    outputs: list[np.ndarray]
    fmt: str  # "BIN" or "TXT"
    timestamp: str | None  # the run folder's name when it is a timestamp folder
    other_runs: list[str] = field(default_factory=list)  # timestamp folders beside it that were NOT read
    files: list[list[Path]] = field(default_factory=list)  # files[k][i]: the file of output k, stem i


def read_msame_outputs(output_dir: str | os.PathLike, dtype: str | np.dtype = "float16", *,
                       run: str | None = None, count: int | None = None, elements: int | None = None,
                       fmt: str | None = None, txt_fp16_bits: bool = False,
                       first_index: int = 0, progress: bool | None = None, complete: bool = True,
                       allow_nonfinite: bool = False) -> MsameOutputs:
    """Load every ``<stem>_output_<k>`` file of one msame run into arrays in input order.

    Order is natural by stem (``2`` before ``10``), which for ModelZoo's numbered inputs is the input
    order (``0_output_0.bin`` ... ``11999_output_0.bin``). When every stem is a number the indices must
    be exactly ``0..N-1`` (``N = count`` if given), otherwise the missing ones are named.

    Every problem raises :class:`MsameError` naming the folder or file: nothing in a folder of msame
    outputs (names, sizes, bytes, text) is trusted.

    Args:
        output_dir: msame's ``--output`` folder or one run folder inside it (see :func:`find_run_dir`).
        dtype: element type of the raw ``.bin`` files (msame writes the model's output dtype, float16 for
            the ModelZoo MobileFaceNet) and the dtype of the returned arrays for ``.txt``.
        run: name of the timestamp folder to read when there are several.
        count: expected number of inputs.
        elements: expected elements per file (e.g. 128 for one embedding); all files of an output must
            agree with each other anyway.
        fmt: "BIN" or "TXT" to insist on one; default: whatever the folder holds (both at once is an error).
        txt_fp16_bits: msame before its aclFloat16ToFloat fix printed float16 TXT outputs as the raw
            16-bit integers; set this to decode such files.
        first_index: number of the first input for numbered stems (0 for ModelZoo's image2bin). A gap is
            never bridged: every pair after it would silently shift.
        progress: show a progress bar (default: for 2,000+ files on a terminal).
        complete: check that numbered stems have no gaps (and ``count``). ``False`` reads whatever stems are
            there, for callers that pair rows by name and report the missing ones themselves.
        allow_nonfinite: accept NaN/Inf values. By default the first one is an error naming its file: an
            embedding with a NaN would otherwise surface much later as a row number without a file.
    """
    run_dir = find_run_dir(output_dir, run)
    dt = _output_dtype(dtype)
    by_stem, ext = _outputs_by_stem(run_dir, fmt)
    n_out = _check_output_numbers(run_dir, by_stem)
    stems = sorted(by_stem, key=_natural_key)
    if complete:
        check_stem_numbering(run_dir, stems, count, first_index)

    outputs, files = [], []
    bar = _progress(n_out * len(stems), f"reading {run_dir.name}", progress)
    for k in range(n_out):
        paths = [by_stem[stem][k] for stem in stems]
        rows = []
        for path in paths:
            bar.update()
            rows.append(_read_bin(path, dt) if ext == "bin" else _read_txt(path, dt, txt_fp16_bits))
        _check_row_sizes(k, paths, rows, dt, elements)
        stacked = np.stack(rows)
        if not allow_nonfinite:
            _check_finite(stacked, paths)
        outputs.append(stacked)
        files.append(paths)
    bar.close()
    timestamp = run_dir.name if parse_timestamp(run_dir.name) else None
    others = []
    if timestamp is not None and run_dir.parent.is_dir():
        others = sorted(e.name for e in _scandir(run_dir.parent)
                        if e.name != run_dir.name and _is_dir(e) and parse_timestamp(e.name))
    return MsameOutputs(run_dir=run_dir, stems=stems, outputs=outputs, fmt=ext.upper(), timestamp=timestamp,
                        other_runs=others, files=files)


def _output_dtype(dtype: str | np.dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise MsameError(f"dtype {dtype!r} is not a numpy dtype (e.g. float16, float32, int32)") from None
    if dt.kind not in "fiu":
        raise MsameError(f"dtype {dt.name}: msame outputs are numbers; use a float, int or uint dtype")
    return dt


def _outputs_by_stem(run_dir: Path, fmt: str | None) -> tuple[dict[str, dict[int, Path]], str]:
    """{stem: {output index: file}} of one format, and that format's extension."""
    files = _output_files(run_dir)
    if not files:
        raise MsameError(f"{run_dir}: no msame output files (<stem>_output_<k>.bin or .txt)")
    exts = {ext for _, _, ext, _ in files}
    if fmt is not None:
        want = fmt.upper()
        if want not in ("BIN", "TXT"):
            raise MsameError(f"fmt must be 'BIN' or 'TXT', got {fmt!r}")
        files = [f for f in files if f[2] == want.lower()]
        if not files:
            raise MsameError(f"{run_dir}: no .{want.lower()} output files (found only .{exts.pop()})")
        ext = want.lower()
    else:
        if len(exts) > 1:
            raise MsameError(f"{run_dir}: holds both .bin and .txt outputs; pass fmt='BIN' or fmt='TXT'")
        ext = exts.pop()
    by_stem: dict[str, dict[int, Path]] = {}
    for stem, k, _, path in files:
        per = by_stem.setdefault(stem, {})
        if k in per:  # "0_output_00.bin" beside "0_output_0.bin"
            raise MsameError(f"{run_dir}: {per[k].name} and {path.name} are both output {k} of input {stem!r}")
        per[k] = path
    return by_stem, ext


def _check_output_numbers(run_dir: Path, by_stem: dict[str, dict[int, Path]]) -> int:
    """Every stem has outputs 0..n-1 for the same n; returns n."""
    n_out = 1 + max(k for per in by_stem.values() for k in per)
    for stem, per in by_stem.items():
        if len(per) != n_out:
            missing = [k for k in range(n_out) if k not in per][:10]
            raise MsameError(f"{run_dir}: input {stem!r} lacks output(s) {missing} "
                             f"(other inputs have {n_out} outputs)")
    return n_out


def check_stem_numbering(run_dir: Path, stems: list[str], count: int | None, first_index: int) -> None:
    """Numbered stems must be exactly first_index..first_index+N-1; other stems must number ``count``."""
    if not all(_INDEX_STEM.fullmatch(s) for s in stems):
        if count is not None and len(stems) != count:
            raise MsameError(f"{run_dir}: expected {count} inputs, found {len(stems)}")
        return
    numbers = Counter(int(s) for s in stems)
    dups = sorted(n for n, c in numbers.items() if c > 1)
    if dups:
        raise MsameError(f"{run_dir}: stems name the same index more than once (e.g. '1' and '01'): {dups[:10]}")
    lo = first_index
    hi = lo + count if count is not None else max(max(numbers) + 1, lo)
    present = {n for n in numbers if lo <= n < hi}
    n_missing = (hi - lo) - len(present)
    extra = sorted(n for n in numbers if not lo <= n < hi)
    if not n_missing and not extra:
        return
    desc = []
    if n_missing:
        # Walk from lo: at most len(present) + 10 steps however large the range is.
        shown = []
        n = lo
        while len(shown) < min(10, n_missing):
            if n not in present:
                shown.append(n)
            n += 1
        desc.append(f"{n_missing} missing index(es): " + ", ".join(map(str, shown)) +
                    (" ..." if n_missing > len(shown) else ""))
    if extra:
        desc.append(f"{len(extra)} index(es) outside {lo}..{hi - 1}: {extra[:10]}")
    hint = " (inputs numbered from 1? pass first_index=1)" if not first_index and n_missing == 1 and 0 not in present \
        else ""
    raise MsameError(f"{run_dir}: expected inputs {lo}..{hi - 1}; " + "; ".join(desc) + hint)


def _read_regular(path: Path, what: str) -> bytes:
    """All bytes of regular file ``path``. Opened non-blocking and checked with fstat on the open descriptor:
    a FIFO or device put (or swapped) in place of an output would otherwise block or never end."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise MsameError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise MsameError(f"{path}: not a regular file; expected {what}")
        chunks, left = [], st.st_size
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 24))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise MsameError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def read_log_file(path: str | os.PathLike) -> str:
    """The text of an msame log file (bytes that are not UTF-8 are replaced, never fatal)."""
    return _read_regular(Path(path), "an msame log").decode("utf-8", errors="replace")


def _read_bin(path: Path, dt: np.dtype) -> np.ndarray:
    data = _read_regular(path, "an msame output")
    if not data or len(data) % dt.itemsize:
        raise MsameError(f"{path}: {len(data)} bytes is not a whole number of {dt.name} elements "
                         f"({dt.itemsize} bytes each)")
    return np.frombuffer(data, dtype=dt).copy()


def _check_row_sizes(k: int, paths: list[Path], rows: list[np.ndarray], dt: np.dtype, elements: int | None) -> None:
    first = rows[0].size
    for path, row in zip(paths, rows, strict=True):
        if row.size != first:
            raise MsameError(f"{path}: output {k} has {row.size} {dt.name} elements but {paths[0].name} has "
                             f"{first}; all files of one output must be the same size")
    if elements is not None and first != elements:
        raise MsameError(f"{paths[0]}: {first} {dt.name} elements per file, expected {elements}")


def _check_finite(rows: np.ndarray, paths: list[Path]) -> None:
    if rows.dtype.kind != "f":
        return
    finite = np.isfinite(rows)
    if finite.all():
        return
    bad_row = int(np.flatnonzero(~finite.all(axis=1))[0])
    bad_elem = int(np.flatnonzero(~finite[bad_row])[0])
    n_bad = int((~finite.all(axis=1)).sum())
    raise MsameError(f"{paths[bad_row]}: element {bad_elem} is {rows[bad_row, bad_elem]} (NaN/Inf"
                     f"{f'; {n_bad} files have such values' if n_bad > 1 else ''}); msame outputs used as "
                     "embeddings must be finite")


def _read_txt(path: Path, dt: np.dtype, fp16_bits: bool) -> np.ndarray:
    raw = _read_regular(path, "an msame output")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise MsameError(f"{path}: not an msame TXT output (byte {exc.start} is not ASCII text)") from None
    tokens = text.split()
    if not tokens:
        raise MsameError(f"{path}: empty msame TXT output")
    if "_" in text:  # Python's number syntax allows 1_000; msame never writes it
        raise MsameError(f"{path}: not an msame TXT output ('_' inside a number)")
    try:
        if fp16_bits:
            bits = [int(t) for t in tokens]
            if min(bits) < 0 or max(bits) > 0xFFFF:
                raise MsameError(f"{path}: txt_fp16_bits=True but values are not 16-bit integers")
            return np.array(bits, dtype=np.uint16).view(np.float16).astype(dt)
        values = np.array(tokens, dtype=np.float64)
    except ValueError as exc:
        raise MsameError(f"{path}: not an msame TXT output (whitespace-separated numbers): {exc}") from None
    return _txt_values_as(values, dt, path)


def _txt_values_as(values: np.ndarray, dt: np.dtype, path: Path) -> np.ndarray:
    """``values`` converted to ``dt``, refusing values the dtype cannot hold (no silent inf or wrap-around)."""
    finite = np.isfinite(values)
    if dt.kind in "iu":
        if not finite.all() or not np.all(values == np.round(values)):
            raise MsameError(f"{path}: non-integer values for integer dtype {dt.name}")
        info = np.iinfo(dt)
        if values.min() < info.min or values.max() > info.max:
            raise MsameError(f"{path}: values outside the {dt.name} range {info.min}..{info.max}")
        return values.astype(dt)
    with np.errstate(over="ignore"):
        out = values.astype(dt)
    overflow = finite & ~np.isfinite(out)
    if overflow.any():
        i = int(np.flatnonzero(overflow)[0])
        raise MsameError(f"{path}: value {values[i]:g} (element {i}) does not fit {dt.name}")
    return out


def _format_txt(row: np.ndarray, last_dim: int, precision: int) -> str:
    # msame: every value followed by a space, a newline after each row of the last dimension.
    if row.dtype.kind == "f":
        vals = [f"{float(v):.{precision}g}" for v in row.ravel()]
    else:
        vals = [str(int(v)) for v in row.ravel()]
    lines = []
    for i in range(0, len(vals), last_dim):
        lines.append("".join(v + " " for v in vals[i:i + last_dim]))
    return "\n".join(lines) + "\n"


def write_msame_outputs(out_dir: str | os.PathLike, stems: Sequence[str | int],
                        outputs: np.ndarray | Sequence[np.ndarray], fmt: str = "BIN",
                        timestamp: str | _dt.datetime | None = None, *, precision: int = 6,
                        progress: bool | None = None) -> Path:
    """Write our outputs in msame's layout: ``out_dir/<timestamp>/<stem>_output_<k>.<bin|txt>``.

    The run folder is built under a temporary name and renamed into place, so a reader never sees half a
    run. Returns the run folder.

    Args:
        out_dir: the equivalent of msame's ``--output``.
        stems: input stems in order (``range(12000)`` for ModelZoo's numbered inputs).
        outputs: one array per model output, each with ``len(stems)`` rows (a single array = output 0).
            Row i of output k becomes ``<stems[i]>_output_<k>``; BIN files hold its raw bytes in the
            array's dtype (keep float16 for a ModelZoo-style ``np.fromfile(..., np.float16)``).
        fmt: "BIN" or "TXT" (msame's ``--outfmt``).
        timestamp: folder name; a datetime is formatted like current msame; default now.
        precision: significant digits in TXT (msame's C++ stream default is 6, which is exact for float16
            but lossy for float32).
        progress: show a progress bar (default: for 2,000+ files on a terminal).
    """
    fmt_u = fmt.upper()
    if fmt_u not in ("BIN", "TXT"):
        raise ValueError(f"write_msame_outputs: fmt must be 'BIN' or 'TXT', got {fmt!r}")
    if isinstance(outputs, np.ndarray):
        outputs = [outputs]
    outputs = [np.ascontiguousarray(o) for o in outputs]
    stems = [str(s) for s in stems]
    if not stems:
        raise ValueError("write_msame_outputs: no stems given")
    if len(set(stems)) != len(stems):
        raise ValueError("write_msame_outputs: stems must be unique")
    for s in stems:
        if not s or "/" in s or s.startswith("."):
            raise ValueError(f"write_msame_outputs: bad stem {s!r} (must be a plain, non-hidden file stem)")
    for k, o in enumerate(outputs):
        if o.ndim == 0 or o.shape[0] != len(stems):
            raise ValueError(f"write_msame_outputs: output {k} has shape {o.shape}; expected "
                             f"{len(stems)} rows, one per stem")
    if isinstance(timestamp, _dt.datetime) or timestamp is None:
        name = format_timestamp(timestamp)
    else:
        name = str(timestamp)
        if not parse_timestamp(name):
            raise ValueError(f"write_msame_outputs: timestamp {name!r} is not an msame run-folder name "
                             "(YYYYMD_H_M_S_usec or YYYYmmdd_HHMMSS)")
    run_dir = Path(out_dir) / name
    if run_dir.exists():
        raise FileExistsError(f"{run_dir}: run folder already exists; refusing to mix two runs")
    ext = fmt_u.lower()
    with atomic_dir(run_dir) as tmp, _progress(len(outputs) * len(stems), f"writing {name}", progress) as bar:
        for k, o in enumerate(outputs):
            last = o.shape[-1] if o.ndim > 1 else 1
            for i, stem in enumerate(stems):
                target = tmp / f"{stem}_output_{k}.{ext}"
                if ext == "bin":
                    target.write_bytes(o[i].tobytes())
                else:
                    target.write_text(_format_txt(o[i], last, precision))
                bar.update()
    return run_dir


# ---------------------------------------------------------------------------------------------- logs

# Only [ \t] around the fields, never \s: with re.M, "^\s*" can run across thousands of blank lines from
# every line start, which made a log of blank lines take quadratic time. Digits are ASCII only.
_NUM = r"([-+]?(?:[0-9]+\.?[0-9]*(?:[eE][-+]?[0-9]+)?|\.[0-9]+(?:[eE][-+]?[0-9]+)?|nan|inf))"
_RUN_RE = re.compile(r"^[ \t]*Inference time:[ \t]*" + _NUM + r"[ \t]*ms", re.M)
_FOLDER_AVG_RE = re.compile(r"^[ \t]*Inference average time :[ \t]*" + _NUM + r"[ \t]*ms", re.M)
_LOOP_AVG_RE = re.compile(r"^[ \t]*Inference average time:[ \t]*" + _NUM + r"[ \t]*ms", re.M)
_NOFIRST_RE = re.compile(r"^[ \t]*Inference average time without first time:[ \t]*" + _NUM + r"[ \t]*ms", re.M)
_FILE_RE = re.compile(r"start to process file:([^\n]*)")
_ERROR_RE = re.compile(r"^[ \t]*\[ERROR\][^\n]*", re.M)


@dataclass
class MsameLog:
    """What one msame run printed."""

    mode: str  # "folder" or "loop"
    run_times_ms: list[float]  # one per successful execute, as printed (6 significant digits)
    average_ms: float
    average_without_first_ms: float | None  # msame prints it only when more than one execute ran
    files: list[str] = field(default_factory=list)  # inputs processed (folder/file mode)
    errors: list[str] = field(default_factory=list)  # [ERROR] lines
    warnings: list[str] = field(default_factory=list)  # our consistency checks
    average_text: str = ""  # the averages exactly as printed (folder mode: 2 decimals)
    average_without_first_text: str | None = None

    def recomputed_without_first_ms(self) -> float | None:
        """Mean of the per-run times after the first, from the per-run lines (more digits than msame's
        folder-mode ``%.2f`` summary)."""
        if len(self.run_times_ms) < 2:
            return None
        return float(np.mean(self.run_times_ms[1:]))

    def recomputed_average_ms(self) -> float | None:
        """Mean of the per-run lines (what msame's average line rounds to 2 decimals in folder mode)."""
        return float(np.mean(self.run_times_ms)) if self.run_times_ms else None

    def failure_reasons(self, expected_files: int | None = None) -> list[str]:
        """Why this run cannot be trusted as a whole; empty when nothing is wrong.

        msame exits 0 even when executes fail: it logs ``[ERROR]`` lines, skips the file's timing line
        and output, and (a known msame bug) leaves the failed input in its dataset so every later execute
        fails too. Its averages then cover only the files that succeeded.
        """
        reasons = []
        if self.errors:
            shown = " | ".join(self.errors[:3]) + (" | ..." if len(self.errors) > 3 else "")
            reasons.append(f"{len(self.errors)} [ERROR] line(s) in the log: {shown}")
        if self.mode == "folder" and len(self.files) > len(self.run_times_ms):
            reasons.append(f"{len(self.files) - len(self.run_times_ms)} of {len(self.files)} executes failed "
                           "(files processed without an 'Inference time' line)")
        if expected_files is not None and self.mode == "folder" and len(self.files) != expected_files:
            reasons.append(f"msame processed {len(self.files)} files, the input folder has {expected_files}")
        if not math.isfinite(self.average_ms):
            reasons.append(f"msame's average is {self.average_text or self.average_ms}: no execute succeeded")
        return reasons


def _f(s: str) -> float:
    return float(s)


def parse_msame_logs(text: str) -> list[MsameLog]:
    """Every msame run in ``text`` (logs of several runs are often appended to one file), in order.

    A run ends at its average line (plus the "without first time" line that follows it). A log with no
    average line means msame did not finish and is an error. Runs in linear time whatever the text.
    """
    summaries = sorted([(m.start(), m.end(), "folder", m) for m in _FOLDER_AVG_RE.finditer(text)]
                       + [(m.start(), m.end(), "loop", m) for m in _LOOP_AVG_RE.finditer(text)],
                       key=lambda s: s[0])
    if not summaries:
        errs = _ERROR_RE.findall(text)
        hint = f"; its errors: {' | '.join(e.strip()[:200] for e in errs[:3])}" if errs else ""
        raise MsameError("no 'Inference average time' line in the msame log: the run did not finish or this "
                         f"is not msame output{hint}")
    logs = []
    start = 0
    for i, (s, e, mode, m) in enumerate(summaries):
        nxt = summaries[i + 1][0] if i + 1 < len(summaries) else len(text)
        nf = _NOFIRST_RE.search(text, e, nxt)
        end = nf.end() if nf else e
        chunk = text[start:s]
        runs = [_f(x) for x in _RUN_RE.findall(chunk)]
        files = [f.strip() for f in _FILE_RE.findall(chunk)]
        log = MsameLog(mode=mode, run_times_ms=runs, average_ms=_f(m.group(1)),
                       average_without_first_ms=_f(nf.group(1)) if nf else None,
                       files=[f for f in files if f], errors=[x.strip() for x in _ERROR_RE.findall(chunk)],
                       average_text=m.group(1), average_without_first_text=nf.group(1) if nf else None)
        _check_log(log)
        logs.append(log)
        start = end
    return logs


def parse_msame_log(text: str) -> MsameLog:
    """The single msame run in ``text``; several runs is an error (use :func:`parse_msame_logs`)."""
    logs = parse_msame_logs(text)
    if len(logs) != 1:
        raise MsameError(f"msame log holds {len(logs)} runs; use parse_msame_logs() to get them all")
    return logs[0]


parse_log = parse_msame_log


def _check_log(log: MsameLog) -> None:
    # Per-run figures are printed with 6 significant digits, folder averages with 2 decimals.
    n = len(log.run_times_ms)
    if n == 0:
        log.warnings.append("no per-run 'Inference time' lines; averages cannot be checked")
        return
    tol_digits = 0.006 if log.mode == "folder" else 1e-5
    with np.errstate(all="ignore"):  # inf/nan in a damaged log are reported, not warned about by numpy
        mean = float(np.mean(log.run_times_ms))
        m2 = float(np.mean(log.run_times_ms[1:])) if n > 1 else None
    if math.isfinite(log.average_ms) and abs(mean - log.average_ms) > tol_digits + 1e-5 * abs(mean):
        log.warnings.append(f"printed average {log.average_ms} ms disagrees with the mean of {n} per-run "
                            f"lines ({mean:.6f} ms): log truncated or runs failed")
    if n > 1 and log.average_without_first_ms is None:
        log.warnings.append(f"{n} runs but no 'without first time' line")
    if log.average_without_first_ms is not None and m2 is not None:
        if abs(m2 - log.average_without_first_ms) > tol_digits + 1e-5 * abs(m2):
            log.warnings.append(f"printed 'without first' average {log.average_without_first_ms} ms disagrees "
                                f"with the per-run lines ({m2:.6f} ms)")


def is_msame_output(folder: str | os.PathLike) -> bool:
    """True when ``folder`` is an msame run folder or an ``--output`` folder with timestamp runs in it."""
    p = Path(folder)
    if not p.is_dir():
        return False
    try:
        if _output_files(p):
            return True
        return any(_is_dir(e) and parse_timestamp(e.name) for e in _scandir(p))
    except MsameError:
        return False


def read_outputs(folder: str | os.PathLike, dtype: str | np.dtype = "float16", output: int = 0,
                 **kwargs) -> np.ndarray:
    """Output ``output`` of one msame run as an ``(N, elements)`` array in input order (the embeddings of
    ``calculate_om_acc``); keyword arguments go to :func:`read_msame_outputs`."""
    res = read_msame_outputs(folder, dtype, **kwargs)
    if not 0 <= output < len(res.outputs):
        raise MsameError(f"{res.run_dir}: output {output} requested, the run has {len(res.outputs)}")
    return res.outputs[output]


# ---------------------------------------------------------------------------------------------- running

def find_msame(explicit: str | os.PathLike | None = None) -> Path:
    """The msame executable: ``explicit``, else ``$PYMFN_MSAME``, else ``msame`` on PATH."""
    cand = explicit or os.environ.get("PYMFN_MSAME")
    if cand:
        p = Path(cand)
        if not (p.is_file() and os.access(p, os.X_OK)):
            raise MsameNotFoundError(f"{p}: msame executable not found or not executable")
        return p
    found = shutil.which("msame")
    if not found:
        raise MsameNotFoundError("msame not found on PATH (nor $PYMFN_MSAME). It is built from Ascend's "
                                 "tools repository (msame/) against a CANN toolkit and needs an Ascend device; "
                                 "without one, use pymfn's own runner and write_msame_outputs()")
    return Path(found)


@dataclass
class TimedProcess:
    """A child process run to completion, timed from just before it is started to just after it exited."""

    command: list[str]
    returncode: int
    output: str  # stdout and stderr interleaved, decoded leniently (file names need not be UTF-8)
    wall_s: float

    def exit_description(self) -> str:
        if self.returncode < 0:
            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = f"signal {-self.returncode}"
            return f"was killed by {name}"
        return f"exited with code {self.returncode}"


def run_timed(cmd: Sequence[str], *, timeout: float | None = None, env: dict[str, str] | None = None) -> TimedProcess:
    """Run ``cmd`` and measure its whole life with a monotonic clock.

    Both sides of an msame comparison are timed through this one function, so "whole process" means the
    same thing for msame and for pymfn's folder run: exec, start-up, model load, every read, execute and
    write, teardown, exit.
    """
    cmd = [str(c) for c in cmd]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise MsameError(f"{cmd[0]}: still running after {timeout:g} s; stopped") from None
    except OSError as exc:
        raise MsameError(f"{cmd[0]}: cannot start ({exc.strerror or exc})") from None
    wall = time.perf_counter() - t0
    return TimedProcess(command=cmd, returncode=proc.returncode,
                        output=proc.stdout.decode("utf-8", errors="replace"), wall_s=wall)


@dataclass
class MsameResult:
    """One finished msame run."""

    command: list[str]
    returncode: int
    log_text: str
    log: MsameLog | None  # None only with check=False when the log has no summary (msame did not finish)
    run_dir: Path | None  # the timestamp folder it created (None if it wrote no outputs)
    wall_s: float = 0.0  # whole process, from run_timed
    error: str | None = None  # with check=False: why the run failed outright, one line (exit code, no summary)


def run_msame(model: str | os.PathLike, input_dir: str | os.PathLike | None, output_dir: str | os.PathLike, *,
              outfmt: str = "BIN", device: int = 0, loop: int | None = None, dym_batch: int | None = None,
              msame: str | os.PathLike | None = None, extra_args: Sequence[str] = (),
              timeout: float | None = None, check: bool = True) -> MsameResult:
    """Run msame on ``model`` over ``input_dir`` (folder mode; ``None`` = msame's zero-input loop mode) and
    parse what it printed. ``output_dir`` is created when missing (msame would create only its last level).

    Raises :class:`MsameNotFoundError` without msame and :class:`MsameError` for bad arguments. With
    ``check=True`` a non-zero exit or a log without a summary raises :class:`MsameError` (with the log
    tail); with ``check=False`` they are returned in ``error`` so a caller can still report the run.
    A zero exit does not mean success: see :meth:`MsameLog.failure_reasons`.
    """
    exe = find_msame(msame)
    model = Path(model)
    if ".om" not in model.name:
        raise MsameError(f"{model}: msame only accepts model paths containing '.om'")
    if not model.is_file():
        raise MsameError(f"{model}: model file not found")
    if input_dir is not None and not Path(input_dir).is_dir():
        raise MsameError(f"{input_dir}: input folder not found")
    if outfmt.upper() not in ("BIN", "TXT"):
        raise MsameError(f"outfmt must be 'BIN' or 'TXT', got {outfmt!r}")
    out = Path(output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MsameError(f"{out}: cannot create the msame output folder ({exc.strerror or exc})") from None
    before = {e.name for e in _scandir(out)}
    cmd = [str(exe), "--model", str(model), "--output", str(out), "--outfmt", outfmt.upper(),
           "--device", str(device)]
    if input_dir is not None:
        cmd += ["--input", str(input_dir)]
    if loop is not None:
        cmd += ["--loop", str(loop)]
    if dym_batch is not None:
        cmd += ["--dymBatch", str(dym_batch)]
    cmd += list(extra_args)
    proc = run_timed(cmd, timeout=timeout)
    text = proc.output
    tail = "\n".join(text.splitlines()[-15:])
    new = sorted(Path(e.path) for e in _scandir(out)
                 if e.name not in before and _is_dir(e) and parse_timestamp(e.name))
    if len(new) > 1:
        raise MsameError(f"{out}: {len(new)} new run folders appeared during one msame run: "
                         f"{[p.name for p in new]}")
    run_dir = new[0] if new else None
    errors = _ERROR_RE.findall(text)
    if errors:  # msame's teardown lines come last; its last [ERROR] line says what went wrong
        last = f"last [ERROR] line: {errors[-1].strip()[:300]}"
    else:
        last = "last output line: " + next((ln.strip()[:300] for ln in reversed(text.splitlines()) if ln.strip()),
                                           "(none)")
    error = None
    log = None
    if proc.returncode != 0:
        error = f"{exe} {proc.exit_description()}; {last}"
    try:
        log = parse_msame_log(text)
    except MsameError as exc:
        error = error or f"{exe}: {exc}; {last}"
    if error and check:
        raise MsameError(f"{error}\nlast lines:\n{tail}")
    return MsameResult(command=cmd, returncode=proc.returncode, log_text=text, log=log, run_dir=run_dir,
                       wall_s=proc.wall_s, error=error)


# ------------------------------------------------------------------------- `pymfn msame read|log|run`

def _require(ok: bool, option: str, value: object, expected: str) -> None:
    """Refuse a numeric option before any work, naming it (a negative --count would otherwise surface as
    'expected inputs 0..-2' after the whole folder was listed)."""
    if not ok:
        raise MsameError(f"{option} {value}: expected {expected}")


def save_msame_output(output_dir: str | os.PathLike, out: str | os.PathLike, *, dtype: str = "float16",
                      run: str | None = None, count: int | None = None, first_index: int = 0, output_index: int = 0,
                      txt_fp16_bits: bool = False) -> tuple[MsameOutputs, np.ndarray]:
    """Output ``output_index`` of one msame run (:func:`read_msame_outputs`) saved atomically as the .npy
    ``out``; the values are checked and ``out`` is checked writable before any file is read."""
    _require(count is None or count >= 1, "--count", count, "a positive number of inputs")
    _require(first_index >= 0, "--first-index", first_index, "0 or more")
    _require(output_index >= 0, "--output-index", output_index, "0 or more")
    try:
        _output_dtype(dtype)
    except MsameError as exc:
        raise MsameError(f"--dtype {exc}") from None
    check_output_path(out, "--out")  # before reading thousands of files, not after
    res = read_msame_outputs(output_dir, dtype, run=run, count=count, txt_fp16_bits=txt_fp16_bits,
                             first_index=first_index)
    if output_index >= len(res.outputs):
        raise MsameError(f"--output-index {output_index}: the run in {res.run_dir} has "
                         f"{len(res.outputs)} output(s)")
    arr = res.outputs[output_index]
    with atomic_write(out) as f:
        np.save(f, arr)
    return res, arr


def read_logs(path: str | os.PathLike) -> list[MsameLog]:
    """Every msame run logged in the file ``path`` (``parse_msame_logs``); errors name the file."""
    try:
        return parse_msame_logs(read_log_file(path))
    except MsameError as exc:
        text = str(exc)
        raise MsameError(text if text.startswith(f"{path}:") else f"{path}: {text}") from None


def run_msame_checked(model: str | os.PathLike, input_dir: str | os.PathLike | None, output_dir: str | os.PathLike,
                      *, outfmt: str = "BIN", device: int = 0, loop: int | None = None,
                      msame: str | os.PathLike | None = None) -> MsameResult:
    """:func:`run_msame` after the checks of ``pymfn msame run``: values, msame present, ``output_dir``
    usable, all before any folder is created."""
    _require(device >= 0, "--device", device, "a device id, 0 or more")
    _require(loop is None or loop >= 1, "--loop", loop, "a positive number of executes")
    find_msame(msame)  # no msame: say so before creating any folder
    check_output_dir(output_dir, "--output")
    return run_msame(model, input_dir, output_dir, outfmt=outfmt, device=device, loop=loop, msame=msame)

"""How every pymfn command fails and saves: one line on stderr, output paths checked before the work.

A measurement can take minutes; losing it because ``--json`` named a read-only folder, or burying the one
useful sentence of an error under a 20-line traceback, makes the tool untrustworthy. So:

* ``run_command`` runs a command's body and turns any exception into ``<prog>: error: <message>`` and a
  non-zero exit. The traceback is printed only with ``--debug`` or ``PYMFN_DEBUG=1``.
* ``check_output_path`` is called for every output path *before* measuring.
* ``save_output`` writes a result; if that still fails (disk full, permissions changed meanwhile), it
  writes the same bytes to a fallback file and says where, so nothing measured is lost.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable

from pymfn._atomic import probe_writable

DEBUG_ENV = "PYMFN_DEBUG"

# Exit codes: 1 = the command failed on its input or environment; 2 = argparse usage error (argparse's own);
# 3 = an unexpected internal error (a bug: the message says so); 130 = interrupted.
EXIT_ERROR = 1
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """A user-facing failure whose message is complete as it stands (no type name is added)."""


def debug_enabled(flag: bool = False) -> bool:
    return bool(flag) or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _is_user_error(exc: BaseException) -> bool:
    """Errors about the input, the arguments or the environment, as opposed to bugs in pymfn."""
    if isinstance(exc, (CommandError, OSError, ValueError, EOFError, MemoryError)):
        return True
    # Native typed errors (pymfn._core.Error and subclasses derive from RuntimeError) and OpenVINO's
    # model-reading errors are about the model or data the user gave.
    if isinstance(exc, RuntimeError):
        return True
    return False


def one_line(exc: BaseException) -> str:
    """The exception's message squeezed onto one line (native and OpenVINO messages can span several)."""
    text = str(exc).strip()
    if isinstance(exc, KeyError) and text.startswith("'"):
        text = text.strip("'")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    joined = lines[0] if len(lines) == 1 else " | ".join(lines[:4]) + (" | ..." if len(lines) > 4 else "")
    return joined


def run_command(prog: str, body: Callable[[], int | None], debug: bool = False) -> int:
    """Run ``body`` and map failures to one stderr line and an exit code (tracebacks only on request)."""
    try:
        return int(body() or 0)
    except SystemExit as exc:
        # argparse and `raise SystemExit("message")` in command bodies: keep one line, prefix the program.
        if isinstance(exc.code, str):
            print(f"{prog}: error: {exc.code}", file=sys.stderr)
            return EXIT_ERROR
        return int(exc.code or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BaseException as exc:  # noqa: BLE001 - this is the one place that turns every failure into a line
        if debug_enabled(debug):
            traceback.print_exc()
        if _is_user_error(exc):
            print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
            return EXIT_ERROR
        hint = "" if debug_enabled(debug) else f"; rerun with --debug or {DEBUG_ENV}=1 for the traceback"
        print(f"{prog}: internal error ({type(exc).__name__}): {one_line(exc)}{hint}", file=sys.stderr)
        return EXIT_INTERNAL


def check_output_path(path: str | os.PathLike | None, option: str) -> Path | None:
    """Fail now, before any measurement, if ``path`` cannot be written as a file.

    Accepts a path whose parent folders do not exist yet (they are created when writing) as long as the
    nearest existing ancestor is a writable folder. Rejects an existing directory, a path under a regular
    file, and read-only places; the probe creates and removes one empty temp file, which is what the
    atomic write will need.
    """
    if path is None:
        return None
    p = Path(path)
    if str(path) == "" or p.name in ("", ".", ".."):
        raise CommandError(f"{option} {path!s}: not a file name")
    if p.is_dir():
        raise CommandError(f"{option} {p}: is an existing directory; give a file name")
    if p.exists() and not p.is_file():
        raise CommandError(f"{option} {p}: exists and is not a regular file")
    parent = p.parent
    while not parent.exists():
        if parent == parent.parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        raise CommandError(f"{option} {p}: {parent} is not a directory")
    try:  # one temp under the output transaction's pattern, so even a probe killed here is cleaned up
        probe_writable(parent, p.name)
    except OSError as exc:
        raise CommandError(f"{option} {p}: cannot write in {parent} ({exc.strerror or exc})") from None
    return p


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output_dir(path: str | os.PathLike, option: str, *, marker: str | None = None) -> Path:
    """Fail now, before any long work, if ``path`` cannot be written as an output directory.

    ``marker`` is for commands that replace the directory as a whole (built beside it, then renamed
    over it): an existing, non-empty directory is replaced only when it holds ``marker``, i.e. when the
    same command wrote it, so a mistyped path cannot wipe an unrelated folder. Without ``marker`` the
    command writes into the directory (``train --ckpt-dir``), which must then be writable itself.
    """
    p = Path(path)
    if str(path) == "" or p.name in ("", ".", ".."):
        raise CommandError(f"{option} {path!s}: not a usable directory name; give a new or existing folder name")
    if p.exists() and not p.is_dir():
        raise CommandError(f"{option} {p}: exists and is not a directory")
    if p.is_dir() and marker is not None and any(p.iterdir()) and not (p / marker).exists():
        raise CommandError(f"{option} {p}: is a non-empty directory that this command did not write (no {marker} "
                           "in it); refusing to replace it: give a new directory name")
    probe_in = p if (p.is_dir() and marker is None) else _nearest_existing(p.parent)
    if not probe_in.is_dir():
        raise CommandError(f"{option} {p}: {probe_in} is not a directory")
    try:
        probe_writable(probe_in, p.name)
    except OSError as exc:
        raise CommandError(f"{option} {p}: cannot write in {probe_in} ({exc.strerror or exc})") from None
    return p


def fallback_path(path: str | os.PathLike) -> Path:
    """Where a result goes when its own path failed: the temp folder, with the name and a timestamp."""
    p = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(tempfile.gettempdir()) / f"pymfn-{stamp}-{os.getpid()}-{p.name or 'result'}"


def save_output(path: str | os.PathLike, write: Callable[[Path], None], option: str, prog: str) -> Path | None:
    """Call ``write(path)``; if it fails, ``write(fallback)`` and tell the user. Returns where it went.

    Never raises for a write failure: by the time results are written the measurement is done, and an
    exception here would throw it away.
    """
    try:
        write(Path(path))
        return Path(path)
    except Exception as exc:  # noqa: BLE001 - any failure to write must not lose the result
        alt = fallback_path(path)
        try:
            write(alt)
        except Exception as exc2:  # noqa: BLE001
            print(f"{prog}: warning: {option} {path}: could not write ({one_line(exc)}); the fallback {alt} failed "
                  f"too ({one_line(exc2)}); the results above are all there is", file=sys.stderr)
            return None
        print(f"{prog}: warning: {option} {path}: could not write ({one_line(exc)}); saved to {alt} instead",
              file=sys.stderr)
        return alt

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
import re
import signal
import sys
import threading
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


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def _escaped(chars: str) -> str:
    return "".join({"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c, f"\\x{ord(c):02x}") for c in chars)


def escape_user_text(text: str, argv: list[str] | None = None) -> str:
    """``text`` with the control characters that came from the command line written as escapes (repr-style).

    A path given as ``$'a\nb.npy'`` must stay one line in an error message and stay recognisable, so each
    control character of an argument is escaped wherever the message repeats it with the text around it in
    the same path component (``a\nb.npy``, or ``a\nb.bin`` derived from it). Line breaks of the message
    itself (multi-line native errors) are left to ``one_line``.
    """
    for arg in (sys.argv[1:] if argv is None else argv):
        for m in _CONTROL.finditer(arg):
            left = arg[:m.start()].rsplit("/", 1)[-1]
            right = arg[m.end():].split("/", 1)[0]
            ctrl = m.group()
            anchors = [left + ctrl + right, left + ctrl if left else "", ctrl + right if right else ""]
            for anchor in sorted({a for a in anchors if a}, key=len, reverse=True):
                text = text.replace(anchor, anchor.replace(ctrl, _escaped(ctrl)))
    return text


def one_line(exc: BaseException | str) -> str:
    """The exception's message squeezed onto one line (native and OpenVINO messages can span several);
    control characters from the command line (a path with a newline) are escaped first."""
    text = escape_user_text(str(exc)).strip()
    if isinstance(exc, KeyError) and text.startswith("'"):
        text = text.strip("'")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__ if isinstance(exc, BaseException) else ""
    joined = lines[0] if len(lines) == 1 else " | ".join(lines[:4]) + (" | ..." if len(lines) > 4 else "")
    return joined


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, delivered like Ctrl-C: runs stop, partial results are saved, temps are removed."""


_stop_signal = signal.SIGINT  # the signal that interrupted the command (decides the exit status)


def _terminate(signum: int, _frame: object) -> None:
    global _stop_signal
    _stop_signal = signal.Signals(signum)
    raise Terminated(f"terminated by {signal.Signals(signum).name}")


def _install_stop_handlers() -> list[tuple[int, object]]:
    """SIGTERM/SIGHUP raise ``Terminated`` where they would kill the process (default handler, main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return []
    previous = []
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is signal.SIG_DFL:
            previous.append((sig, signal.signal(sig, _terminate)))
    return previous


def _interrupted_status() -> int:
    return EXIT_INTERRUPTED if _stop_signal == signal.SIGINT else 128 + int(_stop_signal)


def interrupted_exit(prog: str, saved: str) -> int:
    """After Ctrl-C (or SIGTERM/SIGHUP) stopped a measurement whose partial result was reported: one stderr
    line, exit 130 (128 + the signal for the others)."""
    how = "interrupted" if _stop_signal == signal.SIGINT else f"terminated by {signal.Signals(_stop_signal).name}"
    print(f"{prog}: {how}; {saved}", file=sys.stderr)
    return _interrupted_status()


def run_command(prog: str, body: Callable[[], int | None], debug: bool = False) -> int:
    """Run ``body`` and map failures to one stderr line and an exit code (tracebacks only on request)."""
    previous = _install_stop_handlers()
    try:
        return _run_body(prog, body, debug)
    finally:
        for sig, handler in previous:
            signal.signal(sig, handler)


def _run_body(prog: str, body: Callable[[], int | None], debug: bool) -> int:
    try:
        return int(body() or 0)
    except SystemExit as exc:
        # argparse and `raise SystemExit("message")` in command bodies: keep one line, prefix the program.
        if isinstance(exc.code, str):
            print(f"{prog}: error: {one_line(exc.code)}", file=sys.stderr)
            return EXIT_ERROR
        return int(exc.code or 0)
    except KeyboardInterrupt as exc:
        print(f"{prog}: {exc if isinstance(exc, Terminated) else 'interrupted'}", file=sys.stderr)
        return _interrupted_status()
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

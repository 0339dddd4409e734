"""How every pymfn command fails: one line on stderr, an exit status, tracebacks only on request.

``run_command`` runs a command's body and turns any exception into ``<prog>: error: <message>`` and a non-zero
exit (1 for input/environment problems, 3 for a bug, 130 for Ctrl-C, 128+N for SIGTERM/SIGHUP). The traceback
is printed only with ``--debug`` or ``PYMFN_DEBUG=1``. Output paths are checked before the work and results are
saved so that nothing measured is lost: see ``pymfn.files.outputs``.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import traceback
from typing import Callable

from pymfn.errors import (
    DEBUG_ENV,
    CommandError,
    debug_enabled,
    one_line,
    set_program_name,
)

# Exit codes: 1 = the command failed on its input or environment; 2 = argparse usage error (argparse's own);
# 3 = an unexpected internal error (a bug: the message says so); 130 = interrupted.
EXIT_ERROR = 1


EXIT_INTERNAL = 3


EXIT_INTERRUPTED = 130


def _is_user_error(exc: BaseException) -> bool:
    """Errors about the input, the arguments or the environment, as opposed to bugs in pymfn."""
    if isinstance(exc, (CommandError, OSError, ValueError, EOFError, MemoryError)):
        return True
    # Native typed errors (pymfn._core.Error and subclasses derive from RuntimeError) and OpenVINO's
    # model-reading errors are about the model or data the user gave.
    if isinstance(exc, RuntimeError):
        return True
    return False


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, delivered like Ctrl-C: runs stop, partial results are saved, temps are removed."""


_stop_signal = signal.SIGINT  # the signal that interrupted the command (decides the exit status)


def _terminate(signum: int, _frame: object) -> None:
    global _stop_signal
    _stop_signal = signal.Signals(signum)
    raise Terminated(f"terminated by {signal.Signals(signum).name}")


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _install_stop_handlers(previous: list[tuple[int, object]]) -> None:
    """SIGTERM/SIGHUP raise ``Terminated`` where they would kill the process (default handler, main thread).
    The signals stay blocked while the handlers change, so one that arrives meanwhile is raised when they are
    unblocked -- here, inside the caller's handling of ``Terminated`` -- and never from within the change."""
    if threading.current_thread() is not threading.main_thread():
        return
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        for sig in _STOP_SIGNALS:
            if signal.getsignal(sig) is signal.SIG_DFL:
                previous.append((sig, signal.signal(sig, _terminate)))
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _restore_handlers(previous: list[tuple[int, object]]) -> None:
    """Back to the handlers before ``run_command``; a signal arriving meanwhile then takes its default action."""
    if not previous:
        return
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        for sig, handler in previous:
            signal.signal(sig, handler)  # type: ignore[arg-type]
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


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
    set_program_name(prog)
    previous: list[tuple[int, object]] = []

    def guarded() -> int | None:
        _install_stop_handlers(previous)  # inside _run_body: a SIGTERM from here on is one line and exit 143
        return body()

    try:
        return _run_body(prog, guarded, debug)
    finally:
        _restore_handlers(previous)


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


class DefaultsFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" only where the help text does not already explain the default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or action.default in (None, False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)

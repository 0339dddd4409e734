"""The user-facing error type of the library and how any error reads as one line."""
from __future__ import annotations

import os
import re
import sys

DEBUG_ENV = "PYMFN_DEBUG"


class CommandError(Exception):
    """A user-facing failure whose message is complete as it stands (no type name is added)."""


def debug_enabled(flag: bool = False) -> bool:
    return bool(flag) or os.environ.get(DEBUG_ENV, "") not in ("", "0")


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


_program = "pymfn"


def program_name() -> str:
    """How messages name the running command (``pymfn image2bin``, ``pymfn bench latency``); set by the CLI."""
    return _program


def set_program_name(name: str) -> None:
    global _program
    _program = name

"""Read input files without ever blocking on a FIFO or reading more than the caller expects.

``Path.read_bytes`` on a FIFO named ``a.jpg`` waits forever for a writer, and on ``/dev/zero`` (or a
symlink to it) never ends. Here the file is opened with ``O_NONBLOCK`` (which makes opening a FIFO return
at once) and checked with ``fstat`` on the open descriptor, so the check and the read concern the same
file even if the name is swapped in between. Only regular files are read; their size is checked against
the caller's bound before a byte is read.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path


class InputFileError(ValueError):
    """An input path that is not a readable regular file of an acceptable size; the message names it."""

    def __init__(self, path: str | os.PathLike, message: str) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: {message}")


def file_kind(mode: int) -> str:
    """A short name for a non-regular file type, for error messages."""
    for test, name in ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO (named pipe)"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISSOCK, "socket"), (stat.S_ISLNK, "symbolic link")):
        if test(mode):
            return name
    return "special file"


def _with_message(exc: OSError, message: str) -> OSError:
    """The same kind of OSError (FileNotFoundError, PermissionError, ...) with our one-line message."""
    new = type(exc)(message)
    new.errno = exc.errno
    return new


def read_regular_file(path: str | os.PathLike, what: str = "a file", *, max_bytes: int | None = None,
                      exact_bytes: int | None = None) -> bytes:
    """The whole content of regular file ``path``.

    Raises ``InputFileError`` for a FIFO, device, socket or directory, for a size above ``max_bytes``
    or different from ``exact_bytes``, and for a file that shrinks while it is read; ``OSError`` (with the
    path in the message) when it cannot be opened. ``what`` says what the file should be, with its
    article ("an image file", "a float32 (112, 112, 3) sample").
    """
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise type(exc)(exc.errno, f"{p}: cannot open ({exc.strerror or exc}); expected {what}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputFileError(p, f"is a {file_kind(st.st_mode)}, not a regular file ({what} expected)")
        size = st.st_size
        if exact_bytes is not None and size != exact_bytes:
            raise InputFileError(p, f"file is {size} bytes but {what} is {exact_bytes} bytes")
        if max_bytes is not None and size > max_bytes:
            raise InputFileError(p, f"file is {size} bytes, more than {what} can be ({max_bytes} bytes at most)")
        chunks = []
        left = size
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 24))
            if not chunk:
                raise InputFileError(p, f"file shrank while it was read ({size - left} of {size} bytes)")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    except OSError as exc:
        if str(p) in str(exc):
            raise
        raise _with_message(exc, f"{p}: cannot read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)

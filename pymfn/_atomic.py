"""Atomic file writes: write next to the target, fsync, then rename, so a crash never leaves half a file.

Temp names carry the writer's identity: ``.<target>.pymfn-<pid>-<start>-<token>.tmp``, where ``start`` is
the process start time (``/proc/<pid>/stat``, clock ticks since boot). A ``kill -9`` cannot run cleanup
code, so the *next* writer into the same target does it: ``remove_stale_temps`` deletes the temps whose
writer is gone (no such pid, or the pid now belongs to a process started at another time) and leaves the
temps of live writers alone.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import secrets
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import: os.umask can only be read by setting it, and doing that per call would briefly
# give files other threads create in that window a umask of 0.
_UMASK = _read_umask()
FILE_MODE = 0o666 & ~_UMASK
DIR_MODE = 0o777 & ~_UMASK

_TEMP_RE = re.compile(r"^\.(?P<target>.+)\.pymfn-(?P<pid>\d+)-(?P<start>\d+)-(?P<token>[0-9a-f]+)\.tmp$")


def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or None if there is no such process.

    Returns 0 on systems without ``/proc`` when the pid exists (liveness then cannot detect pid reuse).
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        # No /proc, or /proc mounted with hidepid: fall back to "the pid exists" (start time unknown)
        return 0 if _pid_exists(pid) else None
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
    fields = stat[stat.rfind(b")") + 2:].split()
    try:
        return int(fields[19])  # field 22 of proc(5); fields[0] is field 3
    except (IndexError, ValueError):
        return None


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _my_identity() -> tuple[int, int]:
    pid = os.getpid()  # per call: a forked child must not reuse its parent's identity
    return pid, process_start_time(pid) or 0


def temp_path(target: str | os.PathLike) -> Path:
    """A fresh temp name beside ``target`` that names this process (not created)."""
    target = Path(target)
    pid, start = _my_identity()
    return target.with_name(f".{target.name}.pymfn-{pid}-{start}-{secrets.token_hex(4)}.tmp")


def create_temp_file(target: str | os.PathLike) -> tuple[int, Path]:
    """Create (O_EXCL, mode 0600) a temp file beside ``target``; returns (fd, path)."""
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = temp_path(target)
        try:
            return os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600), tmp
        except FileExistsError:  # a 32-bit token collided: draw another
            continue


def create_temp_dir(target: str | os.PathLike) -> Path:
    """Create (mode 0700) a temp directory beside ``target``."""
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = temp_path(target)
        try:
            os.mkdir(tmp, 0o700)
            return tmp
        except FileExistsError:
            continue


def remove_path(path: Path) -> None:
    """Delete a file, symlink or directory tree; missing is fine."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@dataclass(frozen=True)
class StaleTemp:
    path: Path
    pid: int
    bytes: int


def _tree_bytes(path: Path) -> int:
    try:
        if path.is_dir() and not path.is_symlink():
            return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
        return path.lstat().st_size
    except OSError:
        return 0


def _writer_alive(pid: int, start: int) -> bool:
    now = process_start_time(pid)
    return now is not None and (start == 0 or now == 0 or now == start)


def stale_temps(targets: Iterable[str | os.PathLike]) -> list[StaleTemp]:
    """Temps beside ``targets`` (and for exactly those names) whose writing process no longer runs."""
    by_dir: dict[Path, set[str]] = {}
    for t in targets:
        t = Path(t)
        by_dir.setdefault(t.parent, set()).add(t.name)
    found = []
    for folder, names in by_dir.items():
        try:
            entries = [e.name for e in os.scandir(folder) if e.name.startswith(".") and e.name.endswith(".tmp")]
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name in entries:
            m = _TEMP_RE.match(name)
            if m is None or m["target"] not in names:
                continue
            pid, start = int(m["pid"]), int(m["start"])
            if _writer_alive(pid, start):
                continue
            path = folder / name
            found.append(StaleTemp(path, pid, _tree_bytes(path)))
    return found


def remove_stale_temps(targets: Iterable[str | os.PathLike], prog: str | None = None) -> list[StaleTemp]:
    """Delete the temps dead writers left beside ``targets``; with ``prog``, say so in one stderr line."""
    stale = stale_temps(targets)
    for s in stale:
        remove_path(s.path)
    if stale and prog:
        total = sum(s.bytes for s in stale)
        names = ", ".join(s.path.name for s in stale[:3]) + (f" and {len(stale) - 3} more" if len(stale) > 3 else "")
        pids = ", ".join(sorted({str(s.pid) for s in stale}))
        print(f"{prog}: removed {len(stale)} stale temp output(s) of dead process(es) {pids} in "
              f"{stale[0].path.parent}: {names} ({total / 1e6:.1f} MB)", file=sys.stderr)
    return stale


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[BinaryIO]:
    """Open a temp file beside ``path``; on clean exit rename it over ``path``, on error delete it."""
    path = Path(path)
    fd, tmp = create_temp_file(path)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)  # the temp is created 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange_paths(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Atomically swap two existing paths (Linux ``renameat2(RENAME_EXCHANGE)``).

    Returns False when the system or file system cannot do it (the caller then falls back to two renames).
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, f"cannot swap {a} and {b} ({os.strerror(err)})")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Build a directory under a temp name beside ``path``; put it into place on success.

    An existing ``path`` is replaced only after the new one is complete: on Linux the two are swapped in
    one step (``path`` always names a complete old or new tree); the old tree then sits under this
    process's temp name until it is deleted, so a kill at that point leaves a stale temp that the next
    writer removes. An existing ``path`` that is not a directory is an error, never replaced.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path}: exists and is not a directory; refusing to replace it with one")
    tmp = create_temp_dir(path)
    try:
        yield tmp
        os.chmod(tmp, DIR_MODE)  # created 0700
        if path.exists():
            if exchange_paths(tmp, path):
                remove_path(tmp)  # now holds the old tree
            else:
                old = temp_path(path)
                os.replace(path, old)
                try:
                    os.replace(tmp, path)
                except BaseException:
                    os.replace(old, path)
                    raise
                remove_path(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        remove_path(tmp)
        raise

"""One output transaction for everything pymfn writes: a crash, a kill or a full disk never leaves half a
file, a set of files that do not belong together, or a temp that nothing removes.

Every writer goes through ``Transaction`` (``atomic_write`` and ``atomic_dir`` are one-target shortcuts):

* **Temps** sit beside their target as ``.<target>.pymfn-<pid>-<start>-<token>.tmp`` (``start`` is the
  writer's start time, ``/proc/<pid>/stat`` field 22, so a reused pid is not mistaken for the writer).
  Files, folders and scratch folders of tools all use this one pattern.
* **A lock per target** (``.<target>.pymfn.lock``, ``flock``; removed when released) serialises writers
  of one name: a command that takes minutes refuses a second writer at once with one line naming the
  holder, a report or cache write waits its turn. Holding the lock makes cleanup exact: every temp of a
  locked name that is not this process's is left by a writer that is gone, and is removed with one
  line on stderr saying what went.
* **Sets commit as one unit.** The new files are complete (and fsynced) under temp names before anything
  is replaced. A set of several files first writes a commit journal (``.<primary>.pymfn-commit.json``,
  itself written atomically) listing every rename by inode, then renames (data first, the binding
  record last), then deletes the journal. A writer killed after the journal is durable leaves a commit
  that the next writer into the same target completes (renames are idempotent by inode), so a target
  is always the complete old set or, once completed, the complete new set; until then the record is the
  old one and a reader that checks it rejects the set.
* **Inputs are never outputs**: ``refuse_overlap`` fails when an output resolves to an input (also via a
  hard link or symbolic link), lies inside an input folder, or is a folder holding an input.
* **Write failures name the target**: ENOSPC, quota, file-size limits, permission and read-only errors —
  and tool errors such as ``basic_ios::clear`` or numpy's "N requested and M written" raised when the
  file system is full — become one ``OutputError`` line naming the output as the user typed it.
* **JSON is strict**: ``json_bytes`` never writes NaN or Infinity; a non-finite number becomes ``null``
  and the reason is recorded under ``"null_reasons"``.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import math
import os
import re
import secrets
import shutil
import stat
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import IO, Any, Literal

from pymfn.errors import program_name

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Linux
    fcntl = None  # type: ignore[assignment]


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
LOCK_SUFFIX = ".pymfn.lock"
JOURNAL_SUFFIX = ".pymfn-commit.json"
JOURNAL_FORMAT = "pymfn-commit/1"

# How long a writer that did not take its lock up front waits for another writer of the same target.
DEFAULT_WAIT_S = 120.0
# Below this many free bytes a write failure without an errno (a tool's own message) is reported as a
# full file system.
NEARLY_FULL_BYTES = 1 << 20


class OutputError(OSError):
    """A write that cannot happen or failed; the message names the output and is complete as it stands."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(code, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class OutputBusyError(OutputError):
    """Another process holds the lock of the target."""


# ---------------------------------------------------------------- process identity and temp names

def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or None if there is no such process.

    Returns 0 on systems without ``/proc`` when the pid exists (liveness then cannot detect pid reuse).
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat_line = f.read()
    except FileNotFoundError:
        # No /proc, or /proc mounted with hidepid: fall back to "the pid exists" (start time unknown)
        return 0 if _pid_exists(pid) else None
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
    fields = stat_line[stat_line.rfind(b")") + 2:].split()
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
    except OverflowError:
        return False
    return True


def _my_identity() -> tuple[int, int]:
    pid = os.getpid()  # per call: a forked child must not reuse its parent's identity
    return pid, process_start_time(pid) or 0


def temp_path(target: str | os.PathLike) -> Path:
    """A fresh temp name beside ``target`` that names this process (not created)."""
    target = Path(target)
    pid, start = _my_identity()
    return target.with_name(f".{target.name}.pymfn-{pid}-{start}-{secrets.token_hex(4)}.tmp")


def lock_path(target: str | os.PathLike) -> Path:
    target = Path(target)
    return target.with_name(f".{target.name}{LOCK_SUFFIX}")


def journal_path(primary: str | os.PathLike) -> Path:
    primary = Path(primary)
    return primary.with_name(f".{primary.name}{JOURNAL_SUFFIX}")


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


def probe_writable(folder: str | os.PathLike, target_name: str) -> None:
    """Create and remove one temp beside ``folder/target_name`` (what a write will need); raises OSError."""
    fd, tmp = create_temp_file(Path(folder) / target_name)
    os.close(fd)
    with contextlib.suppress(FileNotFoundError):  # a cleanup by the target's lock holder may have taken it
        os.unlink(tmp)


def remove_path(path: Path) -> None:
    """Delete a file, symlink or directory tree; missing is fine."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _fsync_path(path: Path) -> None:
    """fsync a file or a directory by name (best effort on file systems that cannot)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EROFS, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _default_prog() -> str:
    """The running command as a user would name it: ``pymfn image2bin``, ``pymfn bench latency``, ..."""
    return program_name()


# ---------------------------------------------------------------- stale temps

@dataclass(frozen=True)
class StaleTemp:
    path: Path
    pid: int
    bytes: int
    dead: bool = True


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


def _journal_referenced(folder: Path) -> set[str]:
    """Temp names (in ``folder``) that a pending commit journal still needs."""
    names: set[str] = set()
    try:
        journals = [e.name for e in os.scandir(folder) if e.name.endswith(JOURNAL_SUFFIX)]
    except OSError:
        return names
    for j in journals:
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError, AttributeError):
            doc = json.loads((folder / j).read_bytes())
            for op in doc["ops"]:
                if op.get("tmp"):
                    p = Path(folder, op["tmp"])
                    if p.parent.resolve() == folder.resolve():
                        names.add(p.name)
    return names


def _scan_temps(targets: Iterable[str | os.PathLike], locked: bool) -> list[StaleTemp]:
    """Temps of exactly the names in ``targets`` whose writer is gone.

    ``locked``: the caller holds the targets' locks, so any temp of those names that is not this
    process's belongs to a writer that stopped writing (a live writer would hold the lock).
    """
    by_dir: dict[Path, set[str]] = {}
    for t in targets:
        t = Path(t)
        by_dir.setdefault(t.parent, set()).add(t.name)
    me = _my_identity()
    found = []
    for folder, names in by_dir.items():
        try:
            entries = [e.name for e in os.scandir(folder) if e.name.startswith(".") and e.name.endswith(".tmp")]
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        keep = _journal_referenced(folder) if entries else set()
        for name in entries:
            m = _TEMP_RE.match(name)
            if m is None or m["target"] not in names or name in keep:
                continue
            pid, start = int(m["pid"]), int(m["start"])
            if (pid, start) == me:
                continue  # this process's own (a transaction in progress)
            alive = _writer_alive(pid, start)
            if alive and not locked:
                continue
            path = folder / name
            found.append(StaleTemp(path, pid, _tree_bytes(path), dead=not alive))
    return found


def stale_temps(targets: Iterable[str | os.PathLike]) -> list[StaleTemp]:
    """Temps beside ``targets`` (and for exactly those names) whose writing process no longer runs."""
    return _scan_temps(targets, locked=False)


def _say_removed(stale: Sequence[StaleTemp], prog: str | None) -> None:
    if not stale or prog is None:
        return
    total = sum(s.bytes for s in stale)
    names = ", ".join(s.path.name for s in stale[:3]) + (f" and {len(stale) - 3} more" if len(stale) > 3 else "")
    pids = ", ".join(sorted({str(s.pid) for s in stale}))
    whose = "dead process(es)" if all(s.dead for s in stale) else "process(es) no longer writing them"
    folders = sorted({str(s.path.parent) for s in stale})
    print(f"{prog}: removed {len(stale)} stale temp output(s) of {whose} {pids} in {', '.join(folders)}: {names} "
          f"({total / 1e6:.1f} MB)", file=sys.stderr)


def remove_stale_temps(targets: Iterable[str | os.PathLike], prog: str | None = None) -> list[StaleTemp]:
    """Delete the temps dead writers left beside ``targets``; with ``prog``, say so in one stderr line."""
    stale = stale_temps(targets)
    for s in stale:
        remove_path(s.path)
    _say_removed(stale, prog)
    return stale


# ---------------------------------------------------------------- locks

@dataclass
class _Held:
    fd: int | None  # None: the file system cannot lock; the write proceeds unlocked
    lock: Path
    label: str
    owner: int
    count: int = 1


_held: dict[str, _Held] = {}
_held_guard = threading.Lock()


def _key(target: Path) -> str:
    return os.path.join(os.path.realpath(target.parent), target.name)


def describe(target: str | os.PathLike) -> str:
    """How messages name ``target``: the label its lock holder gave (the option as typed), else the path.

    A file inside another output's temp or scratch folder is named as that output (a checkpoint written
    into the scratch folder of ``--out m.pb`` fails as ``--out m.pb``).
    """
    target = Path(target)
    for folder in target.parents:
        m = _TEMP_RE.match(folder.name)
        if m is not None:
            return describe(folder.parent / m["target"])
    held = _held.get(_key(target))
    return held.label if held is not None else str(target)


def _holder_text(lock: Path) -> str:
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int(lock.read_text().split()[0])
        return f" (pid {pid})"
    return ""


def _flock_unsupported(exc: OSError) -> bool:
    return exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


def _acquire(target: Path, label: str, wait: float) -> _Held:
    lock = lock_path(target)
    deadline = time.monotonic() + max(0.0, wait)
    delay = 0.02
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
        except PermissionError:
            try:  # another user's lock file: reading is enough to lock it
                fd = os.open(lock, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except OSError as exc:
                raise OutputError(f"{label}: cannot write in {target.parent} ({exc.strerror or exc})",
                                  exc.errno or 0) from None
        except OSError as exc:
            raise OutputError(f"{label}: cannot write in {target.parent} ({exc.strerror or exc})",
                              exc.errno or 0) from None
        if fcntl is None:
            return _Held(fd, lock, label, threading.get_ident())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                raise OutputBusyError(f"{label}: another pymfn process{_holder_text(lock)} is writing it; wait "
                                      "for it to finish or choose another output", errno.EBUSY) from None
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
            continue
        except OSError as exc:
            if _flock_unsupported(exc):
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(lock)
                return _Held(None, lock, label, threading.get_ident())
            os.close(fd)
            raise
        # The previous holder unlinks the lock file before releasing it: make sure this is still the file
        # at that name, or two processes could each hold "the" lock (one on a deleted file).
        try:
            now = os.stat(lock)
        except FileNotFoundError:
            os.close(fd)
            continue
        mine = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (mine.st_dev, mine.st_ino):
            os.close(fd)
            continue
        with contextlib.suppress(OSError):
            pid, start = _my_identity()
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{pid} {start}\n".encode(), 0)
        return _Held(fd, lock, label, threading.get_ident())


def _release(held: _Held) -> None:
    if held.fd is None:
        return
    try:
        os.unlink(held.lock)  # before unlocking: see _acquire
    except OSError:
        pass
    finally:
        os.close(held.fd)


@contextlib.contextmanager
def hold(targets: Iterable[str | os.PathLike], *, option: str | None = None, wait: float = 0.0,
         prog: str | None = None, labels: Mapping[str | os.PathLike, str] | None = None) -> Iterator[None]:
    """Lock ``targets`` for this thread (re-entrant), complete an interrupted commit into them and remove
    the temps earlier writers left beside them (one stderr line says what went).

    Commands take this before any long work, so a second writer of the same output is refused at once
    (``wait=0``) with one line naming the first; library writers take it through ``Transaction`` and
    wait up to ``wait`` seconds. ``option`` names the outputs in messages (``--json out.json``); the first
    target is the primary, the others are named as its companions.
    """
    paths = [Path(t) for t in targets]
    if not paths:
        yield
        return
    prog = prog or _default_prog()
    primary = paths[0]
    given = {_key(Path(k)): v for k, v in (labels or {}).items()}

    def label_of(p: Path) -> str:
        if _key(p) in given:
            return given[_key(p)]
        base = f"{option} {primary}" if option else str(primary)
        return base if _key(p) == _key(primary) else f"{base} ({p.name})"

    created_dirs = _make_parents(paths, label_of)
    acquired: list[tuple[str, _Held]] = []
    fresh: list[Path] = []
    me = threading.get_ident()
    try:
        unique = {_key(p): p for p in reversed(paths)}  # one entry per file, as first named
        for k in sorted(unique):
            p = unique[k]
            with _held_guard:
                held = _held.get(k)
                if held is not None and held.owner == me:
                    held.count += 1
                    acquired.append((k, held))
                    continue
            new = _acquire(p, label_of(p), wait)
            with _held_guard:
                _held[k] = new
            acquired.append((k, new))
            fresh.append(p)
        if fresh:
            _recover(fresh, prog)
            stale = _scan_temps(fresh + [journal_path(p) for p in fresh], locked=True)
            for s in stale:
                remove_path(s.path)
            _say_removed(stale, prog)
        yield
    finally:
        failure: BaseException | None = None
        for k, held in reversed(acquired):
            with _held_guard:
                held.count -= 1
                last = held.count == 0
                if last:
                    _held.pop(k, None)
            if last:
                try:
                    _release(held)
                except BaseException as exc:  # release the others first
                    failure = failure or exc
        if failure is not None:
            raise failure
        for d in reversed(created_dirs):
            with contextlib.suppress(OSError):
                d.rmdir()  # only if nothing was written into it


def _make_parents(paths: Sequence[Path], label_of: Any) -> list[Path]:
    """Create missing parent folders; returns those created (outermost first)."""
    created: list[Path] = []
    for p in paths:
        missing = []
        parent = p.parent
        while not os.path.lexists(parent) and parent != parent.parent:
            missing.append(parent)
            parent = parent.parent
        if not parent.is_dir():
            raise OutputError(f"{label_of(p)}: {parent} is not a folder", errno.ENOTDIR)
        for d in reversed(missing):
            try:
                d.mkdir()
                created.append(d)
            except FileExistsError:
                pass
            except OSError as exc:
                raise OutputError(f"{label_of(p)}: cannot create the folder {d} ({exc.strerror or exc})",
                                  exc.errno or 0) from None
    return created


# ---------------------------------------------------------------- commit journal

def _ino(path: Path) -> int | None:
    try:
        return os.lstat(path).st_ino
    except (FileNotFoundError, NotADirectoryError):
        return None


def _put(tmp: Path, final: Path, ino: int, is_dir: bool) -> bool:
    """Move the new ``tmp`` (identified by inode) to ``final``; idempotent. False if it is lost."""
    if _ino(final) == ino:  # done already; after a swap ``tmp`` holds the old tree
        if _ino(tmp) is not None:
            remove_path(tmp)
        return True
    if _ino(tmp) != ino:
        return False
    if is_dir and os.path.lexists(final):
        if exchange_paths(tmp, final):
            remove_path(tmp)
            return True
        old = temp_path(final)  # a temp name: if killed right here, the next cleanup removes the old tree
        os.replace(final, old)
        os.replace(tmp, final)
        remove_path(old)
        return True
    os.replace(tmp, final)
    return True


def _apply(base: Path, ops: list[dict]) -> list[str]:
    """Carry out a journal's steps in order; returns the finals whose new version was lost."""
    lost = []
    for op in ops:
        final = base / op["final"]
        if op["op"] == "put":
            if not _put(base / op["tmp"], final, int(op["ino"]), bool(op.get("dir"))):
                lost.append(op["final"])
        elif op["op"] == "delete":
            remove_path(final)
    for folder in {(base / op["final"]).parent for op in ops}:
        _fsync_path(folder)
    return lost


def _valid_ops(base: Path, ops: Any) -> bool:
    if not isinstance(ops, list):
        return False
    for op in ops:
        if not isinstance(op, dict) or op.get("op") not in ("put", "delete") or not isinstance(op.get("final"), str):
            return False
        if op["op"] == "put":
            tmp, final = Path(base, str(op.get("tmp"))), Path(base, op["final"])
            m = _TEMP_RE.match(tmp.name)
            if m is None or m["target"] != final.name or tmp.parent != final.parent or not isinstance(op.get("ino"), int):
                return False
    return True


def _recover(targets: Sequence[Path], prog: str | None) -> None:
    """Complete the interrupted commits whose journal sits beside one of ``targets`` (held by the caller)."""
    for t in targets:
        j = journal_path(t)
        try:
            raw = j.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            raise OutputError(f"{describe(t)}: cannot read the commit journal {j} ({exc.strerror or exc})") from None
        try:
            doc = json.loads(raw)
            ok = isinstance(doc, dict) and doc.get("format") == JOURNAL_FORMAT and _valid_ops(t.parent, doc["ops"])
        except (ValueError, KeyError):
            ok = False
        if not ok:
            raise OutputError(f"{describe(t)}: {j} is not a pymfn commit journal; remove it and rerun")
        lost = _apply(t.parent, doc["ops"])
        j.unlink()
        _fsync_path(t.parent)
        if prog is not None:
            what = f"; {len(lost)} file(s) of it were gone: {', '.join(lost)}" if lost else ""
            print(f"{prog}: completed the commit of {t.name} that process {doc.get('pid', '?')} was killed in"
                  f"{what}", file=sys.stderr)


def interrupted_commit(path: str | os.PathLike) -> Path | None:
    """The journal of an interrupted commit into ``path``'s set, if one is pending (for readers' messages)."""
    j = journal_path(path)
    return j if j.exists() else None


def complete_interrupted(path: str | os.PathLike, prog: str | None = None, wait: float = DEFAULT_WAIT_S) -> bool:
    """Complete a pending commit into ``path`` now (takes the lock); True if there was one."""
    j = interrupted_commit(path)
    if j is None:
        return False
    members = [Path(path)]
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        members += [Path(path).parent / op["final"] for op in json.loads(j.read_bytes())["ops"]]
    with hold(members, wait=wait, prog=prog):  # the whole set: its lock files go too
        pass
    return True


# ---------------------------------------------------------------- write failures

_NO_SPACE = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
             errno.EFBIG: "file too large: the file size limit was reached"}
_DENIED = {errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
           errno.EROFS: "read-only file system"}


# How writers without an errno say a write failed: numpy's tofile, C++ streams (OpenVINO), TensorFlow.
_TOOL_WRITE_FAILURE = re.compile(r"requested and \d+ written|iostream error|[Ff]ailed to (write|flush|open .* for writ)|"
                                 r"[Ww]rite failed|[Cc]ould not write|short write")


def _outside_temps(folder: Path) -> Path:
    """``folder``, or the folder holding the outermost temp/scratch folder it lies in."""
    for parent in [folder, *folder.parents]:
        if _TEMP_RE.match(parent.name):
            folder = parent.parent
    return folder


def free_bytes(folder: Path) -> int | None:
    with contextlib.suppress(OSError):
        st = os.statvfs(folder)
        return st.f_bavail * st.f_frsize
    return None


def _related(exc: BaseException, folders: Iterable[Path]) -> bool:
    """Is the errno error about a path in one of ``folders`` (the outputs' folders)?"""
    names = [getattr(exc, "filename", None), getattr(exc, "filename2", None)]
    real = {os.path.realpath(f) for f in folders}
    for n in names:
        if n is None:
            continue
        with contextlib.suppress(TypeError, ValueError):
            p = os.fsdecode(n) if isinstance(n, (bytes, os.PathLike)) else str(n)
            if os.path.realpath(os.path.dirname(os.path.abspath(p))) in real or os.path.realpath(p) in real:
                return True
    return False


def write_failure(exc: BaseException, label: str, folders: Sequence[Path], free: int | None) -> OutputError | None:
    """``exc`` as one line naming the output ``label``, when it is a failure to write; else None.

    ``free`` is the free space of the output's file system measured when the failure happened (before
    the partial output was removed).
    """
    if isinstance(exc, OutputError):
        return None
    code = getattr(exc, "errno", None)
    text = str(exc)
    where = _outside_temps(folders[0]) if folders else Path(".")
    if code in _NO_SPACE or "No space left on device" in text or "[Errno 28]" in text:
        reason = _NO_SPACE.get(code, "no space left on device") if isinstance(code, int) else "no space left on device"
        return OutputError(f"{label}: cannot write ({reason} in {where}); nothing was replaced",
                           code or errno.ENOSPC)
    if code in _DENIED and isinstance(exc, OSError) and _related(exc, folders):
        return OutputError(f"{label}: cannot write ({_DENIED[code]} in {where}); nothing was replaced", code)
    if code is None and isinstance(exc, (OSError, RuntimeError)):
        detail = " ".join(text.split())[:120]
        if free is not None and free < NEARLY_FULL_BYTES:
            return OutputError(f"{label}: cannot write (no space left on device in {where}: {free} bytes free; the "
                               f"writer said: {detail}); nothing was replaced", errno.ENOSPC)
        if _TOOL_WRITE_FAILURE.search(text):
            space = f"{free / 1e6:.1f} MB free in {where}" if free is not None else f"in {where}"
            return OutputError(f"{label}: cannot write ({space}; the writer said: {detail}); nothing was replaced",
                               errno.EIO)
    return None


# ---------------------------------------------------------------- inputs are not outputs

def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _inside(child: Path, parent: Path) -> bool:
    return child != parent and parent in child.parents


def refuse_overlap(outputs: Iterable[tuple[str, str | os.PathLike | None]],
                   inputs: Iterable[tuple[str, str | os.PathLike | None]]) -> None:
    """Fail when an output resolves to an input (same file also via links), lies inside an input folder,
    or is a folder holding an input; and when two outputs are the same file.

    Each item is ``(label, path)``: the label is how the user named it (``--json emb.npy``).
    """
    outs = [(label, Path(p)) for label, p in outputs if p is not None]
    ins = [(label, Path(p)) for label, p in inputs if p is not None]
    for i, (olabel, out) in enumerate(outs):
        o = _real(out)
        try:
            o_st = os.stat(out)
        except OSError:
            o_st = None
        for ilabel, inp in ins:
            if not os.path.lexists(inp):
                continue
            r = _real(inp)
            try:
                i_st = os.stat(inp)
            except OSError:
                i_st = None
            same = o == r or (o_st is not None and i_st is not None and
                              (o_st.st_dev, o_st.st_ino) == (i_st.st_dev, i_st.st_ino))
            if same:
                raise OutputError(f"{olabel}: is also the input {ilabel}; writing it would destroy the input "
                                  "(choose another output)")
            if i_st is not None and stat.S_ISDIR(i_st.st_mode) and _inside(o, r):
                raise OutputError(f"{olabel}: lies inside the input {ilabel} (choose an output outside it)")
            if _inside(r, o):
                raise OutputError(f"{olabel}: holds the input {ilabel}; replacing it would delete the input "
                                  "(choose another output)")
        for olabel2, out2 in outs[i + 1:]:
            if _real(out2) == o:
                raise OutputError(f"{olabel2}: is also written as {olabel} (give two different outputs)")


# ---------------------------------------------------------------- strict JSON

def _finite_only(obj: Any, where: str, reasons: dict[str, str], given: Mapping[str, str]) -> Any:
    if isinstance(obj, float) or (hasattr(obj, "dtype") and getattr(obj, "shape", None) == () and
                                  getattr(obj.dtype, "kind", "") == "f"):
        value = float(obj)
        if math.isfinite(value):
            return value
        reasons[where] = given.get(where, f"not a finite number ({value}): the value is undefined for this input")
        return None
    if isinstance(obj, Mapping):
        return {k: _finite_only(v, f"{where}.{k}" if where else str(k), reasons, given) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_only(v, f"{where}[{i}]", reasons, given) for i, v in enumerate(obj)]
    return obj


def strict_json_doc(doc: Mapping[str, Any], reasons: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``doc`` with every non-finite number replaced by ``null``; each is explained under
    ``"null_reasons"`` (``{"auc": "..."}``; ``reasons`` gives the caller's own explanation by key path)."""
    found: dict[str, str] = {}
    clean = _finite_only(dict(doc), "", found, dict(reasons or {}))
    if found:
        merged = dict(clean.get("null_reasons") or {})
        merged.update(found)
        clean["null_reasons"] = merged
    return clean


def json_bytes(doc: Mapping[str, Any], reasons: Mapping[str, str] | None = None, indent: int | None = 2,
               sort_keys: bool = False) -> bytes:
    """Strict JSON (never NaN or Infinity) of ``doc``, newline-terminated."""
    return (json.dumps(strict_json_doc(doc, reasons), indent=indent, allow_nan=False, sort_keys=sort_keys)
            + "\n").encode()


# ---------------------------------------------------------------- the transaction

@dataclass
class _Op:
    op: str                      # "put" or "delete"
    final: Path
    tmp: Path | None = None
    is_dir: bool = False
    last: bool = False           # binding records: renamed after everything else
    synced: bool = False


@dataclass
class Transaction:
    """Write ``primary`` (and the files of its set, ``also``) under temp names; commit them as one unit.

    Use as a context manager. Inside, ask for a temp per output (``file``, ``open``, ``write_bytes``,
    ``dir``), or a ``scratch`` folder for tools that write several files and ``adopt`` what they made;
    ``discard`` deletes an old member the new set does not have; ``last=True`` marks the binding record.
    A clean exit commits (see the module docstring); an exception removes every temp and leaves the
    targets as they were; write failures are raised as one ``OutputError`` line naming the output.
    """

    primary: str | os.PathLike
    also: Sequence[str | os.PathLike] = ()
    dirs: Sequence[str | os.PathLike] = ()
    option: str | None = None
    wait: float = DEFAULT_WAIT_S
    prog: str | None = None
    _ops: list[_Op] = field(default_factory=list, init=False, repr=False)
    _scratch: list[Path] = field(default_factory=list, init=False, repr=False)
    _journaled: bool = field(default=False, init=False, repr=False)
    _free_at_failure: int | None = field(default=None, init=False, repr=False)
    _hold: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.primary = Path(self.primary)
        members = [self.primary] + [Path(p) for p in self.also]
        self.members: list[Path] = list(dict.fromkeys(members))
        self._dir_keys = {_key(Path(d)) for d in self.dirs}

    # ---- setup
    def __enter__(self) -> Transaction:
        self._hold = hold(self.members, option=self.option, wait=self.wait, prog=self.prog)
        self._hold.__enter__()
        try:
            for m in self.members:
                self._check_kind(m)
        except BaseException:
            self._hold.__exit__(*sys.exc_info())
            raise
        return self

    def _member(self, target: str | os.PathLike) -> Path:
        t = Path(target)
        if _key(t) not in {_key(m) for m in self.members}:
            raise ValueError(f"{t} is not an output of this transaction (outputs: {', '.join(map(str, self.members))})")
        return t

    def _check_kind(self, target: Path) -> None:
        want_dir = _key(target) in self._dir_keys
        if not os.path.lexists(target):
            return
        is_dir = target.is_dir() and not target.is_symlink()
        if want_dir and not is_dir:
            raise OutputError(f"{describe(target)}: exists and is not a folder; refusing to replace it with one")
        if not want_dir and is_dir:
            raise OutputError(f"{describe(target)}: is a folder; refusing to replace it with a file "
                              "(remove it or choose another output)")

    # ---- temps
    def file(self, target: str | os.PathLike) -> Path:
        """A new empty temp file for ``target`` (for writers that take a path); written before the commit."""
        t = self._member(target)
        fd, tmp = create_temp_file(t)
        os.close(fd)
        self._ops.append(_Op("put", t, tmp))
        return tmp

    @contextlib.contextmanager
    def open(self, target: str | os.PathLike, mode: str = "wb", last: bool = False) -> Iterator[IO[Any]]:
        t = self._member(target)
        fd, tmp = create_temp_file(t)
        op = _Op("put", t, tmp, last=last)
        self._ops.append(op)
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        op.synced = True

    def write_bytes(self, target: str | os.PathLike, data: bytes | str, last: bool = False) -> Path:
        with self.open(target, "wb", last=last) as f:
            f.write(data.encode() if isinstance(data, str) else data)
        return self._ops[-1].tmp  # type: ignore[return-value]

    def dir(self, target: str | os.PathLike) -> Path:
        """A new empty temp folder that becomes ``target`` (an existing one is swapped out whole)."""
        t = self._member(target)
        if _key(t) not in self._dir_keys:
            self._dir_keys.add(_key(t))
            self._check_kind(t)
        tmp = create_temp_dir(t)
        self._ops.append(_Op("put", t, tmp, is_dir=True))
        return tmp

    def scratch(self) -> Path:
        """A temp folder beside the primary for a tool's own files; removed when the transaction ends."""
        d = create_temp_dir(self.primary)
        self._scratch.append(d)
        return d

    def adopt(self, target: str | os.PathLike, produced: str | os.PathLike, last: bool = False) -> None:
        """A file a tool wrote (in a ``scratch`` folder) becomes ``target`` at the commit."""
        t = self._member(target)
        tmp = temp_path(t)
        os.replace(produced, tmp)
        self._ops.append(_Op("put", t, tmp, last=last))

    def discard(self, target: str | os.PathLike) -> None:
        """Delete ``target`` at the commit (a file of the old set that the new set does not have)."""
        t = self._member(target)
        self._ops.append(_Op("delete", t))

    def temp_of(self, target: str | os.PathLike) -> Path | None:
        """The temp that will become ``target`` (its latest), e.g. to hash what the record describes."""
        t = self._member(target)
        for op in reversed(self._ops):
            if op.op == "put" and _key(op.final) == _key(t):
                return op.tmp
        return None

    # ---- the end
    def __exit__(self, exc_type, exc, tb) -> Literal[False]:
        try:
            if exc_type is None:
                try:
                    self._commit()
                except BaseException as failure:
                    self._abandon()
                    self._raise_named(failure)
                    raise
            else:
                self._abandon()
                self._raise_named(exc)
            return False
        finally:
            for d in self._scratch:
                remove_path(d)
            h, self._hold = self._hold, None
            if h is not None:
                h.__exit__(None, None, None)

    def _folders(self) -> list[Path]:
        return list(dict.fromkeys(m.parent if str(m.parent) else Path(".") for m in self.members))

    def _raise_named(self, exc: BaseException) -> None:
        if not isinstance(exc, Exception):
            return
        named = write_failure(exc, describe(self.primary), self._folders(), self._free_at_failure)
        if named is not None:
            raise named from None

    def _abandon(self) -> None:
        self._free_at_failure = free_bytes(self._folders()[0])  # before the partial output is removed
        if self._journaled:
            return  # the journal needs the temps: the next writer completes the commit
        for op in self._ops:
            if op.tmp is not None:
                remove_path(op.tmp)

    def _commit(self) -> None:
        puts = [op for op in self._ops if op.op == "put"]
        # the latest temp per target wins (a writer may have started over); earlier ones are dropped
        latest: dict[str, _Op] = {}
        for op in puts:
            prev = latest.get(_key(op.final))
            if prev is not None and prev.tmp is not None:
                remove_path(prev.tmp)
            latest[_key(op.final)] = op
        puts = [op for op in puts if latest[_key(op.final)] is op]
        deletes = [op for op in self._ops if op.op == "delete" and _key(op.final) not in latest]
        ordered = [op for op in puts if not op.last] + deletes + [op for op in puts if op.last]
        if not ordered:
            return
        for op in puts:
            self._check_kind_for(op)
            if not op.is_dir and not op.synced and op.tmp is not None:
                _fsync_path(op.tmp)
            if op.tmp is not None:
                os.chmod(op.tmp, DIR_MODE if op.is_dir else FILE_MODE)  # temps are created 0600/0700
        if len(ordered) == 1 and ordered[0].op == "put" and not ordered[0].is_dir:
            op = ordered[0]
            os.replace(op.tmp, op.final)  # type: ignore[arg-type]
            _fsync_path(op.final.parent)
            return
        primary = Path(self.primary)
        base = primary.parent
        steps = []
        for op in ordered:
            entry: dict[str, Any] = {"op": op.op, "final": os.path.relpath(op.final, base)}
            if op.op == "put":
                entry.update(tmp=os.path.relpath(op.tmp, base), ino=_ino(op.tmp), dir=op.is_dir)  # type: ignore[arg-type]
            steps.append(entry)
        pid, _ = _my_identity()
        doc = {"format": JOURNAL_FORMAT, "pid": pid, "primary": primary.name, "ops": steps}
        j = journal_path(self.primary)
        fd, jtmp = create_temp_file(j)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(json.dumps(doc, indent=1).encode())
                f.flush()
                os.fsync(f.fileno())
            os.replace(jtmp, j)
        except BaseException:
            remove_path(jtmp)
            raise
        _fsync_path(base)
        self._journaled = True
        lost = _apply(base, steps)
        if lost:  # cannot happen without someone deleting our temps under our lock
            raise OutputError(f"{describe(self.primary)}: the new {', '.join(lost)} vanished before the commit")
        os.unlink(j)
        _fsync_path(base)
        self._journaled = False

    def _check_kind_for(self, op: _Op) -> None:
        if not os.path.lexists(op.final):
            return
        is_dir = op.final.is_dir() and not op.final.is_symlink()
        if op.is_dir != is_dir:
            self._check_kind(op.final)  # raises the message for the mismatch


# ---------------------------------------------------------------- one-target shortcuts

@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", *, wait: float = DEFAULT_WAIT_S) -> Iterator[IO[Any]]:
    """Open a temp file beside ``path``; on clean exit rename it over ``path``, on error delete it."""
    with Transaction(path, wait=wait) as tx, tx.open(path, mode) as f:
        yield f


def write_file(path: str | os.PathLike, data: bytes | str, *, wait: float = DEFAULT_WAIT_S) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with Transaction(path, wait=wait) as tx:
        tx.write_bytes(path, data)
    return Path(path)


def write_json(path: str | os.PathLike, doc: Mapping[str, Any], reasons: Mapping[str, str] | None = None, *,
               wait: float = DEFAULT_WAIT_S) -> Path:
    """Strict JSON (``json_bytes``) written atomically."""
    return write_file(path, json_bytes(doc, reasons), wait=wait)


@contextlib.contextmanager
def scratch_dir(target: str | os.PathLike, *, wait: float = DEFAULT_WAIT_S) -> Iterator[Path]:
    """A scratch folder beside ``target`` under the temp pattern (a killed run's is removed by the next
    writer of ``target``), deleted on exit; the target's lock is held meanwhile."""
    with Transaction(target, dirs=[target] if Path(target).is_dir() else (), wait=wait) as tx:
        yield tx.scratch()


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
def atomic_dir(path: str | os.PathLike, *, wait: float = DEFAULT_WAIT_S) -> Iterator[Path]:
    """Build a directory under a temp name beside ``path``; put it into place on success.

    An existing ``path`` is replaced only after the new one is complete: on Linux the two are swapped in
    one step (``path`` always names a complete old or new tree); the old tree then sits under a temp name
    until it is deleted, so a kill at that point leaves a stale temp that the next writer removes. An
    existing ``path`` that is not a directory is an error, never replaced.
    """
    with Transaction(path, dirs=[path], wait=wait) as tx:
        yield tx.dir(path)

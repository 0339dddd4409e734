"""Output paths checked before the work, and results saved so nothing measured is lost."""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from collections.abc import Callable

from pymfn.errors import CommandError, one_line
from pymfn.files.atomic import probe_writable


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

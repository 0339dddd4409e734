"""Hashes of the artifacts pymfn caches and reuses, and the check made before every reuse.

A cache entry is reused only when its files still hash to what was recorded when it was built: a bit
flipped on disk, a truncated copy or a hand-edited file would otherwise be measured as if it were the
model (an INT8 IR with one flipped weight still loads and scores a few points lower, silently). Hashing
streams the file in 1 MiB blocks, once per reuse; sha256 runs at several hundred MB/s on one core, so a
few-MB model costs milliseconds.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any
from collections.abc import Iterable

BLOCK = 1 << 20


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, read in blocks (never the whole file in memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def file_record(path: str | os.PathLike) -> dict[str, Any]:
    """What a cache records about one file: its size and sha256."""
    return {"bytes": os.path.getsize(path), "sha256": file_sha256(path)}


def file_mismatch(path: str | os.PathLike, recorded: Any) -> str | None:
    """Why ``path`` is not the file ``recorded`` (a ``file_record`` dict) describes, or None when it is.

    The size is compared first (no read needed); then the hash.
    """
    if not isinstance(recorded, dict) or not isinstance(recorded.get("sha256"), str):
        return "has no recorded hash"
    try:
        size = os.path.getsize(path)
        if isinstance(recorded.get("bytes"), int) and size != recorded["bytes"]:
            return f"is {size} bytes, {recorded['bytes']} recorded"
        digest = file_sha256(path)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if digest != recorded["sha256"]:
        return f"has sha256 {digest[:12]}..., {recorded['sha256'][:12]}... recorded"
    return None


def tree_manifest(root: str | os.PathLike, skip: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """``file_record`` of every regular file under ``root`` (relative POSIX path -> record), except ``skip``."""
    root = Path(root)
    skipped = set(skip)
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath, name)
            rel = path.relative_to(root).as_posix()
            if rel in skipped:
                continue
            if path.is_symlink():  # e.g. the emulator's toolkit root: relative links, recorded as such
                out[rel] = {"symlink": os.readlink(path)}
            elif path.is_file():
                out[rel] = file_record(path)
    return out


def tree_mismatch(root: str | os.PathLike, manifest: Any, skip: Iterable[str] = ()) -> str | None:
    """Why the files under ``root`` differ from ``manifest`` (a ``tree_manifest``), or None when they match:
    a file changed, missing or added (an extra ``.py`` or library would be imported too)."""
    if not isinstance(manifest, dict) or not manifest:
        return "has no recorded hashes"
    root = Path(root)
    skipped = set(skip)
    present = set()
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            rel = Path(dirpath, name).relative_to(root).as_posix()
            if rel not in skipped:
                present.add(rel)
    extra = sorted(present - set(manifest))
    if extra:
        return f"holds {extra[0]}, which was not part of the build"
    for rel in sorted(manifest):
        if rel not in present:
            return f"lacks {rel}"
        recorded = manifest[rel]
        if isinstance(recorded, dict) and "symlink" in recorded:
            link = root / rel
            if not link.is_symlink() or os.readlink(link) != recorded["symlink"]:
                return f"{rel} is not the link to {recorded['symlink']} that was recorded"
            continue
        why = file_mismatch(root / rel, recorded)
        if why:
            return f"{rel} {why}"
    return None


def read_json(path: str | os.PathLike) -> Any:
    """A record file's content, or None when it is absent or unreadable (the entry is then rebuilt)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None

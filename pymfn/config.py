"""Where pymfn finds shared data and keeps its cache.

One setting points at the read-only shared folder (LFW data, pretrained weights): the environment
variable PYMFN_SHARED, defaulting to ``../shared`` relative to the project root. Everything that needs
that data asks here, so a missing folder is reported the same way everywhere.
"""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    """The shared data folder (may not exist)."""
    env = os.environ.get("PYMFN_SHARED")
    if env:
        return Path(env).expanduser().resolve()
    return (PROJECT_ROOT / ".." / "shared").resolve()


def shared_path(*parts: str) -> Path:
    return shared_dir().joinpath(*parts)


def lfw_bin_path() -> Path:
    return shared_path("data", "lfw", "lfw.bin")


def lfw_pairs_path() -> Path:
    return shared_path("data", "lfw", "pairs.txt")


def lfw_train_dir() -> Path:
    return shared_path("data", "lfw_train_112")


def sirius_tflite_path() -> Path:
    return shared_path("models", "mobilefacenet-sirius", "MobileFaceNet.tflite")


def sirius_tfjs_path() -> Path:
    return shared_path("models", "mobilefacenet-sirius", "mobilefacenet.json")


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/pymfn (default ~/.cache/pymfn); created on demand."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(base) / "pymfn"
    path.mkdir(parents=True, exist_ok=True)
    return path

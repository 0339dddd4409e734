"""Shared fixtures. Data-dependent tests skip with a reason when ../shared (PYMFN_SHARED) is absent."""
from __future__ import annotations

from pathlib import Path

import pytest

from pymfn import config


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(f"{what} not found at {path} (set PYMFN_SHARED to the shared folder)")
    return path


@pytest.fixture(scope="session")
def core():
    """The native module pymfn._core."""
    import pymfn

    return pymfn.load_core()


@pytest.fixture(scope="session")
def lfw_bin() -> Path:
    return _require(config.lfw_bin_path(), "LFW lfw.bin")


@pytest.fixture(scope="session")
def lfw_train_dir() -> Path:
    return _require(config.lfw_train_dir(), "LFW training subset")


@pytest.fixture(scope="session")
def sirius_tflite() -> Path:
    return _require(config.sirius_tflite_path(), "pretrained MobileFaceNet.tflite")


@pytest.fixture(scope="session")
def sirius_tfjs() -> Path:
    return _require(config.sirius_tfjs_path(), "pretrained TF.js mobilefacenet.json")

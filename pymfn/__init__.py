"""pymfn: MobileFaceNet from training to a measured deployment on Ascend 310, runnable on any x86 host."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pymfn._quiet import telemetry_off

__version__ = "0.1.0"

telemetry_off()

CORE_DIR_ENV = "PYMFN_CORE_DIR"  # developer builds kept outside the source tree (cmake -DPYMFN_OUTPUT_DIR=...)


def native_dir() -> Path:
    """The folder holding pymfn's native libraries: ``_core``, and without CANN the ACL emulator
    ``libascendcl.so`` with its ``libacl_cblas.so`` / ``libacl_dvpp.so`` stand-ins.

    It is the package folder, unless ``PYMFN_CORE_DIR`` names a developer build elsewhere; ``load_core`` and
    ``python -m pymfn acl-config`` both use it, so a client is linked against the same emulator the engine runs.
    """
    override = os.environ.get(CORE_DIR_ENV)
    return Path(override) if override else Path(__file__).resolve().parent


def load_core() -> Any:
    """Import the native module (from ``native_dir()``).

    The built libraries find OpenVINO's shared libraries through their RUNPATH (the openvino package beside
    pymfn, or the one of the environment that built them), so ``import pymfn._core`` works on its own. The
    openvino package is still imported first: a build copied into another environment then uses that
    environment's already-loaded libraries instead of failing to find its own.
    """
    try:
        import openvino  # noqa: F401
    except ImportError:
        pass
    override = os.environ.get(CORE_DIR_ENV)
    if override and override not in __path__:
        __path__.insert(0, override)
    from pymfn import _core  # type: ignore[attr-defined]  # the native module (no stub)

    return _core

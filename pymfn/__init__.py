"""pymfn: MobileFaceNet from training to a measured deployment on Ascend 310, runnable on any x86 host."""
from __future__ import annotations

__version__ = "0.1.0"


def load_core():
    """Import the native module. OpenVINO's Python package is imported first so that its shared
    libraries (which pymfn._core links against) are already loaded, whatever venv built the module."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        pass
    import os

    override = os.environ.get("PYMFN_CORE_DIR")  # developer builds kept outside the source tree
    if override and override not in __path__:
        __path__.insert(0, override)
    from pymfn import _core

    return _core

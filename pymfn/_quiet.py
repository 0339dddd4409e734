"""Keep third-party start-up chatter off stderr, so a failing pymfn command prints exactly one line.

TensorFlow 2.21 writes several lines to file descriptor 2 from C++ while ``import tensorflow`` loads its
shared libraries (oneDNN notices, CPU feature hints, "All log messages before absl::InitializeLog()");
those are written before its log level can be read from the environment, so ``TF_CPP_MIN_LOG_LEVEL``
alone does not hide them. TensorFlow's and tf2onnx's Python loggers add deprecation warnings on top.
None of it is about the user's input, and it buries the one line that is.

``quiet_third_party_logs()`` (called by the ``python -m pymfn`` and ``python -m pymfn.bench`` entry points)
therefore, unless debugging is on:

* sets ``TF_CPP_MIN_LOG_LEVEL=2`` (warnings and info of TF's C++ runtime; a value the user set wins),
* raises the Python loggers of tensorflow, absl and tf2onnx to ERROR,
* installs an import hook that points fd 2 at a temp file while the ``tensorflow`` package itself is
  imported. If that import fails, everything captured is written to stderr after all, so nothing that
  explains a broken installation is lost.

With ``--debug`` / ``PYMFN_DEBUG=1`` nothing is hidden. ``native_stderr_hidden()`` does the same for
one native call that is known to log parse noise of its own (OpenVINO reading a damaged .pb).

``telemetry_off()`` (called when pymfn is imported) declines OpenVINO's usage telemetry, which OpenVINO's
converter and NNCF otherwise send by default: its sender forks a process from whatever thread converts a
model, which can deadlock a process whose other threads hold locks (numpy/OpenBLAS), and it talks to the
network in the middle of a measurement. ``PYMFN_ALLOW_TELEMETRY=1`` leaves it as OpenVINO configures it.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import contextlib
import os
import sys
import tempfile
from types import ModuleType
from collections.abc import Callable, Iterator

_NOISY_LOGGERS = ("tensorflow", "absl", "tf2onnx")


class _CapturingLoader(importlib.abc.Loader):
    """Runs another loader's ``exec_module`` with fd 2 redirected to a temp file."""

    def __init__(self, inner: importlib.abc.Loader) -> None:
        self.inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # The module must look as if its own loader imported it (importlib.resources, reload).
        module.__loader__ = self.inner
        if module.__spec__ is not None:
            module.__spec__.loader = self.inner
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 2)
            try:
                self.inner.exec_module(module)  # type: ignore[attr-defined]
            except BaseException:
                os.dup2(saved, 2)
                captured.seek(0)
                sys.stderr.write(captured.read().decode("utf-8", errors="replace"))
                sys.stderr.flush()
                raise
            finally:
                os.dup2(saved, 2)
                os.close(saved)


class _SilentImport(importlib.abc.MetaPathFinder):
    """Meta-path finder that wraps the loader of one top-level package (once, then removes itself)."""

    def __init__(self, package: str) -> None:
        self.package = package

    def find_spec(self, name: str, path=None, target=None) -> importlib.machinery.ModuleSpec | None:
        if name != self.package:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _CapturingLoader(spec.loader)
        return spec


class _PatchingLoader(importlib.abc.Loader):
    """Runs another loader's ``exec_module``, then ``patch(module)``."""

    def __init__(self, inner: importlib.abc.Loader, patch: Callable[[ModuleType], None]) -> None:
        self.inner, self.patch = inner, patch

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self.inner
        if module.__spec__ is not None:
            module.__spec__.loader = self.inner
        self.inner.exec_module(module)  # type: ignore[attr-defined]
        self.patch(module)


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Meta-path finder that patches one module right after it is imported (once, then removes itself)."""

    def __init__(self, name: str, patch: Callable[[ModuleType], None]) -> None:
        self.name, self.patch = name, patch

    def find_spec(self, name: str, path=None, target=None) -> importlib.machinery.ModuleSpec | None:
        if name != self.name:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _PatchingLoader(spec.loader, self.patch)
        return spec


_OPT_IN_CHECKER = "openvino_telemetry.utils.opt_in_checker"


def _decline_telemetry(module: ModuleType) -> None:
    declined = module.ConsentCheckResult.DECLINED
    module.OptInChecker.check = lambda self, *args, **kwargs: declined


def telemetry_off() -> None:
    """Decline OpenVINO's usage telemetry in this process (see the module docstring); safe to call twice."""
    if os.environ.get("PYMFN_ALLOW_TELEMETRY", "") not in ("", "0"):
        return
    if _OPT_IN_CHECKER in sys.modules:
        _decline_telemetry(sys.modules[_OPT_IN_CHECKER])
    elif not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport(_OPT_IN_CHECKER, _decline_telemetry))


def quiet_third_party_logs(debug: bool = False) -> None:
    """Hide TensorFlow/tf2onnx start-up and deprecation noise unless ``debug``; safe to call twice."""
    if debug:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    if "tensorflow" in sys.modules:
        return
    if not any(isinstance(f, _SilentImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _SilentImport("tensorflow"))


@contextlib.contextmanager
def native_stderr_hidden() -> Iterator[None]:
    """Point fd 2 at a temp file for the duration of a native call that logs parse noise itself.

    OpenVINO's TensorFlow frontend, handed a file that is not a binary GraphDef, retries it as text and
    logs each protobuf parse error straight to fd 2 before raising; the exception already says what is
    wrong. The captured text is dropped, or replayed to stderr when debugging is on (PYMFN_DEBUG).
    """
    from pymfn.errors import debug_enabled

    if debug_enabled():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)

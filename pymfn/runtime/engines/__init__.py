"""Inference engines, opened by model file: ``open_engine(model)`` picks the engine from the suffix.

Every engine implements the native ``pymfn._core.Engine`` protocol so the C++ runner times them all the
same way. Each is one module of this package that registers an :class:`EngineSpec` when imported (its
name, the model suffixes it opens, how to open one, the precisions it offers); every module here is
imported with the package, so adding an engine is adding a module (docs/engines.md):

* ``openvino`` -- ``.pb`` / ``.onnx`` / ``.xml`` on the CPU (native);
* ``acl`` -- ``.om`` on an Ascend device or pymfn's ACL emulator (native);
* ``tf`` -- a frozen ``.pb`` in TensorFlow, the reference (Python; TensorFlow imported on first use).
"""
from __future__ import annotations

import importlib
import pkgutil

from pymfn.runtime.engines._registry import (ENGINE_BY_SUFFIX, ENGINES, MAX_DEVICE_ID, EngineSpec, check_device_id,
                                             check_tf_threads, default_engine, engine_names, engine_spec,
                                             open_engine, register_engine, unregister_engine, usable_cpus)

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
    importlib.import_module(f"{__name__}.{_module}")

from pymfn.runtime.engines.tf import TFEngine  # noqa: E402 - the reference engine, by its old name

__all__ = ["ENGINE_BY_SUFFIX", "ENGINES", "MAX_DEVICE_ID", "EngineSpec", "TFEngine", "check_device_id",
           "check_tf_threads", "default_engine", "engine_names", "engine_spec", "open_engine", "register_engine",
           "unregister_engine", "usable_cpus"]

"""Import a heavy module on first attribute access, so a command can reject bad arguments in a fraction of
a second instead of after TensorFlow's multi-second import."""
from __future__ import annotations

import importlib
import types
from typing import Any


class LazyModule(types.ModuleType):
    """Stands in for the module ``target`` under a module-level name; imports it when first used."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.__dict__["_lazy_target"] = target

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self.__dict__["_lazy_target"]), attr)


def lazy_module(target: str) -> Any:
    """``tf = lazy_module("tensorflow.compat.v1")``: attribute access imports it (typed as Any for callers)."""
    return LazyModule(target)

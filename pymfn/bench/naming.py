"""How library errors name a parameter: as the Python parameter (``data``) when the library is called directly,
as the command-line option (``--data``) when a ``pymfn bench`` command called it.

The command layer wraps its library call in ``with option_names():``; the library writes ``f"{opt('data')} ..."``.
One message text then serves both audiences, and each reads the name it typed.
"""
from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Iterator, Mapping

_OPTIONS: ContextVar[Mapping[str, str] | None] = ContextVar("pymfn_bench_option_names", default=None)


def opt(param: str) -> str:
    """``param`` as the caller typed it: ``int8_model`` from Python, ``--int8-model`` under ``option_names()``."""
    options = _OPTIONS.get()
    if options is None:
        return param
    return options.get(param, "--" + param.replace("_", "-"))


@contextlib.contextmanager
def option_names(overrides: Mapping[str, str] | None = None) -> Iterator[None]:
    """Name parameters as command-line options inside the block (``overrides``: parameter -> option where the
    option is not ``--`` + the parameter with dashes)."""
    token = _OPTIONS.set(dict(overrides or {}))
    try:
        yield
    finally:
        _OPTIONS.reset(token)

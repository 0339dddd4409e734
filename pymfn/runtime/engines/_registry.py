"""The engine registry: which engines exist, which model files each opens, and ``open_engine``.

An engine registers an :class:`EngineSpec` from its own module in this package (imported when the package
is); :func:`open_engine` finds it by name or by the model's suffix, runs the checks every engine shares and
hands over to the spec's ``open``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

import pymfn

_core = pymfn.load_core()

# The largest device id AscendCL can address: aclrtSetDevice takes an int32_t.
MAX_DEVICE_ID = 2**31 - 1


@dataclass(frozen=True)
class EngineSpec:
    """One engine as the registry knows it.

    ``open(path, *, precision, threads, streams, inflight, **options)`` returns a ``pymfn._core.Engine``
    (``path`` exists; ``inflight >= 1``); it raises ``_core.InvalidArgument`` for a setting the engine has not.
    ``check_options(threads=, streams=, options=)`` (optional) refuses bad values before the model file is
    looked at, and may normalise ``options`` in place. ``suffixes``: the model files it opens;
    ``default_for``: the suffixes it opens when no engine is named. ``precisions``: what may be requested.
    """

    name: str
    open: Callable[..., Any]
    suffixes: tuple[str, ...]
    default_for: tuple[str, ...] = ()
    precisions: tuple[str, ...] = ("f32",)
    check_options: Callable[..., None] | None = None
    summary: str = ""


_ENGINES: dict[str, EngineSpec] = {}


def register_engine(spec: EngineSpec, *, replace: bool = False) -> EngineSpec:
    """Add ``spec`` (``replace=True`` swaps an engine of the same name). A suffix has one default engine."""
    if spec.name in _ENGINES and not replace:
        raise ValueError(f"engine '{spec.name}' is already registered")
    for suffix in spec.suffixes + spec.default_for:
        if not suffix.startswith(".") or suffix != suffix.lower():
            raise ValueError(f"engine '{spec.name}': suffix {suffix!r} must be lower case and start with '.'")
    if not set(spec.default_for) <= set(spec.suffixes):
        raise ValueError(f"engine '{spec.name}': default_for must be among its suffixes")
    for other in _ENGINES.values():
        clash = set(other.default_for) & set(spec.default_for)
        if other.name != spec.name and clash:
            raise ValueError(f"engine '{spec.name}': {', '.join(sorted(clash))} already open with '{other.name}' "
                             "by default")
    _ENGINES[spec.name] = spec
    return spec


def unregister_engine(name: str) -> None:
    """Remove the engine ``name`` (KeyError when it is not registered)."""
    del _ENGINES[name]


def engine_spec(name: str) -> EngineSpec:
    """The registered engine ``name``; ``_core.InvalidArgument`` naming the choices otherwise."""
    try:
        return _ENGINES[name]
    except KeyError:
        raise _core.InvalidArgument(f"engine '{name}' is unknown (expected one of {', '.join(_ENGINES)})") from None


def engine_names() -> tuple[str, ...]:
    """The registered engines, in registration order."""
    return tuple(_ENGINES)


def default_engine(path: str | os.PathLike) -> str | None:
    """The engine that opens ``path`` when none is named (by suffix), or None."""
    suffix = Path(path).suffix.lower()
    return next((spec.name for spec in _ENGINES.values() if suffix in spec.default_for), None)


class _SuffixView(Mapping[str, str]):
    """``ENGINE_BY_SUFFIX``: suffix -> default engine, always as registered now."""

    def _table(self) -> dict[str, str]:
        return {suffix: spec.name for spec in _ENGINES.values() for suffix in spec.default_for}

    def __getitem__(self, suffix: str) -> str:
        return self._table()[suffix]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())

    def __repr__(self) -> str:
        return repr(self._table())


class _NameView(Sequence[str]):
    """``ENGINES``: the registered engine names, always as registered now."""

    def __getitem__(self, index: Any) -> Any:
        return engine_names()[index]

    def __len__(self) -> int:
        return len(_ENGINES)

    def __repr__(self) -> str:
        return repr(engine_names())


#: model suffix -> engine used when ``open_engine(engine=None)``
ENGINE_BY_SUFFIX: Mapping[str, str] = _SuffixView()
#: the registered engine names
ENGINES: Sequence[str] = _NameView()


def open_engine(model_path: str | os.PathLike, engine: str | None = None, precision: str = "f32", threads: int = 0,
                streams: int = 0, inflight: int = 1, **kw: Any) -> Any:
    """Open ``model_path`` with the right engine.

    ``engine=None`` picks by suffix: ``.pb`` / ``.onnx`` / ``.xml`` -> OpenVINO, ``.om`` -> AscendCL
    (real CANN or pymfn's emulator). ``engine="tf"`` runs a frozen ``.pb`` in TensorFlow (reference).
    ``inflight`` is how many requests the runner may keep in flight (OpenVINO infer requests / ACL
    slots). ``precision``: f32, bf16, f16 or int8 for OpenVINO (int8 needs a quantized model; what really
    ran is in ``properties()``, see pymfn.runtime.precision); the tf engine runs f32 only; an .om runs the
    precision it was converted for (a request naming another one is an error). Extra keywords go to the
    engine: ``hint`` (OpenVINO; default "latency" for inflight 1, "throughput" above), ``device``; ``device``
    (ACL device id); ``input_name``/``output_name`` (tf).
    Raises InputError for a missing file and InvalidArgument for an unknown suffix / engine / option.
    """
    path = Path(model_path)
    if engine is not None:
        spec = engine_spec(engine)
    else:
        name = default_engine(path)
        if name is None:
            raise _core.InvalidArgument(f"{path}: cannot tell the engine from the suffix '{path.suffix.lower()}' "
                                        f"(expected {', '.join(ENGINE_BY_SUFFIX)}; or pass engine=)")
        spec = _ENGINES[name]
    # option ranges first: a typo should not wait for a model to load
    if spec.check_options is not None:
        spec.check_options(threads=threads, streams=streams, options=kw)
    if not path.is_file():
        raise input_error(path, "model file not found")
    if inflight < 1:
        raise _core.InvalidArgument(f"inflight must be >= 1, got {inflight}")
    return spec.open(path, precision=precision, threads=threads, streams=streams, inflight=inflight, **kw)


# ---------------------------------------------------------------- helpers the engine modules share

def usable_cpus() -> int:
    """Logical CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def check_tf_threads(threads: Any) -> int:
    """``threads`` for the tf engine: 0 (TensorFlow's default) up to the CPUs this process may use.

    TensorFlow starts every intra-op thread it is asked for: 100,000 of them grow memory by tens of MB/s
    and never finish starting. (OpenVINO caps the count at the cores itself; the acl engine has none.)
    """
    cpus = usable_cpus()
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or not 0 <= threads <= cpus:
        raise _core.InvalidArgument(f"--threads {threads}: the tf engine takes 0 (TensorFlow's default) to {cpus} "
                                    f"threads, the logical CPUs this process may use")
    return int(threads)


def check_device_id(device: Any) -> int:
    """An ACL device id: an integer in 0..2**31-1 (whether that device exists is the runtime's to say)."""
    if isinstance(device, bool) or not isinstance(device, (int, np.integer)) or not 0 <= device <= MAX_DEVICE_ID:
        raise _core.InvalidArgument(f"--device {device}: not an AscendCL device id (expected an integer in "
                                    f"0..{MAX_DEVICE_ID}; the devices present are numbered from 0)")
    return int(device)


def input_error(path: str | os.PathLike, message: str) -> Exception:
    """An ``_core.InputError`` carrying ``.path``, like the ones the native code raises."""
    err = _core.InputError(f"{path}: {message}")
    err.path = str(path)
    return err


def reject_extra(kw: dict[str, Any], engine: str) -> None:
    """Options no engine parameter took: a TypeError naming them (a typo must not be ignored)."""
    if kw:
        raise TypeError(f"open_engine: unexpected option(s) for the {engine} engine: {', '.join(sorted(kw))}")


F32_NAMES = ("f32", "fp32", "float32")

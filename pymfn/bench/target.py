"""What every timed benchmark opens before it runs: the model, its engines (one per device) and the input.

:func:`open_target` turns a model (a path, or :func:`pymfn.bench.default_model`'s result), an engine choice, a
precision, an input and the :class:`~pymfn.bench.settings.RunSettings` into a :class:`Target`; :func:`run_meta`
gives the facts every report carries (engine, model, precision that ran, build, host).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

import pymfn
from pymfn.bench import report
from pymfn.bench.settings import RunSettings, SettingError, check_int
from pymfn.export.default_model import DefaultModel

#: What a benchmark accepts as its model: a model file (.pb, .onnx, .xml, .om) or the built-in default model.
ModelLike = str | os.PathLike | DefaultModel
#: A model's input for a run: a folder of per-sample .bin files, a packed file, a .npy; None = seeded random data.
InputLike = str | os.PathLike | None


def default_model(*, quiet: bool = True) -> DefaultModel:
    """The built-in MobileFaceNet as a frozen .pb, built once and cached under ``$XDG_CACHE_HOME/pymfn``
    (pretrained sirius-ai weights when ``PYMFN_SHARED`` holds them, else random weights). ``quiet=False`` says
    when it is being built.

    >>> import pymfn.bench as b
    >>> m = b.default_model()
    >>> m.path.suffix
    '.pb'
    """
    from pymfn.export.default_model import default_model as build

    return build(quiet=quiet)


def model_source(model: ModelLike) -> tuple[Path, str, bool]:
    """(path, description, pretrained) of a model argument; FileNotFoundError for a path that does not exist."""
    if isinstance(model, DefaultModel):
        return model.path, model.description, model.pretrained
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be a path or pymfn.bench.default_model(), got {type(model).__name__}")
    path = Path(model)
    if not path.exists():
        raise FileNotFoundError(f"model {path} does not exist")
    return path, f"user model {path.name}", True


def resolve_model(model: str | None, quiet: bool = False) -> tuple[Path, str, bool]:
    """(path, description, pretrained) for a ``--model`` option, or the built-in default model when it is None
    (for the command lines: a missing file is named as ``--model``)."""
    if model is None:
        return model_source(default_model(quiet=quiet))
    if not Path(model).exists():
        raise SystemExit(f"--model: {model} does not exist")
    return model_source(model)


def engine_kind(engine: str | None, model: Path) -> str:
    """The engine ``open_engine`` picks for ``engine`` / the model's suffix."""
    from pymfn.runtime.engines import ENGINE_BY_SUFFIX

    return engine or ENGINE_BY_SUFFIX.get(model.suffix.lower(), "openvino")


def open_engines(model: Path, engine: str | None, precision: str, st: RunSettings) -> tuple[list[Any], list[str]]:
    """One engine per entry of ``st.devices`` (or a single engine without them), and their names.

    ACL: one AclEngine per device id (its own context, model instances, streams and buffers). OpenVINO on the
    host: one engine per listed lane, each a single OpenVINO stream with its share of the cores (``threads`` per
    lane, default cores / lanes), so the lanes run side by side like devices.
    """
    from pymfn.runtime.engines import open_engine

    if st.devices is None:
        single = open_engine(str(model), engine=engine, precision=precision, threads=st.threads, streams=st.streams,
                             inflight=st.inflight)
        return [single], [_single_name(single)]
    devices = list(st.devices)
    kind = engine_kind(engine, model)
    if kind == "acl":
        engines = [open_engine(str(model), engine="acl", precision=precision, threads=st.threads, streams=st.streams,
                               inflight=st.inflight, device=d) for d in devices]
        return engines, [f"acl device {d}" for d in devices]
    if kind == "openvino":
        if st.streams not in (0, 1):
            raise SettingError(f"`streams` {st.streams}: with `devices` every lane is one OpenVINO stream; "
                               "leave `streams` out")
        threads = st.threads or max(1, (os.cpu_count() or 1) // len(devices))
        engines = [open_engine(str(model), engine="openvino", precision=precision, threads=threads, streams=1,
                               inflight=st.inflight, hint="latency") for _ in devices]
        return engines, [f"openvino lane {d} ({threads} thread{'s' if threads > 1 else ''})" for d in devices]
    raise SettingError(f"`devices`: the {kind} engine has no devices; use the acl engine (.om) or openvino")


def _single_name(engine: Any) -> str:
    props = {str(k): str(v) for k, v in dict(engine.properties()).items()}
    if engine.kind == "acl":
        return f"acl device {props.get('device', '0')}"
    return f"{engine.kind} {props.get('device', '')}".strip()


def input_spec(engine: Any) -> tuple[Any, tuple[int, ...], np.dtype]:
    """The model's (first) input, its per-sample shape and numpy dtype; rejects multi-input models."""
    inputs = engine.inputs()
    real = [t for t in inputs if t.name != "ascend_mbatch_shape_data"]
    if len(real) != 1:
        raise ValueError(f"model has {len(real)} data inputs ({[t.name for t in real]}); pymfn.bench drives "
                         "one-input models")
    info = real[0]
    shape = tuple(int(d) for d in info.shape[1:])
    if any(d < 0 for d in shape):
        raise ValueError(f"input '{info.name}' has a dynamic non-batch dimension {list(info.shape)}; convert with a "
                         "fixed shape")
    return info, shape, np.dtype(info.dtype)


def make_dataset(engine: Any, input: InputLike, st: RunSettings, batch: int, count: int) -> tuple[Any, str]:
    """The input source: ``input`` (folder / packed / .npy) or seeded random data shaped for the model."""
    core = pymfn.load_core()
    info, shape, dtype = input_spec(engine)
    if input is not None:
        from pymfn.inputs.datasets import open_dataset

        ds = open_dataset(input, sample_bytes=info.sample_bytes, dtype=str(dtype), sample_shape=shape,
                          order=st.order, folder_io=st.folder_io)
        return ds, ds.describe()
    # Checked before allocating: a typo such as batch 1000000000 must be an error naming the setting, not
    # numpy's "Unable to allocate 1.07 PiB" (uniform() makes float64 before the cast).
    need = count * int(np.prod(shape)) * max(dtype.itemsize, 8)
    if need > physical_memory():
        raise SettingError(f"`batch` {batch}: the random input ({count} samples, {need / 2**30:.1f} GiB) does not "
                           "fit in this machine's memory; use a smaller `batch` or give `input`")
    rng = np.random.default_rng(st.seed)
    if dtype == np.uint8:
        data = rng.integers(0, 256, size=(count, *shape), dtype=np.uint8)
    else:
        data = rng.uniform(-1.0, 1.0, size=(count, *shape)).astype(dtype)
    return core.ArrayDataset(data), f"random {dtype} {list(shape)} x {count} (seed {st.seed}, cycled)"


def physical_memory() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # not POSIX: no limit known
        return 2**63


def choose_batch(engine: Any, requested: int) -> int:
    """``requested`` when the model runs that batch size (a dynamic-batch model runs any)."""
    offered = list(engine.supported_batches())
    if offered and requested not in offered:
        raise SettingError(f"`batch` {requested}: the model only offers batch sizes {offered}")
    return requested


@dataclass
class Target:
    """What every run of one benchmark shares: engines (one per device), input and metadata."""

    core: Any
    model: Path
    description: str
    pretrained: bool
    engines: list[Any]
    names: list[str]
    batch: int
    dataset: Any
    input_desc: str
    precision: str
    settings: RunSettings

    def reader(self, rows: int | None = None) -> Any:
        """A fresh batch reader over the input (each run starts at its first sample), in batches of ``rows``
        (default: the target's batch)."""
        return self.dataset.reader(rows or self.batch, self.settings.prefetch)


def open_target(model: ModelLike, *, engine: str | None, precision: str, input: InputLike, settings: RunSettings,
               batch_for: Callable[[Any], int]) -> Target:
    """Model, engines and dataset; ``batch_for(engine)`` picks the batch size (it may refuse the model's)."""
    core = pymfn.load_core()
    path, description, pretrained = model_source(model)
    engines, names = open_engines(path, engine, precision, settings)
    batch = batch_for(engines[0])
    dataset, input_desc = make_dataset(engines[0], input, settings, batch, count=max(batch * 4 * len(engines), 16))
    return Target(core, path, description, pretrained, engines, names, batch, dataset, input_desc, precision, settings)


def check_batch(batch: Any) -> None:
    check_int("batch", batch, 1)


def run_meta(target: Target, mode: str) -> dict[str, Any]:
    """The facts every report of a timed run carries (engine, model, settings, build, host)."""
    from pymfn.runtime.precision import precision_report, requested_for

    core = target.core
    engine = target.engines[0]  # every device runs the same model
    props = {str(k): str(v) for k, v in dict(engine.properties()).items()}
    meta: dict[str, Any] = {
        "mode": mode,
        "engine": engine.kind,
        "model": str(target.model),
        "model_description": target.description,
        "pretrained": target.pretrained,
        "batch": target.batch,
        "precision": props.get("precision", target.precision),
        "scope": target.settings.scope,
        "inflight": target.settings.inflight,
        "input": target.input_desc,
        "device_names": target.names,
        "engine_properties": props,
        "build_info": dict(core.build_info()),
        "host": report.host_info(),
    }
    meta["precision_report"] = precision_report(engine, requested_for(engine, target.precision), target.model)
    if "acl_runtime" in props:
        meta["acl_runtime"] = props["acl_runtime"]
        if props["acl_runtime"] == "emulator":
            meta["timing_note"] = ("ACL emulator: these are HOST timings of pymfn's harness + OpenVINO on this CPU, "
                                   "not Ascend NPU timings")
            if "emulator_device_model" in props:
                meta["timing_note"] += f" ({props['emulator_device_model']})"
    return meta


def keep_partial(call: Callable[[], Any]) -> tuple[Any, bool]:
    """``call()`` (a core run) -> (result, interrupted). Ctrl-C (or SIGTERM delivered as KeyboardInterrupt) during
    it gives its partial result instead of an exception; a KeyboardInterrupt with nothing measured propagates."""
    core = pymfn.load_core()
    try:
        return call(), False
    except core.RunInterrupted as exc:
        if exc.result is None:
            raise
        return exc.result, True

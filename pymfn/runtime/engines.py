"""Opening inference engines by model file, and the TensorFlow reference engine.

Every engine implements the native ``pymfn._core.Engine`` protocol so the C++ runner times them all the
same way. :class:`TFEngine` is written in Python (a frozen ``.pb`` in a ``tf.compat.v1`` Session): it is
the ground truth the OpenVINO engine is checked against (parity) and the peer it is measured against
(benchmarks). :func:`open_engine` picks an engine from the file type so callers never branch on it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

import pymfn
from pymfn._quiet import native_stderr_hidden

_core = pymfn.load_core()

#: model suffix -> engine name used when ``open_engine(engine=None)``
ENGINE_BY_SUFFIX: dict[str, str] = {".pb": "openvino", ".onnx": "openvino", ".xml": "openvino", ".om": "acl"}
ENGINES = ("openvino", "tf", "acl")
# Output names of pymfn's frozen graphs (f32 embeddings, or the reference om's float16 cast).
_KNOWN_OUTPUTS = ("embeddings", "the_outputs")


# The largest device id AscendCL can address: aclrtSetDevice takes an int32_t.
MAX_DEVICE_ID = 2**31 - 1


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


def _input_error(path: str | os.PathLike, message: str) -> Exception:
    """An ``_core.InputError`` carrying ``.path``, like the ones the native code raises."""
    err = _core.InputError(f"{path}: {message}")
    err.path = str(path)
    return err


class TFEngine(_core.Engine):
    """A frozen TensorFlow GraphDef run in a ``tf.compat.v1.Session`` on the CPU.

    It exists to be the reference: outputs are what TensorFlow computes for the graph, with no
    conversion in between, so OpenVINO / ACL results are compared against it. The batch dimension
    of the input placeholder is dynamic in pymfn's graphs, so any batch size runs.

    Args:
        pb_path: frozen ``.pb`` (one float ``Placeholder`` input, all variables folded into constants).
        threads: TensorFlow intra-op threads (0 = TensorFlow's default: all cores).
        input_name / output_name: tensor names when the graph does not follow pymfn's conventions
            (input = the only Placeholder; output = ``embeddings``, ``the_outputs`` or the only sink).
    """

    kind = "tf"

    def __init__(self, pb_path: str | os.PathLike, threads: int = 0, input_name: str | None = None,
                 output_name: str | None = None) -> None:
        super().__init__()
        import tensorflow as tf

        self._path = str(pb_path)
        path = Path(pb_path)
        if path.suffix.lower() != ".pb":
            raise _core.InvalidArgument(f"{path}: TFEngine runs frozen TensorFlow .pb files, not '{path.suffix}'")
        if not path.is_file():
            raise _input_error(path, "model file not found")
        threads = check_tf_threads(threads)
        tf1 = tf.compat.v1
        graph_def = tf1.GraphDef()
        try:
            graph_def.ParseFromString(path.read_bytes())
        except Exception as e:  # protobuf's DecodeError is not exported consistently
            raise _core.FormatError(f"{path}: not a TensorFlow GraphDef ({type(e).__name__}: {e})") from e
        if not graph_def.node:
            raise _core.FormatError(f"{path}: not a TensorFlow GraphDef (no nodes)")
        in_name, out_name = self._pick_io(graph_def, path, input_name, output_name)

        self._graph = tf.Graph()
        with self._graph.as_default():
            try:
                tf1.import_graph_def(graph_def, name="")
            except Exception as e:
                raise _core.EngineError(f"{path}: TensorFlow could not import the graph: {e}") from e
            self._x = self._graph.get_tensor_by_name(in_name + ":0")
            self._y = self._graph.get_tensor_by_name(out_name + ":0")
        config = tf1.ConfigProto(intra_op_parallelism_threads=threads, inter_op_parallelism_threads=1 if threads else 0)
        self._threads = threads
        self._session = tf1.Session(graph=self._graph, config=config)

        def info(t: Any, name: str) -> Any:
            if t.shape.rank is None or t.shape.rank < 1:
                raise _core.EngineError(f"{path}: tensor '{name}' has unknown rank; TFEngine needs [batch, ...]")
            shape = [-1 if d is None else int(d) for d in t.shape.as_list()]
            shape[0] = -1  # the batch is whatever is fed
            if any(d < 0 for d in shape[1:]):
                raise _core.EngineError(f"{path}: tensor '{name}' has shape {shape}; only the batch may be dynamic")
            return _core.TensorInfo(name, np.dtype(t.dtype.as_numpy_dtype).name, shape)

        self._inputs = [info(self._x, in_name)]
        self._outputs = [info(self._y, out_name)]
        self._sample_shape = tuple(self._inputs[0].shape[1:])

    @staticmethod
    def _pick_io(graph_def: Any, path: Path, input_name: str | None, output_name: str | None) -> tuple[str, str]:
        names = {n.name for n in graph_def.node}
        if input_name is None:
            placeholders = [n.name for n in graph_def.node if n.op == "Placeholder"]
            if len(placeholders) != 1:
                raise _core.FormatError(f"{path}: expected exactly one Placeholder input, found {placeholders}; "
                                        "pass input_name")
            input_name = placeholders[0]
        if output_name is None:
            known = [n for n in _KNOWN_OUTPUTS if n in names]
            if known:
                output_name = known[0]
            else:
                consumed = {i.lstrip("^").split(":")[0] for n in graph_def.node for i in n.input}
                sinks = [n.name for n in graph_def.node if n.name not in consumed and n.op not in ("Const", "NoOp")]
                if len(sinks) != 1:
                    raise _core.FormatError(f"{path}: cannot tell the output node (candidates {sinks[:5]}); "
                                            "pass output_name")
                output_name = sinks[0]
        for n in (input_name, output_name):
            if n.split(":")[0] not in names:
                raise _core.InvalidArgument(f"{path}: the graph has no node '{n}'")
        return input_name.split(":")[0], output_name.split(":")[0]

    @property
    def model_path(self) -> str:
        return self._path

    def inputs(self) -> list[Any]:
        return list(self._inputs)

    def outputs(self) -> list[Any]:
        return list(self._outputs)

    def supported_batches(self) -> list[int]:
        return []

    def prepare(self, batch: int) -> None:
        if batch < 1:
            raise _core.InvalidArgument(f"batch size must be >= 1, got {batch}")

    def max_inflight(self) -> int:
        return 1

    def execute(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Run one batch: ``inputs`` = [array of shape [batch, *sample_shape], model dtype]."""
        if len(inputs) != 1:
            raise _core.InvalidArgument(f"{self._path}: TFEngine takes 1 input array, got {len(inputs)}")
        x = np.asarray(inputs[0])
        want = np.dtype(self._inputs[0].dtype)
        if x.dtype != want or x.ndim != 1 + len(self._sample_shape) or tuple(x.shape[1:]) != self._sample_shape:
            err = _core.ShapeMismatch(f"{self._path}: input is {x.dtype} {list(x.shape)}, the model wants "
                                      f"{want} [batch, {', '.join(map(str, self._sample_shape))}]")
            err.path = self._path
            raise err
        y = self._session.run(self._y, {self._x: x})
        return [np.ascontiguousarray(y)]

    def properties(self) -> dict[str, str]:
        import tensorflow as tf

        return {"precision": "f32", "threads": str(self._threads or "default"), "device": "CPU",
                "tensorflow_version": tf.__version__, "input": self._x.name, "output": self._y.name}

    def close(self) -> None:
        """Free the TensorFlow session (also done when the engine is garbage-collected)."""
        if self._session is not None:
            self._session.close()
            self._session = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def open_engine(model_path: str | os.PathLike, engine: str | None = None, precision: str = "f32", threads: int = 0,
                streams: int = 0, inflight: int = 1, **kw: Any) -> Any:
    """Open ``model_path`` with the right engine.

    ``engine=None`` picks by suffix: ``.pb`` / ``.onnx`` / ``.xml`` -> OpenVINO, ``.om`` -> AscendCL
    (real CANN or pymfn's emulator). ``engine="tf"`` runs a frozen ``.pb`` in TensorFlow (reference).
    ``inflight`` is how many requests the runner may keep in flight (OpenVINO infer requests / ACL
    slots). ``precision``: f32, bf16, f16 or int8 for OpenVINO (int8 needs a quantized model; what really
    ran is in ``properties()``, see pymfn.runtime.precision); the tf engine runs f32 only; an .om runs the precision
    it was converted for (a request naming another one is an error). Extra keywords go to the engine: ``hint`` (OpenVINO; default "latency" for inflight 1,
    "throughput" above), ``device``; ``device`` (ACL device id); ``input_name``/``output_name`` (tf).
    Raises InputError for a missing file and InvalidArgument for an unknown suffix / engine / option.
    """
    path = Path(model_path)
    if engine is not None and engine not in ENGINES:
        raise _core.InvalidArgument(f"engine '{engine}' is unknown (expected one of {', '.join(ENGINES)})")
    suffix = path.suffix.lower()
    if engine is None:
        if suffix not in ENGINE_BY_SUFFIX:
            raise _core.InvalidArgument(f"{path}: cannot tell the engine from the suffix '{suffix}' (expected "
                                        f"{', '.join(ENGINE_BY_SUFFIX)}; or pass engine=)")
        engine = ENGINE_BY_SUFFIX[suffix]
    # option ranges first: a typo should not wait for a model to load
    if engine == "tf":
        check_tf_threads(threads)
    if engine == "acl" and "device" in kw:
        kw["device"] = check_device_id(kw["device"])
    if not path.is_file():
        raise _input_error(path, "model file not found")
    if inflight < 1:
        raise _core.InvalidArgument(f"inflight must be >= 1, got {inflight}")

    if engine == "openvino":
        if not hasattr(_core, "OpenVINOEngine"):
            raise _core.EngineError("this pymfn build has no OpenVINO engine (build_info()['engines'] = "
                                    f"{_core.build_info()['engines']})")
        hint = kw.pop("hint", "latency" if inflight == 1 else "throughput")
        device = kw.pop("device", "CPU")
        _reject_extra(kw, engine)
        # OpenVINO's TF frontend logs protobuf parse errors of a damaged .pb to fd 2 before raising; the
        # EngineError already says what is wrong (the log is kept with --debug / PYMFN_DEBUG=1).
        with native_stderr_hidden():
            return _core.OpenVINOEngine(str(path), precision=precision, threads=threads, streams=streams,
                                        num_requests=inflight, hint=hint, device=device)
    if engine == "tf":
        if precision not in ("f32", "fp32", "float32"):
            raise _core.InvalidArgument(f"the tf engine runs the graph as frozen (f32); precision '{precision}' is not available")
        if streams:
            raise _core.InvalidArgument("the tf engine has no streams setting")
        if inflight != 1:
            raise _core.InvalidArgument("the tf engine runs one request at a time (inflight must be 1)")
        names = {k: kw.pop(k) for k in ("input_name", "output_name") if k in kw}
        _reject_extra(kw, engine)
        return TFEngine(path, threads=threads, **names)
    # acl
    acl = getattr(_core, "AclEngine", None)
    if acl is None:
        raise _core.EngineError(f"{path}: this pymfn build has no AscendCL engine (build_info()['acl'] = "
                                f"{_core.build_info()['acl']!r}); rebuild with OpenVINO present or CANN installed")
    if precision not in ("f32", "fp32", "float32"):
        _check_om_precision(path, precision)
    if threads or streams:
        raise _core.InvalidArgument("the acl engine has no threads/streams settings")
    device = kw.pop("device", 0)
    _reject_extra(kw, engine)
    return acl(str(path), device=device, num_requests=inflight)


def _check_om_precision(path: Path, precision: str) -> None:
    """An .om runs in the precision it was converted for: a request is accepted only when it names that one.

    (The default 'f32' of the command line means "as converted" for an .om and is not checked.)
    """
    from pymfn.export import om
    from pymfn.runtime.precision import canonical, om_emu_precision

    fixed = f"{path}: an .om's precision is fixed by atc at conversion; precision '{precision}' cannot be chosen at run time"
    try:
        wanted = canonical(precision)
    except ValueError:
        raise _core.InvalidArgument(fixed) from None
    if not om.is_emulator_om(path):
        raise _core.InvalidArgument(fixed)
    declared = om_emu_precision(path)["declared"]
    if declared != wanted:
        raise _core.InvalidArgument(f"{fixed}: this om was converted for {declared}")


def _reject_extra(kw: dict[str, Any], engine: str) -> None:
    if kw:
        raise TypeError(f"open_engine: unexpected option(s) for the {engine} engine: {', '.join(sorted(kw))}")

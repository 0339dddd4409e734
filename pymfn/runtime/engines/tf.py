"""TensorFlow (Python): a frozen .pb in a ``tf.compat.v1`` Session, the reference the other engines are
checked against (parity) and measured against (benchmarks). TensorFlow is imported only when one is opened."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pymfn.runtime.engines._registry import (F32_NAMES, EngineSpec, _core, check_tf_threads, input_error,
                                             register_engine, reject_extra)

# Output names of pymfn's frozen graphs (f32 embeddings, or the reference om's float16 cast).
_KNOWN_OUTPUTS = ("embeddings", "the_outputs")


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
            raise input_error(path, "model file not found")
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


def check_tf_options(*, threads: int, streams: int, options: dict[str, Any]) -> None:
    check_tf_threads(threads)


def open_tf(path: Path, *, precision: str, threads: int, streams: int, inflight: int, **kw: Any) -> TFEngine:
    if precision not in F32_NAMES:
        raise _core.InvalidArgument(f"the tf engine runs the graph as frozen (f32); precision '{precision}' is not available")
    if streams:
        raise _core.InvalidArgument("the tf engine has no streams setting")
    if inflight != 1:
        raise _core.InvalidArgument("the tf engine runs one request at a time (inflight must be 1)")
    names = {k: kw.pop(k) for k in ("input_name", "output_name") if k in kw}
    reject_extra(kw, "tf")
    return TFEngine(path, threads=threads, **names)


register_engine(EngineSpec(
    name="tf", open=open_tf, suffixes=(".pb",), precisions=("f32",), check_options=check_tf_options,
    summary="TensorFlow on the CPU: the reference (frozen .pb, f32, one request at a time)"))

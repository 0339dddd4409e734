"""OpenVINO (native ``_core.OpenVINOEngine``): frozen TensorFlow .pb, ONNX and OpenVINO IR on the CPU."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pymfn._quiet import native_stderr_hidden
from pymfn.runtime.engines._registry import EngineSpec, _core, register_engine, reject_extra
from pymfn.runtime.precision import PRECISIONS


def open_openvino(path: Path, *, precision: str, threads: int, streams: int, inflight: int, **kw: Any) -> Any:
    if not hasattr(_core, "OpenVINOEngine"):
        raise _core.EngineError("this pymfn build has no OpenVINO engine (build_info()['engines'] = "
                                f"{_core.build_info()['engines']})")
    hint = kw.pop("hint", "latency" if inflight == 1 else "throughput")
    device = kw.pop("device", "CPU")
    reject_extra(kw, "openvino")
    # OpenVINO's TF frontend logs protobuf parse errors of a damaged .pb to fd 2 before raising; the
    # EngineError already says what is wrong (the log is kept with --debug / PYMFN_DEBUG=1).
    with native_stderr_hidden():
        return _core.OpenVINOEngine(str(path), precision=precision, threads=threads, streams=streams,
                                    num_requests=inflight, hint=hint, device=device)


register_engine(EngineSpec(
    name="openvino", open=open_openvino, suffixes=(".pb", ".onnx", ".xml"), default_for=(".pb", ".onnx", ".xml"),
    precisions=PRECISIONS, summary="OpenVINO on the CPU (what runs in each precision depends on the host)"))

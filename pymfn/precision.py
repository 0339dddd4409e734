"""Which precisions this host can run, and what a model really ran in -- so no report claims bf16 when f32 ran.

OpenVINO treats a precision as a hint: asked for bf16 on a CPU without bf16 units it quietly runs f32, and a
quantized model runs its quantized layers in int8 whatever is asked. So every pymfn report states the
requested precision beside the *runtime* precision read from the compiled model's execution graph
(``layerType`` / ``runtimePrecision`` per executed node), and a one-line verdict:

* OpenVINO engine: the native engine's ``properties()`` (``runtime_precision``, ``precision_check``).
* TensorFlow reference: the frozen graph as it is (f32).
* ACL engine on the emulator: the precision the om declares (payload precision, FakeQuantize count), and
  the runtime precision of the payload IR compiled the way the emulator compiles it (same OpenVINO, same
  rule: f16 where the CPU offers it, else bf16, else f32). The emulator does not report its own compile,
  so this is a reproduction, and says so. On a real Ascend 310 the om's precision is fixed by atc.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

PRECISIONS = ("f32", "bf16", "f16", "int8")
_ALIASES = {"fp32": "f32", "float32": "f32", "bfloat16": "bf16", "fp16": "f16", "float16": "f16", "i8": "int8"}
# Runtime-graph node types that hold the multiply-adds (their precision is "what ran").
COMPUTE_LAYERS = ("Convolution", "GroupConvolution", "Deconvolution", "FullyConnected", "MatMul")
_BOOKKEEPING = ("Const", "Input", "Output", "Reshape")
# CPU flags (/proc/cpuinfo) that give each precision its own arithmetic units.
CPU_UNITS = {"bf16": ("amx_bf16", "avx512_bf16"), "f16": ("amx_fp16", "avx512_fp16"),
             "int8": ("amx_int8", "avx512_vnni", "avx_vnni")}
# OpenVINO CPU capability that must be present for the plugin to run the precision at all.
OV_CAPABILITY = {"f32": "FP32", "bf16": "BF16", "f16": "FP16", "int8": "INT8"}


def canonical(precision: str) -> str:
    """'fp16' -> 'f16', 'i8' -> 'int8', ...; unknown names raise ValueError listing the choices."""
    p = precision.lower()
    p = _ALIASES.get(p, p)
    if p not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    return p


def cpu_flags() -> set[str]:
    """The CPU feature flags of /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def ov_capabilities(device: str = "CPU") -> list[str]:
    import openvino as ov

    return list(ov.Core().get_property(device, "OPTIMIZATION_CAPABILITIES"))


def host_support(device: str = "CPU") -> dict[str, dict[str, Any]]:
    """Per precision: can OpenVINO run it here (its capability list), and with which dedicated units.

    ``runs`` False means OpenVINO would fall back to another precision: such a row is listed, not run.
    ``units`` lists the CPU flags that make it fast (empty: it runs, emulated on wider units).
    """
    flags, caps = cpu_flags(), set(ov_capabilities(device))
    out = {}
    for p in PRECISIONS:
        units = [f for f in CPU_UNITS.get(p, ()) if f in flags]
        runs = OV_CAPABILITY[p] in caps
        if runs:
            why = f"OpenVINO capability {OV_CAPABILITY[p]}" + (f"; units: {', '.join(units)}" if units else
                                                                ("" if p == "f32" else "; no dedicated units"))
        else:
            why = (f"OpenVINO's {device} plugin lacks the {OV_CAPABILITY[p]} capability on this CPU (flags "
                   f"{', '.join(CPU_UNITS.get(p, ())) or 'n/a'} absent): it would silently run another precision")
        out[p] = {"runs": runs, "units": units, "why": why}
    return out


# ---------------------------------------------------------------- runtime graph (Python twin of the engine's)

def runtime_precision(compiled: Any) -> dict[str, Any]:
    """Compute-layer precisions and per-type counts of an ``ov.CompiledModel``'s execution graph."""
    by_type: dict[str, Counter] = {}
    compute: Counter = Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        rt = op.get_rt_info()
        kind = str(rt["layerType"].astype(str)) if "layerType" in rt else ""
        if not kind or kind in _BOOKKEEPING:
            continue
        prec = str(rt["runtimePrecision"].astype(str)) if "runtimePrecision" in rt else "unknown"
        by_type.setdefault(kind, Counter())[prec] += 1
        if kind in COMPUTE_LAYERS:
            compute[prec] += 1
    return {"runtime_precision": counts_text(compute) if compute else "unknown",
            "runtime_precision_by_layer_type": "; ".join(f"{k}: {counts_text(v)}" for k, v in sorted(by_type.items())),
            "compute": dict(compute)}


def counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{p} x{n}" for p, n in sorted(counts.items()))


# What a runtime kernel precision means to the user: OpenVINO names INT8 kernels by their activation type
# (u8 for asymmetric activations, i8 for symmetric), which depends on the model and the CPU's ISA.
KERNEL_MEANING = {"i8": "int8", "u8": "int8", "f32": "f32", "bf16": "bf16", "f16": "f16"}


def meaning(kernel_precision: str) -> str:
    """'u8' -> 'int8', 'f32' -> 'f32'; an unknown kernel name stays as it is."""
    return KERNEL_MEANING.get(kernel_precision, kernel_precision)


def matches(requested: str, runtime: str) -> bool:
    """True when a kernel precision (OpenVINO's name) is what ``requested`` means: int8 by i8 or u8."""
    return meaning(runtime) == requested


def ran_text(runtime: str) -> str:
    """'u8 x3, f32 x1' -> 'int8 x3, f32 x1 (kernels u8 x3, f32 x1)': what ran by meaning, kernels beside it."""
    counts: Counter = Counter()
    kernels = []
    for part in (p.strip() for p in runtime.split(",") if p.strip()):
        m = re.fullmatch(r"(\S+) x(\d+)", part)
        if not m:
            return runtime
        kernels.append(m.group(1))
        counts[meaning(m.group(1))] += int(m.group(2))
    if not counts:
        return runtime
    text = counts_text(counts)
    return text if all(meaning(k) == k for k in kernels) else f"{text} (kernels {runtime})"


def verdict(requested: str, compute: dict[str, int], why: str) -> str:
    """'ok', or 'mismatch'/'partial' with the counts and ``why``."""
    if not compute:
        return "unknown: the runtime graph shows no convolution or matrix-multiply layers"
    total = sum(compute.values())
    good = sum(n for p, n in compute.items() if matches(requested, p))
    if good == total:
        return "ok"
    return (f"{'mismatch' if good == 0 else 'partial'}: requested {requested}, compute layers ran "
            f"{counts_text(compute)} ({good} of {total} as requested): {why}")


# ---------------------------------------------------------------- emulator om

_FQ = re.compile(rb'type="FakeQuantize"')


def om_emu_precision(path: str | os.PathLike) -> dict[str, Any]:
    """What an emulator om declares: payload precision, ATC precision mode, FakeQuantize ops, and the
    resulting precision name ('int8' when quantized, else the payload's 'f16' / 'f32')."""
    from pymfn import om

    _header, meta, xml, _weights = om.read_emulator_om(path)
    fq = len(_FQ.findall(xml))
    return {"payload_precision": meta.precision, "precision_mode": meta.precision_mode, "fake_quantize_ops": fq,
            "declared": "int8" if fq else meta.precision}


def emulator_compile_precision(caps: list[str]) -> str:
    """The inference precision the emulator asks OpenVINO for an 'f16' payload (csrc/acl_emulator/models.cpp)."""
    return "f16" if "FP16" in caps else "bf16" if "BF16" in caps else "f32"


def emulator_runtime(path: str | os.PathLike, batch: int = 1) -> dict[str, Any]:
    """Runtime precision of an emulator om's payload compiled as the emulator compiles it (a reproduction)."""
    import openvino as ov

    from pymfn import om

    _header, meta, xml, weights = om.read_emulator_om(path)
    core = ov.Core()
    model = core.read_model(xml.decode("utf-8"), ov.Tensor(__import__("numpy").frombuffer(weights, "uint8").copy()))
    shapes = {}
    for port in model.inputs:
        ps = port.get_partial_shape()
        if ps.rank.is_static and ps.rank.get_length() >= 1 and ps[0].is_dynamic:
            ps[0] = batch
            shapes[port] = ps
    if shapes:
        model.reshape(shapes)
    hint = emulator_compile_precision(list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))) \
        if meta.precision == "f16" else "f32"
    compiled = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": hint})
    out = runtime_precision(compiled)
    out["emulator_inference_precision"] = hint
    return out


# ---------------------------------------------------------------- one report for any engine

def precision_report(engine: Any, requested: str | None, model_path: str | os.PathLike) -> dict[str, Any]:
    """requested / runtime / check (one line) / by layer type / how it was found, for any pymfn engine.

    ``requested`` None means "as the model is" (an .om's precision is fixed at conversion).
    """
    props = {str(k): str(v) for k, v in dict(engine.properties()).items()}
    kind = engine.kind
    if kind == "openvino":
        return {"requested": props.get("requested_precision", requested),
                "runtime": props.get("runtime_precision", "unknown"),
                "check": props.get("precision_check", "unknown: this pymfn build does not report it"),
                "by_layer_type": props.get("runtime_precision_by_layer_type", ""),
                "source": "the compiled model's execution graph (OpenVINO runtimePrecision per node)"}
    if kind == "tf":
        return {"requested": "f32", "runtime": "f32", "check": "ok", "by_layer_type": "",
                "source": "TensorFlow runs the frozen graph as it is (float32)"}
    if kind == "acl" and props.get("acl_runtime") == "emulator":
        info = om_emu_precision(model_path)
        want = requested or info["declared"]
        rt = emulator_runtime(model_path)
        why = (f"the om declares {info['declared']} (payload {info['payload_precision']}, "
               f"{info['fake_quantize_ops']} FakeQuantize ops); the emulator compiles it with inference precision "
               f"{rt['emulator_inference_precision']}")
        return {"requested": want, "declared": info["declared"], "runtime": rt["runtime_precision"],
                "check": verdict(want, rt["compute"], why), "by_layer_type": rt["runtime_precision_by_layer_type"],
                "emulator_inference_precision": rt["emulator_inference_precision"],
                "source": "reproduced: the om's payload IR compiled the way the emulator compiles it (the emulator "
                          "does not report its own compile)"}
    return {"requested": requested or "as converted", "runtime": "fixed by atc at conversion", "check": "unknown: "
            "a real om does not report its runtime precision", "by_layer_type": "", "source": "real AscendCL runtime"}


def requested_for(engine: Any, cli_precision: str) -> str | None:
    """The request to check: the command line's, except that its default 'f32' means "as converted" for an .om."""
    if engine.kind == "acl" and canonical(cli_precision) == "f32":
        return None
    return canonical(cli_precision)


def report_line(report: dict[str, Any]) -> str:
    """'precision     : requested int8, ran int8 x50 (kernels i8 x50) -- ok' (the verdict in full when not ok)."""
    return f"  precision     : requested {report['requested']}, ran {ran_text(report['runtime'])} -- {report['check']}"


def warn_if_not_ok(report: dict[str, Any], prog: str) -> None:
    """One stderr line when the precision that ran is not the one asked for (the table may scroll away)."""
    import sys

    if report["check"] != "ok":
        print(f"{prog}: warning: precision {report['check']}", file=sys.stderr)

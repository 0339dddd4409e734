"""Which precisions this host can run, and what a model really ran in -- so no report claims bf16 when f32 ran.

OpenVINO treats a precision as a hint: asked for bf16 on a CPU without bf16 units it quietly runs f32, and a
quantized model runs its quantized layers in int8 whatever is asked. So every pymfn report states the
requested precision beside the *runtime* precision read from the compiled model's execution graph
(``layerType`` / ``runtimePrecision`` per executed node), and a one-line verdict by meaning (``u8`` and ``i8``
kernels are both int8):

* OpenVINO engine: the native engine's ``properties()`` (``runtime_precision``, ``precision_check``).
* TensorFlow reference: the frozen graph as it is (f32).
* ACL engine on the emulator: what the emulator says it compiled (its compile record, ``emulator_*`` in the
  engine's ``properties()``): its own arithmetic -- f32 on every host, on fp16-rounded weights and inputs for
  an fp16 om and on int8-grid values for an INT8 om -- beside the device's arithmetic for the same om. The
  verdict is "ok" when the emulator computes at least as precisely as the device, and the report says so
  whenever the two differ. On a real Ascend 310 the om's precision is fixed by atc and not reported.
"""
from __future__ import annotations

import os
import re
from collections import Counter
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


def ran_text(runtime: str, kernels: bool = True) -> str:
    """'u8 x3, f32 x1' -> 'int8 x3, f32 x1 (kernels u8 x3, f32 x1)': what ran by meaning, kernels beside it
    (``kernels=False``: the meaning alone)."""
    by_kernel = parse_counts(runtime)
    if not by_kernel:
        return runtime
    counts: Counter = Counter()
    for k, n in by_kernel.items():
        counts[meaning(k)] += n
    text = counts_text(counts)
    return text if not kernels or all(meaning(k) == k for k in by_kernel) else f"{text} (kernels {runtime})"


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
    from pymfn.export import om

    _header, meta, xml, _weights = om.read_emulator_om(path)
    fq = len(_FQ.findall(xml))
    return {"payload_precision": meta.precision, "precision_mode": meta.precision_mode, "fake_quantize_ops": fq,
            "declared": "int8" if fq else meta.precision}


# Precisions ordered by what they keep: int8 < bf16 (8 mantissa bits) < f16 (11) < f32 (24).
_RANK = {"int8": 0, "bf16": 1, "f16": 2, "f32": 3}


def at_least(kernel_precision: str, device: str) -> bool:
    """True when a kernel precision (OpenVINO's name) computes at least as precisely as ``device`` does."""
    have, need = _RANK.get(meaning(kernel_precision)), _RANK.get(device)
    return have is not None and need is not None and have >= need


def parse_counts(text: str) -> dict[str, int]:
    """'f32 x50, u8 x2' -> {'f32': 50, 'u8': 2}; text in another form gives {}."""
    counts: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        m = re.fullmatch(r"(\S+) x(\d+)", part)
        if not m:
            return {}
        counts[m.group(1)] = counts.get(m.group(1), 0) + int(m.group(2))
    return counts


def emulator_verdict(requested: str, device: str, compute: dict[str, int]) -> str:
    """'ok' when the om is what was asked for and every compute layer of the emulator ran at least the
    device's arithmetic; else what is below it."""
    if requested != device:
        return (f"mismatch: requested {requested}, the om was converted for {device} (an om's arithmetic is fixed "
                "at conversion)")
    if not compute:
        return "unknown: the emulator's execution graph shows no convolution or matrix-multiply layers"
    low = {p: n for p, n in compute.items() if not at_least(p, device)}
    if not low:
        return "ok"
    total = sum(compute.values())
    return (f"{'mismatch' if sum(low.values()) == total else 'partial'}: requested {requested}, the emulator's "
            f"compute layers ran {counts_text(compute)}; {counts_text(low)} below the device's {device}")


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
        if "emulator_compute_precision" not in props:
            return {"requested": requested or "as converted", "runtime": "unknown", "by_layer_type": "",
                    "check": "unknown: this emulator does not report what it compiled (pymfnEmuModelCompileRecord)",
                    "source": "emulator without a compile record"}
        device = props["emulator_device_precision"]
        compute = props["emulator_compute_precision"]
        want = requested or device
        runtime = props.get("emulator_runtime_precision", "unknown")
        return {"requested": want, "declared": device, "runtime": runtime,
                "check": emulator_verdict(want, device, parse_counts(runtime)),
                "by_layer_type": props.get("emulator_runtime_precision_by_layer_type", ""),
                "stored_weights": props.get("emulator_stored_weights_precision", ""),
                "emulator_compute_precision": compute, "device_precision": device,
                "emulator_precision_reason": props.get("emulator_precision_reason", ""),
                "emulation": None if compute == device else f"emulator: {props.get('emulator_precision_reason', compute)}",
                "source": "the emulator's compile record (pymfnEmuModelCompileRecord): its OpenVINO execution graph"}
    return {"requested": requested or "as converted", "runtime": "fixed by atc at conversion", "check": "unknown: "
            "a real om does not report its runtime precision", "by_layer_type": "", "source": "real AscendCL runtime"}


def emulator_line(props: dict[str, Any]) -> str | None:
    """One line saying what the ACL emulator compiled a model to, beside the device's arithmetic; None when the
    engine is not on the emulator (or the emulator does not say)."""
    if props.get("acl_runtime") != "emulator" or "emulator_compute_precision" not in props:
        return None
    compute, device = props["emulator_compute_precision"], props["emulator_device_precision"]
    relation = "the device's too" if compute == device else f"device {device}"
    return (f"emulator computes {compute} ({relation}): {props.get('emulator_precision_reason', '')}; compute "
            f"layers ran {ran_text(props.get('emulator_runtime_precision', 'unknown'))}")


def requested_for(engine: Any, cli_precision: str) -> str | None:
    """The request to check: the command line's, except that its default 'f32' means "as converted" for an .om."""
    if engine.kind == "acl" and canonical(cli_precision) == "f32":
        return None
    return canonical(cli_precision)


def report_line(report: dict[str, Any]) -> str:
    """'precision     : requested int8, ran int8 x50 (kernels i8 x50) -- ok' (the verdict in full when not ok);
    on the emulator, what its arithmetic is when it differs from the device's ('; emulator: f32 on ...')."""
    line = f"  precision     : requested {report['requested']}, ran {ran_text(report['runtime'])} -- {report['check']}"
    return line + (f"; {report['emulation']}" if report.get("emulation") else "")


def warn_if_not_ok(report: dict[str, Any], prog: str) -> None:
    """One stderr line when the precision that ran is not the one asked for (the table may scroll away)."""
    import sys

    if report["check"] != "ok":
        print(f"{prog}: warning: precision {report['check']}", file=sys.stderr)

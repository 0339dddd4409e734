"""Where OpenVINO spends a batch-1 inference, layer by layer, and how close each convolution runs to the machine.

Why it exists: the OpenVINO ÷ TensorFlow speedup target sits right at its limit on a 2-core AVX2 host, and the
question "can pymfn make OpenVINO faster?" is answered by looking at the kernels. This prints OpenVINO's own
per-layer counters (``PERF_COUNT``), the GFLOP/s of every convolution computed from its shapes, and, as the
yardstick, the GFLOP/s of a large single-precision matrix product (numpy's BLAS) on the same cores.

    python bench/openvino_layers.py                # the default model
    python bench/openvino_layers.py --model M.pb --top 15 --json layers.json

Counters slow the run down a little (they time every node), so the per-layer sum exceeds a plain latency run.
"""
from __future__ import annotations

import argparse
import collections
import json
import math
import sys
import time
from pathlib import Path

import numpy as np


def conv_flops(out_shape: list[int], weight_shape: list[int], grouped: bool) -> float:
    """Multiply-adds x 2 of an NCHW convolution: every output element takes (C_in/groups) * Kh * Kw MACs."""
    kernel = weight_shape[2:] if grouped else weight_shape[1:]  # grouped weights: [G, O/G, I/G, Kh, Kw]
    return 2.0 * math.prod(out_shape) * math.prod(kernel)


def sgemm_gflops(n: int = 2048, rounds: int = 6) -> float:
    """Best-of GFLOP/s of an n x n x n float32 matrix product: what dense math reaches on these cores."""
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = np.random.default_rng(1).random((n, n), dtype=np.float32)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(rounds))
    return 2.0 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def profile(model: Path, iterations: int, threads: int) -> dict:
    import openvino as ov

    core = ov.Core()
    graph = core.read_model(str(model)) if model.suffix in (".xml", ".onnx") else ov.convert_model(str(model))
    graph.reshape([1, *[int(d) for d in graph.input(0).get_partial_shape()[1:].to_shape()]])
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32", "PERF_COUNT": "YES"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = str(threads)
    compiled = core.compile_model(graph, "CPU", config)
    shapes = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        if op.get_input_size() >= 2:
            shapes[op.get_friendly_name()] = ([int(d) for d in op.get_output_partial_shape(0).to_shape()],
                                              [int(d) for d in op.input(1).get_partial_shape().to_shape()])
    request = compiled.create_infer_request()
    x = np.random.default_rng(0).uniform(-1, 1, tuple(compiled.input(0).shape)).astype(np.float32)
    for _ in range(max(10, iterations // 5)):
        request.infer({0: x})
    per_layer: dict[tuple[str, str, str], float] = collections.defaultdict(float)
    for _ in range(iterations):
        request.infer({0: x})
        for p in request.profiling_info:
            if p.status == p.Status.EXECUTED:
                per_layer[(p.node_name, p.node_type, p.exec_type)] += p.real_time.total_seconds() * 1e6 / iterations
    layers = []
    for (name, kind, impl), us in per_layer.items():
        row = {"name": name, "type": kind, "impl": impl, "us": round(us, 2)}
        if kind in ("Convolution", "GroupConvolution") and name in shapes:
            out_shape, w_shape = shapes[name]
            row["output"], row["weights"] = out_shape, w_shape
            row["gflop_per_s"] = round(conv_flops(out_shape, w_shape, kind == "GroupConvolution") / us / 1e3, 1)
        layers.append(row)
    layers.sort(key=lambda r: -r["us"])
    by_type: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0])
    for r in layers:
        by_type[f'{r["type"]} ({r["impl"]})'][0] += r["us"]
        by_type[f'{r["type"]} ({r["impl"]})'][1] += 1
    return {"model": str(model), "threads": compiled.get_property("INFERENCE_NUM_THREADS"),
            "iterations": iterations, "total_us": round(sum(r["us"] for r in layers), 1),
            "by_type": {k: {"us": round(v[0], 1), "layers": v[1]} for k, v in sorted(by_type.items(), key=lambda kv: -kv[1][0])},
            "layers": layers}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="frozen .pb, .onnx or OpenVINO .xml (default: pymfn's default model)")
    p.add_argument("--iterations", type=int, default=200,
                   help="profiled inferences; the counters are averaged over them (default 200)")
    p.add_argument("--threads", type=int, default=0,
                   help="OpenVINO inference threads (default 0 = what the latency hint picks)")
    p.add_argument("--top", type=int, default=12, help="how many layers to list, slowest first (default 12)")
    p.add_argument("--json", help="also write the full per-layer table here (written atomically)")
    args = p.parse_args(argv)
    if args.iterations < 1:
        p.error("--iterations must be at least 1")
    if args.model:
        model = Path(args.model)
        if not model.is_file():
            p.error(f"--model {model}: no such file")
    else:
        from pymfn.export.default_model import default_model

        model = default_model(quiet=True).path
    result = profile(model, args.iterations, args.threads)
    result["sgemm_2048_gflop_per_s"] = round(sgemm_gflops(), 1)
    print(f"{result['model']}: {result['total_us'] / 1e3:.3f} ms per inference summed over layers "
          f"({result['threads']} threads, {args.iterations} profiled runs)")
    for kind, v in result["by_type"].items():
        print(f"  {v['us']:8.1f} us  {v['us'] / result['total_us']:6.1%}  {v['layers']:3d} x {kind}")
    print(f"slowest {args.top} layers:")
    for r in result["layers"][:args.top]:
        rate = f"{r['gflop_per_s']:6.1f} GFLOP/s" if "gflop_per_s" in r else ""
        print(f"  {r['us']:8.1f} us  {r['type']:17s} {str(r.get('weights', '')):22s} -> {str(r.get('output', '')):20s} {rate}")
    convs = [r for r in result["layers"] if r["type"] == "Convolution" and "gflop_per_s" in r]
    if convs:
        flops = sum(r["gflop_per_s"] * r["us"] for r in convs)
        result["convolution_gflop_per_s"] = round(flops / sum(r["us"] for r in convs), 1)
        print(f"dense convolutions overall: {result['convolution_gflop_per_s']} GFLOP/s; "
              f"a 2048^3 sgemm on the same cores: {result['sgemm_2048_gflop_per_s']} GFLOP/s")
    if args.json:
        from pymfn.files.atomic import atomic_write

        with atomic_write(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

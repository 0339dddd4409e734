"""Put Huawei msame's figures beside a pymfn run of the same .om and the same input folder.

msame times one synchronous aclmdlExecute per file with gettimeofday and prints averages only; pymfn
times the same scope ("compute") with a monotonic clock and reports the full distribution. Whole-folder
wall time (read + execute + write for every file) is shown for both where it is known.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import pymfn
from pymfn.bench import report


def _pymfn_run(model: Path, inputs: Path, args: argparse.Namespace) -> dict[str, Any]:
    core = pymfn.load_core()
    from pymfn.bench.perf import input_spec
    from pymfn.datasets import open_dataset
    from pymfn.engines import open_engine

    engine = open_engine(str(model), engine=args.engine)
    info, shape, dtype = input_spec(engine)
    batch = args.batch
    ds = open_dataset(inputs, sample_bytes=info.sample_bytes, dtype=str(dtype), sample_shape=shape, order="lexicographic")
    settings = core.RunSettings()
    settings.batch_size = batch
    settings.warmup_iterations = args.warmup
    settings.min_iterations = max(1, -(-ds.sample_count // batch))
    settings.min_duration_ms = 0
    settings.scope = core.TimingScope.kCompute
    result = core.run_benchmark(engine, ds.reader(batch, 2), settings)
    t0 = time.perf_counter()
    outputs = core.infer_all(engine, ds.reader(batch, 2))
    folder_s = time.perf_counter() - t0
    props = {str(k): str(v) for k, v in dict(engine.properties()).items()}
    return {"result": result, "folder_s": folder_s, "outputs": outputs, "files": ds.sample_count, "properties": props}


def main_msame(args: argparse.Namespace) -> int:
    from pymfn import msame

    log_info = None
    msame_outputs = None
    msame_wall = None
    if args.log:
        log_info = msame.parse_msame_log(Path(args.log).read_text(errors="replace"))
    if args.msame_output:
        msame_outputs = msame.read_outputs(Path(args.msame_output), dtype=args.output_dtype)
    if args.run_msame:
        if not (args.model and args.input):
            raise SystemExit("--run-msame needs --model and --input")
        out_dir = Path(args.msame_output or tempfile.mkdtemp(prefix="pymfn-msame-"))
        t0 = time.perf_counter()
        run = msame.run_msame(args.model, args.input, out_dir)
        msame_wall = time.perf_counter() - t0
        log_info = run.log
        msame_outputs = msame.read_outputs(out_dir, dtype=args.output_dtype)
    if log_info is None and msame_outputs is None and not (args.model and args.input):
        raise SystemExit("give --log and/or --msame-output (figures from an earlier msame run), or --run-msame with "
                         f"--model and --input (msame on PATH: {shutil.which('msame') or 'not found'})")

    ours = None
    if args.model and args.input:
        ours = _pymfn_run(Path(args.model), Path(args.input), args)

    rows: list[tuple[str, str, str]] = []
    if log_info is not None:
        rows.append(("mean per execute (ms)", f"{log_info.average_ms:.3f}" if log_info.average_ms is not None else "-", ""))
        rows.append(("mean without first (ms)",
                     f"{log_info.average_without_first_ms:.3f}" if log_info.average_without_first_ms is not None else "-", ""))
        rows.append(("executes in log", str(len(log_info.run_times_ms)), ""))
    if ours is not None:
        lat = ours["result"].latency
        def put(name: str, value: str) -> None:
            for i, (n, m, _) in enumerate(rows):
                if n == name:
                    rows[i] = (n, m, value)
                    return
            rows.append((name, "-", value))
        samples = np.asarray(ours["result"].samples_ms)
        put("mean per execute (ms)", f"{lat.mean:.3f}")
        put("mean without first (ms)", f"{samples[1:].mean():.3f}" if samples.size > 1 else "-")
        put("executes in log", str(ours["result"].iterations))
        put("median (ms)", f"{lat.median:.3f}")
        put("p99 (ms)", f"{lat.p99:.3f}")
        put("whole folder wall (s)", f"{ours['folder_s']:.3f}")
    if msame_wall is not None:
        for i, (n, m, o) in enumerate(rows):
            if n == "whole folder wall (s)":
                rows[i] = (n, f"{msame_wall:.3f}", o)
    width = max(len(r[0]) for r in rows) if rows else 10
    print(f"{'':<{width}}  {'msame':>12}  {'pymfn':>12}")
    for n, m, o in rows:
        print(f"{n:<{width}}  {m:>12}  {o or '-':>12}")
    print("\nmsame: gettimeofday around one synchronous aclmdlExecute per file, no warm-up; "
          "pymfn: steady_clock, same scope ('compute'), "
          f"{args.warmup} warm-up execute(s) excluded.")
    if ours is not None and ours["properties"].get("acl_runtime") == "emulator":
        print("NOTE: pymfn ran on the ACL emulator: its timings are host timings, not Ascend NPU timings.")
    doc: dict[str, Any] = {"msame": None, "pymfn": None}
    if log_info is not None:
        doc["msame"] = {"average_ms": log_info.average_ms, "average_without_first_ms": log_info.average_without_first_ms,
                        "run_times_ms": list(log_info.run_times_ms), "wall_s": msame_wall}
    if ours is not None:
        doc["pymfn"] = {**report.result_to_json(ours["result"], {"engine_properties": ours["properties"]}),
                        "folder_wall_s": ours["folder_s"]}
    if msame_outputs is not None and ours is not None:
        a = np.asarray(msame_outputs, dtype=np.float32)
        b = np.asarray(ours["outputs"][0], dtype=np.float32).reshape(len(ours["outputs"][0]), -1)
        if a.shape == b.shape:
            diff = float(np.max(np.abs(a - b)))
            doc["max_abs_output_diff"] = diff
            print(f"outputs: max |msame - pymfn| = {diff:.3g} over {a.shape[0]} samples")
        else:
            print(f"outputs: shapes differ (msame {a.shape}, pymfn {b.shape}); not compared")
    if args.json:
        report.write_json(doc, args.json)
        print(f"JSON written to {args.json}")
    return 0


def add_msame_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log", help="an msame log (its 'Inference time' and 'Inference average time' lines are parsed)")
    p.add_argument("--msame-output", help="msame's --output folder (timestamped subfolder inside is found)")
    p.add_argument("--run-msame", action="store_true", help="run msame (must be on PATH) on --model/--input first")
    p.add_argument("--model", help="the .om both tools run")
    p.add_argument("--input", help="the folder of .bin inputs both tools read (msame's lexicographic order is used)")
    p.add_argument("--engine", choices=["acl", "openvino"], default=None, help="pymfn engine (default: acl for .om)")
    p.add_argument("--batch", type=int, default=1, help="pymfn batch size (msame runs batch 1 unless --dymBatch)")
    p.add_argument("--warmup", type=int, default=1, help="pymfn warm-up executes (ais_bench's default is 1)")
    p.add_argument("--output-dtype", default="float16", help="dtype of msame .bin outputs (default float16)")
    p.add_argument("--json", help="write both sides as JSON")

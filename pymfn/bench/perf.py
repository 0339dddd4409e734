"""Latency and throughput runs: pick model, engine and input, hand them to the C++ runner, report."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

import pymfn
from pymfn.files.outputs import check_output_path, save_output
from pymfn.cli.common import interrupted_exit
from pymfn.bench import report


def resolve_model(model: str | None, quiet: bool = False) -> tuple[Path, str, bool]:
    """(path, description, pretrained) for --model, or the built-in default model when it is None."""
    if model is None:
        from pymfn.export.default_model import default_model

        dm = default_model(quiet=quiet)
        return dm.path, dm.description, dm.pretrained
    path = Path(model)
    if not path.exists():
        raise SystemExit(f"--model: {path} does not exist")
    return path, f"user model {path.name}", True


def open_engine_from_args(args: argparse.Namespace, model: Path) -> Any:
    from pymfn.runtime.engines import open_engine

    return open_engine(
        str(model),
        engine=args.engine,
        precision=args.precision,
        threads=args.threads,
        streams=args.streams,
        inflight=args.inflight,
    )


def parse_devices(text: str | None) -> list[int] | None:
    """``--device 0,1,2,3`` -> [0, 1, 2, 3]; None when the option was not given."""
    if text is None:
        return None
    parts = [p.strip() for p in str(text).split(",")]
    if not parts or any(not p.isdigit() for p in parts):
        raise SystemExit(f"--device {text}: expected device ids >= 0 separated by commas, e.g. 0 or 0,1,2,3")
    ids = [int(p) for p in parts]
    if len(set(ids)) != len(ids):
        raise SystemExit(f"--device {text}: a device is listed twice")
    if len(ids) > 64:
        raise SystemExit(f"--device {text}: at most 64 devices")
    return ids


def engine_kind(args: argparse.Namespace, model: Path) -> str:
    """The engine ``open_engine`` will pick for --engine / the model's suffix."""
    from pymfn.runtime.engines import ENGINE_BY_SUFFIX

    return args.engine or ENGINE_BY_SUFFIX.get(model.suffix.lower(), "openvino")


def open_device_engines(args: argparse.Namespace, model: Path) -> tuple[list[Any], list[str]]:
    """One engine per ``--device`` entry (or the single engine of today without it), and their names.

    ACL: one AclEngine per device id (its own context, model instances, streams and buffers). OpenVINO
    on the host: one engine per listed lane, each a single OpenVINO stream with its share of the cores
    (``--threads`` per lane, default cores / lanes), so the lanes run side by side like devices.
    """
    devices = parse_devices(getattr(args, "device", None))
    if devices is None:
        engine = open_engine_from_args(args, model)
        return [engine], [_single_name(engine)]
    from pymfn.runtime.engines import open_engine

    kind = engine_kind(args, model)
    if kind == "acl":
        engines = [open_engine(str(model), engine="acl", precision=args.precision, threads=args.threads,
                               streams=args.streams, inflight=args.inflight, device=d) for d in devices]
        return engines, [f"acl device {d}" for d in devices]
    if kind == "openvino":
        if args.streams not in (0, 1):
            raise SystemExit(f"--streams {args.streams}: with --device every lane is one OpenVINO stream; "
                             "leave --streams out")
        threads = args.threads or max(1, (os.cpu_count() or 1) // len(devices))
        engines = [open_engine(str(model), engine="openvino", precision=args.precision, threads=threads, streams=1,
                               inflight=args.inflight, hint="latency") for _ in devices]
        return engines, [f"openvino lane {d} ({threads} thread{'s' if threads > 1 else ''})" for d in devices]
    raise SystemExit(f"--device: the {kind} engine has no devices; use the acl engine (.om) or openvino")


def _single_name(engine: Any) -> str:
    props = {str(k): str(v) for k, v in dict(engine.properties()).items()}
    if engine.kind == "acl":
        return f"acl device {props.get('device', '0')}"
    return f"{engine.kind} {props.get('device', '')}".strip()


def make_settings(core: Any, args: argparse.Namespace, batch: int) -> Any:
    """RunSettings from the options every timed command shares."""
    settings = core.RunSettings()
    settings.batch_size = batch
    settings.warmup_iterations = args.warmup
    settings.warmup_ms = args.warmup_ms
    settings.min_duration_ms = args.min_duration * 1000.0
    settings.max_duration_ms = args.max_duration * 1000.0
    settings.inflight = args.inflight
    if hasattr(args, "min_iterations"):
        settings.min_iterations = args.min_iterations
    if hasattr(args, "scope"):
        settings.scope = core.TimingScope.kEndToEnd if args.scope == "end-to-end" else core.TimingScope.kCompute
    return settings


def run_plan(settings: Any) -> str:
    """One line before a run starts: what it will do, how long it may take, and that Ctrl-C keeps the result."""
    warm = f"{settings.warmup_iterations} warm-up requests"
    if settings.warmup_ms > 0:
        warm += f" and >= {settings.warmup_ms:g} ms of warm-up"
    return (f"running: {warm}, then >= {settings.min_iterations} measured requests and >= "
            f"{settings.min_duration_ms / 1000:g} s; the whole run is capped at {settings.max_duration_ms / 1000:g} s "
            "(--max-duration). Ctrl-C stops it and keeps what was measured")


def keep_partial(call: Callable[[], Any]) -> tuple[Any, bool]:
    """``call()`` (a core run) -> (result, interrupted). Ctrl-C during it gives its partial result instead of
    an exception; a KeyboardInterrupt with nothing measured to keep propagates."""
    core = pymfn.load_core()
    try:
        return call(), False
    except core.RunInterrupted as exc:
        if exc.result is None:
            raise
        return exc.result, True


def partial_note(where: Path | None, what: str) -> str:
    """The stderr line of an interrupted command: what the partial result holds and where it went."""
    return f"the partial result ({what}) " + (f"is saved in {where}" if where else "is printed above")


def run_meta(args: argparse.Namespace, mode: str, engines: list[Any], names: list[str], model: Path, description: str,
             pretrained: bool, batch: int, input_desc: str) -> dict[str, Any]:
    """The facts every report of a timed run carries (engine, model, settings, build, host)."""
    core = pymfn.load_core()
    props = {str(k): str(v) for k, v in dict(engines[0].properties()).items()}  # every device runs the same model
    meta: dict[str, Any] = {
        "mode": mode,
        "engine": engines[0].kind,
        "model": str(model),
        "model_description": description,
        "pretrained": pretrained,
        "batch": batch,
        "precision": props.get("precision", args.precision),
        "scope": getattr(args, "scope", "compute"),
        "inflight": args.inflight,
        "input": input_desc,
        "device_names": names,
        "engine_properties": props,
        "build_info": dict(core.build_info()),
        "host": report.host_info(),
    }
    from pymfn.runtime.precision import precision_report, requested_for

    meta["precision_report"] = precision_report(engines[0], requested_for(engines[0], args.precision), model)
    if "acl_runtime" in props:
        meta["acl_runtime"] = props["acl_runtime"]
        if props["acl_runtime"] == "emulator":
            meta["timing_note"] = ("ACL emulator: these are HOST timings of pymfn's harness + OpenVINO on this CPU, "
                                   "not Ascend NPU timings")
            if "emulator_device_model" in props:
                meta["timing_note"] += f" ({props['emulator_device_model']})"
    return meta


def input_spec(engine: Any) -> tuple[Any, tuple[int, ...], np.dtype]:
    """The model's (first) input, its per-sample shape and numpy dtype; rejects multi-input models."""
    inputs = engine.inputs()
    real = [t for t in inputs if t.name != "ascend_mbatch_shape_data"]
    if len(real) != 1:
        raise SystemExit(f"model has {len(real)} data inputs ({[t.name for t in real]}); pymfn.bench drives one-input models")
    info = real[0]
    shape = tuple(int(d) for d in info.shape[1:])
    if any(d < 0 for d in shape):
        raise SystemExit(f"input '{info.name}' has a dynamic non-batch dimension {list(info.shape)}; convert with a fixed shape")
    return info, shape, np.dtype(info.dtype)


def make_dataset(args: argparse.Namespace, engine: Any, count: int) -> tuple[Any, str]:
    """The input source: --input (folder / packed / .npy) or seeded random data shaped for the model."""
    core = pymfn.load_core()
    info, shape, dtype = input_spec(engine)
    if args.input:
        from pymfn.inputs.datasets import open_dataset

        ds = open_dataset(args.input, sample_bytes=info.sample_bytes, dtype=str(dtype), sample_shape=shape,
                          order=getattr(args, "order", "natural"), folder_io=getattr(args, "folder_io", "mmap"))
        return ds, ds.describe()
    # Checked before allocating: a typo such as --batch 1000000000 must be an error naming the option,
    # not numpy's "Unable to allocate 1.07 PiB" (uniform() makes float64 before the cast).
    need = count * int(np.prod(shape)) * max(dtype.itemsize, 8)
    if need > _physical_memory():
        raise SystemExit(f"--batch {args.batch}: the random input ({count} samples, {need / 2**30:.1f} GiB) does not "
                         "fit in this machine's memory; use a smaller --batch or give --input")
    rng = np.random.default_rng(args.seed)
    if dtype == np.uint8:
        data = rng.integers(0, 256, size=(count, *shape), dtype=np.uint8)
    else:
        data = rng.uniform(-1.0, 1.0, size=(count, *shape)).astype(dtype)
    return core.ArrayDataset(data), f"random {dtype} {list(shape)} x {count} (seed {args.seed}, cycled)"


def _physical_memory() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # not POSIX: no limit known
        return 2**63


def choose_batch(engine: Any, requested: int) -> int:
    offered = list(engine.supported_batches())
    if offered and requested not in offered:
        raise SystemExit(f"--batch {requested}: the model only offers batch sizes {offered}")
    return requested


def run(args: argparse.Namespace, mode: str) -> int:
    core = pymfn.load_core()
    check_output_path(args.json, "--json")
    check_output_path(args.plot, "--plot")
    model, description, pretrained = resolve_model(args.model, quiet=args.quiet)
    engines, names = open_device_engines(args, model)
    batch = choose_batch(engines[0], args.batch)
    dataset, input_desc = make_dataset(args, engines[0], count=max(batch * 4 * len(engines), 16))
    reader = dataset.reader(batch, args.prefetch)
    settings = make_settings(core, args, batch)
    if not args.quiet:
        print(run_plan(settings), flush=True)
    if getattr(args, "device", None) is None:
        result, interrupted = keep_partial(lambda: core.run_benchmark(engines[0], reader, settings))
    else:
        result, interrupted = keep_partial(lambda: core.run_devices(engines, reader, settings, names=names))

    meta = run_meta(args, mode, engines, names, model, description, pretrained, batch, input_desc)
    doc = report.result_to_json(result, meta)
    print(report.format_table(doc))
    prog = f"pymfn bench {mode}"
    from pymfn.runtime.precision import report_line, warn_if_not_ok

    print(report_line(meta["precision_report"]))
    warn_if_not_ok(meta["precision_report"], prog)
    json_at = None
    if args.json and (json_at := save_output(args.json, lambda p: report.write_json(doc, p), "--json", prog)):
        print(f"\nJSON (with {len(doc['samples_ms'])} raw samples) written to {json_at}")
    if args.plot and doc["samples_ms"] and (
            where := save_output(args.plot, lambda p: report.plot_latency(doc, p), "--plot", prog)):
        print(f"plot written to {where}")
    if interrupted:
        return interrupted_exit(prog, partial_note(json_at, f"{doc['iterations']} measured requests after "
                                                              f"{doc['warmup']} warm-up requests"))
    return 0


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """--model, --engine, --precision, --threads, --streams, --device: what runs, and where."""
    g = p.add_argument_group("model and engine")
    g.add_argument("--model", help="frozen .pb, .onnx, OpenVINO .xml or Ascend .om; default: the built-in MobileFaceNet "
                   "(pretrained weights from PYMFN_SHARED when present, else random weights), cached in $XDG_CACHE_HOME/pymfn")
    g.add_argument("--engine", choices=["openvino", "acl", "tf"], default=None,
                   help="execution engine; default: from the file type (.om -> acl, else openvino). 'tf' is the "
                   "TensorFlow session reference engine (frozen .pb only)")
    g.add_argument("--precision", choices=["f32", "bf16", "f16", "int8"], default="f32",
                   help="OpenVINO inference precision (default f32: this CPU would silently pick bf16 otherwise); int8 "
                   "needs a quantized model (python -m pymfn quantize). The report states the precision that really "
                   "ran, from the compiled model. An .om's precision is fixed at conversion (f32 = as converted)")
    g.add_argument("--threads", type=int, default=0, help="inference threads (0 = engine default = all cores; with "
                   "--device on the host: per lane, default cores / lanes)")
    g.add_argument("--streams", type=int, default=0, help="OpenVINO streams (0 = engine default for the hint)")
    g.add_argument("--device", default=None, metavar="IDS",
                   help="run on several devices at once, e.g. 0,1,2,3: the acl engine opens one context, model and "
                   "request set per device; the openvino engine one single-stream lane per entry, each with its share "
                   "of the cores. One dataset feeds them all, one clock times them: the aggregate is all samples / the "
                   "common wall time (never a sum of per-device rates), with each device's own figures and the skew "
                   "between them. Without it: one engine (acl: device 0)")


def add_input_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("input")
    g.add_argument("--input", help="folder of per-sample .bin files, a packed file (python -m pymfn pack) or a .npy; "
                   "default: seeded random data shaped like the model input")
    g.add_argument("--order", choices=["natural", "lexicographic"], default="natural",
                   help="file order for a .bin folder: natural (2.bin before 10.bin) or lexicographic (msame's)")
    g.add_argument("--folder-io", choices=["mmap", "pread"], default="mmap",
                   help="how a .bin folder is read: mmap = each file mapped once and copied from its mapping "
                   "(faster from the second pass on); pread = open/read/close every time (for files that change "
                   "during the run)")
    g.add_argument("--prefetch", type=int, default=2, help="batches the folder loader prepares ahead (default 2)")
    g.add_argument("--seed", type=int, default=0, help="seed of the random input (default 0)")


def add_output_arguments(p: argparse.ArgumentParser, plot_help: str) -> None:
    g = p.add_argument_group("output")
    g.add_argument("--json", help="write the full result (stats, settings, build/host info, raw samples) as JSON")
    g.add_argument("--plot", help=plot_help)
    g.add_argument("--quiet", action="store_true", help="fewer progress messages")


def add_run_arguments(p: argparse.ArgumentParser, *, batch: int, inflight: int, min_duration: float) -> None:
    add_model_arguments(p)
    g = p.add_argument_group("run")
    g.add_argument("--batch", type=int, default=batch, help=f"samples per request (default {batch})")
    g.add_argument("--inflight", type=int, default=inflight,
                   help=f"requests in flight (default {inflight}; per device with --device); >1 uses the engine's "
                   "asynchronous path")
    g.add_argument("--warmup", type=int, default=10, help="untimed warm-up iterations (default 10)")
    g.add_argument("--warmup-ms", type=float, default=0.0, help="and keep warming up for at least this long (ms)")
    g.add_argument("--min-iterations", type=int, default=100, help="measure at least this many requests (default 100)")
    g.add_argument("--min-duration", type=float, default=min_duration,
                   help=f"and for at least this many seconds (default {min_duration})")
    g.add_argument("--max-duration", type=float, default=60.0,
                   help="cap on the whole run, warm-up included: stop after this many seconds even if the minimums "
                   "are not met (a warning says so; default 60)")
    g.add_argument("--scope", choices=["compute", "end-to-end"], default="compute",
                   help="compute = engine execute only (msame/ais_bench scope); end-to-end = load + execute + fetch")
    add_input_arguments(p)
    add_output_arguments(p, "write a PNG with the latency histogram and the per-iteration trace")


def main_latency(args: argparse.Namespace) -> int:
    return run(args, "latency")


def main_throughput(args: argparse.Namespace) -> int:
    return run(args, "throughput")


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use python -m pymfn.bench")

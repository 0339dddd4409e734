"""pymfn's aarch64 build inside an aarch64 Python (qemu user emulation), checked against a numpy reference.

    python .ci/aarch64_smoke.py prepare DIR            # the build host's Python (openvino, numpy)
    <aarch64 python> .ci/aarch64_smoke.py check DIR    # PYMFN_CORE_DIR = the aarch64 build's output folder

prepare writes a small convolutional network as OpenVINO IR and as an ACL-emulator om (f32), inputs, the
network's float64 numpy outputs, and, when the host's own pymfn build is importable, its outputs too.
check imports the aarch64 ``pymfn._core``, runs both models through the OpenVINO engine and the ACL engine
(the aarch64 libascendcl.so on OpenVINO's Arm CPU plugin), compares the outputs with those references, and
runs a short ``run_benchmark``. .ci/cross-aarch64 drives both steps.
"""
from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

BATCH = 4
SAMPLES = 6  # two batches, the second padded: exercises infer_all's padding drop on both hosts
INPUT_SHAPE = (8, 8, 3)  # NHWC sample
EMBEDDING = 16


def weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {"conv": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),  # OIHW
            "bias": rng.standard_normal(4).astype(np.float32),
            "dense": (rng.standard_normal((4 * 6 * 6, EMBEDDING)) / 12).astype(np.float32)}


def build_model(w: dict[str, np.ndarray]):
    """conv 3x3 (4 filters, valid) + bias + relu, flatten (NCHW order), dense 144 -> 16."""
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([-1, *INPUT_SHAPE], ov.Type.f32, name="data")
    nchw = ops.transpose(x, ops.constant(np.array([0, 3, 1, 2], dtype=np.int64)))
    conv = ops.convolution(nchw, ops.constant(w["conv"]), strides=[1, 1], pads_begin=[0, 0], pads_end=[0, 0],
                           dilations=[1, 1])
    act = ops.relu(ops.add(conv, ops.constant(w["bias"].reshape(1, 4, 1, 1))))
    flat = ops.reshape(act, ops.constant(np.array([-1, 4 * 6 * 6], dtype=np.int64)), special_zero=False)
    out = ops.matmul(flat, ops.constant(w["dense"]), transpose_a=False, transpose_b=False)
    out.output(0).get_tensor().set_names({"embedding"})
    return ov.Model([out], [x], "aarch64_smoke")


def reference(inputs: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    """The same network in float64 numpy: the independent answer both hosts are held to."""
    x = inputs.astype(np.float64)
    conv = np.zeros((len(x), 4, 6, 6))
    for kh in range(3):
        for kw in range(3):
            patch = x[:, kh:kh + 6, kw:kw + 6, :]  # N, 6, 6, C
            conv += np.einsum("nijc,oc->noij", patch, w["conv"][:, :, kh, kw].astype(np.float64))
    act = np.maximum(conv + w["bias"].astype(np.float64)[None, :, None, None], 0)
    return act.reshape(len(x), -1) @ w["dense"].astype(np.float64)


def outputs_of(model_path: Path, inputs: np.ndarray, core) -> tuple[np.ndarray, dict]:
    from pymfn.runtime.engines import open_engine

    engine = open_engine(model_path)
    reader = core.ArrayDataset(inputs).reader(BATCH)
    (out,) = core.infer_all(engine, reader)
    return np.asarray(out, dtype=np.float32).reshape(len(inputs), -1), dict(engine.properties())


def tolerance(reference_out: np.ndarray) -> float:
    # f32 kernels of different libraries (oneDNN, Arm Compute Library) round differently; nothing more.
    return 1e-4 * max(1.0, float(np.max(np.abs(reference_out))))


def prepare(out_dir: Path) -> None:
    import openvino as ov

    import pymfn
    from pymfn.export import om

    out_dir.mkdir(parents=True, exist_ok=True)
    w = weights()
    model = build_model(w)
    xml = out_dir / "smoke.xml"
    ov.save_model(model, str(xml), compress_to_fp16=False)
    meta = om.EmulatorMeta(
        inputs=[om.EmulatorTensor("data", "float32", [BATCH, *INPUT_SHAPE], "NHWC")],
        outputs=[om.EmulatorTensor("embedding", "float32", [BATCH, EMBEDDING], "ND")],
        precision="f32")
    om.write_emulator_om(out_dir / "smoke.om", meta, xml.read_bytes(), xml.with_suffix(".bin").read_bytes())
    inputs = np.random.default_rng(11).standard_normal((SAMPLES, *INPUT_SHAPE)).astype(np.float32)
    np.save(out_dir / "inputs.npy", inputs)
    want = reference(inputs, w)
    np.save(out_dir / "reference.npy", want)
    # This host's outputs too, when its own build is importable: the aarch64 ones are compared with both.
    try:
        core = pymfn.load_core()
    except ImportError as e:
        print(f"aarch64 smoke: no pymfn._core for this host ({e}); comparing with the numpy reference only")
        return
    for name in ("smoke.xml", "smoke.om"):
        out, _ = outputs_of(out_dir / name, inputs, core)
        err = float(np.max(np.abs(out - want)))
        if not err <= tolerance(want):
            raise SystemExit(f"aarch64 smoke: {name} on this host is {err:.2e} from the numpy reference")
        np.save(out_dir / f"host-{name}.npy", out)
    (out_dir / "host-machine.txt").write_text(platform.machine() + "\n")
    print(f"aarch64 smoke: prepared {out_dir} on {platform.machine()}")


def check(out_dir: Path) -> int:
    import pymfn

    core = pymfn.load_core()
    info = core.build_info()
    print(f"aarch64 smoke: {platform.machine()} Python {platform.python_version()}, numpy {np.__version__}, "
          f"pymfn._core from {core.__file__}")
    print(f"aarch64 smoke: build_info {json.dumps(info)}")
    assert platform.machine() == "aarch64", platform.machine()
    assert "aarch64" in core.__file__, core.__file__
    assert info["engines"] == ["openvino", "acl"] and info["acl"] == "emulated", info
    if hasattr(core, "acl_runtime"):
        lib = core.acl_runtime()["library"]
        assert os.path.dirname(lib) == os.environ["PYMFN_CORE_DIR"], f"the emulator came from {lib}"
    inputs = np.load(out_dir / "inputs.npy")
    want = np.load(out_dir / "reference.npy")
    failures = 0
    for name in ("smoke.xml", "smoke.om"):
        here, props = outputs_of(out_dir / name, inputs, core)
        err = float(np.max(np.abs(here - want))) if here.shape == want.shape else float("inf")
        line = f"max |aarch64 - numpy f64| = {err:.2e}"
        host_file = out_dir / f"host-{name}.npy"
        if host_file.exists():
            host = np.load(host_file)
            err_host = float(np.max(np.abs(here - host))) if here.shape == host.shape else float("inf")
            line += f", max |aarch64 - {(out_dir / 'host-machine.txt').read_text().strip()}| = {err_host:.2e}"
            err = max(err, err_host)
        ok = err <= tolerance(want)
        failures += not ok
        ran = props.get("inference_precision") or props.get("acl_library", "?")
        print(f"aarch64 smoke: {name}: {len(here)} outputs, {line} (bound {tolerance(want):.1e}; {ran}): "
              f"{'ok' if ok else 'MISMATCH'}")
    from pymfn.runtime.engines import open_engine

    engine = open_engine(out_dir / "smoke.om")
    settings = core.RunSettings()
    settings.batch_size = BATCH
    settings.warmup_iterations = 2
    settings.min_iterations = 20
    settings.min_duration_ms = 0
    result = core.run_benchmark(engine, core.ArrayDataset(inputs).reader(BATCH), settings)
    print(f"aarch64 smoke: run_benchmark on the emulator: {result.iterations} iterations, "
          f"median {result.latency.median:.3f} ms (emulated CPU: not a performance figure)")
    if result.iterations < 20:
        failures += 1
    print(f"aarch64 smoke: {3 - failures} passed, {failures} failed")
    return 1 if failures else 0


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in ("prepare", "check"):
        print(__doc__, file=sys.stderr)
        return 2
    out_dir = Path(argv[2])
    if argv[1] == "prepare":
        prepare(out_dir)
        return 0
    return check(out_dir)


if __name__ == "__main__":
    sys.exit(main(sys.argv))

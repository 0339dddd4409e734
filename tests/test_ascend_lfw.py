"""The Ascend acceptance run: pretrained MobileFaceNet -> fp16-output pb -> emulator .om -> ACL engine over all
12,000 lfw.bin images, the static model (batch 1) in ACL_HOST mode and the dynamic-batch model (batch 8) in
ACL_DEVICE mode. LFW accuracy must stay within 0.05 pt of the OpenVINO f32 engine on the fp32 pb, the emulator must
say it computed the fp16 om in f32 (the same on every host, docs/precision.md), and it must report zero leaks.

Each model kind and each run mode is covered once over all of LFW (the run mode changes where buffers live and
which copies are checked, not the computation); the other two pairings run on small inputs in
tests/test_acl_engine.py, and tests/test_acl_client.py runs the dynamic model over all of LFW in both modes. Four
full passes of the f16 payload cost CI about 8 minutes; two keep the same coverage of what can differ."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from pymfn import config
from pymfn.cli import main as cli_main

pytestmark = [pytest.mark.slow, pytest.mark.acceptance]

_SCRIPT = textwrap.dedent("""
    import gc, json, sys
    import numpy as np
    import pymfn
    from pymfn.metrics import lfw as lfw_eval
    from pymfn.bench.lfw_accuracy import embed_array
    from pymfn.inputs.lfw_bin import load_lfw
    core = pymfn.load_core()
    lfw_bin, name, path, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    images, issame = load_lfw(lfw_bin, color="rgb")
    x = ((images.astype(np.float32) - 127.5) * 0.0078125)
    engine = core.AclEngine(path)
    props = dict(engine.properties())
    supported = engine.supported_batches()
    emb = embed_array(engine, x, batch)
    del engine
    gc.collect()
    res = lfw_eval.evaluate(emb, issame)
    out = {name: {"accuracy": res.accuracy, "run_mode": props["run_mode"], "acl_runtime": props["acl_runtime"],
                  "arithmetic": [props.get("emulator_compute_precision"), props.get("emulator_device_precision")],
                  "supported": [int(b) for b in supported], "leaks": core.acl_emulator_leaks()["total"]}}
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def oms(lfw_bin, sirius_tflite, core, tmp_path_factory):
    if core.build_info()["acl"] == "off":
        pytest.skip("this build has no AscendCL engine")
    from pymfn.export.default_model import default_model

    d = tmp_path_factory.mktemp("ascend_lfw")
    pb16 = default_model(fp16_output=True, quiet=True).path
    static, dynamic = d / "mfn_static.om", d / "mfn_dynamic.om"
    assert cli_main(["convert", str(pb16), "--target", "om-emu", "--output", str(static)]) == 0
    assert cli_main(["convert", str(pb16), "--target", "om-emu", "--output", str(dynamic), "--dynamic-batch", "1,2,4,8"]) == 0
    return static, dynamic


@pytest.fixture(scope="module")
def openvino_f32_accuracy(lfw_bin, core) -> float:
    from pymfn.metrics import lfw as lfw_eval
    from pymfn.bench.lfw_accuracy import embed_array
    from pymfn.export.default_model import default_model
    from pymfn.inputs.lfw_bin import load_lfw

    images, issame = load_lfw(lfw_bin, color="rgb")
    engine = core.OpenVINOEngine(str(default_model(quiet=True).path), precision="f32")
    emb = embed_array(engine, (images.astype(np.float32) - 127.5) * 0.0078125, 64)
    return lfw_eval.evaluate(emb, issame).accuracy


@pytest.mark.parametrize("mode,kind", [("host", "static"), ("device", "dynamic")])
def test_om_on_emulator_matches_openvino_f32_on_lfw(oms, lfw_bin, openvino_f32_accuracy, mode, kind):
    env = dict(os.environ, PYMFN_ACL="emulator", PYMFN_ACL_EMU_RUN_MODE=mode)
    env["PYTHONPATH"] = os.pathsep.join([str(config.PROJECT_ROOT), env.get("PYTHONPATH", "")])
    om, batch = (oms[0], 1) if kind == "static" else (oms[1], 8)
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, str(lfw_bin), kind, str(om), str(batch)],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert list(runs) == [kind]
    for name, r in runs.items():
        assert r["acl_runtime"] == "emulator"
        assert r["arithmetic"] == ["f32", "f16"]  # what the emulator says it computed, beside the device's fp16
        assert r["run_mode"] == ("ACL_HOST" if mode == "host" else "ACL_DEVICE")
        assert r["leaks"] == 0, f"{name}: emulator reports leaks"
        assert r["supported"] == ([1] if name == "static" else [1, 2, 4, 8])
        assert abs(r["accuracy"] - openvino_f32_accuracy) <= 0.0005, (name, r["accuracy"], openvino_f32_accuracy)
    assert "outstanding" not in proc.stderr

"""Issue 5's acceptance run: pretrained MobileFaceNet -> fp16-output pb -> emulator .om -> ACL engine over all
12,000 lfw.bin images, static and dynamic batch, ACL_HOST and ACL_DEVICE run modes. LFW accuracy must stay
within 0.05 pt of the OpenVINO f32 engine on the fp32 pb, and the emulator must report zero leaks."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pymfn import config

pytestmark = [pytest.mark.slow, pytest.mark.acceptance]

_SCRIPT = textwrap.dedent("""
    import gc, json, sys
    import numpy as np
    import pymfn
    from pymfn import eval as lfw_eval
    from pymfn.bench.accuracy import embed_array
    from pymfn.lfw import load_lfw
    core = pymfn.load_core()
    lfw_bin, static_om, dynamic_om = sys.argv[1:4]
    images, issame = load_lfw(lfw_bin, color="rgb")
    x = ((images.astype(np.float32) - 127.5) * 0.0078125)
    out = {}
    for name, path, batch in (("static", static_om, 1), ("dynamic", dynamic_om, 8)):
        engine = core.AclEngine(path)
        props = dict(engine.properties())
        supported = engine.supported_batches()
        emb = embed_array(engine, x, batch)
        del engine
        gc.collect()
        res = lfw_eval.evaluate(emb, issame)
        out[name] = {"accuracy": res.accuracy, "run_mode": props["run_mode"], "acl_runtime": props["acl_runtime"],
                     "supported": [int(b) for b in supported],
                     "leaks": core.acl_emulator_leaks()["total"]}
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def oms(lfw_bin, sirius_tflite, core, tmp_path_factory):
    if core.build_info()["acl"] == "off":
        pytest.skip("this build has no AscendCL engine")
    from pymfn import convert
    from pymfn.default_model import default_model

    d = tmp_path_factory.mktemp("ascend_lfw")
    pb16 = default_model(fp16_output=True, quiet=True).path
    static, dynamic = d / "mfn_static.om", d / "mfn_dynamic.om"
    assert convert.main([str(pb16), "--target", "om-emu", "--output", str(static)]) == 0
    assert convert.main([str(pb16), "--target", "om-emu", "--output", str(dynamic), "--dynamic-batch", "1,2,4,8"]) == 0
    return static, dynamic


@pytest.fixture(scope="module")
def openvino_f32_accuracy(lfw_bin, core) -> float:
    from pymfn import eval as lfw_eval
    from pymfn.bench.accuracy import embed_array
    from pymfn.default_model import default_model
    from pymfn.lfw import load_lfw

    images, issame = load_lfw(lfw_bin, color="rgb")
    engine = core.OpenVINOEngine(str(default_model(quiet=True).path), precision="f32")
    emb = embed_array(engine, (images.astype(np.float32) - 127.5) * 0.0078125, 64)
    return lfw_eval.evaluate(emb, issame).accuracy


@pytest.mark.parametrize("mode", ["host", "device"])
def test_om_on_emulator_matches_openvino_f32_on_lfw(oms, lfw_bin, openvino_f32_accuracy, mode):
    env = dict(os.environ, PYMFN_ACL="emulator", PYMFN_ACL_EMU_RUN_MODE=mode)
    env["PYTHONPATH"] = os.pathsep.join([str(config.PROJECT_ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, str(lfw_bin), str(oms[0]), str(oms[1])],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, r in runs.items():
        assert r["acl_runtime"] == "emulator"
        assert r["run_mode"] == ("ACL_HOST" if mode == "host" else "ACL_DEVICE")
        assert r["leaks"] == 0, f"{name}: emulator reports leaks"
        assert r["supported"] == ([1] if name == "static" else [1, 2, 4, 8])
        assert abs(r["accuracy"] - openvino_f32_accuracy) <= 0.0005, (name, r["accuracy"], openvino_f32_accuracy)
    assert "outstanding" not in proc.stderr

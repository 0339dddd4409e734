"""Benchmarking an OpenVINO IR or an .om never imports TensorFlow: the heavy optional dependencies stay lazy."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pymfn.cli import main as cli_main

# Runs the command in this process, then reports which of the heavy modules it imported.
PROBE = """
import json, sys
from pymfn.cli import main
rc = main(["bench", "latency", "--model", sys.argv[1], "--min-iterations", "3", "--warmup", "1",
           "--min-duration", "0", "--quiet"])
heavy = sorted(m for m in ("tensorflow", "nncf", "tf2onnx", "onnx") if m in sys.modules)
print(json.dumps({"rc": rc, "heavy": heavy}))
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    from test_openvino_engine import write_tiny_pb

    folder = tmp_path_factory.mktemp("light")
    pb = write_tiny_pb(folder / "tiny.pb", size=16)
    xml, om = folder / "tiny.xml", folder / "tiny.om"
    assert cli_main(["convert", str(pb), "--target", "openvino", "--output", str(xml)]) == 0
    assert cli_main(["convert", str(pb), "--target", "om-emu", "--output", str(om), "--input-shape=1,16,16,3"]) == 0
    return {"xml": xml, "om": om}


@pytest.mark.parametrize("kind", ["xml", "om"])
def test_bench_latency_does_not_import_tensorflow(models, kind, core):
    if kind == "om" and not hasattr(core, "AclEngine"):
        pytest.skip("this build has no AscendCL engine (build_info()['acl'])")
    proc = subprocess.run([sys.executable, "-c", PROBE, str(models[kind])], capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["rc"] == 0, proc.stderr
    assert report["heavy"] == [], f"benchmarking the {kind} imported {report['heavy']}"

"""pymfn declines OpenVINO's usage telemetry in its processes (its sender forks from whatever thread converts a
model, which can deadlock the process, and it talks to the network mid-measurement); an opt-in keeps it."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("openvino_telemetry")

PROBE = ("import pymfn\n"
         "from openvino_telemetry.utils.opt_in_checker import OptInChecker\n"
         "print(OptInChecker().check(False, False).name)\n")


def _consent(tmp_path, **env):
    # a fresh HOME: no consent file of the user's is read or written
    full = dict(os.environ, HOME=str(tmp_path), **env)
    full.pop("CI", None)
    return subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=full,
                          timeout=120).stdout.strip()


def test_importing_pymfn_declines_openvino_telemetry(tmp_path):
    assert _consent(tmp_path) == "DECLINED"


def test_the_opt_in_leaves_openvino_to_decide(tmp_path):
    assert _consent(tmp_path, PYMFN_ALLOW_TELEMETRY="1") != "DECLINED"

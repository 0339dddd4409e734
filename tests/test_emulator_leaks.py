"""`_core.acl_emulator_leaks()` reports every resource kind the emulator counts (pymfnEmuCounts), and its
'total' is the emulator's own leak total: an event or a tensor description left alive must show up there,
not only in the report text aclFinalize prints.

aclInit/aclFinalize are process-global, so the scenario runs in a fresh `python` subprocess that drives the
same libascendcl.so the native core loaded, through ctypes, as an AscendCL client would.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

SCENARIO = r"""
import ctypes as C, json, sys
import pymfn

core = pymfn.load_core()
rt = core.acl_runtime()
if not rt.get("emulator"):
    print(json.dumps({"skip": "the AscendCL runtime is not pymfn's emulator: " + rt.get("runtime", "?")}))
    sys.exit(0)
acl = C.CDLL(rt["library"])  # the very library _core uses: one set of counters
P = C.c_void_p
acl.aclrtCreateEvent.argtypes = [C.POINTER(P)]
acl.aclrtDestroyEvent.argtypes = [P]
acl.aclCreateTensorDesc.restype = P
acl.aclCreateTensorDesc.argtypes = [C.c_int, C.c_int, C.POINTER(C.c_int64), C.c_int]
acl.aclDestroyTensorDesc.restype = None
acl.aclDestroyTensorDesc.argtypes = [P]

def leaks():
    d = core.acl_emulator_leaks()
    return {k: d[k] for k in ("events", "tensor_descs", "total", "executes")} | {"report": d["report"]}

out = {}
assert acl.aclInit(None) == 0 and acl.aclrtSetDevice(0) == 0
out["start"] = leaks()
event = P()
assert acl.aclrtCreateEvent(C.byref(event)) == 0
out["event"] = leaks()
desc = acl.aclCreateTensorDesc(0, 4, (C.c_int64 * 4)(1, 112, 112, 3), 1)
assert desc
out["both"] = leaks()
acl.aclDestroyTensorDesc(desc)
assert acl.aclrtDestroyEvent(event) == 0
out["released"] = leaks()
acl.aclrtResetDevice(0)
acl.aclFinalize()
print(json.dumps(out))
"""


def test_leaked_event_and_tensor_desc_are_counted_in_the_total(core):
    if not hasattr(core, "acl_emulator_leaks"):
        pytest.skip("this build has no ACL engine")
    proc = subprocess.run([sys.executable, "-c", SCENARIO], capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if "skip" in out:
        pytest.skip(out["skip"])
    start, event, both, released = out["start"], out["event"], out["both"], out["released"]
    assert (start["events"], start["tensor_descs"]) == (0, 0)
    assert event["events"] == 1 and event["total"] == start["total"] + 1
    assert "event" in event["report"]
    assert both["tensor_descs"] == 1 and both["total"] == start["total"] + 2
    assert (released["events"], released["tensor_descs"], released["total"]) == (0, 0, start["total"])

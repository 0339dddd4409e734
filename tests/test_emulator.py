"""The ACL emulator (libascendcl.so test double), driven through ctypes exactly as an ACL client would.

aclInit/aclFinalize are process-global, so every scenario runs in a fresh `python` subprocess: the
parent builds the om files, starts `python -c "... scenario_<name>(...)"`, and checks the JSON the child
prints (and its stderr, where aclFinalize reports leaks). Each rule of the emulator's contract (see the
top of each file in csrc/acl_emulator/) is broken on purpose somewhere below.
"""
from __future__ import annotations

import ctypes as C
import json
import os
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# documented ACL codes
OK, INVALID_PARAM, UNINIT, REPEAT_INIT, INVALID_FILE = 0, 100000, 100001, 100002, 100003
INVALID_MODEL_ID, PARSE_MODEL, READ_MODEL = 100011, 100013, 100014
INVALID_DEVICE, CONTEXT_NULL, MODEL_CONTEXT = 200002, 107002, 107004
FAILURE, RT_FAILURE = 500001, 500003
STREAM_CONTEXT, EVENT_UNRECORDED, EVENT_REVERSED = 107003, 107006, 107007
EVENT_NOT_COMPLETE, STREAM_SYNC_TIMEOUT, EVENT_SYNC_TIMEOUT = 507006, 507046, 507047
NO_VALUE = 0xFFFFFFFF
NO_INDEX = C.c_size_t(-1).value  # the reserved index (size_t)-1
H2H, H2D, D2H, D2D = 0, 1, 2, 3


# ---------------------------------------------------------------- ctypes binding (used in the children)

class IODims(C.Structure):
    _fields_ = [("name", C.c_char * 128), ("dimCount", C.c_size_t), ("dims", C.c_int64 * 128)]


class Batch(C.Structure):
    _fields_ = [("batchCount", C.c_size_t), ("batch", C.c_uint64 * 128)]


class HW(C.Structure):
    _fields_ = [("hwCount", C.c_size_t), ("hw", (C.c_uint64 * 2) * 128)]


class Counts(C.Structure):
    _fields_ = [(n, C.c_uint64) for n in ("device_allocs", "host_allocs", "device_bytes", "host_bytes", "datasets",
                                         "data_buffers", "descs", "models", "contexts", "streams", "executes",
                                         "events", "tensor_descs")]


def bind(path: str) -> C.CDLL:
    """Declare the prototypes of pymfn/include/acl/*.h and csrc/acl_emulator/emulator_api.h."""
    lib = C.CDLL(path)
    P, S, I, U32, U64, E = C.c_void_p, C.c_size_t, C.c_int, C.c_uint32, C.c_uint64, C.c_int
    sigs = {
        "aclInit": (E, [C.c_char_p]), "aclFinalize": (E, []), "aclGetRecentErrMsg": (C.c_char_p, []),
        "aclrtSetDevice": (E, [C.c_int32]), "aclrtResetDevice": (E, [C.c_int32]),
        "aclrtGetDeviceCount": (E, [C.POINTER(U32)]), "aclrtGetRunMode": (E, [C.POINTER(C.c_int)]),
        "aclrtCreateContext": (E, [C.POINTER(P), C.c_int32]), "aclrtDestroyContext": (E, [P]),
        "aclrtSetCurrentContext": (E, [P]),
        "aclrtCreateStream": (E, [C.POINTER(P)]), "aclrtDestroyStream": (E, [P]), "aclrtSynchronizeStream": (E, [P]),
        "aclrtMalloc": (E, [C.POINTER(P), S, I]), "aclrtFree": (E, [P]),
        "aclrtMallocHost": (E, [C.POINTER(P), S]), "aclrtFreeHost": (E, [P]),
        "aclrtMemcpy": (E, [P, S, P, S, I]), "aclrtMemcpyAsync": (E, [P, S, P, S, I, P]),
        "aclrtMemset": (E, [P, S, C.c_int32, S]),
        "aclmdlLoadFromFile": (E, [C.c_char_p, C.POINTER(U32)]), "aclmdlLoadFromMem": (E, [P, S, C.POINTER(U32)]),
        "aclmdlUnload": (E, [U32]), "aclmdlQuerySize": (E, [C.c_char_p, C.POINTER(S), C.POINTER(S)]),
        "aclmdlCreateDesc": (P, []), "aclmdlDestroyDesc": (E, [P]), "aclmdlGetDesc": (E, [P, U32]),
        "aclmdlGetNumInputs": (S, [P]), "aclmdlGetNumOutputs": (S, [P]),
        "aclmdlGetInputSizeByIndex": (S, [P, S]), "aclmdlGetOutputSizeByIndex": (S, [P, S]),
        "aclmdlGetInputDims": (E, [P, S, C.POINTER(IODims)]), "aclmdlGetOutputDims": (E, [P, S, C.POINTER(IODims)]),
        "aclmdlGetCurOutputDims": (E, [P, S, C.POINTER(IODims)]),
        "aclmdlGetInputNameByIndex": (C.c_char_p, [P, S]), "aclmdlGetOutputNameByIndex": (C.c_char_p, [P, S]),
        "aclmdlGetInputIndexByName": (E, [P, C.c_char_p, C.POINTER(S)]),
        "aclmdlGetInputDataType": (I, [P, S]), "aclmdlGetOutputDataType": (I, [P, S]),
        "aclmdlGetInputFormat": (I, [P, S]),
        "aclmdlGetDynamicBatch": (E, [P, C.POINTER(Batch)]), "aclmdlSetDynamicBatchSize": (E, [U32, P, S, U64]),
        "aclmdlCreateDataset": (P, []), "aclmdlDestroyDataset": (E, [P]), "aclmdlAddDatasetBuffer": (E, [P, P]),
        "aclmdlGetDatasetNumBuffers": (S, [P]), "aclmdlGetDatasetBuffer": (P, [P, S]),
        "aclCreateDataBuffer": (P, [P, S]), "aclDestroyDataBuffer": (E, [P]), "aclUpdateDataBuffer": (E, [P, P, S]),
        "aclGetDataBufferAddr": (P, [P]), "aclGetDataBufferSizeV2": (S, [P]),
        "aclmdlExecute": (E, [U32, P, P]), "aclmdlExecuteAsync": (E, [U32, P, P, P]),
        # tensor descriptions, helpers, events, exceptions, dynamic gears
        "aclCreateTensorDesc": (P, [I, I, C.POINTER(C.c_int64), I]), "aclDestroyTensorDesc": (None, [P]),
        "aclGetTensorDescType": (I, [P]), "aclGetTensorDescFormat": (I, [P]), "aclGetTensorDescSize": (S, [P]),
        "aclGetTensorDescElementCount": (S, [P]), "aclGetTensorDescNumDims": (S, [P]),
        "aclGetTensorDescDimV2": (E, [P, S, C.POINTER(C.c_int64)]), "aclGetTensorDescByIndex": (P, [P, S]),
        "aclGetTensorDescAddress": (P, [P]), "aclSetTensorDescName": (None, [P, C.c_char_p]),
        "aclGetTensorDescName": (C.c_char_p, [P]),
        "aclmdlSetDatasetTensorDesc": (E, [P, P, S]), "aclmdlGetDatasetTensorDesc": (P, [P, S]),
        "aclFloat16ToFloat": (C.c_float, [C.c_uint16]), "aclFloatToFloat16": (C.c_uint16, [C.c_float]),
        "aclDataTypeSize": (S, [I]), "aclrtGetVersion": (E, [C.POINTER(C.c_int32)] * 3),
        "aclrtGetSocName": (C.c_char_p, []), "aclrtGetDevice": (E, [C.POINTER(C.c_int32)]),
        "aclrtSynchronizeDevice": (E, []), "aclGetDataBufferSize": (U32, [P]),
        "aclmdlQuerySizeFromMem": (E, [P, S, C.POINTER(S), C.POINTER(S)]),
        "aclmdlLoadFromMemWithMem": (E, [P, S, C.POINTER(U32), P, S, P, S]),
        "aclmdlGetOutputIndexByName": (E, [P, C.c_char_p, C.POINTER(S)]),
        "aclrtCreateEvent": (E, [C.POINTER(P)]), "aclrtDestroyEvent": (E, [P]), "aclrtRecordEvent": (E, [P, P]),
        "aclrtQueryEventStatus": (E, [P, C.POINTER(C.c_int)]), "aclrtSynchronizeEvent": (E, [P]),
        "aclrtSynchronizeEventWithTimeout": (E, [P, C.c_int32]),
        "aclrtEventElapsedTime": (E, [C.POINTER(C.c_float), P, P]),
        "aclrtSynchronizeStreamWithTimeout": (E, [P, C.c_int32]),
        "aclrtGetCurrentContext": (E, [C.POINTER(P)]),
        "aclrtSetExceptionInfoCallback": (E, [P]),
        "aclrtGetTaskIdFromExceptionInfo": (U32, [P]), "aclrtGetStreamIdFromExceptionInfo": (U32, [P]),
        "aclrtGetThreadIdFromExceptionInfo": (U32, [P]), "aclrtGetDeviceIdFromExceptionInfo": (U32, [P]),
        "aclrtGetErrorCodeFromExceptionInfo": (U32, [P]),
        "aclmdlCreateAndGetOpDesc": (E, [U32, U32, U32, C.c_char_p, S, C.POINTER(P), C.POINTER(S), C.POINTER(P),
                                         C.POINTER(S)]),
        "aclmdlGetInputDynamicGearCount": (E, [P, S, C.POINTER(S)]),
        "aclmdlGetInputDynamicDims": (E, [P, S, C.POINTER(IODims), S]),
        "aclmdlGetDynamicHW": (E, [P, S, C.POINTER(HW)]),
        "aclmdlSetDynamicHWSize": (E, [U32, P, S, U64, U64]),
        "aclmdlSetInputDynamicDims": (E, [U32, P, S, C.POINTER(IODims)]),
        "pymfnEmuIsEmulator": (I, []), "pymfnEmuGetCounts": (I, [C.POINTER(Counts)]),
        "pymfnEmuLeakReport": (S, [C.c_char_p, S]), "pymfnEmuLeaksAtFinalize": (U64, []),
        "pymfnEmuPauseStream": (I, [P, I]),
        "pymfnEmuModelCompileRecord": (I, [U32, C.c_char_p, S, C.POINTER(S)]),
    }
    for name, (res, args) in sigs.items():
        f = getattr(lib, name)
        f.restype, f.argtypes = res, args
    return lib


class Acl:
    """Small helpers over the raw API for the scenarios."""

    def __init__(self, path: str):
        self.lib = bind(path)

    def __getattr__(self, name):
        return getattr(self.lib, name)

    def err(self) -> str:
        return (self.lib.aclGetRecentErrMsg() or b"").decode()

    def malloc(self, size: int) -> int:
        p = C.c_void_p()
        assert self.lib.aclrtMalloc(C.byref(p), size, 0) == OK, self.err()
        return p.value

    def malloc_host(self, size: int) -> int:
        p = C.c_void_p()
        assert self.lib.aclrtMallocHost(C.byref(p), size) == OK, self.err()
        return p.value

    def load(self, path: str) -> int:
        mid = C.c_uint32()
        rc = self.lib.aclmdlLoadFromFile(path.encode(), C.byref(mid))
        assert rc == OK, (rc, self.err())
        return mid.value

    def dataset(self, bufs: list[tuple[int, int]]) -> tuple[int, list[int]]:
        ds = self.lib.aclmdlCreateDataset()
        handles = []
        for ptr, size in bufs:
            b = self.lib.aclCreateDataBuffer(ptr, size)
            assert b and self.lib.aclmdlAddDatasetBuffer(ds, b) == OK
            handles.append(b)
        return ds, handles

    def destroy_dataset(self, ds: int, handles: list[int]) -> None:
        for b in handles:
            assert self.lib.aclDestroyDataBuffer(b) == OK
        assert self.lib.aclmdlDestroyDataset(ds) == OK

    def compile_record(self, mid: int) -> dict:
        """pymfnEmuModelCompileRecord of a loaded model, as a dict."""
        needed = C.c_size_t()
        assert self.lib.pymfnEmuModelCompileRecord(mid, None, 0, C.byref(needed)) == OK, self.err()
        buf = C.create_string_buffer(needed.value + 1)
        assert self.lib.pymfnEmuModelCompileRecord(mid, buf, needed.value + 1, C.byref(needed)) == OK, self.err()
        assert len(buf.value) == needed.value
        return dict(line.split("=", 1) for line in buf.value.decode().splitlines())

    def counts(self) -> dict:
        c = Counts()
        assert self.lib.pymfnEmuGetCounts(C.byref(c)) == 0
        return {n: getattr(c, n) for n, _ in Counts._fields_}

    def leak_report(self) -> str:
        n = self.lib.pymfnEmuLeakReport(None, 0)
        buf = C.create_string_buffer(n + 1)
        self.lib.pymfnEmuLeakReport(buf, n + 1)
        return buf.value.decode()


def to_dev(acl: Acl, arr: np.ndarray) -> int:
    """Device buffer holding `arr`, filled through a checked HOST_TO_DEVICE copy."""
    arr = np.ascontiguousarray(arr)
    p = acl.malloc(arr.nbytes)
    assert acl.aclrtMemcpy(p, arr.nbytes, arr.ctypes.data, arr.nbytes, H2D) == OK, acl.err()
    return p


def from_dev(acl: Acl, ptr: int, nbytes: int, dtype) -> np.ndarray:
    out = np.empty(nbytes, np.uint8)
    assert acl.aclrtMemcpy(out.ctypes.data, nbytes, ptr, nbytes, D2H) == OK, acl.err()
    return out.view(dtype)


# ---------------------------------------------------------------- scenarios (run in children)

def scenario_rules(lib: str, a: dict) -> dict:
    acl, r = Acl(lib), {}
    p = C.c_void_p()
    r["malloc_before_init"] = acl.aclrtMalloc(C.byref(p), 64, 0)
    r["dataset_before_init_is_null"] = acl.aclmdlCreateDataset() is None
    r["init"] = acl.aclInit(None)
    r["init_again"] = acl.aclInit(None)
    r["err_init_again"] = acl.err()
    r["err_cleared"] = acl.err()
    r["malloc_without_device"] = acl.aclrtMalloc(C.byref(p), 64, 0)
    r["set_device_1"] = acl.aclrtSetDevice(1)
    r["set_device_0"] = acl.aclrtSetDevice(0)
    mode = C.c_int(-1)
    acl.aclrtGetRunMode(C.byref(mode))
    r["run_mode"] = mode.value
    dev, dev2, pinned = acl.malloc(256), acl.malloc(256), acl.malloc_host(256)
    host = np.zeros(256, np.uint8)
    hp = host.ctypes.data
    r["fresh_device_memory_byte"] = int(from_dev(acl, dev, 1, np.uint8)[0])
    r["h2d_ok"] = acl.aclrtMemcpy(dev, 256, hp, 256, H2D)
    r["h2d_pinned_ok"] = acl.aclrtMemcpy(dev, 256, pinned, 256, H2D)
    r["h2d_src_device"] = acl.aclrtMemcpy(dev, 256, dev2, 256, H2D)
    r["err_h2d_src_device"] = acl.err()
    r["h2d_dst_host"] = acl.aclrtMemcpy(hp, 256, hp, 256, H2D)
    r["d2h_dst_device"] = acl.aclrtMemcpy(dev2, 256, dev, 256, D2H)
    r["d2h_ok"] = acl.aclrtMemcpy(hp, 256, dev, 256, D2H)
    r["d2d_ok"] = acl.aclrtMemcpy(dev2, 256, dev, 256, D2D)
    r["d2d_src_host"] = acl.aclrtMemcpy(dev2, 256, hp, 256, D2D)
    r["h2h_device_src"] = acl.aclrtMemcpy(hp, 256, dev, 256, H2H)
    r["count_gt_destmax"] = acl.aclrtMemcpy(dev, 128, hp, 256, H2D)
    r["err_count"] = acl.err()
    r["past_block_end"] = acl.aclrtMemcpy(dev + 128, 256, hp, 256, H2D)
    r["memset_ok"] = acl.aclrtMemset(dev, 256, 7, 256)
    r["memset_host"] = acl.aclrtMemset(hp, 256, 7, 256)
    r["free_unknown"] = acl.aclrtFree(hp)
    r["free_interior"] = acl.aclrtFree(dev + 16)
    r["freehost_device"] = acl.aclrtFreeHost(dev)
    r["free_pinned_with_free"] = acl.aclrtFree(pinned)
    r["free_ok"] = acl.aclrtFree(dev2)
    r["double_free"] = acl.aclrtFree(dev2)
    mid = C.c_uint32()
    r["load_missing"] = acl.aclmdlLoadFromFile(a["missing"].encode(), C.byref(mid))
    r["load_directory"] = acl.aclmdlLoadFromFile(str(Path(a["missing"]).parent).encode(), C.byref(mid))
    r["load_short"] = acl.aclmdlLoadFromFile(a["short"].encode(), C.byref(mid))
    r["err_load_short"] = acl.err()
    r["load_bad_magic"] = acl.aclmdlLoadFromFile(a["bad_magic"].encode(), C.byref(mid))
    r["load_bad_headsize"] = acl.aclmdlLoadFromFile(a["bad_headsize"].encode(), C.byref(mid))
    r["load_real_om"] = acl.aclmdlLoadFromFile(a["real_om"].encode(), C.byref(mid))
    r["err_load_real_om"] = acl.err()
    r["load_truncated_emu"] = acl.aclmdlLoadFromFile(a["truncated"].encode(), C.byref(mid))
    r["load_bad_meta"] = acl.aclmdlLoadFromFile(a["bad_meta"].encode(), C.byref(mid))
    r["err_bad_meta"] = acl.err()
    r["load_bad_ir"] = acl.aclmdlLoadFromFile(a["bad_ir"].encode(), C.byref(mid))
    blob = Path(a["short"]).read_bytes()
    r["load_mem_short"] = acl.aclmdlLoadFromMem(blob, len(blob), C.byref(mid))
    r["unload_unknown"] = acl.aclmdlUnload(999)
    ds = acl.aclmdlCreateDataset()
    r["execute_unknown_id"] = acl.aclmdlExecute(999, ds, ds)
    r["destroy_unknown_buffer"] = acl.aclDestroyDataBuffer(hp)
    r["desc_getter_bad_handle"] = acl.aclmdlGetNumInputs(hp)
    # leave dev + pinned + ds + one data buffer outstanding on purpose
    acl.aclCreateDataBuffer(dev, 256)
    r["counts_before_finalize"] = acl.counts()
    r["finalize"] = acl.aclFinalize()
    r["leaks_at_finalize"] = acl.pymfnEmuLeaksAtFinalize()
    r["report_after_finalize"] = acl.leak_report()
    r["malloc_after_finalize"] = acl.aclrtMalloc(C.byref(p), 64, 0)
    r["finalize_twice"] = acl.aclFinalize()
    return r


def _run_static(acl: Acl, a: dict, r: dict) -> None:
    """Load the static om, check its description, execute on a["x"]; fills r."""
    mid = acl.load(a["om"])
    desc = acl.aclmdlCreateDesc()
    assert acl.aclmdlGetDesc(desc, mid) == OK
    r["n_in"], r["n_out"] = acl.aclmdlGetNumInputs(desc), acl.aclmdlGetNumOutputs(desc)
    in_size, out_size = acl.aclmdlGetInputSizeByIndex(desc, 0), acl.aclmdlGetOutputSizeByIndex(desc, 0)
    r["in_size"], r["out_size"] = in_size, out_size
    d = IODims()
    acl.aclmdlGetInputDims(desc, 0, C.byref(d))
    r["in_dims"], r["in_dim_name"] = list(d.dims[:d.dimCount]), d.name.decode()
    acl.aclmdlGetOutputDims(desc, 0, C.byref(d))
    r["out_dims"] = list(d.dims[:d.dimCount])
    r["in_name"] = acl.aclmdlGetInputNameByIndex(desc, 0).decode()
    r["out_name"] = acl.aclmdlGetOutputNameByIndex(desc, 0).decode()
    r["in_dtype"], r["out_dtype"] = acl.aclmdlGetInputDataType(desc, 0), acl.aclmdlGetOutputDataType(desc, 0)
    r["in_format"] = acl.aclmdlGetInputFormat(desc, 0)
    r["in_dtype_oob"] = acl.aclmdlGetInputDataType(desc, 5)
    idx = C.c_size_t()
    r["index_of_missing_name"] = acl.aclmdlGetInputIndexByName(desc, b"nope", C.byref(idx))
    x = np.load(a["x"])
    outs = []
    din, dout = acl.malloc(in_size), acl.malloc(out_size)
    ids, ib = acl.dataset([(din, in_size)])
    ods, ob = acl.dataset([(dout, out_size)])
    for row in x:
        assert acl.aclrtMemcpy(din, in_size, row.ctypes.data, in_size, H2D) == OK
        rc = acl.aclmdlExecute(mid, ids, ods)
        assert rc == OK, (rc, acl.err())
        outs.append(from_dev(acl, dout, out_size, np.float16).tolist())
    r["outputs"] = outs
    # host memory in the dataset: the device cannot read it
    host_in = np.ascontiguousarray(x[0])
    pinned = acl.malloc_host(in_size)
    hds, hb = acl.dataset([(host_in.ctypes.data, in_size)])
    r["execute_host_buffer"] = acl.aclmdlExecute(mid, hds, ods)
    r["err_host_buffer"] = acl.err()
    pds, pb = acl.dataset([(pinned, in_size)])
    r["execute_pinned_buffer"] = acl.aclmdlExecute(mid, pds, ods)
    # wrong size
    acl.aclUpdateDataBuffer(ib[0], din, in_size - 4)
    r["execute_wrong_size"] = acl.aclmdlExecute(mid, ids, ods)
    r["err_wrong_size"] = acl.err()
    acl.aclUpdateDataBuffer(ib[0], din, in_size)
    r["execute_missing_output"] = acl.aclmdlExecute(mid, ids, ids)
    for ds_, bs in ((ids, ib), (ods, ob), (hds, hb), (pds, pb)):
        acl.destroy_dataset(ds_, bs)
    for ptr in (din, dout):
        assert acl.aclrtFree(ptr) == OK
    assert acl.aclrtFreeHost(pinned) == OK
    assert acl.aclmdlDestroyDesc(desc) == OK
    assert acl.aclmdlUnload(mid) == OK
    r["unload_twice"] = acl.aclmdlUnload(mid)


def scenario_static(lib: str, a: dict) -> dict:
    acl, r = Acl(lib), {}
    assert acl.aclInit(None) == OK and acl.aclrtSetDevice(0) == OK
    _run_static(acl, a, r)
    assert acl.aclrtResetDevice(0) == OK
    r["counts_before_finalize"] = acl.counts()
    r["finalize"] = acl.aclFinalize()
    r["leaks_at_finalize"] = acl.pymfnEmuLeaksAtFinalize()
    return r


def scenario_numerics(lib: str, a: dict) -> dict:
    """Executes a["om"] on every row of a["x"] (outputs in the om's output dtype) and reads the model's compile
    record, with the record call's refusals."""
    acl, r = Acl(lib), {}
    needed = C.c_size_t()
    r["record_before_init"] = acl.pymfnEmuModelCompileRecord(1, None, 0, C.byref(needed))
    assert acl.aclInit(None) == OK and acl.aclrtSetDevice(0) == OK
    mid = acl.load(a["om"])
    r["record"] = acl.compile_record(mid)
    r["record_unknown_id"] = acl.pymfnEmuModelCompileRecord(mid + 100, None, 0, C.byref(needed))
    r["err_unknown_id"] = acl.err()
    r["record_null_needed"] = acl.pymfnEmuModelCompileRecord(mid, None, 0, None)
    acl.err()
    small = C.create_string_buffer(8)
    r["record_small_buffer"] = acl.pymfnEmuModelCompileRecord(mid, small, 8, C.byref(needed))
    r["record_truncated"], r["record_needed"] = small.value.decode(), needed.value
    desc = acl.aclmdlCreateDesc()
    assert acl.aclmdlGetDesc(desc, mid) == OK
    in_size, out_size = acl.aclmdlGetInputSizeByIndex(desc, 0), acl.aclmdlGetOutputSizeByIndex(desc, 0)
    out_dtype = {0: np.float32, 1: np.float16}[acl.aclmdlGetOutputDataType(desc, 0)]
    din, dout = acl.malloc(in_size), acl.malloc(out_size)
    ids, ib = acl.dataset([(din, in_size)])
    ods, ob = acl.dataset([(dout, out_size)])
    outs = []
    for row in np.load(a["x"]):
        row = np.ascontiguousarray(row, np.float32)
        assert row.nbytes == in_size and acl.aclrtMemcpy(din, in_size, row.ctypes.data, in_size, H2D) == OK
        assert acl.aclmdlExecute(mid, ids, ods) == OK, acl.err()
        outs.append(from_dev(acl, dout, out_size, out_dtype).astype(np.float64).tolist())
    r["outputs"], r["out_dtype"] = outs, np.dtype(out_dtype).name
    acl.destroy_dataset(ids, ib), acl.destroy_dataset(ods, ob)
    acl.aclrtFree(din), acl.aclrtFree(dout)
    acl.aclmdlDestroyDesc(desc), acl.aclmdlUnload(mid)
    r["record_after_unload"] = acl.pymfnEmuModelCompileRecord(mid, None, 0, C.byref(needed))
    acl.aclrtResetDevice(0)
    r["finalize"] = acl.aclFinalize()
    r["leaks_at_finalize"] = acl.pymfnEmuLeaksAtFinalize()
    return r


def scenario_device_mode(lib: str, a: dict) -> dict:
    acl, r = Acl(lib), {}
    assert acl.aclInit(None) == OK and acl.aclrtSetDevice(0) == OK
    mode = C.c_int(-1)
    acl.aclrtGetRunMode(C.byref(mode))
    r["run_mode"] = mode.value
    mid = acl.load(a["om"])
    desc = acl.aclmdlCreateDesc()
    acl.aclmdlGetDesc(desc, mid)
    in_size, out_size = acl.aclmdlGetInputSizeByIndex(desc, 0), acl.aclmdlGetOutputSizeByIndex(desc, 0)
    # "read the input file straight into device memory": no copy call at all
    din, dout = acl.malloc(in_size), acl.malloc(out_size)
    raw = Path(a["bin"]).read_bytes()
    C.memmove(din, raw, in_size)
    ids, ib = acl.dataset([(din, in_size)])
    ods, ob = acl.dataset([(dout, out_size)])
    r["execute_file_in_device_memory"] = acl.aclmdlExecute(mid, ids, ods)
    r["output"] = np.frombuffer(C.string_at(dout, out_size), np.float16).tolist()
    pin = acl.malloc_host(out_size)
    pds, pb = acl.dataset([(pin, out_size)])
    r["execute_pinned_output"] = acl.aclmdlExecute(mid, ids, pds)
    host = np.zeros(out_size, np.uint8)
    hds, hb = acl.dataset([(host.ctypes.data, out_size)])
    r["execute_malloc_output"] = acl.aclmdlExecute(mid, ids, hds)
    r["memcpy_kind_not_checked"] = acl.aclrtMemcpy(dout, out_size, din, out_size, H2D)
    r["memcpy_count_still_checked"] = acl.aclrtMemcpy(dout, out_size, din, out_size + 1, D2D)
    for ds_, bs in ((ids, ib), (ods, ob), (pds, pb), (hds, hb)):
        acl.destroy_dataset(ds_, bs)
    acl.aclrtFree(din), acl.aclrtFree(dout), acl.aclrtFreeHost(pin)
    acl.aclmdlDestroyDesc(desc), acl.aclmdlUnload(mid)
    r["finalize"] = acl.aclFinalize()
    r["leaks_at_finalize"] = acl.pymfnEmuLeaksAtFinalize()
    return r


def scenario_dynamic(lib: str, a: dict) -> dict:
    acl, r = Acl(lib), {}
    assert acl.aclInit(None) == OK and acl.aclrtSetDevice(0) == OK
    mid = acl.load(a["om"])
    desc = acl.aclmdlCreateDesc()
    acl.aclmdlGetDesc(desc, mid)
    r["n_in"] = acl.aclmdlGetNumInputs(desc)
    idx = C.c_size_t()
    r["index_rc"] = acl.aclmdlGetInputIndexByName(desc, b"ascend_mbatch_shape_data", C.byref(idx))
    r["mbatch_index"] = idx.value
    r["mbatch_size"] = acl.aclmdlGetInputSizeByIndex(desc, idx.value)
    b = Batch()
    acl.aclmdlGetDynamicBatch(desc, C.byref(b))
    r["batches"] = list(b.batch[:b.batchCount])
    d = IODims()
    acl.aclmdlGetInputDims(desc, 0, C.byref(d))
    r["in_dims"] = list(d.dims[:d.dimCount])
    in_size, out_size = acl.aclmdlGetInputSizeByIndex(desc, 0), acl.aclmdlGetOutputSizeByIndex(desc, 0)
    r["in_size"], r["out_size"] = in_size, out_size
    x = np.load(a["x"])  # [maxBatch, ...]
    din = to_dev(acl, x)
    dmb, dout = acl.malloc(8), acl.malloc(out_size)
    ids, ib = acl.dataset([(din, in_size), (dmb, 8)])
    ods, ob = acl.dataset([(dout, out_size)])
    r["execute_without_set"] = acl.aclmdlExecute(mid, ids, ods)
    r["err_without_set"] = acl.err()
    r["set_batch_3"] = acl.aclmdlSetDynamicBatchSize(mid, ids, idx.value, 3)
    r["err_batch_3"] = acl.err()
    r["set_wrong_index"] = acl.aclmdlSetDynamicBatchSize(mid, ids, 0, 2)
    r["set_batch_2"] = acl.aclmdlSetDynamicBatchSize(mid, ids, idx.value, 2)
    r["execute_batch_2"] = acl.aclmdlExecute(mid, ids, ods)
    raw = from_dev(acl, dout, out_size, np.uint8)
    r["output_batch_2"] = raw.view(np.float16).tolist()
    r["untouched_tail_bytes"] = sorted(set(raw[out_size * 2 // 8:].tolist()))
    acl.aclmdlGetCurOutputDims(desc, 0, C.byref(d))
    r["cur_out_dims"] = list(d.dims[:d.dimCount])
    assert acl.aclmdlSetDynamicBatchSize(mid, ids, idx.value, 8) == OK
    r["execute_batch_8"] = acl.aclmdlExecute(mid, ids, ods)
    r["output_batch_8"] = from_dev(acl, dout, out_size, np.float16).tolist()
    acl.destroy_dataset(ids, ib), acl.destroy_dataset(ods, ob)
    for p in (din, dmb, dout):
        acl.aclrtFree(p)
    acl.aclmdlDestroyDesc(desc), acl.aclmdlUnload(mid)
    r["finalize"] = acl.aclFinalize()
    r["leaks_at_finalize"] = acl.pymfnEmuLeaksAtFinalize()
    return r


def scenario_async(lib: str, a: dict) -> dict:
    acl, r = Acl(lib), {}
    assert acl.aclInit(None) == OK and acl.aclrtSetDevice(0) == OK
    mid = acl.load(a["om"])
    desc = acl.aclmdlCreateDesc()
    acl.aclmdlGetDesc(desc, mid)
    in_size, out_size = acl.aclmdlGetInputSizeByIndex(desc, 0), acl.aclmdlGetOutputSizeByIndex(desc, 0)
    s1, s2 = C.c_void_p(), C.c_void_p()
    assert acl.aclrtCreateStream(C.byref(s1)) == OK and acl.aclrtCreateStream(C.byref(s2)) == OK
    x = np.load(a["x"])
    din, dout = to_dev(acl, x[0]), acl.malloc(out_size)
    ids, ib = acl.dataset([(din, in_size)])
    ods, ob = acl.dataset([(dout, out_size)])
    pinned = acl.malloc_host(out_size)
    assert acl.pymfnEmuPauseStream(s1, 1) == OK  # keep s1's work queued while we break the rules
    r["enqueue_s1"] = acl.aclmdlExecuteAsync(mid, ids, ods, s1)
    r["enqueue_s1_again"] = acl.aclmdlExecuteAsync(mid, ids, ods, s1)
    r["enqueue_s2_same_model"] = acl.aclmdlExecuteAsync(mid, ids, ods, s2)
    r["err_s2"] = acl.err()
    r["sync_execute_while_queued"] = acl.aclmdlExecute(mid, ids, ods)
    r["memcpy_async"] = acl.aclrtMemcpyAsync(pinned, out_size, dout, out_size, D2H, s1)
    r["memcpy_async_bad_kind"] = acl.aclrtMemcpyAsync(pinned, out_size, dout, out_size, H2D, s1)
    r["unload_while_queued"] = acl.aclmdlUnload(mid)
    r["output_before_sync_untouched"] = C.string_at(pinned, 1)[0] == 0
    assert acl.pymfnEmuPauseStream(s1, 0) == OK
    r["sync_s1"] = acl.aclrtSynchronizeStream(s1)
    r["output"] = np.frombuffer(C.string_at(pinned, out_size), np.float16).tolist()
    r["enqueue_s2_after_sync"] = acl.aclmdlExecuteAsync(mid, ids, ods, s2)
    r["sync_s2"] = acl.aclrtSynchronizeStream(s2)
    # a thread without a context cannot allocate
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("rc", acl.aclrtMalloc(C.byref(C.c_void_p()), 64, 0)))
    t.start(), t.join()
    r["malloc_other_thread_no_ctx"] = box["rc"]
    # another context cannot execute the model loaded in the default one
    ctx = C.c_void_p()
    assert acl.aclrtCreateContext(C.byref(ctx), 0) == OK  # becomes current
    r["execute_other_context"] = acl.aclmdlExecute(mid, ids, ods)
    assert acl.aclrtDestroyContext(ctx) == OK
    acl.aclrtSetDevice(0)
    acl.aclrtDestroyStream(s1), acl.aclrtDestroyStream(s2)
    acl.destroy_dataset(ids, ib), acl.destroy_dataset(ods, ob)
    acl.aclrtFree(din), acl.aclrtFree(dout), acl.aclrtFreeHost(pinned)
    acl.aclmdlDestroyDesc(desc), acl.aclmdlUnload(mid)
    r["finalize"] = acl.aclFinalize()
    r["leaks_at_finalize"] = acl.pymfnEmuLeaksAtFinalize()
    return r


def scenario_loop(lib: str, a: dict) -> dict:
    acl, r = Acl(lib), {}
    assert acl.aclInit(None) == OK and acl.aclrtSetDevice(0) == OK
    mid = acl.load(a["om"])
    desc = acl.aclmdlCreateDesc()
    acl.aclmdlGetDesc(desc, mid)
    in_size, out_size = acl.aclmdlGetInputSizeByIndex(desc, 0), acl.aclmdlGetOutputSizeByIndex(desc, 0)
    x = np.load(a["x"])
    din, dout = to_dev(acl, x[0]), acl.malloc(out_size)
    ids, ib = acl.dataset([(din, in_size)])
    ods, ob = acl.dataset([(dout, out_size)])
    execute = acl.lib.aclmdlExecute
    t0 = time.perf_counter()
    failures = sum(execute(mid, ids, ods) != OK for _ in range(a["n"]))
    r["seconds"] = time.perf_counter() - t0
    r["failures"] = failures
    r["executes"] = acl.counts()["executes"]
    acl.destroy_dataset(ids, ib), acl.destroy_dataset(ods, ob)
    acl.aclrtFree(din), acl.aclrtFree(dout)
    acl.aclmdlDestroyDesc(desc), acl.aclmdlUnload(mid), acl.aclrtResetDevice(0)
    r["finalize"] = acl.aclFinalize()
    r["leaks_at_finalize"] = acl.pymfnEmuLeaksAtFinalize()
    r["report"] = acl.leak_report()
    return r


def scenario_env(lib: str, a: dict) -> dict:
    acl, r = Acl(lib), {}
    r["init"] = acl.aclInit(None)
    r["err"] = acl.err()
    if r["init"] == OK:
        n = C.c_uint32()
        acl.aclrtGetDeviceCount(C.byref(n))
        r["count"] = n.value
        r["set_last"] = acl.aclrtSetDevice(n.value - 1)
        r["set_past"] = acl.aclrtSetDevice(n.value)
        r["create_ctx_past"] = acl.aclrtCreateContext(C.byref(C.c_void_p()), n.value)
        acl.aclrtResetDevice(n.value - 1)
        r["finalize"] = acl.aclFinalize()
    return r


def scenario_stale_context(lib: str, a: dict) -> dict:
    """A thread keeps a current context that another thread (or aclFinalize) destroyed."""
    import queue

    acl, r = Acl(lib), {}
    jobs: queue.Queue = queue.Queue()
    results: queue.Queue = queue.Queue()

    def worker():
        while (job := jobs.get()) is not None:
            results.put(job())

    def in_worker(fn):
        jobs.put(fn)
        return results.get()

    t = threading.Thread(target=worker)
    t.start()
    assert acl.aclInit(None) == OK
    ctx = C.c_void_p()
    r["worker_create_ctx"] = in_worker(lambda: acl.aclrtCreateContext(C.byref(ctx), 0))
    r["worker_malloc"] = in_worker(lambda: acl.aclrtMalloc(C.byref(C.c_void_p()), 64, 0))
    r["main_destroys_ctx"] = acl.aclrtDestroyContext(ctx)
    r["worker_malloc_after_destroy"] = in_worker(lambda: acl.aclrtMalloc(C.byref(C.c_void_p()), 64, 0))
    r["worker_set_device"] = in_worker(lambda: acl.aclrtSetDevice(0))
    acl.aclFinalize()
    assert acl.aclInit(None) == OK
    r["worker_malloc_after_reinit"] = in_worker(lambda: acl.aclrtMalloc(C.byref(C.c_void_p()), 64, 0))
    jobs.put(None)
    t.join()
    r["finalize"] = acl.aclFinalize()
    return r


def scenario_shared_model_threads(lib: str, a: dict) -> dict:
    """Two threads execute ONE model id without a lock (the mistake the emulator must catch)."""
    acl = Acl(lib)
    assert acl.aclInit(None) == OK and acl.aclrtSetDevice(0) == OK
    ctx = C.c_void_p()
    acl.aclrtGetCurrentContext(C.byref(ctx))
    mid = acl.load(a["om"])
    desc = acl.aclmdlCreateDesc()
    acl.aclmdlGetDesc(desc, mid)
    in_size, out_size = acl.aclmdlGetInputSizeByIndex(desc, 0), acl.aclmdlGetOutputSizeByIndex(desc, 0)
    din, dout = acl.malloc(in_size), acl.malloc(out_size)
    ids, ib = acl.dataset([(din, in_size)])
    ods, ob = acl.dataset([(dout, out_size)])
    codes: dict = {}
    lock = threading.Lock()
    seen = threading.Event()

    def work():
        acl.aclrtSetCurrentContext(ctx)
        for _ in range(a["n"]):
            rc = acl.aclmdlExecute(mid, ids, ods)  # ctypes drops the GIL: the other thread runs meanwhile
            with lock:
                codes[rc] = codes.get(rc, 0) + 1
            if rc == FAILURE:
                seen.set()
            if seen.is_set() and codes.get(OK):
                return

    threads = [threading.Thread(target=work) for _ in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    acl.destroy_dataset(ids, ib), acl.destroy_dataset(ods, ob)
    acl.aclrtFree(din), acl.aclrtFree(dout), acl.aclmdlDestroyDesc(desc), acl.aclmdlUnload(mid)
    return {"codes": {str(k): v for k, v in codes.items()}, "finalize": acl.aclFinalize(),
            "leaks_at_finalize": acl.pymfnEmuLeaksAtFinalize()}


def _model_io(acl: Acl, mid: int) -> tuple[int, int, int]:
    desc = acl.aclmdlCreateDesc()
    assert acl.aclmdlGetDesc(desc, mid) == OK
    return desc, acl.aclmdlGetInputSizeByIndex(desc, 0), acl.aclmdlGetOutputSizeByIndex(desc, 0)


def scenario_tensor_descs(lib: str, a: dict) -> dict:
    acl, r = Acl(lib), {}
    dims = (C.c_int64 * 4)(2, 8, 8, 3)
    r["create_before_init_is_null"] = acl.aclCreateTensorDesc(0, 4, dims, 1) is None
    assert acl.aclInit(None) == OK and acl.aclrtSetDevice(0) == OK
    d = acl.aclCreateTensorDesc(0, 4, dims, 1)  # ACL_FLOAT, NHWC
    r["type"], r["format"] = acl.aclGetTensorDescType(d), acl.aclGetTensorDescFormat(d)
    r["num_dims"], r["elements"], r["size"] = (acl.aclGetTensorDescNumDims(d), acl.aclGetTensorDescElementCount(d),
                                               acl.aclGetTensorDescSize(d))
    v = C.c_int64(-7)
    r["dim3"] = (acl.aclGetTensorDescDimV2(d, 3, C.byref(v)), v.value)
    r["dim_out_of_range"] = acl.aclGetTensorDescDimV2(d, 4, C.byref(v))
    r["err_dim"] = acl.err()
    acl.aclSetTensorDescName(d, b"Placeholder")
    r["name"] = acl.aclGetTensorDescName(d).decode()
    r["by_index_0_is_itself"] = acl.aclGetTensorDescByIndex(d, 0) == d
    r["by_index_1_is_null"] = acl.aclGetTensorDescByIndex(d, 1) is None
    r["address_is_null"] = acl.aclGetTensorDescAddress(d) is None
    unknown = acl.aclCreateTensorDesc(1, 2, (C.c_int64 * 2)(-1, 16), 2)
    r["unknown_dim_size"] = acl.aclGetTensorDescSize(unknown)
    r["bad_num_dims_is_null"] = acl.aclCreateTensorDesc(0, -1, dims, 1) is None
    r["bad_dim_is_null"] = acl.aclCreateTensorDesc(0, 2, (C.c_int64 * 2)(3, -5), 1) is None
    r["err_bad_dim"] = acl.err()
    r["bad_dtype_is_null"] = acl.aclCreateTensorDesc(99, 4, dims, 1) is None
    r["null_dims_is_null"] = acl.aclCreateTensorDesc(0, 2, None, 1) is None
    r["getter_on_garbage"] = acl.aclGetTensorDescType(C.addressof(dims))  # a pointer into something else
    # datasets keep their own copy
    dev = acl.malloc(64)
    ds, bufs = acl.dataset([(dev, 32), (dev + 32, 32)])
    r["set_index_2"] = acl.aclmdlSetDatasetTensorDesc(ds, d, 2)
    r["set_index_1"] = acl.aclmdlSetDatasetTensorDesc(ds, d, 1)
    r["unset_index_0_is_null"] = acl.aclmdlGetDatasetTensorDesc(ds, 0) is None
    copy = acl.aclmdlGetDatasetTensorDesc(ds, 1)
    r["copy_is_not_the_original"] = copy not in (None, d)
    acl.aclDestroyTensorDesc(d)
    r["original_after_destroy"] = acl.aclGetTensorDescType(d)
    r["copy_dims_after_original_destroyed"] = acl.aclGetTensorDescNumDims(copy)
    acl.aclDestroyTensorDesc(copy)  # not the client's to destroy
    r["err_destroy_copy"] = acl.err()
    r["copy_still_live"] = acl.aclGetTensorDescNumDims(copy)
    acl.aclDestroyTensorDesc(d)
    r["err_double_destroy"] = acl.err()
    r["set_null_removes"] = acl.aclmdlSetDatasetTensorDesc(ds, None, 1)
    r["removed_is_null"] = acl.aclmdlGetDatasetTensorDesc(ds, 1) is None
    acl.aclmdlSetDatasetTensorDesc(ds, unknown, 0)  # released with the dataset below
    acl.destroy_dataset(ds, bufs)
    acl.aclrtFree(dev)
    r["counts_before_finalize"] = acl.counts()  # `unknown` is left on purpose
    acl.aclrtResetDevice(0)
    r["finalize"] = acl.aclFinalize()
    r["leaks_at_finalize"] = acl.pymfnEmuLeaksAtFinalize()
    return r


def scenario_events(lib: str, a: dict) -> dict:
    acl, r = Acl(lib), {}
    assert acl.aclInit(None) == OK and acl.aclrtSetDevice(0) == OK
    mid = acl.load(a["om"])
    desc, in_size, out_size = _model_io(acl, mid)
    x = np.load(a["x"])
    din, dout = to_dev(acl, x[0]), acl.malloc(out_size)
    ids, ib = acl.dataset([(din, in_size)])
    ods, ob = acl.dataset([(dout, out_size)])
    e1, e2, s = C.c_void_p(), C.c_void_p(), C.c_void_p()
    assert acl.aclrtCreateEvent(C.byref(e1)) == OK and acl.aclrtCreateEvent(C.byref(e2)) == OK
    assert acl.aclrtCreateStream(C.byref(s)) == OK
    ms, st = C.c_float(-1), C.c_int(-1)
    r["elapsed_unrecorded"] = acl.aclrtEventElapsedTime(C.byref(ms), e1, e2)
    acl.aclrtQueryEventStatus(e1, C.byref(st))
    r["status_unrecorded"] = st.value
    r["sync_unrecorded"] = acl.aclrtSynchronizeEvent(e1)
    assert acl.pymfnEmuPauseStream(s, 1) == OK
    r["record_start"] = acl.aclrtRecordEvent(e1, s)
    r["enqueue"] = acl.aclmdlExecuteAsync(mid, ids, ods, s)
    r["record_end"] = acl.aclrtRecordEvent(e2, s)
    acl.aclrtQueryEventStatus(e2, C.byref(st))
    r["status_queued"] = st.value
    r["elapsed_not_reached"] = acl.aclrtEventElapsedTime(C.byref(ms), e1, e2)
    r["stream_timeout"] = acl.aclrtSynchronizeStreamWithTimeout(s, 30)
    r["err_stream_timeout"] = acl.err()
    r["event_timeout_check_only"] = acl.aclrtSynchronizeEventWithTimeout(e2, 0)
    r["bad_timeout"] = acl.aclrtSynchronizeStreamWithTimeout(s, -2)
    assert acl.pymfnEmuPauseStream(s, 0) == OK
    r["sync_end_event"] = acl.aclrtSynchronizeEvent(e2)
    acl.aclrtQueryEventStatus(e2, C.byref(st))
    r["status_reached"] = st.value
    r["elapsed"] = acl.aclrtEventElapsedTime(C.byref(ms), e1, e2)
    r["elapsed_ms"] = ms.value
    r["elapsed_reversed"] = acl.aclrtEventElapsedTime(C.byref(ms), e2, e1)
    r["sync_with_timeout"] = acl.aclrtSynchronizeStreamWithTimeout(s, -1)
    r["output"] = from_dev(acl, dout, out_size, np.float16).tolist()
    # the NULL stream is the context's default stream
    acl.aclrtMemset(dout, out_size, 0, out_size)
    r["enqueue_default"] = acl.aclmdlExecuteAsync(mid, ids, ods, None)
    r["record_default"] = acl.aclrtRecordEvent(e1, None)
    r["sync_default"] = acl.aclrtSynchronizeStream(None)
    r["output_default"] = from_dev(acl, dout, out_size, np.float16).tolist()
    r["destroy_default"] = acl.aclrtDestroyStream(None)
    r["sync_device"] = acl.aclrtSynchronizeDevice()
    # an event of one context cannot be recorded on another context's stream
    home = C.c_void_p()
    acl.aclrtGetCurrentContext(C.byref(home))
    other = C.c_void_p()
    assert acl.aclrtCreateContext(C.byref(other), 0) == OK
    r["record_other_context"] = acl.aclrtRecordEvent(e1, None)
    assert acl.aclrtDestroyContext(other) == OK and acl.aclrtSetCurrentContext(home) == OK
    r["destroy_event"] = acl.aclrtDestroyEvent(e1)
    r["destroy_event_twice"] = acl.aclrtDestroyEvent(e1)
    r["record_destroyed"] = acl.aclrtRecordEvent(e1, s)
    acl.aclrtDestroyStream(s)
    acl.destroy_dataset(ids, ib), acl.destroy_dataset(ods, ob)
    acl.aclrtFree(din), acl.aclrtFree(dout), acl.aclmdlDestroyDesc(desc), acl.aclmdlUnload(mid)
    r["counts_before_finalize"] = acl.counts()  # e2 is left on purpose
    r["finalize"] = acl.aclFinalize()
    r["leaks_at_finalize"] = acl.pymfnEmuLeaksAtFinalize()
    return r


def scenario_exceptions(lib: str, a: dict) -> dict:
    acl, r = Acl(lib), {}
    seen: list = []
    callback_type = C.CFUNCTYPE(None, C.c_void_p)

    def on_exception(info):
        name = C.create_string_buffer(64)
        ins, outs, n_in, n_out = C.c_void_p(), C.c_void_p(), C.c_size_t(), C.c_size_t()
        ids = (acl.aclrtGetDeviceIdFromExceptionInfo(info), acl.aclrtGetStreamIdFromExceptionInfo(info),
               acl.aclrtGetTaskIdFromExceptionInfo(info))
        rc = acl.aclmdlCreateAndGetOpDesc(*ids, name, 64, C.byref(ins), C.byref(n_in), C.byref(outs), C.byref(n_out))
        entry = {"ids": ids, "code": acl.aclrtGetErrorCodeFromExceptionInfo(info),
                 "thread": acl.aclrtGetThreadIdFromExceptionInfo(info), "caller": threading.get_native_id(),
                 "op_rc": rc, "op": name.value.decode(), "n_in": n_in.value, "n_out": n_out.value}
        if rc == OK:
            d = C.c_int64()
            entry["in_dims"] = [acl.aclGetTensorDescDimV2(ins, i, C.byref(d)) == OK and d.value
                                for i in range(acl.aclGetTensorDescNumDims(ins))]
            entry["in_address"] = acl.aclGetTensorDescAddress(ins)
            entry["in_name"] = acl.aclGetTensorDescName(ins).decode()
            acl.aclDestroyTensorDesc(ins), acl.aclDestroyTensorDesc(outs)
            entry["short_name_rc"] = acl.aclmdlCreateAndGetOpDesc(*ids, name, 2, C.byref(ins), C.byref(n_in),
                                                                  C.byref(outs), C.byref(n_out))
        acl.aclmdlUnload(4242)  # a failing call inside the callback must not replace the caller's message
        seen.append(entry)

    cb = callback_type(on_exception)
    r["set_before_init"] = acl.aclrtSetExceptionInfoCallback(cb)
    assert acl.aclInit(None) == OK and acl.aclrtSetDevice(0) == OK
    r["set"] = acl.aclrtSetExceptionInfoCallback(cb)
    mid = acl.load(a["om"])
    desc, in_size, out_size = _model_io(acl, mid)
    host = np.zeros(in_size, np.uint8)
    dout = acl.malloc(out_size)
    hds, hb = acl.dataset([(host.ctypes.data, in_size)])
    ods, ob = acl.dataset([(dout, out_size)])
    r["host_address"] = host.ctypes.data
    r["sync_fault"] = acl.aclmdlExecute(mid, hds, ods)
    r["err_sync_fault"] = acl.err()
    s = C.c_void_p()
    assert acl.aclrtCreateStream(C.byref(s)) == OK
    r["async_fault"] = acl.aclmdlExecuteAsync(mid, hds, ods, s)
    din = acl.malloc(in_size)
    wrong, wb = acl.dataset([(din, in_size - 4)])
    r["rejected_argument"] = acl.aclmdlExecute(mid, wrong, ods)  # no task launched: no callback
    r["bogus_info"] = [acl.aclrtGetTaskIdFromExceptionInfo(None), acl.aclrtGetDeviceIdFromExceptionInfo(C.c_void_p(64))]
    name = C.create_string_buffer(64)
    ins, outs, n = C.c_void_p(), C.c_void_p(), C.c_size_t()
    r["unknown_task"] = acl.aclmdlCreateAndGetOpDesc(0, 9999, 0, name, 64, C.byref(ins), C.byref(n), C.byref(outs),
                                                     C.byref(n))
    r["cleared"] = acl.aclrtSetExceptionInfoCallback(None)
    r["fault_after_clear"] = acl.aclmdlExecute(mid, hds, ods)
    r["seen"] = seen
    for ds_, bs in ((hds, hb), (ods, ob), (wrong, wb)):
        acl.destroy_dataset(ds_, bs)
    acl.aclrtDestroyStream(s), acl.aclrtFree(din), acl.aclrtFree(dout), acl.aclmdlDestroyDesc(desc)
    acl.aclmdlUnload(mid), acl.aclrtResetDevice(0)
    r["finalize"] = acl.aclFinalize()
    r["leaks_at_finalize"] = acl.pymfnEmuLeaksAtFinalize()
    return r


def scenario_gears(lib: str, a: dict) -> dict:
    acl, r = Acl(lib), {}
    assert acl.aclInit(None) == OK and acl.aclrtSetDevice(0) == OK
    unfilled = acl.aclmdlCreateDesc()
    n = C.c_size_t(77)
    r["unfilled_gear_count"] = acl.aclmdlGetInputDynamicGearCount(unfilled, NO_INDEX, C.byref(n))
    acl.aclmdlDestroyDesc(unfilled)
    for kind in ("static", "dynamic"):
        mid = acl.load(a[kind])
        desc, in_size, _ = _model_io(acl, mid)
        k = {}
        n = C.c_size_t(77)
        k["gear_count"] = (acl.aclmdlGetInputDynamicGearCount(desc, NO_INDEX, C.byref(n)), n.value)
        k["gear_count_index_0"] = acl.aclmdlGetInputDynamicGearCount(desc, 0, C.byref(n))
        dims = (IODims * 2)()
        k["gear_dims"] = acl.aclmdlGetInputDynamicDims(desc, NO_INDEX, dims, 0)
        k["gear_dims_null"] = acl.aclmdlGetInputDynamicDims(desc, NO_INDEX, None, 0)
        hw = HW(hwCount=77)
        k["hw"] = (acl.aclmdlGetDynamicHW(desc, NO_INDEX, C.byref(hw)), hw.hwCount)
        b = Batch()
        acl.aclmdlGetDynamicBatch(desc, C.byref(b))
        k["batches"] = list(b.batch[:b.batchCount])
        idx = C.c_size_t(99)
        k["output_index"] = (acl.aclmdlGetOutputIndexByName(desc, b"the_outputs", C.byref(idx)), idx.value)
        k["output_index_missing"] = acl.aclmdlGetOutputIndexByName(desc, b"nope", C.byref(idx))
        dev = acl.malloc(in_size)
        ds, bufs = acl.dataset([(dev, in_size)])
        k["set_hw"] = acl.aclmdlSetDynamicHWSize(mid, ds, 0, 112, 112)
        k["err_set_hw"] = acl.err()
        k["set_dims"] = acl.aclmdlSetInputDynamicDims(mid, ds, 0, C.byref(dims[0]))
        k["set_hw_unknown_model"] = acl.aclmdlSetDynamicHWSize(999, ds, 0, 112, 112)
        acl.destroy_dataset(ds, bufs)
        acl.aclrtFree(dev), acl.aclmdlDestroyDesc(desc), acl.aclmdlUnload(mid)
        r[kind] = k
    acl.aclrtResetDevice(0)
    r["finalize"] = acl.aclFinalize()
    r["leaks_at_finalize"] = acl.pymfnEmuLeaksAtFinalize()
    return r


def scenario_helpers(lib: str, a: dict) -> dict:
    acl, r = Acl(lib), {}
    v = [C.c_int32(-1) for _ in range(3)]
    r["version"] = (acl.aclrtGetVersion(*[C.byref(x) for x in v]), [x.value for x in v])
    r["version_null"] = acl.aclrtGetVersion(None, None, None)
    r["soc_before_init"] = acl.aclrtGetSocName()
    # every half -> float, and a spread of floats (normal, subnormal, overflowing, ties) -> half
    r["half_to_float"] = [acl.aclFloat16ToFloat(h) for h in range(65536)]
    floats = np.load(a["floats"])
    r["float_to_half"] = [acl.aclFloatToFloat16(float(f)) for f in floats]
    r["type_sizes"] = {t: acl.aclDataTypeSize(t) for t in (-1, 0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 27, 99)}
    assert acl.aclInit(None) == OK
    r["soc"] = acl.aclrtGetSocName().decode()
    dev_id = C.c_int32(-1)
    r["get_device_without_context"] = acl.aclrtGetDevice(C.byref(dev_id))
    assert acl.aclrtSetDevice(0) == OK
    r["get_device"] = (acl.aclrtGetDevice(C.byref(dev_id)), dev_id.value)
    blob = Path(a["om"]).read_bytes()
    work, weight, work2, weight2 = C.c_size_t(), C.c_size_t(), C.c_size_t(), C.c_size_t()
    r["query_file"] = acl.aclmdlQuerySize(a["om"].encode(), C.byref(work), C.byref(weight))
    r["query_mem"] = acl.aclmdlQuerySizeFromMem(blob, len(blob), C.byref(work2), C.byref(weight2))
    r["query_sizes_agree"] = (work.value, weight.value) == (work2.value, weight2.value) and weight.value > 0
    r["query_mem_empty"] = acl.aclmdlQuerySizeFromMem(blob, 0, C.byref(work2), C.byref(weight2))
    wk, wt = acl.malloc(work.value), acl.malloc(weight.value)
    mid = C.c_uint32()
    r["load_with_mem"] = acl.aclmdlLoadFromMemWithMem(blob, len(blob), C.byref(mid), wk, work.value, wt, weight.value)
    r["unload"] = acl.aclmdlUnload(mid.value)
    r["load_small_work"] = acl.aclmdlLoadFromMemWithMem(blob, len(blob), C.byref(mid), wk, work.value - 1, wt,
                                                        weight.value)
    host = np.zeros(weight.value, np.uint8)
    r["load_host_weight"] = acl.aclmdlLoadFromMemWithMem(blob, len(blob), C.byref(mid), None, 0, host.ctypes.data,
                                                         weight.value)
    r["err_host_weight"] = acl.err()
    b = acl.aclCreateDataBuffer(wk, 1000)
    r["buffer_size_u32"] = acl.aclGetDataBufferSize(b)
    acl.aclDestroyDataBuffer(b)
    acl.aclrtFree(wk), acl.aclrtFree(wt), acl.aclrtResetDevice(0)
    r["finalize"] = acl.aclFinalize()
    r["leaks_at_finalize"] = acl.pymfnEmuLeaksAtFinalize()
    return r


# ---------------------------------------------------------------- parent side

def find_emulator() -> Path | None:
    """The emulator build to test: $PYMFN_ACL_EMULATOR, else the one beside pymfn._core (pymfn.native_dir():
    $PYMFN_CORE_DIR, the in-place build of an editable install, or site-packages of a regular one)."""
    import pymfn

    cands = [os.environ.get("PYMFN_ACL_EMULATOR"), str(pymfn.native_dir() / "libascendcl.so")]
    for c in filter(None, cands):
        if Path(c).is_file():
            return Path(c)
    return None


def _fail_if_built(what: str) -> None:
    """A build that compiled the emulator must also have it where the tests look: fail, do not skip."""
    import pymfn

    try:
        mode = pymfn.load_core().build_info()["acl"]
    except ImportError:
        return
    if mode == "emulated":
        pytest.fail(f"build_info() says the ACL emulator was built, but {what} is not next to pymfn._core")


@pytest.fixture(scope="session")
def emu() -> Path:
    path = find_emulator()
    if path is None:
        _fail_if_built("libascendcl.so")
        pytest.skip("libascendcl.so emulator not built (cmake build, or set PYMFN_ACL_EMULATOR)")
    import openvino  # noqa: F401  (its libraries must be loadable for the emulator)

    lib = C.CDLL(str(path))
    if not hasattr(lib, "aclInit"):
        pytest.fail(f"{path} exports no AscendCL functions: a stale or placeholder build; rebuild (cmake --build)")
    if not hasattr(lib, "pymfnEmuIsEmulator"):
        pytest.skip(f"{path} is a real CANN libascendcl.so, not the emulator")
    return path


def run_scenario(emu: Path, name: str, args: dict, env: dict | None = None, timeout: int = 120) -> tuple[dict, str]:
    code = (f"import sys, json; sys.path.insert(0, {str(HERE)!r}); import openvino; import test_emulator as t; "
            f"print('@@' + json.dumps(t.scenario_{name}({str(emu)!r}, json.loads(sys.argv[1]))))")
    full_env = dict(os.environ)
    for k in ("PYMFN_ACL_EMU_RUN_MODE", "PYMFN_ACL_EMU_DEVICES"):
        full_env.pop(k, None)
    full_env.update(env or {})
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    p = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True,
                       env=full_env, timeout=timeout)
    assert p.returncode == 0, f"scenario {name} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    line = [l for l in p.stdout.splitlines() if l.startswith("@@")][-1]
    return json.loads(line[2:]), p.stderr


def _tiny_weights() -> tuple[np.ndarray, np.ndarray]:
    """The tiny model's convolution (OIHW) and dense weights, float32."""
    rng = np.random.RandomState(0)
    return (rng.randn(4, 3, 3, 3) * 0.3).astype(np.float32), (rng.randn(256, 16) * 0.1).astype(np.float32)


def _tiny_model(batch: int):
    """A small OpenVINO model shaped like MobileFaceNet's ends: NHWC float32 [batch,8,8,3] -> conv -> relu ->
    dense(16) -> L2-normalise -> float16, input 'Placeholder', output 'the_outputs'. Built with the
    OpenVINO opset directly so these tests need neither TensorFlow nor a converter (test_convert.py
    covers pb -> om)."""
    import openvino as ov
    import openvino.opset13 as ops

    conv_w, dense_w = _tiny_weights()
    x = ops.parameter([batch, 8, 8, 3], np.float32, name="Placeholder")
    x.output(0).set_names({"Placeholder"})
    y = ops.transpose(x, ops.constant(np.array([0, 3, 1, 2], np.int64)))
    y = ops.convolution(y, ops.constant(conv_w), [1, 1], [1, 1], [1, 1], [1, 1])
    y = ops.relu(y)
    y = ops.reshape(y, ops.constant(np.array([-1, 256], np.int64)), False)
    y = ops.matmul(y, ops.constant(dense_w), False, False)
    y = ops.normalize_l2(y, ops.constant(np.array([1], np.int64)), 1e-10, "max")
    y = ops.convert(y, np.float16)
    y.output(0).set_names({"the_outputs"})
    return ov.Model([y], [x], "tiny")


def _emu_om(path: Path, batch: int, precision: str, dynamic: list[int] | None = None) -> str:
    import openvino as ov

    from pymfn.export import om as omlib

    model = _tiny_model(-1 if dynamic else batch)
    xml = path.with_suffix(".xml")
    ov.save_model(model, str(xml), compress_to_fp16=(precision == "f16"))
    b = -1 if dynamic else batch
    meta = omlib.EmulatorMeta(inputs=[omlib.EmulatorTensor("Placeholder", "float32", [b, 8, 8, 3], "NHWC")],
                              outputs=[omlib.EmulatorTensor("the_outputs", "float16", [b, 16])],
                              precision=precision, dynamic_batch=dynamic or [])
    omlib.write_emulator_om(path, meta, xml.read_bytes(), xml.with_suffix(".bin").read_bytes(), name=path.stem)
    return str(path)


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict:
    """Emulator oms (static f32/f16, dynamic 1,2,4,8) of the tiny model + inputs + OpenVINO f32 reference."""
    import openvino as ov

    d = tmp_path_factory.mktemp("emu")
    x = np.random.RandomState(1).uniform(-1, 1, (8, 1, 8, 8, 3)).astype(np.float32)
    np.save(d / "x.npy", x)
    np.save(d / "x8.npy", x[:, 0])
    x[0].tofile(d / "x0.bin")
    compiled = ov.Core().compile_model(_tiny_model(8), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    ref32 = np.asarray(compiled(x[:, 0])[0], np.float32)  # the model's own fp16 cast, from f32 inference
    return {"dir": d, "ref": ref32, "f32": _emu_om(d / "f32.om", 1, "f32"), "f16": _emu_om(d / "f16.om", 1, "f16"),
            "dyn": _emu_om(d / "dyn.om", 1, "f32", [1, 2, 4, 8]),
            **{k: str(d / f) for k, f in (("x", "x.npy"), ("x8", "x8.npy"), ("bin", "x0.bin"))}}


def _bad_files(d: Path, good_om: str) -> dict:
    from pymfn.export import om as omlib

    (d / "short.om").write_bytes(b"IMOD" + bytes(100))
    (d / "bad_magic.om").write_bytes(b"XMOD" + bytes(300))
    blob = bytearray(Path(good_om).read_bytes())
    blob[4:8] = (128).to_bytes(4, "little")
    (d / "bad_headsize.om").write_bytes(bytes(blob))
    omlib.write_om_header(d / "real.om", b"\x01" * 1000, name="tf_MobileFaceNet")  # genuine header, no emulator marker
    (d / "truncated.om").write_bytes(Path(good_om).read_bytes()[:-10])
    # payloads the C++ meta parser / OpenVINO must refuse (written raw, bypassing Python's validation)
    meta = b"pymfn-emu-om 1\nprecision f32\ninput x float32 ND 1,4\noutput y float32 ND 1,4\ncolour blue\n"
    omlib.write_om_header(d / "bad_meta.om", omlib.PAYLOAD_MAGIC + struct.pack("<QQQ", len(meta), 0, 0) + meta,
                          name="m", emulator=True)
    good_meta = omlib.EmulatorMeta([omlib.EmulatorTensor("x", "float32", [1, 4])],
                                   [omlib.EmulatorTensor("y", "float32", [1, 4])])
    omlib.write_emulator_om(d / "bad_ir.om", good_meta, b"<not-an-ir", b"")
    return {k: str(d / f"{k}.om") for k in ("short", "bad_magic", "bad_headsize", "real", "truncated", "bad_meta",
                                            "bad_ir")} | {
        "missing": str(d / "missing.om"), "real_om": str(d / "real.om")}


def test_rules_enforced(emu, models):
    r, stderr = run_scenario(emu, "rules", _bad_files(models["dir"], models["f32"]))
    assert r["malloc_before_init"] == UNINIT and r["dataset_before_init_is_null"]
    assert r["init"] == OK and r["init_again"] == REPEAT_INIT
    assert "aclInit" in r["err_init_again"] and "100002" in r["err_init_again"]
    assert r["err_cleared"] == ""  # aclGetRecentErrMsg returns a message once
    assert r["malloc_without_device"] == CONTEXT_NULL
    assert r["set_device_1"] == INVALID_DEVICE and r["set_device_0"] == OK
    assert r["run_mode"] == 1  # ACL_HOST by default
    assert r["fresh_device_memory_byte"] == 0xA5  # device memory is not zeroed
    assert r["h2d_ok"] == OK and r["h2d_pinned_ok"] == OK
    assert r["h2d_src_device"] == INVALID_PARAM and "source" in r["err_h2d_src_device"]
    assert r["h2d_dst_host"] == INVALID_PARAM and r["d2h_dst_device"] == INVALID_PARAM
    assert r["d2h_ok"] == OK and r["d2d_ok"] == OK
    assert r["d2d_src_host"] == INVALID_PARAM and r["h2h_device_src"] == INVALID_PARAM
    assert r["count_gt_destmax"] == INVALID_PARAM and "destMax" in r["err_count"]
    assert r["past_block_end"] == INVALID_PARAM
    assert r["memset_ok"] == OK and r["memset_host"] == INVALID_PARAM
    assert r["free_unknown"] == INVALID_PARAM and r["free_interior"] == INVALID_PARAM
    assert r["freehost_device"] == INVALID_PARAM and r["free_pinned_with_free"] == INVALID_PARAM
    assert r["free_ok"] == OK and r["double_free"] == INVALID_PARAM
    assert r["load_missing"] == READ_MODEL and r["load_directory"] == READ_MODEL
    assert r["load_short"] == INVALID_FILE and "256" in r["err_load_short"]
    assert r["load_bad_magic"] == INVALID_FILE and r["load_bad_headsize"] == INVALID_FILE
    assert r["load_real_om"] == PARSE_MODEL and "emulator" in r["err_load_real_om"]
    assert r["load_truncated_emu"] == PARSE_MODEL
    assert r["load_bad_meta"] == PARSE_MODEL and "colour" in r["err_bad_meta"]
    assert r["load_bad_ir"] == PARSE_MODEL and r["load_mem_short"] == INVALID_FILE
    assert r["unload_unknown"] == INVALID_MODEL_ID and r["execute_unknown_id"] == INVALID_MODEL_ID
    assert r["destroy_unknown_buffer"] == INVALID_PARAM and r["desc_getter_bad_handle"] == 0
    c = r["counts_before_finalize"]
    assert (c["device_allocs"], c["host_allocs"], c["datasets"], c["data_buffers"]) == (1, 1, 1, 1)
    assert r["finalize"] == OK and r["leaks_at_finalize"] == 4
    assert "aclrtMalloc, 256 bytes" in stderr and "dataset(s)" in stderr and "data buffer(s)" in stderr
    assert r["report_after_finalize"] in stderr
    assert r["malloc_after_finalize"] == UNINIT and r["finalize_twice"] == UNINIT


def test_static_om_matches_openvino_f32(emu, models):
    r, stderr = run_scenario(emu, "static", {"om": models["f32"], "x": models["x"]})
    assert (r["n_in"], r["n_out"]) == (1, 1)
    assert r["in_size"] == 8 * 8 * 3 * 4 and r["out_size"] == 16 * 2  # fp16 output
    assert r["in_dims"] == [1, 8, 8, 3] and r["out_dims"] == [1, 16]
    assert r["in_name"] == "Placeholder" == r["in_dim_name"] and r["out_name"] == "the_outputs"
    assert (r["in_dtype"], r["out_dtype"], r["in_format"], r["in_dtype_oob"]) == (0, 1, 1, -1)
    assert r["index_of_missing_name"] == INVALID_PARAM
    out = np.asarray(r["outputs"], np.float32)
    # f32 inference, output cast to fp16 by the graph: at most one fp16 ulp apart
    np.testing.assert_allclose(out, models["ref"], rtol=0, atol=2 ** -10)
    assert np.abs(np.linalg.norm(out, axis=1) - 1).max() < 5e-3
    assert r["execute_host_buffer"] == RT_FAILURE and "device memory" in r["err_host_buffer"]
    assert r["execute_pinned_buffer"] == RT_FAILURE
    assert r["execute_wrong_size"] == INVALID_PARAM and "exactly" in r["err_wrong_size"]
    assert r["execute_missing_output"] == INVALID_PARAM
    assert r["unload_twice"] == INVALID_MODEL_ID
    c = r["counts_before_finalize"]
    assert sum(v for k, v in c.items() if k not in ("executes", "device_bytes", "host_bytes")) == 0
    assert r["finalize"] == OK and r["leaks_at_finalize"] == 0 and "outstanding" not in stderr


# ---------------------------------------------------------------- numerics: one arithmetic on every host
# The expectations below are float64 numpy computations, so they hold whatever CPU runs the test: a kernel
# that computes below f32 (bf16, native f16, int8 kernels that saturate) fails them on any host.

def _tiny_reference(x: np.ndarray, fp16: bool) -> np.ndarray:
    """The tiny model in float64 on fp16-rounded weights and inputs (``fp16``) or the f32 values, rounded to
    its float16 output at the end."""
    conv_w, dense_w = (w.astype(np.float16) if fp16 else w for w in _tiny_weights())
    x = (x.astype(np.float16) if fp16 else x).astype(np.float64).transpose(0, 3, 1, 2)  # NCHW
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    y = sum(np.einsum("nchw,oc->nohw", xp[:, :, i:i + 8, j:j + 8], conv_w[:, :, i, j].astype(np.float64))
            for i in range(3) for j in range(3))
    y = np.maximum(y, 0).reshape(len(x), 256) @ dense_w.astype(np.float64)
    y = y / np.sqrt(np.maximum((y * y).sum(axis=1, keepdims=True), 1e-10))
    return y.astype(np.float16)


@pytest.mark.parametrize("kind", ["f16", "f32"])
def test_om_computes_f32_on_its_declared_values(emu, models, kind):
    """An fp16 om is computed in f32 on fp16-rounded weights and inputs, an f32 om in f32: within one ulp of a
    float64 computation on the same values (float16 output), and reported as such by the emulator."""
    r, _ = run_scenario(emu, "numerics", {"om": models[kind], "x": models["x8"]})
    got = np.asarray(r["outputs"], np.float64)
    ref = _tiny_reference(np.load(models["x8"]), fp16=(kind == "f16"))
    ulp = np.spacing(np.abs(ref)).astype(np.float64)
    assert np.all(np.abs(got - ref) <= ulp), np.abs(got - ref).max()
    assert np.mean(got == ref) >= 0.9  # f32 arithmetic rounds to the float64 result's float16 nearly always
    rec = r["record"]
    assert rec["compute_precision"] == "f32" and rec["runtime_precision"].startswith("f32 x")
    assert set(prec_meanings(rec["runtime_precision"])) == {"f32"}
    assert rec["device_precision"] == kind and rec["fake_quantize_ops"] == "0"
    if kind == "f16":
        assert "fp16-rounded weights and inputs" in rec["precision_reason"]
        assert rec["stored_weights_precision"].startswith("f16 x")  # stored fp16, widened exactly
    else:
        assert "must_keep_origin_dtype" in rec["precision_reason"] and rec["stored_weights_precision"] == "none"
    _check_compile_record_refusals(r)
    assert r["leaks_at_finalize"] == 0


def prec_meanings(runtime: str) -> list[str]:
    from pymfn.runtime import precision

    return [precision.meaning(k) for k in precision.parse_counts(runtime)]


def _check_compile_record_refusals(r: dict) -> None:
    assert r["record_before_init"] == UNINIT
    assert r["record_unknown_id"] == INVALID_MODEL_ID and "pymfnEmuModelCompileRecord" in r["err_unknown_id"]
    assert r["record_null_needed"] == INVALID_PARAM
    full = "".join(f"{k}={v}\n" for k, v in r["record"].items())
    assert r["record_small_buffer"] == OK and r["record_truncated"] == full[:7] and r["record_needed"] == len(full)
    assert r["record_after_unload"] == INVALID_MODEL_ID


def _int8_conv_om(d: Path) -> tuple[str, str, np.ndarray]:
    """An om of one quantized 3x3 convolution (FakeQuantize on activations: u8 grid 0..255 x 0.01; on weights:
    i8 grid -127..127 x 0.01) whose activations often reach 255 and whose weights are odd and mostly large:
    u8 x s8 pairs that overflow int16. Returns the om, the input file and the exact int32-accumulated result."""
    import openvino as ov
    import openvino.opset13 as ops

    from pymfn.export import om as omlib

    rng = np.random.RandomState(3)
    c_in, c_out, hw = 32, 8, 10
    qa = np.where(rng.rand(2, hw, hw, c_in) < 0.5, 255, rng.randint(0, 256, (2, hw, hw, c_in)))
    qw = rng.choice([-127, -125, -3, -1, 1, 3, 125, 127], (c_out, c_in, 3, 3))

    def fq(node, lo, hi, levels):
        c = [ops.constant(np.array(v, np.float32)) for v in (lo, hi, lo, hi)]
        return ops.fake_quantize(node, *c, levels)

    x = ops.parameter([1, hw, hw, c_in], np.float32, name="x")
    x.output(0).set_names({"x"})
    y = fq(ops.transpose(x, ops.constant(np.array([0, 3, 1, 2], np.int64))), 0.0, 2.55, 256)
    y = ops.convolution(y, fq(ops.constant((qw * 0.01).astype(np.float32)), -1.27, 1.27, 255),
                        [1, 1], [0, 0], [0, 0], [1, 1])
    y.output(0).set_names({"y"})
    xml = d / "int8_conv.xml"
    ov.save_model(ov.Model([y], [x], "int8_conv"), str(xml), compress_to_fp16=True)
    meta = omlib.EmulatorMeta(inputs=[omlib.EmulatorTensor("x", "float32", [1, hw, hw, c_in], "NHWC")],
                              outputs=[omlib.EmulatorTensor("y", "float32", [1, c_out, hw - 2, hw - 2])],
                              precision="f16")
    om = d / "int8_conv.om"
    omlib.write_emulator_om(om, meta, xml.read_bytes(), xml.with_suffix(".bin").read_bytes(), name="int8_conv")
    np.save(d / "int8_x.npy", (qa * 0.01).astype(np.float32)[:, None])
    acc = sum(np.einsum("nhwc,oc->nohw", qa[:, i:i + hw - 2, j:j + hw - 2, :].astype(np.int64), qw[:, :, i, j])
              for i in range(3) for j in range(3))
    return str(om), str(d / "int8_x.npy"), acc * 0.01 * 0.01


def _int8_fc_om(d: Path) -> tuple[str, str, np.ndarray]:
    """An om of one quantized fully connected layer stored the way ov.save_model stores quantized weights: int8
    constants, a Convert and a per-channel scale (no FakeQuantize on them); u8-grid activations. Returns the
    om, the input file and the exact result."""
    import openvino as ov
    import openvino.opset13 as ops

    from pymfn.export import om as omlib

    rng = np.random.RandomState(5)
    n_in, n_out = 64, 16
    qa = np.where(rng.rand(3, n_in) < 0.5, 255, rng.randint(0, 256, (3, n_in)))
    qw = rng.choice([-127, -125, -3, -1, 1, 3, 125, 127], (n_out, n_in)).astype(np.int8)
    c = [ops.constant(np.array(v, np.float32)) for v in (0.0, 2.55, 0.0, 2.55)]
    x = ops.parameter([1, n_in], np.float32, name="x")
    x.output(0).set_names({"x"})
    w = ops.multiply(ops.convert(ops.constant(qw), np.float32), ops.constant(np.full((n_out, 1), 0.01, np.float32)))
    y = ops.matmul(ops.fake_quantize(x, *c, 256), w, False, True)
    y.output(0).set_names({"y"})
    xml = d / "int8_fc.xml"
    ov.save_model(ov.Model([y], [x], "int8_fc"), str(xml), compress_to_fp16=False)
    meta = omlib.EmulatorMeta(inputs=[omlib.EmulatorTensor("x", "float32", [1, n_in])],
                              outputs=[omlib.EmulatorTensor("y", "float32", [1, n_out])], precision="f16")
    om = d / "int8_fc.om"
    omlib.write_emulator_om(om, meta, xml.read_bytes(), xml.with_suffix(".bin").read_bytes(), name="int8_fc")
    np.save(d / "fc_x.npy", (qa * 0.01).astype(np.float32)[:, None])
    return str(om), str(d / "fc_x.npy"), (qa.astype(np.int64) @ qw.T.astype(np.int64)) * 0.01 * 0.01


def test_int8_om_is_exact_int8_arithmetic(emu, tmp_path):
    """An INT8 om multiplies int8-grid values exactly and sums them (at least the device's int8 x int8 -> int32):
    the result equals the integer computation to f32 rounding. OpenVINO's int8 kernels on a CPU without VNNI
    saturate the u8 x s8 pair sums of this layer in int16 and miss by up to ~40%."""
    om, x, exact = _int8_conv_om(tmp_path)
    r, _ = run_scenario(emu, "numerics", {"om": om, "x": x})
    got = np.asarray(r["outputs"], np.float64).reshape(exact.shape)
    assert np.abs(got - exact).max() <= 1e-5 * np.abs(exact).max(), np.abs(got - exact).max()
    rec = r["record"]
    assert rec["device_precision"] == "int8" and rec["compute_precision"] == "f32"
    assert rec["fake_quantize_ops"] == "2" and "int8-grid" in rec["precision_reason"]
    assert set(prec_meanings(rec["runtime_precision"])) == {"f32"}
    # (that the FakeQuantize ops really run is shown by the exactness above: the fp16-rounded inputs and
    # weights are off the int8 grid until they snap back to it)


ISA_LIMIT = "SSE41"  # below every x86 host's default: oneDNN and OpenVINO's CPU plugin then take SSE4.1 kernels


@pytest.mark.slow  # six emulator processes
def test_outputs_do_not_depend_on_the_isa(emu, models, tmp_path):
    """The same om under another instruction set (oneDNN's ONEDNN_MAX_CPU_ISA, honoured by OpenVINO's CPU plugin):
    the same arithmetic, so float16 outputs within one ulp and an int8 layer still exact. (How the limit shows in
    the execution graph, jit_sse42 kernels instead of the host's, is checked by .ci/isa.)"""
    int8_oms = [_int8_conv_om(tmp_path), _int8_fc_om(tmp_path)]
    for env in ({}, {"ONEDNN_MAX_CPU_ISA": ISA_LIMIT}):
        f16, _ = run_scenario(emu, "numerics", {"om": models["f16"], "x": models["x8"]}, env=env)
        ref = _tiny_reference(np.load(models["x8"]), fp16=True)
        assert np.all(np.abs(np.asarray(f16["outputs"]) - ref) <= np.spacing(np.abs(ref))), env
        assert f16["record"]["compute_precision"] == "f32", env
        # int8 weights stored as int8 constants (the fully connected om) have no OpenVINO kernel below AVX2 as
        # such: the emulator widens them first, so they load and compute exactly on every ISA
        for om, x, exact in int8_oms:
            i8, _ = run_scenario(emu, "numerics", {"om": om, "x": x}, env=env)
            got = np.asarray(i8["outputs"]).reshape(exact.shape)
            assert np.abs(got - exact).max() <= 1e-5 * np.abs(exact).max(), (env, om)
            assert i8["record"]["compute_precision"] == "f32", env
        assert i8["record"]["stored_weights_precision"] == "i8 x1", i8["record"]  # the fc om's, widened


def test_device_run_mode(emu, models):
    r, _ = run_scenario(emu, "device_mode", {"om": models["f32"], "bin": models["bin"]},
                        env={"PYMFN_ACL_EMU_RUN_MODE": "device"})
    assert r["run_mode"] == 0  # ACL_DEVICE
    assert r["execute_file_in_device_memory"] == OK
    np.testing.assert_allclose(np.asarray(r["output"], np.float32), models["ref"][0], atol=2 ** -10)
    assert r["execute_pinned_output"] == OK
    assert r["execute_malloc_output"] == RT_FAILURE  # plain malloc memory is not runtime memory
    assert r["memcpy_kind_not_checked"] == OK and r["memcpy_count_still_checked"] == INVALID_PARAM
    assert r["leaks_at_finalize"] == 0


def test_dynamic_batch(emu, models):
    r, _ = run_scenario(emu, "dynamic", {"om": models["dyn"], "x": models["x8"]})
    assert r["n_in"] == 2 and r["index_rc"] == OK and r["mbatch_index"] == 1 and r["mbatch_size"] == 8
    assert r["batches"] == [1, 2, 4, 8] and r["in_dims"] == [-1, 8, 8, 3]
    assert r["in_size"] == 8 * 8 * 8 * 3 * 4 and r["out_size"] == 8 * 16 * 2
    assert r["execute_without_set"] == INVALID_PARAM and "aclmdlSetDynamicBatchSize" in r["err_without_set"]
    assert r["set_batch_3"] == INVALID_PARAM and "1,2,4,8" in r["err_batch_3"]
    assert r["set_wrong_index"] == INVALID_PARAM
    assert r["set_batch_2"] == OK and r["execute_batch_2"] == OK
    out2 = np.asarray(r["output_batch_2"], np.float32).reshape(8, 16)
    np.testing.assert_allclose(out2[:2], models["ref"][:2], atol=2 ** -10)  # valid part: size * 2 / 8
    assert r["untouched_tail_bytes"] == [0xA5]  # the rest of the output buffer was not written
    assert r["cur_out_dims"] == [2, 16]
    assert r["execute_batch_8"] == OK
    np.testing.assert_allclose(np.asarray(r["output_batch_8"], np.float32).reshape(8, 16), models["ref"],
                               atol=2 ** -10)
    assert r["leaks_at_finalize"] == 0


def test_async_streams_and_contexts(emu, models):
    r, _ = run_scenario(emu, "async", {"om": models["f32"], "x": models["x"]})
    assert r["enqueue_s1"] == OK and r["enqueue_s1_again"] == OK
    assert r["enqueue_s2_same_model"] == FAILURE and "another stream" in r["err_s2"]
    assert r["sync_execute_while_queued"] == FAILURE
    assert r["memcpy_async"] == OK and r["memcpy_async_bad_kind"] == INVALID_PARAM
    assert r["sync_s1"] == OK
    np.testing.assert_allclose(np.asarray(r["output"], np.float32), models["ref"][0], atol=2 ** -10)
    assert r["enqueue_s2_after_sync"] == OK and r["sync_s2"] == OK
    assert r["unload_while_queued"] == FAILURE and r["output_before_sync_untouched"]
    assert r["malloc_other_thread_no_ctx"] == CONTEXT_NULL
    assert r["execute_other_context"] == MODEL_CONTEXT
    assert r["leaks_at_finalize"] == 0


def test_ten_thousand_executes_without_leaks(emu, models):
    r, stderr = run_scenario(emu, "loop", {"om": models["f32"], "x": models["x"], "n": 10_000})
    assert r["failures"] == 0 and r["executes"] == 10_000
    assert r["finalize"] == OK and r["leaks_at_finalize"] == 0 and r["report"] == ""
    assert "outstanding" not in stderr


@pytest.mark.parametrize("env,expect", [
    ({"PYMFN_ACL_EMU_DEVICES": "2"}, {"init": OK, "count": 2, "set_last": OK, "set_past": INVALID_DEVICE,
                                      "create_ctx_past": INVALID_DEVICE}),
    ({"PYMFN_ACL_EMU_DEVICES": "zero"}, {"init": INVALID_PARAM}),
    ({"PYMFN_ACL_EMU_RUN_MODE": "cloud"}, {"init": INVALID_PARAM}),
])
def test_environment_configuration(emu, env, expect):
    r, _ = run_scenario(emu, "env", {}, env=env)
    for k, v in expect.items():
        assert r[k] == v, (k, r)
    if r["init"] != OK:
        assert next(iter(env)) in r["err"]


def test_stale_contexts_are_not_current(emu):
    r, stderr = run_scenario(emu, "stale_context", {})
    assert r["worker_create_ctx"] == OK and r["worker_malloc"] == OK
    assert r["main_destroys_ctx"] == OK and r["worker_malloc_after_destroy"] == CONTEXT_NULL
    assert r["worker_set_device"] == OK
    assert r["worker_malloc_after_reinit"] == CONTEXT_NULL  # aclFinalize ended every context
    assert r["finalize"] == OK
    assert "aclrtMalloc, 64 bytes" in stderr  # the first session's block was reported at its finalize


def test_one_model_id_on_two_threads_is_caught(emu, models):
    # The threads race for real; with the GIL handed over at every ctypes call they overlap within a few
    # iterations, so 2 x 3000 calls without a single collision would mean the check is missing.
    r, _ = run_scenario(emu, "shared_model_threads", {"om": models["f32"], "n": 3000})
    assert set(r["codes"]) <= {str(OK), str(FAILURE)}, r["codes"]
    assert r["codes"].get(str(FAILURE), 0) >= 1 and r["codes"].get(str(OK), 0) >= 1
    assert r["leaks_at_finalize"] == 0


CLIENT_CPP = r"""
// A minimal msame-like ACL client: CANN's include layout, links against libascendcl.so only.
#include <cstdio>
#include <cstdlib>
#include <vector>
#include "acl/acl.h"

#define CHECK(call) do { aclError rc_ = (call); if (rc_ != ACL_SUCCESS) { \
  std::fprintf(stderr, "%s -> %d: %s\n", #call, rc_, aclGetRecentErrMsg()); return 1; } } while (0)

int main(int argc, char** argv) {
  CHECK(aclInit(nullptr));
  CHECK(aclrtSetDevice(0));
  aclrtRunMode mode;
  CHECK(aclrtGetRunMode(&mode));
  uint32_t id = 0;
  CHECK(aclmdlLoadFromFile(argv[1], &id));
  aclmdlDesc* desc = aclmdlCreateDesc();
  CHECK(aclmdlGetDesc(desc, id));
  size_t in_size = aclmdlGetInputSizeByIndex(desc, 0), out_size = aclmdlGetOutputSizeByIndex(desc, 0);
  std::vector<char> host(in_size);
  FILE* f = std::fopen(argv[2], "rb");
  if (!f || std::fread(host.data(), 1, in_size, f) != in_size) return 2;
  std::fclose(f);
  void *din = nullptr, *dout = nullptr, *hout = nullptr;
  CHECK(aclrtMalloc(&din, in_size, ACL_MEM_MALLOC_HUGE_FIRST));
  CHECK(aclrtMalloc(&dout, out_size, ACL_MEM_MALLOC_HUGE_FIRST));
  CHECK(aclrtMallocHost(&hout, out_size));
  CHECK(aclrtMemcpy(din, in_size, host.data(), in_size, ACL_MEMCPY_HOST_TO_DEVICE));
  aclmdlDataset* in = aclmdlCreateDataset();
  aclmdlDataset* out = aclmdlCreateDataset();
  aclDataBuffer* bi = aclCreateDataBuffer(din, in_size);
  aclDataBuffer* bo = aclCreateDataBuffer(dout, out_size);
  CHECK(aclmdlAddDatasetBuffer(in, bi));
  CHECK(aclmdlAddDatasetBuffer(out, bo));
  CHECK(aclmdlExecute(id, in, out));
  CHECK(aclrtMemcpy(hout, out_size, dout, out_size, ACL_MEMCPY_DEVICE_TO_HOST));
  std::fwrite(hout, 1, out_size, stdout);
  CHECK(aclDestroyDataBuffer(bi)); CHECK(aclDestroyDataBuffer(bo));
  CHECK(aclmdlDestroyDataset(in)); CHECK(aclmdlDestroyDataset(out));
  CHECK(aclrtFree(din)); CHECK(aclrtFree(dout)); CHECK(aclrtFreeHost(hout));
  CHECK(aclmdlDestroyDesc(desc)); CHECK(aclmdlUnload(id));
  CHECK(aclrtResetDevice(0));
  CHECK(aclFinalize());
  return mode == ACL_HOST ? 0 : 3;
}
"""


def test_cpp_client_links_against_the_emulator(emu, models, tmp_path):
    """An ACL client compiled against pymfn's acl/acl.h and linked with -lascendcl runs on the emulator with no
    LD_LIBRARY_PATH: the emulator finds OpenVINO through its own run path (it used to name pip's deleted build
    folder, so clients needed the openvino libs folder set by hand)."""
    import shutil

    cxx = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    src = tmp_path / "client.cpp"
    src.write_text(CLIENT_CPP)
    exe = tmp_path / "client"
    cflags = subprocess.run([sys.executable, "-m", "pymfn", "acl-config", "--cflags"], capture_output=True, text=True,
                            env=dict(os.environ, PYMFN_CORE_DIR=str(emu.parent)), timeout=120)
    assert cflags.returncode == 0, cflags.stderr
    proc = subprocess.run([cxx, "-std=c++17", "-O0", *cflags.stdout.split(), str(src), "-o", str(exe), f"-L{emu.parent}",
                           "-lascendcl", f"-Wl,-rpath,{emu.parent}"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYMFN_ACL_EMU_") and k != "LD_LIBRARY_PATH"}
    p = subprocess.run([str(exe), models["f32"], models["bin"]], capture_output=True, timeout=60, env=env)
    assert p.returncode == 0, p.stderr.decode()
    out = np.frombuffer(p.stdout, np.float16).astype(np.float32)
    np.testing.assert_allclose(out, models["ref"][0], atol=2 ** -10)
    assert b"outstanding" not in p.stderr


# ---------------------------------------------------------------- the surface third-party clients use

def test_tensor_descriptions(emu):
    r, stderr = run_scenario(emu, "tensor_descs", {})
    assert r["create_before_init_is_null"]
    assert (r["type"], r["format"], r["num_dims"], r["elements"], r["size"]) == (0, 1, 4, 384, 384 * 4)
    assert r["dim3"] == [OK, 3] and r["dim_out_of_range"] == INVALID_PARAM and "out of range" in r["err_dim"]
    assert r["name"] == "Placeholder" and r["by_index_0_is_itself"] and r["by_index_1_is_null"]
    assert r["address_is_null"] and r["unknown_dim_size"] == 0
    assert r["bad_num_dims_is_null"] and r["bad_dim_is_null"] and "-5" in r["err_bad_dim"]
    assert r["bad_dtype_is_null"] and r["null_dims_is_null"] and r["getter_on_garbage"] == -1
    # a dataset keeps its own copy, which the client may not destroy
    assert r["set_index_2"] == INVALID_PARAM and r["set_index_1"] == OK and r["unset_index_0_is_null"]
    assert r["copy_is_not_the_original"] and r["original_after_destroy"] == -1
    assert r["copy_dims_after_original_destroyed"] == 4
    assert "dataset's own copy" in r["err_destroy_copy"] and r["copy_still_live"] == 4
    assert "not a live aclTensorDesc" in r["err_double_destroy"]
    assert r["set_null_removes"] == OK and r["removed_is_null"]
    assert r["counts_before_finalize"]["tensor_descs"] == 1  # the dataset's copies are not the client's
    assert r["finalize"] == OK and r["leaks_at_finalize"] == 1
    assert "1 tensor description(s)" in stderr


def test_events_time_queued_work(emu, models):
    r, stderr = run_scenario(emu, "events", {"om": models["f32"], "x": models["x"]})
    assert r["elapsed_unrecorded"] == EVENT_UNRECORDED and r["status_unrecorded"] == 0  # NOT_READY
    assert r["sync_unrecorded"] == OK
    assert (r["record_start"], r["enqueue"], r["record_end"]) == (OK, OK, OK)
    assert r["status_queued"] == 0 and r["elapsed_not_reached"] == EVENT_NOT_COMPLETE
    assert r["stream_timeout"] == STREAM_SYNC_TIMEOUT and "30 ms" in r["err_stream_timeout"]
    assert r["event_timeout_check_only"] == EVENT_SYNC_TIMEOUT and r["bad_timeout"] == INVALID_PARAM
    assert r["sync_end_event"] == OK and r["status_reached"] == 1  # COMPLETE
    assert r["elapsed"] == OK and r["elapsed_ms"] > 0 and r["elapsed_reversed"] == EVENT_REVERSED
    assert r["sync_with_timeout"] == OK
    np.testing.assert_allclose(np.asarray(r["output"], np.float32), models["ref"][0], atol=2 ** -10)
    assert (r["enqueue_default"], r["record_default"], r["sync_default"]) == (OK, OK, OK)
    assert r["output_default"] == r["output"]
    assert r["destroy_default"] == INVALID_PARAM and r["sync_device"] == OK
    assert r["record_other_context"] == STREAM_CONTEXT
    assert r["destroy_event"] == OK and r["destroy_event_twice"] == INVALID_PARAM and r["record_destroyed"] == INVALID_PARAM
    assert r["counts_before_finalize"]["events"] == 1 and r["leaks_at_finalize"] == 1
    assert "1 event(s) not aclrtDestroyEvent'ed" in stderr


def test_failed_execute_calls_the_exception_callback(emu, models):
    r, _ = run_scenario(emu, "exceptions", {"om": models["f32"]})
    assert r["set_before_init"] == UNINIT and r["set"] == OK
    assert r["sync_fault"] == RT_FAILURE and r["async_fault"] == RT_FAILURE
    assert "device memory" in r["err_sync_fault"]  # the callback's own failing call did not replace it
    assert r["rejected_argument"] == INVALID_PARAM and r["fault_after_clear"] == RT_FAILURE
    assert len(r["seen"]) == 2  # the two task failures; neither the rejected argument nor the one after clearing
    sync, async_ = r["seen"]
    for e in (sync, async_):
        assert e["code"] == RT_FAILURE and e["thread"] == e["caller"] and e["op_rc"] == OK
        assert e["op"] == "f32" and (e["n_in"], e["n_out"]) == (1, 1)
        assert e["in_name"] == "Placeholder" and e["in_dims"] == [1, 8, 8, 3] and e["in_address"] == r["host_address"]
        assert e["short_name_rc"] == INVALID_PARAM
    assert sync["ids"][0] == 0 and async_["ids"][1] != sync["ids"][1]  # the explicit stream has its own id
    assert r["bogus_info"] == [NO_VALUE, NO_VALUE] and r["unknown_task"] == INVALID_PARAM
    assert r["cleared"] == OK and r["leaks_at_finalize"] == 0  # the op descriptions were released


def test_dynamic_gear_queries_are_truthful(emu, models):
    r, _ = run_scenario(emu, "gears", {"static": models["f32"], "dynamic": models["dyn"]})
    assert r["unfilled_gear_count"] == INVALID_PARAM
    for kind, batches in (("static", []), ("dynamic", [1, 2, 4, 8])):
        k = r[kind]
        assert k["gear_count"] == [OK, 0] and k["gear_count_index_0"] == INVALID_PARAM, kind
        assert k["gear_dims"] == OK and k["gear_dims_null"] == INVALID_PARAM
        assert k["hw"] == [OK, 0] and k["batches"] == batches
        assert k["output_index"] == [OK, 0] and k["output_index_missing"] == INVALID_PARAM
        assert k["set_hw"] == INVALID_PARAM and "no image-size" in k["err_set_hw"]
        assert k["set_dims"] == INVALID_PARAM and k["set_hw_unknown_model"] == INVALID_MODEL_ID
    assert r["leaks_at_finalize"] == 0


def test_helpers_and_memory_loads(emu, models, tmp_path):
    rng = np.random.default_rng(5)
    special = np.array([0.0, -0.0, 1.0, -2.5, 65504.0, 65520.0, 65519.99, 1e10, -1e10, np.inf, -np.inf, 2 ** -24,
                        2 ** -25, 2 ** -25 * 1.0001, 3 * 2 ** -25, 2 ** -14, 2 ** -14 - 2 ** -25, 1e-30, 1 + 2 ** -11,
                        1 + 3 * 2 ** -11], np.float32)
    spread = rng.integers(0, 2 ** 32, 20000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    near = (rng.uniform(-7e4, 7e4, 5000) * rng.choice([1, 1e-5, 1e-7], 5000)).astype(np.float32)
    floats = np.concatenate([special, spread[np.isfinite(spread)], near])
    np.save(tmp_path / "floats.npy", floats)
    r, stderr = run_scenario(emu, "helpers", {"om": models["f32"], "floats": str(tmp_path / "floats.npy")})
    assert r["version"] == [OK, [1, 0, 0]] and r["version_null"] == INVALID_PARAM
    assert r["soc_before_init"] is None and r["soc"] == "Ascend310"
    halves = np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float32)
    got = np.asarray(r["half_to_float"], np.float32)
    finite = np.isfinite(halves)
    assert np.array_equal(got[finite].view(np.uint32), halves[finite].view(np.uint32))  # bit for bit, signed zeros too
    assert np.array_equal(np.isnan(got), np.isnan(halves)) and np.array_equal(np.isinf(got), np.isinf(halves))
    with np.errstate(over="ignore"):  # the overflowing inputs are there on purpose
        want = floats.astype(np.float16).view(np.uint16)
    assert np.array_equal(np.asarray(r["float_to_half"], np.uint16), want)  # round to nearest even, like numpy
    sizes = {int(k): v for k, v in r["type_sizes"].items()}
    assert sizes == {-1: 0, 0: 4, 1: 2, 2: 1, 3: 4, 4: 1, 6: 2, 7: 2, 8: 4, 9: 8, 10: 8, 11: 8, 12: 1, 13: 0, 27: 2, 99: 0}
    assert r["get_device_without_context"] == CONTEXT_NULL and r["get_device"] == [OK, 0]
    assert r["query_file"] == OK and r["query_mem"] == OK and r["query_sizes_agree"]
    assert r["query_mem_empty"] == INVALID_PARAM
    assert r["load_with_mem"] == OK and r["unload"] == OK
    assert r["load_small_work"] == INVALID_PARAM
    assert r["load_host_weight"] == INVALID_PARAM and "weightPtr must be device memory" in r["err_host_weight"]
    assert r["buffer_size_u32"] == 1000
    assert r["finalize"] == OK and r["leaks_at_finalize"] == 0

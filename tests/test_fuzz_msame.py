"""Property tests for the parsers of untrusted msame bytes: its logs and its output folders.

The property: whatever the input, ``pymfn.inputs.msame`` either returns a result that is consistent with it or
raises ``MsameError`` (whose message names the file or says what was expected). Never another exception
type, never a hang, never an allocation out of proportion to the input (an index or a size read from a
file name must not decide how much memory is used).

The normal test run tries a bounded number of generated inputs per test, deterministically (the same
examples every run). A long campaign needs no code change:

    PYMFN_FUZZ_EXAMPLES=20000 PYMFN_FUZZ_RANDOM=1 .venv/bin/python -m pytest -q -p no:cacheprovider \\
        tests/test_fuzz_msame.py

``PYMFN_FUZZ_EXAMPLES`` is the number of examples per test (default 150); ``PYMFN_FUZZ_RANDOM=1`` makes
Hypothesis explore new random examples instead of the fixed sequence (a failure prints the reproducing
``@reproduce_failure`` blob and the shrunk input).
"""
from __future__ import annotations

import os
import string
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any
from collections.abc import Callable

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pymfn.inputs import msame

EXAMPLES = int(os.environ.get("PYMFN_FUZZ_EXAMPLES", "") or 150)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                derandomize=not os.environ.get("PYMFN_FUZZ_RANDOM"),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Generous bounds: the inputs here are at most a few hundred KB, so a parser within them is linear in spirit.
# The time bound is on CPU time of the calling thread, which other jobs on the machine do not inflate (a
# loaded machine stretches wall time, not the work a parse does); a runaway parse still burns CPU.
CPU_SECONDS_PER_CALL = 5.0
# A call that blocks (a FIFO opened for reading waits for a writer forever) burns no CPU: it is run on a
# thread and must return within this wall time, generous for a loaded machine and finite for a test run.
BLOCKING_SECONDS = 60.0
HEAP_BYTES_BASE = 32 << 20
HEAP_BYTES_PER_INPUT_BYTE = 64


def parses_or_msame_error(call: Callable[[], Any], input_bytes: int) -> Any:
    """Run ``call``; MsameError is fine, any other exception fails; so do a hang and a runaway allocation."""
    tracemalloc.start()
    t0 = time.thread_time()
    try:
        result = call()
    except msame.MsameError as exc:
        assert str(exc).strip(), "an MsameError must say what is wrong"
        result = exc
    finally:
        cpu = time.thread_time() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert cpu < CPU_SECONDS_PER_CALL, f"took {cpu:.1f} s of CPU on {input_bytes} bytes of input"
    limit = HEAP_BYTES_BASE + HEAP_BYTES_PER_INPUT_BYTE * input_bytes
    assert peak < limit, f"peak allocation {peak} bytes for {input_bytes} bytes of input"
    return result


# ------------------------------------------------------------------------------------------------ logs

_number = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(lambda v: f"{v:g}"),
    st.integers(-10**30, 10**30).map(str),
    st.text(alphabet="0123456789.eE+-naif", min_size=0, max_size=12),
    st.just("-nan"),
)
_space = st.text(alphabet=" \t", max_size=3)
_msame_line = st.one_of(
    st.builds(lambda a, n, b: f"{a}Inference time:{b}{n}ms", _space, _number, _space),
    st.builds(lambda a, n: f"{a}Inference average time : {n} ms", _space, _number),
    st.builds(lambda a, n: f"{a}Inference average time: {n} ms", _space, _number),
    st.builds(lambda n: f"Inference average time without first time: {n} ms", _number),
    st.builds(lambda name: f"[INFO] start to process file:{name}", st.text(max_size=20)),
    st.sampled_from(["[INFO] model execute success", "[ERROR] execute model failed, modelId is 1",
                     "[ERROR] model execute failed", "[INFO] output data success", "", "\r", "\x00"]),
    st.text(max_size=40),
)
_log_text = st.lists(_msame_line, max_size=60).flatmap(
    lambda lines: st.sampled_from(["\n", "\r\n", "\n\n"]).map(lambda sep: sep.join(lines)))


@FUZZ
@given(_log_text)
def test_log_text_parses_or_raises_msame_error(text):
    result = parses_or_msame_error(lambda: msame.parse_msame_logs(text), len(text.encode()))
    if isinstance(result, list):
        assert result, "parse_msame_logs returns at least one run or raises"
        for log in result:
            assert log.mode in ("folder", "loop")
            assert isinstance(log.failure_reasons(expected_files=3), list)
            assert all(isinstance(t, float) for t in log.run_times_ms)


_REAL_LOG = (
    b"./om_output//2022113_9_31_13_612340\n[INFO] start to process file:./bin_input/0.bin\n"
    b"[INFO] model execute success\nInference time: 1.514ms\n[INFO] output data success\n"
    b"[INFO] start to process file:./bin_input/1.bin\n[INFO] model execute success\nInference time: 0.742ms\n"
    b"Inference average time : 1.13 ms\nInference average time without first time: 0.74 ms\n"
)


@FUZZ
@given(st.data())
def test_mutated_log_files_parse_or_raise_msame_error(data):
    raw = bytearray(_REAL_LOG)
    for _ in range(data.draw(st.integers(0, 8))):
        op = data.draw(st.sampled_from(["flip", "delete", "insert", "truncate"]))
        pos = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if op == "flip" and raw:
            raw[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "delete":
            del raw[pos:pos + data.draw(st.integers(1, 8))]
        elif op == "insert":
            raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del raw[pos:]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "msame.log"
        path.write_bytes(bytes(raw))
        parses_or_msame_error(lambda: msame.parse_msame_logs(msame.read_log_file(path)), len(raw))


# ------------------------------------------------------------------------------------------------ folders

_stem = st.one_of(
    st.integers(0, 30).map(str),
    st.integers(0, 10**20).map(str),
    st.text(alphabet="0123456789", min_size=1, max_size=30),
    st.text(alphabet=string.ascii_letters + "0123456789_-.\u00b2\u0663 ", min_size=1, max_size=12),
).filter(lambda s: "/" not in s and not s.startswith(".") and s not in (".", ".."))
_name = st.one_of(
    st.builds(lambda s, k, e: f"{s}_output_{k}.{e}", _stem,
              st.one_of(st.integers(0, 3).map(str), st.text(alphabet="0123456789", min_size=1, max_size=12)),
              st.sampled_from(["bin", "txt"])),
    st.text(alphabet=string.ascii_letters + "._\n", min_size=1, max_size=12),
).filter(lambda n: "/" not in n and "\x00" not in n and n not in (".", "..") and len(n.encode()) < 200)
_content = st.one_of(
    st.binary(max_size=64),
    st.lists(st.floats(width=16, allow_nan=True, allow_infinity=True), min_size=1, max_size=16)
      .map(lambda v: np.asarray(v, np.float16).tobytes()),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=16)
      .map(lambda v: " ".join(f"{x:g}" for x in v).encode()),
    st.lists(st.integers(-70000, 70000), min_size=1, max_size=16).map(lambda v: " ".join(map(str, v)).encode()),
)
_timestamp = st.one_of(
    st.sampled_from(["20210915_104452", "2022113_9_31_13_612340", "20221231_23_59_59_0", "2022113_1_0_0_0"]),
    st.text(alphabet="0123456789_", min_size=1, max_size=24),
)


@FUZZ
@given(files=st.dictionaries(_name, _content, max_size=12), nest=st.one_of(st.none(), _timestamp),
       dtype=st.sampled_from(["float16", "float32", "int8", "uint8", "int32"]),
       fmt=st.sampled_from([None, "BIN", "TXT"]), complete=st.booleans(), allow_nonfinite=st.booleans(),
       count=st.one_of(st.none(), st.integers(0, 20)), txt_bits=st.booleans())
def test_output_folders_read_or_raise_msame_error(files, nest, dtype, fmt, complete, allow_nonfinite, count, txt_bits):
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / nest if nest else Path(tmp)
        run_dir.mkdir(exist_ok=True)
        for name, content in files.items():
            (run_dir / name).write_bytes(content)
        total = sum(len(c) for c in files.values())
        result = parses_or_msame_error(
            lambda: msame.read_msame_outputs(tmp, dtype, fmt=fmt, complete=complete, count=count,
                                             allow_nonfinite=allow_nonfinite, txt_fp16_bits=txt_bits),
            total)
    if isinstance(result, msame.MsameOutputs):
        assert result.outputs and all(o.shape[0] == len(result.stems) for o in result.outputs)
        assert len(set(result.stems)) == len(result.stems)
        if not allow_nonfinite and np.dtype(dtype).kind == "f":
            assert all(np.isfinite(o).all() for o in result.outputs)
        if complete and count is not None and all(s.isascii() and s.isdigit() for s in result.stems):
            assert len(result.stems) == count


@FUZZ
@given(names=st.lists(_timestamp, max_size=6, unique=True), pick=st.one_of(st.none(), _timestamp))
def test_run_folder_choice_is_a_folder_or_msame_error(names, pick):
    with tempfile.TemporaryDirectory() as tmp:
        for n in names:
            (Path(tmp) / n).mkdir()
            np.zeros(4, np.float16).tofile(Path(tmp) / n / "0_output_0.bin")
        result = parses_or_msame_error(lambda: msame.find_run_dir(tmp, pick), 0)
        if isinstance(result, Path):
            assert result.is_dir() and result.parent == Path(tmp)


def test_a_fifo_in_place_of_a_log_or_an_output_does_not_block(tmp_path):
    fifo = tmp_path / "msame.log"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def read() -> None:
        try:
            msame.read_log_file(fifo)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(BLOCKING_SECONDS)
    if reader.is_alive():  # unblock the reader (open() of a FIFO waits for a writer) so the thread can end
        with open(fifo, "wb"):
            pass
        raise AssertionError(f"reading a FIFO as a log blocked for {BLOCKING_SECONDS:g} s")
    exc = outcome[0]
    assert isinstance(exc, msame.MsameError), f"a FIFO was read as a log ({exc!r})"
    assert "not a regular file" in str(exc) and str(fifo) in str(exc)
    run = tmp_path / "20210915_104452"
    run.mkdir()
    np.zeros(4, np.float16).tofile(run / "0_output_0.bin")
    os.mkfifo(run / "1_output_0.bin")  # not a regular file: not an output, never opened
    assert msame.read_msame_outputs(run, complete=False).stems == ["0"]

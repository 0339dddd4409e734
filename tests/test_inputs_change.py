"""Inputs that change under a run end it with a one-line error naming the file, never a signal.

Every kind of input (packed file, .npy opened by open_dataset, a numpy array that maps a .npy, a folder
read with mmap or pread) is truncated, overwritten in place (``cp small big``), rewritten with the same
size, or replaced by rename while the runner is using it. The change is made deterministically from
inside the engine, at a fixed execute() call: in the middle of the first pass (infer_all, one request in
flight) or between passes (run_benchmark, two in flight). Each kind runs in a subprocess of its own, so
a regression (a SIGBUS that kills the process) fails one test with the signal named instead of taking
pytest down.

A packed file or a .npy replaced by rename is not a change to what the run reads: the dataset keeps the
file it opened (its mapping holds the old inode), so the run finishes with the original samples. A
folder's sample file replaced by rename is a different file at the same name: an error, like the rest.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

WORKER = r'''
import json, os, sys
import numpy as np
import pymfn
from pymfn.inputs import pack
from pymfn.inputs.datasets import open_dataset

core = pymfn.load_core()
kind, tmp = sys.argv[1], sys.argv[2]
N, WIDTH, BATCH = 24, 4096, 4           # 16 KB samples: 4 pages each, so a cut leaves whole pages missing
OLD = 1_000_000_000                     # inputs dated 2001: any rewrite moves the mtime, whatever the clock tick
SUFFIX = ".pack" if kind == "pack" else ".npy" if kind.startswith("npy") else ""


def samples(seed):
    return np.random.default_rng(seed).integers(-8, 8, (N, WIDTH)).astype(np.float32)


def write_source(where, data):
    """The input of this kind holding `data`; returns (path given to the dataset, file the actions hit)."""
    if kind == "pack":
        with pack.PackedWriter(where, "float32", (WIDTH,)) as w:
            w.append(data)
        target = where
    elif kind in ("npy", "npy-array"):
        np.save(where, data)
        target = where
    else:
        os.mkdir(where)
        for i, row in enumerate(data):
            row.tofile(os.path.join(where, f"{i}.bin"))
        target = os.path.join(where, f"{N - 2}.bin")   # a sample of the last batch: read after the change
    for root, _, files in os.walk(where) if os.path.isdir(where) else [(os.path.dirname(where), [], [os.path.basename(where)])]:
        for f in files:
            os.utime(os.path.join(root, f), (OLD, OLD))
    return where, target


def open_source(path):
    if kind == "npy-array":   # the API route: the dataset only sees memory, found to map a file
        ds = core.ArrayDataset(np.load(path, mmap_mode="r"))
        assert ds.mapped_file == os.path.realpath(path), ds.mapped_file
        return ds
    if kind.startswith("folder"):
        return open_dataset(path, sample_shape=(WIDTH,), folder_io=kind.split("-")[1])
    return open_dataset(path)


def act(action, path, target, case):
    """Change the input the way a user or another program would."""
    other = os.path.join(tmp, case + "-other" + SUFFIX)
    if action == "truncate":           # cut inside the data: later samples are gone (reading them faults)
        size = os.path.getsize(target)
        os.truncate(target, size // 3 if kind.startswith("folder") else size - (N - 5) * WIDTH * 4 - 100)
    elif action == "shorten":          # the last sample gone: the next batch is still inside the file
        os.truncate(target, os.path.getsize(target) - WIDTH * 4 if not kind.startswith("folder") else 16)
    elif action == "overwrite":        # cp small big: same inode, truncated, then new (fewer) bytes
        small, _ = write_source(other, samples(7)[: N // 3] if not kind.startswith("folder") else samples(7))
        src = small if not kind.startswith("folder") else os.path.join(small, "0.bin")
        with open(src, "rb") as f, open(target, "r+b") as g:
            g.truncate(0)
            g.write(f.read())
    elif action == "rewrite":          # same size, same inode, other values
        with open(target, "r+b") as g:
            g.seek(-WIDTH * 4, os.SEEK_END)
            g.write(np.full(WIDTH, 3, np.float32).tobytes())
    elif action == "rename":           # written elsewhere, renamed over the name
        if kind.startswith("folder"):
            np.full(WIDTH, 5, np.float32).tofile(other)
        else:
            write_source(other, samples(9))
        os.replace(other, target)


class Changer(core.Engine):
    kind = "changer"
    model_path = "changer"

    def __init__(self, at_call, change, inflight):
        super().__init__()
        self.calls, self.at_call, self.change, self.slots = 0, at_call, change, inflight

    def inputs(self):
        return [core.TensorInfo("x", "float32", [-1, WIDTH])]

    def outputs(self):
        return [core.TensorInfo("y", "float32", [-1, 1])]

    def max_inflight(self):
        return self.slots

    def execute(self, inputs):
        self.calls += 1
        if self.calls == self.at_call:
            self.change()
        return [inputs[0].sum(axis=1, keepdims=True)]


results = {}
for action in ("truncate", "shorten", "overwrite", "rewrite", "rename"):
    for mode in ("infer_all", "run_benchmark"):
        case = f"{action}-{mode}"
        path, target = write_source(os.path.join(tmp, case + SUFFIX), samples(1))
        ds = open_source(path)
        # infer_all: one pass of 6 batches, changed before batch 2 is read. run_benchmark: changed in pass 2.
        eng = Changer(2 if mode == "infer_all" else 8, lambda: act(action, path, target, case), 1 if mode == "infer_all" else 2)
        out = {"case": case}
        try:
            if mode == "infer_all":
                got = np.asarray(core.infer_all(eng, ds.reader(BATCH, 2), 1)[0]).reshape(-1)
                out["sums_ok"] = bool(np.array_equal(got, samples(1).sum(axis=1)))
            else:
                s = core.RunSettings(batch_size=BATCH, warmup_iterations=0, min_iterations=18, min_duration_ms=0,
                                     max_duration_ms=60000, inflight=2)
                core.run_benchmark(eng, ds.reader(BATCH, 2), s)
                out["sums_ok"] = None
            out["error"] = None
        except Exception as exc:
            out["error"] = type(exc).__name__
            out["message"] = str(exc)
            out["path"] = getattr(exc, "path", None)
        out["calls"] = eng.calls
        out["target"] = target
        results[case] = out
        print(json.dumps(out), flush=True)
print("DONE", flush=True)
'''

KINDS = ["pack", "npy", "npy-array", "folder-mmap", "folder-pread"]


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop("PYTHONFAULTHANDLER", None)  # the default SIGBUS disposition: a regression shows as the signal
    return env


@pytest.mark.parametrize("kind", KINDS)
def test_input_changed_mid_run_is_an_error_never_a_signal(tmp_path, kind):
    p = subprocess.run([sys.executable, "-c", WORKER, kind, str(tmp_path)], capture_output=True, text=True,
                       timeout=600, env=_env())
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    died = f" (killed by {signal.Signals(-p.returncode).name})" if p.returncode < 0 else ""
    assert p.returncode == 0 and p.stdout.rstrip().endswith("DONE"), \
        f"rc {p.returncode}{died} after {len(lines)} cases\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    results = {d["case"]: d for d in map(json.loads, lines)}
    assert len(results) == 10
    folder = kind.startswith("folder")
    for case, r in results.items():
        action = case.split("-")[0]
        if action == "rename" and not folder:
            # The run keeps reading the file it opened: complete and right.
            assert r["error"] is None, r
            assert r["sums_ok"] in (True, None), r
            continue
        assert r["error"] in ("InputError", "ShapeMismatch"), r
        assert r["path"] is not None and os.path.realpath(r["path"]) == os.path.realpath(r["target"]), r
        assert "\n" not in r["message"] and os.path.basename(r["target"]) in r["message"], r
        if action in ("rewrite", "overwrite") and not folder:
            assert "changed during the run" in r["message"], r
        # The run ends at the first batch read after the change: the next one for a file of samples (two may
        # be in flight), the last batch of the pass for the folder's changed sample file.
        changed_at = 2 if case.endswith("infer_all") else 8
        last = changed_at + 2 if not folder else (6 if case.endswith("infer_all") else 12)
        assert changed_at <= r["calls"] <= last, r


def _tiny_ir(path: Path) -> Path:
    """An OpenVINO IR with MobileFaceNet's input ([-1,112,112,3] float32): mean over the image, so the CLI
    runs in milliseconds per batch without TensorFlow."""
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([-1, 112, 112, 3], np.float32, name="Placeholder")
    x.output(0).set_names({"Placeholder"})
    y = ops.reduce_mean(x, ops.constant(np.array([1, 2], np.int64)), False)
    y = ops.matmul(y, ops.constant(np.ones((3, 8), np.float32)), False, False)
    y.output(0).set_names({"embeddings"})
    ov.save_model(ov.Model([y], [x], "tiny"), str(path))
    return path


def _mapped_by(pid: int, path: Path) -> bool:
    try:
        return str(path) in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.parametrize("change", ["truncate", "cp-smaller-over"])
def test_bench_cli_input_changed_during_the_run(tmp_path, change):
    """`pymfn.bench latency --input x.pack` while the pack is cut short (truncate -s) or copied over (cp small
    big): exit 1 with one line naming the file, not death by SIGBUS. The run is configured to last minutes;
    the change is made once the pack is mapped, so it always lands inside the run."""
    from pymfn.inputs import pack

    model = _tiny_ir(tmp_path / "tiny.xml")
    big, small = tmp_path / "big.pack", tmp_path / "small.pack"
    rng = np.random.default_rng(0)
    for path, n in ((big, 64), (small, 4)):
        with pack.PackedWriter(path, "float32", (112, 112, 3)) as w:
            w.append(rng.uniform(-1, 1, (n, 112, 112, 3)).astype(np.float32))
    argv = [sys.executable, "-m", "pymfn.bench", "latency", "--model", str(model), "--input", str(big), "--batch", "4",
            "--warmup", "0", "--min-iterations", "100000000", "--min-duration", "600", "--max-duration", "600",
            "--threads", "1", "--quiet"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        deadline = time.monotonic() + 300
        while not _mapped_by(proc.pid, big) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)  # polling for the mapping to appear, not a timing assumption
        assert proc.poll() is None, proc.communicate()
        assert _mapped_by(proc.pid, big), "the pack was never mapped"
        if change == "truncate":
            os.truncate(big, 100000)
        else:
            with open(small, "rb") as f, open(big, "r+b") as g:  # what cp does to an existing target
                g.truncate(0)
                g.write(f.read())
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, (proc.returncode, err[-3000:])
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("pymfn bench latency: error: ") and str(big) in err and "changed during the run" in err, err


# ------------------------------------------------------------------ input arrays a Python engine keeps

KEEPER = r'''
import gc, sys
import numpy as np
import pymfn

core = pymfn.load_core()
kept, kept_views, inputs_seen = [], [], []


class Keeper(core.Engine):
    """Keeps every input array (and a slice of it) after execute returns: legal, the arrays are its own."""
    kind = "keeper"
    model_path = "keeper"

    def __init__(self, inflight):
        super().__init__()
        self.slots = inflight

    def inputs(self):
        return [core.TensorInfo("x", "float32", [-1, 2 ** 20])]

    def outputs(self):
        return [core.TensorInfo("y", "float32", [-1, 1])]

    def max_inflight(self):
        return self.slots

    def execute(self, inputs):
        x = inputs[0]
        assert not x.flags.writeable
        kept.append(x)
        kept_views.append(x[1:])
        inputs_seen.append(x.__array_interface__["data"][0])
        return [x[:, :1].copy()]


def expected(i):  # the batch of execute call i: rows 2i, 2i+1 of the cycled 4-row dataset
    return [float(((2 * i + r) % 4) + 1) for r in range(2)]


for inflight in (1, 2):
    data = np.repeat(np.arange(1, 5, dtype=np.float32)[:, None], 2 ** 20, axis=1)  # row r = r + 1
    ds = core.ArrayDataset(data)
    r = ds.reader(2)
    s = core.RunSettings(batch_size=2, warmup_iterations=0, min_iterations=6, min_duration_ms=0, inflight=inflight)
    core.run_benchmark(Keeper(inflight), r, s)
    del ds, r, data
    gc.collect()
    junk = [np.full(2 ** 22, 7.0) for _ in range(6)]  # reuse the freed memory
    del junk
    got = [[float(v) for v in a[:, ::4096].mean(axis=1)] for a in kept]
    assert got == [expected(i) for i in range(len(kept))], (inflight, got)
    assert all(float(v.sum()) == 2 ** 20 * expected(i)[1] for i, v in enumerate(kept_views))
    print("ok", inflight, len(kept), len(set(inputs_seen)), flush=True)
    kept.clear(); kept_views.clear(); inputs_seen.clear()

# An engine that keeps nothing gets the same array back every call: no allocation per batch.
class Forgetful(Keeper):
    def execute(self, inputs):
        inputs_seen.append(inputs[0].__array_interface__["data"][0])
        return [np.zeros((inputs[0].shape[0], 1), np.float32)]

data = np.ones((4, 2 ** 20), np.float32)
core.run_benchmark(Forgetful(1), core.ArrayDataset(data).reader(2),
                   core.RunSettings(batch_size=2, warmup_iterations=0, min_iterations=6, min_duration_ms=0))
print("reused", len(set(inputs_seen)), flush=True)
'''


def test_python_engine_may_keep_its_input_arrays(tmp_path):
    """Input arrays handed to a Python engine own their bytes: kept after execute, after the run, after the
    dataset is gone and its memory reused, they still hold their batch (they used to be views of freed
    memory: SIGSEGV or other data)."""
    p = subprocess.run([sys.executable, "-c", KEEPER], capture_output=True, text=True, timeout=600, env=_env())
    died = f" (killed by {signal.Signals(-p.returncode).name})" if p.returncode < 0 else ""
    assert p.returncode == 0, f"rc {p.returncode}{died}\n{p.stdout}\n{p.stderr[-3000:]}"
    lines = [ln.split() for ln in p.stdout.splitlines()]
    for inflight, line in zip((1, 2), lines):
        assert line[:2] == ["ok", str(inflight)], p.stdout
        kept, buffers = int(line[2]), int(line[3])
        assert kept >= 6 and buffers == kept, p.stdout  # every kept array is its own buffer
    assert lines[2] == ["reused", "1"], p.stdout

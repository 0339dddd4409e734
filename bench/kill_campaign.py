"""Randomized kill campaign over every pymfn writer: kill -9 / SIGTERM at random points, then check that
each output is the complete old set or the complete new one, and that the next run removes what the killed
one left (and says so).

For every writer, runs alternate between two variants (A and B) that produce distinguishable outputs, so a
kill during run i must leave exactly what run i-1 left, or what run i writes, or a commit that the next
writer completes (a journal beside the output); the next run must then see run i's output, never run
i-1's. The window finder starts the writer, waits until its first temp appears beside the output (its
lock, for a writer whose temps live too briefly to be seen), and kills with SIGKILL or SIGTERM after a
random delay drawn from the writer's own measured duration, so kills land in the writing and the
committing, not in Python's start-up. After the last kill of a writer, an
uninterrupted run must finish, and no temp, lock or journal may remain.

    python bench/kill_campaign.py --kills 200 --seed 1            # every writer, by hand (about an hour)
    python bench/kill_campaign.py --writers image2bin-packed,eval-json --kills 20

Needs $PYMFN_SHARED (LFW lfw.bin, lfw_train_112, the pretrained weights) for the model writers; writers
whose inputs are missing are skipped and listed. tests/test_kill_campaign.py runs a small campaign over
the cheap writers.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import pickle
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from pymfn.files import atomic as _atomic  # noqa: E402

PY = sys.executable
LEFTOVER = re.compile(r"(\.pymfn-\d+-\d+-[0-9a-f]+\.tmp|\.pymfn-commit\.json|\.pymfn\.lock)$|_temp$|"
                      r"^checkpoint\.tmp[0-9a-f]{32}$|\.tempstate\d+$")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def leftovers(folders: list[Path]) -> list[Path]:
    found = []
    for f in folders:
        if f.is_dir():
            found += [p for p in f.iterdir() if LEFTOVER.search(p.name)]
    return sorted(found)


# ------------------------------------------------------------------------------ writers

@dataclass
class Writer:
    """One output of one command: how to run variant A or B into it, and what a reader finds there."""

    name: str
    argv: Callable[[Path, str], list[str]]      # (work folder, "A" | "B") -> arguments after `python`
    primary: Callable[[Path], Path]              # the output (its folder is watched for temps)
    classify: Callable[[Path], str]              # "A", "B", "none" or "broken: why"
    prepare: Callable[[Path], None] = lambda work: None
    needs: tuple[Path, ...] = ()                 # shared inputs; missing -> skipped
    env: dict[str, str] = field(default_factory=dict)
    weight: float = 1.0                          # share of the kills
    reset: Callable[[Path], None] | None = None  # before every run (e.g. empty a cache so the run writes)
    durations: list[float] = field(default_factory=list)


def _lfw_subset(work: Path, n: int, seed: int) -> Path:
    """An lfw.bin-style file of n synthetic faces (pairs alternate same/different)."""
    from PIL import Image

    path = work / f"faces{n}_{seed}.bin"
    if not path.exists():
        rng = np.random.default_rng(seed)
        jpegs = []
        for _ in range(n):
            buf = io.BytesIO()
            img = rng.integers(0, 256, (14, 14, 3), dtype=np.uint8)
            Image.fromarray(img).resize((112, 112)).save(buf, format="JPEG", quality=90)
            jpegs.append(buf.getvalue())
        path.write_bytes(pickle.dumps((jpegs, [i % 2 == 0 for i in range(n // 2)]), protocol=4))
    return path


# the synthetic lfw.bin-style sources of variants A and B: (images, seed)
FACES = {"A": (400, 1), "B": (200, 2)}
EVAL_PAIRS = 3000

# references: the output each variant gives, from an uninterrupted run (filled by `reference_runs`)
REF: dict[tuple[str, str], object] = {}


def _by_reference(name: str, digest: Callable[[Path], object]) -> Callable[[Path], str]:
    def classify(out: Path) -> str:
        if not out.exists():
            return "none"
        try:
            got = digest(out)
        except Exception as exc:  # noqa: BLE001 - whatever a reader would trip over is "broken"
            return f"broken: {type(exc).__name__}: {exc}"
        for variant in ("A", "B"):
            if REF.get((name, variant)) == got:
                return variant
        return "broken: matches neither variant"
    return classify


def _i2b_folder_digest(out: Path) -> object:
    meta = json.loads((out / ".image2bin.json").read_text())
    bins = sorted(p.name for p in out.iterdir() if p.suffix == ".bin")
    if len(bins) != meta["count"]:
        raise ValueError(f"{len(bins)} bins for count {meta['count']}")
    return tree_digest(out)


def _packed_digest(out: Path) -> object:
    from pymfn.inputs import pack
    from pymfn.inputs.image2bin import read_issame

    h = pack.read_header(out)  # validates the size against the header
    labels = read_issame(out).tolist()  # only if the record binds them to this very pack
    return (h.count, h.dtype, sha(out), tuple(labels))


def _pack_digest(out: Path) -> object:
    from pymfn.inputs import pack

    h = pack.read_header(out)
    manifest = out.with_name("manifest.txt").read_text().splitlines()
    return (h.count, sha(out), len(manifest))


def _json_digest(key: str) -> Callable[[Path], object]:
    def digest(out: Path) -> object:
        doc = json.loads(out.read_text(), parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
        return doc[key]
    return digest


def _png_ok(out: Path) -> object:
    data = out.read_bytes()
    if not (data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(b"IEND\xaeB`\x82")):
        raise ValueError("not a complete PNG")
    return "png"


def _ir_digest(out: Path) -> object:
    return (sha(out), sha(out.with_suffix(".bin")))


def _quantized_digest(out: Path) -> object:
    from pymfn.export.quantize import check_ir_set, read_record

    problem = check_ir_set(out)
    if problem:
        raise ValueError(problem)
    return read_record(out)["calibration"]["seed"]  # type: ignore[index]


def _frozen_output(out: Path) -> object:
    """A complete frozen graph (it parses and has one input and one output), by its output's name
    (random initialisation is not bit-reproducible from run to run)."""
    from pymfn.export.freeze import load_frozen

    return load_frozen(out)[2]


def _onnx_digest(out: Path) -> object:
    """A model ONNX accepts, by its weights (tf2onnx's node names and order differ from run to run)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    return tuple(sorted(hashlib.sha256(numpy_helper.to_array(t).tobytes()).hexdigest()
                        for t in model.graph.initializer))


def _tfrecord_digest(out: Path) -> object:
    """The metadata and labels, with every shard as long as recorded and framed into as many records as
    recorded (the bytes of a record are not reproducible: protobuf orders a map's entries by hash)."""
    import struct

    meta = json.loads((out / "pymfn_data.json").read_text())
    for name, size, count in zip(meta["shards"], meta["shard_bytes"], meta["shard_counts"]):
        data = (out / name).read_bytes()
        if len(data) != size:
            raise ValueError(f"{name} is not {size} bytes")
        pos = records = 0
        while pos < len(data):
            (length,) = struct.unpack_from("<Q", data, pos)
            pos += 8 + 4 + length + 4
            records += 1
        if pos != len(data) or records != count:
            raise ValueError(f"{name}: {records} records framed, {count} recorded")
    return (json.dumps(meta, sort_keys=True), (out / "labels.txt").read_text())


def writers(shared: Path) -> list[Writer]:
    lfw = shared / "data" / "lfw" / "lfw.bin"
    train112 = shared / "data" / "lfw_train_112"
    tflite = shared / "weights" / "sirius" / "MobileFaceNet.tflite"
    tfjs = shared / "weights" / "sirius" / "tfjs" / "mobilefacenet.json"
    from pymfn import config

    with _env(PYMFN_SHARED=str(shared)):
        tflite, tfjs = config.sirius_tflite_path(), config.sirius_tfjs_path()

    def prep_faces(work: Path) -> None:
        for n, seed in FACES.values():
            _lfw_subset(work, n, seed)

    def prep_bins(work: Path) -> None:
        prep_faces(work)
        for v, (n, seed) in FACES.items():
            if not (work / f"bins{v}").exists():
                subprocess.run([PY, "-m", "pymfn", "image2bin", str(_lfw_subset(work, n, seed)), str(work / f"bins{v}"),
                                "-q"], check=True, env=_child_env({}), capture_output=True)

    def prep_emb(work: Path) -> None:
        for v, seed in (("A", 1), ("B", 2)):
            rng = np.random.default_rng(seed)
            np.save(work / f"emb{v}.npy", rng.normal(size=(2 * EVAL_PAIRS, 128)).astype(np.float32))
        np.save(work / "issame.npy", np.arange(EVAL_PAIRS) % 2 == 0)

    def prep_pbs(work: Path) -> None:
        for v, seed in (("A", 0), ("B", 1)):
            if not (work / f"m{v}.pb").exists():
                subprocess.run([PY, "-m", "pymfn", "freeze", "--random", "--seed", str(seed), "--out",
                                str(work / f"m{v}.pb")], check=True, env=_child_env({}), capture_output=True)

    def prep_xml(work: Path) -> None:
        prep_pbs(work)
        if not (work / "mA.xml").exists():
            subprocess.run([PY, "-m", "pymfn", "convert", str(work / "mA.pb"), "--target", "openvino", "--output",
                            str(work / "mA.xml")], check=True, env=_child_env({}), capture_output=True)

    def prep_tree(work: Path) -> None:
        from PIL import Image

        tree = work / "tree"
        if tree.exists():
            return
        rng = np.random.default_rng(3)
        for person in range(6):
            d = tree / f"person{person}"
            d.mkdir(parents=True)
            for k in range(8):
                Image.fromarray(rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)).save(d / f"{k}.jpg", quality=90)

    def prep_train(work: Path) -> None:
        prep_tree(work)
        if not (work / "tfr").exists():
            subprocess.run([PY, "-m", "pymfn", "data", "tfrecord", "--from", str(work / "tree"), "--out",
                            str(work / "tfr"), "--shards", "2"], check=True, env=_child_env({}), capture_output=True)

    faces = FACES
    ws = [
        Writer("image2bin-folder",
               lambda w, v: ["-m", "pymfn", "image2bin", str(_lfw_subset(w, *faces[v])), str(w / "bins"), "-q",
                             "--force"] + (["--rgb"] if v == "B" else []),
               lambda w: w / "bins", _by_reference("image2bin-folder", _i2b_folder_digest), prep_faces, weight=3),
        Writer("image2bin-packed",
               lambda w, v: ["-m", "pymfn", "image2bin", str(_lfw_subset(w, *faces[v])), "--packed", str(w / "x.pack"),
                             "-q", "--force"] + (["--uint8"] if v == "B" else []),
               lambda w: w / "x.pack", _by_reference("image2bin-packed", _packed_digest), prep_faces, weight=3),
        Writer("pack",
               lambda w, v: ["-m", "pymfn", "pack", "--from", str(w / f"bins{v}"), "--out", str(w / "p.pack"),
                             "--manifest", str(w / "manifest.txt"), "--force", "--quiet"],
               lambda w: w / "p.pack", _by_reference("pack", _pack_digest), prep_bins, weight=2.5),
        Writer("eval-json",
               lambda w, v: ["-m", "pymfn", "eval", str(w / f"emb{v}.npy"), "--issame", str(w / "issame.npy"),
                             "--json", str(w / "r.json")],
               lambda w: w / "r.json", _by_reference("eval-json", _json_digest("accuracy")), prep_emb, weight=1.5),
        Writer("eval-roc",
               lambda w, v: ["-m", "pymfn", "eval", str(w / f"emb{v}.npy"), "--issame", str(w / "issame.npy"),
                             "--roc", str(w / "roc.png")],
               lambda w: w / "roc.png", lambda out: "none" if not out.exists() else _safe(_png_ok, out, "A"),
               prep_emb, weight=1),
        Writer("bench-json",
               lambda w, v: ["-m", "pymfn.bench", "latency", "--model", str(w / "mA.xml"), "--batch",
                             "1" if v == "A" else "2", "--warmup", "2", "--min-iterations", "20", "--min-duration", "0.3",
                             "--max-duration", "1", "--json", str(w / "lat.json"), "--quiet"],
               lambda w: w / "lat.json", lambda out: "none" if not out.exists() else
               _safe(_json_digest("latency_ms"), out, "A"), prep_xml, weight=1),
        Writer("freeze",
               lambda w, v: ["-m", "pymfn", "freeze", "--random", "--seed", "0" if v == "A" else "1", "--out",
                             str(w / "f.pb")] + (["--fp16-output"] if v == "B" else []),
               lambda w: w / "f.pb", _by_reference("freeze", _frozen_output), weight=1),
        Writer("convert-openvino",
               lambda w, v: ["-m", "pymfn", "convert", str(w / f"m{v}.pb"), "--target", "openvino", "--output",
                             str(w / "c.xml")],
               lambda w: w / "c.xml", _by_reference("convert-openvino", _ir_digest), prep_pbs, weight=1),
        Writer("convert-om-emu",
               lambda w, v: ["-m", "pymfn", "convert", str(w / f"m{v}.pb"), "--target", "om-emu", "--output",
                             str(w / "c.om")],
               lambda w: w / "c.om", _by_reference("convert-om-emu", sha), prep_pbs, weight=1),
        Writer("convert-onnx",
               lambda w, v: ["-m", "pymfn", "convert", str(w / f"m{v}.pb"), "--target", "onnx", "--output",
                             str(w / "c.onnx")],
               lambda w: w / "c.onnx", _by_reference("convert-onnx", _onnx_digest), prep_pbs, weight=0.7),
        Writer("quantize",
               lambda w, v: ["-m", "pymfn", "quantize", str(w / "mA.pb"), "--output", str(w / "q.xml"),
                             "--calibration", str(train112), "--count", "8", "--seed", "0" if v == "A" else "1",
                             "--fast-bias-correction", "--save-calibration", str(w / "calib"), "--quiet"],
               lambda w: w / "q.xml", _by_reference("quantize", _quantized_digest), prep_pbs, needs=(train112,),
               weight=1),
        Writer("import-weights",
               lambda w, v: ["-m", "pymfn", "import-weights", "--from", str(tfjs if v == "A" else tflite), "--out",
                             str(w / "ckpt")],
               lambda w: w / "ckpt", _by_reference("import-weights", tree_digest), needs=(tflite, tfjs), weight=1),
        Writer("data-tfrecord",
               lambda w, v: ["-m", "pymfn", "data", "tfrecord", "--from", str(w / "tree"), "--out", str(w / "tfr_out"),
                             "--shards", "2" if v == "A" else "3"],
               lambda w: w / "tfr_out", _by_reference("data-tfrecord", _tfrecord_digest), prep_tree, weight=1),
        Writer("default-model",
               lambda w, v: ["-c", "from pymfn.export.default_model import default_model; default_model(quiet=True)"],
               lambda w: w / "cache" / "pymfn" / "models", lambda out: _default_model_state(out), needs=(tflite,),
               weight=0.6, reset=lambda w: [p.unlink() for p in (w / "cache" / "pymfn" / "models").glob("*.pb")]),
        Writer("train",
               lambda w, v: ["-m", "pymfn", "train", "--data", str(w / "tfr"), "--ckpt-dir", str(w / "train_ckpt"),
                             "--train-batch-size", "4", "--max-steps", "6" if v == "A" else "12", "--save-every", "2",
                             "--no-progress"],
               lambda w: w / "train_ckpt", lambda out: _train_state(out), prep_train, weight=0.6),
    ]
    del lfw
    return ws


def _safe(fn: Callable[[Path], object], out: Path, variant: str | None) -> str:
    try:
        got = fn(out)
    except Exception as exc:  # noqa: BLE001
        return f"broken: {type(exc).__name__}: {exc}"
    return variant or str(got)


def _default_model_state(models: Path) -> str:
    pbs = sorted(models.glob("*.pb")) if models.is_dir() else []
    if not pbs:
        return "none"
    from pymfn.export.freeze import load_frozen

    try:
        for pb in pbs:
            load_frozen(pb)
    except Exception as exc:  # noqa: BLE001
        return f"broken: {exc}"
    return "A"


def _train_state(ckpt: Path) -> str:
    """A checkpoint folder is usable when the checkpoint its state file names can be read whole."""
    state = ckpt / "checkpoint"
    if not state.exists():
        return "none"
    try:
        import tensorflow.compat.v1 as tf

        prefix = tf.train.latest_checkpoint(str(ckpt))
        if prefix is None:
            return "broken: the checkpoint state names no checkpoint"
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as exc:  # noqa: BLE001
        return f"broken: {type(exc).__name__}: {str(exc).splitlines()[0]}"
    return "A"


# ------------------------------------------------------------------------------ running

class _env:
    def __init__(self, **values: str) -> None:
        self.values, self.saved = values, {}

    def __enter__(self) -> None:
        for k, v in self.values.items():
            self.saved[k] = os.environ.get(k)
            os.environ[k] = v

    def __exit__(self, *exc: object) -> None:
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_BASE_ENV: dict[str, str] = {}


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), **_BASE_ENV, **extra)


@dataclass
class Outcome:
    writer: str
    run: int
    variant: str
    signal: str | None          # None: the run finished
    delay_s: float
    state: str                  # what a reader finds right after: A, B, none, pending
    removed_msg: bool           # the next run said what it removed / completed
    rc: int


def _watched(writer: Writer, work: Path) -> Path:
    p = writer.primary(work)
    return p if writer.name == "default-model" else p.parent


def _entries(folder: Path) -> set[str]:
    try:
        return {e.name for e in os.scandir(folder)}
    except OSError:
        return set()


def _window(proc: subprocess.Popen, folder: Path, name: str, before: set[str], timeout: float,
            temps_only: bool) -> float | None:
    """Seconds until a new temp of the output appears in ``folder`` (with ``temps_only=False`` also its
    lock, which commands take before any work), or None if the run ended first."""
    t0 = time.monotonic()
    while proc.poll() is None and time.monotonic() - t0 < timeout:
        new = [n for n in _entries(folder) - before if name in n and ".pymfn" in n]
        if any(n.endswith(".tmp") for n in new) or (new and not temps_only):
            return time.monotonic() - t0
        time.sleep(0.002)
    return None


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, et: object, e: object, tb: object) -> bool:
        return isinstance(e, OSError)


def _journal_pid(primary: Path) -> int | None:
    j = _atomic.interrupted_commit(primary)
    if j is None:
        return None
    try:
        return int(json.loads(j.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return -1


def _state(writer: Writer, work: Path) -> str:
    primary = writer.primary(work)
    if writer.name != "default-model" and _atomic.interrupted_commit(primary) is not None:
        return "pending"
    return writer.classify(primary)


def _start(writer: Writer, work: Path, variant: str) -> subprocess.Popen:
    env = _child_env(dict(writer.env, XDG_CACHE_HOME=str(work / "cache")))
    return subprocess.Popen([PY, *writer.argv(work, variant)], cwd=work, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def reference_runs(writer: Writer, work: Path) -> None:
    """Variants A, B and A again, uninterrupted: their outputs are the references; also times them."""
    for variant in ("A", "B", "A") if writer.name not in _UNVARIED else ("A", "A"):
        if writer.reset is not None:
            writer.reset(work)
        t0 = time.monotonic()
        proc = _start(writer, work, variant)
        _, err = proc.communicate(timeout=1800)
        writer.durations.append(time.monotonic() - t0)
        if proc.returncode != 0:
            raise RuntimeError(f"{writer.name} {variant}: exit {proc.returncode}: {err.strip()[-400:]}")
        primary = writer.primary(work)
        digest_fn = _DIGESTS.get(writer.name)
        if digest_fn is not None:
            got = digest_fn(primary)
            if REF.get((writer.name, variant), got) != got:
                raise RuntimeError(f"{writer.name} {variant}: two uninterrupted runs wrote different outputs; this "
                                   "writer needs a classification that does not compare bytes")
            REF[(writer.name, variant)] = got
        state = writer.classify(primary)
        if state != (variant if writer.name not in _UNVARIED else "A"):
            raise RuntimeError(f"{writer.name} {variant}: an uninterrupted run classified as {state!r}")


_DIGESTS: dict[str, Callable[[Path], object]] = {
    "image2bin-folder": _i2b_folder_digest, "image2bin-packed": _packed_digest, "pack": _pack_digest,
    "eval-json": _json_digest("accuracy"), "freeze": _frozen_output, "convert-openvino": _ir_digest, "convert-om-emu": sha,
    "convert-onnx": _onnx_digest, "quantize": _quantized_digest, "import-weights": tree_digest,
    "data-tfrecord": _tfrecord_digest,
}
_UNVARIED = {"eval-roc", "bench-json", "default-model", "train"}  # checked for completeness, not for A/B


def _inode(p: Path) -> int | None:
    try:
        return os.lstat(p).st_ino
    except OSError:
        return None


def _same_file(known: tuple[Path, int | None]) -> bool:
    path, ino = known
    return ino is not None and _inode(path) == ino


def _is_temp_or_journal(p: Path) -> bool:
    return not p.name.endswith(_atomic.LOCK_SUFFIX)


def campaign(writer: Writer, work: Path, kills: int, rng: random.Random, log: Callable[[str], None]) -> dict:
    """``kills`` killed runs of ``writer`` alternating A/B, then one that must finish; returns a summary."""
    outcomes: list[Outcome] = []
    failures: list[str] = []
    folder = _watched(writer, work)
    name = writer.primary(work).name if writer.name != "default-model" else ""
    typical = float(np.median(writer.durations)) if writer.durations else 5.0
    prev = writer.classify(writer.primary(work))
    variant_of: dict[int, str] = {}
    killed = run = missed = 0
    owed: list[tuple[Path, int | None]] = []  # (path, inode): what killed runs left, for the next run to clear
    while True:
        final = killed >= kills
        if writer.reset is not None:
            writer.reset(work)
            prev = writer.classify(writer.primary(work))
        if writer.name == "train" and not final and run % 3 == 0:
            shutil.rmtree(writer.primary(work), ignore_errors=True)  # a fresh training now and then
            owed, prev = [], "none"
        variant = "AB"[run % 2] if writer.name not in _UNVARIED else "A"
        before = _entries(folder)
        proc = _start(writer, work, variant)
        variant_of[proc.pid] = variant
        delay, sig = 0.0, None
        if not final:
            # watch for the temp, then kill; a writer whose temps live too briefly to be seen three runs in
            # a row is killed from the moment it takes its lock instead
            seen = _window(proc, folder, name, before, timeout=typical * 4 + 60, temps_only=missed < 3)
            if seen is not None and proc.poll() is None:
                delay = rng.uniform(0, max(0.05, (typical - seen) * 1.2))
                time.sleep(delay)
                sig = rng.choice([signal.SIGKILL, signal.SIGKILL, signal.SIGTERM])
                with _suppress():
                    os.killpg(proc.pid, sig)
        try:
            _, err = proc.communicate(timeout=typical * 6 + 300)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            _, err = proc.communicate()
            failures.append(f"run {run} ({variant}) hung")
        rc = proc.returncode
        # a SIGTERM is handled: the writer cleans up and exits 128 + 15
        was_killed = rc is not None and (rc < 0 or (sig is not None and rc == 128 + int(sig)))
        killed += was_killed
        missed = 0 if (was_killed or final) else missed + 1
        tag = f"run {run} ({variant}, {Signals(sig) if was_killed else 'exit ' + str(rc)} after {delay:.2f} s)"
        # what earlier killed runs left must be gone once this run holds the output (it then writes temps
        # named after its pid, or it finished), and it must have said so
        mine = [p for p in leftovers([folder]) if f".pymfn-{proc.pid}-" in p.name]
        said = ("removed" in err and "stale temp" in err) or "completed the commit" in err
        if owed:
            past_hold = rc == 0 or bool(mine)  # it got the lock, cleaned up and said so (or should have)
            still = [p for p in owed if _same_file(p)]
            if still and past_hold:
                failures.append(f"{tag}: the killed run's {', '.join(p.name for p, _ in still[:3])} are still there")
            if len(still) < len(owed) and past_hold and not said:
                failures.append(f"{tag}: cleared the killed runs' leftovers without saying so (it said: "
                                f"{err.strip()[-300:]!r})")
            owed = still
        if rc not in (0, None) and not was_killed:
            failures.append(f"{tag} failed: {err.strip()[-300:]}")
        state = _state(writer, work)
        if state.startswith("broken"):
            failures.append(f"{tag}: {state}")
        elif writer.name not in _UNVARIED:
            allowed = {variant, "pending"} | ({prev} if was_killed else set())
            if state not in allowed:
                failures.append(f"{tag}: found {state}, expected one of {sorted(allowed)}")
        outcomes.append(Outcome(writer.name, run, variant, Signals(sig) if was_killed else None, delay, state, said,
                                rc if rc is not None else -999))
        if state == "pending":  # the next holder completes that commit: its variant is what must follow
            prev = variant_of.get(_journal_pid(writer.primary(work)) or -1, prev)
        elif not state.startswith("broken"):
            prev = state
        if was_killed:  # (a journal has a fixed name: it is known by its inode)
            owed = sorted(set(owed) | {(p, _inode(p)) for p in leftovers([folder]) if _is_temp_or_journal(p)})
        run += 1
        if final and not was_killed:
            break
    rest = leftovers([folder])
    if rest:
        failures.append(f"after the final run: {', '.join(p.name for p in rest)}")
    summary = {"writer": writer.name, "runs": run, "kills": killed,
               "sigkill": sum(o.signal == "SIGKILL" for o in outcomes),
               "sigterm": sum(o.signal == "SIGTERM" for o in outcomes),
               "states_after_kill": _count(o.state for o in outcomes if o.signal),
               "next_run_said_what_it_removed": sum(o.removed_msg for o in outcomes),
               "failures": failures}
    log(f"{writer.name}: {killed} kills in {run} runs, states after kills {summary['states_after_kill']}, "
        f"{len(failures)} failure(s)" + (": " + "; ".join(failures[:3]) if failures else ""))
    return summary


def Signals(sig: object) -> str:  # noqa: N802 - reads like the enum it names
    return signal.Signals(sig).name if sig is not None else "none"


def _count(items) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in items:
        out[i] = out.get(i, 0) + 1
    return out


def host_line() -> str:
    model = ""
    with _suppress():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model or platform.processor()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=200, help="total kills, shared among the writers by weight")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--writers", default=None, help="comma-separated writer names (default: all)")
    p.add_argument("--work", type=Path, default=None, help="work folder (default: a new temp folder, removed)")
    p.add_argument("--json", type=Path, default=None, help="write the summary here")
    args = p.parse_args(argv)
    shared = Path(os.environ.get("PYMFN_SHARED", ROOT.parent / "shared"))
    _BASE_ENV["PYMFN_SHARED"] = str(shared)
    chosen = writers(shared)
    if args.writers:
        names = set(args.writers.split(","))
        unknown = names - {w.name for w in chosen}
        if unknown:
            p.error(f"unknown writer(s) {sorted(unknown)}; known: {', '.join(w.name for w in chosen)}")
        chosen = [w for w in chosen if w.name in names]
    skipped = [w.name for w in chosen if any(not n.exists() for n in w.needs)]
    chosen = [w for w in chosen if w.name not in skipped]
    total_weight = sum(w.weight for w in chosen)
    plan = {w.name: max(1, round(args.kills * w.weight / total_weight)) for w in chosen}
    rng = random.Random(args.seed)
    work_root = args.work or Path(tempfile.mkdtemp(prefix="pymfn-kill-campaign-"))
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")

    def log(msg: str) -> None:
        print(msg, flush=True)

    log(f"kill campaign, seed {args.seed}, {sum(plan.values())} kills planned over {len(chosen)} writers "
        f"({', '.join(f'{k} {v}' for k, v in plan.items())}); host: {host_line()}; started {started}")
    if skipped:
        log(f"skipped (inputs missing under {shared}): {', '.join(skipped)}")
    results = []
    for w in chosen:
        work = work_root / w.name
        work.mkdir(parents=True, exist_ok=True)
        w.prepare(work)
        reference_runs(w, work)
        results.append(campaign(w, work, plan[w.name], random.Random(rng.random()), log))
    total_kills = sum(r["kills"] for r in results)
    failures = sum(len(r["failures"]) for r in results)
    doc = {"seed": args.seed, "kills": total_kills, "failures": failures, "writers": results, "skipped": skipped,
           "host": host_line(), "started": started, "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
           "command": " ".join([Path(PY).name, "bench/kill_campaign.py", *(argv if argv is not None else sys.argv[1:])])}
    log(f"done: {total_kills} kills, {failures} failure(s)")
    if args.json:
        _atomic.write_json(args.json, doc)
    if args.work is None:
        shutil.rmtree(work_root, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

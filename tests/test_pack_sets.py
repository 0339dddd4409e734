"""A packed file and its sidecars are one set: one overwrite rule (--force) for pack and
image2bin, never a new pack with old labels (also when the writer dies between two renames), and temp
outputs of killed runs removed by the next run into the same target."""
from __future__ import annotations

import io
import os
import pickle
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pymfn.files import atomic as _atomic
from pymfn.inputs import pack
from pymfn.inputs import image2bin as i2b
from pymfn.__main__ import main as pymfn_main

ROOT = Path(__file__).resolve().parents[1]


def jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (14, 14, 3), dtype=np.uint8)).resize((112, 112))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def lfw_bin(path: Path, seeds: range, issame: list[bool]) -> Path:
    path.write_bytes(pickle.dumps(([jpeg(s) for s in seeds], issame), protocol=4))
    return path


@pytest.fixture()
def two_sources(tmp_path):
    """Two small lfw.bin files with different images and different labels."""
    old = lfw_bin(tmp_path / "old.bin", range(0, 10), [True, False, False, True, True])
    new = lfw_bin(tmp_path / "new.bin", range(20, 30), [False, True, True, False, False])
    return old, new


def temps_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".pymfn-" in p.name)


# ------------------------------------------------------------------------------ the reported scenario

def test_pack_over_an_image2bin_pack_needs_force_and_never_keeps_old_labels(tmp_path, two_sources, capsys):
    """Before: `pack --out p.pack` silently replaced an image2bin pack and kept its .issame.npy, so accuracy on
    the new pack used the old labels (90% instead of 100%)."""
    old, new = two_sources
    target = tmp_path / "p.pack"
    assert pymfn_main(["image2bin", str(old), "--packed", str(target), "-q"]) == 0
    assert i2b.read_issame(target).tolist() == [True, False, False, True, True]
    i2b.image2bin(new, tmp_path / "new_bins")  # an image2bin folder with the new labels inside
    capsys.readouterr()

    argv = ["pack", "--from", str(tmp_path / "new_bins"), "--out", str(target), "--quiet"]
    assert pymfn_main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "p.pack: already exists" in err and "--force" in err
    assert i2b.read_issame(target).tolist() == [True, False, False, True, True]  # untouched

    assert pymfn_main(argv + ["--force"]) == 0
    assert "with its pair labels" in capsys.readouterr().out
    # the pack now holds the new samples, and its labels are the new ones
    np.testing.assert_array_equal(pack.read_packed(target)[3].tobytes(), (tmp_path / "new_bins" / "3.bin").read_bytes())
    assert i2b.read_issame(target).tolist() == [False, True, True, False, False]
    from pymfn.bench.lfw_accuracy import _load_issame

    assert _load_issame(None, target, 5).tolist() == [False, True, True, False, False]

    # a folder without labels: the pack replaces the whole set, no labels stay behind
    plain = tmp_path / "plain"
    plain.mkdir()
    for i in range(10):
        np.zeros((112, 112, 3), np.float32).tofile(plain / f"{i}.bin")
    assert pymfn_main(["pack", "--from", str(plain), "--out", str(target), "--quiet", "--force"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("p.pack")) == ["p.pack"]
    with pytest.raises(FileNotFoundError, match="no pair labels"):
        i2b.read_issame(target)


def test_image2bin_uses_the_same_overwrite_rule(tmp_path, two_sources, capsys):
    old, new = two_sources
    target = tmp_path / "p.pack"
    plain = tmp_path / "plain"
    plain.mkdir()
    np.zeros((112, 112, 3), np.float32).tofile(plain / "0.bin")
    np.zeros((112, 112, 3), np.float32).tofile(plain / "1.bin")
    assert pymfn_main(["pack", "--from", str(plain), "--out", str(target), "--quiet"]) == 0
    capsys.readouterr()
    assert pymfn_main(["image2bin", str(new), "--packed", str(target), "-q"]) == 1
    assert "p.pack: already exists" in capsys.readouterr().err
    # leftover sidecars alone also count as an existing output
    target.unlink()
    (tmp_path / "p.pack.issame.npy").write_bytes(b"junk")
    assert pymfn_main(["image2bin", str(new), "--packed", str(target), "-q"]) == 1
    assert "p.pack.issame.npy" in capsys.readouterr().err
    assert pymfn_main(["image2bin", str(new), "--packed", str(target), "-q", "--force"]) == 0
    assert i2b.read_issame(target).tolist() == [False, True, True, False, False]
    # a folder target cannot replace a file, nor a file a folder, even with --force
    assert pymfn_main(["image2bin", str(new), str(target), "-q", "--force"]) == 1
    assert "exists and is not a folder" in capsys.readouterr().err
    (tmp_path / "adir").mkdir()
    assert pymfn_main(["pack", "--from", str(plain), "--out", str(tmp_path / "adir"), "--force", "--quiet"]) == 1
    assert "is an existing directory" in capsys.readouterr().err
    assert pymfn_main(["pack", "--from", str(plain), "--out", str(plain), "--force", "--quiet"]) == 1
    assert f"--out {plain}: is also the input --from {plain}" in capsys.readouterr().err
    # an output folder that cannot be created fails before the work, naming the reason
    assert pymfn_main(["image2bin", str(new), str(target / "sub"), "-q"]) == 1
    assert "p.pack is not a folder" in capsys.readouterr().err


def test_labels_not_carried_when_the_pack_reorders_samples(tmp_path, two_sources, capsys):
    _, new = two_sources
    i2b.image2bin(new, tmp_path / "bins")
    out = pack.pack_folder(tmp_path / "bins", tmp_path / "lex.pack", order="lexicographic", progress=False)
    assert "not carrying" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError):
        i2b.read_issame(out)


# ------------------------------------------------------------------------------ the reader's checks

def test_reader_rejects_labels_that_do_not_belong(tmp_path, two_sources):
    old, new = two_sources
    target = i2b.image2bin(old, tmp_path / "p.pack", packed=True)
    labels = tmp_path / "p.pack.issame.npy"
    record = tmp_path / "p.pack.image2bin.json"
    good_labels, good_record = labels.read_bytes(), record.read_bytes()

    # a copy of the set elsewhere is fine (the record's content check, not the inode, decides)
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in tmp_path.glob("p.pack*"):
        (copy / p.name).write_bytes(p.read_bytes())
    assert i2b.read_issame(copy / "p.pack").tolist() == [True, False, False, True, True]

    # the pack replaced behind the record's back (e.g. by an older pymfn, or a copy)
    other = i2b.image2bin(new, tmp_path / "other.pack", packed=True)
    os.replace(other, target)
    with pytest.raises(pack.PackLabelsError, match="written for a different p.pack"):
        i2b.read_issame(target)
    # same size, same header, one sample byte changed: the CRC catches it
    i2b.image2bin(old, target, packed=True)
    raw = bytearray(target.read_bytes())
    raw[-5] ^= 0xFF
    target.write_bytes(bytes(raw))
    with pytest.raises(pack.PackLabelsError, match="written for a different p.pack"):
        i2b.read_issame(target)

    i2b.image2bin(old, target, packed=True)
    labels.write_bytes(good_labels[:-1] + bytes([good_labels[-1] ^ 1]))
    with pytest.raises(pack.PackLabelsError, match="not the labels p.pack.image2bin.json was written with"):
        i2b.read_issame(target)
    labels.write_bytes(good_labels)
    record.unlink()
    with pytest.raises(pack.PackLabelsError, match="no p.pack.image2bin.json binding these labels"):
        i2b.read_issame(target)
    record.write_text('{"source": "written by an older pymfn"}')
    with pytest.raises(pack.PackLabelsError, match="does not list these labels"):
        i2b.read_issame(target)
    record.write_bytes(good_record)
    labels.unlink()
    with pytest.raises(pack.PackLabelsError, match="missing although p.pack.image2bin.json lists it"):
        i2b.read_issame(target)


# ------------------------------------------------------------------------------ dying between the steps

class _Died(BaseException):
    """Stands for a kill: nothing after it runs (a BaseException, so no `except Exception` swallows it)."""


def _outcome(target: Path, old_labels: list[bool], new_labels: list[bool] | None,
             old_first: bytes, new_first: bytes) -> str:
    """What a reader sees; asserts it is never a mix of new samples and old labels (or the reverse)."""
    first = pack.read_packed(target)[0].tobytes() if target.exists() else None
    try:
        labels = i2b.read_issame(target).tolist()
    except (pack.PackLabelsError, FileNotFoundError):
        return "rejected"
    if labels == old_labels:
        assert first == old_first, "old labels accepted with a new pack"
        return "old"
    assert labels == new_labels and first == new_first, "labels accepted with the wrong pack"
    return "new"


@pytest.mark.parametrize("new_has_labels", [True, False])
def test_a_writer_dying_at_any_step_never_pairs_new_samples_with_old_labels(tmp_path, two_sources, monkeypatch,
                                                                             new_has_labels):
    old, new = two_sources
    target = tmp_path / "p.pack"
    old_labels, new_labels = [True, False, False, True, True], [False, True, True, False, False]
    real_replace, real_unlink = os.replace, os.unlink

    def write_new() -> None:
        if new_has_labels:
            i2b.image2bin(new, target, packed=True)
        else:
            with pack.PackedWriter(target, "float32", (112, 112, 3), count=2) as w:
                w.append(np.ones((2, 112, 112, 3), np.float32))

    # count the steps of an undisturbed replacement
    i2b.image2bin(old, target, packed=True)
    old_first = pack.read_packed(target)[0].tobytes()
    calls: list[str] = []
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append("replace"), real_replace(a, b))[1])
    monkeypatch.setattr(os, "unlink", lambda p, **kw: (calls.append("unlink"), real_unlink(p, **kw))[1])
    write_new()
    monkeypatch.undo()
    steps = len(calls)
    new_first = pack.read_packed(target)[0].tobytes()
    assert steps >= 2

    seen = set()
    for die_at in range(steps + 1):
        for p in tmp_path.glob("p.pack*"):
            p.unlink()
        i2b.image2bin(old, target, packed=True)
        count = [0]

        def dying(real):
            def call(*args, **kwargs):
                count[0] += 1
                if count[0] > die_at:
                    raise _Died()
                return real(*args, **kwargs)
            return call

        monkeypatch.setattr(os, "replace", dying(real_replace))
        monkeypatch.setattr(os, "unlink", dying(real_unlink))
        try:
            write_new()
        except _Died:
            pass
        finally:
            monkeypatch.undo()
        seen.add(_outcome(target, old_labels, new_labels if new_has_labels else None, old_first, new_first))
    assert "old" in seen and ("new" in seen if new_has_labels else "rejected" in seen)


CHILD = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {root!r})
    mode, die_at = sys.argv[1], int(sys.argv[2])
    calls = [0]

    def maybe_die():
        calls[0] += 1
        if calls[0] == die_at:
            os.kill(os.getpid(), signal.SIGKILL)

    if mode == "commit":  # die at the n-th rename of the commit
        real = os.replace
        def replace(a, b):
            maybe_die()
            return real(a, b)
        os.replace = replace
    else:  # die half-way through writing the samples
        from pymfn.inputs import pack
        real_append = pack.PackedWriter.append
        def append(self, samples):
            real_append(self, samples)
            maybe_die()
        pack.PackedWriter.append = append
        import pymfn.inputs.image2bin as i2b
        i2b.CHUNK = 2
    from pymfn.__main__ import main
    sys.exit(main(sys.argv[3:]))
""")


def _run_child(tmp_path: Path, mode: str, die_at: int, argv: list[str]) -> int:
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(root=str(ROOT)))
    proc = subprocess.run([sys.executable, str(script), mode, str(die_at), *argv], capture_output=True, text=True,
                          timeout=300)
    return proc.returncode


@pytest.mark.parametrize("die_at", [1, 2, 3])
def test_sigkill_between_the_renames(tmp_path, two_sources, die_at, capsys):
    """A real kill -9 between the commit's renames (the first rename puts the commit journal in place):
    the reader never pairs new samples with old labels; killed before the journal, the next run removes
    what the dead writer left; killed after it, the next writer completes the commit (the new set,
    whole); either says so in one line."""
    old, new = two_sources
    target = tmp_path / "p.pack"
    i2b.image2bin(old, target, packed=True)
    old_first = pack.read_packed(target)[0].tobytes()
    rc = _run_child(tmp_path, "commit", die_at, ["image2bin", str(new), "--packed", str(target), "-q", "--force"])
    assert rc == -signal.SIGKILL
    expected_new = bytes(i2b.preprocess(np.asarray(Image.open(io.BytesIO(jpeg(20))).convert("RGB"))[None, ..., ::-1]))
    outcome = _outcome(target, [True, False, False, True, True], [False, True, True, False, False], old_first,
                       expected_new)
    assert outcome in ("old", "rejected")  # the record (the binding one) is renamed last
    assert temps_in(tmp_path), "the dead writer's temps are still there"
    pending = _atomic.interrupted_commit(target) is not None
    assert pending == (die_at >= 2)
    capsys.readouterr()
    if pending:  # completing the commit alone gives the whole new set
        assert _atomic.complete_interrupted(target, prog="test")
        assert "test: completed the commit of p.pack" in capsys.readouterr().err
        assert _outcome(target, [True, False, False, True, True], [False, True, True, False, False], old_first,
                        expected_new) == "new"
        assert temps_in(tmp_path) == []
    assert pymfn_main(["image2bin", str(new), "--packed", str(target), "-q", "--force"]) == 0
    err = capsys.readouterr().err
    if not pending:
        assert err.count("\n") == 1 and "removed" in err and "stale temp output(s) of dead process(es)" in err
    assert temps_in(tmp_path) == []
    assert i2b.read_issame(target).tolist() == [False, True, True, False, False]


@pytest.mark.parametrize("command", ["image2bin-folder", "image2bin-packed", "pack"])
def test_kill_during_writing_leaves_temps_the_next_run_removes(tmp_path, two_sources, command, capsys):
    """Before: kill -9 during image2bin / image2bin --packed / pack left hidden temps no later run removed."""
    old, _ = two_sources
    if command == "image2bin-folder":
        out = tmp_path / "bins"
        argv = ["image2bin", str(old), str(out), "-q"]
        mode, die_at = "commit", 1  # the folder is complete in its temp name; killed before the rename
    elif command == "image2bin-packed":
        out = tmp_path / "p.pack"
        argv = ["image2bin", str(old), "--packed", str(out), "-q"]
        mode, die_at = "write", 2
    else:
        i2b.image2bin(old, tmp_path / "src")
        out = tmp_path / "p.pack"
        argv = ["pack", "--from", str(tmp_path / "src"), "--out", str(out), "--quiet"]
        mode, die_at = "write", 3
    assert _run_child(tmp_path, mode, die_at, argv) == -signal.SIGKILL
    left = temps_in(tmp_path)
    assert left and not out.exists()
    capsys.readouterr()
    assert pymfn_main(argv) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"removed {len(left)} stale temp output(s)" in err and left[0] in err
    assert temps_in(tmp_path) == []


def test_live_writers_temps_are_left_alone(tmp_path):
    target = tmp_path / "x.pack"
    mine = _atomic.temp_path(target)
    mine.write_bytes(b"in progress")
    # a finished process: its pid is free (or reused by a process started at another time)
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(child.stdout)
    dead = tmp_path / f".x.pack.pymfn-{dead_pid}-1-deadbeef.tmp"
    dead.mkdir()
    (dead / "0.bin").write_bytes(b"x" * 1000)
    reused = tmp_path / f".x.pack.pymfn-{os.getpid()}-1-cafe.tmp"  # our pid, another start time
    reused.write_bytes(b"y")
    unrelated = tmp_path / f".y.pack.pymfn-{dead_pid}-1-beef.tmp"  # another target's temp: not ours to judge
    unrelated.write_bytes(b"z")
    removed = _atomic.remove_stale_temps(pack.set_paths(target))
    assert sorted(r.path.name for r in removed) == sorted([dead.name, reused.name])
    assert mine.exists() and unrelated.exists() and not dead.exists() and not reused.exists()
    assert sum(r.bytes for r in removed) == 1001


# ------------------------------------------------------------------ a bins folder is bound to its record

def _tiny_ir(path: Path) -> Path:
    """OpenVINO IR with MobileFaceNet's input [-1,112,112,3] float32 -> 8 values (no TensorFlow needed)."""
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([-1, 112, 112, 3], np.float32, name="Placeholder")
    y = ops.reshape(x, ops.constant(np.array([-1, 112 * 112 * 3], np.int64)), False)
    w = np.random.default_rng(0).standard_normal((112 * 112 * 3, 8)).astype(np.float32)
    y = ops.matmul(y, ops.constant(w), False, False)
    ov.save_model(ov.Model([y], [x], "tiny"), str(path))
    return path


def test_changed_bins_folder_is_refused_before_its_labels_are_used(tmp_path, capsys):
    """Before: a folder with its last bin removed and a copy added (same count) was scored with its old labels,
    every sample after the copy paired with the wrong label (73% instead of 99.5% on LFW), without a word."""
    labels = [i % 3 == 0 for i in range(10)]  # ten pairs: the protocol's ten folds
    src = lfw_bin(tmp_path / "src.bin", range(40, 60), labels)
    s = tmp_path / "s"
    assert pymfn_main(["image2bin", str(src), str(s), "-q"]) == 0
    assert i2b.read_issame(s).tolist() == labels
    assert i2b.verify_bins_folder(s)["count"] == 20
    (s / "19.bin").unlink()
    (s / "00.bin").write_bytes((s / "0.bin").read_bytes())
    with pytest.raises(i2b.FolderRecordError, match=r"missing 19\.bin; not in the record: 00\.bin") as e:
        i2b.read_issame(s)
    assert str(e.value).startswith(f"{s}: the bins no longer match .image2bin.json (20 files 0.bin..19.bin;")
    # End to end: `bench accuracy --data s` says so in one line instead of scoring the folder.
    from pymfn.bench.__main__ import main as bench_main

    model = _tiny_ir(tmp_path / "tiny.xml")
    argv = ["accuracy", "--data", str(s), "--model", str(model), "--batch", "2", "--quiet"]
    assert bench_main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pymfn bench accuracy: error: ") and str(s) in err, err
    assert "missing 19.bin" in err and "00.bin" in err
    # An explicit --issame is the user's word: the folder is scored with it.
    np.save(tmp_path / "labels.npy", np.array(labels))
    assert bench_main(argv + ["--issame", str(tmp_path / "labels.npy")]) == 0
    # Put back as written: scored with its own labels again.
    (s / "00.bin").unlink()
    assert pymfn_main(["image2bin", str(src), str(s), "-q", "--force"]) == 0
    assert bench_main(argv) == 0
    capsys.readouterr()


def test_bins_folder_record_checks(tmp_path, two_sources):
    old, _ = two_sources
    s = tmp_path / "s"
    i2b.image2bin(old, s)
    (s / "3.bin").write_bytes(b"\0" * 10)  # resized
    with pytest.raises(i2b.FolderRecordError, match=r"not 150528 bytes: 3\.bin"):
        i2b.read_issame(s)
    i2b.image2bin(old, s2 := tmp_path / "s2")
    for i in range(3):
        (s2 / f"{i}.bin").unlink()
    with pytest.raises(i2b.FolderRecordError, match=r"missing 0\.bin, 1\.bin, 2\.bin"):
        i2b.read_issame(s2)
    i2b.image2bin(old, s3 := tmp_path / "s3")
    for name in ("a.bin", "b.bin", "c.bin", "d.bin"):
        (s3 / name).write_bytes(b"")
    (s3 / ".hidden.bin").write_bytes(b"")  # not read by the dataset: not a difference
    with pytest.raises(i2b.FolderRecordError, match=r"not in the record: a\.bin, b\.bin, c\.bin and 1 more"):
        i2b.read_issame(s3)
    # No record (another tool made the folder, or it was removed): labels are not bound to anything.
    i2b.image2bin(old, s4 := tmp_path / "s4")
    (s4 / i2b.META_FILE).unlink()
    with pytest.raises(i2b.FolderRecordError, match=r"no \.image2bin\.json binding its pair labels"):
        i2b.read_issame(s4)
    # Labels that disagree with the recorded count.
    i2b.image2bin(old, s5 := tmp_path / "s5")
    np.save(s5 / i2b.ISSAME_FILE, np.array([True, False]))
    with pytest.raises(i2b.FolderRecordError, match=r"2 pair labels but .* records 10 images \(5 pairs\)"):
        i2b.read_issame(s5)
    # A record that lists the labels' hash binds them too.
    import hashlib
    import json

    i2b.image2bin(old, s6 := tmp_path / "s6")
    meta = json.loads((s6 / i2b.META_FILE).read_text())
    meta["sidecars"] = {i2b.ISSAME_FILE: hashlib.sha256((s6 / i2b.ISSAME_FILE).read_bytes()).hexdigest()}
    (s6 / i2b.META_FILE).write_text(json.dumps(meta))
    assert i2b.read_issame(s6).tolist() == [True, False, False, True, True]
    np.save(s6 / i2b.ISSAME_FILE, np.array([True, True, True, True, True]))
    with pytest.raises(i2b.FolderRecordError, match="not the labels .image2bin.json was written with"):
        i2b.read_issame(s6)

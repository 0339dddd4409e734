"""The output transaction (pymfn.files.atomic) that every writer uses: locks, one temp pattern and its cleanup,
sets committed as one unit (a killed commit is completed by the next writer), outputs that would destroy
inputs refused, write failures named, strict JSON."""
from __future__ import annotations

import json
import math
import os
import signal
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pymfn.files import atomic as _atomic
from pymfn.files.atomic import OutputBusyError, OutputError, Transaction, hold, refuse_overlap

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def pymfn_temps(folder: Path) -> list[str]:
    """Everything a writer may leave: temps, locks, commit journals."""
    return sorted(p.name for p in folder.iterdir() if ".pymfn" in p.name)


def dead_pid() -> int:
    """A pid that no process has now."""
    child = subprocess.run([PY, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    pid = int(child.stdout)
    assert _atomic.process_start_time(pid) is None
    return pid


def run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([PY, *argv], capture_output=True, text=True, env=env, timeout=300, **kw)


# ------------------------------------------------------------------------------ single files

def test_write_is_atomic_and_gets_the_usual_mode(tmp_path):
    target = tmp_path / "sub" / "r.json"
    _atomic.write_json(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
    assert target.stat().st_mode & 0o777 == _atomic.FILE_MODE
    assert pymfn_temps(target.parent) == []  # no temp, no lock file, no journal
    with pytest.raises(ZeroDivisionError):
        with _atomic.atomic_write(target) as f:
            f.write(b"half")
            1 / 0
    assert json.loads(target.read_text()) == {"a": 1} and pymfn_temps(target.parent) == []


def test_the_reported_stale_json_temp_is_removed_and_named(tmp_path):
    """Before: `echo x > .lat.json.pymfn-999999-1-deadbeef.tmp` beside a --json target stayed for ever, silently."""
    pid = dead_pid()
    stale = tmp_path / f".lat.json.pymfn-{pid}-1-deadbeef.tmp"
    stale.write_text("x\n")
    other = tmp_path / f".other.json.pymfn-{pid}-1-deadbeef.tmp"  # another target's: not this writer's to judge
    other.write_text("x\n")
    emb, issame = tmp_path / "emb.npy", tmp_path / "i.npy"
    rng = np.random.default_rng(0)
    np.save(emb, rng.normal(size=(40, 8)).astype(np.float32))
    np.save(issame, np.arange(20) % 2 == 0)
    proc = run(["-m", "pymfn", "eval", str(emb), "--issame", str(issame), "--json", str(tmp_path / "lat.json")])
    assert proc.returncode == 0, proc.stderr
    assert not stale.exists() and other.exists()
    lines = [ln for ln in proc.stderr.splitlines() if "stale" in ln]
    assert len(lines) == 1 and stale.name in lines[0] and f"dead process(es) {pid}" in lines[0]
    assert json.loads((tmp_path / "lat.json").read_text())["pairs"] == 20


def test_under_the_lock_a_live_non_writers_temp_is_stale_too(tmp_path, capsys):
    target = tmp_path / "t.bin"
    start = _atomic.process_start_time(1)
    if start is None:
        pytest.skip("no process 1 visible in this pid namespace")
    live = tmp_path / f".t.bin.pymfn-1-{start}-abcd.tmp"  # pid 1 is alive but does not hold the lock
    live.write_bytes(b"x")
    assert _atomic.stale_temps([target]) == []  # without the lock a live pid's temp is left alone
    with hold([target], prog="test"):
        pass
    assert not live.exists()
    assert "no longer writing them" in capsys.readouterr().err


# ------------------------------------------------------------------------------ locks

HOLDER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from pymfn.files.atomic import hold
    with hold([sys.argv[1]]):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
        open(sys.argv[1] + ".released", "w").close()  # still under the lock: a waiter sees this file
""")


def _holder(tmp_path: Path, target: Path, seconds: float) -> subprocess.Popen:
    script = tmp_path / "holder.py"
    script.write_text(HOLDER.format(root=str(ROOT)))
    proc = subprocess.Popen([PY, str(script), str(target), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_or_waits_its_turn(tmp_path):
    target = tmp_path / "out.json"
    holder = _holder(tmp_path, target, 3.0)
    try:
        with pytest.raises(OutputBusyError, match=rf"--json {target}: another pymfn process \(pid {holder.pid}\)"):
            with hold([target], option="--json", wait=0):
                pass
        _atomic.write_json(target, {"after": True}, wait=120)  # waits for the holder, then writes
        assert Path(f"{target}.released").exists()  # it could only write once the holder was done
    finally:
        holder.kill()
        holder.wait()
    assert json.loads(target.read_text()) == {"after": True}
    assert pymfn_temps(tmp_path) == []
    Path(f"{target}.released").unlink()


def test_locks_are_reentrant_and_name_the_output_as_typed(tmp_path):
    target = tmp_path / "x.pack"
    with hold([target, tmp_path / "x.pack.issame.npy"], option="--packed"):
        assert _atomic.describe(target) == f"--packed {target}"
        assert _atomic.describe(tmp_path / "x.pack.issame.npy") == f"--packed {target} (x.pack.issame.npy)"
        with Transaction(target) as tx:  # a library writer inside the command's lock
            tx.write_bytes(target, b"data")
        assert (tmp_path / ".x.pack.pymfn.lock").exists()
    assert target.read_bytes() == b"data" and pymfn_temps(tmp_path) == []


def test_image2bin_into_an_output_being_written_is_refused(tmp_path):
    """Before: two image2bin runs into one folder both said "wrote"; the later silently replaced the first."""
    src = tmp_path / "faces"
    src.mkdir()
    from PIL import Image

    Image.fromarray(np.zeros((112, 112, 3), np.uint8)).save(src / "a.png")
    for out, option in ((tmp_path / "out", "OUT"), (tmp_path / "o.pack", "--packed")):
        holder = _holder(tmp_path, out, 60.0)
        try:
            argv = ["-m", "pymfn", "image2bin", str(src)] + ([str(out)] if option == "OUT" else ["--packed", str(out)])
            proc = run(argv + ["-q", "--force"])
        finally:
            holder.kill()
            holder.wait()
        assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
        assert f"{option} {out}: another pymfn process (pid {holder.pid}) is writing it" in proc.stderr
        assert not out.exists()


# ------------------------------------------------------------------------------ sets

KILLER = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {root!r})
    from pathlib import Path
    from pymfn.files.atomic import Transaction
    die_at, sig, folder, tag = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    calls = [0]
    real = os.replace
    def replace(a, b):
        calls[0] += 1
        if calls[0] == die_at:
            os.kill(os.getpid(), sig)
        return real(a, b)
    os.replace = replace
    with Transaction(folder / "m.xml", also=[folder / "m.bin", folder / "m.json", folder / "m.old"]) as tx:
        tx.write_bytes(folder / "m.bin", "bin " + tag)
        tx.write_bytes(folder / "m.xml", "xml " + tag)
        tx.discard(folder / "m.old")
        tx.write_bytes(folder / "m.json", "record " + tag, last=True)
    print("steps", calls[0])
""")


def _set_state(folder: Path) -> str:
    texts = {n: (folder / n).read_text() if (folder / n).exists() else None for n in ("m.xml", "m.bin", "m.json")}
    tags = {t.split()[-1] for t in texts.values() if t is not None}
    if tags == {"old"} and (folder / "m.old").exists() and None not in texts.values():
        return "old"
    if tags == {"new"} and not (folder / "m.old").exists() and None not in texts.values():
        return "new"
    return "mixed: " + repr(texts)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_commit_killed_at_any_step_leaves_the_old_set_or_is_completed(tmp_path, sig, capsys):
    script = tmp_path / "killer.py"
    script.write_text(KILLER.format(root=str(ROOT)))
    folder = tmp_path / "out"
    folder.mkdir()

    def old_set() -> None:
        for p in folder.iterdir():
            _atomic.remove_path(p)
        for n in ("m.xml", "m.bin", "m.json", "m.old"):
            (folder / n).write_text(f"{n} old")

    old_set()
    done = subprocess.run([PY, str(script), "0", "9", str(folder), "new"], capture_output=True, text=True, check=True)
    steps = int(done.stdout.split()[-1])
    assert steps == 4 and _set_state(folder) == "new"  # the journal, then bin, xml and the record
    for die_at in range(1, steps + 1):
        old_set()
        proc = subprocess.run([PY, str(script), str(die_at), str(int(sig)), str(folder), "new"], capture_output=True)
        assert proc.returncode == -sig
        pending = _atomic.interrupted_commit(folder / "m.xml") is not None
        assert pending == (die_at > 1)
        state = _set_state(folder)
        if not pending:
            assert state == "old"
        else:  # the binding record is still the old one until the commit is completed
            assert (folder / "m.json").read_text() == "m.json old"
        capsys.readouterr()
        with hold([folder / n for n in ("m.xml", "m.bin", "m.json", "m.old")], prog="next"):
            pass
        err = capsys.readouterr().err
        assert _set_state(folder) == ("new" if pending else "old")
        assert pymfn_temps(folder) == []
        assert err.count("\n") == 1
        assert ("next: completed the commit of m.xml" if pending else "next: removed") in err


def test_a_folder_replaced_whole_even_when_killed_after_the_swap(tmp_path, capsys):
    target = tmp_path / "bins"
    target.mkdir()
    (target / "0.bin").write_bytes(b"old")
    script = tmp_path / "swap.py"
    script.write_text(textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from pymfn.files import atomic as _atomic
        real = _atomic.remove_path
        def remove(p):  # the old tree is removed after the swap: die there
            if p.name.startswith(".bins.pymfn-") and (p / "0.bin").exists() and (p / "0.bin").read_bytes() == b"old":
                os.kill(os.getpid(), signal.SIGKILL)
            return real(p)
        _atomic.remove_path = remove
        with _atomic.atomic_dir({str(target)!r}) as tmp:
            (tmp / "0.bin").write_bytes(b"new")
    """))
    assert subprocess.run([PY, str(script)]).returncode == -signal.SIGKILL
    assert (target / "0.bin").read_bytes() == b"new"  # the swap is one step: the target is whole
    with hold([target], prog="next"):
        pass
    assert "next:" in capsys.readouterr().err
    assert pymfn_temps(tmp_path) == [] and (target / "0.bin").read_bytes() == b"new"


def test_a_member_of_the_wrong_kind_is_refused_before_any_work(tmp_path):
    (tmp_path / "x.pack.image2bin.json").mkdir()
    with pytest.raises(OutputError, match=r"x.pack.image2bin.json\): is a folder; refusing to replace it"):
        with hold([tmp_path / "x.pack"], option="--packed"):
            with Transaction(tmp_path / "x.pack", also=[tmp_path / "x.pack.image2bin.json"]):
                pass
    (tmp_path / "f").write_text("a file")
    with pytest.raises(OutputError, match="exists and is not a folder"):
        with _atomic.atomic_dir(tmp_path / "f"):
            pass
    assert pymfn_temps(tmp_path) == []


def test_image2bin_with_a_folder_in_its_set_leaves_nothing_new(tmp_path, lfw_bin_small):
    """Before: `mkdir x.pack.image2bin.json; image2bin ... --packed x.pack --force` exited 1 but left the new
    x.pack and x.pack.issame.npy beside nothing."""
    (tmp_path / "x.pack.image2bin.json").mkdir()
    proc = run(["-m", "pymfn", "image2bin", str(lfw_bin_small), "--packed", str(tmp_path / "x.pack"), "--limit", "4",
                "--force", "-q"])
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "x.pack.image2bin.json): is a folder" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p != lfw_bin_small) == ["x.pack.image2bin.json"]


@pytest.fixture()
def lfw_bin_small(tmp_path) -> Path:
    import io
    import pickle

    from PIL import Image

    jpegs = []
    for seed in range(4):
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(seed).integers(0, 256, (112, 112, 3), dtype=np.uint8)).save(buf, "JPEG")
        jpegs.append(buf.getvalue())
    path = tmp_path / "small_lfw.bin"
    path.write_bytes(pickle.dumps((jpegs, [True, False]), protocol=4))
    return path


# ------------------------------------------------------------------------------ outputs that are inputs

def test_overlap_rules(tmp_path):
    src = tmp_path / "imgs"
    src.mkdir()
    f = src / "a.jpg"
    f.write_bytes(b"x")
    link = tmp_path / "link.jpg"
    link.symlink_to(f)
    hard = tmp_path / "hard.jpg"
    os.link(f, hard)
    cases = {
        "is also the input": [(f, f), (link, f), (hard, f), (src, src)],
        "lies inside the input": [(src / "new.bin", src)],
        "holds the input": [(tmp_path, src)],
    }
    for words, pairs in cases.items():
        for out, inp in pairs:
            with pytest.raises(OutputError, match=f"--out {out}: {words} IN"):
                refuse_overlap([(f"--out {out}", out)], [("IN", inp)])
    refuse_overlap([("--out x", tmp_path / "elsewhere.bin")], [("IN", src), ("missing", tmp_path / "nope")])
    with pytest.raises(OutputError, match="--plot r.json: is also written as --json r.json"):
        refuse_overlap([("--json r.json", tmp_path / "r.json"), ("--plot r.json", tmp_path / "r.json")], [])


@pytest.mark.parametrize("argv, needle", [
    ("image2bin {lfw} --packed {lfw} --force", "--packed {lfw}: is also the input {lfw}"),
    ("image2bin {imgs} {imgs} --force", "OUT {imgs}: is also the input {imgs}"),
    ("image2bin {imgs} {imgs}/out --force", "OUT {imgs}/out: lies inside the input {imgs}"),
    ("pack --from {imgs} --out {tmp}/o.pack --manifest {tmp}/o.pack", "--manifest {tmp}/o.pack: is also written as"),
    ("pack --from {imgs} --out {tmp}/o.pack --manifest {tmp}/o.pack.issame.npy",
     "--manifest {tmp}/o.pack.issame.npy: is also written as --out {tmp}/o.pack (o.pack.issame.npy)"),
    ("quantize {tmp}/m.xml --output {tmp}/m.xml", "--output {tmp}/m.xml: is also the input {tmp}/m.xml"),
    ("quantize {tmp}/m.xml --output {tmp}/q.xml --save-calibration {imgs} --calibration {imgs}",
     "--save-calibration {imgs}: is also the input --calibration {imgs}"),
    ("convert {tmp}/m.xml --target om-emu --output {tmp}/m.bin", "--output {tmp}/m.bin: is also the input {tmp}/m.xml "
     "(its weights m.bin)"),
    ("data tfrecord --from {imgs} --out {imgs}", "--out {imgs}: is also the input --from {imgs}"),
    ("import-weights --from {lfw} --out {tmp}", "--out {tmp}: holds the input --from {lfw}"),
    ("freeze --ckpt {ckpt} --out {ckpt}/model.ckpt.index", "is also the input --ckpt {ckpt} (model.ckpt.index)"),
    ("eval {emb} --issame {issame} --json {emb}", "--json {emb}: is also the input {emb}"),
    ("eval {emb} --issame {issame} --roc {issame}", "--roc {issame}: is also the input --issame {issame}"),
])
def test_an_output_that_is_an_input_is_refused_and_the_input_kept(tmp_path, lfw_bin_small, argv, needle):
    """Before: `image2bin lfw.bin --packed lfw.bin --force` turned a 62 MB lfw.bin into a 40-image pack,
    `image2bin imgs imgs --force` deleted the JPEGs, `eval emb.npy --json emb.npy` overwrote the embeddings."""
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    (imgs / "a.jpg").write_bytes(b"not decoded: refused first")
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "model.ckpt.index").write_bytes(b"index")
    (tmp_path / "m.xml").write_text("<net/>")
    (tmp_path / "m.bin").write_bytes(b"weights")
    emb, issame = tmp_path / "emb.npy", tmp_path / "i.npy"
    np.save(emb, np.ones((4, 8), np.float32))
    np.save(issame, np.array([True, False]))
    names = dict(lfw=lfw_bin_small, imgs=imgs, tmp=tmp_path, ckpt=ckpt, emb=emb, issame=issame)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    proc = run(["-m", "pymfn", *argv.format(**names).split()])
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and needle.format(**names) in proc.stderr, proc.stderr
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before


# ------------------------------------------------------------------------------ strict JSON

def test_json_is_strict_and_says_why_a_value_is_null(tmp_path):
    doc = {"auc": float("nan"), "eer": np.float32("inf"), "ok": 0.5, "rows": [{"x": -math.inf}], "n": 3}
    text = _atomic.json_bytes(doc, reasons={"auc": "all pairs share one class"}).decode()
    strict = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert strict["auc"] is None and strict["eer"] is None and strict["rows"][0]["x"] is None and strict["ok"] == 0.5
    assert strict["null_reasons"]["auc"] == "all pairs share one class"
    assert set(strict["null_reasons"]) == {"auc", "eer", "rows[0].x"}
    assert "NaN" not in text and "Infinity" not in text


def test_eval_json_with_one_class_is_strict(tmp_path):
    """Before: `"auc": NaN` when all pairs share one class, invalid JSON for every strict parser."""
    emb, issame, out = tmp_path / "emb.npy", tmp_path / "i.npy", tmp_path / "r.json"
    np.save(emb, np.random.default_rng(1).normal(size=(40, 8)).astype(np.float32))
    np.save(issame, np.ones(20, bool))
    proc = run(["-m", "pymfn", "eval", str(emb), "--issame", str(issame), "--json", str(out)])
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert doc["auc"] is None and "undefined" in doc["null_reasons"]["auc"]


# ------------------------------------------------------------------------------ full disks, read-only places

def _namespace_ok() -> str | None:
    if not shutil.which("unshare"):
        return "no unshare(1) here"
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt 2>&1 || "
                            "mount -t tmpfs -o size=64k tmpfs /tmp"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot mount a small tmpfs in a user namespace here ({(probe.stdout + probe.stderr).strip()[:80]})"
    return None


def in_small_fs(mnt: Path, size: str, script: str, read_only: bool = False) -> subprocess.CompletedProcess:
    """Run ``script`` (sh) with a ``size`` tmpfs mounted at ``mnt`` (a mount namespace: no root needed)."""
    why = _namespace_ok()
    if why:
        pytest.skip(why)
    mnt.mkdir(exist_ok=True)
    ro = f" && mount -o remount,ro,size={size} {mnt}" if read_only else ""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size={size} tmpfs {mnt}{ro} && {script}"],
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("layout", ["folder", "packed"])
def test_disk_full_names_the_output_and_leaves_no_temp(tmp_path, lfw_bin_small, layout):
    """Before: "37632 requested and 28672 written" / "[Errno 28] No space left on device", naming no file."""
    mnt = tmp_path / "mnt"
    out = mnt / ("bins" if layout == "folder" else "x.pack")
    cmd = f"{PY} -m pymfn image2bin {lfw_bin_small} " + (str(out) if layout == "folder" else f"--packed {out}")
    proc = in_small_fs(mnt, "200k", f"{cmd} -q; echo rc=$?; ls -A {mnt}")
    lines = proc.stdout.split("\n")
    rc_line = next(ln for ln in lines if ln.startswith("rc="))
    assert rc_line == "rc=1", proc.stdout + proc.stderr
    option = "OUT" if layout == "folder" else "--packed"
    assert proc.stderr.count("\n") == 1 and f"{option} {out}" in proc.stderr, proc.stderr
    assert "no space left on device" in proc.stderr
    assert [ln for ln in lines[lines.index(rc_line) + 1:] if ln] == []  # nothing left in the file system


def test_report_on_a_full_disk_falls_back_and_says_why(tmp_path):
    mnt = tmp_path / "mnt"
    emb, issame = tmp_path / "emb.npy", tmp_path / "i.npy"
    np.save(emb, np.random.default_rng(2).normal(size=(40, 8)).astype(np.float32))
    np.save(issame, np.arange(20) % 2 == 0)
    fill = f"head -c 1000000 /dev/zero > {mnt}/fill 2>/dev/null;"
    proc = in_small_fs(mnt, "64k", f"{fill} {PY} -m pymfn eval {emb} --issame {issame} --json {mnt}/r.json; "
                                   f"echo rc=$?; ls -A {mnt}")
    assert "rc=0" in proc.stdout, proc.stderr
    assert f"--json {mnt}/r.json: could not write ({mnt}/r.json: cannot write (no space left on device" in proc.stderr
    assert "saved to" in proc.stderr and proc.stdout.split("rc=0")[1].split() == ["fill"]


def test_read_only_file_system_names_the_output(tmp_path, lfw_bin_small):
    mnt = tmp_path / "mnt"
    proc = in_small_fs(mnt, "1m", f"{PY} -m pymfn image2bin {lfw_bin_small} --packed {mnt}/x.pack -q", read_only=True)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert f"--packed {mnt}/x.pack" in proc.stderr and "Read-only file system" in proc.stderr


# ------------------------------------------------------------------------------ quantize's IR set

IR_KILLER = textwrap.dedent("""
    import json, os, signal, sys
    sys.path.insert(0, {root!r})
    from pathlib import Path
    import numpy as np
    import openvino as ov
    from pymfn.export import quantize
    from pymfn.files.atomic import Transaction, json_bytes
    out, scale, die_at = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    x = ov.opset13.parameter([1, 4], ov.Type.f32, name="x")
    model = ov.Model([ov.opset13.multiply(x, ov.opset13.constant(np.full((1, 4), scale, np.float32)))], [x])
    calls = [0]
    real = os.replace
    def replace(a, b):
        calls[0] += 1
        if calls[0] == die_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(a, b)
    with Transaction(out, also=quantize.ir_set(out)[1:]) as tx:
        xml_file, bin_file = quantize.stage_ir(tx, model, out)
        record = {{"output": {{"xml_sha256": quantize.file_sha256(xml_file),
                              "bin_sha256": quantize.file_sha256(bin_file)}}, "calibration": {{"seed": scale}}}}
        tx.write_bytes(quantize.record_path(out), json_bytes(record), last=True)
        os.replace = replace  # from here on: the commit's renames (journal, .bin, .xml, record)
""")


def test_an_ir_killed_between_its_rename_and_its_record_is_rejected_then_completed(tmp_path, capsys):
    """Before: quantize killed between the IR rename and its record left the new q.xml/q.bin beside the
    previous run's q.quantization.json (wrong seed and hashes). Now the record is checked on read and the
    next writer completes the commit."""
    pytest.importorskip("openvino")
    from pymfn.export import quantize

    script = tmp_path / "ir.py"
    script.write_text(IR_KILLER.format(root=str(ROOT)))
    out = tmp_path / "q.xml"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run([PY, str(script), str(out), "1", "0"], check=True, env=env)
    assert quantize.check_ir_set(out) is None and quantize.read_record(out)["calibration"]["seed"] == 1
    proc = subprocess.run([PY, str(script), str(out), "2", "4"], env=env)  # dies before the record's rename
    assert proc.returncode == -signal.SIGKILL
    problem = quantize.check_ir_set(out)
    assert problem is not None and "is not the file q.quantization.json was written with" in problem
    assert _atomic.complete_interrupted(out, prog="next")
    assert "next: completed the commit of q.xml" in capsys.readouterr().err
    assert quantize.check_ir_set(out) is None and quantize.read_record(out)["calibration"]["seed"] == 2
    assert pymfn_temps(tmp_path) == []


@pytest.mark.slow  # imports TensorFlow
def test_import_weights_onto_a_full_disk_is_one_line(tmp_path, sirius_tflite):
    """Before: exit 3, "internal error (ResourceExhaustedError)" with TensorFlow's frames."""
    mnt = tmp_path / "mnt"
    proc = in_small_fs(mnt, "1m", f"{PY} -m pymfn import-weights --from {sirius_tflite} --out {mnt}/ck; echo rc=$?; "
                                  f"ls -A {mnt}")
    assert "rc=1" in proc.stdout, proc.stderr
    assert proc.stderr == (f"pymfn import-weights: error: --out {mnt}/ck: cannot write (no space left on device in "
                           f"{mnt}); nothing was replaced\n")
    assert proc.stdout.split("rc=1")[1].split() == []

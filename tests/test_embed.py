"""pymfn embed: shards + manifest, resume after SIGKILL, --shard K/N workers, merge/verify, every source kind.

The default-run tests use a small random-weight convolutional OpenVINO IR (built in milliseconds) on random
JPEG trees; the lfw_train_112 acceptance run uses the real MobileFaceNet.
"""
from __future__ import annotations

import io
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pymfn.embed import shards
from pymfn.errors import CommandError


def _jpeg(rng: np.random.Generator) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def make_tree(root: Path, identities: int, per_identity: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(identities):
        for j in range(per_identity):
            p = root / f"person_{i:03d}" / f"person_{i:03d}_{j:04d}.jpg"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(_jpeg(rng))
    return root


def make_conv_ir(path: Path, embedding: int = 64, seed: int = 0) -> Path:
    """A small random-weight CNN as an OpenVINO IR: [N,112,112,3] f32 -> [N, embedding]."""
    import openvino as ov
    from openvino import opset13 as ops

    rng = np.random.default_rng(seed)
    x = ops.parameter([-1, 112, 112, 3], np.float32, name="Placeholder")
    h = ops.transpose(x, np.array([0, 3, 1, 2], np.int64))
    for cin, cout in ((3, 16), (16, 32)):
        w = (rng.standard_normal((cout, cin, 3, 3)) / np.sqrt(cin * 9)).astype(np.float32)
        h = ops.relu(ops.convolution(h, w, [2, 2], [1, 1], [1, 1], [1, 1]))
    pooled = ops.reduce_mean(h, np.array([2, 3], np.int64), keep_dims=False)
    w = rng.standard_normal((32, embedding)).astype(np.float32)
    out = ops.matmul(pooled, w, False, False)
    out.output(0).get_tensor().set_names({"embeddings"})
    ov.save_model(ov.Model([out], [x], "tiny"), str(path), compress_to_fp16=False)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    t = tmp_path_factory.mktemp("embed")
    return {"tree": make_tree(t / "tree", 6, 5), "model": make_conv_ir(t / "tiny.xml"), "tmp": t}


def _pymfn(*argv: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "pymfn", *argv], capture_output=True, text=True, timeout=300, **kw)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def _settings(model: Path, shard_rows: int = 8) -> shards.EmbedSettings:
    return shards.EmbedSettings(model=str(model), shard_rows=shard_rows, threads=1, batch=4)


def test_embed_writes_shards_manifest_and_merge(tiny, tmp_path) -> None:
    out = tmp_path / "out"
    run = shards.embed(tiny["tree"], out, _settings(tiny["model"]))
    assert [r.status for r in run.shards] == ["embedded"] * 4  # 30 rows / 8
    rec = shards.merge(out)
    emb, labels, paths, manifest = shards.load_merged(out)
    assert emb.shape == (30, 64) and rec["rows"] == 30
    assert manifest["identities"] == [f"person_{i:03d}" for i in range(6)]
    assert labels.tolist() == [i // 5 for i in range(30)]
    assert paths[7] == "person_001/person_001_0002.jpg"
    # the rows are what the engine gives for the whole tree in one go (shard boundaries change nothing)
    from pymfn.bench.lfw_accuracy import embed_images
    from pymfn.inputs.image2bin import list_images
    from pymfn.inputs.lfw_bin import decode_images
    from pymfn.runtime.engines import open_engine

    images = decode_images([f.read_bytes() for f in list_images(tiny["tree"])])
    engine = open_engine(str(tiny["model"]), threads=1, inflight=2)
    np.testing.assert_array_equal(np.asarray(emb), embed_images(engine, images, np.dtype(np.float32), 4, 2))
    v = shards.verify(out)
    assert v.complete and v.merged == "ok" and v.finished == [0, 1, 2, 3]


def test_rerun_verifies_and_redoes_a_damaged_shard(tiny, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    shards.embed(tiny["tree"], out, _settings(tiny["model"]))
    first = (out / "shard-00002-of-00004.npy").read_bytes()
    again = shards.embed(tiny["tree"], out, _settings(tiny["model"]))
    assert [r.status for r in again.shards] == ["verified"] * 4
    damaged = bytearray(first)
    damaged[-1] ^= 1
    (out / "shard-00002-of-00004.npy").write_bytes(bytes(damaged))
    v = shards.verify(out)
    assert list(v.problems) == [2] and "sha256" in v.problems[2]
    with pytest.raises(CommandError, match="shard 2"):
        shards.merge(out)
    fixed = shards.embed(tiny["tree"], out, _settings(tiny["model"]))
    assert [r.status for r in fixed.shards] == ["verified", "verified", "redone", "verified"]
    assert (out / "shard-00002-of-00004.npy").read_bytes() == first
    assert "embedding it again" in capsys.readouterr().err


def test_plan_mismatch_is_refused(tiny, tmp_path) -> None:
    out = tmp_path / "out"
    shards.embed(tiny["tree"], out, _settings(tiny["model"]))
    with pytest.raises(CommandError, match="shard_rows 8 in the manifest, 5 now"):
        shards.embed(tiny["tree"], out, _settings(tiny["model"], shard_rows=5))
    other = make_conv_ir(tmp_path / "other.xml", seed=1)
    with pytest.raises(CommandError, match="model bytes differ"):
        shards.embed(tiny["tree"], out, _settings(other))
    (tiny["tree"] / "person_000" / "person_000_0000.jpg").touch()  # same bytes, new time: the fingerprint says so
    with pytest.raises(CommandError, match="the source changed"):
        shards.embed(tiny["tree"], out, _settings(tiny["model"]))
    (out / "manifest.json").write_text((out / "manifest.json").read_text().replace('"batch": 4', '"batch": 8'))
    with pytest.raises(CommandError, match="was edited"):
        shards.verify(out)


def test_workers_split_the_plan_and_merge_equals_one_process(tiny, tmp_path) -> None:
    one, split = tmp_path / "one", tmp_path / "split"
    shards.embed(tiny["tree"], one, _settings(tiny["model"], shard_rows=4))
    shards.merge(one)
    for k in (2, 0):
        run = shards.embed(tiny["tree"], split, _settings(tiny["model"], shard_rows=4), worker=(k, 3))
        assert [r.spec.index % 3 for r in run.shards] == [k] * len(run.shards)
    v = shards.verify(split)
    assert sorted(v.problems) == [1, 4, 7]  # worker 1 of 3 has not run
    shards.embed(tiny["tree"], split, _settings(tiny["model"], shard_rows=4), worker=(1, 3))
    shards.merge(split)
    assert (split / "embeddings.npy").read_bytes() == (one / "embeddings.npy").read_bytes()


def test_sources_lfw_bin_pack_and_bins_folder(tiny, tmp_path) -> None:
    rng = np.random.default_rng(5)
    jpegs = [_jpeg(rng) for _ in range(6)]
    lfw = tmp_path / "lfw.bin"
    lfw.write_bytes(pickle.dumps((jpegs, [True, False, True]), protocol=2))
    shards.embed(lfw, tmp_path / "from_lfw", _settings(tiny["model"], shard_rows=4))
    emb, labels, paths, m = shards.load_merged(tmp_path / "from_lfw") if shards.merge(tmp_path / "from_lfw") else None
    assert m["source_kind"] == "lfw.bin" and emb.shape == (6, 64) and (labels == -1).all() and paths[5] == "#5"
    # the same images as model inputs in a pack and a bins folder give the same embeddings
    from pymfn.inputs.image2bin import image2bin

    image2bin(lfw, tmp_path / "lfw.pack", color="rgb", packed=True)
    image2bin(lfw, tmp_path / "bins", color="rgb")
    for name in ("lfw.pack", "bins"):
        out = tmp_path / f"from_{name}"
        shards.embed(tmp_path / name, out, _settings(tiny["model"], shard_rows=4))
        shards.merge(out)
        got, _, _, m = shards.load_merged(out)
        assert m["source_kind"] == ("pack" if name == "lfw.pack" else "bins")
        np.testing.assert_array_equal(np.asarray(got), np.asarray(emb))


def test_kill_after_first_shard_then_resume_equals_uninterrupted(tiny, tmp_path) -> None:
    """SIGKILL once the first shard is committed; the rerun keeps finished shards and the merged bytes equal an
    uninterrupted run's."""
    tree = make_tree(tmp_path / "tree", 12, 10, seed=3)  # 120 images, 30 shards of 4
    model = tiny["model"]
    common = ["--model", str(model), "--shard-rows", "4", "--batch", "4", "--threads", "1"]
    whole = tmp_path / "whole"
    _pymfn("embed", str(tree), "--out", str(whole), "--quiet", *common)
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "pymfn", "embed", str(tree), "--out", str(out), *common],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = out / "shard-00000-of-00030.json"
    deadline = time.monotonic() + 120
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    v = shards.verify(out)
    # the kill may land inside the commit of a shard: its journal is then completed by the rerun
    assert set(v.problems.values()) <= {"missing", "its commit was interrupted"}, v.problems
    assert v.problems.get(0) != "missing" and v.problems, (v.finished, v.problems)
    assert not (out / "embeddings.npy").exists()
    committed = [i for i in range(30) if i in v.finished or v.problems[i] != "missing"]
    kept = {i: (out / f"shard-{i:05d}-of-00030.npy").stat().st_ino for i in v.finished}
    res = _pymfn("embed", str(tree), "--out", str(out), *common)
    assert f"{len(committed)} shard(s) were already finished" in res.stdout
    for i, ino in kept.items():  # finished shards were verified, not rewritten
        assert (out / f"shard-{i:05d}-of-00030.npy").stat().st_ino == ino
    assert (out / "embeddings.npy").read_bytes() == (whole / "embeddings.npy").read_bytes()
    assert (out / "labels.npy").read_bytes() == (whole / "labels.npy").read_bytes()
    assert _pymfn("embed", "--verify", str(out)).returncode == 0
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temps or locks left behind"


def test_cli_verify_fails_on_missing_shard(tiny, tmp_path) -> None:
    out = tmp_path / "out"
    _pymfn("embed", str(tiny["tree"]), "--out", str(out), "--model", str(tiny["model"]), "--shard-rows", "8",
           "--quiet")
    (out / "shard-00001-of-00004.json").unlink()
    proc = _pymfn("embed", "--verify", str(out), check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"pymfn embed: error: --verify {out}: 1 of 4 shards are missing or fail verification"
    assert "shard 1: missing" in proc.stdout


@pytest.mark.acceptance
def test_lfw_train_112_killed_and_resumed_equals_uninterrupted(lfw_train_dir, tmp_path) -> None:
    """The acceptance run: lfw_train_112 (5,985 images) with the default MobileFaceNet, 512-row shards, SIGKILL
    once the first shard is committed, resumed; merged bytes equal an uninterrupted run's; --verify passes."""
    common = ["--shard-rows", "512", "--quiet"]
    whole, out = tmp_path / "whole", tmp_path / "killed"
    _pymfn("embed", str(lfw_train_dir), "--out", str(whole), *common)
    proc = subprocess.Popen([sys.executable, "-m", "pymfn", "embed", str(lfw_train_dir), "--out", str(out), *common],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not (out / "shard-00000-of-00012.json").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert shards.verify(out).problems
    _pymfn("embed", str(lfw_train_dir), "--out", str(out), *common)
    assert (out / "embeddings.npy").read_bytes() == (whole / "embeddings.npy").read_bytes()
    assert _pymfn("embed", "--verify", str(out)).returncode == 0

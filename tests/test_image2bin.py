"""image2bin: byte-exact reference layout, folder sources, packed output, atomicity and errors."""
from __future__ import annotations

import io
import json
import pickle
import struct

import numpy as np
import pytest
from PIL import Image

from pymfn.inputs import image2bin as i2b
from pymfn.inputs.lfw_bin import ImageDecodeError, LfwFormatError
from pymfn.cli import main as cli_main


def jpeg(seed: int, size: int = 112) -> bytes:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)).resize((size, size))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def reference_bin(data: bytes) -> bytes:
    """The reference image2bin: OpenCV-style BGR, (x - 127.5) * 0.0078125 in float64, cast to float32."""
    bgr = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))[..., ::-1]
    return ((bgr - 127.5) * 0.0078125).astype(np.float32).tobytes()


def visible(folder):
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


@pytest.fixture()
def lfw_small(tmp_path):
    bins = [jpeg(i) for i in range(10)]
    issame = [True, False, False, True, True]
    path = tmp_path / "small.bin"
    path.write_bytes(pickle.dumps((bins, issame), protocol=2))
    return path, bins, issame


def test_lfw_bin_to_reference_bins(tmp_path, lfw_small):
    src, bins, issame = lfw_small
    out = i2b.image2bin(src, tmp_path / "bin_input")
    # only {i}.bin are visible: msame feeds every non-hidden file of the folder to the model
    assert visible(out) == sorted(f"{i}.bin" for i in range(10))
    for i, b in enumerate(bins):
        data = (out / f"{i}.bin").read_bytes()
        assert len(data) == 150_528 and data == reference_bin(b)
    assert i2b.read_issame(out).tolist() == issame
    meta = json.loads((out / i2b.META_FILE).read_text())
    assert meta["count"] == 10 and meta["color"] == "bgr" and meta["sample_bytes"] == 150_528
    assert not (out / i2b.INDEX_FILE).exists()


def test_rgb_uint8(tmp_path, lfw_small):
    src, bins, _ = lfw_small
    out = i2b.image2bin(src, tmp_path / "u8", color="rgb", dtype="uint8")
    for i, b in enumerate(bins):
        data = (out / f"{i}.bin").read_bytes()
        assert len(data) == 37_632
        assert data == np.asarray(Image.open(io.BytesIO(b)).convert("RGB")).tobytes()
    f32 = i2b.image2bin(src, tmp_path / "f32", color="rgb")
    x = np.fromfile(f32 / "3.bin", np.float32).reshape(112, 112, 3)
    raw = np.fromfile(out / "3.bin", np.uint8).reshape(112, 112, 3)
    assert np.array_equal(x, ((raw - 127.5) / 128).astype(np.float32))


def test_preprocess_is_exact():
    px = np.arange(256, dtype=np.uint8).reshape(1, 1, 256, 1).repeat(3, axis=3)
    assert np.array_equal(i2b.preprocess(px), ((px - 127.5) * 0.0078125).astype(np.float32))
    with pytest.raises(ValueError, match="dtype='float16'"):
        i2b.preprocess(px, "float16")


def test_folder_source_sorted_with_index(tmp_path):
    src = tmp_path / "faces"
    for rel, seed in [("b/Bob_0002.jpg", 1), ("a/Ann_0001.jpg", 2), ("b/Bob_0001.JPG", 3), ("c.png", 4)]:
        p = src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.open(io.BytesIO(jpeg(seed))).save(p, format="PNG" if rel.endswith("png") else "JPEG", quality=95)
    (src / "notes.txt").write_text("not an image")
    (src / ".hidden.jpg").write_bytes(b"junk")
    (src / ".cache").mkdir()
    (src / ".cache" / "x.jpg").write_bytes(b"junk")
    out = i2b.image2bin(src, tmp_path / "out", progress=True)
    order = ["a/Ann_0001.jpg", "b/Bob_0001.JPG", "b/Bob_0002.jpg", "c.png"]
    assert (out / i2b.INDEX_FILE).read_text().splitlines() == [f"{i}\t{n}" for i, n in enumerate(order)]
    assert visible(out) == ["0.bin", "1.bin", "2.bin", "3.bin"]
    for i, rel in enumerate(order):
        assert (out / f"{i}.bin").read_bytes() == reference_bin((src / rel).read_bytes())
    with pytest.raises(FileNotFoundError, match="no pair labels"):
        i2b.read_issame(out)


def test_limit(tmp_path, lfw_small):
    src, bins, issame = lfw_small
    out = i2b.image2bin(src, tmp_path / "l", limit=4)
    assert visible(out) == ["0.bin", "1.bin", "2.bin", "3.bin"] and i2b.read_issame(out).tolist() == issame[:2]
    with pytest.raises(ValueError, match="limit=3: must be even"):
        i2b.image2bin(src, tmp_path / "odd", limit=3)


def test_errors_name_the_input(tmp_path, lfw_small):
    src, bins, issame = lfw_small
    with pytest.raises(FileNotFoundError, match=r"nope.bin: no such lfw.bin file or image folder"):
        i2b.image2bin(tmp_path / "nope.bin", tmp_path / "o1")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"empty: no images"):
        i2b.image2bin(tmp_path / "empty", tmp_path / "o2")
    bad = tmp_path / "pairs.bin"
    bad.write_bytes(pickle.dumps((bins[:9], issame)))
    with pytest.raises(LfwFormatError, match=r"pairs.bin: wrong pair count: 9 images for 5 pairs"):
        i2b.image2bin(bad, tmp_path / "o3")
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.jpg").write_bytes(jpeg(i))
    (folder / "1.jpg").write_bytes(b"\xff\xd8 broken")
    with pytest.raises(ImageDecodeError, match=r"image 1 of .*imgs/1.jpg: cannot decode") as ei:
        i2b.image2bin(folder, tmp_path / "o4")
    assert ei.value.index == 1
    (folder / "1.jpg").write_bytes(jpeg(1, size=100))
    with pytest.raises(ImageDecodeError, match=r"imgs/1.jpg: is 100x100; expected 112x112"):
        i2b.image2bin(folder, tmp_path / "o4")
    with pytest.raises(ValueError, match="color='yuv'"):
        i2b.image2bin(src, tmp_path / "o5", color="yuv")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("o")) == []  # nothing half-written


def test_failure_late_in_the_run_keeps_old_output(tmp_path):
    # bad image after the first chunk: chunk 0 was already written to the temp folder
    bins = [jpeg(i % 7) for i in range(i2b.CHUNK + 10)]
    bins[i2b.CHUNK + 3] = b"not a jpeg"
    src = tmp_path / "late.bin"
    src.write_bytes(pickle.dumps((bins, [True] * (len(bins) // 2))))
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("previous run")
    with pytest.raises(ImageDecodeError, match=rf"image {i2b.CHUNK + 3} of .*late.bin"):
        i2b.image2bin(src, out)
    assert visible(out) == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["late.bin", "out"]


def test_cli(tmp_path, lfw_small, capsys):
    from pymfn.__main__ import main as pymfn_main

    src, bins, issame = lfw_small
    out = tmp_path / "cli"
    assert cli_main(["image2bin", str(src), str(out), "-q"]) == 0
    assert "wrote 10 images (150528 bytes each, float32 BGR)" in capsys.readouterr().out
    assert pymfn_main(["image2bin", str(src), str(out), "-q"]) == 1
    assert "already exists (use --force" in capsys.readouterr().err
    assert cli_main(["image2bin", str(src), str(out), "-q", "--force", "--rgb", "--uint8", "--limit", "2"]) == 0
    assert visible(out) == ["0.bin", "1.bin"] and (out / "0.bin").stat().st_size == 37_632
    with pytest.raises(SystemExit) as ei:
        cli_main(["image2bin", str(src)])
    assert ei.value.code == 2
    with pytest.raises(SystemExit):
        cli_main(["image2bin", str(src), str(out), "--packed", str(tmp_path / "x.pack")])
    capsys.readouterr()
    assert pymfn_main(["image2bin", str(tmp_path / "missing.bin"), str(tmp_path / "m"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "missing.bin" in err and err.count("\n") == 1
    assert pymfn_main(["image2bin", str(src), str(tmp_path / "via_dispatch"), "-q"]) == 0


def _read_packed(path):
    """Independent reader of the packed layout documented in csrc/core/packed_format.h."""
    raw = path.read_bytes()
    magic, version, header, dtype, ndim, count, sample_bytes = struct.unpack_from("<8sIIIIQQ", raw, 0)
    dims = struct.unpack_from("<8q", raw, 40)[:ndim]
    assert magic == b"PYMFNPK\0" and version == 1 and len(raw) == header + count * sample_bytes
    np_dtype = {0: np.float32, 4: np.uint8}[dtype]
    return np.frombuffer(raw, np_dtype, offset=header).reshape((count, *dims))


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
def test_packed_output(tmp_path, lfw_small, dtype):
    pytest.importorskip("pymfn.inputs.pack", reason="pymfn.inputs.pack (PackedWriter) not in the tree yet")
    src, bins, issame = lfw_small
    folder = i2b.image2bin(src, tmp_path / "folder", dtype=dtype)
    packed = i2b.image2bin(src, tmp_path / "lfw.pack", dtype=dtype, packed=True)
    arr = _read_packed(packed)
    assert arr.shape == (10, 112, 112, 3)
    for i in range(10):
        assert arr[i].tobytes() == (folder / f"{i}.bin").read_bytes()
    assert i2b.read_issame(packed).tolist() == issame
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("lfw.pack")) == [
        "lfw.pack", "lfw.pack.image2bin.json", "lfw.pack.issame.npy"]


def test_real_lfw_subset(lfw_bin, tmp_path):
    from pymfn.inputs.lfw_bin import read_lfw_bin

    out = i2b.image2bin(lfw_bin, tmp_path / "lfw", limit=64)
    bins, issame = read_lfw_bin(lfw_bin)
    assert len(visible(out)) == 64
    for i in (0, 17, 63):
        assert (out / f"{i}.bin").read_bytes() == reference_bin(bins[i])
    assert i2b.read_issame(out).tolist() == issame[:32].tolist()


# ------------------------------------------------------------------------------ hostile folders

def _run_image2bin(argv: list[str]):
    import subprocess
    import sys

    # a subprocess with a timeout: the old code blocked forever reading a FIFO
    return subprocess.run([sys.executable, "-m", "pymfn", "image2bin", *argv], capture_output=True, text=True,
                          timeout=120)


def test_fifo_named_like_an_image_is_an_error_not_a_read(tmp_path):
    import os

    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "0.jpg").write_bytes(jpeg(0))
    os.mkfifo(folder / "a.jpg")
    r = _run_image2bin([str(folder), str(tmp_path / "out"), "-q"])
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "a.jpg: is a FIFO (named pipe), not a regular file" in r.stderr
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match=r"a.jpg: is a FIFO"):
        i2b.list_images(folder)


def test_other_non_regular_entries(tmp_path):
    import os

    folder = tmp_path / "imgs"
    (folder / "dir.jpg").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"dir.jpg: is a directory, not a regular file"):
        i2b.list_images(folder)
    os.rmdir(folder / "dir.jpg")
    (folder / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    with pytest.raises(FileNotFoundError, match=r"dangling.jpg: dangling symbolic link"):
        i2b.list_images(folder)
    (folder / "dangling.jpg").unlink()
    (folder / "zero.jpg").symlink_to("/dev/zero")
    with pytest.raises(ValueError, match=r"zero.jpg: is a character device"):
        i2b.image2bin(folder, tmp_path / "out")
    (folder / "zero.jpg").unlink()
    (folder / "ok.jpg").symlink_to(tmp_path / "real.jpg")  # a link to a regular file is fine
    (tmp_path / "real.jpg").write_bytes(jpeg(3))
    assert i2b.list_images(folder) == [folder / "ok.jpg"]


def test_folder_image_with_a_bomb_header(tmp_path, monkeypatch):
    from PIL import ImageFile

    b = bytearray(jpeg(1))
    sof = b.index(b"\xff\xc0")
    struct.pack_into(">HH", b, sof + 5, 10000, 10000)
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "0.jpg").write_bytes(jpeg(0))
    (folder / "1.jpg").write_bytes(bytes(b))
    real = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load",
                        lambda self, *a: real(self, *a) if self.size == (112, 112) else pytest.fail("decoded a bomb"))
    with pytest.raises(ImageDecodeError, match=r"image 1 of .*imgs/1.jpg: is 10000x10000; expected 112x112"):
        i2b.image2bin(folder, tmp_path / "out")

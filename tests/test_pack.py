"""The packed file format: PackedWriter / read_packed / pack_folder / CLI, and agreement with the C++ reader."""
from __future__ import annotations

import os
import re
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from pymfn.inputs import pack
from pymfn.cli import main as cli_main


def header_fields(path: Path) -> tuple:
    return struct.unpack_from("<8sIIIIQQ8q", path.read_bytes())


def test_writer_roundtrip_and_layout(tmp_path):
    data = np.random.default_rng(0).standard_normal((5, 3, 4)).astype(np.float32)
    out = tmp_path / "sub" / "x.pack"
    with pack.PackedWriter(out, "float32", (3, 4), count=6) as w:
        w.append(data)          # a stack
        w.append(data[0])       # a single sample
    assert out.stat().st_size == 4096 + 6 * 48
    magic, version, hbytes, code, ndim, count, sbytes, *dims = header_fields(out)
    assert (magic, version, hbytes, code, ndim, count, sbytes) == (b"PYMFNPK\0", 1, 4096, 0, 2, 6, 48)
    assert dims == [3, 4, 0, 0, 0, 0, 0, 0]
    assert out.read_bytes()[104:4096] == bytes(4096 - 104)
    got = pack.read_packed(out)
    assert isinstance(got, np.memmap) and got.shape == (6, 3, 4) and not got.flags.writeable
    np.testing.assert_array_equal(got[:5], data)
    np.testing.assert_array_equal(got[5], data[0])
    assert pack.read_header(out) == pack.PackedHeader(1, 4096, "float32", (3, 4), 6, 48)
    assert pack.is_packed(out) and not pack.is_packed(tmp_path)
    assert [p.name for p in out.parent.iterdir()] == ["x.pack"]  # no temp files left
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("dtype,code", [("float32", 0), ("float16", 1), ("int8", 2), ("int32", 3), ("uint8", 4)])
def test_every_dtype_reads_back_in_cpp(core, tmp_path, dtype, code):
    data = (np.arange(2 * 3 * 5) % 100).astype(dtype).reshape(5, 2, 3)
    out = tmp_path / "x.pack"
    with pack.PackedWriter(out, dtype, (2, 3)) as w:
        w.append(data)
    assert header_fields(out)[3] == code
    ds = core.PackedDataset(out)
    assert (ds.dtype, ds.sample_shape, ds.sample_count) == (dtype, [2, 3], 5)
    b = ds.reader(5).next()
    assert b.data.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(b.data, data)


def test_writer_rejects_bad_samples_and_leaves_nothing(tmp_path):
    out = tmp_path / "x.pack"
    with pytest.raises(TypeError, match="float64 but the file holds float32"):
        with pack.PackedWriter(out, "float32", (4,)) as w:
            w.append(np.zeros(4))
    with pytest.raises(ValueError, match=r"shape \(2, 5\) do not match"):
        with pack.PackedWriter(out, "float32", (4,)) as w:
            w.append(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="exceed the declared count 2"):
        with pack.PackedWriter(out, "uint8", (4,), count=2) as w:
            w.append(np.zeros((3, 4), np.uint8))
    with pytest.raises(ValueError, match="1 samples appended but 2 were declared"):
        with pack.PackedWriter(out, "uint8", (4,), count=2) as w:
            w.append(np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="no samples"):
        with pack.PackedWriter(out, "uint8", (4,)):
            pass
    with pytest.raises(RuntimeError, match="boom"):
        with pack.PackedWriter(out, "uint8", (4,)) as w:
            w.append(np.zeros(4, np.uint8))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == [], "a failed write must leave neither the file nor a temp file"
    with pytest.raises(ValueError, match="cannot be packed"):
        pack.PackedWriter(out, "float64", (4,))
    with pytest.raises(ValueError, match="1..8"):
        pack.PackedWriter(out, "uint8", (1,) * 9)
    with pytest.raises(ValueError, match="non-positive"):
        pack.PackedWriter(out, "uint8", (0, 3))
    with pytest.raises(RuntimeError, match="outside"):
        pack.PackedWriter(out, "uint8", (4,)).append(np.zeros(4, np.uint8))


def test_failed_rewrite_keeps_the_old_file(tmp_path):
    out = tmp_path / "x.pack"
    with pack.PackedWriter(out, "uint8", (2,)) as w:
        w.append(np.array([1, 2], np.uint8))
    before = out.read_bytes()
    with pytest.raises(TypeError):
        with pack.PackedWriter(out, "uint8", (2,)) as w:
            w.append(np.array([1.0, 2.0]))
    assert out.read_bytes() == before


def _corrupt(raw: bytes, offset: int, fmt: str, value) -> bytes:
    buf = bytearray(raw)
    struct.pack_into(fmt, buf, offset, value)
    return bytes(buf)


CORRUPTIONS = {
    # name: (transform of the good file's bytes, message fragment shared by C++ and Python)
    "magic": (lambda r: b"PYMFNPX\0" + r[8:], "bad magic"),
    "version": (lambda r: _corrupt(r, 8, "<I", 2), "unsupported packed format version 2"),
    "header_bytes": (lambda r: _corrupt(r, 12, "<I", 100), "header_bytes 100"),
    "dtype": (lambda r: _corrupt(r, 16, "<I", 9), "unknown dtype code 9"),
    "ndim0": (lambda r: _corrupt(r, 20, "<I", 0), "ndim 0"),
    "ndim9": (lambda r: _corrupt(r, 20, "<I", 9), "ndim 9"),
    "neg_dim": (lambda r: _corrupt(r, 40, "<q", -3), "dims[0] = -3"),
    "extra_dim": (lambda r: _corrupt(r, 40 + 8 * 5, "<q", 7), "dims[5] = 7 past ndim"),
    "sample_bytes": (lambda r: _corrupt(r, 32, "<Q", 44), "header sample_bytes 44 disagrees"),
    "count": (lambda r: _corrupt(r, 24, "<Q", 4), "the file is truncated"),
    "truncated": (lambda r: r[:-1], "the file is truncated"),
    "trailing": (lambda r: r + b"\0", "trailing bytes"),
    "short": (lambda r: r[:50], "too short"),
    "empty": (lambda r: _corrupt(r, 24, "<Q", 0)[:4096], "packed file contains no samples"),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corrupt_files_rejected_identically(core, tmp_path, name):
    good = tmp_path / "good.pack"
    with pack.PackedWriter(good, "float32", (3, 4)) as w:
        w.append(np.zeros((3, 3, 4), np.float32))
    transform, fragment = CORRUPTIONS[name]
    bad = tmp_path / f"{name}.pack"
    bad.write_bytes(transform(good.read_bytes()))
    with pytest.raises(pack.PackedFormatError, match=re.escape(fragment)) as py_err:
        pack.read_packed(bad)
    assert py_err.value.path == str(bad)
    with pytest.raises(core.FormatError, match=re.escape(fragment)) as cpp_err:
        core.PackedDataset(bad)
    assert cpp_err.value.path == str(bad)
    assert str(py_err.value) == str(cpp_err.value), "Python and C++ must report the same problem"


def test_header_constants_match_cpp(core):
    assert core.PACKED_MAGIC == pack.MAGIC
    assert (core.PACKED_VERSION, core.PACKED_HEADER_BYTES, core.PACKED_MAX_DIMS) == (1, 4096, 8)


# ---------------------------------------------------------------- pack_folder

def _bins(folder: Path, n: int, shape=(2, 2, 3)) -> np.ndarray:
    folder.mkdir()
    data = np.random.default_rng(5).random((n, *shape), dtype=np.float32)
    for i in range(n):
        data[i].tofile(folder / f"{i}.bin")
    return data


def test_pack_folder_of_bins(core, tmp_path):
    data = _bins(tmp_path / "bins", 12)
    (tmp_path / "bins" / ".DS_Store.bin").write_bytes(b"junk")
    out = pack.pack_folder(tmp_path / "bins", tmp_path / "nat.pack", sample_shape=(2, 2, 3),
                           manifest=tmp_path / "nat.txt", progress=False)
    np.testing.assert_array_equal(pack.read_packed(out), data)
    assert (tmp_path / "nat.txt").read_text().split() == [f"{i}.bin" for i in range(12)]
    lex = pack.pack_folder(tmp_path / "bins", tmp_path / "lex.pack", sample_shape=(2, 2, 3),
                           order="lexicographic", progress=False)
    order = [int(n[:-4]) for n in sorted(f"{i}.bin" for i in range(12))]
    np.testing.assert_array_equal(pack.read_packed(lex), data[order])
    # Same order as the native folder reader.
    folder = core.FolderDataset(tmp_path / "bins", 48, order="lexicographic")
    assert [Path(f).name for f in folder.files()] == [p.name for p in pack.list_bins(tmp_path / "bins", "lexicographic")]
    # Byte-identical to what the native folder reader serves.
    b = core.FolderDataset(tmp_path / "bins", 48, sample_shape=[2, 2, 3]).reader(12).next()
    assert b.data.tobytes() == pack.read_packed(out).tobytes()


def test_pack_folder_errors(tmp_path):
    _bins(tmp_path / "bins", 3)
    with pytest.raises(ValueError, match=r"0.bin: file is 48 bytes but a float32 \(4, 4, 3\) sample is 192 bytes"):
        pack.pack_folder(tmp_path / "bins", tmp_path / "x.pack", sample_shape=(4, 4, 3), progress=False)
    assert not (tmp_path / "x.pack").exists()
    with pytest.raises(FileNotFoundError, match="no such directory"):
        pack.pack_folder(tmp_path / "missing", tmp_path / "x.pack", progress=False)
    (tmp_path / "bins" / "9.bin").mkdir()
    with pytest.raises(ValueError, match="9.bin: is a directory, not a regular file"):
        pack.pack_folder(tmp_path / "bins", tmp_path / "x.pack", sample_shape=(2, 2, 3), progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="contains no images"):
        pack.pack_folder(tmp_path / "empty", tmp_path / "x.pack", progress=False)


def _png(path: Path, pixels: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def test_pack_images(tmp_path):
    rng = np.random.default_rng(7)
    imgs = rng.integers(0, 256, (3, 4, 5, 3), dtype=np.uint8)
    _png(tmp_path / "img" / "b" / "face_10.png", imgs[2])
    _png(tmp_path / "img" / "b" / "face_2.png", imgs[1])
    _png(tmp_path / "img" / "a" / "face_1.png", imgs[0])
    f32 = pack.pack_folder(tmp_path / "img", tmp_path / "f.pack", sample_shape=(4, 5, 3), progress=False)
    want = (imgs.astype(np.float32) - 127.5) * 0.0078125
    np.testing.assert_allclose(pack.read_packed(f32), want, rtol=0, atol=0)
    bgr = pack.pack_folder(tmp_path / "img", tmp_path / "bgr.pack", dtype="uint8", sample_shape=(4, 5, 3),
                           channels="bgr", progress=False)
    np.testing.assert_array_equal(pack.read_packed(bgr), imgs[..., ::-1])
    with pytest.raises(ValueError, match=r"image is 5x4 \(WxH\) but the sample shape is \(112, 112, 3\)"):
        pack.pack_folder(tmp_path / "img", tmp_path / "x.pack", sample_shape=(112, 112, 3), progress=False)
    with pytest.raises(ValueError, match="float32 \\(normalised\\) or uint8"):
        pack.pack_folder(tmp_path / "img", tmp_path / "x.pack", dtype="int32", sample_shape=(4, 5, 3), progress=False)


def test_pack_real_lfw_images(core, lfw_train_dir, tmp_path):
    person = sorted(p for p in lfw_train_dir.iterdir() if p.is_dir())[0]
    src = tmp_path / person.name
    shutil.copytree(person, src)
    out = pack.pack_folder(src, tmp_path / "p.pack", progress=False)
    arr = pack.read_packed(out)
    assert arr.shape[1:] == (112, 112, 3) and len(arr) == len(list(src.glob("*.jpg")))
    assert -1.0 <= arr.min() < arr.max() <= 1.0
    assert arr.std() > 0.1, "real faces must not decode to a flat image"
    ds = core.PackedDataset(out, dtype="float32", sample_shape=[112, 112, 3])
    np.testing.assert_array_equal(ds.reader(len(arr)).next().data, arr)


# ---------------------------------------------------------------- CLI

def test_cli(tmp_path, capsys):
    from pymfn.__main__ import main as pymfn_main

    data = _bins(tmp_path / "bins", 4)
    rc = cli_main(["pack", "--from", str(tmp_path / "bins"), "--out", str(tmp_path / "x.pack"), "--shape", "2,2,3", "--quiet"])
    assert rc == 0
    assert "4 samples of float32 [2, 2, 3]" in capsys.readouterr().out
    np.testing.assert_array_equal(pack.read_packed(tmp_path / "x.pack"), data)
    rc = pymfn_main(["pack", "--from", str(tmp_path / "bins"), "--out", str(tmp_path / "y.pack"), "--quiet"])
    assert rc == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pymfn pack: error: ")
    assert "0.bin: file is 48 bytes" in err and "150528 bytes" in err
    with pytest.raises(SystemExit) as e:
        cli_main(["pack", "--help"])
    assert e.value.code == 0
    assert "--order" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        cli_main(["pack", "--from", "x", "--out", "y", "--shape", "2,0"])
    assert e.value.code == 2


def test_cli_via_dispatcher(tmp_path):
    import subprocess
    import sys

    _bins(tmp_path / "bins", 2)
    r = subprocess.run([sys.executable, "-m", "pymfn", "pack", "--from", str(tmp_path / "bins"), "--out",
                        str(tmp_path / "x.pack"), "--shape", "2,2,3", "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert pack.read_header(tmp_path / "x.pack").count == 2


# ---------------------------------------------------------------- hostile folders

def test_non_regular_entries_are_errors_not_reads_or_skips(tmp_path):
    """A FIFO named 0.bin or x.jpg must not block pack (bins) nor be silently skipped (images)."""
    _bins(tmp_path / "bins", 2)
    os.mkfifo(tmp_path / "bins" / "2.bin")
    with pytest.raises(ValueError, match=r"2.bin: is a FIFO \(named pipe\), not a regular file"):
        pack.pack_folder(tmp_path / "bins", tmp_path / "x.pack", sample_shape=(2, 2, 3), progress=False)
    img = tmp_path / "img"
    _png(img / "a.png", np.zeros((4, 5, 3), np.uint8))
    os.mkfifo(img / "b.png")
    with pytest.raises(ValueError, match=r"b.png: is a FIFO"):  # before: skipped, one sample silently missing
        pack.pack_folder(img, tmp_path / "x.pack", sample_shape=(4, 5, 3), progress=False)
    assert not (tmp_path / "x.pack").exists()


def test_image_size_checked_from_the_header(tmp_path, monkeypatch):
    from PIL import ImageFile

    img = tmp_path / "img"
    _png(img / "a.png", np.zeros((4, 5, 3), np.uint8))
    raw = bytearray((img / "a.png").read_bytes())

    def claim(width: int, height: int) -> bytes:  # rewrite the PNG IHDR size, with its CRC
        struct.pack_into(">II", raw, 16, width, height)
        struct.pack_into(">I", raw, 29, zlib.crc32(bytes(raw[12:29])))
        return bytes(raw)

    (img / "b.png").write_bytes(claim(30000, 30000))  # a 900-megapixel claim
    real = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load",
                        lambda self, *a: real(self, *a) if self.size == (5, 4) else pytest.fail("decoded a bomb"))
    with pytest.raises(ValueError, match=r"b.png: header claims a far larger image than 5x4"):
        pack.pack_folder(img, tmp_path / "x.pack", sample_shape=(4, 5, 3), progress=False)
    (img / "b.png").write_bytes(claim(6000, 6000))
    with pytest.raises(ValueError, match=r"b.png: image is 6000x6000 \(WxH\) but the sample shape is \(4, 5, 3\)"):
        pack.pack_folder(img, tmp_path / "x.pack", sample_shape=(4, 5, 3), progress=False)


def test_reader_never_blocks_on_non_regular_files(tmp_path):
    """read_header/is_packed on a FIFO blocked forever in open(); a directory raised a bare IsADirectoryError.
    Run in a child with a timeout so that a regression fails instead of hanging the suite."""
    import subprocess
    import sys

    os.mkfifo(tmp_path / "fifo.pack")
    (tmp_path / "dir.pack").mkdir()
    script = (
        "import sys\n"
        "from pymfn.inputs import pack\n"
        "for p in sys.argv[1:]:\n"
        "    assert not pack.is_packed(p), p\n"
        "    try:\n"
        "        pack.read_header(p)\n"
        "    except pack.PackedFormatError as e:\n"
        "        print(e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "fifo.pack"), str(tmp_path / "dir.pack"),
                           "/dev/null"], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"{tmp_path / 'fifo.pack'}: is a FIFO (named pipe), not a regular file (expected a packed sample file)",
        f"{tmp_path / 'dir.pack'}: is a directory, not a regular file (expected a packed sample file)",
        "/dev/null: is a character device, not a regular file (expected a packed sample file)"]
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'none.pack'}: cannot open"):
        pack.read_header(tmp_path / "none.pack")
    assert not pack.is_packed(tmp_path / "none.pack")

"""lfw.bin reading (Python 2 and 3 pickles, every item type) and JPEG decoding, with the error cases."""
from __future__ import annotations

import io
import os
import pickle
import re
import struct
import time

import numpy as np
import pytest
from PIL import Image

from pymfn import config
from pymfn.inputs import lfw_bin as lfw


def jpeg(seed: int, size: int = 112, mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
    img = Image.fromarray(base).resize((size, size), Image.BILINEAR).convert(mode)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def pil_decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def write_bin(path, bins, issame, protocol=pickle.HIGHEST_PROTOCOL):
    with open(path, "wb") as f:
        pickle.dump((bins, issame), f, protocol=protocol)
    return path


def py2_pickle(bins: list[bytes], issame: list[bool]) -> bytes:
    """What Python 2's cPickle.dump((bins, issame), f, 2) writes: str items as (SHORT_)BINSTRING."""
    out = bytearray(b"\x80\x02]q\x00(")
    for b in bins:
        out += (b"U" + bytes([len(b)]) if len(b) < 256 else b"T" + struct.pack("<i", len(b))) + b
    out += b"e]q\x01("
    out += b"".join(b"\x88" if s else b"\x89" for s in issame)
    out += b"e\x86q\x02."
    return bytes(out)


@pytest.fixture(scope="module")
def small():
    bins = [jpeg(i) for i in range(8)]
    return bins, np.array([True, False, True, False])


@pytest.mark.parametrize("protocol", [0, 2, 3, 4, 5])
def test_python3_pickles_all_protocols(tmp_path, small, protocol):
    bins, issame = small
    p = write_bin(tmp_path / "a.bin", bins, issame.tolist(), protocol)
    got, same = lfw.read_lfw_bin(p)
    assert got == bins and same.dtype == np.bool_ and same.tolist() == issame.tolist()


def test_python2_pickle_with_str_items(tmp_path, small):
    bins, issame = small
    p = tmp_path / "py2.bin"
    p.write_bytes(py2_pickle(bins + [b"x" * 10, b"y" * 300], issame.tolist() + [True]))
    got, same = lfw.read_lfw_bin(p)
    assert got[:8] == bins and got[8] == b"x" * 10 and got[9] == b"y" * 300
    assert same.tolist() == issame.tolist() + [True]


def test_item_types_bytearray_str_numpy(tmp_path, small):
    bins, issame = small
    items = [bytearray(bins[0]), bins[1].decode("latin-1"), np.frombuffer(bins[2], np.uint8),
             np.array(bins[3]), bins[4], bins[5], bins[6], bins[7]]
    p = write_bin(tmp_path / "mixed.bin", items, np.asarray(issame), 2)
    got, same = lfw.read_lfw_bin(p)
    assert got == bins and same.tolist() == issame.tolist()


def test_old_numpy_module_names_accepted(tmp_path, small):
    # numpy < 2 pickles reference numpy.core.multiarray; numpy 2 writes numpy._core
    bins, issame = small
    raw = pickle.dumps((bins, np.asarray(issame)), protocol=2)
    if b"numpy._core.multiarray" in raw:
        raw = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in raw
    (tmp_path / "old.bin").write_bytes(raw)
    assert lfw.read_lfw_bin(tmp_path / "old.bin")[1].tolist() == issame.tolist()


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickle_cannot_run_code(tmp_path):
    p = tmp_path / "evil.bin"
    p.write_bytes(pickle.dumps(([_Evil(), b"x"], [True])))
    with pytest.raises(lfw.LfwFormatError, match=r"evil.bin.*refusing to load global"):
        lfw.read_lfw_bin(p)


def test_corrupt_and_malformed_files(tmp_path, small):
    bins, issame = small
    good = pickle.dumps((bins, issame.tolist()))
    cases = {
        "truncated.bin": good[: len(good) // 2],
        "garbage.bin": b"\x00not a pickle at all",
        "empty.bin": b"",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(lfw.LfwFormatError, match=rf"{name}: not a valid lfw.bin pickle") as ei:
            lfw.read_lfw_bin(tmp_path / name)
        assert ei.value.path == str(tmp_path / name)
    (tmp_path / "dict.bin").write_bytes(pickle.dumps({"bins": bins}))
    with pytest.raises(lfw.LfwFormatError, match=r"dict.bin: pickle holds dict; expected a \(bins, issame\) pair"):
        lfw.read_lfw_bin(tmp_path / "dict.bin")
    rng = np.random.default_rng(0)
    for k in range(30):  # random garbage behind a pickle header never escapes as a raw exception
        (tmp_path / "fuzz.bin").write_bytes(b"\x80\x04" + rng.integers(0, 256, int(rng.integers(1, 200)), np.uint8).tobytes())
        with pytest.raises(lfw.LfwFormatError, match="fuzz.bin"):
            lfw.read_lfw_bin(tmp_path / "fuzz.bin")
    write_bin(tmp_path / "badsame.bin", bins, ["yes", "no", "yes", "no"])
    with pytest.raises(lfw.LfwFormatError, match=r"badsame.bin: issame: label 0 is 'yes'; expected booleans or 0/1"):
        lfw.read_lfw_bin(tmp_path / "badsame.bin")
    write_bin(tmp_path / "baditem.bin", bins[:7] + [12345], issame.tolist())
    with pytest.raises(lfw.LfwFormatError, match=r"baditem.bin: bins\[7\] is int; expected JPEG bytes"):
        lfw.read_lfw_bin(tmp_path / "baditem.bin")


def test_wrong_pair_count(tmp_path, small):
    bins, issame = small
    write_bin(tmp_path / "odd.bin", bins[:7], issame.tolist())
    with pytest.raises(lfw.LfwFormatError, match=r"odd.bin: wrong pair count: 7 images for 4 pairs"):
        lfw.read_lfw_bin(tmp_path / "odd.bin")
    write_bin(tmp_path / "none.bin", [], [])
    with pytest.raises(lfw.LfwFormatError, match=r"issame is empty"):
        lfw.read_lfw_bin(tmp_path / "none.bin")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothere.bin: lfw.bin file not found"):
        lfw.read_lfw_bin(tmp_path / "nothere.bin")
    with pytest.raises(FileNotFoundError, match=r"nothere.bin"):
        lfw.load_lfw(tmp_path / "nothere.bin")
    with pytest.raises(lfw.LfwFormatError, match=r"is a directory, not a regular file"):
        lfw.read_lfw_bin(tmp_path)


def test_decode_matches_pil_and_bgr_swaps(small):
    bins, _ = small
    rgb = lfw.decode_images(bins)
    assert rgb.shape == (8, 112, 112, 3) and rgb.dtype == np.uint8
    for i, b in enumerate(bins):
        assert np.array_equal(rgb[i], pil_decode(b))
    bgr = lfw.decode_images(bins, color="BGR")
    assert np.array_equal(bgr, rgb[..., ::-1]) and bgr.flags.c_contiguous
    # thread pool and single thread agree
    many = bins * 40
    assert np.array_equal(lfw.decode_images(many, workers=1), lfw.decode_images(many, workers=2))
    with pytest.raises(ValueError, match=r"color='hsv'"):
        lfw.decode_images(bins, color="hsv")


def test_mirror_flips_width():
    x = np.arange(2 * 3 * 4 * 3, dtype=np.uint8).reshape(2, 3, 4, 3)
    m = lfw.mirror(x)
    assert np.array_equal(m[:, :, 0], x[:, :, -1]) and np.array_equal(m[:, 0], x[:, 0, ::-1])
    assert m.flags.c_contiguous
    with pytest.raises(ValueError, match="NHWC"):
        lfw.mirror(x[0])


def test_grayscale_becomes_three_channels():
    g = jpeg(3, mode="L")
    img = lfw.decode_images([g])[0]
    assert img.shape == (112, 112, 3)
    assert np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2])


def test_bad_jpeg_at_index_k(tmp_path, small):
    bins, issame = small
    broken = list(bins)
    broken[5] = b"\xff\xd8\xff\xe0 definitely not a JPEG"
    p = write_bin(tmp_path / "broken.bin", broken, issame.tolist())
    with pytest.raises(lfw.ImageDecodeError, match=r"image 5 of .*broken.bin: cannot decode") as ei:
        lfw.load_lfw(p, cache=False)
    assert ei.value.index == 5 and ei.value.source == str(p)
    broken[5] = jpeg(5, size=96)
    with pytest.raises(lfw.ImageDecodeError, match=r"image 5: is 96x96; expected 112x112"):
        lfw.decode_images(broken)
    assert lfw.decode_images(broken[5:6], size=96).shape == (1, 96, 96, 3)


def test_load_lfw_cache(tmp_path, small):
    bins, issame = small
    p = write_bin(tmp_path / "c.bin", bins, issame.tolist())
    lfw.clear_cache()
    a, s = lfw.load_lfw(p)
    b, s2 = lfw.load_lfw(p)
    assert a is b and s is s2 and not a.flags.writeable
    c, _ = lfw.load_lfw(p, color="bgr")
    assert np.array_equal(c, a[..., ::-1])
    # a rewritten file is re-read
    write_bin(p, bins[::-1], issame.tolist()[::-1])
    os.utime(p, ns=(time.time_ns(), time.time_ns() + 10**9))
    d, s3 = lfw.load_lfw(p)
    assert np.array_equal(d, a[::-1]) and s3.tolist() == issame.tolist()[::-1]
    e, _ = lfw.load_lfw(p, cache=False)
    assert e.flags.writeable and e is not d
    lfw.clear_cache()


# ------------------------------------------------------------------------------------ shared data

def test_real_lfw_bin_matches_pairs_txt(lfw_bin):
    bins, issame = lfw.read_lfw_bin(lfw_bin)
    assert len(bins) == 12000 and issame.shape == (6000,) and int(issame.sum()) == 3000
    pairs = config.lfw_pairs_path()
    if pairs.exists():
        lines = pairs.read_text().split("\n")
        assert lines[0].split() == ["10", "300"]
        expected = [len(line.split()) == 3 for line in lines[1:] if line.strip()]
        assert issame.tolist() == expected


def test_real_lfw_decodes_fast(lfw_bin):
    lfw.clear_cache()
    t0 = time.perf_counter()
    images, issame = lfw.load_lfw(lfw_bin)
    dt = time.perf_counter() - t0
    assert images.shape == (12000, 112, 112, 3) and issame.shape == (6000,)
    # spot-check decoding against plain PIL
    bins, _ = lfw.read_lfw_bin(lfw_bin)
    for i in (0, 1, 5999, 11999):
        assert np.array_equal(images[i], pil_decode(bins[i]))
    print(f"decoded 12000 LFW images in {dt:.2f} s")
    lfw.clear_cache()


# ------------------------------------------------------------------------------ hostile inputs

def jpeg_claiming(width: int, height: int) -> bytes:
    """A valid 112x112 JPEG whose SOF header claims another size (what a decompression bomb looks like)."""
    b = bytearray(jpeg(1))
    sof = b.index(b"\xff\xc0")
    struct.pack_into(">HH", b, sof + 5, height, width)
    return bytes(b)


@pytest.fixture()
def no_pixel_decoding(monkeypatch):
    """Fail if Pillow decodes the pixels of an image that is not 112x112: the size check must use the header."""
    from PIL import ImageFile

    real = ImageFile.ImageFile.load

    def load_only_faces(self, *a, **k):
        if self.size != (112, 112):
            raise AssertionError(f"pixels of a {self.size} image were decoded")
        return real(self, *a, **k)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load_only_faces)


def test_oversized_header_rejected_before_decoding(tmp_path, small, no_pixel_decoding):
    """A 20000x20000 header gave a raw DecompressionBombError; 10000x10000 was decoded (1 GB RSS) before the
    112x112 check. Both must be named errors found from the header."""
    bins, issame = small
    for side, fragment in ((10000, "is 10000x10000; expected 112x112"),
                           (20000, "header claims a far larger image than 112x112")):
        broken = list(bins)
        broken[3] = jpeg_claiming(side, side)
        p = write_bin(tmp_path / f"bomb{side}.bin", broken, issame.tolist())
        with pytest.raises(lfw.ImageDecodeError, match=rf"image 3 of .*bomb{side}.bin: {fragment}") as ei:
            lfw.load_lfw(p, cache=False)
        assert ei.value.index == 3


def test_no_decompression_bomb_warning_reaches_the_user(small, recwarn):
    with pytest.raises(lfw.ImageDecodeError):
        lfw.decode_images([jpeg_claiming(10000, 10000)] * 3)
    assert not [w for w in recwarn if "DecompressionBomb" in type(w.message).__name__]


# Pickles that are valid opcodes but ask the loader for far more memory than the file holds. The old loader
# (C unpickler, builtins passed through) allocated: bytearray(2**34) is 16 GB of zeroed memory, and a memo
# index of 2**28 made the C unpickler write a 4 GB table.
HOSTILE_PICKLES = {
    "bytearray_of_a_size": (b"\x80\x02c__builtin__\nbytearray\nJ\x00\x00\x00\x40\x85R.",
                            "bytearray() with arguments an lfw.bin pickle never has"),
    "bytes_of_a_size": (b"\x80\x02c__builtin__\nbytes\nJ\x00\x00\x00\x40\x85R.",
                        "bytes() with arguments an lfw.bin pickle never has"),
    "huge_memo_index": (b"\x80\x02K\x01r\x00\x00\x00\x10.", "pickle holds int"),
    "binbytes8_claims_a_terabyte": (b"\x80\x04\x8e" + struct.pack("<Q", 1 << 40) + b"abc", "not a valid lfw.bin pickle"),
    "ndarray_called_directly": (b"\x80\x02cnumpy\nndarray\nJ\x00\x00\x00\x40\x85\x85R.",
                                "calls numpy.ndarray directly"),
    "reconstruct_huge_shape": (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
                               b"J\x00\x00\x00\x40\x85C\x01b\x87R.", "more than the"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_PICKLES))
def test_hostile_pickles_are_refused_without_allocating(tmp_path, name):
    import tracemalloc

    data, fragment = HOSTILE_PICKLES[name]
    p = tmp_path / f"{name}.bin"
    p.write_bytes(data)
    tracemalloc.start()
    try:
        with pytest.raises(lfw.LfwFormatError, match=rf"{name}.bin: .*{re.escape(fragment)}"):
            lfw.read_lfw_bin(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20


def test_structures_that_expand_are_refused(tmp_path, small):
    bins, issame = small
    # issame as a list of lists: np.asarray would build a [k, k] matrix from a k-sized pickle
    row = [True] * 3
    write_bin(tmp_path / "nested.bin", bins[:6], [row, row, row])
    with pytest.raises(lfw.LfwFormatError, match=r"nested.bin: issame: label 0 is \[True, True, True\]"):
        lfw.read_lfw_bin(tmp_path / "nested.bin")
    # the same bytearray referenced 8 times: 8x the file's size once converted
    big = bytearray(jpeg(0) * 20)
    write_bin(tmp_path / "repeat.bin", [big] * 8, issame.tolist())
    with pytest.raises(lfw.LfwFormatError, match=r"repeat.bin: bins describe \d+ bytes of images but the file is"):
        lfw.read_lfw_bin(tmp_path / "repeat.bin")
    # a 0-d array as bins
    write_bin(tmp_path / "scalar.bin", np.array(b"x"), issame.tolist(), 2)
    with pytest.raises(lfw.LfwFormatError, match=r"scalar.bin: bins is ndarray"):
        lfw.read_lfw_bin(tmp_path / "scalar.bin")


def test_protocol5_numpy_arrays_still_load(tmp_path, small):
    bins, issame = small
    items = [np.frombuffer(b, np.uint8) for b in bins]
    p = write_bin(tmp_path / "p5.bin", items, np.asarray(issame), 5)
    got, same = lfw.read_lfw_bin(p)
    assert got == bins and same.tolist() == issame.tolist()


def test_fifo_and_device_are_not_read(tmp_path):
    os.mkfifo(tmp_path / "fifo.bin")
    with pytest.raises(lfw.LfwFormatError, match=r"fifo.bin: is a FIFO \(named pipe\), not a regular file"):
        lfw.read_lfw_bin(tmp_path / "fifo.bin")
    with pytest.raises(lfw.LfwFormatError, match=r"/dev/zero: is a character device"):
        lfw.read_lfw_bin("/dev/zero")

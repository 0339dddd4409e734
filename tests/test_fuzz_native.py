"""Fuzz/property tests of the native parsers of untrusted bytes: the packed header (C++ PackedDataset and
pymfn.inputs.pack's reader), the om header and emulator payload (C++ read_om_header, the emulator's meta parser,
pymfn.export.om, and AclEngine loading on the emulator), and folders of .bin files (FolderDataset).

The property: every input either opens (and then reads back exactly what the file holds) or raises the
typed error naming the file; never a crash, a hang, another exception type or an allocation beyond
the file. The C++ and Python readers of one format must also agree on which inputs are valid.

Budget: PYMFN_FUZZ_EXAMPLES inputs per test (defaults below keep the normal run to seconds),
PYMFN_FUZZ_SEED the first seed; a failure names its seed and mutation. A long campaign, e.g.:

    PYMFN_FUZZ_EXAMPLES=100000 PYMFN_FUZZ_SEED=1000 .venv/bin/python -m pytest -q -p no:cacheprovider \\
        tests/test_fuzz_native.py

(under the sanitizer build too: .ci/sanitize passes extra pytest arguments through, see README).
"""
from __future__ import annotations

import gc
import os
import random
import struct
import threading
from pathlib import Path
from collections.abc import Callable

import numpy as np
import pytest

import _fuzz
from pymfn.export import om
from pymfn.inputs import pack
from pymfn.inputs.datasets import open_dataset

PACKED_FIELDS = {  # name -> (offset, struct format), csrc/core/packed_format.h
    "version": (8, "<I"), "header_bytes": (12, "<I"), "dtype": (16, "<I"), "ndim": (20, "<I"),
    "count": (24, "<Q"), "sample_bytes": (32, "<Q"), **{f"dims[{i}]": (40 + 8 * i, "<q") for i in range(8)},
}
SPECIAL_U64 = [0, 1, 2, 3, 7, 104, 4095, 4096, 4097, 8192, 2**31, 2**32 - 1, 2**32, 2**62, 2**63 - 1, 2**63,
               2**64 - 4096, 2**64 - 1]


def _accepts(fn: Callable[[], object], errors: tuple[type[BaseException], ...], path: Path, what: str):
    """Run a parser: its result, or None when it raised one of `errors` naming `path` (else the test fails)."""
    try:
        return fn()
    except errors as exc:
        assert str(path) in str(exc), f"{what}: the error does not name the file: {exc!r}"
        assert getattr(exc, "path", str(path)) == str(path), f"{what}: .path is {exc.path!r}"
        return None


def _finishes(fn: Callable[[], object], seconds: float, fifo: Path | None = None):
    """fn() in a thread; fails the test if it has not returned after `seconds` (a blocked FIFO open is
    released by opening the FIFO's write end, so the test can report it)."""
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        if fifo is not None:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
            t.join(5)
        pytest.fail(f"{fn} did not return within {seconds} s (blocked)")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("value")


# ---------------------------------------------------------------------------------------- packed header

def _packed_base(tmp_path: Path) -> bytes:
    data = np.arange(3 * 2 * 3, dtype=np.float32).reshape(3, 2, 3)
    path = tmp_path / "base.pack"
    with pack.PackedWriter(path, "float32", (2, 3)) as w:
        w.append(data)
    return path.read_bytes()


def _structured_packed(base: bytes, rng: random.Random) -> tuple[str, bytes]:
    """Set one or two header fields to boundary values, sometimes keeping the file consistent with them."""
    out = bytearray(base)
    what = []
    for _ in range(rng.choice((1, 1, 2))):
        name = rng.choice(list(PACKED_FIELDS))
        off, fmt = PACKED_FIELDS[name]
        bits = struct.calcsize(fmt) * 8
        value = rng.choice(SPECIAL_U64 + [rng.randrange(2**bits)]) % 2**bits
        if fmt == "<q" and value >= 2**63:
            value -= 2**64
        struct.pack_into(fmt, out, off, value)
        what.append(f"{name}={value}")
    if rng.random() < 0.3:  # resize the file to what the (new) header describes, when that is small
        hb, count, sb = (struct.unpack_from(PACKED_FIELDS[k][1], out, PACKED_FIELDS[k][0])[0]
                         for k in ("header_bytes", "count", "sample_bytes"))
        want = hb + count * sb
        if 0 < want <= 16 << 10:
            out = out[:want] + bytes(max(0, want - len(out)))
            what.append(f"resized to {want}")
    return ", ".join(what), bytes(out)


def _packed_inputs(base: bytes, n: int):
    yield from _fuzz.mutations(base, n // 2, hot=[(0, 104), (4096 - 8, 4096 + 8)])
    first = _fuzz.seed()
    for i in range(n - n // 2):
        rng = random.Random(f"packed-{first + i}")
        what, data = _structured_packed(base, rng)
        yield f"structured seed {first + i}: {what}", data


def test_packed_header_fuzz(core, tmp_path):
    base = _packed_base(tmp_path)
    path = tmp_path / "fuzz.pack"
    opened = 0
    for what, data in _packed_inputs(base, _fuzz.examples(300)):
        path.write_bytes(data)
        ds = _accepts(lambda: core.PackedDataset(path), (core.FormatError, core.InputError), path, what)
        mm = _accepts(lambda: np.array(pack.read_packed(path)), (pack.PackedFormatError,), path, what)
        assert (ds is None) == (mm is None), f"{what}: C++ {'accepts' if ds else 'rejects'} what Python " \
                                             f"{'accepts' if mm is not None else 'rejects'}"
        if ds is None:
            continue
        opened += 1
        # Opened: every batch geometry reads back exactly the samples Python maps, padding included.
        for batch in (1, 2, ds.sample_count + 1):
            rows = [b.valid_data.copy() for b in ds.reader(batch, 1)]
            np.testing.assert_array_equal(np.concatenate(rows), mm, err_msg=what)
    assert opened > 0, "no mutation produced a valid file: the structured mutations lost their resize step"


def test_packed_and_om_readers_do_not_block_on_a_fifo(core, tmp_path):
    fifo = tmp_path / "model.om"
    os.mkfifo(fifo)
    with pytest.raises(core.InputError, match="not a regular file") as ei:
        _finishes(lambda: core.PackedDataset(fifo), 10, fifo)
    assert ei.value.path == str(fifo)
    with pytest.raises(core.InputError, match="not a regular file"):
        _finishes(lambda: open_dataset(fifo), 10, fifo)
    with pytest.raises(om.OmFormatError, match="not a regular file"):
        _finishes(lambda: om.read_om_header(fifo), 10, fifo)
    if hasattr(core, "AclEngine"):
        with pytest.raises(core.InputError, match="not a regular file"):
            _finishes(lambda: core._read_om_header(str(fifo)), 10, fifo)
        with pytest.raises(core.InputError, match="not a regular file"):
            _finishes(lambda: core.AclEngine(str(fifo)), 10, fifo)


# ---------------------------------------------------------------------------------------- om header

@pytest.fixture(scope="module")
def emulator_om(tmp_path_factory) -> tuple[bytes, str]:
    """A valid emulator om of a tiny IR (x * 2 over [1, 4, 4, 3]) and its meta text."""
    import openvino as ov
    import openvino.opset13 as ops

    d = tmp_path_factory.mktemp("om")
    x = ops.parameter([1, 4, 4, 3], np.float32, name="Placeholder")
    y = ops.multiply(x, ops.constant(np.full((1, 1, 1, 3), 2.0, np.float32)))
    y.set_friendly_name("embeddings")
    ov.save_model(ov.Model([y], [x], "tiny"), str(d / "t.xml"), compress_to_fp16=False)
    meta = om.EmulatorMeta(inputs=[om.EmulatorTensor("Placeholder", "float32", [1, 4, 4, 3], "NHWC")],
                           outputs=[om.EmulatorTensor("embeddings", "float32", [1, 4, 4, 3], "ND")])
    path = d / "tiny.om"
    om.write_emulator_om(path, meta, (d / "t.xml").read_bytes(), (d / "t.bin").read_bytes(), name="tiny")
    return path.read_bytes(), meta.to_text()


def _om_inputs(base: bytes, n: int):
    meta_len = struct.unpack_from("<Q", base, 256 + 8)[0]
    yield from _fuzz.mutations(base, n, hot=[(0, 256), (256, 288), (288, 288 + meta_len)])


def _needs_acl(core):
    """The om parsers live in the ACL part of the core (with the _read_om_header/_parse_emulator_meta hooks)."""
    if not hasattr(core, "AclEngine"):
        pytest.skip(f"this build has no ACL engine (build_info()['acl'] = {core.build_info()['acl']!r})")


def test_om_header_fuzz_cpp_and_python_agree(core, tmp_path, emulator_om):
    _needs_acl(core)
    base, _ = emulator_om
    path = tmp_path / "fuzz.om"
    for what, data in _om_inputs(base, _fuzz.examples(300)):
        path.write_bytes(data)
        cpp = _accepts(lambda: core._read_om_header(str(path)), (core.FormatError, core.InputError), path, what)
        py = _accepts(lambda: om.read_om_header(path), (om.OmFormatError,), path, what)
        assert (cpp is None) == (py is None), f"{what}: C++ and Python disagree ({cpp!r} vs {py!r})"
        if cpp is not None:
            assert (cpp["length"], cpp["is_emulator"]) == (py.length, py.is_emulator), what
        # The whole emulator payload through pymfn.export.om: parsed, or OmFormatError naming the file.
        _accepts(lambda: om.read_emulator_om(path), (om.OmFormatError,), path, what)


def _meta_inputs(text: str, n: int):
    """Token-level damage to meta text (boundary numbers, wrong words, lines dropped or doubled), plus
    byte-level mutations of it."""
    words = ["-1", "0", "1", "+2", "2048", "2049", "999999999999999999", "9999999999999999999", "", "-", "1,",
             "1,,2", "float64", "int64", "uint8", "NCHW", "ND", "f16", "f8", "input", "output", "dynamic_batch",
             "pymfn-emu-om", "2", "\t3", "x" * 130, ",".join(["2"] * 9), ",".join(["65536"] * 4)]
    first = _fuzz.seed()
    for i in range(n // 2):
        rng = random.Random(f"meta-{first + i}")
        lines = text.splitlines()
        what = []
        for _ in range(rng.randrange(1, 4)):
            k = rng.randrange(len(lines))
            op = rng.random()
            if op < 0.6:
                tok = lines[k].split(" ")
                j = rng.randrange(len(tok))
                if rng.random() < 0.5 and "," in tok[j]:
                    parts = tok[j].split(",")
                    parts[rng.randrange(len(parts))] = rng.choice(words)
                    tok[j] = ",".join(parts)
                else:
                    tok[j] = rng.choice(words)
                lines[k] = " ".join(tok)
                what.append(f"line {k + 1} -> {lines[k]!r}")
            elif op < 0.8:
                what.append(f"drop line {k + 1}")
                del lines[k]
                if not lines:
                    break
            else:
                lines.insert(k, lines[k])
                what.append(f"double line {k + 1}")
        if rng.random() < 0.3:
            lines.append(f"dynamic_batch {rng.choice(['1,2', '1,2,4,8', '0,1', '2048,1', '1'])}")
            what.append(f"+ {lines[-1]!r}")
        yield f"meta seed {first + i}: {'; '.join(what)}", "\n".join(lines) + "\n"
    for what, data in _fuzz.mutations(text.encode(), n - n // 2):
        yield what, data.decode("utf-8", errors="replace")


def test_emulator_meta_fuzz_cpp_and_python_agree(core, emulator_om):
    _needs_acl(core)
    _, text = emulator_om
    dyn = text.replace(" 1,4,4,3", " -1,4,4,3") + "dynamic_batch 1,2,4\n"
    for source in (text, dyn):
        for what, mutated in _meta_inputs(source, _fuzz.examples(300) // 2):
            try:
                cpp = core._parse_emulator_meta(mutated)
            except core.InvalidArgument:
                cpp = None
            try:
                py = om.EmulatorMeta.from_text(mutated, "meta.txt")
            except om.OmFormatError as exc:
                assert "meta.txt" in str(exc), (what, exc)
                py = None
            assert (cpp is None) == (py is None), f"{what}: C++ {cpp!r} vs Python {py!r} on {mutated!r}"
            if cpp is not None:
                assert [list(t[3]) for t in cpp["inputs"]] == [t.dims for t in py.inputs], what
                assert list(cpp["dynamic_batch"]) == py.dynamic_batch, what


def test_emulator_om_fuzz_through_the_acl_engine(core, tmp_path, emulator_om):
    # The full path a model file takes: header check, emulator payload split, meta parse, IR load,
    # then one execute when it loads. Fewer examples: each load compiles the IR.
    _needs_acl(core)
    if not core.acl_runtime()["emulator"]:
        pytest.skip("needs pymfn's ACL emulator")
    base, _ = emulator_om
    path = tmp_path / "fuzz.om"
    x = np.ones((1, 4, 4, 3), np.float32)
    gc.collect()
    held_before = core.acl_emulator_leaks()["total"]  # other tests' live engines, if any
    loaded = refused = 0
    for what, data in _om_inputs(base, max(1, _fuzz.examples(300) // 8)):
        path.write_bytes(data)
        engine = _accepts(lambda: core.AclEngine(str(path)), (core.FormatError, core.InputError, core.AclError),
                          path, what)
        if engine is None:
            refused += 1
            continue
        loaded += 1
        try:
            out = engine.execute([x])[0]
        except (core.AclError, core.ShapeMismatch, core.InvalidArgument) as exc:
            assert str(path) in str(exc) or "aclmdl" in str(exc), (what, exc)
            continue
        assert out.shape[0] == 1, what
    assert loaded > 0 and refused > 0, (loaded, refused)
    del engine
    gc.collect()
    assert core.acl_emulator_leaks()["total"] == held_before  # failed loads released what they took


# ---------------------------------------------------------------------------------------- bin folders

SAMPLE = 12  # bytes per sample: float32 [3]


def _random_folder(folder: Path, rng: random.Random) -> list[str]:
    """A folder of sample files with the damage a real one collects; returns what was done."""
    folder.mkdir()
    done = []
    for i in range(rng.randrange(0, 6)):
        name = rng.choice([f"{i}.bin", f"0{i}.bin", f"{10**25 + i}.bin", f"x{i}.bin", f"ü{i}.bin", f".{i}.bin",
                           f"{i}.BIN", f"{i}.bin.txt", f"{i}.binx", os.fsdecode(b"\xff%d.bin" % i)])
        size = rng.choice([SAMPLE] * 6 + [0, SAMPLE - 1, SAMPLE + 1, 2 * SAMPLE])
        (folder / name).write_bytes(bytes(rng.randrange(256) for _ in range(size)))
        done.append(f"{name}:{size}")
    extras = rng.sample(["dir", "link", "dangling", "loop", "fifo", "empty_dir_named_bin"], rng.randrange(0, 3))
    for e in extras:
        if e == "dir" or e == "empty_dir_named_bin":
            (folder / f"{e}.bin").mkdir()
        elif e == "link":
            target = folder.parent / f"target-{rng.randrange(10**9)}.bin"
            target.write_bytes(bytes(SAMPLE))
            (folder / "link.bin").symlink_to(target)
        elif e == "dangling":
            (folder / "dangling.bin").symlink_to(folder / "nowhere")
        elif e == "loop":
            (folder / "loop.bin").symlink_to(folder / "loop.bin")
        elif e == "fifo":
            os.mkfifo(folder / "fifo.bin")
        done.append(e)
    return done


def _expected_rows(ds, folder: Path) -> np.ndarray:
    """The files' bytes in the dataset's order, after checking it lists exactly the sample files."""
    names = {n for n in os.listdir(folder) if n.endswith(".bin") and not n.startswith(".") and len(n) > 4}
    files = ds.files()
    assert sorted(os.path.basename(f) for f in files) == sorted(names)
    return np.stack([np.frombuffer(Path(f).read_bytes(), np.float32) for f in files])


def test_folder_fuzz(core, tmp_path):
    first = _fuzz.seed()
    outcomes = {"opened": 0, "refused": 0}
    for i in range(_fuzz.examples(300) // 5):
        rng = random.Random(f"folder-{first + i}")
        folder = tmp_path / f"f{i}"
        what = f"folder seed {first + i}: {_random_folder(folder, rng)}"
        io = rng.choice(["mmap", "pread"])

        def open_folder():
            return core.FolderDataset(str(folder), SAMPLE, "float32", [3], io=io)

        try:
            ds = _finishes(open_folder, 20)
        except (core.InputError, core.ShapeMismatch) as exc:
            assert exc.path == str(folder) or exc.path.startswith(str(folder) + "/"), (what, exc.path)
            # The message shows undecodable name bytes as \xNN; .path keeps them (os.fsdecode) so it opens.
            shown = os.fsencode(exc.path).decode("utf-8", "backslashreplace")
            assert shown in str(exc) and os.path.lexists(exc.path), (what, exc)
            outcomes["refused"] += 1
            continue
        outcomes["opened"] += 1
        want = _expected_rows(ds, folder)
        batch, prefetch = rng.choice([1, 2, 3, 7]), rng.choice([0, 1, 2, 5])
        rows = _finishes(lambda: [b.valid_data.copy() for b in ds.reader(batch, prefetch)], 20)
        np.testing.assert_array_equal(np.concatenate(rows).view(np.uint8), want.view(np.uint8), err_msg=what)
    assert min(outcomes.values()) > 0, outcomes  # both paths were exercised


# ------------------------------------------------------------------- findings of the campaigns above

def _om_with_meta(path: Path, base: bytes, meta_text: str) -> Path:
    """`base` (an emulator om) with its meta section replaced, sizes and header length kept consistent."""
    n_meta, n_xml, n_bin = struct.unpack_from("<QQQ", base, 256 + 8)
    body = base[288 + n_meta:]
    meta = meta_text.encode("utf-8", "surrogateescape")
    payload = om.PAYLOAD_MAGIC + struct.pack("<QQQ", len(meta), n_xml, n_bin) + meta + body
    header = bytearray(base[:256])
    struct.pack_into("<I", header, 76, len(payload))
    path.write_bytes(bytes(header) + payload)
    return path


def test_meta_with_more_dims_than_acl_can_describe_is_refused(core, tmp_path, emulator_om):
    # aclmdlIODims holds 128 dims: a meta tensor with more made the emulator write past it.
    _needs_acl(core)
    base, text = emulator_om
    many = ",".join(["1"] * 200)
    path = _om_with_meta(tmp_path / "dims.om", base, text.replace(" 1,4,4,3\noutput", f" 1,{many}\noutput"))
    with pytest.raises(core.AclError, match="at most 8 dims") as ei:
        core.AclEngine(str(path))
    assert str(path) in str(ei.value)
    with pytest.raises(om.OmFormatError, match="at most 8 dims"):
        om.read_emulator_om(path)


def test_undecodable_bytes_in_a_message_stay_readable(core, tmp_path, emulator_om):
    # A meta line quoting non-UTF-8 bytes made the error itself a UnicodeDecodeError.
    _needs_acl(core)
    base, text = emulator_om
    path = _om_with_meta(tmp_path / "bytes.om", base, text + os.fsdecode(b"\xe1\xff oops\n"))
    with pytest.raises(core.AclError, match=r"not UTF-8 text \(byte \d+\)"):
        core.AclEngine(str(path))
    with pytest.raises(om.OmFormatError, match="not UTF-8"):
        om.read_emulator_om(path)
    with pytest.raises(core.InvalidArgument, match=r"unknown key 'caf\\xc3\\xa9'"):
        core._parse_emulator_meta(text + "café 1\n")


def test_non_utf8_file_names_round_trip(core, tmp_path):
    folder = tmp_path / "bins"
    folder.mkdir()
    raw = os.path.join(os.fsencode(folder), b"\xff1.bin")
    with open(raw, "wb") as f:
        f.write(bytes(SAMPLE))
    ds = core.FolderDataset(str(folder), SAMPLE)
    assert [os.fsencode(p) for p in ds.files()] == [raw]
    with open(raw, "ab") as f:
        f.write(b"x")
    with pytest.raises(core.ShapeMismatch, match=r"\\xff1.bin: file is 13 bytes") as ei:
        core.FolderDataset(str(folder), SAMPLE)
    assert os.fsencode(ei.value.path) == raw


def test_meta_parsers_agree_on_repeated_and_short_lines(core, emulator_om):
    _needs_acl(core)
    _, text = emulator_om
    dyn = text.replace(" 1,4,4,3", " -1,4,4,3")
    for bad, needle in [(dyn + "dynamic_batch 1,2\ndynamic_batch 4,8\n", "second dynamic_batch"),
                        (text + "input x\n", "expected 'input <name>"),
                        (text + "precision\n", "precision must be"),
                        ("pymfn-emu-om\n" + text, "unsupported emulator payload version"),
                        (text.replace("1,4,4,3", "1,4,\t4,3"), "dims must be positive"),
                        (text.replace("1,4,4,3", "1,4,999999999999,3"), "would exceed")]:
        with pytest.raises(core.InvalidArgument, match=needle):
            core._parse_emulator_meta(bad)
        with pytest.raises(om.OmFormatError, match=needle) as ei:
            om.EmulatorMeta.from_text(bad, "m.om")
        assert ei.value.path == "m.om"


def test_python_om_reader_names_a_directory_as_not_a_model(tmp_path):
    with pytest.raises(om.OmFormatError, match="not a regular file"):
        om.read_om_header(tmp_path)
    with pytest.raises(FileNotFoundError, match="missing.om"):
        om.read_om_header(tmp_path / "missing.om")


def test_folder_sample_shape_that_overflows_is_an_invalid_argument(core, tmp_path):
    folder = tmp_path / "bins"
    folder.mkdir()
    (folder / "0.bin").write_bytes(bytes(SAMPLE))
    with pytest.raises(core.InvalidArgument, match="overflows a 64-bit size"):
        core.FolderDataset(str(folder), SAMPLE, "float32", [2**40, 2**40, 2**40])

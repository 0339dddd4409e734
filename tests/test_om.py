"""pymfn.export.om: the 256-byte om header and the emulator payload (byte layout, validation, no silent truncation)."""
from __future__ import annotations

import struct

import pytest

from pymfn.export import om


def test_header_layout_on_disk(tmp_path):
    h = om.write_om_header(tmp_path / "m.om", b"x" * 1000, name="tf_MobileFaceNet", platform_version="7.0")
    raw = (tmp_path / "m.om").read_bytes()
    assert len(raw) == 256 + 1000 and h.file_size == 1256
    assert raw[:4] == b"IMOD"  # magic 0x444F4D49 little-endian
    assert struct.unpack_from("<II", raw, 0) == (0x444F4D49, 256)
    assert struct.unpack_from("<I", raw, 76)[0] == 1000  # length
    assert raw[84:84 + 17] == b"tf_MobileFaceNet\0"
    assert raw[160:164] == b"7.0\0"
    assert raw[181:256] == bytes(75)  # reserved stays zero


def test_round_trip_and_marker(tmp_path):
    om.write_om_header(tmp_path / "real.om", b"\1" * 10, name="net")
    h = om.read_om_header(tmp_path / "real.om")
    assert (h.name, h.length, h.headsize, h.version, h.file_size) == ("net", 10, 256, 1, 266)
    assert not h.is_emulator and not om.is_emulator_om(tmp_path / "real.om")
    om.write_om_header(tmp_path / "emu.om", b"\1" * 10, name="net", emulator=True)
    assert om.is_emulator_om(tmp_path / "emu.om")
    assert om.read_om_header(tmp_path / "emu.om").userdefineinfo.startswith(b"pymfn-acl-emulator")


@pytest.mark.parametrize("blob,needle", [
    (b"IMOD" + bytes(100), "shorter than the 256-byte om header"),
    (b"MODI" + struct.pack("<I", 256) + bytes(300), "bad magic"),
    (struct.pack("<II", 0x444F4D49, 128) + bytes(300), "header size field is 128"),
])
def test_invalid_headers_name_the_file(tmp_path, blob, needle):
    p = tmp_path / "bad.om"
    p.write_bytes(blob)
    with pytest.raises(om.OmFormatError, match=needle) as ei:
        om.read_om_header(p)
    assert ei.value.path == str(p) and str(p) in str(ei.value)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.om"):
        om.read_om_header(tmp_path / "missing.om")


def test_truncated_emulator_om_is_caught(tmp_path):
    meta = om.EmulatorMeta(inputs=[om.EmulatorTensor("x", "float32", [1, 4])],
                           outputs=[om.EmulatorTensor("y", "float16", [1, 4])])
    om.write_emulator_om(tmp_path / "e.om", meta, b"<xml/>", b"\0" * 16)
    data = (tmp_path / "e.om").read_bytes()
    (tmp_path / "cut.om").write_bytes(data[:-5])
    with pytest.raises(om.OmFormatError, match="truncated"):
        om.read_om_header(tmp_path / "cut.om")


def test_no_silent_truncation_of_fields():
    with pytest.raises(ValueError, match="at most 31"):
        om.OmHeader(name="n" * 32).to_bytes()
    with pytest.raises(ValueError, match="at most 19"):
        om.OmHeader(platform_version="v" * 20).to_bytes()
    assert len(om.OmHeader(name="n" * 31).to_bytes()) == 256


def test_emulator_payload_round_trip(tmp_path):
    meta = om.EmulatorMeta(inputs=[om.EmulatorTensor("Placeholder", "float32", [-1, 112, 112, 3], "NHWC")],
                           outputs=[om.EmulatorTensor("the_outputs", "float16", [-1, 128])],
                           precision="f16", precision_mode="allow_fp32_to_fp16", dynamic_batch=[1, 2, 4, 8])
    h = om.write_emulator_om(tmp_path / "m.om", meta, b"<net/>", b"\1\2\3", name="m")
    header, meta2, xml, weights = om.read_emulator_om(tmp_path / "m.om")
    assert header.is_emulator and header.length == h.length == (tmp_path / "m.om").stat().st_size - 256
    assert meta2 == meta and xml == b"<net/>" and weights == b"\1\2\3"
    text = meta.to_text()
    assert "input Placeholder float32 NHWC -1,112,112,3\n" in text and "dynamic_batch 1,2,4,8\n" in text


def test_read_emulator_om_rejects_real_om(tmp_path):
    om.write_om_header(tmp_path / "real.om", b"\0" * 64, name="real")
    with pytest.raises(om.OmFormatError, match="real Ascend om"):
        om.read_emulator_om(tmp_path / "real.om")


def test_meta_validation():
    bad = om.EmulatorMeta(inputs=[om.EmulatorTensor("has space", "float32", [1])], outputs=[])
    with pytest.raises(ValueError, match="no spaces"):
        bad.to_text()
    with pytest.raises(ValueError, match="precision"):
        om.EmulatorMeta(inputs=[], outputs=[], precision="int8").to_text()
    with pytest.raises(ValueError, match="unknown emulator meta key"):
        om.EmulatorMeta.from_text("pymfn-emu-om 1\nfoo bar\n")

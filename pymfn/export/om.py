"""The Ascend ``.om`` header, and pymfn's emulator payload that follows it in emulator om files.

Why in Python too: the converter writes emulator om files, checks what ``atc`` produced, and reports
describe om files; none of that should need the native module. The byte layout is the one in
``csrc/engines/acl/om_header.h`` (the C++ twin of this module), taken from Huawei's graph-engine source as
summarised in ``shared/docs/ascend.md``: a 256-byte little-endian header starting with the magic
``0x444F4D49`` ("IMOD" on disk). The validity check is deliberately the documented one (size >= 256,
magic, headsize == 256); nothing else of a real om file is assumed.

Emulator om = header (``userdefineinfo`` starts with ``pymfn-acl-emulator``, ``length`` = payload bytes)
+ ``b"PMFNEMU1"`` + three u64 section sizes + meta text + OpenVINO IR xml + IR weights.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from pymfn.files.atomic import atomic_write

MAGIC = 0x444F4D49
HEADER_SIZE = 256
EMULATOR_MARKER = b"pymfn-acl-emulator"
PAYLOAD_MAGIC = b"PMFNEMU1"
PAYLOAD_PREFIX = 32

# name -> (offset, struct format); everything not listed is reserved (zero).
_FIELDS: dict[str, tuple[int, str]] = {
    "magic": (0, "<I"),
    "headsize": (4, "<I"),
    "version": (8, "<I"),
    "checksum": (12, "64s"),
    "length": (76, "<I"),
    "is_encrypt": (80, "B"),
    "is_checksum": (81, "B"),
    "modeltype": (82, "B"),
    "genmode": (83, "B"),
    "name": (84, "32s"),
    "ops": (116, "<I"),
    "userdefineinfo": (120, "32s"),
    "om_ir_version": (152, "<I"),
    "model_num": (156, "<I"),
    "platform_version": (160, "20s"),
    "platform_type": (180, "B"),
}


class OmFormatError(ValueError):
    """A file is not a valid om file (or not a valid emulator om). The message names the file."""

    def __init__(self, path: str | os.PathLike | None, what: str):
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {what}" if self.path else what)


@dataclass
class OmHeader:
    """The decoded 256-byte header. ``name`` and ``platform_version`` are NUL-stripped text."""

    magic: int = MAGIC
    headsize: int = HEADER_SIZE
    version: int = 1
    checksum: bytes = bytes(64)
    length: int = 0
    is_encrypt: int = 0
    is_checksum: int = 0
    modeltype: int = 0
    genmode: int = 0
    name: str = ""
    ops: int = 0
    userdefineinfo: bytes = bytes(32)
    om_ir_version: int = 0
    model_num: int = 1
    platform_version: str = ""
    platform_type: int = 0
    file_size: int | None = field(default=None, compare=False)

    @property
    def is_emulator(self) -> bool:
        return self.userdefineinfo.startswith(EMULATOR_MARKER)

    def to_bytes(self) -> bytes:
        """Encode to exactly 256 bytes; refuses fields that do not fit rather than truncating them."""
        buf = bytearray(HEADER_SIZE)
        for key, (off, fmt) in _FIELDS.items():
            value = getattr(self, key)
            if key in ("name", "platform_version"):
                raw = value.encode("utf-8")
                width = struct.calcsize(fmt)
                if len(raw) >= width:
                    raise ValueError(f"om header field {key}={value!r} is {len(raw)} bytes; at most {width - 1} fit")
                value = raw
            elif fmt.endswith("s"):
                width = struct.calcsize(fmt)
                if len(value) > width:
                    raise ValueError(f"om header field {key} is {len(value)} bytes; at most {width} fit")
            struct.pack_into(fmt, buf, off, value)
        return bytes(buf)


def parse_om_header(data: bytes, path: str | os.PathLike | None = None) -> OmHeader:
    """Decode and validate the first 256 bytes of ``data`` (the documented check only)."""
    if len(data) < HEADER_SIZE:
        raise OmFormatError(path, f"{len(data)} bytes, shorter than the 256-byte om header: not an om file")
    values = {}
    for key, (off, fmt) in _FIELDS.items():
        (v,) = struct.unpack_from(fmt, data, off)
        if key in ("name", "platform_version"):
            v = v.split(b"\0", 1)[0].decode("utf-8", errors="replace")
        values[key] = v
    if values["magic"] != MAGIC:
        raise OmFormatError(path, f"bad magic 0x{values['magic']:08X}: an om file starts with 'IMOD' (0x444F4D49)")
    if values["headsize"] != HEADER_SIZE:
        raise OmFormatError(path, f"header size field is {values['headsize']}, expected 256")
    return OmHeader(**values)


def read_om_header(path: str | os.PathLike) -> OmHeader:
    """Read and validate the header of ``path``. For emulator files also check ``length`` against the size,
    so a truncated copy is reported here rather than as a parse failure at load time."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: om file not found")
    if not path.is_file():  # a directory, FIFO or device: never opened (a FIFO would block)
        raise OmFormatError(path, "not a regular file (expected an Ascend .om model)")
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(HEADER_SIZE)
    header = parse_om_header(head, path)
    header.file_size = size
    if header.is_emulator and header.length != size - HEADER_SIZE:
        raise OmFormatError(path, f"emulator om header says {header.length} payload bytes but "
                                  f"{size - HEADER_SIZE} follow the header (truncated copy?)")
    return header


def is_emulator_om(path: str | os.PathLike) -> bool:
    """True when ``path`` is a valid om file carrying pymfn's emulator payload (False for real om files);
    raises like :func:`read_om_header` when it is not an om file at all."""
    return read_om_header(path).is_emulator


def write_om_header(path: str | os.PathLike, payload: bytes, *, name: str, emulator: bool = False,
                    platform_version: str = "", version: int = 1) -> OmHeader:
    """Write header + ``payload`` to ``path`` atomically and return the header written.

    ``emulator=True`` marks the file as pymfn emulator payload (``userdefineinfo`` marker)."""
    header = OmHeader(version=version, length=len(payload), name=name, platform_version=platform_version)
    if len(payload) > 0xFFFFFFFF:
        raise ValueError(f"payload of {len(payload)} bytes does not fit the u32 length field")
    if emulator:
        header.userdefineinfo = EMULATOR_MARKER.ljust(32, b"\0")
    blob = header.to_bytes()
    with atomic_write(path) as f:
        f.write(blob)
        f.write(payload)
    header.file_size = len(blob) + len(payload)
    return header


# ---------------------------------------------------------------- emulator payload

@dataclass
class EmulatorTensor:
    name: str
    dtype: str  # float32 | float16 | uint8 | int32 | int64
    dims: list[int]  # -1 first = dynamic batch
    format: str = "ND"  # NHWC | NCHW | ND


@dataclass
class EmulatorMeta:
    """What the emulator needs beyond the IR: om-level I/O (names, dtypes, dims), precision, batch list."""

    inputs: list[EmulatorTensor]
    outputs: list[EmulatorTensor]
    precision: str = "f32"  # f32 | f16
    precision_mode: str = ""
    dynamic_batch: list[int] = field(default_factory=list)

    def to_text(self) -> str:
        if self.precision not in ("f32", "f16"):
            raise ValueError(f"precision must be f32 or f16, got {self.precision!r}")
        lines = ["pymfn-emu-om 1", f"precision {self.precision}"]
        if self.precision_mode:
            lines.append(f"precision_mode {self.precision_mode}")
        for kind, tensors in (("input", self.inputs), ("output", self.outputs)):
            for t in tensors:
                if not t.name or " " in t.name:
                    raise ValueError(f"tensor name {t.name!r} must be non-empty and contain no spaces")
                lines.append(f"{kind} {t.name} {t.dtype} {t.format} {','.join(str(int(d)) for d in t.dims)}")
        if self.dynamic_batch:
            lines.append("dynamic_batch " + ",".join(str(int(b)) for b in self.dynamic_batch))
        return "\n".join(lines) + "\n"

    @classmethod
    def from_text(cls, text: str, path: str | os.PathLike | None = None) -> EmulatorMeta:
        """Parse meta text with the checks of the C++ reader (``parse_emulator_meta``): anything it would
        refuse raises :class:`OmFormatError` (naming ``path`` when given) with the line at fault."""
        meta = cls(inputs=[], outputs=[])
        saw_version = False
        for lineno, raw in enumerate(text.split("\n"), 1):
            if not raw:
                continue
            tok = raw.split(" ")
            where = f"emulator meta line {lineno} ({raw[:80]!r}): "
            key = tok[0]
            if key == "pymfn-emu-om":
                if tok[1:] != ["1"]:
                    raise OmFormatError(path, where + "unsupported emulator payload version (this reader reads 1)")
                saw_version = True
            elif key == "precision":
                if len(tok) != 2 or tok[1] not in ("f32", "f16"):
                    raise OmFormatError(path, where + "precision must be f32 or f16")
                meta.precision = tok[1]
            elif key == "precision_mode":
                if len(tok) != 2:
                    raise OmFormatError(path, where + "expected 'precision_mode <mode>'")
                meta.precision_mode = tok[1]
            elif key in ("input", "output"):
                (meta.inputs if key == "input" else meta.outputs).append(_parse_meta_tensor(tok, where, path))
            elif key == "dynamic_batch":
                if meta.dynamic_batch:
                    raise OmFormatError(path, where + "a second dynamic_batch line")
                if len(tok) != 2:
                    raise OmFormatError(path, where + "expected 'dynamic_batch <b1,b2,...>'")
                sizes = [_meta_int(d) for d in tok[1].split(",")]
                if any(b is None or not 1 <= b <= MAX_DYNAMIC_BATCH for b in sizes):
                    raise OmFormatError(path, where + f"batch sizes must be integers 1..{MAX_DYNAMIC_BATCH}")
                meta.dynamic_batch = sizes
            else:
                raise OmFormatError(path, where + f"unknown emulator meta key '{key}'")
        _check_meta(meta, saw_version, path)
        return meta


# Limits shared with csrc/engines/acl/om_header.cpp (parse_emulator_meta).
MAX_DYNAMIC_BATCH = 2048
MAX_META_DIMS = 8
MAX_TENSOR_BYTES = 1 << 40
_META_DTYPE_BYTES = {"float32": 4, "float16": 2, "uint8": 1, "int32": 4, "int64": 8}
_META_FORMATS = ("NHWC", "NCHW", "ND")


def _meta_int(text: str) -> int | None:
    """A decimal integer as strtoll reads it whole (optional sign, digits only), else None."""
    body = text[1:] if text[:1] in "+-" else text
    return int(text) if body.isascii() and body.isdigit() and len(body) <= 18 else None


def _parse_meta_tensor(tok: list[str], where: str, path: str | os.PathLike | None) -> EmulatorTensor:
    if len(tok) != 5:
        raise OmFormatError(path, where + f"expected '{tok[0]} <name> <dtype> <format> <d0,d1,...>'")
    name, dtype, fmt = tok[1], tok[2], tok[3]
    if dtype not in _META_DTYPE_BYTES:
        raise OmFormatError(path, where + f"unknown dtype '{dtype}'")
    if fmt not in _META_FORMATS:
        raise OmFormatError(path, where + "format must be NHWC, NCHW or ND")
    if not 1 <= len(name.encode("utf-8", "surrogateescape")) <= 127:
        raise OmFormatError(path, where + "tensor name must be 1..127 bytes")
    dims = [_meta_int(d) for d in tok[4].split(",")]
    if any(d is None or d == 0 or d < -1 for d in dims):
        raise OmFormatError(path, where + "dims must be positive integers (or -1 first)")
    if any(d < 0 for d in dims[1:]):
        raise OmFormatError(path, where + "only the first (batch) dim may be -1")
    if len(dims) > MAX_META_DIMS:
        raise OmFormatError(path, where + f"at most {MAX_META_DIMS} dims")
    nbytes = _META_DTYPE_BYTES[dtype]
    for d in dims:
        nbytes *= d if d > 0 else MAX_DYNAMIC_BATCH
    if nbytes > MAX_TENSOR_BYTES:
        raise OmFormatError(path, where + f"a tensor of dims {tok[4]} would exceed {MAX_TENSOR_BYTES} bytes")
    return EmulatorTensor(name=name, dtype=dtype, format=fmt, dims=dims)


def _check_meta(meta: EmulatorMeta, saw_version: bool, path: str | os.PathLike | None) -> None:
    if not saw_version:
        raise OmFormatError(path, "emulator meta has no 'pymfn-emu-om 1' line")
    if not meta.inputs or not meta.outputs:
        raise OmFormatError(path, "emulator meta must declare at least one input and one output")
    dynamic = bool(meta.dynamic_batch)
    if dynamic and not 2 <= len(meta.dynamic_batch) <= 100:
        raise OmFormatError(path, "emulator meta: dynamic_batch must list 2..100 sizes")
    for t in meta.inputs + meta.outputs:
        if (t.dims[0] == -1) != dynamic:
            raise OmFormatError(path, f"emulator meta: tensor '{t.name}': the first dim must be -1 exactly when "
                                      "dynamic_batch is given")


def emulator_payload(meta: EmulatorMeta, xml: bytes, weights: bytes) -> bytes:
    """The bytes that follow the header in an emulator om."""
    meta_b = meta.to_text().encode("utf-8")
    return PAYLOAD_MAGIC + struct.pack("<QQQ", len(meta_b), len(xml), len(weights)) + meta_b + xml + weights


def write_emulator_om(path: str | os.PathLike, meta: EmulatorMeta, xml: bytes, weights: bytes,
                      *, name: str = "pymfn_model") -> OmHeader:
    """Write a complete emulator om atomically (``name`` must fit the header's 31-byte name field)."""
    return write_om_header(path, emulator_payload(meta, xml, weights), name=name, emulator=True,
                           platform_version="emulator")


def read_emulator_om(path: str | os.PathLike) -> tuple[OmHeader, EmulatorMeta, bytes, bytes]:
    """Split an emulator om into (header, meta, IR xml, IR weights)."""
    path = Path(path)
    header = read_om_header(path)
    if not header.is_emulator:
        raise OmFormatError(path, "a real Ascend om file, not a pymfn emulator payload")
    with open(path, "rb") as f:
        f.seek(HEADER_SIZE)
        data = f.read()  # header.length bytes: read_om_header checked it against the file size
    if len(data) < PAYLOAD_PREFIX or data[:8] != PAYLOAD_MAGIC:
        raise OmFormatError(path, "emulator payload does not start with PMFNEMU1")
    n_meta, n_xml, n_bin = struct.unpack_from("<QQQ", data, 8)
    if PAYLOAD_PREFIX + n_meta + n_xml + n_bin != len(data):
        raise OmFormatError(path, f"payload sections ({n_meta}+{n_xml}+{n_bin}) do not add up to "
                                  f"{len(data) - PAYLOAD_PREFIX} bytes")
    p = PAYLOAD_PREFIX
    try:
        text = data[p:p + n_meta].decode("utf-8")
    except UnicodeDecodeError as e:
        raise OmFormatError(path, f"emulator meta is not UTF-8 text (byte {e.start})") from None
    meta = EmulatorMeta.from_text(text, path)
    xml = data[p + n_meta:p + n_meta + n_xml]
    weights = data[p + n_meta + n_xml:]
    return header, meta, xml, weights

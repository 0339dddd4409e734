"""Read the constant tensors of a ``.tflite`` file in pure Python, checking every byte it touches.

Why not ``tf.lite.Interpreter``: it trusts the flatbuffer. A truncated or corrupted file (a half-finished
download, ``head -c 2616698 MobileFaceNet.tflite``) crashes the whole process with SIGSEGV, before any
Python error can name the file. Importing weights needs nothing the interpreter computes: a weight is a
tensor of subgraph 0 whose buffer holds data, and ``Interpreter.get_tensor`` returns exactly those bytes.
So this module reads them straight from the flatbuffer, and every read is checked against the file size:
any damage becomes a :class:`TFLiteFormatError` naming the file and the byte offset, never a crash, a
loop or an allocation larger than the file.

Flatbuffer layout (public FlatBuffers binary format; field numbers from TFLite's ``schema.fbs``):

* byte 0: u32 offset of the root table; bytes 4..8: the file identifier ``TFL3``.
* a table at ``t`` starts with an i32 ``s``; its vtable is at ``t - s``: u16 vtable size, u16 table
  size, then one u16 per field (offset of the field from ``t``; 0 = absent, use the default).
* a reference field holds a u32 offset relative to its own position; a vector is a u32 length followed
  by its elements; a string is a byte vector (plus a NUL).
* ``Model``: 0 version (u32, 3 today), 2 subgraphs [SubGraph], 4 buffers [Buffer].
  ``SubGraph``: 0 tensors [Tensor]. ``Tensor``: 0 shape [i32], 1 type (i8 TensorType), 2 buffer (u32),
  3 name (string). ``Buffer``: 0 data [u8]; or 1 offset (u64), 2 size (u64) for data stored after the
  flatbuffer (models over 2 GB).
"""
from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FILE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3

# TensorType values (schema.fbs) for the element types weights can have.
TENSOR_TYPES: dict[int, tuple[str, np.dtype]] = {
    0: ("FLOAT32", np.dtype("<f4")),
    1: ("FLOAT16", np.dtype("<f2")),
    2: ("INT32", np.dtype("<i4")),
    3: ("UINT8", np.dtype("u1")),
    4: ("INT64", np.dtype("<i8")),
    6: ("BOOL", np.dtype("?")),
    7: ("INT16", np.dtype("<i2")),
    9: ("INT8", np.dtype("i1")),
    10: ("FLOAT64", np.dtype("<f8")),
}


class TFLiteFormatError(ValueError):
    """The file is not a readable TFLite flatbuffer; the message names the file (and byte offset)."""


@dataclass(frozen=True)
class ConstTensor:
    """A tensor of subgraph 0 that has data: its name, TensorType, shape and where the bytes are."""

    name: str
    type: int
    shape: tuple[int, ...]
    start: int
    nbytes: int


class _FlatBuffer:
    """Bounds-checked reads of flatbuffer primitives from one byte string."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data = data
        self.path = path

    def fail(self, what: str) -> TFLiteFormatError:
        return TFLiteFormatError(f"{self.path}: truncated or corrupt TFLite file: {what}")

    def need(self, pos: int, size: int, what: str) -> None:
        if pos < 0 or size < 0 or pos + size > len(self.data):
            raise self.fail(f"{what} at byte {pos} ({size} bytes) lies outside the file ({len(self.data)} bytes)")

    def scalar(self, fmt: str, pos: int, what: str) -> int:
        self.need(pos, struct.calcsize(fmt), what)
        return struct.unpack_from(fmt, self.data, pos)[0]

    def deref(self, pos: int, what: str) -> int:
        """Target of the u32 reference stored at ``pos``."""
        return pos + self.scalar("<I", pos, what)

    def field(self, table: int, index: int, what: str) -> int | None:
        """Position of field ``index`` of the table at ``table``, or None when absent."""
        vtable = table - self.scalar("<i", table, f"{what} table")
        vt_size = self.scalar("<H", vtable, f"{what} vtable")
        table_size = self.scalar("<H", vtable + 2, f"{what} vtable")
        if vt_size < 4 or vt_size % 2:
            raise self.fail(f"{what} vtable at byte {vtable} has an invalid size {vt_size}")
        self.need(vtable, vt_size, f"{what} vtable")
        slot = 4 + 2 * index
        if slot + 2 > vt_size:
            return None
        offset = self.scalar("<H", vtable + slot, f"{what} vtable")
        if offset == 0:
            return None
        if offset >= table_size:
            raise self.fail(f"{what} field {index} at offset {offset} lies beyond its table of {table_size} bytes")
        return table + offset

    def field_scalar(self, table: int, index: int, fmt: str, default: int, what: str) -> int:
        pos = self.field(table, index, what)
        return default if pos is None else self.scalar(fmt, pos, f"{what} field {index}")

    def vector(self, table: int, index: int, elem_size: int, what: str) -> tuple[int, int]:
        """(position of the first element, length) of a vector field; (0, 0) when absent."""
        pos = self.field(table, index, what)
        if pos is None:
            return 0, 0
        vec = self.deref(pos, what)
        length = self.scalar("<I", vec, what)
        self.need(vec + 4, length * elem_size, f"{what} ({length} elements)")
        return vec + 4, length

    def tables(self, table: int, index: int, what: str) -> list[int]:
        start, length = self.vector(table, index, 4, what)
        return [self.deref(start + 4 * i, what) for i in range(length)]

    def string(self, table: int, index: int, what: str) -> str:
        start, length = self.vector(table, index, 1, what)
        return self.data[start:start + length].decode("utf-8", errors="replace")


def read_const_tensors(path: str | os.PathLike) -> tuple[dict[str, ConstTensor], bytes]:
    """Every tensor of subgraph 0 that holds data (weights, biases, constants), by name, plus the file bytes.

    Tensors without data (activations, inputs) are left out, as ``Interpreter.get_tensor`` cannot read
    them either. Raises :class:`TFLiteFormatError` for anything that is not a valid TFLite file.
    """
    path = Path(path)
    data = path.read_bytes()
    fb = _FlatBuffer(data, path)
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        raise TFLiteFormatError(f"{path}: not a TFLite flatbuffer (no 'TFL3' identifier at byte 4)")
    model = fb.deref(0, "root table offset")
    version = fb.field_scalar(model, 0, "<I", 0, "Model")
    if version != SCHEMA_VERSION:
        raise TFLiteFormatError(f"{path}: TFLite schema version {version}, expected {SCHEMA_VERSION} "
                                "(truncated or corrupt file, or an unsupported exporter)")
    subgraphs = fb.tables(model, 2, "Model.subgraphs")
    if not subgraphs:
        raise TFLiteFormatError(f"{path}: TFLite model has no subgraph")
    buffers = fb.tables(model, 4, "Model.buffers")
    tensors: dict[str, ConstTensor] = {}
    for i, tensor in enumerate(fb.tables(subgraphs[0], 0, "SubGraph.tensors")):
        what = f"tensor {i}"
        buffer_index = fb.field_scalar(tensor, 2, "<I", 0, what)
        if buffer_index >= len(buffers):
            raise fb.fail(f"{what} refers to buffer {buffer_index}; the model has {len(buffers)}")
        start, nbytes = _buffer_bytes(fb, buffers[buffer_index], f"buffer {buffer_index}")
        if nbytes == 0:
            continue
        shape_start, rank = fb.vector(tensor, 0, 4, f"{what} shape")
        shape = struct.unpack_from(f"<{rank}i", data, shape_start) if rank else ()
        name = fb.string(tensor, 3, f"{what} name")
        ttype = fb.field_scalar(tensor, 1, "<b", 0, what)
        tensors[name] = ConstTensor(name, ttype, tuple(shape), start, nbytes)
    return tensors, data


def _buffer_bytes(fb: _FlatBuffer, buffer: int, what: str) -> tuple[int, int]:
    """(file position, byte count) of a Buffer's data, inline or stored after the flatbuffer."""
    start, length = fb.vector(buffer, 0, 1, what)
    if length:
        return start, length
    offset = fb.field_scalar(buffer, 1, "<Q", 0, what)
    size = fb.field_scalar(buffer, 2, "<Q", 0, what)
    if offset > 1 and size > 0:  # offset 1 is the converter's placeholder for "not yet placed"
        fb.need(offset, size, f"{what} data")
        return offset, size
    return 0, 0


def tensor_array(tensor: ConstTensor, data: bytes, path: str | os.PathLike) -> np.ndarray:
    """The tensor's values as a numpy array of its shape (a copy), after checking bytes against shape."""
    if tensor.type not in TENSOR_TYPES:
        raise TFLiteFormatError(f"{path}: tensor '{tensor.name}' has TensorType {tensor.type}, which holds no "
                                "plain numbers (corrupt file?)")
    type_name, dtype = TENSOR_TYPES[tensor.type]
    if any(d < 0 for d in tensor.shape):
        raise TFLiteFormatError(f"{path}: tensor '{tensor.name}' has a negative dimension in shape {list(tensor.shape)}")
    count = math.prod(tensor.shape)  # Python ints: a corrupt shape must not wrap around to a plausible size
    if count * dtype.itemsize != tensor.nbytes:
        raise TFLiteFormatError(f"{path}: truncated or corrupt TFLite file: tensor '{tensor.name}' "
                                f"({type_name} {list(tensor.shape)}) needs {count * dtype.itemsize} bytes, "
                                f"its buffer holds {tensor.nbytes}")
    return np.frombuffer(data, dtype, count, tensor.start).reshape(tensor.shape).copy()

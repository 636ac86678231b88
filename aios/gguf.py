"""A structural check of a whole GGUF file: header, metadata, tensor infos and the size of the tensor data.

``aios models add`` runs it before registering a file, so a truncated download or a file that is not a model
is refused with one line instead of failing later inside llama.cpp. It reads only the header (through mmap)
and never the tensor data; the required size is computed from each tensor's shape and ggml type.

Layout (llama.cpp ``gguf.cpp``, little-endian, versions 2 and 3)::

    "GGUF" u32 version, u64 n_tensors, u64 n_kv
    n_kv x (string key, u32 value_type, value)          string = u64 length + UTF-8 bytes
    n_tensors x (string name, u32 n_dims, n_dims x u64 ne, u32 ggml_type, u64 offset)
    padding to general.alignment (default 32), then the tensor data; offsets are relative to its start.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from aios.errors import InvalidModelFile

__all__ = ["GGML_TYPES", "GGMLType", "GGUFLayout", "TensorInfo", "check_gguf_header", "read_gguf_layout"]

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # GGML_MAX_DIMS
_QK_K = 256  # super-block size of the k-quants and most i-quants
#: Deepest nesting of arrays inside metadata values we follow (llama.cpp writes flat arrays).
_MAX_ARRAY_DEPTH = 8


@dataclass(frozen=True)
class GGMLType:
    name: str
    block_size: int  # elements per block
    type_size: int  # bytes per block


def _t(name: str, block: int, size: int) -> GGMLType:
    return GGMLType(name, block, size)


#: ggml type id -> block layout, from ggml.h ``enum ggml_type`` and the block structs of ggml-common.h in the
#: llama.cpp that llama-cpp-python 0.3.36 vendors (checked against its gguf-py ``GGML_QUANT_SIZES``; a test
#: compares this table with the installed ``gguf`` package's). Ids 4, 5 (Q4_2, Q4_3), 31-33 (Q4_0_4_4 ...) and
#: 36-38 (IQ4_NL_4_4 ...) were removed from ggml and are refused as unknown, as is any id above 42.
GGML_TYPES: dict[int, GGMLType] = {
    0: _t("F32", 1, 4),
    1: _t("F16", 1, 2),
    2: _t("Q4_0", 32, 2 + 16),
    3: _t("Q4_1", 32, 2 + 2 + 16),
    6: _t("Q5_0", 32, 2 + 4 + 16),
    7: _t("Q5_1", 32, 2 + 2 + 4 + 16),
    8: _t("Q8_0", 32, 2 + 32),
    9: _t("Q8_1", 32, 2 + 2 + 32),
    10: _t("Q2_K", _QK_K, 2 + 2 + _QK_K // 16 + _QK_K // 4),
    11: _t("Q3_K", _QK_K, 2 + _QK_K // 4 + _QK_K // 8 + 12),
    12: _t("Q4_K", _QK_K, 2 + 2 + _QK_K // 2 + 12),
    13: _t("Q5_K", _QK_K, 2 + 2 + _QK_K // 2 + _QK_K // 8 + 12),
    14: _t("Q6_K", _QK_K, 2 + _QK_K // 2 + _QK_K // 4 + _QK_K // 16),
    15: _t("Q8_K", _QK_K, 4 + _QK_K + _QK_K // 8),
    16: _t("IQ2_XXS", _QK_K, 2 + _QK_K // 4),
    17: _t("IQ2_XS", _QK_K, 2 + _QK_K // 4 + _QK_K // 32),
    18: _t("IQ3_XXS", _QK_K, 2 + _QK_K // 4 + _QK_K // 8),
    19: _t("IQ1_S", _QK_K, 2 + _QK_K // 8 + _QK_K // 16),
    20: _t("IQ4_NL", 32, 2 + 16),
    21: _t("IQ3_S", _QK_K, 2 + _QK_K // 4 + _QK_K // 8 + _QK_K // 32 + 4),
    22: _t("IQ2_S", _QK_K, 2 + _QK_K // 4 + _QK_K // 16),
    23: _t("IQ4_XS", _QK_K, 2 + 2 + _QK_K // 2 + _QK_K // 64),
    24: _t("I8", 1, 1),
    25: _t("I16", 1, 2),
    26: _t("I32", 1, 4),
    27: _t("I64", 1, 8),
    28: _t("F64", 1, 8),
    29: _t("IQ1_M", _QK_K, _QK_K // 8 + _QK_K // 16 + _QK_K // 32),
    30: _t("BF16", 1, 2),
    34: _t("TQ1_0", _QK_K, 2 + 4 * 13),
    35: _t("TQ2_0", _QK_K, 2 + 64),
    39: _t("MXFP4", 32, 1 + 16),
    40: _t("NVFP4", 64, 4 + 32),
    41: _t("Q1_0", 128, 2 + 16),
    42: _t("Q2_0", 64, 2 + 16),
}

# Metadata value types (gguf.h ``enum gguf_type``): id -> fixed size in bytes (8 STRING, 9 ARRAY are variable).
_STRING, _ARRAY = 8, 9
_FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_UINT32 = 4
_U32, _U64 = struct.Struct("<I"), struct.Struct("<Q")
_HEADER_SIZE = 24  # magic, version, tensor count, metadata count


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dims: tuple[int, ...]
    type_id: int
    offset: int  # from the start of the data section

    @property
    def nbytes(self) -> int:
        kind = GGML_TYPES[self.type_id]
        count = 1
        for d in self.dims:
            count *= d
        return count // kind.block_size * kind.type_size


@dataclass(frozen=True)
class GGUFLayout:
    version: int
    alignment: int
    metadata_count: int
    tensors: tuple[TensorInfo, ...]
    data_start: int
    #: Bytes the file must have: the end of the tensor whose data ends last. Writers pad after each tensor, so a
    #: complete file is this long or up to ``alignment - 1`` bytes longer.
    required_size: int
    file_size: int


class _Truncated(Exception):
    def __init__(self, needed: int) -> None:
        self.needed = needed


class _Invalid(Exception):
    pass


class _Reader:
    def __init__(self, buf: mmap.mmap | bytes) -> None:
        self.buf = buf
        self.size = len(buf)
        self.pos = 0

    def take(self, n: int) -> int:
        """Advance by ``n`` bytes and return where they start; EOF is a truncation."""
        start = self.pos
        if n < 0 or start + n > self.size:
            raise _Truncated(start + n)
        self.pos = start + n
        return start

    def unpack(self, fmt: struct.Struct) -> tuple[int, ...]:
        return fmt.unpack_from(self.buf, self.take(fmt.size))

    def u32(self) -> int:
        return int(_U32.unpack_from(self.buf, self.take(4))[0])

    def u64(self) -> int:
        return int(_U64.unpack_from(self.buf, self.take(8))[0])

    def string(self) -> bytes:
        n = self.u64()
        start = self.take(n)
        return bytes(self.buf[start : start + n])

    def skip_string(self) -> None:
        self.take(self.u64())

    def skip_value(self, vtype: int, depth: int = 0) -> None:
        if vtype in _FIXED:
            self.take(_FIXED[vtype])
        elif vtype == _STRING:
            self.skip_string()
        elif vtype == _ARRAY:
            if depth >= _MAX_ARRAY_DEPTH:
                raise _Invalid("metadata arrays nested too deep")
            item_type, count = self.u32(), self.u64()
            if item_type in _FIXED:
                self.take(count * _FIXED[item_type])
            elif item_type in (_STRING, _ARRAY):
                for _ in range(count):  # every element is at least 8 bytes, so a huge count hits EOF quickly
                    self.skip_value(item_type, depth + 1)
            else:
                raise _Invalid(f"unknown metadata array type {item_type}")
        else:
            raise _Invalid(f"unknown metadata value type {vtype}")


class _BadHeader(_Invalid):
    pass


_Result = TypeVar("_Result")


def _run(path: Path, size: int, parse: Callable[[], _Result]) -> _Result:
    """Run a parse step, turning its failures into one line that names the file."""
    try:
        return parse()
    except _Truncated as exc:
        raise InvalidModelFile(
            f"{path}: truncated GGUF (needs at least {exc.needed} bytes to read its header, has {size})",
            "download the model again",
        ) from None
    except _BadHeader as exc:
        raise InvalidModelFile(f"{path}: {exc}", "download the model again or add another one") from None
    except _Invalid as exc:
        raise InvalidModelFile(f"{path}: not a valid GGUF ({exc})", "download the model again") from None


def _header(r: _Reader) -> tuple[int, int, int]:
    if r.size < 4 or bytes(r.buf[:4]) != GGUF_MAGIC:
        raise _BadHeader("not a GGUF model file (bad header)")
    if r.size < _HEADER_SIZE:
        raise _Truncated(_HEADER_SIZE)
    r.take(4)
    version = r.u32()
    if version not in (2, 3):
        raise _BadHeader(f"GGUF has an invalid header (version {version}; versions 2 and 3 are supported)")
    n_tensors, n_kv = r.u64(), r.u64()
    if n_tensors == 0:
        raise _BadHeader("GGUF has an invalid header (no tensors)")
    return version, n_tensors, n_kv


def _parse(r: _Reader, file_size: int) -> GGUFLayout:
    version, n_tensors, n_kv = _header(r)
    alignment = DEFAULT_ALIGNMENT
    for i in range(n_kv):
        key = r.string()
        vtype = r.u32()
        if key == b"general.alignment":
            if vtype != _UINT32:
                raise _Invalid(f"general.alignment has value type {vtype}, not uint32")
            alignment = r.u32()
            if alignment == 0 or alignment & (alignment - 1):
                raise _Invalid(f"general.alignment {alignment} is not a power of two")
        else:
            try:
                r.skip_value(vtype)
            except _Invalid as exc:
                raise _Invalid(f"metadata key {i} ({key[:80].decode('utf-8', 'replace')}): {exc}") from None
    tensors: list[TensorInfo] = []
    names: set[str] = set()
    for _ in range(n_tensors):
        name = r.string().decode("utf-8", "replace")
        if name in names:
            raise _Invalid(f"duplicate tensor name {name!r}")
        names.add(name)
        n_dims = r.u32()
        if n_dims > MAX_DIMS:
            raise _Invalid(f"tensor {name!r} has {n_dims} dimensions (at most {MAX_DIMS})")
        dims = r.unpack(struct.Struct(f"<{n_dims}Q")) if n_dims else ()
        type_id, offset = r.u32(), r.u64()
        kind = GGML_TYPES.get(type_id)
        if kind is None:
            raise _Invalid(
                f"tensor {name!r} has ggml type {type_id}, which aios does not know (a newer format or a corrupt file)"
            )
        info = TensorInfo(name, tuple(dims), type_id, offset)
        if any(d >= 2**63 for d in dims) or info.nbytes >= 2**63:
            raise _Invalid(f"tensor {name!r} is impossibly large ({' x '.join(map(str, dims))} {kind.name})")
        if dims and dims[0] % kind.block_size:
            raise _Invalid(f"tensor {name!r}: {dims[0]} elements per row is not a multiple of {kind.name}'s block")
        tensors.append(info)
    # As llama.cpp's gguf_init: each tensor starts where the previous one ends, padded to the alignment.
    expected = 0
    for info in tensors:
        if info.offset != expected:
            raise _Invalid(f"tensor {info.name!r} has data offset {info.offset}, expected {expected}")
        expected += -(-info.nbytes // alignment) * alignment
    data_start = -(-r.pos // alignment) * alignment
    last = tensors[-1]
    required = data_start + last.offset + last.nbytes
    return GGUFLayout(version, alignment, n_kv, tuple(tensors), data_start, required, file_size)


def check_gguf_header(path: Path) -> None:
    """The cheap check run before every model load: magic, version and counts (the first 24 bytes)."""
    with path.open("rb") as fh:
        head = fh.read(_HEADER_SIZE)
        size = fh.seek(0, 2)
    _run(path, size, lambda: _header(_Reader(head)))


def read_gguf_layout(path: Path) -> GGUFLayout:
    """Parse the whole header of ``path`` and check the file holds all the tensor data it describes.

    Raises InvalidModelFile with one line (``PATH: truncated GGUF (needs N bytes, has M)``, ``PATH: not a valid
    GGUF (...)``) and OSError if the file cannot be read.
    """
    with path.open("rb") as fh:
        size = fh.seek(0, 2)
        buf: mmap.mmap | bytes = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
    try:
        layout = _run(path, size, lambda: _parse(_Reader(buf), size))
    finally:
        if isinstance(buf, mmap.mmap):
            buf.close()
    if layout.required_size > size:
        raise InvalidModelFile(
            f"{path}: truncated GGUF (needs {layout.required_size} bytes, has {size})", "download the model again"
        )
    return layout

"""A GGUF file's header — its metadata and tensor table — read from the first bytes of the file.
Pure: bytes in, a description out.

The format is llama.cpp's (docs/gguf.md in ggml): the magic `GGUF`, a version (2 or 3), the
tensor and key-value counts, the key-values (typed; strings and arrays carry their lengths),
then per tensor its name, dimensions, ggml type and offset into the data. All of it sits before
the tensor data, so a few MiB read with an HTTP Range request describe a file of many GiB.

Why not `gguf.GGUFReader` (llama.cpp's own Python reader): it memory-maps a whole file through
numpy, where Hearth has a prefix of one from the network and must say how many more bytes it
needs; the package is used in the tests to check this reader on the same files.
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass, field
from typing import Any

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
# Larger than any real header (a 256 k-token vocabulary with merges is ~10 MiB): a file that
# claims more is refused rather than read on.
MAX_HEADER = 64 * 2**20
MAX_ITEMS = 10_000_000

# ggml's type traits (ggml.c `type_traits`): type id → (name, elements per block, bytes per block).
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 40),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
}

# GGUF's value types → struct format (8: string, 9: array are read apart).
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


class NeedMore(Exception):
    """The prefix ends inside the header: read at least `size` bytes from the start."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the header continues past {size} bytes")
        self.size = size


class BadHeader(ValueError):
    """Not a GGUF header, or one that contradicts itself; the message says what is wrong."""


@dataclass(frozen=True)
class Tensor:
    name: str
    dims: tuple[int, ...]  # ggml's order: ne0 (a row's length) first
    type_name: str
    nbytes: int
    offset: int  # from the start of the tensor data


@dataclass(frozen=True)
class Header:
    version: int
    metadata: dict[str, Any]  # arrays longer than 64 items are kept as their length only
    tensors: tuple[Tensor, ...]
    data_offset: int  # where the tensor data starts in the file
    array_lengths: dict[str, int] = field(default_factory=dict)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    @property
    def data_bytes(self) -> int:
        """What the tensor data needs: the end of the last tensor."""
        return max((t.offset + t.nbytes for t in self.tensors), default=0)


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, n: int) -> bytes:
        end = self.at + n
        if end > MAX_HEADER:
            raise BadHeader(f"the header would be larger than {MAX_HEADER // 2**20} MiB")
        if end > len(self.data):
            raise NeedMore(max(end, 2 * len(self.data)))
        out = self.data[self.at : end]
        self.at = end
        return out

    def unpack(self, fmt: str) -> Any:
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt)))[0]

    def count(self, what: str) -> int:
        n = int(self.unpack("Q"))
        if n > MAX_ITEMS:
            raise BadHeader(f"{what} claims {n} items")
        return n

    def string(self) -> str:
        n = self.count("a string")
        raw = self.take(n)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadHeader(f"a string at byte {self.at - n} is not UTF-8") from exc

    def value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == 8:
            return self.string()
        raise BadHeader(f"unknown value type {vtype} at byte {self.at - 4}")


def parse(prefix: bytes) -> Header:
    """The header in `prefix` (the file's first bytes). Raises NeedMore with the size to read
    when the prefix ends inside it, BadHeader when it is not a GGUF header."""
    if len(prefix) < 4:
        raise NeedMore(4)
    if prefix[:4] != MAGIC:
        raise BadHeader(f"not a GGUF file (it starts with {prefix[:4]!r}, not b'GGUF')")
    c = _Cursor(prefix)
    c.take(4)
    version = int(c.unpack("I"))
    if version not in (2, 3):
        raise BadHeader(f"GGUF version {version} (Hearth reads versions 2 and 3)")
    n_tensors = c.count("the tensor count")
    n_kv = c.count("the key-value count")
    metadata: dict[str, Any] = {}
    lengths: dict[str, int] = {}
    for _ in range(n_kv):
        key = c.string()
        vtype = int(c.unpack("I"))
        if vtype == 9:
            item_type = int(c.unpack("I"))
            n = c.count(f"array {key}")
            items = [c.value(item_type) for _ in range(n)] if item_type != 9 else None
            if items is None:
                raise BadHeader(f"{key}: arrays of arrays are not GGUF")
            lengths[key] = n
            metadata[key] = items if n <= 64 else n
        else:
            metadata[key] = c.value(vtype)
    tensors: list[Tensor] = []
    for _ in range(n_tensors):
        name = c.string()
        n_dims = int(c.unpack("I"))
        if not 1 <= n_dims <= 4:
            raise BadHeader(f"tensor {name} has {n_dims} dimensions (ggml has 1 to 4)")
        dims = tuple(int(c.unpack("Q")) for _ in range(n_dims))
        type_id = int(c.unpack("I"))
        offset = int(c.unpack("Q"))
        if type_id not in GGML_TYPES:
            raise BadHeader(f"tensor {name} has ggml type {type_id}, which Hearth does not know")
        type_name, block, size = GGML_TYPES[type_id]
        elements = 1
        for d in dims:
            elements *= d
        if dims[0] % block:
            raise BadHeader(f"tensor {name}: a row of {dims[0]} is not whole {type_name} blocks of {block}")
        tensors.append(Tensor(name, dims, type_name, elements // block * size, offset))
    alignment = int(metadata.get("general.alignment", DEFAULT_ALIGNMENT) or DEFAULT_ALIGNMENT)
    data_offset = -(-c.at // alignment) * alignment
    header = Header(version, metadata, tuple(tensors), data_offset, lengths)
    _check_layout(header)
    return header


def _check_layout(header: Header) -> None:
    """Tensors that overlap claim more bytes than they have: a header that lies about sizes."""
    spans = sorted((t.offset, t.offset + t.nbytes, t.name) for t in header.tensors)
    for (_, end, name), (start, _, other) in itertools.pairwise(spans):
        if start < end:
            raise BadHeader(f"tensors {name} and {other} overlap in the data")


def check_size(header: Header, file_size: int | None) -> None:
    """The file must hold the data its header describes (a truncated or lying file fails here)."""
    if file_size is None:
        return
    needed = header.data_offset + header.data_bytes
    if needed > file_size:
        raise BadHeader(
            f"the header describes {needed} bytes of tensors and data but the file has {file_size}"
        )

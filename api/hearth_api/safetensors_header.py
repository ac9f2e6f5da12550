"""A safetensors file's header: its tensors' dtypes, shapes and byte ranges. Pure.

The format (huggingface/safetensors): 8 bytes, a little-endian u64 N, then N bytes of JSON
mapping each tensor's name to `{dtype, shape, data_offsets: [begin, end]}` (offsets into the data
after the header), with an optional `__metadata__` of strings. So the first 8 + N bytes of a
shard describe all of it: two small Range requests.
"""

from __future__ import annotations

import itertools
import json
import struct
from dataclasses import dataclass
from typing import Any

from hearth_api.gguf_header import BadHeader, NeedMore

MAX_HEADER = 100 * 2**20  # the format's own limit (safetensors refuses larger headers)

DTYPE_BYTES = {
    "F64": 8, "I64": 8, "U64": 8,
    "F32": 4, "I32": 4, "U32": 4,
    "F16": 2, "BF16": 2, "I16": 2, "U16": 2,
    "F8_E4M3": 1, "F8_E5M2": 1, "I8": 1, "U8": 1, "BOOL": 1,
}  # fmt: skip


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int


@dataclass(frozen=True)
class Header:
    tensors: tuple[Tensor, ...]
    data_offset: int  # 8 + N

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)


def _tensor(name: str, entry: Any) -> Tensor:
    try:
        dtype = str(entry["dtype"])
        shape = tuple(int(d) for d in entry["shape"])
        begin, end = (int(o) for o in entry["data_offsets"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BadHeader(f"tensor {name}: not a safetensors entry ({exc!r})") from exc
    if dtype not in DTYPE_BYTES:
        raise BadHeader(f"tensor {name} has dtype {dtype}, which Hearth does not know")
    elements = 1
    for d in shape:
        elements *= d
    if end - begin != elements * DTYPE_BYTES[dtype]:
        raise BadHeader(
            f"tensor {name} claims {end - begin} bytes but {dtype}{list(shape)} is "
            f"{elements * DTYPE_BYTES[dtype]}"
        )
    return Tensor(name, dtype, shape, end - begin)


def parse(prefix: bytes) -> Header:
    """The header in the file's first bytes; NeedMore with the size to read, or BadHeader."""
    if len(prefix) < 8:
        raise NeedMore(8)
    (n,) = struct.unpack("<Q", prefix[:8])
    if n > MAX_HEADER:
        raise BadHeader(f"not a safetensors file (its first 8 bytes claim a {n}-byte header)")
    if len(prefix) < 8 + n:
        raise NeedMore(8 + n)
    try:
        table = json.loads(prefix[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadHeader(f"not a safetensors file (its header is not JSON: {exc})") from exc
    if not isinstance(table, dict):
        raise BadHeader("not a safetensors file (its header is not a JSON object)")
    tensors = [_tensor(name, entry) for name, entry in table.items() if name != "__metadata__"]
    spans = sorted(
        (int(entry["data_offsets"][0]), int(entry["data_offsets"][1]), name)
        for name, entry in table.items()
        if name != "__metadata__"
    )
    for (_, end, name), (begin, _, other) in itertools.pairwise(spans):
        if begin < end:
            raise BadHeader(f"tensors {name} and {other} overlap in the data")
    return Header(tuple(tensors), 8 + n)

"""Kubernetes' protobuf request bodies, decoded to the JSON objects the store keeps, for the
kinds clients send that way here: Helm's release records (Secrets, or ConfigMaps with the
configmap driver) and the DeleteOptions it deletes them with. Pure: the wire format by hand
(varints and length-delimited fields) with the field numbers of k8s.io/api's generated.proto.
Replies stay JSON, which clients accept."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

from hearth_sim.apiserver.errors import ApiError

MAGIC = b"k8s\x00"


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7


def fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of a message: varints as int, length-delimited as bytes."""
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
            yield number, value
        elif wire == 2:
            size, i = _varint(data, i)
            yield number, data[i : i + size]
            i += size
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def _text(value: int | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entry(value: int | bytes) -> tuple[str, bytes]:
    """A map entry (key = 1, value = 2)."""
    key, item = "", b""
    for number, part in fields(value if isinstance(value, bytes) else b""):
        if number == 1:
            key = _text(part)
        elif number == 2 and isinstance(part, bytes):
            item = part
    return key, item


# Each kind's fields: number → (JSON name, how its value reads). Maps are repeated entries.
Schema = dict[int, tuple[str, str]]
OBJECT_META: Schema = {
    1: ("name", "text"),
    2: ("generateName", "text"),
    3: ("namespace", "text"),
    5: ("uid", "text"),
    6: ("resourceVersion", "text"),
    11: ("labels", "map-text"),
    12: ("annotations", "map-text"),
}
SCHEMAS: dict[str, Schema] = {
    "Secret": {
        1: ("metadata", "meta"),
        2: ("data", "map-bytes"),  # base64 in JSON
        3: ("type", "text"),
        4: ("stringData", "map-text"),
        5: ("immutable", "bool"),
    },
    "ConfigMap": {
        1: ("metadata", "meta"),
        2: ("data", "map-text"),
        3: ("binaryData", "map-bytes"),
        4: ("immutable", "bool"),
    },
    "DeleteOptions": {1: ("gracePeriodSeconds", "int"), 4: ("propagationPolicy", "text")},
}


def message(data: bytes, schema: Schema) -> dict[str, Any]:
    """A message's known fields as JSON; fields the schema does not name are skipped."""
    out: dict[str, Any] = {}
    for number, value in fields(data):
        if number not in schema:
            continue
        name, how = schema[number]
        if how.startswith("map-"):
            key, item = _entry(value)
            text = base64.b64encode(item).decode() if how == "map-bytes" else item.decode()
            out.setdefault(name, {})[key] = text
        elif how == "meta" and isinstance(value, bytes):
            out[name] = message(value, OBJECT_META)
        elif how == "text":
            out[name] = _text(value)
        elif how == "bool":
            out[name] = bool(value)
        elif how == "int":
            out[name] = value
    return out


def decode(body: bytes) -> dict[str, Any]:
    """A protobuf request body (`k8s\\0` + runtime.Unknown) as the JSON object it stands for."""
    if not body.startswith(MAGIC):
        raise ApiError(400, "BadRequest", "a protobuf body must start with the k8s\\0 magic")
    kind, raw = "", b""
    for number, value in fields(body[len(MAGIC) :]):
        if number == 1 and isinstance(value, bytes):  # typeMeta: apiVersion = 1, kind = 2
            kind = next((_text(v) for n, v in fields(value) if n == 2), "")
        elif number == 2 and isinstance(value, bytes):
            raw = value
    schema = SCHEMAS.get(kind)
    if schema is None:
        raise ApiError(
            415, "UnsupportedMediaType", f"protobuf bodies of kind {kind or '?'} are not supported; send JSON"
        )
    return {"apiVersion": "v1", "kind": kind, **message(raw, schema)}

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


def object_meta(data: bytes) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    names = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}
    for number, value in fields(data):
        if number in names:
            meta[names[number]] = _text(value)
        elif number in (11, 12):  # labels, annotations
            key, item = _entry(value)
            meta.setdefault("labels" if number == 11 else "annotations", {})[key] = item.decode()
    return meta


def _secret(raw: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret"}
    for number, value in fields(raw):
        if number == 1 and isinstance(value, bytes):
            obj["metadata"] = object_meta(value)
        elif number == 2:  # data: map<string, bytes>, base64 in JSON
            key, item = _entry(value)
            obj.setdefault("data", {})[key] = base64.b64encode(item).decode()
        elif number == 3:
            obj["type"] = _text(value)
        elif number == 4:  # stringData
            key, item = _entry(value)
            obj.setdefault("stringData", {})[key] = item.decode()
        elif number == 5:
            obj["immutable"] = bool(value)
    return obj


def _config_map(raw: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap"}
    for number, value in fields(raw):
        if number == 1 and isinstance(value, bytes):
            obj["metadata"] = object_meta(value)
        elif number == 2:
            key, item = _entry(value)
            obj.setdefault("data", {})[key] = item.decode()
        elif number == 3:
            key, item = _entry(value)
            obj.setdefault("binaryData", {})[key] = base64.b64encode(item).decode()
        elif number == 4:
            obj["immutable"] = bool(value)
    return obj


def _delete_options(raw: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions"}
    for number, value in fields(raw):
        if number == 1:
            obj["gracePeriodSeconds"] = value
        elif number == 4:
            obj["propagationPolicy"] = _text(value)
    return obj


DECODERS = {"Secret": _secret, "ConfigMap": _config_map, "DeleteOptions": _delete_options}


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
    decoder = DECODERS.get(kind)
    if decoder is None:
        raise ApiError(
            415, "UnsupportedMediaType", f"protobuf bodies of kind {kind or '?'} are not supported; send JSON"
        )
    return decoder(raw)

"""Protobuf request bodies (Helm's release Secrets), decoded as kube-apiserver decodes them."""

from __future__ import annotations

import base64

import pytest

from hearth_sim.apiserver import protobuf
from hearth_sim.apiserver.errors import ApiError


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, value: bytes | int) -> bytes:
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    return varint(number << 3 | 2) + varint(len(value)) + value


def entry(key: str, value: bytes) -> bytes:
    return field(1, key.encode()) + field(2, value)


def unknown(kind: str, raw: bytes) -> bytes:
    type_meta = field(1, b"v1") + field(2, kind.encode())
    return (
        protobuf.MAGIC
        + field(1, type_meta)
        + field(2, raw)
        + field(4, b"application/vnd.kubernetes.protobuf")
    )


def test_a_helm_release_secret() -> None:
    release = b"H4sIAAAAAAAA/release-bytes\x00\xff"  # binary data survives, as base64
    meta = (
        field(1, b"sh.helm.release.v1.hearth.v1")
        + field(3, b"lab")
        + field(11, entry("owner", b"helm"))
        + field(11, entry("name", b"hearth"))
        + field(6, b"42")
    )
    raw = field(1, meta) + field(2, entry("release", release)) + field(3, b"helm.sh/release.v1")
    secret = protobuf.decode(unknown("Secret", raw))
    assert secret["kind"] == "Secret" and secret["type"] == "helm.sh/release.v1"
    assert secret["metadata"] == {
        "name": "sh.helm.release.v1.hearth.v1",
        "namespace": "lab",
        "labels": {"owner": "helm", "name": "hearth"},
        "resourceVersion": "42",
    }
    assert base64.b64decode(secret["data"]["release"]) == release


def test_delete_options_and_what_is_not_understood() -> None:
    options = protobuf.decode(unknown("DeleteOptions", field(4, b"Background") + field(1, 0)))
    assert options["propagationPolicy"] == "Background" and options["gracePeriodSeconds"] == 0
    with pytest.raises(ApiError) as refused:
        protobuf.decode(unknown("Pod", b""))
    assert refused.value.code == 415 and "Pod" in refused.value.message
    with pytest.raises(ApiError):
        protobuf.decode(b"{not protobuf}")

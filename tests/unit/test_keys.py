"""API keys: from the environment and a mounted Secret file that Kubernetes rotates in place."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hearth_router.errors import RouterError
from hearth_router.keys import KeyRing


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def mounted_secret(folder: Path, keys: str, version: int) -> Path:
    """Write `keys` the way the kubelet updates a Secret volume: a new timestamped folder, then
    the `..data` symlink swapped to it; the key file is a symlink through `..data`."""
    data = folder / f"..{version}"
    data.mkdir()
    (data / "keys").write_text(keys)
    tmp = folder / "..data_tmp"
    tmp.symlink_to(data.name)
    os.replace(tmp, folder / "..data")
    link = folder / "keys"
    if not link.is_symlink():
        link.symlink_to("..data/keys")
    return link


def allowed(ring: KeyRing, token: str) -> bool:
    try:
        ring.check(token)
    except RouterError as exc:
        assert exc.status == 401 and exc.code == "invalid_api_key"
        return False
    return True


def test_a_rotated_secret_takes_effect_without_a_restart(tmp_path: Path) -> None:
    clock = Clock()
    path = mounted_secret(tmp_path, "old-key\n", 1)
    ring = KeyRing(frozenset({"env-key"}), path, recheck_seconds=1.0, clock=clock)
    assert allowed(ring, "old-key") and allowed(ring, "env-key") and not allowed(ring, "new-key")
    mounted_secret(tmp_path, "new-key\n", 2)
    assert allowed(ring, "old-key"), "re-read at most once a second"
    clock.now = 1.0
    assert allowed(ring, "new-key") and not allowed(ring, "old-key") and allowed(ring, "env-key")


def test_an_emptied_secret_locks_everyone_out_and_a_vanished_one_keeps_the_last_keys(tmp_path: Path) -> None:
    clock = Clock()
    path = mounted_secret(tmp_path, "k1\n", 1)
    ring = KeyRing(frozenset(), path, clock=clock)
    mounted_secret(tmp_path, "\n", 2)
    clock.now = 5
    assert ring.required and not allowed(ring, "k1") and not allowed(ring, "")
    mounted_secret(tmp_path, "k2\n", 3)
    clock.now = 10
    assert allowed(ring, "k2")
    (tmp_path / "..data").unlink()  # mid-swap: the file is briefly gone
    clock.now = 15
    assert allowed(ring, "k2")


@pytest.mark.parametrize("token", ["", "k", "key-1x", "key-"])
def test_without_a_matching_key_it_is_401(token: str) -> None:
    ring = KeyRing(frozenset({"key-1", "key-2"}))
    assert not allowed(ring, token) and allowed(ring, "key-2")


def test_no_keys_configured_lets_everyone_in() -> None:
    ring = KeyRing(frozenset())
    assert not ring.required and allowed(ring, "") and allowed(ring, "anything")

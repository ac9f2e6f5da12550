"""One file into the cache over HTTP: resumed by `Range` from a `.partial` file a killed fetch
left behind, checked against the size and checksum its source publishes, then renamed into place
(so a file under its final name is always whole and verified)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from filelock import FileLock

from hearth_fetch.failures import FetchFailed, Why
from hearth_fetch.meter import Meter

CHUNK = 1 << 20
NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


@dataclass(frozen=True)
class Wanted:
    url: str
    path: Path  # where the whole file ends up
    size: int | None = None  # published size, when the source says
    sha256: str | None = None
    git_blob_sha1: str | None = None  # a Hugging Face file kept in git, not LFS

    @property
    def partial(self) -> Path:
        return self.path.with_name(self.path.name + ".partial")

    def on_disk(self) -> int:
        """Bytes of it already in the cache (whole or partial)."""
        if self.path.is_file():
            return self.path.stat().st_size
        return self.partial.stat().st_size if self.partial.is_file() else 0


class _Hashes:
    def __init__(self, want: Wanted, size: int | None) -> None:
        self.sha256 = hashlib.sha256() if want.sha256 else None
        self.sha1 = None
        if want.git_blob_sha1 and size is not None:
            self.sha1 = hashlib.sha1(f"blob {size}\0".encode())  # git's blob id

    def update(self, data: bytes) -> None:
        if self.sha256 is not None:
            self.sha256.update(data)
        if self.sha1 is not None:
            self.sha1.update(data)

    def check(self, want: Wanted) -> None:
        if self.sha256 is not None and self.sha256.hexdigest() != want.sha256:
            raise FetchFailed(
                Why.CHECKSUM,
                f"{want.path.name} has SHA-256 {self.sha256.hexdigest()}, not the {want.sha256} "
                f"expected; the download was discarded",
            )
        if self.sha1 is not None and self.sha1.hexdigest() != want.git_blob_sha1:
            raise FetchFailed(Why.CHECKSUM, f"{want.path.name} differs from the repository's copy")


def _hash_existing(path: Path, hashes: _Hashes) -> None:
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            hashes.update(block)


def _http_failure(url: str, status: int) -> FetchFailed:
    if status in (404, 410):
        return FetchFailed(Why.NOT_FOUND, f"{url} answered {status}: no such file")
    if status in (401, 403):
        return FetchFailed(Why.UNAUTHORIZED, f"{url} answered {status}: a token with access is needed")
    return FetchFailed(Why.UNREACHABLE, f"{url} answered {status}")


def _start_of(response: httpx.Response) -> int:
    """Where a 206's body starts (`Content-Range: bytes 100-199/200`)."""
    value = response.headers.get("content-range", "")
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return -1


def _whole(want: Wanted) -> bool:
    return want.path.is_file() and (want.size is None or want.path.stat().st_size == want.size)


async def fetch(
    client: httpx.AsyncClient, want: Wanted, meter: Meter, headers: dict[str, Any], counted: int = 0
) -> None:
    """Download `want` (`counted`: its bytes on disk, already in `meter`). One fetch at a time
    per file: two models with the same source share the cache, and two writers appending to one
    `.partial` would corrupt it — the second waits, then finds the file whole."""
    if _whole(want):
        return  # whole and verified on an earlier run
    want.path.parent.mkdir(parents=True, exist_ok=True)
    async with held(want.path.with_name(f".{want.path.name}.lock")):
        if _whole(want):
            meter.add(time.monotonic(), want.path.stat().st_size - counted)
            return
        if want.on_disk() != counted:  # another fetch moved it on while this one waited
            meter.add(time.monotonic(), want.on_disk() - counted)
        await _fetch_locked(client, want, meter, headers)


@contextlib.asynccontextmanager
async def held(path: Path) -> AsyncIterator[None]:
    """A lock file on the cache volume, held across pods (the waiting is off the event loop)."""
    lock = FileLock(path)
    await asyncio.to_thread(lock.acquire)
    try:
        yield
    finally:
        lock.release()


async def _fetch_locked(
    client: httpx.AsyncClient, want: Wanted, meter: Meter, headers: dict[str, Any]
) -> None:
    have = want.partial.stat().st_size if want.partial.is_file() else 0
    if want.size is not None and have > want.size:
        want.partial.unlink()
        meter.add(time.monotonic(), -have)
        have = 0
    ask = {**headers, **({"Range": f"bytes={have}-"} if have else {})}
    async with client.stream("GET", want.url, headers=ask) as response:
        if response.status_code == 416 and have and have == want.size:
            body_from = have  # the partial file is already whole
        elif response.status_code == 206 and _start_of(response) == have:
            body_from = have
        elif response.status_code == 200:
            body_from = 0  # no range support: start over
        else:
            raise _http_failure(want.url, response.status_code)
        if body_from < have:
            want.partial.unlink(missing_ok=True)
            meter.add(time.monotonic(), -have)
            have = 0
        length = response.headers.get("content-length")
        size = want.size
        if size is None and length is not None and response.status_code in (200, 206):
            size = have + int(length)
            meter.total = (meter.total or 0) + size  # its bytes on disk are in meter.done already
        hashes = _Hashes(want, size)
        if have:
            await asyncio.to_thread(_hash_existing, want.partial, hashes)
        if response.status_code != 416:
            await _write(response, want, hashes, meter)
    got = want.partial.stat().st_size
    if size is not None and got != size:
        raise FetchFailed(Why.SIZE, f"{want.path.name}: {got} bytes arrived of {size}")
    try:
        hashes.check(want)
    except FetchFailed:
        want.partial.unlink(missing_ok=True)  # a retry starts clean
        raise
    want.partial.replace(want.path)


async def _write(response: httpx.Response, want: Wanted, hashes: _Hashes, meter: Meter) -> None:
    try:
        with want.partial.open("ab") as out:
            async for block in response.aiter_bytes(CHUNK):
                out.write(block)
                hashes.update(block)
                meter.add(time.monotonic(), len(block))
    except OSError as exc:
        if exc.errno in NO_ROOM:
            raise FetchFailed(
                Why.DISK_FULL,
                f"the weights cache has no room for {want.path.name} ({meter.done} bytes written"
                + (f" of {meter.total}" if meter.total else "")
                + f"): {exc.strerror}",
            ) from exc
        raise

"""Why a fetch failed, as the operator shows it: a reason clients can branch on, a sentence for
people, and whether trying again could help (the Job retries only those)."""

from __future__ import annotations

import enum

from hearth_api.weights_cache import FAILURE_LINE_PREFIX


class Why(enum.StrEnum):
    NOT_FOUND = "NotFound"
    UNAUTHORIZED = "Unauthorized"
    CHECKSUM = "ChecksumMismatch"
    SIZE = "SizeMismatch"
    DISK_FULL = "DiskFull"
    CACHE_UNWRITABLE = "CacheUnwritable"  # the volume is read-only or not ours to write
    UNREACHABLE = "Unreachable"
    BAD_SOURCE = "BadSource"


PERMANENT = {
    Why.NOT_FOUND,
    Why.UNAUTHORIZED,
    Why.CHECKSUM,
    Why.DISK_FULL,
    Why.CACHE_UNWRITABLE,
    Why.BAD_SOURCE,
}


class FetchFailed(Exception):
    def __init__(self, why: Why, message: str) -> None:
        super().__init__(message)
        self.why = why
        self.message = message

    @property
    def permanent(self) -> bool:
        return self.why in PERMANENT

    @property
    def line(self) -> str:
        return f"{FAILURE_LINE_PREFIX}{self.why.value}: {self.message}"

"""The API keys the router accepts: those in `HEARTH_ROUTER_API_KEYS`, and those in a mounted
Secret file (`HEARTH_ROUTER_API_KEYS_FILE`, one per line), re-read when the file changes —
Kubernetes updates a mounted Secret in place (a new file behind the same path), so a rotated
key takes effect without a restart. Compared in constant time; never logged."""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from pathlib import Path

from hearth_router.errors import RouterError

log = logging.getLogger("hearth.router.keys")


def read_keys(path: Path) -> frozenset[str]:
    return frozenset(line.strip() for line in path.read_text().splitlines() if line.strip())


class KeyRing:
    def __init__(
        self,
        given: frozenset[str],
        path: Path | None = None,
        recheck_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.given, self.path, self.recheck, self.clock = given, path, recheck_seconds, clock
        self._from_file: frozenset[str] = frozenset()
        self._seen: tuple[int, int, int] | None = None  # the file's (inode, size, mtime) when read
        self._checked = float("-inf")
        self._reload()

    @property
    def required(self) -> bool:
        """Keys are required once any source is configured — even while a rotated file happens
        to be empty: an emptied Secret must lock everyone out, not let everyone in."""
        return bool(self.given) or self.path is not None

    def keys(self) -> frozenset[str]:
        now = self.clock()
        if self.path is not None and now - self._checked >= self.recheck:
            self._checked = now
            self._reload()
        return self.given | self._from_file

    def _reload(self) -> None:
        if self.path is None:
            return
        try:
            st = self.path.stat()
            seen = (st.st_ino, st.st_size, st.st_mtime_ns)
            if seen != self._seen:
                self._from_file, self._seen = read_keys(self.path), seen
                log.info("API keys read from %s: %d", self.path, len(self._from_file))
        except OSError as exc:  # mid-swap, or gone: keep the keys last read, and say so
            log.warning("cannot read the API keys file %s: %s; keeping the keys last read", self.path, exc)

    def check(self, token: str) -> None:
        """401 unless `token` is one of the keys (none required: everyone is let in)."""
        if not self.required:
            return
        # Every key compared, each in constant time: neither a key's bytes nor its place leak.
        matches = [hmac.compare_digest(token.encode(), key.encode()) for key in self.keys()]
        if not token or not any(matches):
            raise RouterError(
                401,
                "missing or invalid API key (send Authorization: Bearer <key>)",
                "invalid_request_error",
                "invalid_api_key",
            )

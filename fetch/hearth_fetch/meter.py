"""A download's rate and time left, from (time, bytes) readings. Pure.

The rate is taken over the last WINDOW seconds — recent enough to follow a connection that slows
down, long enough that one stalled second does not swing the estimate — and bytes already on
disk when the fetch started (a resumed download) do not count as speed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

WINDOW = 10.0


@dataclass
class Meter:
    total: int | None = None  # bytes of the whole download, once known
    done: int = 0  # bytes in the cache (complete files and partial ones)
    _readings: deque[tuple[float, int]] = field(default_factory=deque)

    def add(self, now: float, amount: int) -> None:
        self.done += amount
        self.mark(now)

    def skip(self, amount: int) -> None:
        """Bytes found already there (a resumed or cached part): done, but not speed."""
        self.done += amount
        self._readings = deque((t, b + amount) for t, b in self._readings)

    def mark(self, now: float) -> None:
        self._readings.append((now, self.done))
        while len(self._readings) > 2 and now - self._readings[1][0] >= WINDOW:
            self._readings.popleft()

    def rate(self) -> float | None:
        """Bytes per second over the window; None until two readings a moment apart."""
        if len(self._readings) < 2:
            return None
        (t0, b0), (t1, b1) = self._readings[0], self._readings[-1]
        if t1 - t0 < 0.2:
            return None
        return max(b1 - b0, 0) / (t1 - t0)

    def eta(self) -> float | None:
        rate = self.rate()
        if self.total is None or not rate:
            return None
        return max(self.total - self.done, 0) / rate

    def report(self) -> dict[str, float | int | None]:
        """The numbers as the operator writes them into `status.download`."""
        rate, eta = self.rate(), self.eta()
        return {
            "bytes": self.done,
            "totalBytes": self.total,
            "bytesPerSecond": round(rate, 1) if rate is not None else None,
            "etaSeconds": round(eta, 1) if eta is not None else None,
        }

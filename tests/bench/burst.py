"""A burst of HTTP requests timed by the kernel, not by a client's event loop.

A client library on the same two cores as the router (aiohttp, the OpenAI SDK) reads an answer
only when its own loop gets round to it: with a thousand requests in flight that is hundreds of
milliseconds after the bytes arrived, and "first event" would measure the client. Here each
request is written on a raw socket and every read carries the kernel's receive timestamp
(SO_TIMESTAMPNS): the moment the router's bytes reached the client's socket, however late this
process read them.

Run as a process of its own (`python -m tests.bench.burst`, a JSON spec on stdin, JSON out) so
the router's measurement does not share an interpreter with the rest of the benchmark.
"""

from __future__ import annotations

import json
import select
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Any

SO_TIMESTAMPNS = 35  # Linux (asm-generic); SCM_TIMESTAMPNS has the same value; not in `socket`


@dataclass
class Exchange:
    """One request on its own connection: when it was written, what came back and when."""

    sent: float = 0.0  # time.time() just before the request's write
    status: int = 0
    head: bytes = b""
    lines: list[tuple[float, str]] = field(default_factory=list)  # (kernel receive time, SSE data line)
    first: float | None = None  # kernel receive time of the answer's first bytes
    ended: float | None = None
    _raw: bytes = b""  # received, not yet parsed (the head, or a chunk cut by a read)
    _body: bytes = b""  # de-chunked, not yet a whole line
    _chunked: bool = False
    _left: int = 0  # bytes of the current chunk still to come

    def feed(self, data: bytes, at: float) -> None:
        """Parse what one read returned (HTTP/1.1 head, then a chunked or plain body)."""
        if self.first is None:
            self.first = at
        self._raw += data
        if not self.head:
            head, sep, rest = self._raw.partition(b"\r\n\r\n")
            if not sep:
                return
            self.head, self._raw = head, rest
            self.status = int(head.split(b" ", 2)[1])
            self._chunked = b"transfer-encoding: chunked" in head.lower()
        if self._chunked:
            self._dechunk()
        else:
            self._body, self._raw = self._body + self._raw, b""
        *whole, self._body = self._body.split(b"\n")
        self.lines += [(at, line[6:].decode()) for line in whole if line.startswith(b"data: ")]

    def _dechunk(self) -> None:
        while self._raw:
            if self._left == 0:
                size, sep, rest = self._raw.partition(b"\r\n")
                if not sep:
                    return
                if not size:  # the CRLF that ends the previous chunk's data
                    self._raw = rest
                    continue
                self._left, self._raw = int(size, 16), rest
                if self._left == 0:
                    self._raw = b""  # the last chunk
                    return
            piece = self._raw[: self._left]
            self._body += piece
            self._left -= len(piece)
            self._raw = self._raw[len(piece) :]


def _received_at(ancillary: list[tuple[int, int, bytes]]) -> float:
    for _, kind, data in ancillary:
        if kind == SO_TIMESTAMPNS:
            seconds, nanoseconds = struct.unpack("qq", data[:16])
            return float(seconds + nanoseconds / 1e9)
    return time.time()


def burst(host: str, port: int, request: bytes, n: int, spread: float, timeout: float) -> list[Exchange]:
    """`n` connections, each writing `request` once, over `spread` seconds (0: back to back);
    read until every answer has ended (the request says `Connection: close`) or `timeout`."""
    poller = select.epoll()
    exchanges = [Exchange() for _ in range(n)]
    sockets: dict[int, tuple[socket.socket, Exchange]] = {}

    def read(wait: float) -> None:
        for fd, _ in poller.poll(wait):
            sock, exchange = sockets[fd]
            try:
                data, ancillary, _, _ = sock.recvmsg(1 << 16, 256)
            except (BlockingIOError, InterruptedError):
                continue
            except ConnectionError:
                data, ancillary = b"", []
            at = _received_at(ancillary)
            if data:
                exchange.feed(data, at)
            else:
                exchange.ended = at if exchange.ended is None else exchange.ended
                poller.unregister(fd)
                sock.close()
                del sockets[fd]

    began = time.time()
    for i, exchange in enumerate(exchanges):
        due = began + spread * i / n
        while time.time() < due:
            read(max(0.0, due - time.time()))
        sock = socket.create_connection((host, port))
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        exchange.sent = time.time()
        sock.sendall(request)
        sock.setblocking(False)
        sockets[sock.fileno()] = (sock, exchange)
        poller.register(sock.fileno(), select.EPOLLIN)
        read(0)  # answers that came meanwhile (their time is the kernel's anyway)
    deadline = time.time() + timeout
    while sockets and time.time() < deadline:
        read(0.5)
    for sock, _ in sockets.values():
        sock.close()
    return exchanges


def http_request(host: str, port: int, method: str, path: str, body: dict[str, Any] | None) -> bytes:
    payload = json.dumps(body).encode() if body is not None else b""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + payload


def main() -> int:
    spec = json.load(sys.stdin)
    request = http_request(spec["host"], spec["port"], spec["method"], spec["path"], spec.get("body"))
    host, port = spec["host"], spec["port"]
    exchanges = burst(host, port, request, spec["n"], spec.get("spread", 0.0), spec["read_for"])
    out = [
        {"sent": e.sent, "status": e.status, "first": e.first, "ended": e.ended, "lines": e.lines}
        for e in exchanges
    ]
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

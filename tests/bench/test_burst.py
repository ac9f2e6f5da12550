"""The kernel-timed burst client's HTTP reading: a chunked SSE answer cut anywhere by the reads
gives the same lines, each timed by the read that completed it."""

from __future__ import annotations

import pytest

from .burst import Exchange

EVENTS = [
    b'data: {"status":"routing"}\n\n',
    b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n',
    b"data: [DONE]\n\n",
]
ANSWER = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in EVENTS)
    + b"0\r\n\r\n"
)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 16, 50, len(ANSWER)])
def test_a_chunked_answer_read_in_any_pieces_gives_every_line(size: int) -> None:
    exchange = Exchange()
    pieces = [ANSWER[i : i + size] for i in range(0, len(ANSWER), size)]
    for at, piece in enumerate(pieces):
        exchange.feed(piece, float(at))
    assert exchange.status == 200 and exchange.first == 0.0
    assert [line for _, line in exchange.lines] == [e[6:].strip().decode() for e in EVENTS]
    ends = [ANSWER.index(e) + len(e) - 2 for e in EVENTS]  # where each line's newline came
    assert [at for at, _ in exchange.lines] == [float(end // size) for end in ends]

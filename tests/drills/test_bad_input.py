"""Drill 6, by hand: requests no generator thinks of — broken and truncated JSON, wrong types in
every field, bodies too big or nested too deep, invalid UTF-8, huge headers, slow-loris clients,
unknown paths and methods. Each gets a clear 4xx in OpenAI's shape (or is cut off by a limit),
and the router goes on serving everyone else."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import httpx
import pytest

from ..cluster.router_helpers import RouterProcess
from .record import Drill

CHAT = "/v1/chat/completions"
GOOD = {"model": "nope", "messages": [{"role": "user", "content": "hi"}]}
tally = Drill(
    "07-bad-input",
    "Bad input, by hand",
    "malformed/truncated JSON, wrong types in each field, 17 MiB body, nesting 100 000 deep, "
    "invalid UTF-8, 1 MiB header, 100 slow-loris clients, unknown paths and methods",
    checked="each a 4xx naming what is wrong, in OpenAI's shape; the router serving everyone else meanwhile",
)


def error_of(response: httpx.Response) -> dict[str, Any]:
    tally.times += 1
    if response.status_code >= 500:
        tally.server_errors += 1
    body = response.json()
    assert isinstance(body.get("error"), dict) and body["error"]["message"], body
    return dict(body["error"])


BROKEN = [
    b"",
    b"{",
    b'{"model": "m", "messages": [',
    b"not json",
    b"[1, 2, 3]",
    b'"a string"',
    b"null",
    b'{"model": "m"} trailing',
    b"\xff\xfe\xfa",  # invalid UTF-8
    b'{"model": "\xc3\x28"}',  # invalid UTF-8 inside a string
    b"[" * 100_000 + b"]" * 100_000,  # past the JSON parser's recursion
    json.dumps(
        {
            **GOOD,
            "extra": [
                [
                    [
                        [
                            [
                                [
                                    [
                                        [
                                            [
                                                [
                                                    [
                                                        [
                                                            [
                                                                [
                                                                    [
                                                                        [
                                                                            [
                                                                                [
                                                                                    [
                                                                                        [
                                                                                            [
                                                                                                [
                                                                                                    [
                                                                                                        [
                                                                                                            [
                                                                                                                [
                                                                                                                    [
                                                                                                                        [
                                                                                                                            [
                                                                                                                                [
                                                                                                                                    [
                                                                                                                                        [
                                                                                                                                            [
                                                                                                                                                [
                                                                                                                                                    [
                                                                                                                                                        [
                                                                                                                                                            [
                                                                                                                                                                [
                                                                                                                                                                    [
                                                                                                                                                                        [
                                                                                                                                                                            [
                                                                                                                                                                                [
                                                                                                                                                                                    [
                                                                                                                                                                                        [
                                                                                                                                                                                            [
                                                                                                                                                                                                [
                                                                                                                                                                                                    [
                                                                                                                                                                                                        [
                                                                                                                                                                                                            [
                                                                                                                                                                                                                [
                                                                                                                                                                                                                    [
                                                                                                                                                                                                                        [
                                                                                                                                                                                                                            [
                                                                                                                                                                                                                                [
                                                                                                                                                                                                                                    [
                                                                                                                                                                                                                                        [
                                                                                                                                                                                                                                            [
                                                                                                                                                                                                                                                [
                                                                                                                                                                                                                                                    [
                                                                                                                                                                                                                                                        [
                                                                                                                                                                                                                                                            [
                                                                                                                                                                                                                                                                [
                                                                                                                                                                                                                                                                    [
                                                                                                                                                                                                                                                                        [
                                                                                                                                                                                                                                                                            [
                                                                                                                                                                                                                                                                                []
                                                                                                                                                                                                                                                                            ]
                                                                                                                                                                                                                                                                        ]
                                                                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                                                                ]
                                                                                                                                                                                                                                                            ]
                                                                                                                                                                                                                                                        ]
                                                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                                                ]
                                                                                                                                                                                                                                            ]
                                                                                                                                                                                                                                        ]
                                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                                ]
                                                                                                                                                                                                                            ]
                                                                                                                                                                                                                        ]
                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                ]
                                                                                                                                                                                                            ]
                                                                                                                                                                                                        ]
                                                                                                                                                                                                    ]
                                                                                                                                                                                                ]
                                                                                                                                                                                            ]
                                                                                                                                                                                        ]
                                                                                                                                                                                    ]
                                                                                                                                                                                ]
                                                                                                                                                                            ]
                                                                                                                                                                        ]
                                                                                                                                                                    ]
                                                                                                                                                                ]
                                                                                                                                                            ]
                                                                                                                                                        ]
                                                                                                                                                    ]
                                                                                                                                                ]
                                                                                                                                            ]
                                                                                                                                        ]
                                                                                                                                    ]
                                                                                                                                ]
                                                                                                                            ]
                                                                                                                        ]
                                                                                                                    ]
                                                                                                                ]
                                                                                                            ]
                                                                                                        ]
                                                                                                    ]
                                                                                                ]
                                                                                            ]
                                                                                        ]
                                                                                    ]
                                                                                ]
                                                                            ]
                                                                        ]
                                                                    ]
                                                                ]
                                                            ]
                                                        ]
                                                    ]
                                                ]
                                            ]
                                        ]
                                    ]
                                ]
                            ]
                        ]
                    ]
                ]
            ],
        }
    ).encode(),
]


@pytest.mark.parametrize("body", BROKEN, ids=lambda b: repr(b[:24]))
def test_bodies_that_are_not_a_json_request_get_400(router: RouterProcess, body: bytes) -> None:
    r = httpx.post(f"{router.url}{CHAT}", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert error_of(r)["type"] == "invalid_request_error"


WRONG_TYPES = [
    ("model", 5),
    ("model", ""),
    ("model", None),
    ("messages", "hi"),
    ("messages", []),
    ("messages", [1, 2]),
    ("messages", None),
    ("stream", "yes"),
    ("stream", [True]),
]


@pytest.mark.parametrize(("field", "value"), WRONG_TYPES)
@pytest.mark.parametrize("path", [CHAT, "/v1/completions", "/v1/embeddings"])
def test_a_wrong_type_in_a_field_is_a_400_naming_the_field(
    router: RouterProcess, path: str, field: str, value: Any
) -> None:
    body = {**GOOD, "prompt": "hi", "input": "hi", field: value}
    r = httpx.post(f"{router.url}{path}", json=body)
    if (path != CHAT and field == "messages") or (path == "/v1/embeddings" and field == "stream"):
        assert r.status_code == 404  # not a field of this endpoint: passed through, unknown model
        error_of(r)
        return
    assert r.status_code == 400, r.text
    assert error_of(r)["message"].startswith(field), r.text


def test_a_body_over_the_limit_is_413_before_it_is_read(router: RouterProcess) -> None:
    big = b'{"model": "m", "messages": [{"role": "user", "content": "' + b"x" * (17 * 1024 * 1024) + b'"}]}'
    r = httpx.post(f"{router.url}{CHAT}", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and error_of(r)["code"] == "request_too_large"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/nothing", 404),
        ("POST", "/v2/chat/completions", 404),
        ("GET", CHAT, 405),
        ("DELETE", "/v1/models", 405),
        ("PUT", "/api/models/x/wake", 405),
        ("POST", "/api/models/events", 405),  # the endless model feed: GET only
    ],
)
def test_unknown_paths_and_methods_are_openai_shaped(
    router: RouterProcess, method: str, path: str, status: int
) -> None:
    r = httpx.request(method, f"{router.url}{path}")
    assert r.status_code == status
    assert path in error_of(r)["message"]


def test_a_huge_header_is_refused_and_the_router_serves_on(router: RouterProcess) -> None:
    tally.times += 1
    host, port = router.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1024 * 1024) + b"\r\n\r\n")
        answer = b""
        try:
            while chunk := s.recv(65536):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    status = answer.split(b" ", 2)[1] if answer.startswith(b"HTTP/1.1 ") else b""
    assert status == b"431", answer[:200]
    assert b'"code":"headers_too_large"' in answer
    assert httpx.get(f"{router.url}/healthz").status_code == 200


async def test_slow_loris_clients_do_not_starve_the_others(router: RouterProcess) -> None:
    """A hundred clients each sending a request's head a byte at a time: the router keeps
    answering everyone else at once."""
    host, port = router.url.removeprefix("http://").split(":")
    stop = asyncio.Event()

    async def loris() -> None:
        _, writer = await asyncio.open_connection(host, int(port))
        try:
            for byte in b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n":
                if stop.is_set():
                    return
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.05)
        except ConnectionError:
            pass
        finally:
            writer.close()

    slow = [asyncio.create_task(loris()) for _ in range(100)]
    tally.times += 100
    try:
        async with httpx.AsyncClient(base_url=router.url, timeout=5) as http:
            for _ in range(20):
                r = await http.get("/v1/models")
                assert r.status_code == 200
                answer = await http.post(CHAT, json=GOOD)
                assert answer.status_code == 404
    except httpx.TimeoutException:
        tally.hung += 1
        raise
    finally:
        stop.set()
        await asyncio.gather(*slow)


def test_the_bad_input_drill_is_recorded() -> None:
    tally.save()

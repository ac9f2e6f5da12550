"""Deterministic text for the simulated engine: the same prompt always gets the same answer."""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

_WORDS = (
    "the warm hearth keeps a model ready while cold ones sleep until someone asks them "
    "a question and then they wake load their weights onto the graphics card and answer "
    "with patience one token after another like embers glowing in a quiet room at night"
).split()

REPLY_TOKENS = 32


def prompt_text(messages: list[dict[str, Any]]) -> str:
    """The text a chat request's messages carry, for seeding and token counting."""
    parts: list[str] = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):  # multi-part content: keep the text parts
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "\n".join(parts)


def count_tokens(text: str) -> int:
    """A rough, deterministic token count: words, at least one for any text."""
    return max(1, len(text.split())) if text else 0


ECHO = "echo:"


def reply_tokens(prompt: str, max_tokens: int | None) -> list[str]:
    """The answer to `prompt`: 32 words, each a token with its leading space, cut to
    `max_tokens` when that is smaller (then the engine reports finish_reason "length").
    A prompt whose last line starts with `echo:` is answered with the rest of that line, token
    by token — a model repeating what it was given (markup included, as real models do)."""
    last = prompt.rsplit("\n", 1)[-1]
    if last.startswith(ECHO):
        echoed = re.findall(r"\s*\S+", last.removeprefix(ECHO).lstrip())
        return echoed[: max_tokens or None] or [""]
    n = REPLY_TOKENS if max_tokens is None else max(1, min(max_tokens, REPLY_TOKENS))
    seed = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:4], "big")
    start = seed % len(_WORDS)
    words = [_WORDS[(start + i) % len(_WORDS)] for i in range(n)]
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


def embedding(text: str, dimensions: int = 64) -> list[float]:
    """A unit vector derived from the text's hash: stable, and equal only for equal texts."""
    raw: list[float] = []
    counter = 0
    while len(raw) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        raw.extend((b - 127.5) / 127.5 for b in digest)
        counter += 1
    vec = raw[:dimensions]
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]

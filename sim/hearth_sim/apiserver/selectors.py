"""Label and field selectors, as list and watch requests pass them."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from hearth_sim.apiserver.errors import bad_request

Matcher = Callable[[Mapping[str, Any]], bool]

_SET = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split(selector: str) -> list[str]:
    """Split on commas outside parentheses (`a in (x,y),b=c`)."""
    parts, depth, cur = [], 0, ""
    for ch in selector:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def _requirement(key: str, op: str, values: set[str]) -> Callable[[Mapping[str, str]], bool]:
    def test(labels: Mapping[str, str]) -> bool:
        if op == "present":
            return key in labels
        if op == "absent":
            return key not in labels
        return (labels.get(key) in values) == (op == "in")

    return test


def label_matcher(selector: str | None) -> Matcher:
    """`a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a` — all must hold."""
    tests: list[Callable[[Mapping[str, str]], bool]] = []
    for term in _split(selector or ""):
        if m := _SET.match(term):
            values = {v.strip() for v in m.group(3).split(",")}
            tests.append(_requirement(m.group(1), "in" if m.group(2) == "in" else "notin", values))
        elif "!=" in term:
            key, value = (s.strip() for s in term.split("!=", 1))
            tests.append(_requirement(key, "notin", {value}))
        elif "=" in term:
            key, value = (s.strip() for s in term.replace("==", "=").split("=", 1))
            tests.append(_requirement(key, "in", {value}))
        elif term.startswith("!"):
            tests.append(_requirement(term[1:].strip(), "absent", set()))
        elif re.fullmatch(r"[A-Za-z0-9./_-]+", term):
            tests.append(_requirement(term, "present", set()))
        else:
            raise bad_request(f"unable to parse requirement: {term!r}")

    def match(obj: Mapping[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(test(labels) for test in tests)

    return match


def _field(obj: Mapping[str, Any], path: str) -> str:
    node: Any = obj
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return "" if node is None else str(node)


def field_matcher(selector: str | None) -> Matcher:
    """`metadata.name=x`, `involvedObject.uid=...`, `spec.nodeName!=` — dotted paths, = and !=."""
    tests: list[tuple[str, str, bool]] = []  # (path, value, must equal)
    for term in _split(selector or ""):
        if "!=" in term:
            path, value = term.split("!=", 1)
            tests.append((path.strip(), value.strip(), False))
        elif "=" in term:
            path, value = term.replace("==", "=").split("=", 1)
            tests.append((path.strip(), value.strip(), True))
        else:
            raise bad_request(f"invalid field selector: {term!r}")
    return lambda obj: all((_field(obj, path) == value) == equal for path, value, equal in tests)

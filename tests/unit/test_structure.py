"""The tree's shape: no import circle anywhere, type-checking imports included (a module that
needs its caller's type takes a protocol, as hearth_sim.node does, instead of importing the
caller); no module or class too big to read in one sitting."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]

PACKAGES = (
    "hearth_api",
    "hearth_operator",
    "hearth_router",
    "hearth_fetch",
    "hearth_sim_engine",
    "hearth_sim",
)


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    circles = {
        tuple(sorted((module, imported)))
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if graph.find_shortest_chain(importer=imported, imported=module)
    }
    assert not circles, sorted(circles)


MODULE_LINES = 400
CLASS_LINES = 250
REASON = "Why this size:"  # in a module's or a class's docstring, followed by the reason


def _sources() -> list[Path]:
    roots = ("api", "operator", "router", "fetch", "sim_engine", "sim")
    return sorted(p for root in roots for p in (ROOT / root).rglob("*.py") if ".venv" not in p.parts)


def test_no_module_or_class_is_too_big_to_read_without_a_stated_reason() -> None:
    """Small modules with one job: past the limit, a module or class says at its top why it is
    one piece (and the reason is read in review), or it is split."""
    too_big = []
    for path in _sources():
        text = path.read_text()
        tree = ast.parse(text)
        lines = len(text.splitlines())
        if lines > MODULE_LINES and REASON not in (ast.get_docstring(tree) or ""):
            too_big.append(f"{path.relative_to(ROOT)}: {lines} lines")
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > CLASS_LINES and REASON not in (ast.get_docstring(node) or ""):
                    too_big.append(f"{path.relative_to(ROOT)}: class {node.name}, {size} lines")
    assert not too_big, "\n".join(too_big)

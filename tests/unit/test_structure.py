"""No import circle anywhere in the tree, type-checking imports included: a module that needs
its caller's type takes a protocol (hearth_sim.node) instead of importing the caller."""

from __future__ import annotations

import grimp

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

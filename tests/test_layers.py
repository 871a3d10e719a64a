"""The package's layers: no import cycles between skinseg modules, at module level or inside functions."""

from __future__ import annotations

import ast

from .conftest import ROOT


def import_graph() -> dict[str, set[str]]:
    """skinseg module -> the skinseg modules it imports (anywhere in the file)."""
    modules = {}
    for path in (ROOT / "skinseg").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if "configs" in parts:
            continue
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("skinseg"):
                for alias in node.names:
                    member = f"{node.module}.{alias.name}"
                    imported.add(member if member in modules else node.module)
            elif isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names if alias.name.startswith("skinseg")}
        graph[name] = {module for module in imported if module in modules and module != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in graph[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles_between_skinseg_modules():
    graph = import_graph()
    assert "skinseg.data.transforms" in graph and "skinseg.augment.transforms" in graph["skinseg.data.transforms"]
    assert cycles(graph) == []


def test_low_modules_import_nothing_above_them():
    """errors, files and hardware sit below everything: other modules use them, never the reverse."""
    graph = import_graph()
    assert graph["skinseg.errors"] == set()
    assert graph["skinseg.files"] <= {"skinseg.errors"}
    assert graph["skinseg.hardware"] <= {"skinseg.errors"}
    assert "skinseg.predict" not in graph["skinseg.figures.__main__"] | graph["skinseg.figures.compare"]

"""The package's layers: each module imports only its own layer and those below (`LAYERS`), and no
module imports itself back through others, at module level or inside functions.

The picture of ../shared/DESIGN.md, kept true by this test: a change of layers is a change here.
"""

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


# bottom to top (docs/architecture.md draws it); a module belongs to the most specific entry naming it or a
# package above it
LAYERS: list[tuple[str, ...]] = [
    ("skinseg", "skinseg.errors", "skinseg.lazy"),  # `skinseg` itself: the version only
    ("skinseg.files", "skinseg.hardware", "skinseg.resize", "skinseg.settings", "skinseg.registry"),
    ("skinseg.io", "skinseg.outputs", "skinseg.metrics", "skinseg.masks", "skinseg.classical"),
    ("skinseg.models", "skinseg.augment"),
    ("skinseg.losses", "skinseg.quant", "skinseg.data"),
    ("skinseg.checkpoints",),
    ("skinseg.inference",),
    ("skinseg.module", "skinseg.training", "skinseg.evaluation", "skinseg.export", "skinseg.predict",
     "skinseg.figures"),
    ("skinseg.cli", "skinseg.bench", "skinseg.classical.fit", "skinseg.commands", "skinseg.__main__"),  # over all
]


def layer_of(module: str) -> int:
    """The index in LAYERS of the most specific entry naming `module` or a package above it."""
    best, best_length = None, -1
    for index, layer in enumerate(LAYERS):
        for entry in layer:
            inside = module.startswith(entry + ".") and entry != "skinseg"  # the package itself: its version
            if (module == entry or inside) and len(entry) > best_length:
                best, best_length = index, len(entry)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best


def test_every_module_imports_only_its_layer_and_those_below():
    graph = import_graph()
    upward = sorted(f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
                    for module, targets in graph.items() for target in targets
                    if layer_of(target) > layer_of(module))
    assert upward == []


def test_the_layers_keep_what_deployment_and_maths_need_below_them():
    """Session needs no data, training or export code; the maths (losses, metrics) needs no networks; the
    data layer and the augmentations read files through `skinseg.io`, never each other's way back."""
    graph = import_graph()
    assert not any(target.startswith(("skinseg.models", "skinseg.data")) for target in graph["skinseg.losses"])
    assert not any(target.startswith("skinseg.data") for module, targets in graph.items()
                   if module.startswith("skinseg.augment") for target in targets)
    assert layer_of("skinseg.classical.fit") > layer_of("skinseg.data") > layer_of("skinseg.classical.colour")


def test_the_architecture_page_draws_these_layers():
    """docs/architecture.md's table lists the modules of each layer, top first, as LAYERS has them."""
    import re

    rows = [line for line in (ROOT / "docs" / "architecture.md").read_text().splitlines()
            if re.match(r"\| \d ", line)]
    drawn = {}
    for row in rows:
        number, modules = re.match(r"\| (\d)[^|]*\| ([^|]*)\|", row).groups()
        names = re.findall(r"`([^`]+)`", modules)
        drawn[int(number)] = {"skinseg." + name.rstrip("/").removesuffix(".py").replace("/", ".")
                              if name != "skinseg" else name for name in names}
    assert drawn == {index: set(layer) for index, layer in enumerate(LAYERS)}

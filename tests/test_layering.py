"""The package is one chain of layers without cycles: a module imports only from its own layer or
the layers below it, and the modules of a layer do not import each other in a circle.

    face_model, io, batching, compilation_cache -> geometry -> render, viz
      -> recognition, losses -> networks -> data, synthetic, train, fit -> detect, estimation
      -> export -> retarget, evaluation -> cli, main

`python tests/test_layering.py` prints the import graph by layer.
"""
import ast
import os
import sys
from collections import defaultdict

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cpem_jax")

LAYERS = (
    ("face_model", "io", "batching", "compilation_cache"),
    ("geometry",),
    ("render", "viz"),
    ("recognition", "losses"),
    ("networks",),
    ("data", "synthetic", "train", "fit"),
    ("detect", "estimation"),
    ("export",),
    ("retarget", "evaluation", "prepare"),
    ("cli", "main", "evaluate"),
)
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def _unit(module: str) -> str:
    """cpem_jax.export.gltf -> export."""
    return module.split(".")[1] if module.count(".") else ""


def import_graph() -> dict:
    """{module: set of cpem_jax modules it imports (at any depth of the file)}.

    `from package import submodule` counts as importing the submodule, not the package.
    """
    graph = {}
    for root, _, files in os.walk(PACKAGE):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(root, name)
            module = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].replace(os.sep, ".")
            module = module[:-len(".__init__")] if module.endswith(".__init__") else module
            imports = set()
            for node in ast.walk(ast.parse(open(path).read(), path)):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    imports.update(f"{node.module}.{alias.name}" for alias in node.names)
                    imports.add(node.module)
                elif isinstance(node, ast.Import):
                    imports.update(alias.name for alias in node.names)
            graph[module] = {m for m in imports if m.startswith("cpem_jax.")}
    for module, imports in graph.items():  # Keep real modules; `from pkg import sub` -> sub.
        subs = {m for m in imports if m in graph and m.rsplit(".", 1)[0] in imports}
        named = {m.rsplit(".", 1)[0] for m in subs}
        graph[module] = {m for m in imports if m in graph and (m not in named or
                         any(n.rsplit(".", 1)[0] == m and n not in graph for n in imports))}
    return graph


def test_every_package_has_a_layer():
    units = {_unit(m) for m in import_graph()} - {""}
    assert units <= set(RANK), f"give these packages a layer: {sorted(units - set(RANK))}"


def test_imports_go_down_the_chain():
    climbs = [f"{module} ({_unit(module)}) imports {target} ({_unit(target)})"
              for module, targets in import_graph().items() if _unit(module)
              for target in targets
              if _unit(target) and RANK[_unit(target)] > RANK[_unit(module)]]
    assert not climbs, "imports that climb to a higher layer:\n" + "\n".join(climbs)


def test_no_cycles_between_packages():
    edges = defaultdict(set)
    for module, targets in import_graph().items():
        for target in targets:
            if _unit(module) and _unit(target) and _unit(module) != _unit(target):
                edges[_unit(module)].add(_unit(target))
    state = {}

    def visit(unit, path):
        state[unit] = "open"
        for nxt in edges[unit]:
            assert state.get(nxt) != "open", f"import cycle: {' -> '.join(path + [nxt])}"
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[unit] = "done"

    for unit in list(edges):
        if unit not in state:
            visit(unit, [unit])


def test_no_cycles_between_modules():
    graph = import_graph()
    state = {}

    def visit(module, path):
        state[module] = "open"
        for nxt in graph.get(module, ()):
            if nxt not in graph:
                continue
            assert state.get(nxt) != "open", f"import cycle: {' -> '.join(path + [nxt])}"
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[module] = "done"

    for module in graph:
        if module not in state:
            visit(module, [module])


if __name__ == "__main__":
    graph = import_graph()
    for rank, units in enumerate(LAYERS):
        print(f"layer {rank}: {', '.join(units)}")
        for unit in units:
            below = sorted({_unit(t) for m, ts in graph.items() if _unit(m) == unit
                            for t in ts if _unit(t) and _unit(t) != unit})
            print(f"  {unit:12s} -> {', '.join(below) or '-'}")
    sys.exit(0)

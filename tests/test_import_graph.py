"""The package's import graph: no loops between modules and no import against the layering, counting
every import statement (deferred and type-only ones included), as CONTRIBUTING.md describes."""

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "m2dino"
# Lowest first: a package may import from a lower layer only (m2dino/__init__.py and its lazy names
# sit outside the layers).
LAYERS = (("limits",), ("image",), ("tasks",), ("models",), ("data",), ("evaluation",), ("training", "visualize"),
          ("selection", "recipes", "demo"), ("release",), ("cli",))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every m2dino module or package that ``path`` imports, wherever the statement stands
    (``from pkg import name`` counts as importing ``pkg.name`` too: it may be a submodule)."""
    name, is_package = module_name(path), path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "m2dino"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "m2dino":
                found |= {f"{target}.{alias.name}" for alias in node.names} if not node.module or \
                    target == name.rsplit(".", 1)[0] else {target}
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = defaultdict(set)
    for name, path in modules.items():
        for target in imports_of(path):
            # `from .pkg import name` may name a submodule; either way the edge goes to an existing module
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]
            if target != name:
                graph[name].add(target)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module (the import loops)."""
    index, low, stack, on_stack, loops = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    for node in sorted(set(graph) | {t for targets in graph.values() for t in targets}):
        if node not in index:
            visit(node)
    return loops


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else None
    return next((rank for rank, layer in enumerate(LAYERS) if top in layer), None)


def test_the_package_has_no_import_loop():
    assert strongly_connected(import_graph()) == []


def test_imports_follow_the_layers():
    against = []
    for module, targets in import_graph().items():
        for target in targets:
            mine, theirs = layer_of(module), layer_of(target)
            same_package = module.split(".")[:2] == target.split(".")[:2]
            if mine is not None and theirs is not None and not same_package and theirs >= mine:
                against.append(f"{module} -> {target}")
    assert sorted(against) == []


def test_the_checks_see_a_loop_and_an_upward_import():
    """The detectors themselves: a hand-made loop is found, and models -> training is against the layers."""
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer_of("m2dino.models.backbone") < layer_of("m2dino.training.engine")
    assert "m2dino.tasks.spec" in import_graph()["m2dino.tasks.registry"]

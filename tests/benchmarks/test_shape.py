"""The shape of benchmarks/ (benchmarks/README.md), checked statically with `ast`:

- every ``m2dino`` import names a package (``m2dino.models``, ``m2dino.data.fmc``), never a module
  inside one, and only names the package exports (in its ``__all__``, so never an underscore name):
  a benchmark that needs more says the public API lacks it;
- every top-level ``benchmarks/*.py`` is a script: a module docstring, ``main(argv=None)`` and an
  ``if __name__ == "__main__":`` guard;
- the only packages are ``harness/`` (shared) and ``<benchmark>_parts/`` beside ``<benchmark>.py``;
- every file in ``results/`` is named after the benchmark that wrote it.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS = REPO / "benchmarks"
SOURCES = sorted(p for p in BENCHMARKS.rglob("*.py") if "results" not in p.relative_to(BENCHMARKS).parts)
SCRIPTS = sorted(BENCHMARKS.glob("*.py"))


def is_package(module: str) -> bool:
    return (REPO.joinpath(*module.split(".")) / "__init__.py").is_file()


def public_names(package: str) -> set[str]:
    return set(getattr(importlib.import_module(package), "__all__", ()))


def m2dino_imports(tree: ast.AST):
    """``(line, module, names)`` of every import of m2dino, deferred ones included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "m2dino":
                    yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "m2dino":
            yield node.lineno, node.module, [alias.name for alias in node.names]


def import_problems(source: str, where: str) -> list[str]:
    problems = []
    for line, module, names in m2dino_imports(ast.parse(source, where)):
        if any(part.startswith("_") for part in module.split(".")) or not is_package(module):
            problems.append(f"{where}:{line}: imports {module}, a module: import from its package's public names")
            continue
        exported = public_names(module)
        for name in names:
            if name not in exported and not is_package(f"{module}.{name}"):
                problems.append(f"{where}:{line}: {module}.{name} is not in {module}.__all__ (export it there)")
    return problems


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(BENCHMARKS).as_posix())
def test_benchmarks_use_only_the_public_api(path):
    assert import_problems(path.read_text(), path.relative_to(REPO).as_posix()) == []


def test_the_check_catches_a_module_and_an_unexported_name():
    source = ("from m2dino.models.backbone import DINOv3Backbone\n"
              "from m2dino.data import _private\n"
              "def f():\n    import m2dino.evaluation.metrics.segmentation\n"
              "from m2dino.models import DINOv3Backbone\nfrom m2dino.data import fmc\nimport m2dino\n")
    problems = import_problems(source, "bad.py")
    assert [p.split(": ")[1] for p in problems] == [
        "imports m2dino.models.backbone, a module",
        "m2dino.data._private is not in m2dino.data.__all__ (export it there)",
        "imports m2dino.evaluation.metrics.segmentation, a module"]


def script_problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    problems = []
    if not ast.get_docstring(tree):
        problems.append("no module docstring (what it measures, the command, what it writes)")
    mains = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"]
    if not mains:
        problems.append("no main()")
    elif [a.arg for a in mains[0].args.args] != ["argv"] or len(mains[0].args.defaults) != 1:
        problems.append("main takes one argument, argv=None")
    guarded = any(isinstance(n, ast.If) and isinstance(n.test, ast.Compare)
                  and isinstance(n.test.left, ast.Name) and n.test.left.id == "__name__" for n in tree.body)
    if not guarded:
        problems.append('no `if __name__ == "__main__":` guard')
    return problems


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_every_top_level_benchmark_is_a_script(path):
    assert script_problems(path) == []


def test_the_only_packages_are_harness_and_the_parts_of_a_benchmark():
    scripts = {p.stem for p in SCRIPTS}
    for folder in sorted(p for p in BENCHMARKS.iterdir() if p.is_dir() and any(p.glob("*.py"))):
        name = folder.name
        assert name == "harness" or (name.endswith("_parts") and name.removesuffix("_parts") in scripts), (
            f"benchmarks/{name}/: a benchmark's parts live in benchmarks/<name>_parts/ beside <name>.py")


def test_every_result_is_named_after_the_benchmark_that_wrote_it():
    scripts = {p.stem for p in SCRIPTS}
    for result in sorted((BENCHMARKS / "results").iterdir()):
        assert any(result.stem == s or result.stem.startswith(s + "_") for s in scripts), (
            f"benchmarks/results/{result.name}: results are <benchmark>.{{md,json}} or <benchmark>_<variant>.*")

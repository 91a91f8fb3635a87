"""The package's imports flow one way: cli → evaluation → datasets/training →
targets/assets → export → the base layer (errors, records, limits, _progress).

Reads every module of ``ango_torch`` with :mod:`ast` (nothing is imported), builds the
graph of its imports of ``ango_torch`` modules (function-level and ``TYPE_CHECKING``
imports included: they are dependencies too), and fails on a cycle, on an import of a
higher or same-rank other stage, and on an import of another stage's private
(``_name``) module. The expected values are the layer order written down below, which
is the one the stage packages' docstrings state.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ango_torch"

# Rank of each stage; a module may import only its own stage or lower ranks. Stages of
# one rank (assets/targets, datasets/training) do not import each other.
BASE = ("errors", "records", "limits", "_progress")
RANK = {
    **{name: 0 for name in BASE},
    "export": 1,
    "assets": 2,
    "targets": 2,
    "datasets": 3,
    "training": 3,
    "evaluation": 4,
    "cli": 5,
}
FACADES = {"ango_torch", "ango_torch.__main__"}  # the public names; `python -m ango_torch`


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The ``ango_torch`` modules that module ``name`` (at ``path``) imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from pkg import mod` imports the submodule too
            targets = [source] + [f"{source}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            # importing a.b.c runs a, a.b and a.b.c: the deepest known one is the edge
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith("ango_torch") and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_module_has_a_stage() -> None:
    # expected: every module but the facades sits in a stage package or the base list
    missing = [m for m in _graph() if m not in FACADES and _stage(m) not in RANK]
    assert missing == []


def test_imports_go_down_the_stages() -> None:
    bad = []
    for module, imports in _graph().items():
        if module in FACADES:
            continue
        stage = _stage(module)
        for target in imports:
            other = _stage(target)
            if other == stage:
                continue
            if target in FACADES or RANK[other] >= RANK[stage]:
                bad.append(f"{module} → {target}")
            elif other not in BASE and target.rpartition(".")[2].startswith("_"):
                bad.append(f"{module} → {target} (another stage's private module)")
    assert bad == []


def test_no_import_cycles() -> None:
    graph = _graph()
    # Tarjan's strongly connected components; any component of 2+ modules is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert cycles == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # hand-written graphs: what the checks above must catch
        ("from ..cli import main\n", "ango_torch.cli"),
        ("from ..export import _parse\n", "ango_torch.export._parse"),
        ("import ango_torch.export.index as ix\n", "ango_torch.export.index"),
    ],
)
def test_the_walker_sees_relative_and_absolute_imports(
    tmp_path: Path, source: str, expected: str
) -> None:
    path = tmp_path / "m.py"
    path.write_text(source)
    known = set(_modules())
    assert expected in _imports("ango_torch.targets.m", path, known)


def test_the_lower_stages_import_no_torch() -> None:
    """The base, export, assets and targets stages are numpy-only, as their docstrings say:
    reading, indexing, inspect and validate start without paying for ``import torch``."""
    torch_users = []
    for name, path in _modules().items():
        if name in FACADES or RANK.get(_stage(name), 99) > 2:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                roots = [(node.module or "").split(".")[0]]
            else:
                continue
            if {"torch", "torchvision"} & set(roots):
                torch_users.append(name)
    assert torch_users == []

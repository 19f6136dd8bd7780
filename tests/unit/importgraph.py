"""The package's import graph, read from its source (AST), for the tests on its shape.

Every import statement counts: at a module's top, inside a function, under ``if
TYPE_CHECKING:`` (a cycle that only type checkers follow is still a cycle between modules a
reader must hold in mind together), absolute or relative. An import names the deepest module
of the package it reaches (``from lbaas.drivers import base`` is ``lbaas.drivers.base``,
``from lbaas.drivers import DriverError`` is the package ``lbaas.drivers``); modules outside
the package are left out. Pure functions over ``{path below operator/: source}``, so that each
test can feed them a planted case.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping

from helpers import ROOT

PACKAGE = ROOT / "operator"
NAME = "lbaas"


def sources() -> dict[str, str]:
    """Every module of the package by its path below ``operator/``."""
    return {
        path.relative_to(PACKAGE).as_posix(): path.read_text()
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def module_name(path: str) -> str:
    """``drivers/haproxy/__init__.py`` → ``lbaas.drivers.haproxy``."""
    parts = [NAME, *path.removesuffix(".py").split("/")]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _base(path: str, level: int, module: str | None) -> str:
    """The absolute module a ``from`` import starts from."""
    if level == 0:
        return module or ""
    package = module_name(path).split(".")
    if not path.endswith("__init__.py"):
        package = package[:-1]
    package = package[: len(package) - (level - 1)]
    return ".".join([*package, *([module] if module else [])])


def _deepest(name: str, known: set[str]) -> str | None:
    """``name`` or its nearest enclosing module that the package has."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(path: str, text: str, known: set[str]) -> set[str]:
    """The package's modules that ``path`` imports, by any import statement."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(text)):
        targets: Iterable[str] = ()
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _base(path, node.level, node.module)
            targets = [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            module = _deepest(target, known)
            if module is not None:
                found.add(module)
    return found


def graph(modules: Mapping[str, str]) -> dict[str, set[str]]:
    """Module → the package's modules it imports."""
    known = {module_name(path) for path in modules}
    return {module_name(path): imports_of(path, text, known) for path, text in modules.items()}


def cycles(edges: Mapping[str, set[str]]) -> list[list[str]]:
    """The import cycles: every strongly connected set of two or more modules (or one that
    imports itself), each sorted, sorted (Tarjan's algorithm, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges.get(node, ()):
                    found.append(sorted(component))
    return sorted(found)


def reachable(edges: Mapping[str, set[str]], start: Iterable[str]) -> set[str]:
    """Every module importing ``start`` loads, theirs included, with the packages that hold
    them (importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` first)."""
    seen: set[str] = set()
    todo = list(start)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo += edges.get(module, ())
        parent = module.rpartition(".")[0]
        if parent in edges:
            todo.append(parent)
    return seen

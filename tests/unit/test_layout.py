"""The package's shape, checked on its source (AST): one writer of statuses, finalizers and
Events; modules and classes a reader can hold in mind; imports at the top; nothing from the
developer tooling or the tests; and ``import lbaas`` working with the operator alone.

The checks are pure functions over ``{path: source}``, so each test also feeds them a planted
offence to show it would be caught.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from helpers import ROOT

PACKAGE = ROOT / "operator"
MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 250


def sources() -> dict[str, str]:
    """Every module of the package by its path below ``operator/``."""
    return {
        path.relative_to(PACKAGE).as_posix(): path.read_text()
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes (their text may name what they describe)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


# ---- one writer ----------------------------------------------------------------------------------

WRITERS = {"reporter.py", "kube/client.py"}
"""The reporter writes; the API client implements the requests it sends."""
WRITE_CALLS = {"apply_status", "apply_finalizer", "create_namespaced_event", "patch_status"}
K8S_STATUS_CALL = re.compile(r"^(patch|replace)_\w*_status$")  # the kubernetes client's
KOPF_POSTING = {"event", "info", "warn", "exception"}


def _key(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _is_finalizers(node: ast.expr) -> bool:
    """``x["finalizers"]`` or ``x.get("finalizers")``."""
    if isinstance(node, ast.Subscript):
        return _key(node.slice) == "finalizers"
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "get"
        and bool(node.args)
        and _key(node.args[0]) == "finalizers"
    )


def _call_writes(node: ast.Call) -> str | None:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    if name in WRITE_CALLS or K8S_STATUS_CALL.match(name):
        return f"{name}()"
    kopf = isinstance(func, ast.Attribute) and getattr(func.value, "id", "") == "kopf"
    if kopf and name in KOPF_POSTING:
        return f"kopf.{name}() posts an Event"
    if any(k.arg == "sub" and _key(k.value) == "status" for k in node.keywords):
        return f'{name}(..., sub="status")'
    if name == "path" and any(_key(a) == "status" for a in node.args):
        return 'path(..., "status")'
    mutates = name in ("append", "extend", "insert", "remove")
    if mutates and isinstance(func, ast.Attribute) and _is_finalizers(func.value):
        return f"finalizers.{name}()"
    return None


def _node_writes(node: ast.AST, docstrings: set[int]) -> str | None:
    if isinstance(node, ast.Call):
        return _call_writes(node)
    text = node.value if isinstance(node, ast.Constant) and id(node) not in docstrings else None
    if isinstance(text, str) and re.search(r"/status\b", text):
        return f"a /status path {text!r}"
    if isinstance(node, ast.Name) and node.id == "EVENTS" and isinstance(node.ctx, ast.Load):
        return "the EVENTS resource"
    if isinstance(node, ast.ImportFrom) and any(a.name == "EVENTS" for a in node.names):
        return "imports the EVENTS resource"
    if isinstance(node, ast.Dict):
        keys = {_key(k): v for k, v in zip(node.keys, node.values, strict=True)}
        if "finalizers" in keys:
            return "a body with finalizers"
        if _key(keys.get("kind")) == "Event":
            return "an Event body"
    if isinstance(node, ast.Assign | ast.AugAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if any(_is_finalizers(t) for t in targets):
            return "assigns finalizers"
    return None


def writes_outside_reporter(modules: Mapping[str, str]) -> list[str]:
    """``path:line: what`` for every status, finalizer or Event write outside the writers."""
    found = []
    for path, text in modules.items():
        if path in WRITERS:
            continue
        tree = ast.parse(text)
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            what = _node_writes(node, docstrings)
            if what:
                found.append(f"operator/{path}:{getattr(node, 'lineno', '?')}: {what}")
    return found


def test_statuses_finalizers_and_events_have_one_writer() -> None:
    found = writes_outside_reporter(sources())
    assert not found, "write through lbaas.reporter.Reporter instead:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "planted",
    [
        "await self.kube.apply_status(VIPS, ns, name, {}, manager='x')",
        "await kube.merge_patch(VIPS, ns, name, {'status': {}}, sub='status')",
        "api.patch_namespaced_custom_object_status(g, v, ns, 'vips', name, body)",
        "await kube.call('PATCH', VIPS.path(ns, name, 'status'), body=b)",
        "await kube.call('PATCH', f'/apis/lbaas.dev/v1alpha1/namespaces/{ns}/vips/{n}/status')",
        "await kube.create(EVENTS, ns, body)",
        "api.create_namespaced_event(ns, body)",
        "kopf.warn(obj, reason='X', message='y')",
        "body = {'apiVersion': 'v1', 'kind': 'Event', 'reason': 'X'}",
        "await kube.apply_finalizer(VIPS, ns, name, 'f', present=True, manager='m')",
        "meta['finalizers'] = []",
        "meta.setdefault('finalizers', []); meta['finalizers'].append('lbaas.dev/finalizer')",
        "patch = {'metadata': {'finalizers': None}}",
    ],
)
def test_the_one_writer_check_catches_a_write_elsewhere(planted: str) -> None:
    docstring = '"""A module that names /status in its docstring only."""'
    module = f"{docstring}\n\nasync def f():\n    {planted}\n"
    assert writes_outside_reporter({"trees/reconcile.py": module}), planted
    assert not writes_outside_reporter({"reporter.py": module})


def test_reading_statuses_and_finalizers_is_no_write() -> None:
    module = (
        "def f(obj):\n"
        "    done = 'lbaas.dev/finalizer' in (obj['metadata'].get('finalizers') or ())\n"
        "    return done, obj.get('status') or {}, condition(obj['status'], 'Ready')\n"
    )
    assert writes_outside_reporter({"trees/x.py": module}) == []


# ---- sizes -----------------------------------------------------------------------------------

OVERSIZE = {}
"""Known debt: classes over the limit, each with the size it must not grow beyond (split them;
then delete the entry: the test fails while an entry is no longer needed)."""


def oversize(modules: Mapping[str, str]) -> dict[str, int]:
    """Modules over MAX_MODULE_LINES and classes over MAX_CLASS_LINES, with their lines."""
    found = {}
    for path, text in modules.items():
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            found[path] = lines
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                assert node.end_lineno is not None
                size = node.end_lineno - node.lineno + 1
                if size > MAX_CLASS_LINES:
                    found[f"{path}::{node.name}"] = size
    return found


def test_no_module_or_class_is_too_long() -> None:
    found = oversize(sources())
    new = {k: v for k, v in found.items() if k not in OVERSIZE}
    grown = {k: v for k, v in found.items() if k in OVERSIZE and v > OVERSIZE[k]}
    fixed = sorted(set(OVERSIZE) - set(found))
    assert not new, f"over {MAX_MODULE_LINES} lines per module / {MAX_CLASS_LINES} per class: {new}"
    assert not grown, f"known oversize classes grew (split them first): {grown}"
    assert not fixed, f"no longer oversize: remove from OVERSIZE: {fixed}"


def test_the_conformance_kit_keeps_the_same_sizes() -> None:
    kit = ROOT / "conformance" / "lbaas_conformance"
    modules = {p.relative_to(kit).as_posix(): p.read_text() for p in sorted(kit.rglob("*.py"))}
    assert "plugin.py" in modules
    assert oversize(modules) == {}


def test_the_size_check_catches_a_long_module_and_a_long_class() -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_CLASS_LINES))
    module = "class Big:\n" + body + "".join(f"y{i} = 0\n" for i in range(MAX_MODULE_LINES))
    assert oversize({"big.py": module}) == {
        "big.py": MAX_MODULE_LINES + MAX_CLASS_LINES + 1,
        "big.py::Big": MAX_CLASS_LINES + 1,
    }
    assert oversize({"small.py": "class Small:\n" + body[: -len("    x249 = 249\n")]}) == {}


# ---- imports -----------------------------------------------------------------------------------

LOCAL_IMPORTS: dict[str, str] = {}
"""``path::function: module`` → why the import cannot be at the top (a real import cycle)."""

DEV_ONLY = {"lbaas_devtools", "lbaas_fake_driver", "helpers", "tests", "unit", "chartkit"} | {
    "lbaas_conformance",
    "lbaas_reduced_driver",
    "lbaas_legacy_driver",
    "skeleton_driver",
}


def _imports(tree: ast.AST) -> Iterator[tuple[ast.Import | ast.ImportFrom, list[str]]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield node, [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node, [node.module]


def local_imports(modules: Mapping[str, str]) -> list[str]:
    """``path::function: module`` for each import statement inside a function."""
    found = []
    for path, text in modules.items():
        for func in ast.walk(ast.parse(text)):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for _, names in _imports(func):
                found += [f"{path}::{func.name}: {name}" for name in names]
    return sorted(set(found))


def test_imports_are_at_the_top_unless_they_break_a_cycle() -> None:
    found = local_imports(sources())
    unexplained = [f for f in found if f not in LOCAL_IMPORTS]
    stale = [f for f in LOCAL_IMPORTS if f not in found]
    assert not unexplained, f"move to the module's top (or explain in LOCAL_IMPORTS): {unexplained}"
    assert not stale, f"LOCAL_IMPORTS lists imports that are gone: {stale}"


def test_the_local_import_check_catches_one() -> None:
    module = (
        "import os\n\nclass C:\n    async def f(self):\n        from lbaas.kube import resources\n"
    )
    assert local_imports({"x.py": module}) == ["x.py::f: lbaas.kube"]


def dev_imports(modules: Mapping[str, str]) -> list[str]:
    found = []
    for path, text in modules.items():
        for node, names in _imports(ast.parse(text)):
            found += [f"{path}:{node.lineno}: {n}" for n in names if n.split(".")[0] in DEV_ONLY]
    return found


def test_the_package_imports_no_developer_tooling_or_tests() -> None:
    assert dev_imports(sources()) == []
    assert dev_imports({"x.py": "def f():\n    from lbaas_devtools import quickstart\n"})


def test_import_lbaas_with_the_operator_alone(tmp_path: Path) -> None:
    """A venv holding only the operator (copied as an installed package would be: building a
    wheel needs the network here) and, through a path entry, the current venv's third-party
    packages. That path entry does not run their .pth files, so the editable dev tools, fake
    driver and the checkout itself stay out of reach, as in the image."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    shutil.copytree(PACKAGE, site / "lbaas", ignore=shutil.ignore_patterns("__pycache__"))
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    script = (
        "import importlib, importlib.util as u, pkgutil, lbaas\n"
        f"assert lbaas.__file__.startswith({str(site)!r}), lbaas.__file__\n"
        "for m in pkgutil.walk_packages(lbaas.__path__, 'lbaas.'):\n"
        "    importlib.import_module(m.name)\n"
        f"print([m for m in {sorted(DEV_ONLY)!r} if u.find_spec(m)])\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PYTHONSAFEPATH"] = "1"
    done = subprocess.run(
        [str(python), "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"reachable without being installed: {done.stdout}"

"""The package's modules import each other without cycles.

Every import statement counts (``importgraph``): a module at the top, in a function or under
``if TYPE_CHECKING:``, absolute or relative. A cycle means two modules a reader cannot hold
apart, and an import order that works by accident; break it by moving what both need to a
module below them. The check is fed planted cycles to show it would catch them.
"""

from __future__ import annotations

from unit.importgraph import cycles, graph, sources


def test_the_package_has_no_import_cycle() -> None:
    found = cycles(graph(sources()))
    assert not found, "import cycles (move what both need below them):\n" + "\n".join(
        " <-> ".join(cycle) for cycle in found
    )


def test_the_check_catches_a_cycle_hidden_under_type_checking() -> None:
    modules = {
        "trees/a.py": "from lbaas.trees.b import f\n",
        "trees/b.py": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from lbaas.trees.a import A\n"
        ),
        "trees/__init__.py": "",
    }
    assert cycles(graph(modules)) == [["lbaas.trees.a", "lbaas.trees.b"]]


def test_the_check_catches_relative_local_and_longer_cycles() -> None:
    relative = {
        "x/__init__.py": "",
        "x/a.py": "from . import b\n",
        "x/b.py": "from .c import thing\n",
        "x/c.py": "def f():\n    from ..x import a\n",
    }
    assert cycles(graph(relative)) == [["lbaas.x.a", "lbaas.x.b", "lbaas.x.c"]]
    plain = {"p.py": "import lbaas.q.r\n", "q/__init__.py": "", "q/r.py": "import lbaas.p\n"}
    assert cycles(graph(plain)) == [["lbaas.p", "lbaas.q.r"]]
    assert cycles(graph({"s.py": "from lbaas import s\n"})) == [["lbaas.s"]]


def test_the_check_lets_an_acyclic_package_pass() -> None:
    modules = {
        "__init__.py": "",
        "d/__init__.py": "from lbaas.d.e import E\n",  # a package using its own module
        "d/e.py": "import json\nfrom lbaas import VERSION\n",
        "d/f.py": "from lbaas.d import e\nfrom lbaas.d.e import E\nimport os.path\n",
    }
    edges = graph(modules)
    assert edges["lbaas.d.f"] == {"lbaas.d.e"}  # a submodule, not its package
    assert edges["lbaas.d.e"] == {"lbaas"}
    assert cycles(edges) == []

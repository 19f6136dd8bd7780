"""bench/table.py's verdict: which rows fail a run, and the exit code."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from helpers import ROOT


def table() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_table", ROOT / "bench" / "table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_table"] = module
    spec.loader.exec_module(module)
    return module


def test_missed_goals_and_unmeasured_parts_fail_a_strict_run() -> None:
    t = table()
    rows = [t.Row("a", "1 s", "< 2 s", True), t.Row("b", "3 s", "< 2 s", False), t.Row("c", "x")]
    assert t.missed("(1)", rows) == ["(1): b: 3 s (goal < 2 s)"]
    assert t.missed("(2)", [t.Row(t.NOT_MEASURED, "RuntimeError: boom")]) == [
        "(2): RuntimeError: boom"
    ]
    assert t.exit_code(["x"], strict=True) == 1
    assert t.exit_code(["x"], strict=False) == 0
    assert t.exit_code([], strict=True) == 0

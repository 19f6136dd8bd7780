"""How the plugin prints: aligned tables and indented sections (kubectl's look), or the same
data as JSON or YAML (``-o json|yaml``) for scripts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

import yaml


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], indent: str = "") -> str:
    """Columns left-aligned to their widest cell, three spaces apart; empty cells as ``-``."""
    cells = [[str(h) for h in headers]]
    cells += [["-" if c is None or c == "" else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(indent + line for line in lines)


def emit(data: Any, fmt: str, text: str, out: TextIO) -> None:
    """``data`` as JSON/YAML when asked, else the human ``text``."""
    if fmt == "json":
        out.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    elif fmt == "yaml":
        out.write(yaml.safe_dump(json.loads(json.dumps(data, default=str)), sort_keys=False))
    else:
        out.write(text.rstrip("\n") + "\n")


def fields(pairs: Mapping[str, Any], indent: str = "") -> str:
    """``Key:  value`` lines, values aligned; empty values left out."""
    shown = {k: v for k, v in pairs.items() if v not in (None, "")}
    if not shown:
        return ""
    width = max(len(k) for k in shown) + 1
    return "\n".join(f"{indent}{(k + ':').ljust(width)}  {v}" for k, v in shown.items())

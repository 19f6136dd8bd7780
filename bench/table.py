"""What every `make bench` part returns and prints: rows with a goal and a verdict."""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """One measured figure; ``ok`` is None where no issue set a goal."""

    what: str
    value: str
    goal: str = ""
    ok: bool | None = None

    @property
    def verdict(self) -> str:
        return "" if self.ok is None else "pass" if self.ok else "FAIL"


def print_table(title: str, rows: list[Row]) -> None:
    width = max(len(r.what) for r in rows)
    value_width = max(len(r.value) for r in rows)
    print(f"\n{title}\n" + "-" * (width + value_width + 30))
    for r in rows:
        goal = f"goal {r.goal}" if r.goal else ""
        print(f"{r.what:<{width}}  {r.value:<{value_width}}  {goal:<18} {r.verdict}".rstrip())
    sys.stdout.flush()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]

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


NOT_MEASURED = "not measured"


def missed(title: str, rows: list[Row]) -> list[str]:
    """What a part failed: every row whose goal was missed, and a part that measured nothing
    (an exception is no number: a bench that cannot measure must not pass)."""
    found = [f"{title}: {r.what}: {r.value} (goal {r.goal})" for r in rows if r.ok is False]
    found += [f"{title}: {r.value}" for r in rows if r.what == NOT_MEASURED]
    return found


def exit_code(misses: list[str], *, strict: bool) -> int:
    """1 when a goal was missed and the run is strict (the default), else 0."""
    return 1 if misses and strict else 0

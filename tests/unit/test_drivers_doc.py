"""docs/drivers.md says what the code does: its feature table is the vocabulary
(``capabilities.FEATURES``, same order, profiles, levels and descriptions), its contract table
names every method of the contract, its errors table every reason the core acts on."""

from __future__ import annotations

import inspect
import re

from helpers import ROOT
from lbaas.drivers.capabilities import FEATURES
from lbaas.drivers.contract import Driver
from lbaas.drivers.errors import Reason

DOC = (ROOT / "docs" / "drivers.md").read_text()
TABLE = re.compile(r"<!-- features:begin -->\n(.*?)<!-- features:end -->", re.S)


def feature_rows(text: str) -> list[tuple[str, ...]]:
    found = TABLE.search(text)
    assert found, "docs/drivers.md has no features:begin/end block"
    rows = [line for line in found.group(1).splitlines() if line.startswith("| `")]
    return [tuple(cell.strip().strip("`") for cell in row.split("|")[1:-1]) for row in rows]


def expected_table() -> str:
    lines = ["| feature | profile | level | what it means |", "|---|---|---|---|"]
    lines += [
        f"| `{f.name}` | {f.profile} | {f.level} | {f.description} |" for f in FEATURES.values()
    ]
    return "\n".join(lines)


def test_the_feature_table_is_the_vocabulary() -> None:
    want = [(f.name, f.profile, f.level, f.description) for f in FEATURES.values()]
    assert feature_rows(DOC) == want, "regenerate the table:\n" + expected_table()


def test_the_table_check_catches_a_change() -> None:
    first = next(iter(FEATURES.values()))
    changed = DOC.replace(f"| {first.description} |", "| something else |", 1)
    assert feature_rows(changed) != feature_rows(DOC)


def test_every_contract_method_is_documented() -> None:
    methods = {
        name
        for name, member in inspect.getmembers(Driver, inspect.isfunction)
        if not name.startswith("_")
    }
    assert methods >= {"apply", "apply_many", "delete", "probe", "verify", "orphans"}
    missing = sorted(m for m in methods if f"`{m}(" not in DOC)
    assert not missing, f"docs/drivers.md does not describe {missing}"


def test_every_reason_the_core_acts_on_is_documented() -> None:
    missing = sorted(r.value for r in Reason if f"`{r.value}`" not in DOC)
    assert not missing, f"docs/drivers.md's errors table lacks {missing}"

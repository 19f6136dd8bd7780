"""docs/metrics.md as data, and the operator's registered metrics, for tests that compare them.

The doc's tables (``| `name` | type | labels | meaning | cardinality |``) under headings
``## 1.`` to ``## 3.`` list what the operator exports now (3: the agents' data-plane traffic,
``lbaas.traffic``); ``## 4.`` what is planned (certificates). Tests build exporters from the
planned ones and check the rules and dashboards against them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

from helpers import ROOT

DOC = ROOT / "docs" / "metrics.md"
ROW = re.compile(r"^\| `(?P<name>lbaas_\w+)` \| (?P<type>\w+) \|(?P<labels>[^|]*)\|")
NOW_SECTIONS = ("1", "2", "3")


@dataclass(frozen=True)
class Documented:
    name: str  # the series name as queried (counters with _total)
    type: str
    labels: tuple[str, ...]
    planned: bool


def documented(path: Path = DOC) -> dict[str, Documented]:
    found: dict[str, Documented] = {}
    section = ""
    for line in path.read_text().splitlines():
        heading = re.match(r"^## (\d+)\.", line)
        if heading:
            section = heading.group(1)
        row = ROW.match(line)
        if row and section:
            labels = tuple(x.strip() for x in row.group("labels").split(",") if x.strip())
            name = row.group("name")
            assert name not in found, f"{name} documented twice"
            found[name] = Documented(
                name, row.group("type"), labels, planned=section not in NOW_SECTIONS
            )
    return found


def registered() -> dict[str, Documented]:
    """Every metric object of ``lbaas.metrics`` and every family of its traffic collector
    (``lbaas.traffic``), named as queried."""
    from lbaas import metrics

    found = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            kind = value._type
            name = value._name + ("_total" if kind == "counter" else "")
            found[name] = Documented(name, kind, tuple(value._labelnames), planned=False)
    for family in metrics.TRAFFIC.describe():
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = tuple(getattr(family, "_labelnames", ()))
        found[name] = Documented(name, family.type, labels, planned=False)
    return found


SUFFIXES = ("_bucket", "_sum", "_count")


def names_in(expr: str) -> set[str]:
    """The lbaas_* series an expression reads (histogram suffixes taken off)."""
    names = set()
    for name in re.findall(r"\blbaas_\w+", expr):
        for suffix in SUFFIXES:
            if name.endswith(suffix):
                name = name[: -len(suffix)]
        names.add(name)
    return names

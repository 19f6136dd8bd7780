"""docs/metrics.md against the operator's registered metrics, the alert rules and dashboards."""

from __future__ import annotations

import json

import pytest
from chartkit import CHART, require_helm
from metricsdoc import documented, names_in, registered
from promkit import alerts, render_rules


def test_every_registered_metric_is_documented_with_its_type_and_labels() -> None:
    docs = documented()
    ours = registered()
    assert ours, "no metric found in lbaas.metrics"
    problems = []
    for name, metric in sorted(ours.items()):
        doc = docs.get(name)
        if doc is None or doc.planned:
            problems.append(f"{name}: not in sections 1-3 of docs/metrics.md")
        elif (doc.type, doc.labels) != (metric.type, metric.labels):
            problems.append(
                f"{name}: documented {doc.type} {doc.labels}, is {metric.type} {metric.labels}"
            )
    stale = [n for n, d in docs.items() if not d.planned and n not in ours]
    assert not problems and not stale, (problems, f"documented but not exported: {stale}")


def test_the_data_plane_series_are_exported_and_certificates_planned() -> None:
    docs = documented()
    kinds = ("requests_total", "responses_total", "bytes_in_total", "bytes_out_total",
             "current_sessions", "connection_errors_total", "response_time_seconds")  # fmt: skip
    ours = registered()
    for level in ("vip", "pool", "member"):
        assert {f"lbaas_{level}_{k}" for k in kinds} <= set(ours), level
    assert not docs["lbaas_vip_requests_total"].planned
    assert docs["lbaas_certificate_expiry_timestamp_seconds"].planned
    assert docs["lbaas_certificate_expiry_timestamp_seconds"].labels == (
        "namespace", "vip", "secret")  # fmt: skip
    assert docs["lbaas_member_requests_total"].labels[-1] == "member"


@pytest.fixture(scope="module")
def rules() -> dict:  # type: ignore[type-arg]
    return render_rules(require_helm())


def dashboard_exprs() -> list[str]:
    exprs = []
    for path in sorted((CHART / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        exprs += [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
        exprs += [v["query"] for v in board["templating"]["list"] if v["type"] == "query"]
    return exprs


def test_rules_and_dashboards_read_only_documented_series(rules: dict) -> None:  # type: ignore[type-arg]
    docs = documented()
    exprs = [r["expr"] for r in alerts(rules).values()] + dashboard_exprs()
    assert len(exprs) > 40
    unknown = {n for e in exprs for n in names_in(e)} - set(docs)
    assert not unknown, f"series not in docs/metrics.md: {sorted(unknown)}"
    # Every exported fleet gauge feeds a rule or a panel (or it is noise).
    used = {n for e in exprs for n in names_in(e)}
    unused = [n for n, d in docs.items() if not d.planned and n not in used]
    assert not unused, f"exported but read by no rule or dashboard: {unused}"

"""The chart's Grafana dashboards: valid, generated, shipped, and every query answered by a real
Prometheus.

The Prometheus test: one exporter serves the operator's real metric objects (lbaas.metrics,
given a sample of label values, and its traffic collector fed counters that grow), another
the planned certificate series built from docs/metrics.md; a real ``prometheus`` scrapes
both every second; then every panel query and template-variable query (Grafana's macros
expanded) and every alert expression is evaluated through ``/api/v1/query``: none may fail,
and every dashboard query must return data (a query naming a label the series do not have
returns nothing, and fails here).
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chartkit import CHART, of_kind, render, require_helm
from metricsdoc import documented
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.metrics import MetricWrapperBase
from promkit import Prometheus, alerts, grafana_expr, render_rules

from helpers import free_port
from lbaas import metrics
from lbaas.drivers.contract import LoadBalancerStats, TrafficStats
from lbaas.drivers.model import Listener, LoadBalancer, Member, Pool, Protocol
from lbaas_devtools import dashboards

BOARDS = sorted((CHART / "dashboards").glob("*.json"))

# Label values the samples get: enough for every filter of the rules and panels to match.
VALUES: dict[str, tuple[str, ...]] = {
    "kind": ("VIP", "Member", "device"),
    "phase": ("Ready", "NotReady", "Error", "Pending", "Active"),
    "reason": ("NoAgent", "ProbeFailed"),
    "outcome": ("ok", "error"),
    "op": ("apply", "probe"),
    "class": ("2xx", "5xx"),
}
TIMESTAMPS = {"lbaas_objects_oldest_in_phase_timestamp_seconds": -900.0,
              "lbaas_certificate_expiry_timestamp_seconds": 5 * 86400.0}  # fmt: skip


def boards() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in BOARDS}


def queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, expression) of every panel target and query variable."""
    found = [
        (f"panel {p['title']!r} {t['refId']}", t["expr"])
        for p in board["panels"]
        for t in p.get("targets", [])
    ]
    found += [
        (f"variable {v['name']}", v["query"])
        for v in board["templating"]["list"]
        if v["type"] == "query"
    ]
    return found


# ---- structure ---------------------------------------------------------------------------------


def test_committed_dashboards_are_the_generated_ones() -> None:
    assert [p.stem for p in BOARDS] == sorted(dashboards.DASHBOARDS)
    assert dashboards.main(["--check"]) == 0, "run `make dashboards`"


def test_dashboards_are_well_formed() -> None:
    uids = set()
    for name, board in boards().items():
        assert board["uid"] not in uids and len(board["uid"]) <= 40, name
        uids.add(board["uid"])
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)) and 0 not in ids, f"{name}: panel ids {ids}"
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        for panel in board["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= 24, f"{name}: {panel['title']}"
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel.get("options"), f"{name}: {panel['title']} has no options"
            refs = [t["refId"] for t in panel["targets"]]
            assert refs and len(refs) == len(set(refs)) and all(refs), panel["title"]
        assert len(queries(board)) >= 10, name


def test_chart_ships_each_dashboard_as_a_configmap() -> None:
    helm = require_helm()
    maps = of_kind(render(helm), "ConfigMap")
    shipped = {k: json.loads(v) for m in maps for k, v in m["data"].items()}
    assert shipped == {f"{name}.json": board for name, board in boards().items()}
    assert all(m["metadata"]["labels"]["grafana_dashboard"] == "1" for m in maps)
    off = of_kind(render(helm, "--set", "metrics.dashboards.enabled=false"), "ConfigMap")
    assert not off
    moved = render(helm, "--set", "metrics.dashboards.namespace=monitoring")
    assert {m["metadata"]["namespace"] for m in of_kind(moved, "ConfigMap")} == {"monitoring"}


# ---- every query on a real Prometheus -----------------------------------------------------------


def _label_sets(labels: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    choices = [VALUES.get(label, (f"{label}-1",)) for label in labels]
    return itertools.product(*choices)


def _fill_operator_metrics() -> None:
    """Give every metric of lbaas.metrics samples (the real objects the operator exports)."""
    import time

    for metric in vars(metrics).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        for values in _label_sets(tuple(metric._labelnames)):
            child = metric.labels(*values) if values else metric
            if metric._type == "counter":
                child.inc()
            elif metric._type == "histogram":
                child.observe(0.2)
            else:
                offset = TIMESTAMPS.get(metric._name)
                child.set(time.time() + offset if offset is not None else 9.0)
    metrics.DEVICE_ADDRESSES.labels("device-1").set(9.5)  # 9 of 9.5 used: over 90 %
    for labels in _label_sets(tuple(metrics.DEVICE_PHASE._labelnames)):
        metrics.DEVICE_PHASE.labels(*labels).set(1)  # what the fleet gauges set
    metrics.IS_LEADER.set(1)


TRAFFIC_LB = LoadBalancer(
    "namespace-1", "vip-1", "10.0.0.1",
    listeners=(Listener("listener-1", 80, Protocol.HTTP, default_pool="pool-1"),),
    pools=(Pool("pool-1", protocol=Protocol.HTTP,
                members=(Member("member-1", "10.0.0.2", 80),)),),
)  # fmt: skip


def _traffic(n: int) -> None:
    """The agents' traffic collector (the real one), as after its ``n``-th read of a device."""
    import time

    counters = TrafficStats(requests=10 * n, responses={"2xx": 9 * n, "5xx": n},
                            bytes_in=100 * n, bytes_out=1000 * n, current_sessions=2,
                            connection_errors=n, response_time_ms=25.0)  # fmt: skip
    stats = LoadBalancerStats(listeners={"listener-1": counters}, pools={"pool-1": counters},
                              members={"member-1": counters})  # fmt: skip
    metrics.TRAFFIC.update("device-1", [TRAFFIC_LB], {TRAFFIC_LB.key: stats}, time.time())


def _planned_registry() -> CollectorRegistry:
    """The planned series of docs/metrics.md (section 4), with samples."""
    import time

    registry = CollectorRegistry()
    for doc in documented().values():
        if not doc.planned:
            continue
        if doc.type == "counter":
            counter = Counter(doc.name.removesuffix("_total"), "planned", doc.labels,
                              registry=registry)  # fmt: skip
            for values in _label_sets(doc.labels):
                counter.labels(*values).inc(3)
        else:
            gauge = Gauge(doc.name, "planned", doc.labels, registry=registry)
            offset = TIMESTAMPS.get(doc.name)
            for values in _label_sets(doc.labels):
                gauge.labels(*values).set(time.time() + offset if offset is not None else 0.25)
    return registry


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    _fill_operator_metrics()
    _traffic(1)
    ports = [free_port("127.0.0.1"), free_port("127.0.0.1")]
    servers = [
        start_http_server(ports[0], "127.0.0.1", REGISTRY),
        start_http_server(ports[1], "127.0.0.1", _planned_registry()),
    ]
    stop = threading.Event()

    def tick() -> None:  # counters that move, so rates are not all zero
        n = 1
        while not stop.wait(0.5):
            n += 1
            metrics.RECONCILES.labels("VIP", "ok").inc()
            metrics.DRIVER_CALLS.labels("driver-1", "device-1", "apply", "error").inc()
            _traffic(n)

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    work = tmp_path_factory.mktemp("prometheus")
    try:
        with Prometheus(work, [f"127.0.0.1:{p}" for p in ports]) as prom:
            prom.wait_scraped("lbaas_vip_requests_total", samples=3)
            prom.wait_scraped("lbaas_reconcile_total", samples=3)
            yield prom
    finally:
        stop.set()
        for server, _thread in servers:
            server.shutdown()


@pytest.mark.parametrize("name", [p.stem for p in BOARDS])
def test_every_dashboard_query_returns_data(prometheus: Prometheus, name: str) -> None:
    empty = []
    for where, expr in queries(boards()[name]):
        if not prometheus.query(grafana_expr(expr)):  # an error raises, naming the query
            empty.append(f"{where}: {expr}")
    assert not empty, "queries that found no series:\n" + "\n".join(empty)


def test_every_alert_expression_evaluates(prometheus: Prometheus, tmp_path: Path) -> None:
    rules = alerts(render_rules(require_helm()))
    assert len(rules) == 11
    fired = {name for name, rule in rules.items() if prometheus.query(rule["expr"])}
    # The samples hold a device NotReady, one without agent, addresses 9 of 9.5 used, an object
    # in Error and one Pending for 15 minutes, a certificate 5 days from expiry, failing applies.
    assert {"LbaasDeviceNotReady", "LbaasDeviceWithoutAgent", "LbaasAddressPoolNearlyFull",
            "LbaasObjectInError", "LbaasObjectStuckPending", "LbaasCertificateExpiringSoon",
            "LbaasDriverApplyFailing"} <= fired, fired  # fmt: skip
    assert "LbaasControllerLeaderMissing" not in fired


def test_grafana_expr_expands_what_grafana_does() -> None:
    assert grafana_expr('rate(x{a=~"$vip"}[$__rate_interval])') == 'rate(x{a=~".*"}[1m])'
    assert grafana_expr('label_values(m{n=~"$namespace"}, vip)') == 'group by (vip) (m{n=~".*"})'

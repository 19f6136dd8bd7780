"""The chart's Grafana dashboards, as code: ``python -m lbaas_devtools.dashboards [--check]``.

Writes ``charts/lbaas-operator/dashboards/*.json`` (``make dashboards``) with Grafana's own
builder library (grafana-foundation-sdk); ``--check`` fails when a committed file differs.
Every query uses only series documented in docs/metrics.md: the operator's own, and the
data-plane ones the agents export (``lbaas_vip_*``, ``lbaas_pool_*``, ``lbaas_member_*``).
Every operator process exports the fleet gauges, so those are taken ``max`` over processes;
data-plane counters come from the one agent that owns a device at a time (``sum`` over them
covers a handover). tests/unit/test_dashboards.py evaluates every query on a real Prometheus.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common, dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    LegendDisplayMode,
    LegendPlacement,
    SortOrder,
    TooltipDisplayMode,
)
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    GridPos,
    VariableOption,
    VariableRefresh,
)

OUT = Path(__file__).resolve().parents[2] / "charts" / "lbaas-operator" / "dashboards"
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"
OPERATOR = "and on (instance, job) lbaas_leader"  # an operator process: it exports this


@dataclass(frozen=True)
class Q:
    """One query of a panel: the expression and its legend."""

    expr: str
    legend: str = ""
    instant: bool = False


@dataclass(frozen=True)
class P:
    """One panel: its kind (timeseries, stat, table), title, queries, unit and width."""

    kind: str
    title: str
    queries: tuple[Q, ...]
    unit: str = "short"
    width: int = 12
    description: str = ""


Section = tuple[str, list[P]]


def ts(title: str, *queries: Q, unit: str = "short", width: int = 12, about: str = "") -> P:
    return P("timeseries", title, queries, unit, width, about)


def st(title: str, expr: str, unit: str = "short", about: str = "") -> P:
    return P("stat", title, (Q(expr, instant=True),), unit, 6, about)


def tab(title: str, *queries: Q, width: int = 24, about: str = "") -> P:
    return P("table", title, queries, "short", width, about)


def _target(query: Q, ref: str) -> prometheus.Dataquery:
    target = prometheus.Dataquery().expr(query.expr).ref_id(ref).legend_format(query.legend)
    if query.instant:
        target = target.instant().format("table")
    return target


def _options(kind: str) -> Any:
    """A panel of ``kind`` with its options set (never null: Grafana expects an object)."""
    if kind == "timeseries":
        legend = common.VizLegendOptions().show_legend(True)
        legend = legend.display_mode(LegendDisplayMode.LIST).placement(LegendPlacement.BOTTOM)
        tooltip = common.VizTooltipOptions().mode(TooltipDisplayMode.MULTI)
        return timeseries.Panel().legend(legend).tooltip(tooltip.sort(SortOrder.DESCENDING))
    if kind == "stat":
        return stat.Panel().reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]))
    return table.Panel().show_header(True)


def _panel(p: P, pid: int, pos: GridPos) -> Any:
    builder = _options(p.kind)
    builder = builder.id(pid).title(p.title).datasource(DS).unit(p.unit).grid_pos(pos)
    if p.description:
        builder = builder.description(p.description)
    for i, query in enumerate(p.queries):
        builder = builder.with_target(_target(query, chr(ord("A") + i)))
    return builder


def _variable(name: str, label: str, query: str) -> dashboard.QueryVariable:
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(DS)
        .query(query)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(VariableOption(text="All", value="$__all"))
    )


def build(
    uid: str, title: str, sections: Iterable[Section], variables: Iterable[Any] = ()
) -> dict[str, Any]:
    """A dashboard: one row per section, panels laid out left to right, 8 units high."""
    board = (
        dashboard.Dashboard(title)
        .uid(uid)
        .tags(["lbaas"])
        .refresh("30s")
        .time("now-3h", "now")
        .timezone("browser")
        .editable()
        .with_variable(
            dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")
        )
    )
    for variable in variables:
        board = board.with_variable(variable)
    pid, y = 1, 0
    for name, panels in sections:
        board = board.with_row(dashboard.Row(name).id(pid).grid_pos(GridPos(h=1, w=24, x=0, y=y)))
        pid, y, x = pid + 1, y + 1, 0
        for p in panels:
            height = 4 if p.kind == "stat" else 8
            if x + p.width > 24:
                x, y = 0, y + 8
            board = board.with_panel(_panel(p, pid, GridPos(h=height, w=p.width, x=x, y=y)))
            pid, x = pid + 1, x + p.width
        y += 8
    result: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True).encode(board.build()))
    return result


# ---- the three dashboards ----------------------------------------------------------------------


def fleet() -> dict[str, Any]:
    vips = 'max by (phase) (lbaas_objects{kind="VIP"})'
    vips_error = 'max by (phase) (lbaas_objects{kind="VIP", phase="Error"})'
    ratio = "max by (device) (lbaas_device_addresses_used) / max by (device) (lbaas_device_addresses > 0)"  # noqa: E501
    return build(
        "lbaas-fleet",
        "LBaaS / Fleet overview",
        [
            ("Now", [
                st("VIPs", f"sum({vips})"),
                st("VIPs in Error", f"sum({vips_error}) or vector(0)"),
                st("Devices Ready", 'count(max by (device) (lbaas_device_status_phase{phase="Ready"})) or vector(0)'),  # noqa: E501
                st("Devices not Ready", 'count(max by (device) (lbaas_device_status_phase{phase!="Ready"})) or vector(0)'),  # noqa: E501
            ]),
            ("Objects", [
                ts("Objects by kind and phase", Q("max by (kind, phase) (lbaas_objects)", "{{kind}} {{phase}}")),  # noqa: E501
                ts("Members by operating status", Q("max by (status) (lbaas_member_operating_status)", "{{status}}")),  # noqa: E501
                ts("Longest in Error / Pending", Q("time() - min by (kind, phase) (lbaas_objects_oldest_in_phase_timestamp_seconds)", "{{kind}} {{phase}}"), unit="s",  # noqa: E501
                   about="How long the longest-standing object of each kind has been in phase Error or Pending (alerts LbaasObjectInError, LbaasObjectStuckPending)."),  # noqa: E501
                ts("Certificates: time left (soonest 10)", Q("bottomk(10, min by (namespace, vip, secret) (lbaas_certificate_expiry_timestamp_seconds) - time())", "{{namespace}}/{{vip}} {{secret}}"), unit="s"),  # noqa: E501
            ]),
            ("Devices", [
                tab("Devices",
                    Q("max by (device, phase, reason) (lbaas_device_status_phase)", instant=True),
                    Q("max by (device) (lbaas_device_vips)", instant=True),
                    Q("max by (device) (lbaas_device_capacity)", instant=True),
                    Q(ratio, instant=True)),
                ts("VIPs per device", Q("max by (device) (lbaas_device_vips)", "{{device}}")),
                ts("Address pool used", Q(ratio, "{{device}}"), unit="percentunit"),
            ]),
            ("Work", [
                ts("Reconciles by outcome", Q(f"sum by (kind, outcome) (rate(lbaas_reconcile_total[{RATE}]))", "{{kind}} {{outcome}}"), unit="ops"),  # noqa: E501
                ts("Reconcile p95", Q(f"histogram_quantile(0.95, sum by (kind, le) (rate(lbaas_reconcile_duration_seconds_bucket[{RATE}])))", "{{kind}}"), unit="s"),  # noqa: E501
                ts("Driver calls by operation and outcome", Q(f"sum by (op, outcome) (rate(lbaas_driver_calls_total[{RATE}]))", "{{op}} {{outcome}}"), unit="ops"),  # noqa: E501
                ts("Driver call p95 by operation", Q(f"histogram_quantile(0.95, sum by (op, le) (rate(lbaas_driver_call_duration_seconds_bucket[{RATE}])))", "{{op}}"), unit="s"),  # noqa: E501
                ts("Drift repaired on devices", Q(f"sum by (device, kind) (increase(lbaas_drift_repairs_total[{RATE}]))", "{{device}} {{kind}}")),  # noqa: E501
                ts("Kubernetes API writes by resource", Q(f"sum by (resource) (rate(lbaas_api_writes_total[{RATE}]))", "{{resource}}"), unit="ops"),  # noqa: E501
                ts("Kubernetes API request p95", Q(f"histogram_quantile(0.95, sum by (method, le) (rate(lbaas_api_request_duration_seconds_bucket[{RATE}])))", "{{method}}"), unit="s"),  # noqa: E501
                ts("Service objects written", Q(f"sum by (kind, op) (rate(lbaas_service_object_writes_total[{RATE}]))", "{{kind}} {{op}}"), unit="ops"),  # noqa: E501
            ]),
        ],
    )  # fmt: skip


def _sel(extra: str = "") -> str:
    return '{namespace=~"$namespace", vip=~"$vip"' + extra + "}"


def traffic() -> dict[str, Any]:
    v, v5, by = _sel(), _sel(', class="5xx"'), "sum by (namespace, vip)"
    return build(
        "lbaas-vip-traffic",
        "LBaaS / VIP traffic",
        [
            ("VIPs", [
                ts("Requests (HTTP) or connections (TCP) per second", Q(f"{by} (rate(lbaas_vip_requests_total{v}[{RATE}]))", "{{namespace}}/{{vip}}"), unit="reqps"),  # noqa: E501
                ts("Responses by class", Q(f"sum by (namespace, vip, class) (rate(lbaas_vip_responses_total{v}[{RATE}]))", "{{namespace}}/{{vip}} {{class}}"), unit="reqps"),  # noqa: E501
                ts("5xx ratio", Q(f"{by} (rate(lbaas_vip_responses_total{v5}[{RATE}])) / {by} (rate(lbaas_vip_responses_total{v}[{RATE}]))", "{{namespace}}/{{vip}}"), unit="percentunit"),  # noqa: E501
                ts("Connection errors per second", Q(f"{by} (rate(lbaas_vip_connection_errors_total{v}[{RATE}]))", "{{namespace}}/{{vip}}"), unit="ops"),  # noqa: E501
                ts("Bytes in / out", Q(f"{by} (rate(lbaas_vip_bytes_in_total{v}[{RATE}]))", "{{namespace}}/{{vip}} in"), Q(f"-{by} (rate(lbaas_vip_bytes_out_total{v}[{RATE}]))", "{{namespace}}/{{vip}} out"), unit="Bps"),  # noqa: E501
                ts("Current sessions", Q(f"{by} (lbaas_vip_current_sessions{v})", "{{namespace}}/{{vip}}")),  # noqa: E501
                ts("Response time (device's recent average)", Q(f"max by (namespace, vip, listener) (lbaas_vip_response_time_seconds{v})", "{{namespace}}/{{vip}} {{listener}}"), unit="s"),  # noqa: E501
            ]),
            ("Pools", [
                ts("Pool requests per second", Q(f"sum by (namespace, vip, pool) (rate(lbaas_pool_requests_total{v}[{RATE}]))", "{{namespace}}/{{vip}} {{pool}}"), unit="reqps"),  # noqa: E501
                ts("Pool connection errors per second", Q(f"sum by (namespace, vip, pool) (rate(lbaas_pool_connection_errors_total{v}[{RATE}]))", "{{namespace}}/{{vip}} {{pool}}"), unit="ops"),  # noqa: E501
                ts("Pool response time", Q(f"max by (namespace, vip, pool) (lbaas_pool_response_time_seconds{v})", "{{namespace}}/{{vip}} {{pool}}"), unit="s"),  # noqa: E501
                ts("Pool sessions", Q(f"sum by (namespace, vip, pool) (lbaas_pool_current_sessions{v})", "{{namespace}}/{{vip}} {{pool}}")),  # noqa: E501
                ts("Pool responses by class", Q(f"sum by (namespace, vip, pool, class) (rate(lbaas_pool_responses_total{v}[{RATE}]))", "{{namespace}}/{{vip}} {{pool}} {{class}}"), unit="reqps"),  # noqa: E501
                ts("Pool bytes in / out", Q(f"sum by (namespace, vip, pool) (rate(lbaas_pool_bytes_in_total{v}[{RATE}]))", "{{vip}} {{pool}} in"), Q(f"-sum by (namespace, vip, pool) (rate(lbaas_pool_bytes_out_total{v}[{RATE}]))", "{{vip}} {{pool}} out"), unit="Bps"),  # noqa: E501
            ]),
            ("Members (when the agents export member series)", [
                ts("Member requests per second", Q(f"sum by (namespace, vip, pool, member) (rate(lbaas_member_requests_total{v}[{RATE}]))", "{{vip}} {{pool}} {{member}}"), unit="reqps"),  # noqa: E501
                ts("Member 5xx per second", Q(f"sum by (namespace, vip, pool, member) (rate(lbaas_member_responses_total{v5}[{RATE}]))", "{{vip}} {{pool}} {{member}}"), unit="reqps"),  # noqa: E501
                ts("Member connection errors per second", Q(f"sum by (namespace, vip, pool, member) (rate(lbaas_member_connection_errors_total{v}[{RATE}]))", "{{vip}} {{pool}} {{member}}"), unit="ops"),  # noqa: E501
                ts("Member response time", Q(f"max by (namespace, vip, pool, member) (lbaas_member_response_time_seconds{v})", "{{vip}} {{pool}} {{member}}"), unit="s"),  # noqa: E501
                ts("Member sessions", Q(f"sum by (namespace, vip, pool, member) (lbaas_member_current_sessions{v})", "{{vip}} {{pool}} {{member}}")),  # noqa: E501
                ts("Member bytes in / out", Q(f"sum by (namespace, vip, pool, member) (rate(lbaas_member_bytes_in_total{v}[{RATE}]))", "{{vip}} {{member}} in"), Q(f"-sum by (namespace, vip, pool, member) (rate(lbaas_member_bytes_out_total{v}[{RATE}]))", "{{vip}} {{member}} out"), unit="Bps"),  # noqa: E501
            ]),
        ],
        [
            _variable("namespace", "Namespace", "label_values(lbaas_vip_requests_total, namespace)"),  # noqa: E501
            _variable("vip", "VIP", 'label_values(lbaas_vip_requests_total{namespace=~"$namespace"}, vip)'),  # noqa: E501
        ],
    )  # fmt: skip


def agents() -> dict[str, Any]:
    return build(
        "lbaas-agents",
        "LBaaS / Agents and Leases",
        [
            ("Ownership", [
                st("Leading controllers", "sum(lbaas_leader)"),
                st("Agents holding devices", "count(max by (agent) (lbaas_agent_devices) > 0) or vector(0)"),  # noqa: E501
                st("Devices without an agent", 'count(max by (device) (lbaas_device_status_phase{reason="NoAgent"})) or vector(0)'),  # noqa: E501
                st("Device owner changes (range)", "sum(max by (device) (max_over_time(lbaas_device_lease_transitions[$__range]) - min_over_time(lbaas_device_lease_transitions[$__range])))"),  # noqa: E501
                ts("Devices held per agent", Q("max by (agent) (lbaas_agent_devices)", "{{agent}}")),  # noqa: E501
                ts("Device Lease transitions (owners so far)", Q("max by (device) (lbaas_device_lease_transitions)", "{{device}}")),  # noqa: E501
                ts("Age of the traffic counters per device (seconds since the owner's last read)", Q("time() - max by (device) (lbaas_traffic_stats_timestamp_seconds)", "{{device}}"), unit="s"),  # noqa: E501
                ts("Controller leader", Q("max by (instance) (lbaas_leader)", "{{instance}}")),
                ts("Leader changes", Q(f"sum by (transition) (increase(lbaas_leader_changes_total[{RATE}]))", "{{transition}}")),  # noqa: E501
            ]),
            ("Leases", [
                ts("Leases taken by kind and reason", Q(f"sum by (kind, reason) (increase(lbaas_lease_acquisitions_total[{RATE}]))", "{{kind}} {{reason}}")),  # noqa: E501
                ts("Leases lost by kind and reason", Q(f"sum by (kind, reason) (increase(lbaas_lease_losses_total[{RATE}]))", "{{kind}} {{reason}}")),  # noqa: E501
                ts("Device Leases handed over, by reason", Q(f"sum by (reason) (increase(lbaas_lease_handovers_total[{RATE}]))", "{{reason}}")),  # noqa: E501
            ]),
            ("Processes", [
                ts("Resident memory", Q(f"process_resident_memory_bytes {OPERATOR}", "{{instance}}"), unit="bytes"),  # noqa: E501
                ts("CPU", Q(f"rate(process_cpu_seconds_total[{RATE}]) {OPERATOR}", "{{instance}}"), unit="percentunit"),  # noqa: E501
                ts("Driver call p95 by device", Q(f"histogram_quantile(0.95, sum by (device, le) (rate(lbaas_driver_call_duration_seconds_bucket[{RATE}])))", "{{device}}"), unit="s"),  # noqa: E501
                ts("Driver calls failing by device", Q(f'sum by (device, op) (rate(lbaas_driver_calls_total{{outcome!="ok"}}[{RATE}]))', "{{device}} {{op}}"), unit="ops"),  # noqa: E501
            ]),
        ],
    )  # fmt: skip


DASHBOARDS = {"fleet": fleet, "vip-traffic": traffic, "agents": agents}


def render(name: str) -> str:
    return json.dumps(DASHBOARDS[name](), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check", action="store_true", help="fail when a file differs")
    args = parser.parse_args(argv)
    stale = []
    for name in DASHBOARDS:
        path = args.out / f"{name}.json"
        text = render(name)
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(str(path))
            continue
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if stale:
        print("stale dashboards (make dashboards): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``kubectl lbaas top``: per-VIP traffic for a person without Prometheus.

The figures are the agents' own data-plane series (docs/metrics.md section 3:
``lbaas_vip_requests_total``, ``..._responses_total{class}``, bytes, sessions, connection
errors, response time), read from every operator pod's ``/metrics`` through the API server's
pod proxy (the pods found by the EndpointSlices of the chart's metrics Service, so no port
needs forwarding; the user needs ``get`` on ``pods/proxy`` there), or from ``--metrics-url``.
Rates come from two reads: the second waits until each endpoint's
``lbaas_traffic_stats_timestamp_seconds`` moved (the agents refresh the counters every member
status interval, 5 s), and divides by that time, not the wall clock between the reads.

Nothing is written to the objects' statuses: traffic in a status would cost an API write per
VIP every few seconds. Until the agents export the series, ``top`` shows the operator's view
(phase, device, members' health) and says that traffic needs the data-plane metrics.
"""

from __future__ import annotations

import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

from lbaas.plugin.kube import Reader

STAMP = "lbaas_traffic_stats_timestamp_seconds"
COUNTERS = {
    "requests": "lbaas_vip_requests",
    "5xx": "lbaas_vip_responses",
    "errors": "lbaas_vip_connection_errors",
    "in": "lbaas_vip_bytes_in",
    "out": "lbaas_vip_bytes_out",
}
GAUGES = {"sessions": "lbaas_vip_current_sessions", "rt": "lbaas_vip_response_time_seconds"}
NO_TRAFFIC = (
    "traffic: the agents export no per-VIP traffic series for these VIPs (lbaas_vip_*,"
    " docs/metrics.md section 3: only drivers with the feature ops.traffic-stats read them, and"
    " config.trafficMetrics may be off); shown: the operator's view only"
)

VipKey = tuple[str, str]


@dataclass(frozen=True)
class Endpoint:
    name: str  # pod name, or the URL
    path: str = ""  # API pod-proxy path, when read through the API server
    url: str = ""  # direct URL


@dataclass
class Reading:
    """One read of one endpoint: per-VIP counter and gauge sums, and the stats time."""

    counters: dict[VipKey, dict[str, float]] = field(default_factory=dict)
    gauges: dict[VipKey, dict[str, float]] = field(default_factory=dict)
    stamp: float | None = None
    at: float = 0.0


def discover(reader: Reader, operator_namespace: str, service: str) -> list[Endpoint]:
    """Every pod behind the metrics Service, by its EndpointSlices."""
    found = []
    for eps in reader.endpoint_slices(operator_namespace, service):
        ports = [p for p in eps.get("ports") or [] if p.get("name") == "metrics"]
        port = ports[0]["port"] if ports else None
        for endpoint in eps.get("endpoints") or []:
            ref = endpoint.get("target_ref") or {}
            if ref.get("kind") != "Pod" or port is None:
                continue
            pod = str(ref["name"])
            path = f"/api/v1/namespaces/{operator_namespace}/pods/{pod}:{port}/proxy/metrics"
            found.append(Endpoint(pod, path=path))
    return sorted(set(found), key=lambda e: e.name)


def fetch(reader: Reader, endpoint: Endpoint) -> str:
    if endpoint.url:
        with urllib.request.urlopen(endpoint.url, timeout=10) as rsp:
            return str(rsp.read().decode(errors="replace"))
    return reader.raw(endpoint.path)


def parse(text: str, at: float) -> Reading:
    """Sum every listener's series per VIP (5xx: class="5xx" responses only)."""
    reading = Reading(at=at)
    names = {v: k for k, v in COUNTERS.items()}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == STAMP:
                reading.stamp = max(reading.stamp or 0.0, sample.value)
                continue
            key = (labels.get("namespace", ""), labels.get("vip", ""))
            if family.name in names and sample.name.endswith("_total"):
                column = names[family.name]
                if column == "5xx" and labels.get("class") != "5xx":
                    continue
                bucket = reading.counters.setdefault(key, defaultdict(float))
                bucket[column] += sample.value
            elif sample.name in GAUGES.values():
                column = next(k for k, v in GAUGES.items() if v == sample.name)
                bucket = reading.gauges.setdefault(key, defaultdict(float))
                bucket[column] = (
                    max(bucket[column], sample.value)
                    if column == "rt"
                    else bucket[column] + sample.value
                )
    return reading


def rates(first: Reading, second: Reading) -> dict[VipKey, dict[str, float | None]]:
    """Per VIP: counter deltas per second (None after a reset), gauges as last read."""
    if first.stamp is not None and second.stamp is not None and second.stamp > first.stamp:
        elapsed = second.stamp - first.stamp
    else:
        elapsed = max(second.at - first.at, 1e-9)
    found: dict[VipKey, dict[str, float | None]] = {}
    for key, values in second.counters.items():
        before = first.counters.get(key, {})
        row: dict[str, float | None] = {}
        for column, value in values.items():
            old = before.get(column)
            row[column] = None if old is None or value < old else (value - old) / elapsed
        found[key] = row
    for key, values in second.gauges.items():
        found.setdefault(key, {}).update(values)
    return found


def measure(
    reader: Reader,
    endpoints: list[Endpoint],
    *,
    interval: float,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[dict[VipKey, dict[str, float | None]], list[str]]:
    """Two reads of every endpoint; (per-VIP figures, problems)."""
    problems: list[str] = []
    first: dict[Endpoint, Reading] = {}
    for endpoint in endpoints:
        try:
            first[endpoint] = parse(fetch(reader, endpoint), time.monotonic())
        except (ApiException, OSError, ValueError) as exc:
            problems.append(f"cannot read the metrics of {endpoint.name}: {_short(exc)}")
    live = {e: r for e, r in first.items() if r.counters or r.gauges}
    figures: dict[VipKey, dict[str, float | None]] = {}
    deadline = time.monotonic() + 3 * interval
    pending = dict(live)
    sleep(min(1.0, interval))
    while pending:
        for endpoint, reading in list(pending.items()):
            try:
                again = parse(fetch(reader, endpoint), time.monotonic())
            except (ApiException, OSError, ValueError) as exc:
                problems.append(f"cannot read the metrics of {endpoint.name}: {_short(exc)}")
                del pending[endpoint]
                continue
            moved = reading.stamp is not None and (again.stamp or 0) > reading.stamp
            waited = again.at - reading.at >= interval
            if moved or (reading.stamp is None and waited) or time.monotonic() > deadline:
                figures.update(rates(reading, again))
                del pending[endpoint]
        if pending:
            sleep(0.5)
    return figures, problems


def _short(exc: Exception) -> str:
    if isinstance(exc, ApiException):
        return f"{exc.status} {exc.reason}"
    return f"{type(exc).__name__}: {exc}"


def members_up(
    members: Sequence[Mapping[str, Any]], pools: Sequence[Mapping[str, Any]]
) -> dict[VipKey, str]:
    """``up/total`` members per VIP."""
    vip_of = {
        (p["metadata"]["namespace"], p["metadata"]["name"]): str(
            (p.get("spec") or {}).get("vipRef")
        )
        for p in pools
    }
    counts: dict[VipKey, list[int]] = defaultdict(lambda: [0, 0])
    for m in members:
        ns = m["metadata"]["namespace"]
        vip = vip_of.get((ns, str((m.get("spec") or {}).get("poolRef"))))
        if vip is None:
            continue
        serving = (m.get("status") or {}).get("operatingStatus") in ("ONLINE", "NO_MONITOR")
        counts[(ns, vip)][0] += int(serving)
        counts[(ns, vip)][1] += 1
    return {k: f"{up}/{total}" for k, (up, total) in counts.items()}

"""The data-plane traffic series (docs/metrics.md, section 3): a Prometheus collector over the
last counters each device this agent owns gave (``Driver.traffic_stats``, read at each member
health read).

Why a custom collector and not labelled Counters: the values are the device's own counters,
set wholesale at each read, and the series of a VIP that went, or of a device this agent let
go, must disappear (a labelled Counter keeps every child until removed one by one).

- **Monotonic.** A data-plane reload starts its counters again from zero (HAProxy: a new
  worker). The driver says so (``TrafficStats.restarts``), and a counter that went down is
  taken as a restart too: the exporter then adds the last value it read before the drop to
  every later one (an offset per series), so ``rate()`` never sees a spurious reset.
- **Only the owner.** ``update`` is called by the agent's worker of a device it holds, and
  ``forget`` when the worker stops (handover, lost Lease): no two agents report one VIP.
- **Bounded.** ``level`` (``config.trafficMetrics``): ``member`` (every series), ``pool`` (no
  member series), ``off`` (none).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lbaas.drivers.contract import LoadBalancerStats, TrafficStats
from lbaas.drivers.model import LoadBalancer

LEVELS = ("vip", "pool", "member")
LABELS = {
    "vip": ("namespace", "vip", "listener"),
    "pool": ("namespace", "vip", "pool"),
    "member": ("namespace", "vip", "pool", "member"),
}
COUNTERS = {  # family (without _total) → what it counts
    "requests": "HTTP requests, or connections for TCP",
    "responses": "HTTP responses by class",
    "bytes_in": "bytes received from clients",
    "bytes_out": "bytes sent to clients",
    "connection_errors": "connections or requests that failed",
}
GAUGES = {
    "current_sessions": "sessions open now",
    "response_time_seconds": "the device's recent average response time",
}
TIMESTAMP = "lbaas_traffic_stats_timestamp_seconds"

Labels = tuple[str, ...]
SeriesKey = tuple[str, Labels]  # (family name, label values)


@dataclass
class _Counter:
    raw: float
    restarts: int
    offset: float = 0.0


def _series(lb: LoadBalancer, stats: LoadBalancerStats, level: str
            ) -> Iterator[tuple[str, Labels, TrafficStats]]:  # fmt: skip
    """(level, label values, counters) of every listener, pool and member of one VIP."""
    for name, traffic in stats.listeners.items():
        yield "vip", (lb.namespace, lb.name, name), traffic
    for name, traffic in stats.pools.items():
        yield "pool", (lb.namespace, lb.name, name), traffic
    if level != "member":
        return
    pool_of = {member.name: pool.name for pool, member in lb.members()}
    for name, traffic in stats.members.items():
        if name in pool_of:
            yield "member", (lb.namespace, lb.name, pool_of[name], name), traffic


def _values(kind: str, labels: Labels, traffic: TrafficStats
            ) -> Iterator[tuple[SeriesKey, float, bool]]:  # fmt: skip
    """(series, value, is a counter) of one listener, pool or member."""
    prefix = f"lbaas_{kind}_"
    yield (prefix + "requests", labels), float(traffic.requests), True
    for klass, count in traffic.responses.items():
        yield (prefix + "responses", (*labels, klass)), float(count), True
    yield (prefix + "bytes_in", labels), float(traffic.bytes_in), True
    yield (prefix + "bytes_out", labels), float(traffic.bytes_out), True
    yield (prefix + "connection_errors", labels), float(traffic.connection_errors), True
    yield (prefix + "current_sessions", labels), float(traffic.current_sessions), False
    if traffic.response_time_ms is not None:
        seconds = traffic.response_time_ms / 1000
        yield (prefix + "response_time_seconds", labels), seconds, False


class TrafficExporter(Collector):
    """The last counters of every device this process owns, as Prometheus series."""

    def __init__(self) -> None:
        self.level = "member"
        self._lock = threading.Lock()
        self._counters: dict[str, dict[SeriesKey, _Counter]] = {}
        self._gauges: dict[str, dict[SeriesKey, float]] = {}
        self._stamps: dict[str, float] = {}

    def update(self, device: str, lbs: Sequence[LoadBalancer],
               stats: Mapping[str, LoadBalancerStats], at: float) -> None:  # fmt: skip
        """The counters ``device`` gave at ``at`` for ``lbs`` (VIPs it did not report, or no
        longer serves, lose their series)."""
        counters: dict[SeriesKey, _Counter] = {}
        gauges: dict[SeriesKey, float] = {}
        with self._lock:
            before = self._counters.get(device, {})
            for lb in lbs:
                found = stats.get(lb.key)
                if found is None or self.level == "off":
                    continue
                for kind, labels, traffic in _series(lb, found, self.level):
                    for key, value, counter in _values(kind, labels, traffic):
                        if not counter:
                            gauges[key] = value
                            continue
                        last = before.get(key)
                        offset = last.offset if last else 0.0
                        if last and (traffic.restarts != last.restarts or value < last.raw):
                            offset += last.raw
                        counters[key] = _Counter(value, traffic.restarts, offset)
            self._counters[device], self._gauges[device] = counters, gauges
            self._stamps[device] = at

    def forget(self, device: str) -> None:
        """This process no longer owns ``device``: its series go."""
        with self._lock:
            self._counters.pop(device, None)
            self._gauges.pop(device, None)
            self._stamps.pop(device, None)

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {
            family.name: family for family in self._families()
        }
        with self._lock:
            for series in self._counters.values():
                for (name, labels), counter in series.items():
                    families[name].add_metric(labels, counter.raw + counter.offset)
            for gauges in self._gauges.values():
                for (name, labels), value in gauges.items():
                    families[name].add_metric(labels, value)
            for device, at in self._stamps.items():
                families[TIMESTAMP].add_metric((device,), at)
        yield from families.values()

    @staticmethod
    def _families() -> list[CounterMetricFamily | GaugeMetricFamily]:
        found: list[CounterMetricFamily | GaugeMetricFamily] = []
        for kind in LEVELS:
            labels = list(LABELS[kind])
            for name, text in COUNTERS.items():
                extra = ["class"] if name == "responses" else []
                found.append(CounterMetricFamily(f"lbaas_{kind}_{name}", f"{text}, per {kind}",
                                                 labels=labels + extra))  # fmt: skip
            for name, text in GAUGES.items():
                found.append(GaugeMetricFamily(f"lbaas_{kind}_{name}", f"{text}, per {kind}",
                                               labels=labels))  # fmt: skip
        found.append(
            GaugeMetricFamily(
                TIMESTAMP,
                "Unix time of the last successful read of the device's traffic counters",
                labels=["device"],
            )
        )
        return found

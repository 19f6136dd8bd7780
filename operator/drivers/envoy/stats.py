"""``traffic_stats``: Envoy's own counters of a device's trees, from one ``/stats`` read and one
``/clusters`` read for the whole device.

Every listener's stats carry its name (``stat_prefix`` = ``<ns>/<name>/<listener>``), every
cluster's its pool's (``<ns>/<name>/<pool>``), so a tree's counters are found by name:

- listener, HTTP and TERMINATED_HTTPS: ``http.<l>.downstream_rq_total`` (requests),
  ``downstream_rq_<N>xx`` (responses by class), ``downstream_cx_rx/tx_bytes_total``,
  ``downstream_cx_active``, ``downstream_cx_protocol_error`` (errors);
- listener, TCP and HTTPS passed through: ``tcp.<l>.downstream_cx_total`` (connections),
  its bytes, ``listener.<l>.downstream_cx_active``;
- listener, UDP: ``udp.<l>.downstream_sess_total`` (sessions), ``downstream_sess_rx/tx_bytes``,
  ``downstream_sess_active``;
- every listener: ``listener.<l>.downstream_cx_overflow`` and the connection limit's
  ``connection_limit.<l>.limited_connections`` count as connection errors;
- pool: ``cluster.<p>.upstream_rq_total`` (HTTP; else ``upstream_cx_total``), responses by
  class, bytes (``rx`` is what members sent), ``upstream_cx_active``,
  ``upstream_cx_connect_fail``;
- member (keyed by its name): the host's ``rq_total`` (or ``cx_total``), ``cx_active``,
  ``cx_connect_fail`` from ``/clusters``.

Counters start again at 0 when Envoy restarts (a SIGKILL, a new device host).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lbaas.drivers.contract import LoadBalancerStats, TrafficStats
from lbaas.drivers.envoy import admin
from lbaas.drivers.envoy.render.names import cluster_name, listener_name
from lbaas.drivers.model import Listener, LoadBalancer, Protocol

CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
_FAMILIES = r"^(http|tcp|udp|listener|cluster|connection_limit)[.]"


def read(sock: Path, timeout: float = admin.TIMEOUT) -> tuple[dict[str, int], list[Any]]:
    """Every counter and gauge of the device (name → value), and ``/clusters``."""
    values: dict[str, int] = {}
    for name, value in admin.stats(sock, _FAMILIES, timeout).items():
        if re.fullmatch(r"\d+", value):
            values[name] = int(value)
    return values, admin.clusters(sock, timeout)


def _listener(values: Mapping[str, int], lb: LoadBalancer, listener: Listener) -> TrafficStats:
    name = listener_name(lb.key, listener.name)
    errors = values.get(f"listener.{name}.downstream_cx_overflow", 0) + values.get(
        f"connection_limit.{name}.limited_connections", 0
    )
    protocol = Protocol(listener.protocol)
    if protocol == Protocol.UDP:
        udp = f"udp.{name}."
        return TrafficStats(
            requests=values.get(udp + "downstream_sess_total", 0),
            bytes_in=values.get(udp + "downstream_sess_rx_bytes", 0),
            bytes_out=values.get(udp + "downstream_sess_tx_bytes", 0),
            current_sessions=values.get(udp + "downstream_sess_active", 0),
            connection_errors=errors,
        )
    if protocol in (Protocol.TCP, Protocol.HTTPS):
        tcp = f"tcp.{name}."
        return TrafficStats(
            requests=values.get(tcp + "downstream_cx_total", 0),
            bytes_in=values.get(tcp + "downstream_cx_rx_bytes_total", 0),
            bytes_out=values.get(tcp + "downstream_cx_tx_bytes_total", 0),
            current_sessions=values.get(f"listener.{name}.downstream_cx_active", 0),
            connection_errors=errors,
        )
    http = f"http.{name}."
    return TrafficStats(
        requests=values.get(http + "downstream_rq_total", 0),
        responses={c: values.get(f"{http}downstream_rq_{c}", 0) for c in CLASSES},
        bytes_in=values.get(http + "downstream_cx_rx_bytes_total", 0),
        bytes_out=values.get(http + "downstream_cx_tx_bytes_total", 0),
        current_sessions=values.get(http + "downstream_cx_active", 0),
        connection_errors=errors + values.get(http + "downstream_cx_protocol_error", 0),
    )


def _pool(values: Mapping[str, int], name: str) -> TrafficStats:
    cluster = f"cluster.{name}."
    responses = {c: values.get(f"{cluster}upstream_rq_{c}", 0) for c in CLASSES}
    requests = values.get(cluster + "upstream_rq_total", 0) or values.get(
        cluster + "upstream_cx_total", 0
    )
    return TrafficStats(
        requests=requests,
        responses=responses if any(responses.values()) else {},
        bytes_in=values.get(cluster + "upstream_cx_rx_bytes_total", 0),
        bytes_out=values.get(cluster + "upstream_cx_tx_bytes_total", 0),
        current_sessions=values.get(cluster + "upstream_cx_active", 0),
        connection_errors=values.get(cluster + "upstream_cx_connect_fail", 0),
    )


def _hosts(clusters: Sequence[Any]) -> dict[str, dict[str, dict[str, int]]]:
    """Cluster name → host name → its counters."""
    found: dict[str, dict[str, dict[str, int]]] = {}
    for cluster in clusters:
        hosts = found.setdefault(str(cluster.get("name", "")), {})
        for host in cluster.get("host_statuses", []):
            counters = {}
            for stat in host.get("stats", []):
                if str(stat.get("value", "")).isdigit():
                    counters[str(stat.get("name"))] = int(stat["value"])
            hosts[str(host.get("hostname", ""))] = counters
    return found


def lb_stats(lbs: Sequence[LoadBalancer], values: Mapping[str, int], clusters: Sequence[Any]
             ) -> dict[str, LoadBalancerStats]:  # fmt: skip
    hosts = _hosts(clusters)
    out = {}
    for lb in lbs:
        members: dict[str, TrafficStats] = {}
        for pool in lb.pools:
            of_pool = hosts.get(cluster_name(lb.key, pool.name), {})
            for member in pool.members:
                counters = of_pool.get(member.name, {})
                members[member.name] = TrafficStats(
                    requests=counters.get("rq_total", 0) or counters.get("cx_total", 0),
                    current_sessions=counters.get("cx_active", 0),
                    connection_errors=counters.get("cx_connect_fail", 0),
                )
        out[lb.key] = LoadBalancerStats(
            listeners={ln.name: _listener(values, lb, ln) for ln in lb.listeners},
            pools={p.name: _pool(values, cluster_name(lb.key, p.name)) for p in lb.pools},
            members=members,
        )
    return out

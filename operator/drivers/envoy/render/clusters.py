"""Pools as Envoy clusters (CDS) and their members as endpoints: in an EDS file per cluster
(``endpoints: files``, the default) or in the cluster (``endpoints: inline``: STATIC).

Files: a member change rewrites one small file and leaves the cluster, its connection pools
and the health of its other hosts as they are; but Envoy watches every EDS file with an
inotify instance of its own, which the host limits (``fs.inotify.max_user_instances``, 128 by
default, per user): ``plan`` refuses what would exceed it (``inotify``). Inline: no such limit;
a member change rebuilds that one cluster (Envoy warms the new one, then drains the old one's
connections: open requests finish) and rewrites the CDS file, no other cluster or listener is
touched; the new cluster starts its counts afresh (LEAST_CONNECTIONS does not see the requests
still open on the old one) and checks its members' health again before it serves.

- ``ignore_health_on_host_removal``: a member removed from the file leaves at once, even while
  its health checks pass (Envoy otherwise keeps it until they fail); its open requests finish
  (Envoy drains a removed host's connection pools).
- ``healthy_panic_threshold`` 0: Envoy never sends traffic to members it knows are down (it
  would, by default, once fewer than half are up).
- ``update_merge_window`` 0: a health change reaches the load balancer at once. Envoy merges
  them for 1 s by default, and a member added with a health check is added unhealthy until its
  first check passes: it got its first request a second after the apply (measured: 1,013 ms
  p50 over 20 adds; with 0: see ``make bench`` part 9).
- Backup members are priority 1; an ``overprovisioning_factor`` of :data:`OVERPROVISIONING`
  keeps every request on priority 0 while any of its members is up.
- Circuit breakers are lifted (Envoy's default is 1,024 connections and requests per cluster):
  a listener's ``connectionLimit`` is the only limit, as with the other drivers.
"""

from __future__ import annotations

from typing import Any

from lbaas.drivers.envoy.render import checks
from lbaas.drivers.envoy.render.names import cluster_name
from lbaas.drivers.model import (
    HealthMonitor,
    LoadBalancer,
    Member,
    Method,
    MonitorType,
    PersistenceType,
    Pool,
)

CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ASSIGNMENT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
LEAST_REQUEST = (
    "type.googleapis.com/envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest"
)
UPSTREAM_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
OVERPROVISIONING = 100_000
UNLIMITED = 1_000_000_000
HC_TLS = {"lbaas-hc": "tls"}
"""The transport socket match of HTTPS health checks (TLS for the checks only)."""


def hashed(pool: Pool) -> bool:
    """Whether requests pick the pool's member by a hash (source IP, cookie)."""
    return pool.method == Method.SOURCE_IP or pool.persistence is not None


def hash_policy(pool: Pool, *, http: bool) -> list[dict[str, Any]]:
    """Route (HTTP) hash policies for the pool's method and persistence."""
    persistence = pool.persistence
    if persistence is not None and persistence.type != PersistenceType.SOURCE_IP:
        if not http:
            return []
        cookie = persistence.cookie_name or "SRVID"
        if persistence.type == PersistenceType.HTTP_COOKIE:
            return [{"cookie": {"name": cookie, "ttl": "0s", "path": "/"}}]
        return [{"cookie": {"name": cookie}}]
    if hashed(pool):
        return [{"connection_properties": {"source_ip": True}}]
    return []


def _lb_policy(pool: Pool) -> dict[str, Any]:
    if hashed(pool):
        return {"lb_policy": "MAGLEV"}
    if pool.method == Method.LEAST_CONNECTIONS:
        # Every host compared (FULL_SCAN), not two picked at random (Envoy's default).
        policy = {"@type": LEAST_REQUEST, "selection_method": "FULL_SCAN"}
        extension = {"name": "envoy.load_balancing_policies.least_request", "typed_config": policy}
        return {"load_balancing_policy": {"policies": [{"typed_extension_config": extension}]}}
    return {"lb_policy": "ROUND_ROBIN"}


def _seconds(value: int) -> str:
    return f"{value}s"


def check_monitor(where: str, monitor: HealthMonitor) -> None:
    for label, value in (("delay", monitor.delay), ("timeout", monitor.timeout),
                         ("maxRetries", monitor.max_retries),
                         ("maxRetriesDown", monitor.max_retries_down)):  # fmt: skip
        if value < 1:
            raise checks.InvalidValue(where, f"{label} {value} is below 1")
    if monitor.type in (MonitorType.HTTP, MonitorType.HTTPS):
        checks.path(f"{where} urlPath", monitor.url_path)
        checks.expected_codes(f"{where} expectedCodes", monitor.expected_codes)
        if monitor.http_method not in checks.CHECK_METHODS:
            raise checks.InvalidValue(where, f"method {monitor.http_method!r} cannot check health")


def _health_check(monitor: HealthMonitor) -> dict[str, Any]:
    check: dict[str, Any] = {
        "timeout": _seconds(monitor.timeout),
        "interval": _seconds(monitor.delay),
        "no_traffic_interval": _seconds(monitor.delay),
        "healthy_threshold": monitor.max_retries,
        "unhealthy_threshold": monitor.max_retries_down,
    }
    if monitor.type in (MonitorType.HTTP, MonitorType.HTTPS):
        check["http_health_check"] = {
            "host": "localhost",
            "path": monitor.url_path,
            "method": monitor.http_method,
            "expected_statuses": [
                {"start": start, "end": end}
                for start, end in checks.expected_codes("expectedCodes", monitor.expected_codes)
            ],
        }
        if monitor.type == MonitorType.HTTPS:
            check["transport_socket_match_criteria"] = HC_TLS
    else:  # TCP, and PING as a TCP connect (Envoy sends no ICMP)
        check["tcp_health_check"] = {}
    return check


def _upstream_tls(pool: Pool) -> dict[str, Any]:
    context: dict[str, Any] = {"@type": UPSTREAM_TLS}
    tls = pool.tls
    if tls is not None:
        if tls.server_name:
            context["sni"] = tls.server_name
        if tls.verify and tls.ca is not None:
            validation: dict[str, Any] = {"trusted_ca": {"inline_string": tls.ca.pem}}
            if tls.server_name:
                validation["match_typed_subject_alt_names"] = [
                    {"san_type": "DNS", "matcher": {"exact": tls.server_name}}
                ]
            context["common_tls_context"] = {"validation_context": validation}
    return {"name": "envoy.transport_sockets.tls", "typed_config": context}


def check_pool(lb: LoadBalancer, pool: Pool) -> None:
    where = f"pool {pool.name}"
    checks.name(where, pool.name)
    if pool.monitor is not None and pool.monitor.admin_state_up:
        check_monitor(f"{where} health monitor", pool.monitor)
    persistence = pool.persistence
    if persistence is not None and persistence.cookie_name is not None:
        checks.header_name(f"{where} persistence cookieName", persistence.cookie_name)
    app = persistence is not None and persistence.type == PersistenceType.APP_COOKIE
    if app and not (persistence and persistence.cookie_name):
        raise checks.InvalidValue(where, "APP_COOKIE persistence needs a cookieName")
    if pool.tls is not None:
        if pool.tls.server_name:
            checks.hostname(f"{where} tls serverName", pool.tls.server_name, wildcard=False)
        if pool.tls.verify and pool.tls.ca is None:
            raise checks.InvalidValue(where, "backend TLS verification needs a CA bundle")
        if pool.tls.ca is not None:
            checks.pem(f"{where} tls ca", pool.tls.ca.pem)
    seen: set[tuple[str, int, bool]] = set()
    for member in pool.members:
        mwhere = f"{where} member {member.name}"
        checks.name(mwhere, member.name)
        checks.ip(mwhere, member.address)
        checks.port(mwhere, member.port)
        if not 0 <= member.weight <= 256:
            raise checks.InvalidValue(mwhere, f"weight {member.weight} is not in 0-256")
        if member.monitor_address is not None:
            checks.ip(f"{mwhere} monitorAddress", member.monitor_address)
        if member.monitor_port is not None:
            checks.port(f"{mwhere} monitorPort", member.monitor_port)
        spot = (member.address, member.port, member.backup)
        if spot in seen:
            raise checks.InvalidValue(
                mwhere, f"another member of the pool is {member.address}:{member.port} too"
            )
        seen.add(spot)


def _discovery(name: str, eds_path: str | None, assignment: dict[str, Any] | None
               ) -> dict[str, Any]:  # fmt: skip
    if eds_path is None:
        inline = {k: v for k, v in (assignment or {}).items() if k != "@type"}
        return {"type": "STATIC", "load_assignment": inline}
    return {
        "type": "EDS",
        "eds_cluster_config": {
            "service_name": name,
            "eds_config": {"resource_api_version": "V3", "path_config_source": {"path": eds_path}},
        },
    }


def render_cluster(lb: LoadBalancer, pool: Pool, eds_path: str | None,
                   assignment: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """The cluster of ``pool``: its members from the EDS file ``eds_path``, or inline
    (``assignment``, a STATIC cluster) when there is none."""
    name = cluster_name(lb.key, pool.name)
    cluster: dict[str, Any] = {
        "@type": CLUSTER,
        "name": name,
        **_discovery(name, eds_path, assignment),
        "connect_timeout": "5s",
        **_lb_policy(pool),
        "ignore_health_on_host_removal": True,
        "common_lb_config": {"healthy_panic_threshold": {"value": 0}, "update_merge_window": "0s"},
        "circuit_breakers": {
            "thresholds": [
                {
                    "max_connections": UNLIMITED,
                    "max_pending_requests": UNLIMITED,
                    "max_requests": UNLIMITED,
                    "max_retries": UNLIMITED,
                }
            ]
        },
    }
    monitor = pool.monitor
    if monitor is not None and monitor.admin_state_up:
        cluster["health_checks"] = [_health_check(monitor)]
        if monitor.type == MonitorType.HTTPS and pool.tls is None:
            cluster["transport_socket_matches"] = [
                {
                    "name": "health-check-tls",
                    "match": HC_TLS,
                    "transport_socket": _upstream_tls(pool),
                }
            ]
    if pool.tls is not None:
        cluster["transport_socket"] = _upstream_tls(pool)
    return cluster


def _endpoint(member: Member) -> dict[str, Any]:
    endpoint: dict[str, Any] = {
        "address": {"socket_address": {"address": member.address, "port_value": member.port}},
        "hostname": member.name,
    }
    if member.monitor_address is not None or member.monitor_port is not None:
        config: dict[str, Any] = {}
        if member.monitor_port is not None:
            config["port_value"] = member.monitor_port
        if member.monitor_address is not None:
            config["address"] = {
                "socket_address": {
                    "address": member.monitor_address,
                    "port_value": member.monitor_port or member.port,
                }
            }
        endpoint["health_check_config"] = config
    lb_endpoint: dict[str, Any] = {
        "endpoint": endpoint,
        "load_balancing_weight": max(1, member.weight),
    }
    if member.weight == 0:
        lb_endpoint["health_status"] = "DRAINING"  # no new requests, open ones finish
    return lb_endpoint


def render_endpoints(lb: LoadBalancer, pool: Pool) -> dict[str, Any]:
    """The cluster's EDS resource: admin-down members (or all, for an admin-down pool) are left
    out, so they get nothing new and their open requests finish."""
    serving = [m for m in pool.members if m.admin_state_up] if pool.admin_state_up else []
    levels: list[dict[str, Any]] = [
        {"lb_endpoints": [_endpoint(m) for m in serving if not m.backup]}
    ]
    if backups := [_endpoint(m) for m in serving if m.backup]:
        levels.append({"priority": 1, "lb_endpoints": backups})
    return {
        "@type": ASSIGNMENT,
        "cluster_name": cluster_name(lb.key, pool.name),
        "endpoints": levels,
        "policy": {"overprovisioning_factor": OVERPROVISIONING},
    }

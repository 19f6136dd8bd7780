"""Members' health as the device's Envoy sees it (``member_statuses``), from one
``/clusters?format=json`` per device.

A member Envoy does not run is reported from its spec: OFFLINE when it or its pool is
admin-down (it is left out of the endpoints), DRAINING at weight 0 (it runs as a DRAINING
endpoint); otherwise it is left out of the answer (the core reports it from its spec). A run
member without a monitor is NO_MONITOR. With a monitor: not checked yet (Envoy's
``pending_active_hc``) is UNKNOWN, a failed check ERROR, else ONLINE.
"""

from __future__ import annotations

from lbaas.drivers.contract import Statuses
from lbaas.drivers.envoy.render.names import cluster_name
from lbaas.drivers.envoy.view import Host, RunningView
from lbaas.drivers.model import LoadBalancer, Member, MemberStatus, Pool


def _status(pool: Pool, member: Member, host: Host | None) -> MemberStatus | None:
    if not pool.admin_state_up or not member.admin_state_up:
        return MemberStatus.OFFLINE
    if member.weight == 0:
        return MemberStatus.DRAINING
    if host is None:
        return None
    if pool.monitor is None or not pool.monitor.admin_state_up:
        return MemberStatus.NO_MONITOR
    if host.health.get("pending_active_hc"):
        return MemberStatus.UNKNOWN
    if host.health.get("failed_active_health_check"):
        return MemberStatus.ERROR
    return MemberStatus.ONLINE


def lb_statuses(lb: LoadBalancer, view: RunningView) -> Statuses:
    found = {}
    for pool in lb.pools:
        hosts = view.hosts.get(cluster_name(lb.key, pool.name), {})
        for member in pool.members:
            status = _status(pool, member, hosts.get(member.name))
            if status is not None:
                found[member.name] = status
    return found

"""What a device's Envoy runs, read once for many questions: the listeners and clusters it
runs (by name, with the digest each carries), the ones it refused, and every cluster's hosts
with their health (``/clusters``). ``verify``, ``orphans`` and ``member_statuses`` read it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lbaas.drivers.envoy import admin
from lbaas.drivers.envoy.render.tree import stamp_of


@dataclass(frozen=True)
class Host:
    address: str
    port: int
    weight: int
    priority: int
    health: dict[str, Any]


@dataclass
class RunningView:
    listeners: dict[str, str | None] = field(default_factory=dict)
    """Active listener name → the digest it carries."""
    clusters: dict[str, str | None] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    hosts: dict[str, dict[str, Host]] = field(default_factory=dict)
    """Cluster name → host name (the member's) → host."""


def read_view(sock: Path, timeout: float = admin.TIMEOUT, *, hosts_only: bool = False
              ) -> RunningView:  # fmt: skip
    view = RunningView()
    for cluster in admin.clusters(sock, timeout):
        found = {}
        for host in cluster.get("host_statuses", []):
            address = host.get("address", {}).get("socket_address", {})
            found[str(host.get("hostname", ""))] = Host(
                address=str(address.get("address", "")),
                port=int(address.get("port_value", 0)),
                weight=int(host.get("weight", 1)),
                priority=int(host.get("priority", 0)),
                health=dict(host.get("health_status", {})),
            )
        view.hosts[str(cluster.get("name", ""))] = found
    if hosts_only:
        return view
    for config in admin.config_dump(sock, "dynamic_listeners", timeout):
        active = (config.get("active_state") or {}).get("listener")
        if isinstance(active, dict):
            view.listeners[str(active.get("name"))] = stamp_of(active)
    for config in admin.config_dump(sock, "dynamic_active_clusters", timeout):
        running = config.get("cluster")
        if isinstance(running, dict):
            view.clusters[str(running.get("name"))] = stamp_of(running)
    view.refused = admin.failures(sock, "dynamic_listeners", timeout)
    return view

"""What the HAProxy driver declares it supports (``HAProxyDriver.features``).

Exactly what it implements and its tests exercise, by the names of
``lbaas.drivers.capabilities.FEATURES``. Not declared (and refused with ``Unsupported``, naming
the feature, if a tree asks for them anyway): TLS termination and backend TLS (``tls.*``),
UDP and several listeners per load balancer. L7 routing and forwarded headers: ``l7``;
traffic statistics: ``stats``.
"""

from __future__ import annotations

FEATURES = frozenset(
    {
        # L4
        "protocol.tcp",
        "method.round-robin",
        "method.least-connections",
        "method.source-ip",
        "member.weight",
        "member.backup",
        "member.admin-state",
        "member.monitor-address",
        "pool.admin-state",
        "listener.connection-limit",
        "listener.admin-state",
        "monitor.ping",
        "monitor.tcp",
        "persistence.source-ip",
        # HTTP
        "protocol.http",
        "monitor.http",
        "monitor.https",
        "persistence.http-cookie",
        "persistence.app-cookie",
        # TLS passed through (the device sees TCP)
        "protocol.https",
        "http.forwarded-headers",
        # One backend per pool, each with its own members and runtime changes
        "l7.multiple-pools",
        # L7 policies (l7.py): host and path in map files changed at run time, the rest rules
        "l7.host",
        "l7.path",
        "l7.header",
        "l7.method",
        "l7.query",
        "l7.regex",
        "l7.redirect",
        "l7.reject",
        "l7.header-modifier",
        "l7.weighted-split",
        # How the driver works
        "ops.batch",
        "ops.hitless-members",
        "ops.drain",
        "ops.member-status",
        "ops.verify",
        "ops.orphans",
        "ops.watch",
        "ops.fencing",
        "ops.traffic-stats",
    }
)

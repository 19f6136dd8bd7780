"""One load balancer as HAProxy proxies: a frontend per listener, a backend per pool, a server
per member (what the templates render; ``render`` turns them into text).

A listener's protocol sets the mode of its frontend and of the backend of its default pool
(HAProxy refuses a frontend and a backend of different modes): HTTP is ``mode http``, TCP and
HTTPS (TLS passed through) are ``mode tcp``. A pool no listener uses takes the mode of the
first listener (its own protocol when there is none): the pool's protocol decides nothing
else. A listener without a default pool has no ``default_backend``: HTTP answers 503, TCP
closes the connection.

Every server carries all its options on its own line: servers added at run time (``add
server``) take nothing from ``default-server`` and must behave exactly like the ones read from
the file. ``Server.fixed`` is that line without weight and state (what ``add server`` takes
and what the runtime plan compares).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from lbaas.drivers.haproxy.l7 import Routing, routing
from lbaas.drivers.haproxy.monitor import monitor_view
from lbaas.drivers.haproxy.names import backend_name, frontend_name
from lbaas.drivers.haproxy.tokens import Token, UnsafeValueError, token
from lbaas.drivers.model import (
    Listener,
    LoadBalancer,
    Member,
    PersistenceType,
    Pool,
    Protocol,
)

BALANCE = {"ROUND_ROBIN": "roundrobin", "LEAST_CONNECTIONS": "leastconn", "SOURCE_IP": "source"}
MODE = {Protocol.TCP: "tcp", Protocol.HTTP: "http", Protocol.HTTPS: "tcp"}
DEFAULT_INSERTED_COOKIE = "SRVID"


@dataclass(frozen=True)
class Server:
    """One member as an HAProxy server: ``fixed`` is its line without weight and state."""

    name: str
    address: str
    port: int
    fixed: Token
    weight: int
    enabled: bool
    check: bool

    def add_args(self) -> str:
        """Arguments of ``add server``: a dynamic server starts in maintenance."""
        return f"{self.fixed} weight {self.weight}"


@dataclass(frozen=True)
class Frontend:
    """One listener, with its L7 routing (HTTP). Later: TLS options of its bind line."""

    name: str
    address: str
    """The load balancer's address, canonical (``ipaddress`` compressed)."""
    port: int
    mode: str
    enabled: bool
    maxconn: int | None
    backend: str | None
    """The default pool's backend; None: HTTP answers 503, TCP closes."""
    routing: Routing | None = None
    """Policies and forwarded headers (``l7``); None for TCP."""

    @property
    def listener(self) -> tuple[str, int]:
        return self.address, self.port


@dataclass(frozen=True)
class Backend:
    """One pool (admin-down: no servers; members then report OFFLINE)."""

    name: str
    pool: str
    mode: str
    balance: str
    persistence: str | None
    cookie: str | None
    table_type: str
    monitor: dict[str, Any] | None
    dynamic: bool
    """Servers can be added and removed at run time (not with HTTP_COOKIE persistence)."""
    servers: tuple[Server, ...]

    def server_map(self) -> dict[str, Server]:
        return {s.name: s for s in self.servers}


def pool_protocols(lb: LoadBalancer) -> dict[str, str]:
    """Pool name → the protocol that sets its backend's mode (see the module docstring).

    Raises :class:`UnsafeValueError` for a pool used by listeners of different modes.
    """
    found: dict[str, str] = {}
    for listener in lb.listeners:
        if listener.default_pool is None:
            continue
        protocol = str(listener.protocol)
        other = found.setdefault(listener.default_pool, protocol)
        if _mode(other) != _mode(protocol):
            raise UnsafeValueError(
                "pool", listener.default_pool, "used by listeners of different protocols"
            )
    first = str(lb.listeners[0].protocol) if lb.listeners else None
    for pool in lb.pools:
        found.setdefault(pool.name, first or str(pool.protocol))
    return found


def _mode(protocol: str) -> str:
    try:
        return MODE[Protocol(protocol)]
    except (KeyError, ValueError):
        raise UnsafeValueError("protocol", protocol, "not TCP, HTTP or HTTPS") from None


def address_of(lb: LoadBalancer) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(lb.address)
    except (TypeError, ValueError) as exc:
        raise UnsafeValueError("address", lb.address) from exc


def frontend(lb: LoadBalancer, listener: Listener, index: int = 0) -> Frontend:
    return Frontend(
        name=frontend_name(lb, listener),
        address=address_of(lb).compressed,
        port=listener.port,
        mode=_mode(str(listener.protocol)),
        enabled=bool(listener.admin_state_up),
        maxconn=listener.connection_limit,
        backend=backend_name(lb, listener.default_pool) if listener.default_pool else None,
        routing=routing(lb, listener, index),
    )


def _fixed_args(member: Member, *, cookie: bool, monitor: dict[str, Any] | None) -> Token:
    """The server line's options but weight and state, as one token: each tenant value in it
    passed :func:`token`, the rest are the driver's own keywords."""
    parts = [f"{token(member.address, 'ip')}:{token(member.port, 'port')}"]
    if member.backup:
        parts.append("backup")
    if cookie:
        # The member's name (a DNS subdomain, up to 253 characters): a name token, not a cookie
        # name token (64 at most), or HTTP_COOKIE pools with a long member name were refused.
        parts += ["cookie", token(member.name, "name")]
    if monitor is not None:
        parts += ["check", "inter", f"{token(monitor['delay'], 'int')}s"]
        parts += ["rise", token(monitor["rise"], "int"), "fall", token(monitor["fall"], "int")]
        if monitor["ssl"]:
            parts += ["check-ssl", "verify", "none"]
        if member.monitor_address is not None:
            parts += ["addr", token(member.monitor_address, "ip")]
        if member.monitor_port is not None:
            parts += ["port", token(member.monitor_port, "port")]
    return Token(" ".join(parts))


def _servers(pool: Pool, monitor: dict[str, Any] | None, kind: str | None) -> tuple[Server, ...]:
    if not pool.admin_state_up:
        return ()
    servers = []
    for member in sorted(pool.members, key=lambda m: m.name):
        fixed = _fixed_args(member, cookie=kind == PersistenceType.HTTP_COOKIE, monitor=monitor)
        token(member.weight, "int")
        servers.append(
            Server(
                name=token(member.name, "name"),
                address=ipaddress.ip_address(member.address).compressed,
                port=member.port,
                fixed=fixed,
                weight=member.weight,
                enabled=bool(member.admin_state_up),
                check=monitor is not None,
            )
        )
    return tuple(servers)


def backend(lb: LoadBalancer, pool: Pool, protocol: str) -> Backend:
    monitor = monitor_view(pool.monitor)
    persistence = pool.persistence
    kind = str(persistence.type) if persistence is not None else None
    cookie = None
    if persistence is not None and kind == PersistenceType.HTTP_COOKIE:
        cookie = persistence.cookie_name or DEFAULT_INSERTED_COOKIE
    elif persistence is not None and kind == PersistenceType.APP_COOKIE:
        cookie = persistence.cookie_name
    try:
        balance = BALANCE[str(pool.method)]
    except KeyError:
        raise UnsafeValueError("method", pool.method) from None
    return Backend(
        name=backend_name(lb, pool),
        pool=pool.name,
        mode=_mode(protocol),
        balance=balance,
        persistence=kind,
        cookie=cookie,
        table_type="ipv6" if address_of(lb).version == 6 else "ip",
        monitor=monitor,
        dynamic=kind != PersistenceType.HTTP_COOKIE,
        servers=_servers(pool, monitor, kind),
    )

"""One load balancer as HAProxy proxies: a frontend per listener, a backend per pool, a server
per member (what the templates render; ``render`` turns them into text).

A listener's protocol sets the mode of its frontend and of the backend of its default pool
(HAProxy refuses a frontend and a backend of different modes): HTTP and TERMINATED_HTTPS
(TLS ends on the bind line: ``BindTLS``) are ``mode http``, TCP and HTTPS (TLS passed
through) are ``mode tcp``. A pool no listener uses takes the mode of the first listener (its
own protocol when there is none): the pool's protocol decides nothing else; its TLS
(re-encryption) is options of each of its servers. A listener without a default pool has no
``default_backend``: HTTP answers 503, TCP closes the connection.

Every server carries all its options on its own line: servers added at run time (``add
server``) take nothing from ``default-server`` and must behave exactly like the ones read from
the file. ``Server.fixed`` is that line without weight and state (what ``add server`` takes
and what the runtime plan compares).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from lbaas.drivers.haproxy import certs
from lbaas.drivers.haproxy.certs import client_ca_file, crt_file, crt_list_file, pool_ca_file
from lbaas.drivers.haproxy.l7 import Routing, routing
from lbaas.drivers.haproxy.monitor import monitor_view
from lbaas.drivers.haproxy.names import backend_name, frontend_name
from lbaas.drivers.haproxy.tokens import Token, UnsafeValueError, token
from lbaas.drivers.model import (
    ClientValidationMode,
    Listener,
    LoadBalancer,
    Member,
    PersistenceType,
    Pool,
    Protocol,
)

BALANCE = {"ROUND_ROBIN": "roundrobin", "LEAST_CONNECTIONS": "leastconn", "SOURCE_IP": "source"}
MODE = {
    Protocol.TCP: "tcp",
    Protocol.HTTP: "http",
    Protocol.HTTPS: "tcp",
    Protocol.TERMINATED_HTTPS: "http",
}
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
class BindTLS:
    """TLS terminated on a listener: the ``ssl`` options of its bind line (every value a
    checked token) and the client-subject header."""

    options: Token
    """``ssl crt-list <file> ssl-min-ver ... [ciphers ...] [ciphersuites ...] [alpn ...]
    [ca-file <file> verify required|optional ...]``."""
    crt_list: str
    """The crt-list's content (``certs.crt_list``): the first certificate is the default, the
    others are picked by SNI from their names. Part of the fragment's structure."""
    subject_header: Token | None
    """Set to the verified client's subject (removed from what clients send); a checked
    ``header`` token already."""


@dataclass(frozen=True)
class Frontend:
    """One listener. Later: L7 rules (``use_backend``)."""

    name: str
    address: str
    """The load balancer's address, canonical (``ipaddress`` compressed)."""
    port: int
    mode: str
    enabled: bool
    maxconn: int | None
    backend: str | None
    """The default pool's backend; None: HTTP answers 503, TCP closes."""
    tls: BindTLS | None = None
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
    tls: Token | None = None
    """The servers' TLS options (re-encryption), also in the structure: a change reloads
    (a new CA file cannot be loaded by ``add server``)."""

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
        raise UnsafeValueError(
            "protocol", protocol, "not TCP, HTTP, HTTPS or TERMINATED_HTTPS"
        ) from None


def address_of(lb: LoadBalancer) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(lb.address)
    except (TypeError, ValueError) as exc:
        raise UnsafeValueError("address", lb.address) from exc


def bind_tls(lb: LoadBalancer, listener: Listener, certs_dir: str) -> BindTLS | None:
    """The bind line's ``ssl`` options of a TERMINATED_HTTPS listener (None for the others);
    ``certs_dir``: the device's certificate directory (its ``crt-base``)."""
    tls = listener.tls
    if Protocol(str(listener.protocol)) != Protocol.TERMINATED_HTTPS:
        if tls is not None:
            raise UnsafeValueError("listener", listener.name, "TLS settings without TLS")
        return None
    if tls is None or not tls.certificates:
        raise UnsafeValueError("listener", listener.name, "TERMINATED_HTTPS without certificates")
    for cert in tls.certificates:
        token(crt_file(lb.key, listener.name, cert.name), "cert")
    if not certs_dir:
        raise UnsafeValueError("listener", listener.name, "no certificate directory given")
    crt_list = token(f"{certs_dir}/{crt_list_file(lb.key, listener.name)}", "file")
    parts = ["ssl", "crt-list", crt_list, "ssl-min-ver", token(str(tls.min_version), "tlsver")]
    v12 = [c for c in tls.cipher_suites if not c.startswith("TLS_")]
    v13 = [c for c in tls.cipher_suites if c.startswith("TLS_")]
    if v12:
        parts += ["ciphers", token(":".join(v12), "ciphers")]
    if v13:
        parts += ["ciphersuites", token(":".join(v13), "ciphers")]
    if tls.alpn:
        parts += ["alpn", token(",".join(tls.alpn), "alpn")]
    header = None
    if tls.client_validation is not None:
        validation = tls.client_validation
        parts += ["ca-file", token(client_ca_file(lb.key, listener.name), "cert")]
        if validation.mode == ClientValidationMode.ALLOW_VALID_ONLY:
            parts += ["verify", "required"]
        else:  # served without a certificate, or with one that does not verify
            parts += ["verify", "optional", "crt-ignore-err", "all", "ca-ignore-err", "all"]
        if validation.subject_header is not None:
            header = token(validation.subject_header, "header")
    return BindTLS(Token(" ".join(parts)), certs.crt_list(lb, listener), header)


def frontend(lb: LoadBalancer, listener: Listener, index: int = 0, certs_dir: str = "") -> Frontend:
    """Listener number ``index`` of ``lb``; ``certs_dir``: the device's certificate directory
    (TERMINATED_HTTPS)."""
    return Frontend(
        name=frontend_name(lb, listener),
        address=address_of(lb).compressed,
        port=listener.port,
        mode=_mode(str(listener.protocol)),
        enabled=bool(listener.admin_state_up),
        maxconn=listener.connection_limit,
        backend=backend_name(lb, listener.default_pool) if listener.default_pool else None,
        tls=bind_tls(lb, listener, certs_dir),
        routing=routing(lb, listener, index),
    )


def server_tls(lb: LoadBalancer, pool: Pool) -> Token | None:
    """The ``ssl`` options of a pool's servers (TLS to the members), or None."""
    tls = pool.tls
    if tls is None:
        return None
    parts = ["ssl"]
    if tls.verify:
        if tls.ca is None:
            raise UnsafeValueError("pool", pool.name, "verification without a CA bundle")
        parts += ["verify", "required", "ca-file", token(pool_ca_file(lb.key, pool.name), "cert")]
    else:
        parts += ["verify", "none"]
    if tls.server_name is not None:
        name = token(tls.server_name, "dnsname")
        parts += ["sni", f"str({name})"]
        if tls.verify:
            parts += ["verifyhost", name]
    return Token(" ".join(parts))


def _fixed_args(
    member: Member, *, cookie: bool, monitor: dict[str, Any] | None, tls: Token | None = None
) -> Token:
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
        if monitor["ssl"] and tls is None:  # with server TLS, checks use its options
            parts += ["check-ssl", "verify", "none"]
        if member.monitor_address is not None:
            parts += ["addr", token(member.monitor_address, "ip")]
        if member.monitor_port is not None:
            parts += ["port", token(member.monitor_port, "port")]
    if tls is not None:
        parts.append(tls)
    return Token(" ".join(parts))


def _servers(
    pool: Pool, monitor: dict[str, Any] | None, kind: str | None, tls: Token | None
) -> tuple[Server, ...]:
    if not pool.admin_state_up:
        return ()
    servers = []
    for member in sorted(pool.members, key=lambda m: m.name):
        cookie = kind == PersistenceType.HTTP_COOKIE
        fixed = _fixed_args(member, cookie=cookie, monitor=monitor, tls=tls)
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
    tls = server_tls(lb, pool)
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
        servers=_servers(pool, monitor, kind, tls),
        tls=tls,
    )

"""Render a device's HAProxy configuration: a global file and one fragment per VIP.

HAProxy loads ``haproxy.cfg`` (global, defaults) and every ``conf.d/*.cfg`` (one per VIP), so a
change to one VIP rewrites one small file however many VIPs the device holds.

Besides its text, a fragment yields a *structure* digest: the fragment without what the
runtime API can change. For most backends that is every server (HAProxy 2.6 adds and removes
servers at run time); with HTTP_COOKIE persistence, whose ``cookie`` keyword ``add server``
does not take, only server weights and admin states. Two fragments with equal digests differ
only in what the runtime API can change, so the driver applies the difference without a reload.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from lbaas.api.meta import DNS_LABEL_PATTERN, DNS_SUBDOMAIN_PATTERN
from lbaas.drivers.base import DriverError, LoadBalancer, UnsupportedError
from lbaas.drivers.haproxy.monitor import enum_value, monitor_view
from lbaas.drivers.haproxy.tokens import Token, UnsafeValueError, finalize, token

TEMPLATES = Path(__file__).parent / "templates"

BALANCE = {"ROUND_ROBIN": "roundrobin", "LEAST_CONNECTIONS": "leastconn", "SOURCE_IP": "source"}
DEFAULT_INSERTED_COOKIE = "SRVID"
HEADER = "# lbaas-operator VIP fragment, do not edit; structure="
"""First line of every fragment: the structure digest of what HAProxy loads from it."""
MAX_KEY_BYTES = 230
"""``<namespace>__<name>`` names a VIP's files (``conf.d/<it>.cfg``, ``vips/<it>.json``, and
``.<file>.XXXXXXXX.new`` while staged): under the file systems' 255-byte limit on a name,
namespace and name may take 228 bytes together (165 for the name in a 63-character namespace,
where Kubernetes allows 253). Longer keys are refused up front (before: ``OSError`` from deep
inside an apply, retried forever)."""


@dataclass(frozen=True)
class GlobalSettings:
    runtime_socket: str
    server_state_file: str
    hard_stop_after: int = 900


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
class Fragment:
    """One VIP's ``conf.d`` file and what the driver needs to know about it."""

    key: str
    frontend: str
    backend: str
    address: str
    port: int
    enabled: bool
    dynamic: bool
    """Servers can be added and removed at run time (not with HTTP_COOKIE persistence)."""
    structure: str
    text: str
    servers: tuple[Server, ...]

    @property
    def listener(self) -> tuple[str, int]:
        return self.address, self.port

    def server_map(self) -> dict[str, Server]:
        return {s.name: s for s in self.servers}


@dataclass(frozen=True)
class Rendered:
    """A whole configuration as one text (tests, tools); the device uses the parts."""

    text: str
    fragments: tuple[Fragment, ...]


def frontend_name(lb: LoadBalancer) -> str:
    """``namespace`` is a DNS label and ``name`` a DNS subdomain: neither holds ``_``, so the
    ``__`` separator keeps names unique across namespaces."""
    return f"fe_{lb.namespace}__{lb.name}"


def backend_name(lb: LoadBalancer) -> str:
    return f"be_{lb.namespace}__{lb.name}"


def unsupported_reason(lb: LoadBalancer) -> str | None:
    """What of ``lb`` HAProxy cannot express, or None."""
    if isinstance(lb.namespace, str) and isinstance(lb.name, str):
        length = len(lb.namespace.encode()) + 2 + len(lb.name.encode())
        if length > MAX_KEY_BYTES:
            return (
                f"namespace and name are {length - 2} characters together; the haproxy driver"
                f" names its files after them and takes at most {MAX_KEY_BYTES - 2}: use a"
                " shorter VIP name"
            )
    protocol = enum_value(lb.spec.protocol)
    if protocol not in ("TCP", "HTTP", "HTTPS"):
        return f"protocol {protocol} not supported by the haproxy driver"
    persistence = lb.spec.session_persistence
    if persistence is not None:
        kind = enum_value(persistence.type)
        if kind in ("HTTP_COOKIE", "APP_COOKIE") and protocol != "HTTP":
            return (
                f"session persistence {kind} needs protocol HTTP: {protocol} is passed through"
                " as TCP and HAProxy cannot see its cookies"
            )
        if kind == "APP_COOKIE" and not persistence.cookie_name:
            return "session persistence APP_COOKIE needs a cookieName"
        if persistence.cookie_name is not None:
            try:
                token(persistence.cookie_name, "cookie")
            except UnsafeValueError:
                return (
                    f"cookie name {persistence.cookie_name!r} cannot be used by HAProxy: use"
                    " letters, digits and !$%&*+.^_|~- (no quote, # or backtick)"
                )
    return None


def _check_key(lb: LoadBalancer) -> None:
    """Proxy names join namespace and name with ``__``: unique only for Kubernetes names."""
    if not isinstance(lb.namespace, str) or not re.fullmatch(DNS_LABEL_PATTERN, lb.namespace):
        raise UnsafeValueError("namespace", lb.namespace, "not a DNS label")
    if not isinstance(lb.name, str) or not re.fullmatch(DNS_SUBDOMAIN_PATTERN, lb.name):
        raise UnsafeValueError("name", lb.name, "not a DNS subdomain")
    for member in lb.members:
        if not isinstance(member.name, str) or not re.fullmatch(DNS_SUBDOMAIN_PATTERN, member.name):
            raise UnsafeValueError("member name", member.name, "not a DNS subdomain")


def _fixed_args(
    address: Any,
    port: Any,
    *,
    backup: bool,
    cookie: str | None,
    monitor: dict[str, Any] | None,
    check_address: Any,
    check_port: Any,
) -> Token:
    """The server line's options but weight and state, as one token: each tenant value in it
    passed :func:`token`, the rest are the driver's own keywords."""
    parts = [f"{token(address, 'ip')}:{token(port, 'port')}"]
    if backup:
        parts.append("backup")
    if cookie is not None:
        # The member's name (a DNS subdomain, up to 253 characters): a name token, not a cookie
        # name token (64 at most), or HTTP_COOKIE VIPs with a long member name were refused.
        parts += ["cookie", token(cookie, "name")]
    if monitor is not None:
        parts += ["check", "inter", f"{token(monitor['delay'], 'int')}s"]
        parts += ["rise", token(monitor["rise"], "int"), "fall", token(monitor["fall"], "int")]
        if monitor["ssl"]:
            parts += ["check-ssl", "verify", "none"]
        if check_address is not None:
            parts += ["addr", token(check_address, "ip")]
        if check_port is not None:
            parts += ["port", token(check_port, "port")]
    return Token(" ".join(parts))


def _servers(lb: LoadBalancer, monitor: dict[str, Any] | None, kind: str | None) -> list[Server]:
    if lb.pool is None or not lb.pool.admin_state_up:
        return []
    servers = []
    for member in sorted(lb.members, key=lambda m: m.name):
        m = member.spec
        fixed = _fixed_args(
            m.address,
            m.port,
            backup=bool(m.backup),
            cookie=member.name if kind == "HTTP_COOKIE" else None,
            monitor=monitor,
            check_address=m.monitor_address,
            check_port=m.monitor_port,
        )
        token(m.weight, "int")
        servers.append(
            Server(
                name=token(member.name, "name"),
                address=ipaddress.ip_address(m.address).compressed,
                port=m.port,
                fixed=fixed,
                weight=m.weight,
                enabled=bool(m.admin_state_up),
                check=monitor is not None,
            )
        )
    return servers


def _view(lb: LoadBalancer) -> dict[str, Any]:
    _check_key(lb)
    reason = unsupported_reason(lb)
    if reason:
        raise UnsupportedError(f"VIP {lb.key}: {reason}")
    spec = lb.spec
    protocol = enum_value(spec.protocol)
    monitor = monitor_view(lb.monitor)
    persistence = spec.session_persistence
    kind = enum_value(persistence.type) if persistence else None
    cookie = None
    if kind == "HTTP_COOKIE":
        cookie = (persistence.cookie_name if persistence else None) or DEFAULT_INSERTED_COOKIE
    elif kind == "APP_COOKIE" and persistence:
        cookie = persistence.cookie_name
    try:
        family = ipaddress.ip_address(lb.address).version
    except ValueError as exc:
        raise UnsafeValueError("address", lb.address) from exc
    return {
        "key": lb.key,
        "frontend": frontend_name(lb),
        "backend": backend_name(lb),
        "mode": "http" if protocol == "HTTP" else "tcp",
        "address": lb.address,
        "port": spec.port,
        "enabled": spec.admin_state_up,
        "maxconn": None if spec.connection_limit == -1 else spec.connection_limit,
        "balance": BALANCE[enum_value(lb.pool.lb_method)] if lb.pool else "roundrobin",
        "persistence": kind,
        "cookie": cookie,
        "table_type": "ipv6" if family == 6 else "ip",
        "monitor": monitor,
        "dynamic": kind != "HTTP_COOKIE",
        "servers": _servers(lb, monitor, kind),
    }


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=finalize,
    )
    env.filters["tok"] = token
    return env


_ENV = _environment()


def render_vip(lb: LoadBalancer) -> Fragment:
    """The ``conf.d`` fragment of one VIP.

    Raises ``UnsafeValueError`` for a value that fails its token check and
    ``UnsupportedError`` for what HAProxy cannot express.
    """
    view = _view(lb)
    template = _ENV.get_template("vip.cfg.j2")
    structure = template.render(vip=view, structure_only=True)
    digest = hashlib.sha256(structure.encode()).hexdigest()
    text = f"{HEADER}{digest}\n" + template.render(vip=view, structure_only=False)
    return Fragment(
        key=lb.key,
        frontend=view["frontend"],
        backend=view["backend"],
        address=ipaddress.ip_address(lb.address).compressed,
        port=lb.spec.port,
        enabled=bool(lb.spec.admin_state_up),
        dynamic=view["dynamic"],
        structure=digest,
        text=text,
        servers=tuple(view["servers"]),
    )


def render_global(settings: GlobalSettings) -> str:
    return _ENV.get_template("global.cfg.j2").render(settings=settings)


def fragment_structure(text: str) -> str | None:
    """The structure digest recorded in a fragment's first line (None: not ours)."""
    first, _, _ = text.partition("\n")
    return first[len(HEADER) :] if first.startswith(HEADER) else None


def fragment_servers(text: str) -> dict[str, str]:
    """Server name -> its fixed options, read back from a fragment this module wrote."""
    servers = {}
    for line in text.splitlines():
        if not line.startswith("    server "):
            continue
        words = line.split()
        rest, i = [], 2
        while i < len(words):
            if words[i] == "weight":
                i += 2
                continue
            if words[i] != "disabled":
                rest.append(words[i])
            i += 1
        servers[words[1]] = " ".join(rest)
    return servers


def listener_key(address: str, port: int) -> tuple[str, int]:
    return ipaddress.ip_address(address).compressed, port


def render(lbs: Iterable[LoadBalancer], settings: GlobalSettings) -> Rendered:
    """The whole configuration for ``lbs`` as one text (VIPs in key order), as the device
    loads it from its files. Raises like :func:`render_vip`, and ``AddressInUse`` when two
    VIPs ask for one address:port."""
    fragments = [render_vip(lb) for lb in sorted(lbs, key=lambda lb: lb.key)]
    seen: dict[tuple[str, int], str] = {}
    for fragment in fragments:
        other = seen.setdefault(fragment.listener, fragment.key)
        if other != fragment.key:
            raise DriverError(
                f"{fragment.address}:{fragment.port} is already used by VIP {other} on this device",
                retryable=False,
                reason="AddressInUse",
            )
    text = render_global(settings) + "".join("\n" + f.text for f in fragments)
    return Rendered(text=text, fragments=tuple(fragments))

"""Render one device's HAProxy configuration from the desired trees of all its VIPs.

Besides the text, rendering yields a *structure* digest (the configuration with the values the
runtime API can change left out: member weight and admin state) and those runtime values per
server. Two renders with equal digests differ only in what ``set server`` can change, so the
driver applies the difference without a reload.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from lbaas.api.healthmonitor import EXPECTED_CODES_PATTERN, HealthMonitorSpec
from lbaas.api.meta import DNS_LABEL_PATTERN, DNS_SUBDOMAIN_PATTERN
from lbaas.drivers.base import DriverError, LoadBalancer, UnsupportedError
from lbaas.drivers.haproxy.tokens import UnsafeValueError, finalize, token

TEMPLATES = Path(__file__).parent / "templates"

BALANCE = {"ROUND_ROBIN": "roundrobin", "LEAST_CONNECTIONS": "leastconn", "SOURCE_IP": "source"}
DEFAULT_INSERTED_COOKIE = "SRVID"


@dataclass(frozen=True)
class ServerRuntime:
    """What ``set server`` changes without a reload."""

    weight: int
    enabled: bool


@dataclass(frozen=True)
class Rendered:
    text: str
    structure: str
    servers: dict[str, ServerRuntime] = field(default_factory=dict)
    """``backend/server`` → runtime values."""


@dataclass(frozen=True)
class GlobalSettings:
    runtime_socket: str
    server_state_file: str
    hard_stop_after: int = 900


def frontend_name(lb: LoadBalancer) -> str:
    """``namespace`` is a DNS label and ``name`` a DNS subdomain: neither holds ``_``, so the
    ``__`` separator keeps names unique across namespaces."""
    return f"fe_{lb.namespace}__{lb.name}"


def backend_name(lb: LoadBalancer) -> str:
    return f"be_{lb.namespace}__{lb.name}"


def _value(enum_or_str: Any) -> str:
    return str(getattr(enum_or_str, "value", enum_or_str))


def unsupported_reason(lb: LoadBalancer) -> str | None:
    """What of ``lb`` HAProxy cannot express, or None."""
    protocol = _value(lb.spec.protocol)
    if protocol not in ("TCP", "HTTP", "HTTPS"):
        return f"protocol {protocol} not supported by the haproxy driver"
    persistence = lb.spec.session_persistence
    if persistence is not None:
        kind = _value(persistence.type)
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


def _ranges(expected_codes: str) -> list[tuple[int, int]]:
    if not isinstance(expected_codes, str) or not re.fullmatch(
        EXPECTED_CODES_PATTERN, expected_codes
    ):
        raise UnsafeValueError("expectedCodes", expected_codes)
    ranges = []
    for part in expected_codes.split(","):
        low, _, high = part.partition("-")
        first, last = int(low), int(high or low)
        if first > last:
            raise UnsafeValueError("expectedCodes", expected_codes, f"empty range {part}")
        ranges.append((first, last))
    return ranges


def _digit_class(digits: Sequence[int]) -> str:
    if len(digits) == 1:
        return str(digits[0])
    if len(digits) == 10:
        return "[0-9]"
    runs: list[list[int]] = []
    for d in digits:
        if runs and runs[-1][1] == d - 1:
            runs[-1][1] = d
        else:
            runs.append([d, d])
    return (
        "["
        + "".join(f"{a}" if a == b else f"{a}{b}" if b == a + 1 else f"{a}-{b}" for a, b in runs)
        + "]"
    )


def status_regex(ranges: Iterable[tuple[int, int]]) -> str:
    """An anchored regex matching exactly the status codes in ``ranges`` (100-599)."""
    codes = sorted({c for low, high in ranges for c in range(low, high + 1)})
    alternatives = []
    for hundred in range(1, 6):
        in_hundred = [c for c in codes if c // 100 == hundred]
        if len(in_hundred) == 100:
            alternatives.append(f"{hundred}[0-9][0-9]")
            continue
        for ten in range(10):
            units = [c % 10 for c in in_hundred if (c // 10) % 10 == ten]
            if units:
                alternatives.append(f"{hundred}{ten}{_digit_class(units)}")
    return "^(?:" + "|".join(alternatives) + ")$"


def expect_rule(expected_codes: str) -> tuple[str, int | str]:
    """``("status", 200)`` for one code, else ``("rstatus", regex)``."""
    ranges = _ranges(expected_codes)
    if len(ranges) == 1 and ranges[0][0] == ranges[0][1]:
        return "status", ranges[0][0]
    return "rstatus", status_regex(ranges)


def _monitor_view(monitor: HealthMonitorSpec | None) -> dict[str, Any] | None:
    if monitor is None or not monitor.admin_state_up:
        return None
    kind = _value(monitor.type)
    view: dict[str, Any] = {
        "delay": monitor.delay,
        "timeout": monitor.timeout,
        "rise": monitor.max_retries,
        "fall": monitor.max_retries_down,
        "http": kind in ("HTTP", "HTTPS"),
        "ssl": kind == "HTTPS",
    }
    if view["http"]:
        view["method"] = _value(monitor.http_method)
        view["path"] = monitor.url_path
        view["expect_kind"], view["expect"] = expect_rule(monitor.expected_codes)
    return view


def _check_key(lb: LoadBalancer) -> None:
    """Proxy names join namespace and name with ``__``: unique only for Kubernetes names."""
    if not isinstance(lb.namespace, str) or not re.fullmatch(DNS_LABEL_PATTERN, lb.namespace):
        raise UnsafeValueError("namespace", lb.namespace, "not a DNS label")
    if not isinstance(lb.name, str) or not re.fullmatch(DNS_SUBDOMAIN_PATTERN, lb.name):
        raise UnsafeValueError("name", lb.name, "not a DNS subdomain")
    for member in lb.members:
        if not isinstance(member.name, str) or not re.fullmatch(DNS_SUBDOMAIN_PATTERN, member.name):
            raise UnsafeValueError("member name", member.name, "not a DNS subdomain")


def _frontend_view(lb: LoadBalancer) -> dict[str, Any]:
    _check_key(lb)
    reason = unsupported_reason(lb)
    if reason:
        raise UnsupportedError(f"VIP {lb.key}: {reason}")
    spec = lb.spec
    protocol = _value(spec.protocol)
    backend = backend_name(lb)
    monitor = _monitor_view(lb.monitor)
    persistence = spec.session_persistence
    kind = _value(persistence.type) if persistence else None
    cookie = None
    if kind == "HTTP_COOKIE":
        cookie = (persistence.cookie_name if persistence else None) or DEFAULT_INSERTED_COOKIE
    elif kind == "APP_COOKIE" and persistence:
        cookie = persistence.cookie_name
    try:
        family = ipaddress.ip_address(lb.address).version
    except ValueError as exc:
        raise UnsafeValueError("address", lb.address) from exc
    pool_up = lb.pool is not None and lb.pool.admin_state_up
    servers = []
    for member in lb.members if pool_up else ():
        m = member.spec
        servers.append(
            {
                "name": member.name,
                "address": m.address,
                "port": m.port,
                "weight": m.weight,
                "enabled": m.admin_state_up,
                "backup": m.backup,
                "cookie": member.name if kind == "HTTP_COOKIE" else None,
                "check_address": m.monitor_address if monitor else None,
                "check_port": m.monitor_port if monitor else None,
            }
        )
    return {
        "key": lb.key,
        "frontend": frontend_name(lb),
        "backend": backend,
        "mode": "http" if protocol == "HTTP" else "tcp",
        "address": lb.address,
        "port": spec.port,
        "enabled": spec.admin_state_up,
        "maxconn": None if spec.connection_limit == -1 else spec.connection_limit,
        "balance": BALANCE[_value(lb.pool.lb_method)] if lb.pool else "roundrobin",
        "persistence": kind,
        "cookie": cookie,
        "table_type": "ipv6" if family == 6 else "ip",
        "monitor": monitor,
        "servers": sorted(servers, key=lambda s: s["name"]),
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


def _check_listeners(views: Sequence[dict[str, Any]]) -> None:
    seen: dict[tuple[str, int], str] = {}
    for view in views:
        listener = (str(ipaddress.ip_address(view["address"])), view["port"])
        other = seen.setdefault(listener, view["key"])
        if other != view["key"]:
            raise DriverError(
                f"{view['address']}:{view['port']} is already used by VIP {other} on this device",
                retryable=False,
                reason="AddressInUse",
            )


def render(lbs: Iterable[LoadBalancer], settings: GlobalSettings) -> Rendered:
    """The whole configuration for ``lbs`` (any order; output is sorted by VIP key).

    Raises ``UnsafeValueError`` for a value that fails its token check and
    ``UnsupportedError`` for what HAProxy cannot express.
    """
    views = [_frontend_view(lb) for lb in sorted(lbs, key=lambda lb: lb.key)]
    _check_listeners(views)
    template = _ENV.get_template("haproxy.cfg.j2")
    context = {"vips": views, "settings": settings}
    text = template.render(**context, structure_only=False)
    structure = template.render(**context, structure_only=True)
    servers = {
        f"{view['backend']}/{s['name']}": ServerRuntime(s["weight"], s["enabled"])
        for view in views
        for s in view["servers"]
    }
    digest = hashlib.sha256(structure.encode()).hexdigest()
    return Rendered(text=text, structure=digest, servers=servers)

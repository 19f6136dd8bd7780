"""Annotations of a Service: what the Service API cannot say about its load balancer (pure).

Every key lives under ``lbaas.dev/``; an unknown key under that prefix is an error too (a
typo such as ``lbaas.dev/lb-methd`` must not be silently ignored). ``parse`` returns the
options and a list of problems; with any problem the caller keeps the generated objects as
they are and tells the user through a Warning Event, never applying half a configuration.

=====================================  ==================================================
``lbaas.dev/address``                  the address to serve on (replaces the deprecated
                                       ``spec.loadBalancerIP``, still honoured)
``lbaas.dev/device``                   pin every VIP to this Device
``lbaas.dev/device-selector``          ``key=value,...``: only Devices with these labels
``lbaas.dev/lb-method``                ``round-robin`` (default), ``least-connections``,
                                       ``source-ip``
``lbaas.dev/health-check-type``        ``tcp`` (default), ``http``, ``https``, ``ping``,
                                       ``none`` (no HealthMonitor)
``lbaas.dev/health-check-path``        path of http/https checks (default ``/``)
``lbaas.dev/health-check-interval``    seconds between checks: ``5`` or ``5s`` (default 5)
``lbaas.dev/connection-limit``         concurrent connections per port; -1 = unlimited
``lbaas.dev/tls-secret``               ``name[,name...]``: terminate TLS with these Secrets
                                       (type ``kubernetes.io/tls``, same namespace; the
                                       first is the default, the others by SNI)
``lbaas.dev/tls-ports``                ``443,8443`` or port names: the ports to terminate
                                       on (default: every port); HTTP to the endpoints
=====================================  ==================================================
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lbaas.api.healthmonitor import URL_PATH_PATTERN
from lbaas.api.meta import DNS_SUBDOMAIN_PATTERN
from lbaas.api.tls import MAX_CERTIFICATE_REFS

PREFIX = "lbaas.dev/"
ADDRESS = PREFIX + "address"
DEVICE = PREFIX + "device"
DEVICE_SELECTOR = PREFIX + "device-selector"
LB_METHOD = PREFIX + "lb-method"
HEALTH_CHECK_TYPE = PREFIX + "health-check-type"
HEALTH_CHECK_PATH = PREFIX + "health-check-path"
HEALTH_CHECK_INTERVAL = PREFIX + "health-check-interval"
CONNECTION_LIMIT = PREFIX + "connection-limit"
TLS_SECRET = PREFIX + "tls-secret"
TLS_PORTS = PREFIX + "tls-ports"
KNOWN = (
    ADDRESS,
    DEVICE,
    DEVICE_SELECTOR,
    LB_METHOD,
    HEALTH_CHECK_TYPE,
    HEALTH_CHECK_PATH,
    HEALTH_CHECK_INTERVAL,
    CONNECTION_LIMIT,
    TLS_SECRET,
    TLS_PORTS,
)

LB_METHODS = ("ROUND_ROBIN", "LEAST_CONNECTIONS", "SOURCE_IP")
MONITOR_TYPES = ("TCP", "HTTP", "HTTPS", "PING", "NONE")
# A label key (optional DNS prefix, then a name) and a label value, as Kubernetes checks them.
_LABEL_NAME = r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)"
_LABEL_KEY = re.compile(rf"^([a-z0-9]([-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_LABEL_NAME}$")
_LABEL_VALUE = re.compile(rf"^{_LABEL_NAME}?$")


@dataclass(frozen=True)
class Options:
    """The load-balancer settings of one Service, defaults filled in."""

    address: str | None = None
    device: str | None = None
    device_selector: Mapping[str, str] | None = None
    lb_method: str = "ROUND_ROBIN"
    monitor_type: str | None = "TCP"  # None: no HealthMonitor
    monitor_path: str = "/"
    monitor_interval: int = 5
    connection_limit: int = -1
    tls_secrets: tuple[str, ...] = ()
    """Terminate TLS with these Secrets (empty: no TLS termination)."""
    tls_ports: frozenset[int] | None = None
    """The Service ports (numbers) to terminate TLS on; None: every port."""
    notes: tuple[str, ...] = field(default=())  # remarks worth a Normal Event (deprecations)

    def terminates(self, port: int) -> bool:
        return bool(self.tls_secrets) and (self.tls_ports is None or port in self.tls_ports)


def _enum(raw: str, allowed: tuple[str, ...], what: str, problems: list[str]) -> str | None:
    value = raw.strip().upper().replace("-", "_")
    if value not in allowed:
        choices = ", ".join(a.lower().replace("_", "-") for a in allowed)
        problems.append(f"{what}: {raw!r} is not one of {choices}")
        return None
    return value


def _int(raw: str, what: str, low: int, high: int, problems: list[str], unit: str = "") -> int:
    text = raw.strip()
    if unit and text.endswith(unit):
        text = text[: -len(unit)]
    try:
        value = int(text)
    except ValueError:
        problems.append(f"{what}: {raw!r} is not a whole number")
        return 0
    if not low <= value <= high:
        problems.append(f"{what}: {value} is outside {low}..{high}")
    return value


def _selector(raw: str, problems: list[str]) -> dict[str, str] | None:
    labels: dict[str, str] = {}
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value):
            problems.append(f"{DEVICE_SELECTOR}: {part!r} is not label=value")
            return None
        labels[key] = value
    if not labels:
        problems.append(f"{DEVICE_SELECTOR}: empty; write label=value[,label=value...]")
        return None
    return labels


def _address(raw: str, what: str, problems: list[str]) -> str | None:
    try:
        return str(ipaddress.ip_address(raw.strip()))
    except ValueError:
        problems.append(f"{what}: {raw!r} is not an IP address")
        return None


def _tls_secrets(raw: str, problems: list[str]) -> tuple[str, ...]:
    names = tuple(n.strip() for n in raw.split(",") if n.strip())
    bad = [n for n in names if not re.match(DNS_SUBDOMAIN_PATTERN, n) or len(n) > 253]
    if bad or not names:
        problems.append(f"{TLS_SECRET}: {raw!r} is not a Secret name (or names, comma-separated)")
        return ()
    if len(set(names)) != len(names) or len(names) > MAX_CERTIFICATE_REFS:
        problems.append(f"{TLS_SECRET}: names must be distinct, at most {MAX_CERTIFICATE_REFS}")
        return ()
    return names


def _tls_ports(
    raw: str, ports: Sequence[Mapping[str, Any]] | None, problems: list[str]
) -> frozenset[int] | None:
    """The port numbers ``raw`` names (numbers or port names of the Service); ``*``: all."""
    tokens = [t.strip() for t in raw.split(",") if t.strip()]
    if tokens == ["*"]:
        return None
    by_name = {str(p.get("name")): int(p["port"]) for p in ports or () if p.get("name")}
    numbers = {int(p["port"]) for p in ports or ()}
    found: set[int] = set()
    for token in tokens:
        if token.isdigit() and (ports is None or int(token) in numbers):
            found.add(int(token))
        elif token in by_name:
            found.add(by_name[token])
        else:
            problems.append(f"{TLS_PORTS}: {token!r} is not a port of the Service")
    if not tokens:
        problems.append(f"{TLS_PORTS}: empty; write port numbers or names, or *")
    return frozenset(found)


def parse(
    annotations: Mapping[str, str],
    load_balancer_ip: str | None = None,
    ports: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[Options, list[str]]:
    """The Service's options and what is wrong with its annotations (empty: all valid).
    ``ports``: the Service's ``spec.ports`` (port names in annotations resolve against them)."""
    problems: list[str] = []
    notes: list[str] = []
    ours = {k: str(v) for k, v in annotations.items() if k.startswith(PREFIX)}
    for key in sorted(set(ours) - set(KNOWN)):
        problems.append(f"unknown annotation {key} (known: {', '.join(KNOWN)})")
    address = None
    if ADDRESS in ours:
        address = _address(ours[ADDRESS], ADDRESS, problems)
    if load_balancer_ip:
        legacy = _address(load_balancer_ip, "spec.loadBalancerIP", problems)
        if address is None and ADDRESS not in ours:
            address = legacy
            notes.append(f"spec.loadBalancerIP is deprecated; annotate {ADDRESS} instead")
        elif legacy is not None and address is not None and legacy != address:
            problems.append(
                f"spec.loadBalancerIP ({legacy}) and {ADDRESS} ({address}) differ; remove"
                " spec.loadBalancerIP (deprecated)"
            )
    device = None
    if DEVICE in ours:
        device = ours[DEVICE].strip()
        if not re.match(DNS_SUBDOMAIN_PATTERN, device) or len(device) > 253:
            problems.append(f"{DEVICE}: {device!r} is not a Device name")
            device = None
    selector = _selector(ours[DEVICE_SELECTOR], problems) if DEVICE_SELECTOR in ours else None
    lb_method = "ROUND_ROBIN"
    if LB_METHOD in ours:
        lb_method = _enum(ours[LB_METHOD], LB_METHODS, LB_METHOD, problems) or lb_method
    monitor: str | None = "TCP"
    if HEALTH_CHECK_TYPE in ours:
        monitor = _enum(ours[HEALTH_CHECK_TYPE], MONITOR_TYPES, HEALTH_CHECK_TYPE, problems)
        monitor = None if monitor == "NONE" else (monitor or "TCP")
    path = "/"
    if HEALTH_CHECK_PATH in ours:
        path = ours[HEALTH_CHECK_PATH].strip()
        if monitor not in ("HTTP", "HTTPS"):
            problems.append(f"{HEALTH_CHECK_PATH} needs {HEALTH_CHECK_TYPE}: http or https")
        elif not re.match(URL_PATH_PATTERN, path) or len(path) > 2048:
            problems.append(f"{HEALTH_CHECK_PATH}: {path!r} is not a URL path such as /healthz")
    interval = 5
    if HEALTH_CHECK_INTERVAL in ours:
        interval = _int(ours[HEALTH_CHECK_INTERVAL], HEALTH_CHECK_INTERVAL, 1, 3600, problems, "s")
    limit = -1
    if CONNECTION_LIMIT in ours:
        limit = _int(ours[CONNECTION_LIMIT], CONNECTION_LIMIT, -1, 10_000_000, problems)
    secrets = _tls_secrets(ours[TLS_SECRET], problems) if TLS_SECRET in ours else ()
    tls_ports = _tls_ports(ours[TLS_PORTS], ports, problems) if TLS_PORTS in ours else None
    if TLS_PORTS in ours and TLS_SECRET not in ours:
        problems.append(f"{TLS_PORTS} needs {TLS_SECRET} (the certificates to serve)")
    options = Options(
        address=address,
        device=device,
        device_selector=selector,
        lb_method=lb_method,
        monitor_type=monitor,
        monitor_path=path,
        monitor_interval=interval,
        connection_limit=limit,
        tls_secrets=secrets,
        tls_ports=tls_ports,
        notes=tuple(notes),
    )
    return options, problems

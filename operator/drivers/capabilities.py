"""Capabilities: one vocabulary for what a device can do, and what a tree asks of it.

Every driver declares the features it supports (``Driver.capabilities``); every tree asks for
some (:func:`required_features`). The scheduler places a VIP only on a device whose driver has
all its tree asks for, and names the missing feature when none has it; the core refuses to
hand a driver a tree that asks for more (status ``Unsupported``, naming the feature), so a
driver never discovers an option it cannot express half-way through an apply. The conformance
kit tests each declared feature, skips (and lists) the others, and fails a declared feature
that does not work.

Features are grouped in profiles (the Gateway API's way: a driver may be L4-only); ``core``
features are those any driver of the profile is expected to have (``lbaas-conformance
--strict`` fails on a missing one), ``extended`` ones are optional.

Operational features (``ops.*``, ``tls.hitless-rotation``) are promises about *how* a driver
works, not options a tree asks for: the kit checks them, users read them in the Device's
status (``status.features``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lbaas.drivers.model import (
    ActionType,
    L7Policy,
    ListenerTLS,
    LoadBalancer,
    PathMatchType,
    Pool,
    Protocol,
    TLSVersion,
    ValueMatchType,
)

if TYPE_CHECKING:
    from lbaas.drivers.contract import Driver


@dataclass(frozen=True)
class Feature:
    name: str
    profile: str
    level: str  # "core" | "extended"
    description: str


PROFILES = ("L4", "HTTP", "TLS", "L7", "UDP", "OPS")

_FEATURES = (
    # L4: what every load balancer does
    Feature("protocol.tcp", "L4", "core", "TCP listeners and pools"),
    Feature("method.round-robin", "L4", "core", "lbMethod ROUND_ROBIN"),
    Feature("method.least-connections", "L4", "extended", "lbMethod LEAST_CONNECTIONS"),
    Feature("method.source-ip", "L4", "extended", "lbMethod SOURCE_IP (hash of the client)"),
    Feature("member.weight", "L4", "core", "member weights other than 1 (0 = drain)"),
    Feature("member.backup", "L4", "extended", "backup members (serve when no other is up)"),
    Feature("member.admin-state", "L4", "core", "members taken out of service"),
    Feature("member.monitor-address", "L4", "extended", "health checks on another address/port"),
    Feature("pool.admin-state", "L4", "core", "pools taken out of service"),
    Feature("listener.connection-limit", "L4", "extended", "a listener's connectionLimit"),
    Feature("listener.admin-state", "L4", "core", "a listener taken out of service"),
    Feature("listener.multiple", "L4", "extended", "several listeners on one address"),
    Feature("monitor.tcp", "L4", "core", "TCP connect health checks"),
    Feature("monitor.ping", "L4", "extended", "PING health checks (may be a TCP connect)"),
    Feature("persistence.source-ip", "L4", "extended", "session persistence by client address"),
    # HTTP
    Feature("protocol.http", "HTTP", "core", "HTTP listeners (the device sees requests)"),
    Feature("monitor.http", "HTTP", "core", "HTTP health checks (method, path, codes)"),
    Feature("monitor.https", "HTTP", "extended", "HTTPS health checks"),
    Feature("persistence.http-cookie", "HTTP", "extended", "a cookie the device inserts"),
    Feature("persistence.app-cookie", "HTTP", "extended", "the application's own cookie"),
    Feature("http.forwarded-headers", "HTTP", "extended", "X-Forwarded-For/-Proto/-Port"),
    # TLS
    Feature("protocol.https", "TLS", "core", "HTTPS passed through (TLS to the members)"),
    Feature("tls.terminate", "TLS", "core", "TERMINATED_HTTPS: TLS ends on the device"),
    Feature("tls.sni", "TLS", "core", "several certificates, chosen by SNI"),
    Feature("tls.min-version", "TLS", "core", "minVersion TLSv1.3"),
    Feature("tls.cipher-suites", "TLS", "extended", "an explicit cipher suite list"),
    Feature("tls.alpn", "TLS", "extended", "ALPN protocols (h2, http/1.1)"),
    Feature("tls.client-validation", "TLS", "extended", "mutual TLS (client certificates)"),
    Feature("tls.backend", "TLS", "extended", "TLS from the device to the members"),
    Feature("tls.hitless-rotation", "TLS", "extended", "a new certificate without a reload"),
    # L7
    Feature("l7.host", "L7", "core", "route by host name (exact and *. wildcards)"),
    Feature("l7.path", "L7", "core", "route by path (Exact, PathPrefix)"),
    Feature("l7.header", "L7", "extended", "route by request header"),
    Feature("l7.method", "L7", "extended", "route by HTTP method"),
    Feature("l7.query", "L7", "extended", "route by query parameter"),
    Feature("l7.regex", "L7", "extended", "regular expressions in path and header matches"),
    Feature("l7.redirect", "L7", "core", "Redirect actions"),
    Feature("l7.reject", "L7", "core", "Reject actions"),
    Feature("l7.header-modifier", "L7", "extended", "set, add and remove request/response headers"),
    Feature("l7.weighted-split", "L7", "extended", "Forward to several pools by weight"),
    Feature("l7.multiple-pools", "L7", "core", "several pools behind one listener"),
    # UDP
    Feature("protocol.udp", "UDP", "core", "UDP listeners and pools"),
    # Operations: how the driver works
    Feature("ops.batch", "OPS", "extended", "apply_many costs one device change, not one per VIP"),
    Feature("ops.hitless-members", "OPS", "extended", "member changes without a reload"),
    Feature("ops.drain", "OPS", "extended", "a removed member finishes its requests"),
    Feature("ops.member-status", "OPS", "core", "members' health read from the device"),
    Feature("ops.verify", "OPS", "extended", "drift found by verify"),
    Feature("ops.orphans", "OPS", "extended", "VIPs left on the device are found"),
    Feature("ops.watch", "OPS", "extended", "the data plane's death noticed at once"),
    Feature("ops.fencing", "OPS", "core", "calls of an older owner refused"),
    Feature("ops.traffic-stats", "OPS", "extended", "per-VIP traffic counters"),
)

FEATURES: dict[str, Feature] = {f.name: f for f in _FEATURES}
"""Every feature by name, in documentation order."""

OPERATIONAL = frozenset(f.name for f in _FEATURES if f.profile == "OPS") | {"tls.hitless-rotation"}
"""Promises about how a driver works; no tree asks for them."""


def unknown(features: Iterable[str]) -> list[str]:
    """Names in ``features`` that are not in the vocabulary (a driver's typo)."""
    return sorted(set(features) - set(FEATURES))


_PROTOCOL = {
    Protocol.TCP: "protocol.tcp",
    Protocol.UDP: "protocol.udp",
    Protocol.HTTP: "protocol.http",
    Protocol.HTTPS: "protocol.https",
    Protocol.TERMINATED_HTTPS: "tls.terminate",
}


def required_features(lb: LoadBalancer) -> set[str]:
    """The features ``lb`` asks of its device (pure, cheap: the scheduler calls it per VIP)."""
    need: set[str] = set()
    if len(lb.listeners) > 1:
        need.add("listener.multiple")
    for listener in lb.listeners:
        need.add(_PROTOCOL[Protocol(listener.protocol)])
        if listener.connection_limit is not None:
            need.add("listener.connection-limit")
        if not listener.admin_state_up:
            need.add("listener.admin-state")
        if listener.forwarded_headers:
            need.add("http.forwarded-headers")
        if listener.tls is not None:
            need |= _tls(listener.tls)
        for policy in listener.policies:
            need |= _policy(policy)
    used = {listener.default_pool for listener in lb.listeners} | {
        wp.pool for listener in lb.listeners for p in listener.policies for wp in p.action.pools
    }
    if len(used - {None}) > 1:
        need.add("l7.multiple-pools")
    for pool in lb.pools:
        need |= _pool(pool)
    return need


def _tls(tls: ListenerTLS) -> set[str]:
    need = {"tls.terminate"}
    if len(tls.certificates) > 1:
        need.add("tls.sni")
    if tls.min_version == TLSVersion.TLS_1_3:
        need.add("tls.min-version")
    if tls.cipher_suites:
        need.add("tls.cipher-suites")
    if tls.alpn:
        need.add("tls.alpn")
    if tls.client_validation is not None:
        need.add("tls.client-validation")
    return need


def _policy(policy: L7Policy) -> set[str]:
    need: set[str] = set()
    match = policy.match
    if match.hostnames:
        need.add("l7.host")
    if match.path is not None:
        need.add("l7.path")
        if match.path.type == PathMatchType.REGEX:
            need.add("l7.regex")
    if match.headers:
        need.add("l7.header")
        if any(h.type == ValueMatchType.REGEX for h in match.headers):
            need.add("l7.regex")
    if match.method:
        need.add("l7.method")
    if match.query_params:
        need.add("l7.query")
        if any(q.type == ValueMatchType.REGEX for q in match.query_params):
            need.add("l7.regex")
    action = policy.action
    if action.type == ActionType.REDIRECT:
        need.add("l7.redirect")
    elif action.type == ActionType.REJECT:
        need.add("l7.reject")
    elif len(action.pools) > 1:
        need.add("l7.weighted-split")
    if policy.request_headers is not None or policy.response_headers is not None:
        need.add("l7.header-modifier")
    return need


_METHOD = {
    "ROUND_ROBIN": "method.round-robin",
    "LEAST_CONNECTIONS": "method.least-connections",
    "SOURCE_IP": "method.source-ip",
}
_PERSISTENCE = {
    "SOURCE_IP": "persistence.source-ip",
    "HTTP_COOKIE": "persistence.http-cookie",
    "APP_COOKIE": "persistence.app-cookie",
}
_MONITOR = {"PING": "monitor.ping", "TCP": "monitor.tcp", "HTTP": "monitor.http",
            "HTTPS": "monitor.https"}  # fmt: skip


def _pool(pool: Pool) -> set[str]:
    need = {_METHOD[str(pool.method)]}
    if pool.protocol == Protocol.UDP:
        need.add("protocol.udp")
    if not pool.admin_state_up:
        need.add("pool.admin-state")
    if pool.persistence is not None:
        need.add(_PERSISTENCE[str(pool.persistence.type)])
    if pool.tls is not None:
        need.add("tls.backend")
    if pool.monitor is not None and pool.monitor.admin_state_up:
        need.add(_MONITOR[str(pool.monitor.type)])
    for member in pool.members:
        if member.weight != 1:
            need.add("member.weight")
        if member.backup:
            need.add("member.backup")
        if not member.admin_state_up:
            need.add("member.admin-state")
        if member.monitor_address is not None or member.monitor_port is not None:
            need.add("member.monitor-address")
    return need


def missing(lb: LoadBalancer, supported: Iterable[str]) -> list[str]:
    """The features ``lb`` asks for that ``supported`` lacks, sorted (empty: it can be served)."""
    return sorted(required_features(lb) - set(supported))


def why_unsupported(driver: Driver, config: Mapping[str, Any], lb: LoadBalancer) -> str | None:
    """Why a device of ``driver`` with ``config`` cannot serve ``lb``: the features it lacks,
    else the driver's own refusal (``supports``); None when it can. Pure (no device access)."""
    if lacking := missing(lb, driver.capabilities(config)):
        return f"lacks {described(lacking)}"
    return driver.supports(lb, config)


def described(features: Iterable[str]) -> str:
    """``feature protocol.udp (UDP listeners and pools), ...`` for messages."""
    return ", ".join(
        f"feature {name} ({FEATURES[name].description if name in FEATURES else 'unknown'})"
        for name in features
    )


def summary(features: Iterable[str]) -> str:
    """The profiles ``features`` cover, for ``kubectl get lbdev``: ``"L4 HTTP OPS, partly TLS"``
    (a profile is covered when every core feature of it is declared)."""
    have = set(features)
    full, partly = [], []
    for profile in PROFILES:
        core = {f.name for f in _FEATURES if f.profile == profile and f.level == "core"}
        declared = {f.name for f in _FEATURES if f.profile == profile} & have
        if core <= have:
            full.append(profile)
        elif declared:
            partly.append(profile)
    text = " ".join(full) or "none"
    return f"{text}, partly {' '.join(partly)}" if partly else text

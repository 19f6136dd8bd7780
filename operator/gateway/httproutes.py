"""HTTPRoutes on an HTTP listener's VIP, as L7Policies and Pools (pure).

Each match of each rule of each HTTPRoute attached to a listener of the VIP becomes an
L7Policy (one per effective host name: the listener's hostname and the route's intersected),
named ``<vip>-<route>-l<listener>-r<rule>-m<match>[-h<host>]``. Its action: a Forward to the
Pools of the rule's valid backendRefs, weighted as the route says; a Redirect for a
``RequestRedirect`` filter; a Reject 500 when no backend is valid (the Gateway API's answer
for a rule without a usable backend). ``RequestHeaderModifier`` and ``ResponseHeaderModifier``
become the policy's header changes. One Pool per backend Service port of the VIP,
``<vip>-<service>-<port>`` (``<vip>-<namespace>-<service>-<port>`` for another namespace), with
a Member per ready endpoint.

Priorities follow the Gateway API's precedence, over all the VIP's routes: the most specific
host name (exact before wildcard, longer first), then ``Exact`` paths, regular expressions,
``PathPrefix`` (longer first), a method, more header matches, more query matches; then the
oldest route, ``namespace/name``, rule and match order. A last policy answers 404 to what no
route takes.

Rules this controller cannot serve are left out (:mod:`lbaas.gateway.httprules`); the route's
status then says ``PartiallyInvalid`` (some rules dropped) or ``Accepted=False`` (all).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lbaas.gateway import httprules
from lbaas.gateway.attach import Attached, intersect
from lbaas.gateway.backends import Backend, backend
from lbaas.gateway.spec import backend_ref, created, hostnames, ref_of
from lbaas.gateway.world import World
from lbaas.generated import owned
from lbaas.views import meta_of

NOT_FOUND = 404
STEP = 10
"""Priorities are 10, 20, ...: room to read, and ties impossible."""


def effective_hostnames(listener: str | None, route: Sequence[str]) -> list[str | None]:
    """The host names a route serves on a listener: the narrower of each intersecting pair
    (``*.example.com`` and ``a.example.com``: ``a.example.com``); ``[None]`` for any host."""
    if not listener:
        return list(route) or [None]
    if not route:
        return [listener]
    found: list[str | None] = []
    for host in route:
        if not intersect(listener, host):
            continue
        if host.startswith("*.") and listener.startswith("*."):
            narrower = host if len(host) >= len(listener) else listener
        else:
            narrower = listener if host.startswith("*.") else host
        if narrower not in found:
            found.append(narrower)
    return found


def _host_rank(host: str | None) -> tuple[int, int]:
    if host is None:
        return (2, 0)
    return (1 if host.startswith("*.") else 0, -len(host))


def _path_rank(match: Mapping[str, Any]) -> tuple[int, int]:
    path = match.get("path") or {"type": "PathPrefix", "value": "/"}
    order = {"Exact": 0, "RegularExpression": 1}.get(str(path.get("type")), 2)
    return (order, -len(str(path.get("value") or "")))


@dataclass
class Plan:
    pools: dict[str, tuple[Backend, ...]]
    """Pool name → the backend it serves (one Service port)."""
    policies: dict[str, dict[str, Any]]
    """L7Policy name → its spec."""


def pool_name(vip: str, namespace: str, found: Backend) -> str:
    ref = found.ref
    if ref.namespace == namespace:
        return owned.bounded(f"{vip}-{ref.name}-{ref.port}")
    return owned.bounded(f"{vip}-{ref.namespace}-{ref.name}-{ref.port}")


def _prefix(vip: str, namespace: str, route: Mapping[str, Any]) -> str:
    ref = ref_of(route)
    if ref.namespace == namespace:
        return owned.bounded(f"{vip}-{ref.name}")
    return owned.bounded(f"{vip}-{ref.namespace}-{ref.name}")


Candidate = tuple[tuple[Any, ...], str, dict[str, Any]]  # precedence key, name, spec


def _precedence(
    host: str | None, match: Mapping[str, Any], route: Mapping[str, Any], *order: int
) -> tuple[Any, ...]:
    """Sorts first what the Gateway API says matches first (see the module docstring)."""
    return (
        _host_rank(host),
        _path_rank(match),
        0 if match.get("method") else 1,
        -len(match.get("headers") or ()),
        -len(match.get("queryParams") or ()),
        created(route),
        *order,
    )


class _Planner:
    """One HTTP VIP's plan, built route by route."""

    def __init__(self, vip: str, namespace: str, world: World) -> None:
        self.vip, self.namespace, self.world = vip, namespace, world
        self.out = Plan({}, {})
        self.candidates: list[Candidate] = []

    def pools_of(self, route: Mapping[str, Any], rule: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The rule's valid backends as weighted pool references (their Pools recorded)."""
        route_namespace = str(meta_of(route).get("namespace"))
        refs = []
        for raw in rule.get("backendRefs") or ():
            found = backend(route, backend_ref(raw, route_namespace), self.world)
            if isinstance(found, Backend):
                name = pool_name(self.vip, self.namespace, found)
                self.out.pools.setdefault(name, (found,))
                refs.append({"poolRef": name, "weight": found.ref.weight})
        return refs

    def route(self, entry: Attached) -> None:
        route = entry.route
        problems = httprules.rule_problems(route)
        base = _prefix(self.vip, self.namespace, route)
        for listener in entry.listeners:
            hosts = effective_hostnames(listener.hostname, hostnames(route))
            for r, rule in enumerate(httprules.rules(route)):
                if r in problems:
                    continue
                shape = httprules.policy_shape(rule, self.pools_of(route, rule))
                for m, match in enumerate(httprules.matches(rule)):
                    for h, host in enumerate(hosts):
                        suffix = f"-h{h}" if len(hosts) > 1 else ""
                        name = owned.bounded(f"{base}-l{listener.index}-r{r}-m{m}{suffix}")
                        spec = {"vipRef": self.vip, "match": httprules.policy_match(match, host)}
                        key = _precedence(host, match, route, r, m, h, listener.index)
                        self.candidates.append((key, name, {**spec, **shape}))

    def done(self) -> Plan:
        self.candidates.sort(key=lambda c: c[0])
        for rank, (_, name, spec) in enumerate(self.candidates, start=1):
            self.out.policies[name] = {**spec, "priority": rank * STEP}
        self.out.policies[owned.bounded(f"{self.vip}-not-found")] = {
            "vipRef": self.vip,
            "priority": (len(self.candidates) + 1) * STEP,
            "action": {"type": "Reject", "reject": {"statusCode": NOT_FOUND}},
        }
        return self.out


def plan(vip: str, namespace: str, attached: Sequence[Attached], world: World) -> Plan:
    """The Pools and L7Policies of an HTTP VIP of a Gateway in ``namespace``."""
    planner = _Planner(vip, namespace, world)
    for entry in sorted(attached, key=lambda a: created(a.route)):
        planner.route(entry)
    return planner.done()

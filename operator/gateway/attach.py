"""Routes attaching to a Gateway's listeners, and which route each VIP serves (pure).

A route's ``parentRef`` names a Gateway and, optionally, a listener (``sectionName``) and a
port. It attaches to those named listeners that take its kind (``supportedKinds``), admit its
namespace (``allowedRoutes.namespaces``: ``Same``, ``All``, or a ``Selector`` on the route
namespace's labels) and whose hostname intersects one of the route's ``hostnames`` (TLS and
HTTP routes). Each failure has the Gateway API's reason: ``NoMatchingParent``,
``NotAllowedByListeners``, ``NoMatchingListenerHostname``. No ReferenceGrant is needed for a
route in another namespace: the listener's ``allowedRoutes`` is the Gateway owner's consent.

A TCP or UDP listener forwards every connection to one backend set: when several routes
attach, all are accepted (and counted in ``attachedRoutes``) but only the oldest is served,
as the Gateway API's conflict rules say. A TLS passthrough listener would need routing by
SNI to serve several routes, which these devices do not do: the oldest is served, the others
are ``Accepted=False`` ``UnsupportedValue``, so no route claims traffic it does not get.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lbaas.gateway import httprules
from lbaas.gateway.listeners import Verdict
from lbaas.gateway.spec import (
    GROUP,
    Listener,
    ParentRef,
    Ref,
    created,
    hostnames,
    parent_refs,
    ref_of,
)
from lbaas.gateway.world import World
from lbaas.status import Cond
from lbaas.views import meta_of

ACCEPTED = "Accepted"
NO_MATCHING_PARENT = "NoMatchingParent"
NOT_ALLOWED = "NotAllowedByListeners"
NO_MATCHING_HOSTNAME = "NoMatchingListenerHostname"
UNSUPPORTED_VALUE = "UnsupportedValue"
PARTIALLY_INVALID = "PartiallyInvalid"
SINGLE_ROUTE = {"TLSRoute"}
"""Kinds whose extra routes on one listener are refused rather than accepted unserved."""
MANY_ROUTES = {"HTTPRoute"}
"""Kinds of which a listener serves every attached route."""


def names_gateway(parent: ParentRef, gateway: Mapping[str, Any]) -> bool:
    meta = meta_of(gateway)
    return (
        parent.group == GROUP
        and parent.kind == "Gateway"
        and parent.namespace == meta.get("namespace")
        and parent.name == meta.get("name")
    )


def hostnames_intersect(listener: str | None, route: Sequence[str]) -> bool:
    """Whether a listener's hostname and one of a route's can name the same host (``*.``
    wildcards match one label or more)."""
    if not listener or not route:
        return True
    return any(intersect(listener, h) for h in route)


def intersect(a: str, b: str) -> bool:
    """Whether two host names (either may be a ``*.`` wildcard) can name the same host."""
    if a == b:
        return True
    if a.startswith("*.") and b.startswith("*."):
        return a.endswith(b[1:]) or b.endswith(a[1:])
    if a.startswith("*."):
        return b.endswith(a[1:])
    if b.startswith("*."):
        return a.endswith(b[1:])
    return False


def _namespace_allowed(verdict: Verdict, gateway_ns: str, route_ns: str, world: World) -> bool:
    listener = verdict.listener
    if listener.routes_from == "All":
        return True
    if listener.routes_from == "Selector":
        selector = listener.routes_selector
        return selector is not None and selector.matches(dict(world.namespace_labels(route_ns)))
    return route_ns == gateway_ns  # Same (the default)


@dataclass(frozen=True)
class Attachment:
    """One parentRef of a route that names this Gateway: the listeners it attached to."""

    parent: ParentRef
    listeners: tuple[str, ...]
    accepted: Cond


def attach(
    route: Mapping[str, Any],
    parent: ParentRef,
    gateway: Mapping[str, Any],
    verdicts: Sequence[Verdict],
    world: World,
) -> Attachment:
    ref = ref_of(route)
    gateway_ns = str(meta_of(gateway).get("namespace"))
    named = [
        v
        for v in verdicts
        if (parent.section is None or v.listener.name == parent.section)
        and (parent.port is None or v.listener.port == parent.port)
    ]
    if not named:
        what = " and ".join(
            x
            for x in (
                f"named {parent.section}" if parent.section else "",
                f"on port {parent.port}" if parent.port else "",
            )
            if x
        )
        return Attachment(
            parent,
            (),
            Cond(ACCEPTED, False, NO_MATCHING_PARENT, f"the Gateway has no listener {what}"),
        )
    allowed = [
        v
        for v in named
        if ref.kind in v.kinds and _namespace_allowed(v, gateway_ns, ref.namespace, world)
    ]
    if not allowed:
        return Attachment(
            parent,
            (),
            Cond(
                ACCEPTED,
                False,
                NOT_ALLOWED,
                f"no listener of {', '.join(v.listener.name for v in named)} takes a {ref.kind}"
                f" from namespace {ref.namespace} (allowedRoutes)",
            ),
        )
    wanted = hostnames(route)
    matching = [v for v in allowed if hostnames_intersect(v.listener.hostname, wanted)]
    if not matching:
        return Attachment(
            parent,
            (),
            Cond(
                ACCEPTED,
                False,
                NO_MATCHING_HOSTNAME,
                f"hostnames {', '.join(wanted)} match no hostname of listeners"
                f" {', '.join(v.listener.name for v in allowed)}",
            ),
        )
    return Attachment(
        parent, tuple(v.listener.name for v in matching), Cond(ACCEPTED, True, ACCEPTED)
    )


def all_rules_dropped(route: Mapping[str, Any]) -> str | None:
    """Why an HTTPRoute none of whose rules can be served is not accepted, else None."""
    problems = httprules.rule_problems(route)
    if not problems or len(problems) < len(httprules.rules(route)):
        return None
    return "no rule can be served: " + "; ".join(f"rule {i}: {m}" for i, m in problems.items())


def partially_invalid(route: Mapping[str, Any]) -> Cond | None:
    """``PartiallyInvalid`` for an HTTPRoute some of whose rules are dropped (only then)."""
    problems = httprules.rule_problems(route)
    if not problems or len(problems) == len(httprules.rules(route)):
        return None
    dropped = "; ".join(f"rule {i}: {m}" for i, m in problems.items())
    return Cond(PARTIALLY_INVALID, True, UNSUPPORTED_VALUE, f"Dropped Rule(s): {dropped}")


@dataclass(frozen=True)
class Attached:
    """A route on one VIP, through some of the VIP's listeners."""

    route: Mapping[str, Any]
    listeners: tuple[Listener, ...]


@dataclass
class Bindings:
    """Every route of one Gateway, attached: what serves, what is refused, what counts."""

    attachments: dict[Ref, list[Attachment]] = field(default_factory=dict)
    on_vip: dict[str, list[Attached]] = field(default_factory=lambda: defaultdict(list))
    """Every route attached to a listener of each VIP, oldest first (an HTTP VIP serves all)."""
    served: dict[str, Mapping[str, Any]] = field(default_factory=dict)  # VIP → route
    refused: dict[Ref, str] = field(default_factory=dict)  # route → why it gets no traffic
    attached: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # per listener

    def accepted(self, route: Ref, attachment: Attachment) -> Cond:
        """The route's Accepted condition for one parentRef."""
        if attachment.accepted.ok and route in self.refused:
            return Cond(ACCEPTED, False, UNSUPPORTED_VALUE, self.refused[route])
        return attachment.accepted


def bind(
    gateway: Mapping[str, Any],
    verdicts: Sequence[Verdict],
    routes: Sequence[Mapping[str, Any]],
    world: World,
) -> Bindings:
    """Attach ``routes`` (those whose parentRefs name ``gateway``) to its listeners."""
    out = Bindings()
    by_name = {v.listener.name: v for v in verdicts}
    candidates: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for route in sorted(routes, key=created):
        ref = ref_of(route)
        mine = [p for p in parent_refs(route) if names_gateway(p, gateway)]
        out.attachments[ref] = [attach(route, p, gateway, verdicts, world) for p in mine]
        if ref.kind in MANY_ROUTES and (dropped := all_rules_dropped(route)):
            out.refused[ref] = dropped
        through: dict[str, list[Listener]] = defaultdict(list)
        for name in dict.fromkeys(n for a in out.attachments[ref] for n in a.listeners):
            vip = by_name[name].vip
            if vip is not None:
                through[vip].append(by_name[name].listener)
        for vip in sorted(through):
            candidates[vip].append(route)
            out.on_vip[vip].append(Attached(route, tuple(through[vip])))
    for vip, routes_here in candidates.items():
        if ref_of(routes_here[0]).kind in MANY_ROUTES:
            continue  # every one is served: L7 policies tell their requests apart
        out.served[vip] = routes_here[0]
        first = ref_of(routes_here[0])
        for other in routes_here[1:]:
            if ref_of(other).kind in SINGLE_ROUTE:
                out.refused.setdefault(
                    ref_of(other),
                    f"{first} is served on this listener's port: several"
                    f" {first.kind}s on one port need routing by SNI, which these devices do not"
                    " do",
                )
    for ref in {ref_of(r) for r in out.served.values()}:
        out.refused.pop(ref, None)  # served on another port: accepted
    for ref, attachments in out.attachments.items():
        if ref in out.refused:
            continue
        for name in {n for a in attachments for n in a.listeners}:
            out.attached[name] += 1
    return out

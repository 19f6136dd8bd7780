"""A Gateway's listeners: which are accepted, which conflict, which VIP serves each (pure).

Every listener of a Gateway shares the Gateway's one address; listeners on one port share one
VIP (port + transport: UDP listeners get their own). What a listener asks for and what the
devices can do decide its conditions:

- protocols: ``TCP`` → VIP ``TCP``, ``TLS`` with ``mode: Passthrough`` → VIP ``HTTPS``
  (TLS passed through), ``HTTP`` → VIP ``HTTP``, ``UDP`` → VIP ``UDP`` when the VIP API has it;
  ``HTTPS`` (``tls.mode: Terminate``) → VIP ``TERMINATED_HTTPS`` naming its Secrets
  (:mod:`lbaas.gateway.certificates`); anything else is ``Accepted=False``
  ``UnsupportedProtocol``, and TLS ``mode: Terminate`` and ``tls.options`` are
  ``UnsupportedValue``;
- listeners of different protocols on one port are all ``Conflicted`` (``ProtocolConflict``)
  and none is accepted (the Gateway API forbids picking a winner);
- TLS passthrough listeners sharing a port would need routing by SNI, which the devices do not
  do: the first keeps the port, the others are ``UnsupportedValue``;
- ``allowedRoutes.kinds`` naming a kind the listener cannot take: ``ResolvedRefs=False``
  ``InvalidRouteKinds`` (the valid ones are still listed in ``supportedKinds``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lbaas.gateway.certificates import certificates
from lbaas.gateway.features import UDP_VIPS
from lbaas.gateway.spec import GROUP, Listener, listeners
from lbaas.gateway.world import World
from lbaas.generated.owned import bounded
from lbaas.status import Cond
from lbaas.views import meta_of

ACCEPTED = "Accepted"
CONFLICTED = "Conflicted"
RESOLVED_REFS = "ResolvedRefs"
NO_CONFLICTS = "NoConflicts"
PROTOCOL_CONFLICT = "ProtocolConflict"
UNSUPPORTED_PROTOCOL = "UnsupportedProtocol"
UNSUPPORTED_VALUE = "UnsupportedValue"
INVALID_ROUTE_KINDS = "InvalidRouteKinds"

ROUTE_KINDS = {
    "TCP": ("TCPRoute",),
    "TLS": ("TLSRoute",),
    "UDP": ("UDPRoute",),
    "HTTP": ("HTTPRoute",),
    "HTTPS": ("HTTPRoute",),
}
"""The route kinds each protocol takes (that this operator translates)."""
VIP_PROTOCOL = {
    "TCP": "TCP", "TLS": "HTTPS", "HTTP": "HTTP", "HTTPS": "TERMINATED_HTTPS", "UDP": "UDP",
}  # fmt: skip
HTTP_PROTOCOLS = ("HTTP", "TERMINATED_HTTPS")
"""VIP protocols whose requests the device sees: their routes are HTTPRoutes."""


@dataclass(frozen=True)
class Verdict:
    """What the operator makes of one listener."""

    listener: Listener
    accepted: Cond
    conflicted: Cond
    resolved: Cond
    kinds: tuple[str, ...]
    """Route kinds it takes (its ``supportedKinds``)."""
    vip: str | None
    """The VIP serving it; None when not accepted (or an HTTPS one without a certificate)."""
    certificates: tuple[str, ...] = ()
    """HTTPS: the Secrets (of the Gateway's namespace) its VIP names."""

    @property
    def ok(self) -> bool:
        return bool(self.accepted.ok)


def transport(protocol: str) -> str:
    return "udp" if protocol == "UDP" else "tcp"


def vip_name(gateway: str, port: int, protocol: str) -> str:
    """``<gateway>-<port>`` (``-udp`` for UDP), bounded to an object name's length."""
    suffix = "-udp" if transport(protocol) == "udp" else ""
    return bounded(f"{gateway}-{port}{suffix}")


def _unsupported(listener: Listener) -> Cond | None:
    """Accepted=False for a protocol or mode this operator cannot serve, else None."""
    protocol = listener.protocol
    if protocol == "TLS" and listener.tls_mode != "Passthrough":
        return Cond(
            ACCEPTED,
            False,
            UNSUPPORTED_VALUE,
            "TLS listeners are served with mode Passthrough only (the device passes TLS"
            " through to the backends)",
        )
    if listener.tls_options:
        return Cond(
            ACCEPTED,
            False,
            UNSUPPORTED_VALUE,
            "tls.options are not supported (TLS settings come from the VIP's defaults)",
        )
    if protocol == "UDP" and not UDP_VIPS:
        return Cond(
            ACCEPTED,
            False,
            UNSUPPORTED_PROTOCOL,
            "UDP listeners need VIPs of protocol UDP, which this version does not have",
        )
    if protocol not in VIP_PROTOCOL:
        return Cond(
            ACCEPTED,
            False,
            UNSUPPORTED_PROTOCOL,
            f"protocol {protocol} is not served (served: {', '.join(VIP_PROTOCOL)})",
        )
    return None


def _kinds(listener: Listener, served: frozenset[str]) -> tuple[tuple[str, ...], Cond]:
    """(supported kinds, ResolvedRefs) of one listener."""
    possible = [k for k in ROUTE_KINDS.get(listener.protocol, ()) if k in served]
    if listener.kinds is None:
        return tuple(possible), Cond(RESOLVED_REFS, True, RESOLVED_REFS)
    valid = tuple(k for g, k in listener.kinds if g == GROUP and k in possible)
    invalid = [f"{g}/{k}" for g, k in listener.kinds if not (g == GROUP and k in possible)]
    if invalid:
        return valid, Cond(
            RESOLVED_REFS,
            False,
            INVALID_ROUTE_KINDS,
            f"a {listener.protocol} listener takes {', '.join(possible) or 'no route kind'}"
            f" here, not {', '.join(invalid)}",
        )
    return valid, Cond(RESOLVED_REFS, True, RESOLVED_REFS)


def verdicts(
    gateway: Mapping[str, Any], route_kinds: frozenset[str], world: World | None = None
) -> list[Verdict]:
    """The verdict on each listener of ``gateway``, in spec order (``world``: where the
    ReferenceGrants of certificateRefs are read; None: none is)."""
    name = str(meta_of(gateway)["name"])
    namespace = str(meta_of(gateway).get("namespace") or "")
    found = listeners(gateway)
    conflicted: dict[int, str] = {}
    taken: dict[tuple[int, str], Listener] = {}  # the first listener of each port + transport
    for listener in found:
        key = (listener.port, transport(listener.protocol))
        sharing = [o for o in found if (o.port, transport(o.protocol)) == key]
        protocols = sorted({o.protocol for o in sharing})
        if len(protocols) > 1:
            conflicted[listener.index] = (
                f"port {listener.port} is shared by listeners of protocols {', '.join(protocols)}"
            )
        taken.setdefault(key, listener)
    out = []
    for listener in found:
        kinds, resolved = _kinds(listener, route_kinds)
        conflict = conflicted.get(listener.index)
        accepted = _unsupported(listener)
        first = taken[(listener.port, transport(listener.protocol))]
        if conflict is not None:
            accepted = Cond(ACCEPTED, False, PROTOCOL_CONFLICT, conflict)
        elif accepted is None and listener.protocol == "TLS" and first is not listener:
            accepted = Cond(
                ACCEPTED,
                False,
                UNSUPPORTED_VALUE,
                f"port {listener.port} is listener {first.name}'s: TLS listeners sharing a port"
                " need routing by SNI, which these devices do not do",
            )
        accepted = accepted or Cond(ACCEPTED, True, ACCEPTED)
        served = accepted.ok
        names: tuple[str, ...] = ()
        if listener.protocol == "HTTPS":
            names, refused = certificates(listener, namespace, world)
            resolved = refused or resolved
            served = served and bool(names)
        out.append(
            Verdict(
                listener=listener,
                accepted=accepted,
                conflicted=Cond(CONFLICTED, True, PROTOCOL_CONFLICT, conflict)
                if conflict
                else Cond(CONFLICTED, False, NO_CONFLICTS),
                resolved=resolved,
                kinds=kinds,
                vip=vip_name(name, listener.port, listener.protocol) if served else None,
                certificates=names,
            )
        )
    return out

"""A Service port's ready endpoints, from its EndpointSlices (pure), and Member names.

How the endpointslice controller describes a Service's backends is read in one place, for
the Services controller (a Service's own ports) and the Gateway API (a Route's backendRefs,
which name a Service and one of its ports).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def member_name(vip: str, address: str, port: int) -> str:
    """``<vip>-<address>-<port>``, dots and colons as dashes: the name says what it is in
    ``kubectl get lbaas``, and an endpoint that comes back maps to the same object."""
    return f"{vip}-{address.lower().replace('.', '-').replace(':', '-')}-{port}"


def service_port(service: Mapping[str, Any], number: int) -> Mapping[str, Any] | None:
    """The entry of ``spec.ports`` with port ``number`` (TCP first, as ports are listed)."""
    ports = (service.get("spec") or {}).get("ports") or ()
    return next((p for p in ports if int(p.get("port") or 0) == number), None)


def endpoints(
    slices: Sequence[Mapping[str, Any]],
    port: Mapping[str, Any],
    unresolved: list[str],
) -> list[tuple[str, int]]:
    """(address, target port) of the ready endpoints for one Service port, deduplicated.

    A slice's ``ports[]`` entry with the Service port's name (and protocol) gives the number:
    that is how a named ``targetPort`` is resolved, per pod, by the endpointslice controller.
    A slice without such an entry falls back to a numeric ``targetPort`` (else the port
    itself). A port no slice resolves is added to ``unresolved``.
    """
    name = port.get("name") or ""
    protocol = port.get("protocol") or "TCP"
    target = port.get("targetPort")
    fallback = target if isinstance(target, int) else None
    if target is None:
        fallback = int(port["port"])
    found: dict[tuple[str, int], None] = {}
    for slice_ in slices:
        if slice_.get("addressType") not in ("IPv4", "IPv6"):
            continue  # FQDN slices name no address a device can reach
        number = next(
            (
                int(p["port"])
                for p in slice_.get("ports") or ()
                if (p.get("name") or "") == name
                and (p.get("protocol") or "TCP") == protocol
                and p.get("port") is not None
            ),
            fallback,
        )
        if number is None:
            if slice_.get("endpoints"):
                unresolved.append(f"{port['port']} (targetPort {target})")
            continue
        for endpoint in slice_.get("endpoints") or ():
            conditions = endpoint.get("conditions") or {}
            if conditions.get("ready") is False:  # unset means ready (EndpointConditions)
                continue
            addresses = endpoint.get("addresses") or ()
            if addresses:
                found[(str(addresses[0]), number)] = None
    return sorted(found)

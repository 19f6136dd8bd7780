"""A Service of type LoadBalancer as VIP trees (pure: no API, no cache, no clock).

Per TCP or UDP port of the Service, one tree named ``<service>-<port>`` (TCP) or
``<service>-<port>-udp`` (UDP): a VIP on that port of the port's protocol, a Pool of the same
protocol, a HealthMonitor (TCP ports, unless turned off: a device checks no UDP port, and
a TCP check of a UDP-only server would take every member down; Kubernetes' readiness already
picks the endpoints) and a Member per ready endpoint of the Service's EndpointSlices, named
``<vip>-<address>-<targetPort>`` (dots and colons as dashes: the name says what it is in
``kubectl get lbaas``, and an endpoint that comes back maps to the same object). Port
numbers, not port names, make the tree names: a port is unique per protocol and has no dash,
and a TCP name ends in a digit where a UDP name ends in ``udp``, so two ports of one
namespace's Services can never produce the same name (53/TCP and 53/UDP of a DNS Service are
``dns-53`` and ``dns-53-udp``). SCTP ports are not served (``unsupported``).

Ports named by ``lbaas.dev/tls-ports`` (every TCP port, when only ``lbaas.dev/tls-secret``
is given) terminate TLS: their VIP is ``TERMINATED_HTTPS`` with the annotation's Secrets, their
Pool speaks HTTP to the endpoints.

All ports of a Service share one address (``status.loadBalancer.ingress[0].ip``): the
primary port's VIP is the primary of the group (:mod:`lbaas.generated.sharing`); an address
asked for by annotation needs no wait. The primary is the first UDP port when there is
one (a UDP VIP asks for more of a device: ``protocol.udp``), so the placement of a Service
mixing TCP and UDP is a device that serves both. When the primary can be placed nowhere
(``unplaceable``: no device serves UDP), the next port is placed by itself and the others
follow it: the TCP ports are served, the UDP port is refused on their device
(``NoEligibleDevice`` naming the feature), as is a UDP port added later to a Service already
placed on a device without UDP.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from lbaas.api.healthmonitor import HealthMonitorSpec, MonitorType
from lbaas.api.member import MemberSpec
from lbaas.api.meta import LabelSelector
from lbaas.api.pool import LBMethod, PoolSpec
from lbaas.api.pool import Protocol as PoolProtocol
from lbaas.api.tls import CertificateRef, ListenerTLS
from lbaas.api.vip import PersistenceType, Protocol, SessionPersistence, VIPSpec
from lbaas.generated import owned, sharing
from lbaas.generated.endpoints import endpoints, member_name
from lbaas.generated.owned import unchanged
from lbaas.generated.sharing import Placement
from lbaas.services.annotations import Options
from lbaas.views import SERVICE_LABEL, is_deleting, meta_of, spec_of, status_of

__all__ = ["Placement", "member_name", "unchanged"]

ERROR_PREFIX = "lbaas.dev/"
UNSUPPORTED_PROTOCOL = "ProtocolNotSupported"

ObjKey = tuple[str, str]  # kind, name


def is_ours(service: Mapping[str, Any] | None, cls: str, take_unclassed: bool) -> bool:
    """Whether this operator implements ``service``'s load balancer."""
    spec = spec_of(service)
    if service is None or spec.get("type") != "LoadBalancer":
        return False
    wanted = spec.get("loadBalancerClass")
    return wanted == cls if wanted else take_unclassed


SERVED = ("TCP", "UDP")


def protocol_of(port: Mapping[str, Any]) -> str:
    return str(port.get("protocol") or "TCP")


def served_ports(
    service: Mapping[str, Any],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The Service's ports this operator serves (TCP, UDP), the primary first (the first UDP
    port, else the first port), and those it cannot (SCTP)."""
    served: list[dict[str, Any]] = []
    unsupported: list[dict[str, Any]] = []
    for port in spec_of(service).get("ports") or ():
        (served if protocol_of(port) in SERVED else unsupported).append(port)
    served.sort(key=lambda p: protocol_of(p) != "UDP")  # stable: the order of the Service
    return served, unsupported


def vip_name(service: str, port: int, protocol: str = "TCP") -> str:
    return f"{service}-{port}" if protocol == "TCP" else f"{service}-{port}-{protocol.lower()}"


def vip_of_port(service: str, port: Mapping[str, Any]) -> str:
    return vip_name(service, int(port["port"]), protocol_of(port))


def placement_of(service: Mapping[str, Any], vips: Iterable[Mapping[str, Any]]) -> Placement | None:
    """The address and Device the Service's VIPs share (the primary port's VIP first)."""
    served, _ = served_ports(service)
    name = str(meta_of(service)["name"])
    primary = vip_of_port(name, served[0]) if served else ""
    return sharing.placement_of(vips, primary)


def unplaceable(vip: Mapping[str, Any] | None) -> bool:
    """A VIP the scheduler could place nowhere (Error, no address): the next port of its
    Service is then placed by itself (a Service's UDP port on a cluster whose devices serve
    no UDP must not keep its TCP ports waiting)."""
    status = status_of(vip)
    return vip is not None and status.get("phase") == "Error" and not status.get("address")


@dataclass
class Desired:
    """The objects a Service should have, and what could not be turned into one."""

    objects: dict[ObjKey, dict[str, Any]] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)  # VIPs waiting for the primary's address
    unsupported: list[str] = field(default_factory=list)  # "9/SCTP"
    unresolved: list[str] = field(default_factory=list)  # named targetPorts no slice resolves


def _body(kind: str, name: str, service: Mapping[str, Any], spec: BaseModel) -> dict[str, Any]:
    owner = owned.Owner.of({"apiVersion": "v1", "kind": "Service", **service}, SERVICE_LABEL)
    return owned.body(kind, name, str(meta_of(service)["namespace"]), owner, spec)


def desired(
    service: Mapping[str, Any],
    slices: Sequence[Mapping[str, Any]],
    options: Options,
    vips: Sequence[Mapping[str, Any]] = (),
) -> Desired:
    """Every object the Service should have now, given its current VIPs (see the module
    docstring)."""
    out = Desired()
    placement = placement_of(service, vips)
    current = {str(meta_of(v).get("name")): v for v in vips}
    name = str(meta_of(service)["name"])
    served, unsupported = served_ports(service)
    out.unsupported = [f"{p['port']}/{p.get('protocol')}" for p in unsupported]
    affinity = spec_of(service).get("sessionAffinity") == "ClientIP"
    selector = (
        LabelSelector(match_labels=dict(options.device_selector))
        if options.device_selector
        else None
    )
    first = 0  # the port placed first: the primary, or the next one if those before failed
    for index, port in enumerate(served):
        vip = vip_of_port(name, port)
        udp = protocol_of(port) == "UDP"
        if first == index - 1 and unplaceable(current.get(vip_of_port(name, served[first]))):
            first = index
        where = sharing.where(
            primary=index == first,
            existing=current.get(vip),
            address=options.address,
            device=options.device,
            placement=placement,
        )
        if where is None:
            out.waiting.append(vip)
            continue
        address, device = where
        terminated = not udp and options.terminates(int(port["port"]))
        vip_spec = VIPSpec(
            port=int(port["port"]),
            protocol=Protocol.TERMINATED_HTTPS if terminated else Protocol(protocol_of(port)),
            tls=ListenerTLS(certificate_refs=[CertificateRef(name=n) for n in options.tls_secrets])
            if terminated
            else None,
            address=address,
            connection_limit=-1 if udp else options.connection_limit,
            session_persistence=SessionPersistence(type=PersistenceType.SOURCE_IP)
            if affinity
            else None,
            device_selector=selector,
            device_ref=device,
        )
        out.objects[("VIP", vip)] = _body("VIP", vip, service, vip_spec)
        pool = PoolSpec(
            vip_ref=vip,
            protocol=PoolProtocol.HTTP if terminated else PoolProtocol(protocol_of(port)),
            lb_method=LBMethod(options.lb_method),
        )
        out.objects[("Pool", vip)] = _body("Pool", vip, service, pool)
        if options.monitor_type and not udp:
            monitor = HealthMonitorSpec(
                pool_ref=vip,
                type=MonitorType(options.monitor_type),
                delay=options.monitor_interval,
                timeout=min(3, options.monitor_interval),
                url_path=options.monitor_path,
            )
            out.objects[("HealthMonitor", vip)] = _body("HealthMonitor", vip, service, monitor)
        for address_, target in endpoints(slices, port, out.unresolved):
            member = member_name(vip, address_, target)
            spec = MemberSpec(pool_ref=vip, address=address_, port=target)
            out.objects[("Member", member)] = _body("Member", member, service, spec)
    return out


def generated_for(obj: Mapping[str, Any], service: str) -> bool:
    """Whether ``obj`` was generated for the Service named ``service`` (its label and a
    controller reference to a Service of that name; the uid may be an earlier Service's)."""
    return owned.generated_for(obj, kind="Service", name=service, label=SERVICE_LABEL)


def _error(reason: str | None) -> str:
    """A port error as the API wants it: ``domain/CamelCase``, the name at most 63 chars."""
    word = re.sub(r"[^A-Za-z0-9]", "", reason or "") or "Error"
    return ERROR_PREFIX + word[:63]


def load_balancer_status(
    service: Mapping[str, Any], vips: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any] | None:
    """``status.loadBalancer`` from the VIPs' phases; None while any is still on its way.

    Ingress: the address once a VIP serves it; a ``ports`` list (one entry per Service port,
    as the API asks) only when some port has an error: its VIP's reason, or the protocol.
    No VIP Active (all in Error) means no ingress.
    """
    name = str(meta_of(service)["name"])
    errors: dict[tuple[int, str], str | None] = {}
    address = None
    for port in spec_of(service).get("ports") or ():
        protocol = protocol_of(port)
        key = (int(port["port"]), protocol)
        if protocol not in SERVED:
            errors[key] = _error(UNSUPPORTED_PROTOCOL)
            continue
        vip = vips.get(vip_of_port(name, port))
        status = status_of(vip)
        if vip is None or is_deleting(vip) or status.get("phase") not in ("Active", "Error"):
            return None
        if status.get("phase") == "Error":
            errors[key] = _error(status.get("reason"))
        else:
            errors[key] = None
            address = address or status.get("address")
    if address is None:
        return {}
    ingress: dict[str, Any] = {"ip": str(address)}
    if any(errors.values()):
        ingress["ports"] = [
            {"port": port, "protocol": protocol, **({"error": error} if error else {})}
            for (port, protocol), error in errors.items()
        ]
    return {"ingress": [ingress]}

"""A Gateway and its routes as VIP trees (pure: given the verdicts, bindings and backends).

Per VIP of the listeners (:mod:`lbaas.gateway.listeners`): a VIP named ``<gateway>-<port>``
of the listeners' protocol; for the route it serves (:mod:`lbaas.gateway.attach`) a Pool named
``<vip>-<route>`` (``<vip>-<namespace>-<route>`` for a route of another namespace), a TCP
HealthMonitor (unless the class's parameters say ``None``; never for UDP) and a Member per
endpoint of its backends (:mod:`lbaas.gateway.backends`). Everything lives in the Gateway's
namespace (a Pool names its VIP in its own namespace), owned by the Gateway and labelled
``lbaas.dev/gateway``; tenant rules (the device's address policy, member networks, quotas)
apply to these objects as to hand-made ones, because they are ordinary VIP trees.

All VIPs of a Gateway share one address: the first listener's VIP is the primary of the group
(:mod:`lbaas.generated.sharing`); a Gateway's ``spec.addresses`` (one IPAddress) is given to all
at once, when its class allows static addresses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from lbaas.api.healthmonitor import HealthMonitorSpec, MonitorType
from lbaas.api.l7policy import L7PolicySpec
from lbaas.api.member import MemberSpec
from lbaas.api.pool import PoolSpec
from lbaas.api.vip import VIPSpec
from lbaas.gateway import httproutes
from lbaas.gateway.attach import Bindings
from lbaas.gateway.backends import member_weights, resolve
from lbaas.gateway.listeners import HTTP_PROTOCOLS, VIP_PROTOCOL, Verdict
from lbaas.gateway.params import Parameters
from lbaas.gateway.spec import Ref, ref_of
from lbaas.gateway.world import World
from lbaas.generated import owned, sharing
from lbaas.generated.endpoints import member_name
from lbaas.status import Cond
from lbaas.views import GATEWAY_LABEL, meta_of, spec_of

ACCEPTED = "Accepted"
LISTENERS_NOT_VALID = "ListenersNotValid"
INVALID_PARAMETERS = "InvalidParameters"
UNSUPPORTED_ADDRESS = "UnsupportedAddress"

ObjKey = tuple[str, str]


def requested_address(gateway: Mapping[str, Any], params: Parameters) -> str | Cond | None:
    """The address ``spec.addresses`` asks for (None: allocate one), or why it cannot be
    served (an ``Accepted=False`` ``UnsupportedAddress`` condition)."""
    values = []
    for entry in spec_of(gateway).get("addresses") or ():
        kind = entry.get("type") or "IPAddress"
        if kind != "IPAddress":
            return Cond(
                ACCEPTED,
                False,
                UNSUPPORTED_ADDRESS,
                f"address type {kind} is not supported (IPAddress only)",
            )
        if entry.get("value"):
            values.append(str(entry["value"]))
    if not values:
        return None
    if params.static_addresses == "Denied":
        return Cond(
            ACCEPTED,
            False,
            UNSUPPORTED_ADDRESS,
            "the GatewayClass's parameters deny spec.addresses (staticAddresses)",
        )
    if len(set(values)) > 1:
        return Cond(
            ACCEPTED,
            False,
            UNSUPPORTED_ADDRESS,
            f"one address per Gateway, not {', '.join(values)}",
        )
    try:
        return str(ipaddress.ip_address(values[0]))
    except ValueError:
        return Cond(ACCEPTED, False, UNSUPPORTED_ADDRESS, f"{values[0]} is not an IP address")


def accepted(
    gateway: Mapping[str, Any],
    params: Parameters | str,
    verdicts: Sequence[Verdict],
    address: str | Cond | None,
) -> Cond:
    """The Gateway's Accepted condition."""
    if isinstance(params, str):
        return Cond(ACCEPTED, False, INVALID_PARAMETERS, f"GatewayClass parameters: {params}")
    if (spec_of(gateway).get("infrastructure") or {}).get("parametersRef"):
        return Cond(
            ACCEPTED,
            False,
            INVALID_PARAMETERS,
            "infrastructure.parametersRef is not supported: parameters are the GatewayClass's",
        )
    if isinstance(address, Cond):
        return address
    bad = [v for v in verdicts if not v.ok]
    if bad and len(bad) == len(verdicts):
        return Cond(ACCEPTED, False, LISTENERS_NOT_VALID, _listed(bad))
    if bad:
        return Cond(ACCEPTED, True, LISTENERS_NOT_VALID, _listed(bad))
    return Cond(ACCEPTED, True, ACCEPTED)


def _listed(bad: Sequence[Verdict]) -> str:
    return "; ".join(f"listener {v.listener.name}: {v.accepted.message}" for v in bad)


@dataclass
class Desired:
    objects: dict[ObjKey, dict[str, Any]] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)  # VIPs waiting for the primary's address


def vip_groups(verdicts: Sequence[Verdict]) -> dict[str, Verdict]:
    """VIP name → the first accepted listener it serves, in spec order (the primary first)."""
    groups: dict[str, Verdict] = {}
    for verdict in verdicts:
        if verdict.vip is not None:
            groups.setdefault(verdict.vip, verdict)
    return groups


def pool_name(vip: str, gateway_namespace: str, route: Ref) -> str:
    if route.namespace == gateway_namespace:
        return owned.bounded(f"{vip}-{route.name}")
    return owned.bounded(f"{vip}-{route.namespace}-{route.name}")


def desired(
    gateway: Mapping[str, Any],
    *,
    verdicts: Sequence[Verdict],
    bindings: Bindings,
    world: World,
    params: Parameters,
    address: str | None,
    vips: Sequence[Mapping[str, Any]] = (),
) -> Desired:
    """Every object the Gateway should have now, given its current VIPs."""
    out = Desired()
    namespace = str(meta_of(gateway)["namespace"])
    owner = owned.Owner.of(gateway, GATEWAY_LABEL)
    groups = vip_groups(verdicts)
    primary = next(iter(groups), "")
    placement = sharing.placement_of(vips, primary)
    current = {str(meta_of(v).get("name")): v for v in vips}

    def add(kind: str, name: str, spec: BaseModel) -> None:
        out.objects[(kind, name)] = owned.body(kind, name, namespace, owner, spec)

    def pool(name: str, vip: str, protocol: str, weights: Mapping[tuple[str, int], int]) -> None:
        spec = {"vipRef": vip, "protocol": protocol, "lbMethod": params.lb_method}
        add("Pool", name, PoolSpec.model_validate(spec))
        if params.health_monitor == "TCP" and protocol != "UDP":
            add("HealthMonitor", name, HealthMonitorSpec(pool_ref=name, type=MonitorType.TCP))
        for (member_address, port), weight in sorted(weights.items()):
            member = owned.bounded(member_name(name, member_address, port))
            spec_ = MemberSpec(pool_ref=name, address=member_address, port=port, weight=weight)
            add("Member", member, spec_)

    for vip, verdict in groups.items():
        where = sharing.where(
            primary=vip == primary,
            existing=current.get(vip),
            address=address,
            device=None,
            placement=placement,
        )
        if where is None:
            out.waiting.append(vip)
            continue
        protocol = VIP_PROTOCOL[verdict.listener.protocol]
        spec = {
            "port": verdict.listener.port,
            "protocol": protocol,
            "address": where[0],
            "deviceRef": where[1],
            "deviceSelector": params.device_selector,
        }
        if protocol == "TERMINATED_HTTPS":  # the Secrets of every HTTPS listener of the port
            names = dict.fromkeys(n for v in verdicts if v.vip == vip for n in v.certificates)
            spec["tls"] = {"certificateRefs": [{"name": n} for n in names]}
        add("VIP", vip, VIPSpec.model_validate(spec))
        if protocol in HTTP_PROTOCOLS:
            made = httproutes.plan(vip, namespace, bindings.on_vip.get(vip, ()), world)
            for name, backends in made.pools.items():
                pool(name, vip, "HTTP", {e: 1 for b in backends for e in b.endpoints})
            for name, policy in made.policies.items():
                add("L7Policy", name, L7PolicySpec.model_validate(policy))
            continue
        route = bindings.served.get(vip)
        if route is not None:
            found, _ = resolve(route, world)
            pool(pool_name(vip, namespace, ref_of(route)), vip, protocol, member_weights(found))
    return out

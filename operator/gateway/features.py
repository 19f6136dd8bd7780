"""The Gateway API's feature names, from the devices' capabilities (pure).

A GatewayClass announces in ``status.supportedFeatures`` what its Gateways can rely on. Each
Gateway API feature below names the operator features (``lbaas.drivers.capabilities``) that
serve it; a class supports a feature when every Device it may use (its parameters'
``deviceSelector``) declares them, because a Gateway may be placed on any of those devices
(and all of a Gateway's VIPs share the first one's device). Only features the translation
implements are listed: a device's HTTP features say nothing about HTTPRoutes until this
controller translates them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lbaas.api.vip import Protocol
from lbaas.drivers.capabilities import FEATURES
from lbaas.views import is_deleting, status_of

HTTP_CORE = frozenset(
    {
        "protocol.http",
        "tls.terminate",
        "l7.host",
        "l7.path",
        "l7.header",
        "l7.redirect",
        "l7.reject",
        "l7.header-modifier",
        "l7.weighted-split",
        "l7.multiple-pools",
    }
)
"""What the core of HTTPRoute asks: HTTP and HTTPS listeners (TLS terminated), routing by
host, path and header, weighted backends, redirects, request header changes, and the 404/500
answers the API prescribes."""

ROUTE_FEATURES: dict[str, frozenset[str]] = {
    "HTTPRoute": HTTP_CORE,
    "TCPRoute": frozenset({"protocol.tcp"}),
    "TLSRoute": frozenset({"protocol.https"}),
    "UDPRoute": frozenset({"protocol.udp"}),
}
"""A route kind's feature: what its listeners' VIPs ask of a device."""

GATEWAY_FEATURES: dict[str, frozenset[str]] = {
    "Gateway": frozenset({"protocol.tcp"}),
    "ReferenceGrant": frozenset(),
    "GatewayAddressEmpty": frozenset(),
    "GatewayStaticAddresses": frozenset(),
}
"""Features of the Gateway itself. Its VIPs (one load balancer each, on one address) need no
more of a device than a Service's ports do."""

HTTP_FEATURES: dict[str, frozenset[str]] = {
    "HTTPRouteMethodMatching": frozenset({"l7.method"}),
    "HTTPRouteQueryParamMatching": frozenset({"l7.query"}),
    "HTTPRouteResponseHeaderModification": frozenset({"l7.header-modifier"}),
    "HTTPRoutePortRedirect": frozenset({"l7.redirect"}),
    "HTTPRouteSchemeRedirect": frozenset({"l7.redirect"}),
    "HTTPRoutePathRedirect": frozenset({"l7.redirect"}),
    "HTTPRoute303RedirectStatusCode": frozenset({"l7.redirect"}),
    "HTTPRoute307RedirectStatusCode": frozenset({"l7.redirect"}),
    "HTTPRoute308RedirectStatusCode": frozenset({"l7.redirect"}),
    "HTTPRouteParentRefPort": frozenset(),
    "GatewayPort8080": frozenset(),
}
"""Extended HTTPRoute features, announced with HTTPRoute when the devices have their needs."""

UDP_VIPS = "UDP" in Protocol.__members__
"""Whether the VIP API has a UDP protocol (UDP listeners and UDPRoutes need it)."""


def unknown_names() -> list[str]:
    """Operator features named here that the capabilities vocabulary lacks (a typo)."""
    groups = (ROUTE_FEATURES, GATEWAY_FEATURES, HTTP_FEATURES)
    named = {f for group in groups for fs in group.values() for f in fs}
    return sorted(named - set(FEATURES))


def device_features(devices: Iterable[Mapping[str, Any]]) -> frozenset[str] | None:
    """What every one of ``devices`` supports (those not being deleted that reported their
    features); None when none did: nothing can be promised."""
    common: frozenset[str] | None = None
    for device in devices:
        if is_deleting(device) or status_of(device).get("features") is None:
            continue
        have = frozenset(str(f) for f in status_of(device)["features"])
        common = have if common is None else common & have
    return common


def supported(
    devices: frozenset[str] | None, *, route_kinds: Iterable[str], static_addresses: bool
) -> list[str]:
    """The Gateway API features a class supports, sorted (as the API asks)."""
    if devices is None:
        return []
    names = [n for n, need in GATEWAY_FEATURES.items() if need <= devices]
    if "Gateway" not in names:
        return []
    if not static_addresses:
        names.remove("GatewayStaticAddresses")
    for kind in route_kinds:
        need = ROUTE_FEATURES.get(kind)
        if need is not None and need <= devices and (kind != "UDPRoute" or UDP_VIPS):
            names.append(kind)
    if "HTTPRoute" in names:
        names += [n for n, need in HTTP_FEATURES.items() if need <= devices]
    return sorted(names)

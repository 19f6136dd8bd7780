"""Address policy of a shared Device (pure): which VIP and member addresses it lets in.

Devices are shared between namespaces (tenants). A tenant must not bind a VIP to an address
outside the device's pool (another tenant's range, the device's management address), nor
point the device at addresses the device itself can reach but the tenant should not:
loopback, link-local (169.254.169.254 is the cloud metadata service) and the like, whose
answers would come back through ``operatingStatus`` (a port-scan oracle).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from lbaas.api.device import DeviceSpec, VIPAddressPolicy
from lbaas.placement.addresses import IPAddr, pool_contains

_SPECIAL = ("loopback", "link-local", "unspecified", "multicast")
_MAX_SHOWN = 5


def _parse(address: str) -> IPAddr | None:
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return None


def special_class(address: IPAddr) -> str | None:
    """The class of an address a tenant may not use by default, or None."""
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    if address.is_unspecified:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    return None


def _shown(entries: Iterable[str]) -> str:
    items = list(entries)
    text = ", ".join(items[:_MAX_SHOWN])
    return text + (f" and {len(items) - _MAX_SHOWN} more" if len(items) > _MAX_SHOWN else "")


def vip_address_problem(spec: DeviceSpec, address: str, device: str) -> str | None:
    """Why ``device`` refuses ``address`` as a VIP's explicit address, or None."""
    parsed = _parse(address)
    if parsed is None:
        return f"{address!r} is not an IP address"
    mapped = getattr(parsed, "ipv4_mapped", None) or parsed
    if mapped.is_unspecified or mapped.is_multicast:
        kind = "unspecified" if mapped.is_unspecified else "multicast"
        return f"address {address} is {kind}; a VIP needs a unicast address"
    if spec.vip_address_policy == VIPAddressPolicy.ANY:
        return None
    if pool_contains(spec.address_pool, parsed):
        return None
    if not spec.address_pool:
        return (
            f"address {address} is not allowed on device {device}: it has no addressPool and"
            " its vipAddressPolicy is PoolOnly; leave spec.address empty or ask for a device"
            " with a pool"
        )
    return (
        f"address {address} is not allowed on device {device}: VIP addresses must lie in its"
        f" addressPool ({_shown(spec.address_pool)}); choose one there or leave spec.address"
        " empty to get one"
    )


def member_address_problem(spec: DeviceSpec, address: str, device: str) -> str | None:
    """Why ``device`` refuses to send traffic or health checks to ``address``, or None.

    With ``memberNetworks`` set, the address must lie in one of them. Loopback, link-local,
    unspecified and multicast addresses are refused unless a listed network contains them.
    """
    parsed = _parse(address)
    if parsed is None:
        return f"{address!r} is not an IP address"
    networks = [ipaddress.ip_network(n, strict=False) for n in spec.member_networks or ()]
    if any(parsed.version == n.version and parsed in n for n in networks):
        return None
    special = special_class(parsed)
    if special is not None:
        return (
            f"member address {address} is {special}; device {device} allows it only when"
            " a network in its spec.memberNetworks contains it"
        )
    if spec.member_networks:
        return (
            f"member address {address} is outside the member networks of device {device}"
            f" ({_shown(spec.member_networks)})"
        )
    return None

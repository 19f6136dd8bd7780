"""Address allocation from a Device's ``addressPool``: first free, unique per device."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator

IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address


def _entry_addresses(entry: str) -> Iterator[IPAddr]:
    if "-" in entry:
        start, _, end = entry.partition("-")
        first, last = ipaddress.ip_address(start), ipaddress.ip_address(end)
        current = int(first)
        while current <= int(last):
            yield (
                ipaddress.ip_address(current)
                if first.version == 4
                else ipaddress.IPv6Address(current)
            )
            current += 1
        return
    network = ipaddress.ip_network(entry, strict=False)
    if network.num_addresses == 1:
        yield network.network_address
    else:
        # hosts() skips the network and broadcast addresses of IPv4 subnets.
        yield from network.hosts()


def pool_addresses(pool: Iterable[str]) -> Iterator[str]:
    for entry in pool:
        for address in _entry_addresses(entry):
            yield str(address)


def allocate(pool: Iterable[str], used: Iterable[str]) -> str | None:
    """The first address of ``pool`` not in ``used``; None when the pool is exhausted.

    ``used`` in ipaddress's textual form (as the index views keep addresses) is taken as it
    is; other spellings are normalised first.
    """
    taken = used if isinstance(used, frozenset | set) else set(used)
    if any(not _is_normal(a) for a in taken):
        taken = {str(ipaddress.ip_address(a)) for a in taken}
    for address in pool_addresses(pool):
        if address not in taken:
            return address
    return None


def _is_normal(address: str) -> bool:
    """Cheap check that ``address`` needs no normalising (the common IPv4 dotted quad)."""
    parts = address.split(".")
    return len(parts) == 4 and all(
        p.isdigit() and (p == "0" or not p.startswith("0")) for p in parts
    )


def has_free(pool: Iterable[str], used: Iterable[str]) -> bool:
    return allocate(pool, used) is not None


def pool_contains(pool: Iterable[str], address: IPAddr | str) -> bool:
    """Whether ``address`` lies in one of the pool's CIDRs or ranges."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    for entry in pool:
        if "-" in entry:
            start, _, end = entry.partition("-")
            first, last = ipaddress.ip_address(start), ipaddress.ip_address(end)
            if first.version == ip.version and int(first) <= int(ip) <= int(last):
                return True
            continue
        network = ipaddress.ip_network(entry, strict=False)
        if network.version == ip.version and ip in network:
            return True
    return False

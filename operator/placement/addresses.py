"""Address allocation from a Device's ``addressPool``: first free, unique per device, and
never an address no VIP may have (unspecified, multicast, broadcast)."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Iterator

IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address


_MULTICAST = {4: ipaddress.ip_network("224.0.0.0/4"), 6: ipaddress.ip_network("ff00::/8")}
_LIMITED_BROADCAST = int(ipaddress.IPv4Address("255.255.255.255"))


def _bounds(entry: str) -> tuple[int, int, int]:
    """(IP version, first, last) of the addresses an entry hands out, as integers: a range
    from its lower end to its higher (written in either order); a CIDR like ``hosts()`` (IPv4
    without network and broadcast, IPv6 without the subnet-router anycast address; /31, /32,
    /127, /128: every address)."""
    if "-" in entry:
        start, _, end = entry.partition("-")
        first, last = ipaddress.ip_address(start), ipaddress.ip_address(end)
        return first.version, min(int(first), int(last)), max(int(first), int(last))
    network = ipaddress.ip_network(entry, strict=False)
    low, high = int(network.network_address), int(network.broadcast_address)
    if network.version == 4 and network.prefixlen <= 30:
        return 4, low + 1, high - 1
    if network.version == 6 and network.prefixlen <= 126:
        return 6, low + 1, high
    return network.version, low, high


def _entry_addresses(entry: str) -> Iterator[IPAddr]:
    """The addresses of one pool entry a VIP may listen on, in order. Never the unspecified
    address (it means every address of the host: it would take the port from every VIP),
    multicast, or the IPv4 limited broadcast, whatever the pool lists; the multicast block is
    stepped over at once (a pool of 0.0.0.0/0 must not walk 2^28 addresses)."""
    version, current, last = _bounds(entry)
    block = _MULTICAST[version]
    block_first, block_last = int(block.network_address), int(block.broadcast_address)
    while current <= last:
        if block_first <= current <= block_last:
            current = block_last + 1
            continue
        if current == 0 or (version == 4 and current == _LIMITED_BROADCAST):
            current += 1
            continue
        yield ipaddress.IPv4Address(current) if version == 4 else ipaddress.IPv6Address(current)
        current += 1


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
    """Whether ``pool`` has an address not in ``used``: counted when the pool has more
    addresses than ``used`` holds (the scheduler asks per device for every VIP it binds),
    walked only when it might be full."""
    taken = used if isinstance(used, frozenset | set) else set(used)
    if pool_size(tuple(pool)) > len(taken):
        return True
    return allocate(pool, taken) is not None


@functools.lru_cache(maxsize=1024)
def pool_size(pool: tuple[str, ...]) -> int:
    """How many distinct addresses ``pool`` hands out (overlapping entries counted once)."""
    size = 0
    for version in (4, 6):
        spans = sorted(b[1:] for b in map(_bounds, pool) if b[0] == version)
        merged: list[list[int]] = []
        for first, last in spans:
            if merged and first <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], last)
            else:
                merged.append([first, last])
        block = _MULTICAST[version]
        never = [(int(block.network_address), int(block.broadcast_address)), (0, 0)]
        if version == 4:
            never.append((_LIMITED_BROADCAST, _LIMITED_BROADCAST))
        for first, last in merged:
            size += last - first + 1
            for low, high in never:
                size -= max(0, min(last, high) - max(first, low) + 1)
    return size


def pool_contains(pool: Iterable[str], address: IPAddr | str) -> bool:
    """Whether ``address`` lies in one of the pool's CIDRs or ranges."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    for entry in pool:
        if "-" in entry:
            version, low, high = _bounds(entry)
            if version == ip.version and low <= int(ip) <= high:
                return True
            continue
        network = ipaddress.ip_network(entry, strict=False)
        if network.version == ip.version and ip in network:
            return True
    return False

"""What each Device holds, kept current VIP change by VIP change (part of the index views).

The binder asks, for every VIP it binds and for every candidate Device, how many VIPs the
device holds (per namespace too), which addresses and which address:port listeners are in
use. Computed by scanning the device's VIPs, that is quadratic over a cold start (1,000 VIPs
bound onto devices holding hundreds each); here each VIP's contribution is added or removed
when it changes, and every answer costs a lookup. Addresses are kept in one textual form
(``ipaddress``'s), so ``10.0.0.01``-style spellings of one address count once. A listener is
an address, a port and a transport (``TCP`` for TCP, HTTP and HTTPS; ``UDP``): a UDP VIP and a
TCP VIP may share address and port (a Service's 53/UDP and 53/TCP).
"""

from __future__ import annotations

import ipaddress
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

VipKey = tuple[str, str]
Listener = tuple[str, int, str]
"""(address, port, transport)."""


def transport(protocol: Any) -> str:
    """The transport of a VIP protocol: ``UDP``, or ``TCP`` for every other."""
    return "UDP" if protocol == "UDP" else "TCP"


def normal(address: Any) -> str | None:
    """``address`` in ipaddress's textual form; None for no (or no valid) address."""
    if not address:
        return None
    try:
        return str(ipaddress.ip_address(str(address)))
    except ValueError:
        return None


@dataclass(frozen=True)
class Contribution:
    """What one VIP adds to its device's figures."""

    device: str
    live: bool  # not being deleted
    addresses: frozenset[str]
    listener: Listener | None

    @classmethod
    def of(cls, vip: Mapping[str, Any] | None) -> Contribution | None:
        status = (vip or {}).get("status") or {}
        device = status.get("device")
        if not device:
            return None
        spec = (vip or {}).get("spec") or {}
        meta = (vip or {}).get("metadata") or {}
        addresses = frozenset(
            a for a in (normal(spec.get("address")), normal(status.get("address"))) if a
        )
        current = normal(status.get("address") or spec.get("address"))
        port = spec.get("port")
        kind = transport(spec.get("protocol"))
        listener = (current, int(port), kind) if current and port else None
        return cls(str(device), not meta.get("deletionTimestamp"), addresses, listener)


class DeviceIndex:
    """Per-device VIP sets, address counts, namespace counts and listeners."""

    def __init__(self) -> None:
        self._all: dict[str, set[VipKey]] = defaultdict(set)
        self._live: dict[str, set[VipKey]] = defaultdict(set)
        self._addresses: dict[str, Counter[str]] = defaultdict(Counter)
        self._namespaces: dict[str, Counter[str]] = defaultdict(Counter)
        self._listeners: dict[str, dict[Listener, set[VipKey]]] = defaultdict(dict)
        self._by_vip: dict[VipKey, Contribution] = {}

    def update(self, key: VipKey, vip: Mapping[str, Any] | None) -> None:
        """``vip`` (None: gone) replaces whatever ``key`` contributed before."""
        new = Contribution.of(vip)
        old = self._by_vip.get(key)
        if old == new:
            return
        if old is not None:
            self._apply(key, old, -1)
            del self._by_vip[key]
        if new is not None:
            self._apply(key, new, +1)
            self._by_vip[key] = new

    def _apply(self, key: VipKey, c: Contribution, sign: int) -> None:
        add = sign > 0
        for target, member in ((self._all[c.device], True), (self._live[c.device], c.live)):
            if member:
                (target.add if add else target.discard)(key)
        counter = self._addresses[c.device]
        for address in c.addresses:
            counter[address] += sign
            if counter[address] <= 0:
                del counter[address]
        if c.live:
            namespaces = self._namespaces[c.device]
            namespaces[key[0]] += sign
            if namespaces[key[0]] <= 0:
                del namespaces[key[0]]
        if c.listener is not None:
            holders = self._listeners[c.device].setdefault(c.listener, set())
            (holders.add if add else holders.discard)(key)
            if not holders:
                del self._listeners[c.device][c.listener]

    # ---- answers --------------------------------------------------------------------------

    def vips(self, device: str, *, with_deleting: bool = False) -> set[VipKey]:
        return set((self._all if with_deleting else self._live).get(device, ()))

    def count(self, device: str, exclude: VipKey | None = None) -> int:
        live = self._live.get(device, set())
        return len(live) - (1 if exclude in live else 0)

    def addresses(self, device: str, exclude: VipKey | None = None) -> set[str]:
        """Addresses in use on ``device`` (normalised), ``exclude``'s own left out."""
        counter = self._addresses.get(device, Counter())
        used = set(counter)
        mine = self._by_vip.get(exclude) if exclude else None
        if mine is not None and mine.device == device:
            used -= {a for a in mine.addresses if counter[a] <= 1}
        return used

    def namespace_count(self, device: str, namespace: str, exclude: VipKey | None = None) -> int:
        count = self._namespaces.get(device, Counter())[namespace]
        mine = self._by_vip.get(exclude) if exclude else None
        if mine is not None and mine.device == device and mine.live:
            count -= 1 if exclude is not None and exclude[0] == namespace else 0
        return count

    def listeners(self, device: str, exclude: VipKey | None = None) -> dict[Listener, VipKey]:
        """(address, port, transport) → a VIP serving it on ``device`` (the first by key)."""
        found = {}
        for listener, holders in self._listeners.get(device, {}).items():
            if len(holders) == 1:  # the usual case, without a sort (a bind asks per device)
                (only,) = holders
                if only != exclude:
                    found[listener] = only
                continue
            others = sorted(holders - {exclude}) if exclude else sorted(holders)
            if others:
                found[listener] = others[0]
        return found

"""Member health of one device's VIPs: one driver call for all of them.

A device holding 1,000 VIPs is asked once per ``member_status_interval`` (``read``), and the
loops whose VIP's health changed are woken; a reconcile that needs a VIP's health at once
(right after an apply) asks ``of``, coalesced with the other VIPs asking at the same moment.
A VIP the device does not report, or a read that failed, has health None: its monitored
members are then UNKNOWN, never ONLINE on a guess.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Any

from lbaas.drivers.batcher import Batcher
from lbaas.drivers.contract import DeviceHandle, Driver, Statuses
from lbaas.drivers.errors import DriverError, Reason
from lbaas.drivers.model import LoadBalancer
from lbaas.trees.loop import Mode

log = logging.getLogger(__name__)

VipKey = tuple[str, str]
Call = Callable[[str, Callable[[Driver, DeviceHandle], Any]], Awaitable[Any]]


class MemberHealth:
    """What the device last said about each VIP's members, and how to ask again."""

    def __init__(
        self,
        device: str,
        call: Call,
        trigger: Callable[[VipKey, Mode], None],
        *,
        unreadable: Callable[[], None] = lambda: None,
    ) -> None:
        self.device = device
        self._call = call
        self._trigger = trigger
        self._unreadable = unreadable
        self.values: dict[VipKey, Statuses | None] = {}
        self._reader: Batcher[LoadBalancer, Statuses | None] = Batcher(
            self._read_many, key=_lb_key, missing=None
        )

    async def of(self, lb: LoadBalancer) -> Statuses | None:
        value = await self._reader.submit(lb)
        self.values[(lb.namespace, lb.name)] = value
        return value

    async def read(self, lbs: list[LoadBalancer]) -> None:
        """One read for ``lbs``; wake the loops whose health changed."""
        found = await self._read_many(lbs)
        for lb in lbs:
            key = (lb.namespace, lb.name)
            if self.values.get(key) != found[lb.key]:
                self.values[key] = found[lb.key]
                self._trigger(key, Mode.REFRESH)

    def cancel(self) -> None:
        self._reader.cancel()

    async def _read_many(self, lbs: list[LoadBalancer]) -> dict[Hashable, Statuses | None]:
        try:
            found: Mapping[str, Statuses] = await self._call(
                "member_status", lambda d, h: d.member_statuses(h, lbs)
            )
        except DriverError as exc:
            log.info("device %s: member health unreadable: %s", self.device, exc.user_message)
            found = {}
            if exc.reason != Reason.LEASE_LOST:
                # A device that cannot be read may be down or hung: probe it now rather than
                # at the next probe tick (its Device and VIPs then say so at once).
                self._unreadable()
        return {lb.key: dict(found[lb.key]) if lb.key in found else None for lb in lbs}


def _lb_key(lb: LoadBalancer) -> Hashable:
    return lb.key

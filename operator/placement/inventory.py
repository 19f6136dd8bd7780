"""The inventory side of the controller: Device finalizers, counts, deletion and failover.

- Every Device gets our finalizer; a Device being deleted keeps it while VIPs are bound to
  it (a Warning ``InUse`` Event says which), and loses it once none is.
- ``vipCount``/``freeCapacity`` follow the bindings, written at most once per second per
  Device (a burst of bindings is one write).
- Failover: a Device whose ``spec.failover.policy`` is ``Reschedule`` and that has been
  NotReady for ``afterSeconds`` has its VIPs moved to other Devices by the binder.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from lbaas import metrics
from lbaas.api.device import DevicePhase, FailoverPolicy
from lbaas.background import spawn
from lbaas.placement.binder import Binder
from lbaas.reporter import Reporter
from lbaas.views import Views, is_deleting, meta_of, spec_of, status_of

log = logging.getLogger(__name__)

COUNT_PERIOD = 3.0


def _age(stamp: str | None) -> float:
    if not stamp:
        return 0.0
    try:
        then = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return 0.0
    return (datetime.now(UTC) - then).total_seconds()


class Inventory:
    """What the controller keeps true about Devices."""

    def __init__(self, *, views: Views, reporter: Reporter, binder: Binder) -> None:
        self.views = views
        self.reporter = reporter
        self.binder = binder
        self._dirty: set[str] = set()
        self._in_use_warned: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        binder.on_bound.append(self.count_later)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._count_loop(), name="device counts"),
            asyncio.create_task(self._failover_loop(), name="failover"),
        ]
        for device in self.views.devices():
            self.device_changed(str(meta_of(device)["name"]))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def count_later(self, device: str) -> None:
        self._dirty.add(device)

    def device_changed(self, name: str) -> None:
        self._dirty.add(name)
        spawn(self.keep_finalizer(name))

    async def keep_finalizer(self, name: str) -> None:
        device = self.views.device(name)
        if device is None:
            self._in_use_warned.discard(name)
            return
        if not is_deleting(device):
            await self.reporter.finalizer(device, present=True)
            return
        bound = sorted(self.views.bound_vips(name, with_deleting=True))
        if not bound:
            await self.reporter.finalizer(device, present=False)
            return
        if name not in self._in_use_warned:
            self._in_use_warned.add(name)
            shown = ", ".join(f"{ns}/{vip}" for ns, vip in bound[:5])
            more = f" and {len(bound) - 5} more" if len(bound) > 5 else ""
            self.reporter.warn(
                device,
                reason="InUse",
                message=f"deletion waits: {len(bound)} VIP(s) still on this device ({shown}{more});"
                " delete them or move them first",
            )

    async def _count_loop(self) -> None:
        while True:
            await asyncio.sleep(COUNT_PERIOD)
            dirty, self._dirty = self._dirty, set()
            await asyncio.gather(*(self._write_count(name) for name in dirty))

    async def _write_count(self, name: str) -> None:
        device = self.views.device(name)
        if device is None:
            return
        count = len(self.views.bound_vips(name))
        capacity = int((spec_of(device).get("capacity") or {}).get("maxVIPs", 100))
        metrics.DEVICE_VIPS.labels(name).set(count)
        metrics.DEVICE_CAPACITY.labels(name).set(capacity)
        desired = {"vipCount": count, "freeCapacity": max(0, capacity - count)}
        await self.reporter.status(device, desired)
        if is_deleting(device):
            await self.keep_finalizer(name)

    async def _failover_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            for device in self.views.devices():
                await self._maybe_fail_over(device)

    async def _maybe_fail_over(self, device: dict[str, Any]) -> None:
        failover = spec_of(device).get("failover") or {}
        if failover.get("policy") != FailoverPolicy.RESCHEDULE:
            return
        status = status_of(device)
        if status.get("phase") == DevicePhase.READY or not status.get("notReadySince"):
            if self.binder.stuck:  # back: a later failure says again why they cannot move
                for key in self.views.bound_vips(str(meta_of(device)["name"])):
                    self.binder.stuck.pop(key, None)
            return
        if _age(status.get("notReadySince")) < int(failover.get("afterSeconds", 60)):
            return
        name = str(meta_of(device)["name"])
        for key in sorted(self.views.bound_vips(name)):
            if await self.binder.bind(key, leaving=name):
                log.info("VIP %s/%s failed over from %s", *key, name)

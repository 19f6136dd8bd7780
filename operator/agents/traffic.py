"""A device's traffic counters, read for the exporter (``lbaas.traffic``) at each member health
read: one ``traffic_stats`` call for all the VIPs the device serves, when its driver declares
``ops.traffic-stats`` and ``config.trafficMetrics`` is not ``off``.

A read that fails leaves the last figures and their timestamp (stale figures show as an old
``lbaas_traffic_stats_timestamp_seconds``); a device without VIPs exports none.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from lbaas import metrics
from lbaas.drivers.contract import DeviceHandle, Driver, LoadBalancerStats
from lbaas.drivers.errors import DriverError
from lbaas.drivers.model import LoadBalancer

log = logging.getLogger(__name__)

FEATURE = "ops.traffic-stats"
Call = Callable[[str, Callable[[Driver, DeviceHandle], Any]], Awaitable[Any]]


class TrafficCounters:
    def __init__(self, device: str, call: Call, *, level: str) -> None:
        self.device = device
        self._call = call
        self.level = level

    async def read(self, lbs: list[LoadBalancer]) -> None:
        if self.level == "off":
            return
        metrics.TRAFFIC.level = self.level
        if not lbs:
            metrics.TRAFFIC.update(self.device, [], {}, time.time())
            return

        def ask(driver: Driver, handle: DeviceHandle) -> Mapping[str, LoadBalancerStats] | None:
            if FEATURE not in driver.capabilities(handle.config):
                return None
            return driver.traffic_stats(handle, lbs)

        try:
            found = await self._call("traffic_stats", ask)
        except DriverError as exc:
            log.debug("device %s: traffic counters unreadable: %s", self.device, exc.user_message)
            return
        if found is not None:
            metrics.TRAFFIC.update(self.device, lbs, found, time.time())

    def forget(self) -> None:
        metrics.TRAFFIC.forget(self.device)

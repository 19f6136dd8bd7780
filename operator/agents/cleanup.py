"""Orphans on a device: VIPs it holds that no VIP of the cluster is bound to.

Left by an abandoned deletion, by a failover (the old device comes back holding the VIPs
that moved), or added by hand. Removed once per resync interval and when an agent takes a
device over, only while the agent's view of the cluster is complete; each removal is a
``DriftRepaired`` Warning Event on the Device.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from lbaas import metrics
from lbaas.drivers.contract import DeviceHandle, Driver
from lbaas.drivers.errors import DriverError
from lbaas.reporter import Reporter
from lbaas.views import Views

log = logging.getLogger(__name__)

Call = Callable[[str, Callable[[Driver, DeviceHandle], Any]], Awaitable[Any]]
"""The device worker's ``call``: one driver call within the device's Lease."""


async def remove_orphans(*, device: str, views: Views, reporter: Reporter, call: Call) -> list[str]:
    """Delete ``device``'s orphans through ``call``; the keys removed."""
    bound = views.bound_vips(device, with_deleting=True)
    expected = {f"{ns}/{name}" for ns, name in bound}
    try:
        orphans: list[str] = await call("orphans", lambda d, h: d.orphans(h, expected))
    except DriverError as exc:
        log.info("device %s: orphan check failed: %s", device, exc.user_message)
        return []
    removed = []
    obj = views.device(device)
    for key in orphans:

        def delete(driver: Driver, handle: DeviceHandle, key: str = key) -> None:
            driver.delete(handle, key)

        try:
            await call("delete", delete)
        except DriverError as exc:
            log.warning("device %s: orphan %s not removed: %s", device, key, exc.user_message)
            continue
        removed.append(key)
        metrics.DRIFT_REPAIRS.labels(device, "Orphan").inc()
        if obj is not None:
            reporter.warn(
                obj,
                reason="DriftRepaired",
                message=f"removed VIP {key} from the device: no VIP of the cluster is bound"
                " to it here (left by an abandoned deletion, a failover, or added by hand)",
            )
    return removed

"""Orphans on a device: VIPs it holds that no VIP of the cluster is bound to.

Left by an abandoned deletion, by a failover (the old device comes back holding the VIPs
that moved), or added by hand. Removed once per resync interval and when an agent takes a
device over, only while the agent's view of the cluster is complete; each removal is a
``DriftRepaired`` Warning Event on the Device.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from lbaas import metrics
from lbaas.drivers.base import DriverError

if TYPE_CHECKING:  # the worker imports this module
    from lbaas.agents.worker import DeviceWorker

log = logging.getLogger(__name__)


async def remove_orphans(worker: DeviceWorker) -> list[str]:
    """Delete the device's orphans; the keys removed."""
    bound = worker.views.bound_vips(worker.name, with_deleting=True)
    expected = {f"{ns}/{name}" for ns, name in bound}
    try:
        orphans = await worker.call("orphans", lambda d, h: d.orphans(h, expected))
    except DriverError as exc:
        log.info("device %s: orphan check failed: %s", worker.name, exc.user_message)
        return []
    removed = []
    device = worker.views.device(worker.name)
    for lb in orphans:
        try:
            await worker.delete(lb)
        except DriverError as exc:
            log.warning(
                "device %s: orphan %s not removed: %s", worker.name, lb.key, exc.user_message
            )
            continue
        removed.append(lb.key)
        metrics.DRIFT_REPAIRS.labels(worker.name, "Orphan").inc()
        if device is not None:
            worker.reporter.warn(
                device,
                reason="DriftRepaired",
                message=f"removed VIP {lb.key} from the device: no VIP of the cluster is bound"
                " to it here (left by an abandoned deletion, a failover, or added by hand)",
            )
    return removed

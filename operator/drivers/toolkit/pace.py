"""How many VIPs of a batch one driver call can take before its deadline.

The operator gives every driver call a deadline (``driverTimeout``, 5 s by default: the
device's lease must outlive the call), and the device worker sends whatever waits for a device
as one batch: a cold start of 1,000 VIPs is one ``apply_many``. A change costs a part that
grows with the device (HAProxy: ``haproxy -c``, the reload, reading the servers back) and a
part per VIP of the batch (render, plan, files). A call asked for more than fits would time out,
be retried with the same batch, and time out again, forever. So a call takes the first VIPs
that fit, by what this device's own recent calls cost, and answers the others at once with a
retryable ``Deferred`` error (the operator sends them again with the next batch). A call
always takes at least one VIP, and takes every VIP when it has no deadline.

The estimates start pessimistic, rise at once when a call costs more, and fall slowly: a call
that times out anyway leaves the device consistent (HAProxy: see its ``reload``) and halves
the next take.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

from lbaas.drivers.deadline import remaining

MARGIN = 0.8
"""Share of the time left that the estimate may fill (the rest absorbs its error)."""
LEARN_FROM = 16
"""Batches this big teach the cost per VIP (in smaller ones the device-wide part dominates)."""


@dataclass
class Pace:
    """What one device's calls cost (kept in the driver's memo of the device)."""

    fixed: float = 1.0
    """Seconds of the device-wide part of the last call that had one (HAProxy: ``haproxy -c``,
    reload and read-back)."""
    per_vip: float = 0.01
    """Seconds per VIP of a batch (render, plan, files, runtime commands)."""
    spent_fixed: float = 0.0
    reloaded: bool = False

    def take(self, wanted: int) -> int:
        """How many of ``wanted`` VIPs this call takes (a new call starts here)."""
        self.spent_fixed, self.reloaded = 0.0, False
        left = remaining(math.inf)
        if math.isinf(left):
            return wanted
        fit = int((left * MARGIN - self.fixed) / self.per_vip)
        return max(1, min(wanted, fit))

    @contextlib.contextmanager
    def fixed_part(self, reload: bool = False) -> Iterator[None]:
        """Time a step whose cost grows with the device, not the batch."""
        started = time.monotonic()
        try:
            yield
        finally:
            self.spent_fixed += time.monotonic() - started
            self.reloaded = self.reloaded or reload

    def learn(self, vips: int, seconds: float, timed_out: bool) -> None:
        """A call of ``vips`` VIPs took ``seconds``."""
        if timed_out:
            self.per_vip *= 2
            return
        if self.reloaded:
            self.fixed = self.spent_fixed
        if vips >= LEARN_FROM:
            measured = max(0.0005, (seconds - self.spent_fixed) / vips)
            self.per_vip = max(measured, 0.7 * self.per_vip)

"""Every wait of the driver ends before the call's deadline (``lbaas.drivers.base``).

The operator gives each driver call a deadline: the agent's lease on the device is only valid
that long. Each socket timeout, subprocess timeout and wait loop of the driver is therefore
``budget(its own default)``, and a step that cannot start in time raises :class:`DriverTimeout`
before it changes anything.
"""

from __future__ import annotations

import time

from lbaas.drivers.base import DriverError, call_deadline, remaining


class DriverTimeout(DriverError):
    """The call's deadline passed; the device is left consistent and the call can be retried."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"the driver call ran out of time while {what}; it will be retried",
            retryable=True,
            reason="DriverTimeout",
        )


def budget(default: float, what: str, minimum: float = 0.0) -> float:
    """Seconds a wait may take: ``default`` cut to the deadline.

    Raises :class:`DriverTimeout` when less than ``minimum`` (or nothing) is left, so a step
    that needs time (a reload) is not started when it could not finish.
    """
    left = remaining(default)
    if left <= 0 or left < min(minimum, default):
        raise DriverTimeout(what)
    return left


def expired() -> bool:
    deadline = call_deadline()
    return deadline is not None and time.monotonic() >= deadline

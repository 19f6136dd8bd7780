"""The deadline of the running driver call.

The operator gives every driver call a deadline: the Lease that makes an agent the device's
only owner is valid only that long, and a call that outlived it could overlap the next
owner's. A driver that waits (a reload, a REST call, a retry loop) bounds each wait with
:func:`remaining` or :func:`budget`, and checks :func:`expired` after a wait that failed.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from lbaas.drivers.errors import DriverTimeout

_CALL = threading.local()


def call_deadline() -> float | None:
    """``time.monotonic()`` by which the running driver call must have returned, or None
    (no deadline: a test or a tool calling the driver directly)."""
    return getattr(_CALL, "deadline", None)


def remaining(default: float) -> float:
    """Seconds left before the call deadline (at most ``default``; 0 when already past)."""
    deadline = call_deadline()
    if deadline is None:
        return default
    return max(0.0, min(default, deadline - time.monotonic()))


def budget(default: float, what: str, minimum: float = 0.0) -> float:
    """Seconds a wait may take: ``default`` cut to the deadline.

    :raises DriverTimeout: less than ``minimum`` (or nothing) is left, so that a step that
        needs time (a reload) is not started when it could not finish.
    """
    left = remaining(default)
    if left <= 0 or left < min(minimum, default):
        raise DriverTimeout(what)
    return left


def expired() -> bool:
    """Whether the running call's deadline has passed."""
    deadline = call_deadline()
    return deadline is not None and time.monotonic() >= deadline


@contextlib.contextmanager
def deadline_scope(deadline: float | None) -> Iterator[None]:
    """Set the call deadline for the current thread (the runner and the conformance kit do)."""
    previous = getattr(_CALL, "deadline", None)
    _CALL.deadline = deadline
    try:
        yield
    finally:
        _CALL.deadline = previous

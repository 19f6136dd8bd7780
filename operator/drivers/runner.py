"""Running driver calls: off the event loop, bounded in time, one at a time per device.

Drivers are synchronous and may block on the network. Each call runs in a thread pool and
is given a deadline: ``timeout`` seconds, or less when the caller's device Lease ends sooner
(``deadline``). The driver sees it through ``lbaas.drivers.base.call_deadline()`` and bounds
its own waits by it. A call that overruns fails the caller with a retryable ``DriverTimeout``
at once, while the device stays locked until its thread really returns, so two calls never
overlap on one device. Other devices are never held up by a slow one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable
from typing import TypeVar

from lbaas import metrics
from lbaas.drivers.base import DriverError, deadline_scope

T = TypeVar("T")


class DriverRunner:
    def __init__(self, workers: int, timeout: float) -> None:
        self.timeout = timeout
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="driver")
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, device: str) -> asyncio.Lock:
        return self._locks.setdefault(device, asyncio.Lock())

    def in_flight(self, device: str) -> bool:
        """Whether a call for ``device`` is running (or its overrunning thread still is)."""
        lock = self._locks.get(device)
        return lock is not None and lock.locked()

    async def idle(self, device: str) -> None:
        """Wait until no call for ``device`` runs (before its Lease is handed over)."""
        lock = self._lock(device)
        async with lock:
            pass

    async def call(
        self,
        driver_name: str,
        device: str,
        op: str,
        fn: Callable[[], T],
        *,
        deadline: float | None = None,
    ) -> T:
        """Run ``fn`` for ``device``; raise DriverError on failure, timeout or busy device.

        ``deadline`` (monotonic) caps the call below ``timeout`` (the owner's Lease ends then).
        """
        lock = self._lock(device)
        own = time.monotonic() + self.timeout
        deadline = own if deadline is None else min(own, deadline)
        try:
            await asyncio.wait_for(lock.acquire(), timeout=self.timeout)
        except TimeoutError:
            raise DriverError(
                f"device {device} is still busy: the calls before this one did not finish"
                f" within {self.timeout:.0f}s (the device may not be answering); will retry",
                reason="DriverTimeout",
            ) from None
        started = time.monotonic()
        if started >= deadline:
            lock.release()
            raise DriverError(
                f"no time left to call {op} on device {device} (its lease is ending); will retry",
                reason="DriverTimeout",
            )

        def scoped() -> T:
            with deadline_scope(deadline):
                return fn()

        future = asyncio.get_running_loop().run_in_executor(self._pool, scoped)
        future.add_done_callback(lambda _f: lock.release())
        outcome = "ok"
        try:
            return await asyncio.wait_for(
                asyncio.shield(future), timeout=max(0.0, deadline - time.monotonic())
            )
        except TimeoutError:
            outcome = "timeout"
            raise DriverError(
                f"driver {driver_name} did not finish {op} on device {device} within"
                f" {self.timeout:.0f}s; will retry",
                reason="DriverTimeout",
            ) from None
        except DriverError:
            outcome = "error"
            raise
        except Exception as exc:
            outcome = "error"
            raise DriverError(
                f"driver {driver_name} failed: {type(exc).__name__}: {exc}", detail=repr(exc)
            ) from exc
        finally:
            metrics.DRIVER_CALLS.labels(driver_name, device, op, outcome).inc()
            metrics.DRIVER_LATENCY.labels(driver_name, device, op).observe(
                time.monotonic() - started
            )

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

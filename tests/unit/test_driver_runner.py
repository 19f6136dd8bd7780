"""DriverRunner: driver calls in real threads, bounded in time, one at a time per device."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from prometheus_client import REGISTRY

from lbaas.drivers.base import DriverError, UnsupportedError
from lbaas.drivers.runner import DriverRunner

T = TypeVar("T")


def run_with(runner: DriverRunner, scenario: Callable[[DriverRunner], Awaitable[T]]) -> T:
    try:
        return asyncio.run(scenario(runner))  # type: ignore[arg-type]
    finally:
        runner.shutdown()


def calls_counted(driver: str, device: str, op: str, outcome: str) -> float:
    labels = {"driver": driver, "device": device, "op": op, "outcome": outcome}
    return REGISTRY.get_sample_value("lbaas_driver_calls_total", labels) or 0.0


async def settle(finished: threading.Event) -> None:
    """Wait (off the loop) for an overrunning thread, so its lock release runs on a live loop."""
    assert await asyncio.to_thread(finished.wait, 2.0)
    await asyncio.sleep(0.05)


def test_result_is_returned() -> None:
    async def scenario(runner: DriverRunner) -> None:
        assert await runner.call("fake", "d1", "probe", lambda: 42) == 42
        where = await runner.call("fake", "d1", "probe", lambda: threading.current_thread().name)
        assert where.startswith("driver")  # ran in the pool, not on the loop's thread

    run_with(DriverRunner(workers=2, timeout=5), scenario)


def test_overrun_fails_promptly_with_driver_timeout() -> None:
    device = f"dev-{uuid.uuid4().hex[:6]}"
    release, finished = threading.Event(), threading.Event()

    def slow() -> str:
        release.wait(1.0)
        finished.set()
        return "too late"

    async def scenario(runner: DriverRunner) -> None:
        before = calls_counted("fake", device, "apply", "timeout")
        start = time.monotonic()
        with pytest.raises(DriverError) as info:
            await runner.call("fake", device, "apply", slow)
        elapsed = time.monotonic() - start
        assert not finished.is_set(), "the call waited for the slow function"
        assert 0.15 <= elapsed < 0.6
        err = info.value
        assert err.reason == "DriverTimeout"
        assert err.retryable
        assert f"did not finish apply on device {device}" in err.user_message
        assert calls_counted("fake", device, "apply", "timeout") == before + 1
        release.set()
        await settle(finished)

    run_with(DriverRunner(workers=2, timeout=0.2), scenario)


def test_device_stays_locked_until_the_overrunning_call_returns() -> None:
    release, finished = threading.Event(), threading.Event()
    second_ran = threading.Event()

    def slow() -> None:
        release.wait(1.0)
        finished.set()

    async def scenario(runner: DriverRunner) -> None:
        with pytest.raises(DriverError):
            await runner.call("fake", "d1", "apply", slow)
        # The first thread still runs: a second call on d1 must not start beside it.
        start = time.monotonic()
        with pytest.raises(DriverError) as info:
            await runner.call("fake", "d1", "apply", second_ran.set)
        assert time.monotonic() - start < 0.6
        assert info.value.reason == "DriverTimeout"
        assert "still busy" in info.value.user_message
        assert not second_ran.is_set()
        assert not finished.is_set()
        # Once the overrunning thread returns, the device is free again.
        release.set()
        await settle(finished)
        await runner.call("fake", "d1", "apply", second_ran.set)
        assert second_ran.is_set()

    run_with(DriverRunner(workers=4, timeout=0.2), scenario)


def test_calls_for_one_device_never_overlap() -> None:
    lock = threading.Lock()
    active = 0
    peak = 0
    ran: list[int] = []

    def work(i: int) -> int:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.05)
        with lock:
            active -= 1
            ran.append(i)
        return i

    async def scenario(runner: DriverRunner) -> list[int]:
        return await asyncio.gather(
            *(runner.call("fake", "d1", "apply", lambda i=i: work(i)) for i in range(6))
        )

    results = run_with(DriverRunner(workers=6, timeout=5), scenario)
    assert results == list(range(6))
    assert sorted(ran) == list(range(6))
    assert peak == 1


def test_different_devices_run_concurrently() -> None:
    # Both functions must be in flight at once to pass the barrier; serialised, it breaks.
    barrier = threading.Barrier(2, timeout=1.0)

    def meet(device: str) -> str:
        barrier.wait()
        return device

    async def scenario(runner: DriverRunner) -> list[str]:
        return await asyncio.gather(
            runner.call("fake", "d1", "apply", lambda: meet("d1")),
            runner.call("fake", "d2", "apply", lambda: meet("d2")),
        )

    assert run_with(DriverRunner(workers=4, timeout=5), scenario) == ["d1", "d2"]


def test_a_slow_device_does_not_stall_another() -> None:
    release, finished = threading.Event(), threading.Event()

    def slow() -> None:
        release.wait(1.0)
        finished.set()

    async def scenario(runner: DriverRunner) -> None:
        stuck = asyncio.create_task(runner.call("fake", "slow", "apply", slow))
        await asyncio.sleep(0.05)  # the slow call holds its device and a thread
        start = time.monotonic()
        for _ in range(3):
            assert await runner.call("fake", "fast", "apply", lambda: "done") == "done"
        assert time.monotonic() - start < 0.3
        assert not finished.is_set()
        release.set()
        await stuck
        assert finished.is_set()

    run_with(DriverRunner(workers=4, timeout=5), scenario)


def test_other_exceptions_become_retryable_driver_errors() -> None:
    def broken() -> None:
        raise ConnectionRefusedError("device 10.0.0.1:22 refused")

    async def scenario(runner: DriverRunner) -> None:
        with pytest.raises(DriverError) as info:
            await runner.call("vendorx", "d1", "apply", broken)
        err = info.value
        assert type(err) is DriverError
        assert err.retryable
        assert err.reason == "DriverError"
        assert err.user_message == (
            "driver vendorx failed: ConnectionRefusedError: device 10.0.0.1:22 refused"
        )
        assert "ConnectionRefusedError" in err.detail
        assert isinstance(err.__cause__, ConnectionRefusedError)
        # The device is not left locked by a failure.
        assert await runner.call("vendorx", "d1", "apply", lambda: "ok") == "ok"

    run_with(DriverRunner(workers=2, timeout=5), scenario)


def test_driver_errors_pass_through_unchanged() -> None:
    original = UnsupportedError("HTTPS is not supported on this model", detail="model X1")

    def refuse() -> None:
        raise original

    async def scenario(runner: DriverRunner) -> None:
        with pytest.raises(DriverError) as info:
            await runner.call("vendorx", "d1", "apply", refuse)
        assert info.value is original
        assert info.value.retryable is False
        assert info.value.reason == "Unsupported"
        assert info.value.user_message == "HTTPS is not supported on this model"

    run_with(DriverRunner(workers=2, timeout=5), scenario)

"""DeviceOwnership and LeaderElector against an in-memory Lease store (no API server).

The store has the API server's compare-and-swap semantics; a clock offset lets a test jump
ahead in time without waiting, to check the deadlines ``may_start`` and ``is_leader`` give.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from lbaas.agents.election import LeaderElector
from lbaas.agents.ownership import DeviceOwnership, TransferReason
from lbaas.api.meta import LabelSelector
from lbaas.leases import LeaseRecord, device_lease_name


class MemoryStore:
    """Leases in a dict; writes are compare-and-swap on a resourceVersion counter."""

    def __init__(self) -> None:
        self.leases: dict[str, LeaseRecord] = {}
        self.version = 0
        self.lock = threading.Lock()
        self.log: list[tuple[str, str, str | None]] = []  # (op, lease, holder after)
        self.hang = threading.Event()

    def _wait(self) -> None:
        while self.hang.is_set():
            time.sleep(0.01)

    def _store(self, record: LeaseRecord, op: str) -> LeaseRecord:
        self.version += 1
        stored = dataclasses.replace(record, resource_version=str(self.version))
        self.leases[record.name] = stored
        self.log.append((op, record.name, record.holder))
        return stored

    def get(self, name: str) -> LeaseRecord | None:
        self._wait()
        return self.leases.get(name)

    def list(self, label_selector: str) -> list[LeaseRecord]:
        self._wait()
        with self.lock:
            return list(self.leases.values())

    def create(self, record: LeaseRecord) -> LeaseRecord | None:
        self._wait()
        with self.lock:
            if record.name in self.leases:
                return None
            return self._store(record, "create")

    def update(self, record: LeaseRecord) -> LeaseRecord | None:
        self._wait()
        with self.lock:
            current = self.leases.get(record.name)
            if current is None or current.resource_version != record.resource_version:
                return None
            return self._store(record, "release" if record.holder is None else "update")

    def release(self, record: LeaseRecord, identity: str, reason: str = "released") -> Any:
        if record.holder != identity:
            return None
        return self.update(record.released(reason))


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


async def wait_for(what: str, predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout, f"not within {timeout}s: {what}"
        await asyncio.sleep(0.01)


def ownership(store: MemoryStore, name: str, devices: dict[str, Any], **kw: Any) -> Any:
    events: list[tuple[Any, ...]] = []

    async def on_release(device: str) -> None:
        events.append(("on_release", device, len(store.log)))

    own = DeviceOwnership(
        store,  # type: ignore[arg-type]
        name,
        labels=kw.pop("labels", {}),
        devices=lambda: devices,
        on_acquired=lambda d, fence, t: events.append(("acquired", d, fence, t)),
        on_release=on_release,
        on_lost=lambda d, reason: events.append(("lost", d, reason)),
        lease_duration=1.0,
        renew_period=0.1,
        driver_timeout=0.3,
        safety_margin=0.1,
        **kw,
    )
    own.events = events
    return own


def test_settings_that_leave_no_room_for_a_call_are_refused() -> None:
    with pytest.raises(ValueError):
        DeviceOwnership(
            MemoryStore(),  # type: ignore[arg-type]
            "a",
            labels={},
            devices=dict,
            on_acquired=print,
            on_release=print,
            on_lost=print,
            lease_duration=1.0,
            renew_period=0.5,
            driver_timeout=0.5,
        )


def test_may_start_only_while_the_call_fits_in_the_lease() -> None:
    async def scenario() -> None:
        store, clock = MemoryStore(), Clock()
        own = ownership(store, "a", {"d": None}, clock=clock)
        assert own.may_start("d") is None
        task = asyncio.create_task(own.run())
        await wait_for("d owned", lambda: own.owned() == {"d"})
        event = own.events[0]
        assert event[:3] == ("acquired", "d", 1) and event[3].reason is TransferReason.NEW
        deadline = own.may_start("d")
        assert deadline is not None and abs(deadline - (clock() + 0.3)) < 0.01
        task.cancel()  # renewals stop
        await asyncio.gather(task, return_exceptions=True)
        renewed_at = own._held["d"].renewed_at
        # The last call may start at renewed_at + D - margin - driver_timeout = + 0.6 s.
        clock.offset += renewed_at + 0.59 - clock()
        assert own.may_start("d") is not None
        clock.offset += 0.02
        assert own.may_start("d") is None

    asyncio.run(scenario())


def test_handover_calls_on_release_before_releasing_and_devices_that_vanish_go() -> None:
    async def scenario() -> None:
        store = MemoryStore()
        devices: dict[str, Any] = {"d1": None, "d2": LabelSelector(match_labels={"z": "a"})}
        own = ownership(store, "a", devices, labels={"z": "a"})
        task = asyncio.create_task(own.run())
        await wait_for("both owned", lambda: own.owned() == {"d1", "d2"})
        del devices["d1"]
        await wait_for("d1 released", lambda: own.owned() == {"d2"})
        on_release = next(e for e in own.events if e[0] == "on_release")
        assert on_release[1] == "d1"
        ops = store.log[on_release[2] :]
        assert ("release", device_lease_name("d1"), None) in ops  # released after on_release
        released = store.leases[device_lease_name("d1")]
        assert released.annotations["lbaas.dev/release-reason"] == "gone"
        own.labels = {"z": "b"}  # no longer eligible for d2
        await wait_for("d2 released", lambda: not own.owned())
        assert store.leases[device_lease_name("d2")].annotations["lbaas.dev/release-reason"] == (
            "ineligible"
        )
        await own.stop()
        await task

    asyncio.run(scenario())


def test_a_lease_taken_by_someone_else_is_lost_at_once() -> None:
    async def scenario() -> None:
        store = MemoryStore()
        own = ownership(store, "a", {"d": None})
        task = asyncio.create_task(own.run())
        await wait_for("owned", lambda: own.owned() == {"d"})
        name = device_lease_name("d")
        with store.lock:  # an intruder (think: an operator with a broken clock) writes it
            store._store(store.leases[name].acquired("x", "other", 1.0), "update")
        await wait_for("lost", lambda: not own.owned())
        assert ("lost", "d", "taken") in own.events
        assert own.may_start("d") is None
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())


def test_a_stalled_agent_stops_then_resumes_with_a_new_fence() -> None:
    async def scenario() -> None:
        store = MemoryStore()
        own = ownership(store, "a", {"d": None})
        task = asyncio.create_task(own.run())
        await wait_for("owned", lambda: own.owned() == {"d"})
        store.hang.set()
        start = time.monotonic()
        await wait_for("calls refused", lambda: own.may_start("d") is None)
        assert time.monotonic() - start < 1.0 - 0.3  # before the lease could expire
        await wait_for("lost as overdue", lambda: ("lost", "d", "overdue") in own.events)
        store.hang.clear()
        await wait_for("resumed", lambda: own.owned() == {"d"})
        acquired = [e for e in own.events if e[0] == "acquired"]
        assert [e[2] for e in acquired] == [1, 2]
        assert acquired[1][3].reason is TransferReason.RESUMED
        await own.stop()
        await task
        assert store.leases[device_lease_name("d")].holder is None

    asyncio.run(scenario())


def test_leader_stops_before_its_lease_can_expire_when_renewals_hang() -> None:
    async def scenario() -> None:
        store = MemoryStore()
        events: list[str] = []
        leader = LeaderElector(
            store,  # type: ignore[arg-type]
            "c1",
            lease_duration=1.0,
            renew_period=0.1,
            on_started_leading=lambda: events.append("started"),
            on_stopped_leading=lambda: events.append("stopped"),
        )
        task = asyncio.create_task(leader.run())
        await wait_for("leads", lambda: leader.is_leader)
        assert leader.valid_until() > time.monotonic()
        store.hang.set()
        hung_at = time.monotonic()
        await wait_for("stopped leading", lambda: events == ["started", "stopped"])
        assert time.monotonic() - hung_at < 1.0 - 0.1  # renew deadline 2/3 s < lease 1 s
        assert not leader.is_leader and leader.valid_until() == 0.0
        store.hang.clear()
        await wait_for("leads again", lambda: leader.is_leader)
        await leader.release()
        await task
        assert store.leases["lbaas-controller"].holder is None

    asyncio.run(scenario())

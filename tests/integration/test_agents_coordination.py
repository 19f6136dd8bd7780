"""Leader election and Device ownership through real Leases on the test bed.

Short timings (lease 2 s, renewals every 0.4 s, driver calls ≤ 0.5 s) keep the suite quick;
every wait is a ``wait_for`` with a deadline, never a bare sleep that hopes for the best.
The simulator at the end runs driver calls whenever ``may_start`` allows one, records them,
and proves that no two agents' calls on one Device overlap while agents crash, stall on a
hung API server, join and leave.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kubernetes
import pytest

from lbaas.agents.election import LeaderElector
from lbaas.agents.ownership import DeviceOwnership, Transfer, TransferReason
from lbaas.leases import (
    AGENTS_AND_DEVICES_SELECTOR,
    LeaseRecord,
    LeaseStore,
    device_lease_name,
    our_labels,
)

pytestmark = pytest.mark.cluster

D, P = 2.0, 0.4  # lease duration, renew period
TIMINGS: dict[str, float] = dict(
    lease_duration=D, renew_period=P, driver_timeout=0.5, safety_margin=0.25, call_timeout=0.8
)


@pytest.fixture
def store_factory(kubeconfig: str, namespace: str) -> Iterator[Callable[[], LeaseStore]]:
    clients: list[Any] = []

    def make() -> LeaseStore:
        client = kubernetes.config.new_client_from_config(config_file=kubeconfig)
        clients.append(client)
        return LeaseStore(client, namespace, request_timeout=2.0)

    yield make
    for client in clients:
        client.close()


async def wait_for(what: str, predicate: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``predicate()`` held (polled every 20 ms); fails after ``timeout``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout:g}s: {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


# ---- the store ------------------------------------------------------------------------------


def test_store_compare_and_swap(store_factory: Callable[[], LeaseStore]) -> None:
    store = store_factory()
    fresh = LeaseRecord("lbaas-device-x", labels=our_labels("device")).acquired("a", "i1", D)
    created = store.create(fresh)
    assert created is not None and created.resource_version and created.transitions == 1
    assert store.create(fresh) is None  # exists: no overwrite
    renewed = store.update(created.renewed())
    assert renewed is not None and renewed.resource_version != created.resource_version
    assert store.update(created.acquired("b", "i2", D)) is None  # stale read: 409, refused
    assert store.get("lbaas-device-x") == renewed
    assert store.release(renewed, "b") is None  # not the holder
    released = store.release(renewed, "a", "stopped")
    assert released is not None and released.holder is None and released.transitions == 1
    assert [r.name for r in store.list(AGENTS_AND_DEVICES_SELECTOR)] == ["lbaas-device-x"]
    assert store.get("nothing") is None
    long_name = device_lease_name("d" * 253)
    assert store.create(LeaseRecord(long_name, labels=our_labels("device"))) is not None


# ---- leader election ------------------------------------------------------------------------


def elector(store: LeaseStore, identity: str, log: list[tuple[str, str]]) -> LeaderElector:
    return LeaderElector(
        store,
        identity,
        lease_duration=D,
        renew_period=P,
        on_started_leading=lambda: log.append(("started", identity)),
        on_stopped_leading=lambda: log.append(("stopped", identity)),
    )


def test_two_electors_race_and_exactly_one_leads(store_factory: Callable[[], LeaseStore]) -> None:
    async def scenario() -> None:
        log: list[tuple[str, str]] = []
        electors = [elector(store_factory(), name, log) for name in ("c1", "c2")]
        tasks = [asyncio.create_task(e.run()) for e in electors]
        await wait_for("a leader", lambda: any(e.is_leader for e in electors), 3 * P)
        for _ in range(50):  # 1 s of samples: never two leaders, always the same one
            assert sum(e.is_leader for e in electors) == 1
            await asyncio.sleep(0.02)
        assert [event for event, _ in log] == ["started"]
        for e in electors:
            await e.release()
        for t in tasks:
            await t

    asyncio.run(scenario())


def test_killed_leader_is_replaced_after_the_lease_duration(
    store_factory: Callable[[], LeaseStore],
) -> None:
    async def scenario() -> None:
        log: list[tuple[str, str]] = []
        first = elector(store_factory(), "c1", log)
        task = asyncio.create_task(first.run())
        await wait_for("c1 leads", lambda: first.is_leader, 3 * P)
        second = elector(store_factory(), "c2", log)
        standby = asyncio.create_task(second.run())
        await asyncio.sleep(3 * P)
        assert not second.is_leader
        task.cancel()  # no release: to others, a crash
        with contextlib.suppress(asyncio.CancelledError):
            await task
        took = await wait_for("c2 leads", lambda: second.is_leader, D + 3 * P)
        assert took >= D - P - 0.1, "a standby must not lead before the lease could expire"
        await second.release()
        await standby

    asyncio.run(scenario())


def test_released_leadership_moves_within_one_renew_period(
    store_factory: Callable[[], LeaseStore],
) -> None:
    async def scenario() -> None:
        log: list[tuple[str, str]] = []
        first, second = elector(store_factory(), "c1", log), elector(store_factory(), "c2", log)
        t1 = asyncio.create_task(first.run())
        await wait_for("c1 leads", lambda: first.is_leader, 3 * P)
        t2 = asyncio.create_task(second.run())
        await asyncio.sleep(P)
        await first.release()  # SIGTERM
        await t1
        assert not first.is_leader and first.valid_until() == 0.0
        await wait_for("c2 leads", lambda: second.is_leader, P + 0.5)
        assert log[:3] == [("started", "c1"), ("stopped", "c1"), ("started", "c2")]
        await second.release()
        await t2

    asyncio.run(scenario())


# ---- device ownership -----------------------------------------------------------------------


class HangableStore:
    """A LeaseStore whose calls block (before reaching the server) while ``hang`` is set."""

    def __init__(self, store: LeaseStore) -> None:
        self._store = store
        self.hanging = threading.Event()
        self._resume = threading.Event()

    def hang(self) -> None:
        self._resume.clear()
        self.hanging.set()

    def resume(self) -> None:
        self.hanging.clear()
        self._resume.set()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.hanging.is_set():
                self._resume.wait(30)
            return method(*args, **kwargs)

        return call


Interval = tuple[str, str, float, float, float]  # agent, device, start, end, deadline


class Agent:
    """A DeviceOwnership plus, optionally, simulated driver calls on the Devices it may use."""

    def __init__(
        self,
        name: str,
        store: Any,
        devices: dict[str, Any],
        *,
        intervals: list[Interval] | None = None,
        pool: ThreadPoolExecutor | None = None,
    ) -> None:
        self.name, self.devices = name, devices
        self.acquired: list[tuple[str, int, Transfer]] = []
        self.lost: list[tuple[str, str]] = []
        self.released: list[str] = []
        self.inflight: dict[str, int] = dict.fromkeys(devices, 0)
        self.intervals, self.pool = intervals, pool
        self.ownership = DeviceOwnership(
            store,
            name,
            labels={"agent": name},
            devices=lambda: self.devices,
            on_acquired=lambda d, fence, transfer: self.acquired.append((d, fence, transfer)),
            on_release=self.on_release,
            on_lost=lambda d, reason: self.lost.append((d, reason)),
            **TIMINGS,
        )
        self.tasks: list[asyncio.Task[None]] = []

    async def on_release(self, device: str) -> None:
        # may_start already says None: wait for the calls running on the device.
        while self.inflight.get(device, 0):
            await asyncio.sleep(0.005)
        self.released.append(device)

    def start(self) -> Agent:
        self.task = asyncio.create_task(self.ownership.run())
        if self.intervals is not None:
            self.tasks = [asyncio.create_task(self.caller(d)) for d in self.devices]
        return self

    async def crash(self) -> None:
        """The ownership loop dies (no renewal, no release); driver calls go on if allowed."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def stop(self) -> None:
        await self.ownership.stop()
        await self.task

    async def halt_calls(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def owned(self) -> set[str]:
        return self.ownership.owned()

    async def caller(self, device: str) -> None:
        assert self.intervals is not None
        loop = asyncio.get_running_loop()
        while True:
            deadline = self.ownership.may_start(device)
            if deadline is None:
                await asyncio.sleep(0.01)
                continue
            self.inflight[device] += 1  # no await since may_start: on_release sees it
            try:
                result = await loop.run_in_executor(self.pool, driver_call, deadline)
            finally:
                self.inflight[device] -= 1
            if result is not None:
                self.intervals.append((self.name, device, *result, deadline))


def driver_call(deadline: float) -> tuple[float, float] | None:
    """A driver call that honours its deadline: 20-300 ms of work, cut short at the deadline."""
    start = time.monotonic()
    if start >= deadline:
        return None
    time.sleep(max(0.0, min(random.uniform(0.02, 0.3), deadline - start - 0.002)))
    return start, time.monotonic()


def owners(agents: list[Agent]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for agent in agents:
        for device in agent.owned():
            result.setdefault(device, []).append(agent.name)
    return result


def spread(agents: list[Agent]) -> list[int]:
    return sorted(len(a.owned()) for a in agents)


DEVICES = {f"dev-{i}": None for i in range(6)}


def test_three_agents_share_six_devices_and_take_over_from_a_dead_one(
    store_factory: Callable[[], LeaseStore],
) -> None:
    async def scenario() -> None:
        agents = [Agent(n, store_factory(), dict(DEVICES)).start() for n in ("a", "b", "c")]
        await wait_for("2/2/2", lambda: spread(agents) == [2, 2, 2], 4 * D)
        assert all(len(o) == 1 for o in owners(agents).values())
        await asyncio.sleep(3 * P)  # stable: nothing moves when nothing changes
        assert spread(agents) == [2, 2, 2] and not any(a.released or a.lost for a in agents)

        dead, alive = agents[0], agents[1:]
        orphans = dead.owned()
        await dead.crash()
        took = await wait_for(
            "the dead agent's devices taken",
            lambda: all(any(d in a.owned() for a in alive) for d in orphans),
            D + 2 * P + 1.0,
        )
        assert took >= D - P - 0.1
        assert spread(alive) == [3, 3]
        reasons = {t.reason for a in alive for d, _, t in a.acquired if d in orphans}
        assert reasons == {TransferReason.EXPIRED}
        for a in alive:
            await a.stop()

    asyncio.run(scenario())


def test_a_joining_agent_gets_devices_handed_over_and_a_stopping_one_hands_over(
    store_factory: Callable[[], LeaseStore],
) -> None:
    async def scenario() -> None:
        agents = [Agent(n, store_factory(), dict(DEVICES)).start() for n in ("a", "b", "c")]
        await wait_for("2/2/2", lambda: spread(agents) == [2, 2, 2], 4 * D)
        fences = {d: fence for a in agents for d, fence, _ in a.acquired}
        newcomer = Agent("d", store_factory(), dict(DEVICES)).start()
        agents.append(newcomer)
        await wait_for("the newcomer owns devices", lambda: len(newcomer.owned()) >= 1, 2 * D)
        await wait_for("1/1/2/2", lambda: spread(agents) == [1, 1, 2, 2], 2 * D)
        # Nobody lost a device without releasing it first: every move was a handover.
        assert not any(a.lost for a in agents)
        moved = newcomer.acquired
        assert moved and {t.reason for _, _, t in moved} == {TransferReason.BALANCE}
        assert all(fence == fences[d] + 1 for d, fence, _ in moved)
        assert sum(len(a.released) for a in agents) == len(moved)

        leaving = next(a for a in agents if len(a.owned()) == 2)
        mine = leaving.owned()
        others = [a for a in agents if a is not leaving]
        await leaving.stop()  # SIGTERM: releases at once
        took = await wait_for(
            "handed over on stop",
            lambda: all(any(d in a.owned() for a in others) for d in mine),
            2 * P + 1.0,
        )
        assert took < D - P, "a graceful stop must not wait for the lease to expire"
        kinds = {t.reason for a in others for d, _, t in a.acquired if d in mine}
        assert kinds == {TransferReason.STOPPED}
        assert spread(others) == [2, 2, 2]
        for a in others:
            await a.stop()

    asyncio.run(scenario())


def test_no_two_agents_drive_one_device_at_once(
    store_factory: Callable[[], LeaseStore],
) -> None:
    """Crash, stall (hung API server), join and leave while every owner drives its devices."""

    async def scenario() -> None:
        intervals: list[Interval] = []
        pool = ThreadPoolExecutor(max_workers=40)
        stalled_store = HangableStore(store_factory())

        def agent(name: str, store: Any = None) -> Agent:
            store = store or store_factory()
            return Agent(name, store, dict(DEVICES), intervals=intervals, pool=pool).start()

        a, b, c = agent("a"), agent("b", stalled_store), agent("c")
        agents = [a, b, c]
        try:
            await wait_for("2/2/2", lambda: spread(agents) == [2, 2, 2], 4 * D)
            await asyncio.sleep(1.0)

            await a.crash()  # its callers go on while may_start allows (a zombie)
            await wait_for("a's devices taken", lambda: len(b.owned() | c.owned()) == 6, 2 * D)

            stalled = b.owned()
            stalled_store.hang()  # b's renewals hang before reaching the server
            await wait_for(
                "b's devices taken by c",
                lambda: stalled <= c.ownership.owned() - b.ownership.owned(),
                2 * D + 1.0,
            )
            assert all(reason == "overdue" for _, reason in b.lost)
            d = agent("d")
            agents.append(d)
            await wait_for("d owns devices", lambda: len(d.owned()) >= 1, 2 * D)

            stalled_store.resume()  # b comes back and gets a share by handover
            await wait_for("b owns devices again", lambda: len(b.owned()) >= 1, 3 * D)
            await c.stop()  # graceful: hands over
            await wait_for("all owned by b and d", lambda: len(b.owned() | d.owned()) == 6, 2 * D)
            await asyncio.sleep(1.0)
        finally:
            stalled_store.resume()
            for x in agents:
                await x.halt_calls()
                with contextlib.suppress(Exception):
                    await x.crash()
            pool.shutdown(wait=True)

        assert intervals, "no driver call ran"
        by_device: dict[str, list[Interval]] = {}
        for iv in intervals:
            assert iv[3] <= iv[4] + 0.05, f"call ran past its deadline: {iv}"
            by_device.setdefault(iv[1], []).append(iv)
        for device, calls in by_device.items():
            calls.sort(key=lambda iv: iv[2])
            last_end: dict[str, float] = {}
            for name, _, start, end, _ in calls:
                for other, other_end in last_end.items():
                    assert other == name or other_end <= start, (
                        f"{device}: {name}'s call at {start:.3f} overlaps {other}'s"
                        f" ending {other_end:.3f}"
                    )
                last_end[name] = max(end, last_end.get(name, end))
        drivers = {name for name, *_ in intervals}
        assert drivers >= {"a", "b", "c", "d"}, drivers

    asyncio.run(scenario())

"""A device worker: everything an agent does for one Device it owns.

Started when the agent acquires the Device's Lease, stopped when it hands it over or loses
it. It holds the driver and the ``DeviceHandle`` (credentials included), and makes every
driver call of the device, each within the Lease (``gate.may_start`` gives the deadline):

- probes the device every ``probe_interval`` and at once when the driver's ``watch`` says
  the device changed (a supervised HAProxy died), and writes the Device's status;
- applies trees for the VIP loops, coalescing what waits into one ``apply_many`` call;
- reads member health for all its VIPs with one ``member_statuses`` call per interval and
  wakes the loops whose health changed; and their traffic counters (``agents.traffic``);
- removes orphans (VIPs the device holds that no VIP of the cluster is bound to) once per
  resync interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Hashable
from typing import Any, Protocol

from lbaas.agents.cleanup import remove_orphans
from lbaas.agents.device_status import device_status, open_device
from lbaas.agents.health import MemberHealth
from lbaas.agents.traffic import TrafficCounters
from lbaas.api.device import DevicePhase, DeviceSpec
from lbaas.config import OperatorSettings
from lbaas.drivers.batcher import Batcher
from lbaas.drivers.contract import DeviceHandle, Drift, Driver, ProbeResult, Statuses
from lbaas.drivers.errors import DriverError, Reason
from lbaas.drivers.model import LoadBalancer
from lbaas.drivers.registry import DriverRegistry
from lbaas.drivers.runner import DriverRunner
from lbaas.kube.client import Kube
from lbaas.reporter import Reporter
from lbaas.trees.loop import Mode
from lbaas.views import Views, meta_of, status_of

log = logging.getLogger(__name__)

VipKey = tuple[str, str]


class LeaseGate(Protocol):
    """The agent's ownership of Devices, as its workers and change handlers use it."""

    def may_start(self, device: str) -> float | None:
        """Deadline (monotonic) for a driver call of ``device`` starting now, or None."""

    def nudge(self) -> None:
        """Look at the Devices again now (one was created, deleted, relabelled)."""


class DeviceWorker:
    """One owned Device: its driver calls, probes, health reads and status."""

    def __init__(
        self,
        name: str,
        *,
        fence: int,
        settings: OperatorSettings,
        kube: Kube,
        views: Views,
        reporter: Reporter,
        drivers: DriverRegistry,
        runner: DriverRunner,
        gate: LeaseGate,
        trigger: Callable[[VipKey, Mode], None],
    ) -> None:
        self.name = name
        self.fence = fence
        self.settings = settings
        self.kube = kube
        self.views = views
        self.reporter = reporter
        self.drivers = drivers
        self.runner = runner
        self.gate = gate
        self.trigger = trigger
        self.driver: Driver | None = None
        self.handle: DeviceHandle | None = None
        self.spec: DeviceSpec | None = None
        """The Device's spec, with the handle (its policies: member networks, addresses)."""
        self.handle_generation: Any = None
        self.phase: str | None = None
        self.message = ""
        self.members = MemberHealth(self.name, self.call, trigger, unreadable=self._probe_soon)
        self.health = self.members.values
        self.traffic = TrafficCounters(name, self.call, level=settings.traffic_metrics)
        self.applied: dict[VipKey, tuple[Any, ...]] = {}
        self._probe_now = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stop_watch: Callable[[], None] = lambda: None
        self._applier: Batcher[LoadBalancer, DriverError | None] = Batcher(
            self._apply_many, key=_lb_key, missing=None
        )
        self._loop = asyncio.get_running_loop()

    @property
    def ready(self) -> bool:
        return self.phase == DevicePhase.READY

    @property
    def driver_name(self) -> str:
        return self.handle.driver if self.handle else ""

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Validate, probe, then run the periodic work until ``stop``."""
        await self.refresh_handle()
        await self.probe()
        self._tasks = [
            asyncio.create_task(self._probe_loop(), name=f"probe {self.name}"),
            asyncio.create_task(self._health_loop(), name=f"health {self.name}"),
            asyncio.create_task(self._orphan_loop(), name=f"orphans {self.name}"),
        ]

    async def stop(self) -> None:
        """Stop starting calls; wait for the one in flight (the Lease is released after)."""
        self._stop_watch()
        self._applier.cancel()
        self.members.cancel()
        self.traffic.forget()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.runner.idle(self.name)

    def _probe_soon(self) -> None:
        self._probe_now.set()

    def poke(self) -> None:
        """Probe now (thread-safe: drivers call it from their own threads)."""
        self._loop.call_soon_threadsafe(self._probe_now.set)

    async def refresh_handle(self) -> None:
        """(Re)build driver and handle from the Device's spec; validate the driver config.

        Credentials errors are shown as "cannot be read" only; the API's answer goes to the
        log (it may echo request headers).
        """
        device = self.views.device(self.name)
        if device is None:
            return
        self.handle_generation = meta_of(device).get("generation")
        try:
            driver, spec, handle = await open_device(
                device, self.drivers, self.kube, self.settings.agent_id, self.fence
            )
            self.reporter.redact.add(handle.credentials)
            self._stop_watch()
            self.driver, self.handle, self.spec = driver, handle, spec
            self._stop_watch = driver.watch(handle, self.poke)
        except DriverError as exc:
            self.handle = None
            await self._set_state(
                DevicePhase.NOT_READY if exc.retryable else DevicePhase.ERROR,
                exc.reason,
                exc.user_message,
            )
        except Exception as exc:  # a spec the model refuses: the schema should have
            self.handle = None
            await self._set_state(DevicePhase.ERROR, "InvalidSpec", f"spec is invalid: {exc}")

    # ---- driver calls (each within the Lease) ------------------------------------------------

    async def call(self, op: str, fn: Callable[[Driver, DeviceHandle], Any]) -> Any:
        """Run one driver call; DriverError when not allowed now or when it fails."""
        driver, handle = self.driver, self.handle
        if driver is None or handle is None:
            raise DriverError(
                f"device {self.name}: {self.message or 'not usable'}", reason="DeviceError"
            )
        deadline = self.gate.may_start(self.name)
        if deadline is None:
            raise DriverError(
                f"this agent no longer holds the lease of device {self.name}; will retry",
                reason=Reason.LEASE_LOST,
            )
        return await self.runner.call(
            handle.driver, self.name, op, lambda: fn(driver, handle), deadline=deadline
        )

    async def apply(
        self, lb: LoadBalancer, started: asyncio.Event | None = None
    ) -> DriverError | None:
        """Apply one tree (coalesced with others waiting): its own error, or None.
        ``started`` is set when the driver call carrying it begins."""
        return await self._applier.submit(lb, started)

    async def _apply_many(self, lbs: list[LoadBalancer]) -> dict[Hashable, DriverError | None]:
        try:
            outcome = await self.call("apply", lambda d, h: d.apply_many(h, lbs))
        except DriverError as exc:
            return {lb.key: exc for lb in lbs}
        return {lb.key: outcome.get(lb.key) for lb in lbs}

    async def delete(self, key: VipKey) -> None:
        """Remove the VIP ``key`` from the device (what it holds of it, whatever the tree)."""
        await self.call("delete", lambda d, h: d.delete(h, f"{key[0]}/{key[1]}"))

    async def verify(self, lb: LoadBalancer) -> list[Drift] | None:
        result: list[Drift] | None = await self.call("verify", lambda d, h: d.verify(h, lb))
        return result

    async def health_of(self, lb: LoadBalancer) -> Statuses | None:
        """Member health of one VIP now (coalesced with other VIPs' reads); stored too.
        None: the device could not tell."""
        return await self.members.of(lb)

    # ---- periodic work -------------------------------------------------------------------------

    async def probe(self) -> None:
        if self.handle is None:
            await self.refresh_handle()
            if self.handle is None:
                return
        try:
            result: ProbeResult = await self.call("probe", lambda d, h: d.probe(h))
        except DriverError as exc:
            if exc.reason == Reason.LEASE_LOST:
                return
            phase = DevicePhase.NOT_READY if exc.retryable else DevicePhase.ERROR
            await self._set_state(phase, exc.reason, exc.user_message)
            return
        if result.ready:
            came_back = self.phase is not None and not self.ready  # NotReady or Error
            await self._set_state(DevicePhase.READY, "Ready", result.message or "ready")
            if came_back and self.views.synced:
                # VIPs may have failed over while it was down, and its HAProxy was just
                # started again from files that still hold them: take them off now, not at
                # the next orphan check (up to a resync interval of the same VIP served twice).
                await self.remove_orphans()
        else:
            await self._set_state(
                DevicePhase.NOT_READY, "ProbeFailed", result.message or "not ready"
            )

    async def _probe_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._probe_now.wait(), self.settings.probe_interval)
            self._probe_now.clear()
            await self.probe()

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.member_status_interval)
            if not self.ready:
                continue
            lbs = [entry[1] for entry in self.applied.values()]
            if lbs:
                await self.members.read(lbs)
            await self.traffic.read(lbs)

    async def _orphan_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.resync_interval)
            if not self.ready or not self.views.synced:
                continue
            await self.remove_orphans()

    async def remove_orphans(self) -> list[str]:
        """Delete what the device holds that no VIP of the cluster is bound to."""
        return await remove_orphans(
            name=self.name, views=self.views, reporter=self.reporter, call=self.call
        )

    # ---- the Device's status --------------------------------------------------------------

    async def _set_state(self, phase: str, reason: str, message: str) -> None:
        changed = (phase, message) != (self.phase, self.message)
        was_ready = self.ready
        self.phase, self.message = phase, message
        await self.write_status(reason)
        if changed and phase == DevicePhase.ERROR:
            device = self.views.device(self.name)
            if device is not None:
                self.reporter.warn(device, reason=reason, message=message)
        if changed and was_ready != self.ready:
            mode = Mode.VERIFY if self.ready else Mode.REFRESH
            for key in self.views.bound_vips(self.name, with_deleting=True):
                self.trigger(key, mode)

    async def write_status(self, reason: str | None = None) -> None:
        device = self.views.device(self.name)
        if device is None or self.phase is None:
            return
        desired = device_status(
            device,
            phase=self.phase,
            reason=reason or str(status_of(device).get("reason") or self.phase),
            message=self.message,
            agent=self.settings.agent_id,
            bound=sorted(self.views.bound_vips(self.name, with_deleting=True)),
            features=self.driver.capabilities(self.handle.config)
            if self.driver is not None and self.handle is not None
            else None,
        )
        await self.reporter.status(device, desired)


def _lb_key(lb: LoadBalancer) -> Hashable:
    return lb.key

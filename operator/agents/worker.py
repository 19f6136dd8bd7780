"""A device worker: everything an agent does for one Device it owns.

Started when the agent acquires the Device's Lease, stopped when it hands it over or loses
it. It holds the driver and the ``DeviceHandle`` (credentials included), and makes every
driver call of the device, each within the Lease (``gate.may_start`` gives the deadline):

- probes the device every ``probe_interval`` and at once when the driver's ``watch`` says
  the device changed (a supervised HAProxy died), and writes the Device's status;
- applies trees for the VIP loops, coalescing what waits into one ``apply_many`` call;
- reads member health for all its VIPs with one ``member_statuses`` call per interval and
  wakes the loops whose health changed;
- removes orphans (VIPs the device holds that no VIP of the cluster is bound to) once per
  resync interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Protocol

from kubernetes.client.exceptions import ApiException

from lbaas import metrics
from lbaas.api.device import DevicePhase, DeviceSpec
from lbaas.config import OperatorSettings
from lbaas.drivers.base import (
    DeviceHandle,
    Drift,
    Driver,
    DriverError,
    LoadBalancer,
    ProbeResult,
    Statuses,
)
from lbaas.drivers.batcher import Batcher
from lbaas.drivers.registry import DriverRegistry
from lbaas.drivers.runner import DriverRunner
from lbaas.kube.client import Kube
from lbaas.reporter import Reporter
from lbaas.status import READY, Cond, desired_status, now
from lbaas.trees.loop import Mode
from lbaas.views import Views, is_deleting, meta_of, spec_of, status_of

log = logging.getLogger(__name__)

VipKey = tuple[str, str]
HEALTH_UNREADABLE = "unreadable"


class LeaseGate(Protocol):
    def may_start(self, device: str) -> float | None:
        """Deadline (monotonic) for a driver call of ``device`` starting now, or None."""


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
        self.handle_generation: Any = None
        self.phase: str | None = None
        self.message = ""
        self.health: dict[VipKey, Statuses | str] = {}
        self.applied: dict[VipKey, tuple[Any, ...]] = {}
        self._probe_now = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stop_watch: Callable[[], None] = lambda: None
        self._applier: Batcher[LoadBalancer, DriverError | None] = Batcher(
            self._apply_many, key=_lb_key, missing=None
        )
        self._health_reader: Batcher[LoadBalancer, Statuses | str] = Batcher(
            self._read_many, key=_lb_key, missing=HEALTH_UNREADABLE
        )
        self._loop = asyncio.get_running_loop()

    @property
    def ready(self) -> bool:
        return self.phase == DevicePhase.READY

    @property
    def driver_name(self) -> str:
        return self.handle.spec.driver if self.handle else ""

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
        self._health_reader.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.runner.idle(self.name)

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
            spec = DeviceSpec.model_validate(spec_of(device))
            self.driver = self.drivers.get(spec.driver)
            await asyncio.to_thread(self.driver.validate_config, spec.config)
            credentials: Mapping[str, str] = {}
            ref = spec.credentials_secret_ref
            if ref is not None:
                try:
                    credentials = await self.kube.read_secret(ref.namespace, ref.name)
                except (ApiException, OSError, ValueError) as exc:
                    log.warning(
                        "device %s: Secret %s/%s: %s", self.name, ref.namespace, ref.name, exc
                    )
                    raise DriverError(
                        f"credentials Secret {ref.namespace}/{ref.name} cannot be read",
                        reason="CredentialsUnavailable",
                    ) from None
                self.reporter.redact.add(credentials)
            self._stop_watch()
            self.handle = DeviceHandle(
                self.name,
                spec,
                dict(meta_of(device).get("labels") or {}),
                credentials,
                owner=self.settings.agent_id,
                fence=self.fence,
            )
            self._stop_watch = self.driver.watch(self.handle, self.poke)
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
                reason="LeaseLost",
            )
        return await self.runner.call(
            handle.spec.driver, self.name, op, lambda: fn(driver, handle), deadline=deadline
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

    async def delete(self, lb: LoadBalancer) -> None:
        await self.call("delete", lambda d, h: d.delete(h, lb))

    async def verify(self, lb: LoadBalancer) -> list[Drift] | None:
        result: list[Drift] | None = await self.call("verify", lambda d, h: d.verify(h, lb))
        return result

    async def health_of(self, lb: LoadBalancer) -> Statuses | str:
        """Member health of one VIP now (coalesced with other VIPs' reads); stored too."""
        value = await self._health_reader.submit(lb)
        self.health[(lb.namespace, lb.name)] = value
        return value

    async def _read_many(self, lbs: list[LoadBalancer]) -> dict[Hashable, Statuses | str]:
        try:
            found: Mapping[str, Statuses] = await self.call(
                "member_status", lambda d, h: d.member_statuses(h, lbs)
            )
        except DriverError as exc:
            log.info("device %s: member health unreadable: %s", self.name, exc.user_message)
            found = {}
            if exc.reason != "LeaseLost":
                # A device that cannot be read may be down or hung: probe it now rather than
                # at the next probe tick (its Device and VIPs then say so at once).
                self._probe_now.set()
        return {lb.key: dict(found[lb.key]) if lb.key in found else HEALTH_UNREADABLE for lb in lbs}

    async def read_health(self, lbs: list[LoadBalancer]) -> None:
        """One health read for ``lbs``; wake the loops whose health changed."""
        found = await self._read_many(lbs)
        for lb in lbs:
            key = (lb.namespace, lb.name)
            value = found[lb.key]
            if self.health.get(key) != value:
                self.health[key] = value
                self.trigger(key, Mode.REFRESH)

    # ---- periodic work -------------------------------------------------------------------------

    async def probe(self) -> None:
        if self.handle is None:
            await self.refresh_handle()
            if self.handle is None:
                return
        try:
            result: ProbeResult = await self.call("probe", lambda d, h: d.probe(h))
        except DriverError as exc:
            if exc.reason == "LeaseLost":
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
            if not self.ready or not self.applied:
                continue
            lbs = [entry[1] for entry in self.applied.values()]
            await self.read_health(lbs)

    async def _orphan_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.resync_interval)
            if not self.ready or not self.views.synced:
                continue
            await self.remove_orphans()

    async def remove_orphans(self) -> list[str]:
        expected = {
            f"{ns}/{name}" for ns, name in self.views.bound_vips(self.name, with_deleting=True)
        }
        try:
            orphans = await self.call("orphans", lambda d, h: d.orphans(h, expected))
        except DriverError as exc:
            log.info("device %s: orphan check failed: %s", self.name, exc.user_message)
            return []
        removed = []
        device = self.views.device(self.name)
        for lb in orphans:
            try:
                await self.delete(lb)
            except DriverError as exc:
                log.warning(
                    "device %s: orphan %s not removed: %s", self.name, lb.key, exc.user_message
                )
                continue
            removed.append(lb.key)
            metrics.DRIFT_REPAIRS.labels(self.name, "Orphan").inc()
            if device is not None:
                self.reporter.warn(
                    device,
                    reason="DriftRepaired",
                    message=f"removed VIP {lb.key} from the device: no VIP of the cluster is"
                    " bound to it here (left by an abandoned deletion, a failover, or added by"
                    " hand)",
                )
        return removed

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
        status = status_of(device)
        reason = reason or str(status.get("reason") or self.phase)
        phase, message = self.phase, self.message
        bound = sorted(self.views.bound_vips(self.name, with_deleting=True))
        if is_deleting(device) and bound:
            shown = ", ".join(f"{ns}/{vip}" for ns, vip in bound[:5])
            more = f" and {len(bound) - 5} more" if len(bound) > 5 else ""
            phase, reason = DevicePhase.ERROR, "InUse"
            message = (
                f"deletion waits: {len(bound)} VIP(s) still on this device ({shown}{more});"
                " delete them or move them first"
            )
        since = status.get("notReadySince")
        if self.phase == DevicePhase.READY:
            since = None  # removes it
        elif not since or status.get("phase") == DevicePhase.READY:
            since = now()
        extra: dict[str, Any] = {"agent": self.settings.agent_id, "notReadySince": since}
        desired = desired_status(
            status,
            phase=phase,
            reason=reason,
            message=message,
            generation=meta_of(device).get("generation"),
            conditions=[Cond(READY, self.phase == DevicePhase.READY, reason, message)],
            extra=extra,
        )
        if status.get("phase") != phase or status.get("message") != message:
            desired["lastProbeTime"] = now()
        elif status.get("lastProbeTime"):
            desired["lastProbeTime"] = status["lastProbeTime"]
        await self.reporter.status(device, desired)


def _lb_key(lb: LoadBalancer) -> Hashable:
    return lb.key

"""The agent role: serve the Devices this process owns, and their VIP trees.

Ownership comes from ``DeviceOwnership`` (one Lease per Device, a fair share per agent).
For each owned Device a :class:`~lbaas.agents.worker.DeviceWorker` makes the driver calls;
each VIP bound to it has a loop (:mod:`lbaas.trees.loop`) whose turns are
:class:`~lbaas.trees.reconcile.TreeReconciler` calls. Changes seen by the informers wake the
loops they concern: a VIP's own changes, its children's, its Device's.

Taking a Device over: a new owner applies every tree of it (``FORCE``) before reporting them
Active; the same agent restarting (it held the Lease before) verifies them instead, which
writes nothing when nothing changed. Handing a Device over: stop starting calls, let the one
in flight finish, then the Lease is released.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from lbaas.agents.transfer import Transfer
from lbaas.agents.worker import DeviceWorker, LeaseGate
from lbaas.background import spawn
from lbaas.config import OperatorSettings
from lbaas.drivers.registry import DriverRegistry
from lbaas.drivers.runner import DriverRunner
from lbaas.kinds import CHILD_KINDS
from lbaas.kube.client import Kube
from lbaas.kube.informer import Change
from lbaas.reporter import Reporter
from lbaas.tls.agent import TreeTLS
from lbaas.trees.loop import Mode, Result, TreeLoops
from lbaas.trees.reconcile import TreeReconciler
from lbaas.views import Views, is_deleting, meta_of, spec_of, status_of

log = logging.getLogger(__name__)

VipKey = tuple[str, str]


def _generation(obj: dict[str, Any] | None) -> Any:
    return meta_of(obj).get("generation")


class Agent:
    """Everything one agent process does, given its ownership of Devices."""

    def __init__(
        self,
        *,
        settings: OperatorSettings,
        kube: Kube,
        views: Views,
        reporter: Reporter,
        drivers: DriverRegistry,
        gate: Callable[[Agent], LeaseGate],
    ) -> None:
        """``gate`` makes, for this agent, what decides which Devices it owns and when a driver
        call may start (the runtime's :class:`~lbaas.agents.ownership.DeviceOwnership`, whose
        callbacks are this agent's ``on_acquired``/``on_release``/``on_lost``)."""
        self.settings = settings
        self.kube = kube
        self.views = views
        self.reporter = reporter
        self.drivers = drivers
        self.runner = DriverRunner(settings.driver_workers, settings.driver_timeout)
        self.workers: dict[str, DeviceWorker] = {}
        self._starting: dict[str, asyncio.Task[None]] = {}
        self.tls = TreeTLS(
            kube,
            warning=timedelta(days=settings.certificate_expiry_warning_days),
            trigger=lambda key: self.loops.trigger(key, Mode.APPLY),
        )
        self.reconciler = TreeReconciler(
            views=views,
            reporter=reporter,
            settings=settings,
            workers=self.workers,
            tls=self.tls,
        )
        self.loops = TreeLoops(
            self._reconcile,
            debounce=settings.debounce,
            resync_interval=settings.resync_interval,
            backoff_max=settings.retry_backoff_max,
        )
        self.gate: LeaseGate = gate(self)
        views.subscribe(self.on_change)

    async def _reconcile(self, key: VipKey, mode: Mode) -> Result:
        result = await self.reconciler(key, mode)
        if result is Result.STOP:
            self.tls.release(key)  # gone, or not this agent's: its Secrets are not watched
        return result

    # ---- ownership callbacks -----------------------------------------------------------------

    def on_acquired(self, device: str, fence: int, transfer: Transfer) -> None:
        """This agent now owns ``device``: start its worker, then take its trees over.

        Returns at once (the ownership loop must keep renewing Leases meanwhile)."""
        self._starting[device] = spawn(
            self._take_over(device, fence, transfer), name=f"take over {device}"
        )

    async def _take_over(self, device: str, fence: int, transfer: Transfer) -> None:
        worker = DeviceWorker(
            device,
            fence=fence,
            settings=self.settings,
            kube=self.kube,
            views=self.views,
            reporter=self.reporter,
            drivers=self.drivers,
            runner=self.runner,
            gate=self.gate,
            trigger=self.loops.trigger,
        )
        self.workers[device] = worker
        await worker.start()
        obj = self.views.device(device)
        same = transfer.previous_holder == self.settings.agent_id
        if obj is not None and not same:
            self.reporter.info(obj, reason="OwnerChanged", message=transfer.message)
        if worker.ready:
            await worker.remove_orphans()
        # The same agent restarting verifies (a warm restart writes nothing); a new owner
        # applies every tree before it reports them Active.
        mode = Mode.VERIFY if same else Mode.FORCE
        for key in self.views.bound_vips(device, with_deleting=True):
            self.loops.trigger(key, mode)

    async def on_release(self, device: str) -> None:
        """Hand ``device`` over: its loops and worker stop after what is in flight."""
        await self._drop(device)

    async def on_lost(self, device: str, reason: str = "") -> None:
        """``device`` is no longer ours (the Lease could not be renewed): stop at once."""
        await self._drop(device)

    async def _drop(self, device: str) -> None:
        starting = self._starting.pop(device, None)
        if starting is not None and not starting.done():
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
        worker = self.workers.pop(device, None)
        keys = [
            k
            for k in self.loops.vip_keys()
            if status_of(self.views.vip(k)).get("device") in (device, None)
        ]
        await asyncio.gather(*(self.loops.stop(k) for k in keys))
        for key in keys:
            self.tls.release(key)
        if worker is not None:
            await worker.stop()

    async def stop(self) -> None:
        await self.loops.stop_all()
        self.tls.close()
        await asyncio.gather(*(w.stop() for w in self.workers.values()))
        self.workers.clear()
        self.runner.shutdown()

    # ---- what wakes which loop ---------------------------------------------------------------

    def on_change(self, change: Change) -> None:
        kind = change.resource.kind
        if kind == "VIP":
            self._vip_changed(change)
        elif kind in CHILD_KINDS:
            self._child_changed(change)
        elif kind == "Device":
            self._device_changed(change)

    def _vip_changed(self, change: Change) -> None:
        old, new = change.old, change.new
        devices = {
            str(d) for d in (status_of(old).get("device"), status_of(new).get("device")) if d
        }
        if not any(d in self.workers for d in devices):
            return
        relevant = (
            old is None
            or new is None
            or _generation(old) != _generation(new)
            or is_deleting(old) != is_deleting(new)
            or status_of(old).get("device") != status_of(new).get("device")
            or status_of(old).get("address") != status_of(new).get("address")
            or (meta_of(old).get("finalizers") != meta_of(new).get("finalizers"))
        )
        if relevant:
            self.loops.trigger(change.key, Mode.APPLY)
        for device in devices:
            worker = self.workers.get(device)
            if worker is not None and is_deleting(self.views.device(device)):
                spawn(worker.write_status())

    def _child_changed(self, change: Change) -> None:
        old, new = change.old, change.new
        if (
            old is not None
            and new is not None
            and _generation(old) == _generation(new)
            and is_deleting(old) == is_deleting(new)
        ):
            return  # a status change (ours, or the controller's)
        kind, namespace = change.resource.kind, change.key[0]
        keys = set()
        for obj in (old, new):
            if obj is not None:
                key = self.views.vip_key_of(kind, namespace, spec_of(obj))
                if key is not None:
                    keys.add(key)
        for key in keys:
            if status_of(self.views.vip(key)).get("device") in self.workers:
                self.loops.trigger(key, Mode.APPLY)

    def _device_changed(self, change: Change) -> None:
        name = change.key[1]
        self.gate.nudge()
        worker = self.workers.get(name)
        if worker is None or change.new is None:
            return
        if _generation(change.old) != _generation(change.new):
            spawn(self._device_spec_changed(worker))
        elif is_deleting(change.old) != is_deleting(change.new):
            spawn(worker.write_status())

    async def _device_spec_changed(self, worker: DeviceWorker) -> None:
        await worker.refresh_handle()
        await worker.probe()
        for key in self.views.bound_vips(worker.name, with_deleting=True):
            self.loops.trigger(key, Mode.APPLY)

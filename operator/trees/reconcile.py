"""One turn of a VIP's loop on its agent: build the tree, apply or verify it, report.

The page to read to know what the operator does with a VIP:

1. The VIP is gone, or bound to a device this agent does not own: the loop ends. Its
   device's worker is still starting: nothing is said until the takeover's trigger.
2. It is being deleted: remove it from the device, then drop the finalizer (after
   ``delete_attempts`` failures: a ``DeleteAbandoned`` Event, and the finalizer goes anyway;
   the device's orphan check removes what stayed).
3. Build the tree from the index views, with the device's member policy.
4. The device cannot take it (address not allowed, device in Error or NotReady, or the tree
   asks for a feature the device's driver lacks: ``Unsupported``, naming it): say so.
5. Apply when the tree changed or the device drifted (``verify``), through the device worker
   (coalesced with other VIPs of the device). Pending is shown only if that is slow.
6. Report Active with the members' health, or the driver's error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from lbaas import metrics
from lbaas.agents.worker import DeviceWorker
from lbaas.api.device import DevicePhase
from lbaas.config import OperatorSettings
from lbaas.drivers.capabilities import why_unsupported
from lbaas.drivers.contract import Drift
from lbaas.drivers.errors import DriverError, Reason
from lbaas.drivers.model import LoadBalancer
from lbaas.placement.policy import vip_address_problem
from lbaas.reporter import FINALIZER, Reporter
from lbaas.status import PROGRAMMED, condition
from lbaas.trees import l7, report, translate
from lbaas.trees.assemble import build
from lbaas.trees.loop import Mode, Result
from lbaas.trees.tree import Tree
from lbaas.trees.writer import TreeWriter
from lbaas.views import Views, is_deleting, meta_of, spec_of, status_of

log = logging.getLogger(__name__)

VipKey = tuple[str, str]
MAX_DEFERRALS = 100
"""How many times in a row one turn sends a tree the driver deferred (``Reason.DEFERRED``: its
call had no time for it; not a failure) before the turn gives up and retries later."""


class TreeReconciler:
    """The agent's reconcile of one VIP (see the module docstring)."""

    def __init__(
        self,
        *,
        views: Views,
        reporter: Reporter,
        settings: OperatorSettings,
        workers: Mapping[str, DeviceWorker],
    ) -> None:
        self.views = views
        self.reporter = reporter
        self.settings = settings
        self.workers = workers
        self.out = TreeWriter(views, reporter)
        self._delete_attempts: dict[VipKey, int] = {}

    async def __call__(self, key: VipKey, mode: Mode) -> Result:
        vip = self.views.vip(key)
        if vip is None:
            self._delete_attempts.pop(key, None)
            return Result.STOP
        device = str(status_of(vip).get("device") or "")
        await leave_others(self.workers, key, device)
        worker = self.workers.get(device)
        if worker is None:
            return Result.STOP
        if worker.phase is None:
            # Its worker is starting (no handle, no probe yet): nothing true can be said, no
            # call made. The takeover triggers every tree of the device once it is up.
            return Result.BLOCKED
        if is_deleting(vip):
            return await self._remove(key, vip, worker)
        if FINALIZER not in (meta_of(vip).get("finalizers") or ()):
            await self.reporter.finalizer(vip, present=True)
        spec = worker.spec if worker.handle else None
        tree = build(self.views, key, vip, spec, device)
        refused = self._refusal(tree, worker)
        if refused is not None:
            if refused[0] == "AddressNotAllowed":
                await self._forget(worker, key, tree, self._address(tree, vip))
            await self.out.write(device, report.failed(self.out.fresh(tree), "Error", *refused))
            return Result.BLOCKED
        lb = fitted(worker, tree, translate.load_balancer(tree, self._address(tree, vip)))
        why = unsupported(worker, lb)
        if why is not None:
            # As a refused apply: the device goes on serving what it had (nothing is sent).
            worker.applied.pop(key, None)
            failed = report.failed(self.out.fresh(tree), "Error", Reason.UNSUPPORTED, why)
            await self.out.write(device, failed)
            return Result.BLOCKED
        if not worker.ready:
            return await self._device_not_ready(tree, lb, worker)
        return await self._converge(key, mode, vip, tree, lb, worker)

    @staticmethod
    def _address(tree: Tree, vip: Mapping[str, Any]) -> str:
        assert tree.vip_spec is not None
        return str(tree.vip_spec.address or status_of(vip).get("address") or "")

    @staticmethod
    def _refusal(tree: Tree, worker: DeviceWorker) -> tuple[str, str] | None:
        """Why this tree cannot go to the device at all: (reason, message), or None."""
        if tree.vip_spec is None:
            return tree.vip.problem_reason or "InvalidSpec", tree.vip.problem or "invalid spec"
        spec = worker.spec if worker.handle else None
        if spec is not None and tree.vip_spec.address:
            problem = vip_address_problem(spec, tree.vip_spec.address, worker.name)
            if problem:
                return "AddressNotAllowed", problem
        if worker.phase == DevicePhase.ERROR or worker.handle is None:
            return (
                "DeviceError",
                f"device {worker.name} cannot be used: {worker.message}; fix the Device",
            )
        return None

    async def _converge(
        self,
        key: VipKey,
        mode: Mode,
        vip: Mapping[str, Any],
        tree: Tree,
        lb: LoadBalancer,
        worker: DeviceWorker,
    ) -> Result:
        """Apply or verify as ``mode`` asks, then report Active (or the driver's error)."""
        fingerprint = (meta_of(vip).get("uid"), lb, worker.handle_generation, worker.fence)
        unobserved = tree.unobserved()
        programmed = condition(status_of(vip), PROGRAMMED).get("status") == "True"
        drifts: list[Drift] = []
        if mode == Mode.FORCE or unobserved:
            need_apply = True
        elif mode == Mode.APPLY:
            need_apply = worker.applied.get(key) != fingerprint
        elif not programmed and (mode == Mode.VERIFY or key not in worker.applied):
            # The device is not known to hold this tree (its last apply failed, or it waited
            # for the device): apply it; that repairs no drift.
            need_apply = True
        elif mode == Mode.VERIFY or key not in worker.applied:
            # A resync, or a tree this worker never applied (a takeover): ask the device.
            found = await self._verify(worker, lb)
            need_apply = found is None or bool(found)
            drifts = found or []
        else:
            need_apply = False
        if need_apply:
            error = await self._apply(worker, tree, lb)
            for _ in range(MAX_DEFERRALS):
                if error is None or error.reason != Reason.DEFERRED:
                    break
                error = await self._apply(worker, tree, lb)  # not attempted: the next call
            if error is not None:
                worker.applied.pop(key, None)
                log.warning(
                    "apply of %s on %s failed: %s %s",
                    lb.key,
                    worker.name,
                    error.user_message,
                    error.detail,
                )
                failed = report.failed(self.out.fresh(tree), "Error", error.reason, _said(error))
                await self.out.write(worker.name, failed)
                return Result.RETRY if error.retryable else Result.BLOCKED
            if drifts:
                self._repaired(worker, tree, drifts)
            health = await worker.health_of(lb)
        else:
            known = worker.health.get(key)
            health = known if known is not None else await worker.health_of(lb)
        worker.applied[key] = fingerprint
        pairs = report.active(
            self.out.fresh(tree), lb, worker.name, health=health, device_ready=True
        )
        if not await self.out.write(worker.name, pairs):
            return Result.RETRY
        return Result.DONE

    # ---- steps ----------------------------------------------------------------------------

    async def _apply(
        self, worker: DeviceWorker, tree: Tree, lb: LoadBalancer
    ) -> DriverError | None:
        """Apply; show Pending only if the device takes longer than ``pending_delay``.

        The clock starts when the driver call starts, not while the tree waits behind others
        of its device: at a cold start every tree waits, and Pending for all of them would
        double the status writes for nothing a client could act on.
        """
        started = asyncio.Event()
        task = asyncio.ensure_future(worker.apply(lb, started))
        waiting = asyncio.ensure_future(started.wait())
        await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if not task.done():
            done, _ = await asyncio.wait({task}, timeout=self.settings.pending_delay)
            if not done:
                await self.out.write(worker.name, report.pending(self.out.fresh(tree), worker.name))
        try:
            return await task
        except DriverError as exc:
            return exc

    async def _verify(self, worker: DeviceWorker, lb: LoadBalancer) -> list[Drift] | None:
        """What the device serves differently from ``lb`` (None: it cannot tell; [] when the
        device cannot be read now: the next resync asks again)."""
        try:
            return await worker.verify(lb)
        except DriverError as exc:
            log.info("verify of %s on %s failed: %s", lb.key, worker.name, exc.user_message)
            return []

    def _repaired(self, worker: DeviceWorker, tree: Tree, drifts: list[Drift]) -> None:
        """A Warning Event and a metric per repaired drift (after the repair succeeded)."""
        what = "; ".join(f"{d.kind}: {d.message}" for d in drifts[:5])
        log.info("%s on %s: drift repaired: %s", tree.vip.name, worker.name, what)
        self.reporter.warn(
            tree.vip.snap,
            reason="DriftRepaired",
            message=f"device {worker.name} differed from the tree and was repaired: {what}",
        )
        for drift in drifts:
            metrics.DRIFT_REPAIRS.labels(worker.name, drift.kind).inc()

    async def _device_not_ready(self, tree: Tree, lb: LoadBalancer, worker: DeviceWorker) -> Result:
        """The device cannot serve now: keep the phase, say why, members UNKNOWN."""
        pairs = report.active(
            self.out.fresh(tree),
            lb,
            worker.name,
            health=None,
            device_ready=False,
            device_message=worker.message,
        )
        unobserved = [
            o
            for o in tree.objects
            if o.status.get("observedGeneration") != o.generation and not o.deleting
        ]
        if unobserved:
            why = (
                f"device {worker.name} is not ready: {worker.message}; the change is applied"
                " when it is back"
            )
            pairs = report.failed(self.out.fresh(tree), "Pending", "DeviceNotReady", why)
        await self.out.write(worker.name, pairs)
        return Result.BLOCKED  # the worker triggers every tree when the device is back

    async def _remove(self, key: VipKey, vip: Mapping[str, Any], worker: DeviceWorker) -> Result:
        if FINALIZER not in (meta_of(vip).get("finalizers") or ()):
            return Result.STOP
        address = str(spec_of(vip).get("address") or status_of(vip).get("address") or "")
        try:
            if address:  # never given an address: never sent to the device
                await worker.delete(key)
        except DriverError as exc:
            attempts = self._delete_attempts.get(key, 0) + 1
            self._delete_attempts[key] = attempts
            if attempts < self.settings.delete_attempts:
                log.warning(
                    "removing %s/%s from %s failed: %s", *key, worker.name, exc.user_message
                )
                return Result.RETRY
            self.reporter.warn(
                vip,
                reason="DeleteAbandoned",
                message=f"released after {attempts} failed attempts; device {worker.name} may keep"
                f" it until its orphan check removes it: {exc.user_message}",
            )
        self._delete_attempts.pop(key, None)
        worker.applied.pop(key, None)
        worker.health.pop(key, None)
        await self.reporter.finalizer(vip, present=False)
        return Result.STOP

    async def _forget(self, worker: DeviceWorker, key: VipKey, tree: Tree, address: str) -> None:
        """Take a VIP the device must not hold (any more) off it."""
        if key in worker.applied and tree.vip_spec is not None and address:
            try:
                await worker.delete(key)
            except DriverError as exc:
                log.warning(
                    "removing %s/%s from %s failed: %s", *key, worker.name, exc.user_message
                )
        worker.applied.pop(key, None)


def fitted(worker: DeviceWorker, tree: Tree, lb: LoadBalancer) -> LoadBalancer:
    """``lb`` without the policies (and default forwarded headers) its device cannot serve,
    those policies marked ``Unsupported`` in ``tree`` (``lbaas.trees.l7.fit``)."""
    driver, handle = worker.driver, worker.handle
    if driver is None or handle is None:
        return lb
    return l7.fit(
        tree, lb, lambda trial: why_unsupported(driver, handle.config, trial), device=worker.name
    )


def unsupported(worker: DeviceWorker, lb: LoadBalancer) -> str | None:
    """Why the device cannot serve ``lb`` at all (a feature its driver lacks, or the
    driver's own refusal), naming the feature; None when it can."""
    if worker.driver is None or worker.handle is None:
        return None
    why = why_unsupported(worker.driver, worker.handle.config, lb)
    if why is None:
        return None
    return (
        f"device {worker.name} (driver {worker.driver_name}) cannot serve it: {why}; use a"
        " device whose driver can (kubectl get lbdev shows their features)"
    )


def _said(error: DriverError) -> str:
    """The error's message for status and Event; an ``UnsupportedError`` names its feature."""
    feature = getattr(error, "feature", None)
    if feature and feature not in error.user_message:
        return f"{error.user_message} (feature {feature})"
    return error.user_message


async def leave_others(workers: Mapping[str, DeviceWorker], key: VipKey, device: str) -> None:
    """Take ``key`` off the devices of this agent that served it before it moved to ``device``
    (a deviceRef changed, a failover): not one resync later, when their orphan check would."""
    for name, other in list(workers.items()):
        if name == device or key not in other.applied:
            continue
        other.applied.pop(key, None)
        try:
            await other.delete(key)
        except DriverError as exc:  # its orphan check removes it later
            log.info("%s/%s left device %s, not removed yet: %s", *key, name, exc.user_message)

"""One turn of a VIP's loop on its agent: build the tree, apply or verify it, report.

The page to read to know what the operator does with a VIP:

1. The VIP is gone, or bound to a device this agent does not own: the loop ends.
2. It is being deleted: remove it from the device, then drop the finalizer (after
   ``delete_attempts`` failures: a ``DeleteAbandoned`` Event, and the finalizer goes anyway;
   the device's orphan check removes what stayed).
3. Build the tree from the index views, with the device's member policy.
4. The device cannot take it (address not allowed, device in Error or NotReady): say so.
5. Apply when the tree changed or the device drifted (``verify``), through the device worker
   (coalesced with other VIPs of the device). Pending is shown only if that is slow.
6. Report Active with the members' health, or the driver's error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from lbaas import metrics
from lbaas.agents.worker import HEALTH_UNREADABLE, DeviceWorker
from lbaas.api.device import DevicePhase, DeviceSpec
from lbaas.api.member import MemberSpec
from lbaas.config import OperatorSettings
from lbaas.drivers.base import Drift, DriverError, LoadBalancer
from lbaas.placement.policy import member_address_problem, vip_address_problem
from lbaas.reporter import FINALIZER, Reporter
from lbaas.trees import report
from lbaas.trees.loop import Mode, Result
from lbaas.trees.tree import Tree, build_tree
from lbaas.views import Views, is_deleting, meta_of, spec_of, status_of

log = logging.getLogger(__name__)

VipKey = tuple[str, str]


def build(
    views: Views, key: VipKey, vip: Mapping[str, Any], spec: DeviceSpec | None, device: str
) -> Tree:
    """The tree of ``vip`` as the views hold it; members the device refuses are marked."""
    namespace = key[0]
    pools = views.children("Pool", namespace, key[1])
    members_of = {
        p["metadata"]["name"]: views.children("Member", namespace, p["metadata"]["name"])
        for p in pools
    }
    monitors_of = {
        p["metadata"]["name"]: views.children("HealthMonitor", namespace, p["metadata"]["name"])
        for p in pools
    }

    def member_check(member: MemberSpec) -> tuple[str, str] | None:
        if spec is None:
            return None
        for address in (member.address, member.monitor_address):
            if address:
                problem = member_address_problem(spec, address, device)
                if problem:
                    return "MemberAddressNotAllowed", problem
        return None

    return build_tree(vip, pools, members_of, monitors_of, member_check)


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
        self._delete_attempts: dict[VipKey, int] = {}

    async def __call__(self, key: VipKey, mode: Mode) -> Result:
        vip = self.views.vip(key)
        if vip is None:
            self._delete_attempts.pop(key, None)
            return Result.ended()
        device = str(status_of(vip).get("device") or "")
        worker = self.workers.get(device)
        if worker is None:
            return Result.ended()
        if is_deleting(vip):
            return await self._remove(key, vip, worker)
        if FINALIZER not in (meta_of(vip).get("finalizers") or ()):
            await self.reporter.finalizer(vip, present=True)
        spec = worker.handle.spec if worker.handle else None
        tree = build(self.views, key, vip, spec, device)
        if tree.vip_spec is None:
            await self._write(
                device,
                report.failed(
                    self._fresh(tree),
                    "Error",
                    tree.vip.problem_reason or "InvalidSpec",
                    tree.vip.problem or "invalid spec",
                ),
            )
            return Result.failed()
        address = str(tree.vip_spec.address or status_of(vip).get("address") or "")
        if spec is not None and tree.vip_spec.address:
            problem = vip_address_problem(spec, tree.vip_spec.address, device)
            if problem:
                await self._forget(worker, key, tree, address)
                await self._write(
                    device, report.failed(self._fresh(tree), "Error", "AddressNotAllowed", problem)
                )
                return Result.failed()
        if worker.phase == DevicePhase.ERROR or worker.handle is None:
            message = f"device {device} cannot be used: {worker.message}; fix the Device"
            await self._write(
                device, report.failed(self._fresh(tree), "Error", "DeviceError", message)
            )
            return Result.failed()
        lb = tree.load_balancer(address)
        if not worker.ready:
            return await self._device_not_ready(tree, lb, worker)
        fingerprint = (meta_of(vip).get("uid"), lb, worker.handle_generation, worker.fence)
        unobserved = any(
            o.status.get("observedGeneration") != o.generation
            for o in tree.objects
            if not (o.deleting or o.problem or o.waiting)
        )
        drifts: list[Drift] = []
        if mode == Mode.FORCE or unobserved:
            need_apply = True
        elif mode == Mode.APPLY:
            need_apply = worker.applied.get(key) != fingerprint
        elif mode == Mode.VERIFY or key not in worker.applied:
            # A resync, or a tree this worker never applied (a takeover): ask the device.
            found = await self._verify(worker, lb)
            need_apply = found is None or bool(found)
            drifts = found or []
        else:
            need_apply = False
        if need_apply:
            error = await self._apply(worker, tree, lb)
            if error is not None:
                worker.applied.pop(key, None)
                log.warning(
                    "apply of %s on %s failed: %s %s",
                    lb.key,
                    device,
                    error.user_message,
                    error.detail,
                )
                await self._write(
                    device,
                    report.failed(self._fresh(tree), "Error", error.reason, error.user_message),
                )
                return Result.retry_later() if error.retryable else Result.failed()
            if drifts:
                self._repaired(worker, tree, drifts)
            worker.applied[key] = fingerprint
            health = await worker.health_of(lb)
        else:
            worker.applied[key] = fingerprint
            known = worker.health.get(key)
            health = known if known is not None else await worker.health_of(lb)
        readable = None if health == HEALTH_UNREADABLE else health
        pairs = report.active(self._fresh(tree), lb, device, health=readable, device_ready=True)  # type: ignore[arg-type]
        if not await self._write(device, pairs):
            return Result.retry_later()
        return Result.done()

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
                await self._write(worker.name, report.pending(self._fresh(tree), worker.name))
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
            self._fresh(tree),
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
            pairs = report.failed(self._fresh(tree), "Pending", "DeviceNotReady", why)
        await self._write(worker.name, pairs)
        return Result.failed()  # the worker triggers every tree when the device is back

    async def _remove(self, key: VipKey, vip: Mapping[str, Any], worker: DeviceWorker) -> Result:
        if FINALIZER not in (meta_of(vip).get("finalizers") or ()):
            return Result.ended()
        tree = build(self.views, key, vip, None, worker.name)
        address = str(spec_of(vip).get("address") or status_of(vip).get("address") or "")
        try:
            if tree.vip_spec is not None and address:
                await worker.delete(tree.load_balancer(address))
        except DriverError as exc:
            attempts = self._delete_attempts.get(key, 0) + 1
            self._delete_attempts[key] = attempts
            if attempts < self.settings.delete_attempts:
                log.warning(
                    "removing %s/%s from %s failed: %s", *key, worker.name, exc.user_message
                )
                return Result.retry_later()
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
        return Result.ended()

    async def _forget(self, worker: DeviceWorker, key: VipKey, tree: Tree, address: str) -> None:
        """Take a VIP the device must not hold (any more) off it."""
        if key in worker.applied and tree.vip_spec is not None and address:
            try:
                await worker.delete(tree.load_balancer(address))
            except DriverError as exc:
                log.warning(
                    "removing %s/%s from %s failed: %s", *key, worker.name, exc.user_message
                )
        worker.applied.pop(key, None)

    def _fresh(self, tree: Tree) -> Tree:
        """Point the tree's objects at their newest cached copies (statuses written since it
        was built), so reports keep transition times right and compare with the truth."""
        for obj in tree.objects:
            latest = self.views.latest(obj.snap)
            if latest is not None:
                obj.snap = latest
        return tree

    async def _write(self, device: str, pairs: Iterable[tuple[Any, dict[str, Any]]]) -> bool:
        """Write the statuses of a tree; False when the VIP moved or changed meanwhile."""
        ok = True

        async def one(obj: Any, desired: dict[str, Any]) -> None:
            nonlocal ok
            latest = self.views.latest(obj.snap)
            if latest is None:
                return
            was = (status_of(latest).get("phase"), status_of(latest).get("message"))
            if desired.get("phase") == "Error" and was != ("Error", desired.get("message")):
                self.reporter.warn(latest, reason=desired["reason"], message=desired["message"])
            if obj.kind == "VIP":
                if status_of(latest).get("device") != device:
                    ok = False
                    return
                written = await self.reporter.status(latest, desired)
            else:
                written = await self.reporter.status(latest, desired)
            ok = ok and written

        await asyncio.gather(*(one(obj, desired) for obj, desired in pairs))
        return ok

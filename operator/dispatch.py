"""The tree engine: one reconcile loop per VIP, fed by every change in the VIP's tree.

Each VIP has a kopf daemon running ``Engine.run_tree``. Handlers of VIPs, Pools, Members and
HealthMonitors only *trigger* the loop of the VIP they belong to (found through kopf's
in-memory indices, never a list call). The loop waits ``debounce`` seconds so a burst of
changes coalesces into one apply, then: schedules the VIP if it has no device, writes
``Pending`` on changed objects, calls the driver with the whole tree, and writes ``Active`` or
``Error`` (with the driver's message and a Warning Event) on every object of the tree.
Retryable failures are retried with exponential backoff; others wait for the next change.

The loop is the only writer of a bound tree's statuses, so writes never race each other.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import kopf

from lbaas import metrics
from lbaas.addresses import allocate
from lbaas.api.device import DevicePhase, DeviceSpec
from lbaas.api.member import MemberOperatingStatus
from lbaas.api.vip import OperatingStatus
from lbaas.config import OperatorSettings
from lbaas.drivers.base import DeviceHandle, Driver, DriverError, LoadBalancer
from lbaas.drivers.registry import DriverRegistry
from lbaas.engine import DriverRunner
from lbaas.kube import Kube
from lbaas.scheduler import Candidate, schedule
from lbaas.status import PROGRAMMED, READY, SCHEDULED, Cond, desired_status, needs_write
from lbaas.tree import Snapshot, Tree, TreeObject, build_tree, is_deleting, name_of

log = logging.getLogger("lbaas.dispatch")

VipKey = tuple[str, str]  # (namespace, name)

# Index names, as the index handlers in lbaas.handlers.indices are called.
IDX_VIPS = "vip_index"
IDX_POOLS = "pool_index"
IDX_POOLS_BY_VIP = "pools_by_vip"
IDX_MEMBERS_BY_POOL = "members_by_pool"
IDX_MONITORS_BY_POOL = "monitors_by_pool"
IDX_DEVICES = "device_index"
IDX_NAMESPACES = "namespace_labels"
INDEX_NAMES = (
    IDX_VIPS,
    IDX_POOLS,
    IDX_POOLS_BY_VIP,
    IDX_MEMBERS_BY_POOL,
    IDX_MONITORS_BY_POOL,
    IDX_DEVICES,
    IDX_NAMESPACES,
)


def first(store: Iterable[Any] | None) -> Any:
    for item in store or ():
        return item
    return None


@dataclass
class Slot:
    """The loop of one VIP: its trigger, and deletions waiting for an apply without them."""

    trigger: asyncio.Event = field(default_factory=asyncio.Event)
    waiters: list[tuple[int, asyncio.Future[None]]] = field(default_factory=list)
    cycle: int = 0
    daemons: int = 0
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    # One reconcile per VIP name at a time, even if kopf briefly runs two daemons for it
    # (a VIP deleted and recreated under the same name before the old one's daemon ends).
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def running(self) -> bool:
        return self.daemons > 0


@dataclass
class Outcome:
    ok: bool
    retryable: bool = False
    error: DriverError | None = None
    stale: bool = False


class Engine:
    """Operator-wide state: indices, driver plumbing, VIP loops and address reservations."""

    def __init__(
        self,
        settings: OperatorSettings,
        kube: Kube | None = None,
        drivers: DriverRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.kube = kube or Kube()
        self.drivers = drivers or DriverRegistry()
        self.runner = DriverRunner(settings.driver_workers, settings.driver_timeout)
        self.indices: dict[str, Any] = {}
        self.slots: dict[VipKey, Slot] = {}
        self.reservations: dict[VipKey, tuple[str, str]] = {}  # VIP → (device, address)
        self.unscheduled: set[VipKey] = set()
        # What each tree's last successful apply sent: (VIP uid, LoadBalancer, DeviceHandle).
        self.applied: dict[VipKey, tuple[Any, LoadBalancer, DeviceHandle]] = {}
        # Bumped by every inventory trigger: a VIP that fails to schedule while the
        # inventory changes under it tries again instead of missing the wake-up.
        self.inventory_version = 0
        # Each Device's (generation, phase) as last indexed: its VIPs react to changes only.
        self.device_states: dict[str, tuple[Any, Any]] = {}

    # ---- indices -------------------------------------------------------------------------

    def attach(self, kwargs: Mapping[str, Any]) -> None:
        """Keep kopf's live index objects (handlers are given them as keyword arguments)."""
        if not self.indices:
            self.indices = {name: kwargs[name] for name in INDEX_NAMES if name in kwargs}

    def _idx(self, name: str) -> Mapping[Any, Any]:
        return self.indices.get(name) or {}

    def vip(self, key: VipKey) -> Snapshot | None:
        return first(self._idx(IDX_VIPS).get(key))

    def device(self, name: str) -> Snapshot | None:
        return first(self._idx(IDX_DEVICES).get(name))

    def vip_key_of(self, kind: str, namespace: str, spec: Mapping[str, Any]) -> VipKey | None:
        """Member/HealthMonitor → Pool → VIP; Pool → VIP. None while the parent is missing."""
        if kind == "Pool":
            return (namespace, spec["vipRef"]) if spec.get("vipRef") else None
        pool = first(self._idx(IDX_POOLS).get((namespace, spec.get("poolRef"))))
        if pool is None:
            return None
        return (namespace, pool["spec"].get("vipRef"))

    def parent_of(self, kind: str, namespace: str, spec: Mapping[str, Any]) -> str:
        if kind == "Pool":
            return f"VIP {spec.get('vipRef')}"
        if first(self._idx(IDX_POOLS).get((namespace, spec.get("poolRef")))) is None:
            return f"Pool {spec.get('poolRef')}"
        return f"VIP {self.vip_key_of(kind, namespace, spec)[1]}"  # type: ignore[index]

    def bound_vips(self, device: str) -> set[VipKey]:
        keys = {
            key
            for key, store in self._idx(IDX_VIPS).items()
            if (snap := first(store)) is not None
            and snap["status"].get("device") == device
            and not is_deleting(snap)  # its delete handler already removed it from the device
        }
        keys |= {key for key, (dev, _) in self.reservations.items() if dev == device}
        return keys

    def _used_addresses(self, device: str, exclude: VipKey | None = None) -> set[str]:
        used = set()
        for key in self.bound_vips(device) - {exclude}:
            snap = self.vip(key)
            if snap is not None:
                for addr in (snap["spec"].get("address"), snap["status"].get("address")):
                    if addr:
                        used.add(addr)
            reserved = self.reservations.get(key)
            if reserved and reserved[0] == device:
                used.add(reserved[1])
        return used

    def refresh_gauges(self) -> None:
        """Objects by kind and phase, and members by operating status, from the indices."""
        counts: dict[tuple[str, str], int] = {}
        members: dict[str, int] = {}
        for index in (IDX_VIPS, IDX_POOLS, IDX_MEMBERS_BY_POOL, IDX_MONITORS_BY_POOL, IDX_DEVICES):
            for store in self._idx(index).values():
                for snap in store:
                    phase = snap["status"].get("phase") or "None"
                    counts[(snap["kind"], phase)] = counts.get((snap["kind"], phase), 0) + 1
                    if snap["kind"] == "Member" and snap["status"].get("operatingStatus"):
                        state = snap["status"]["operatingStatus"]
                        members[state] = members.get(state, 0) + 1
        metrics.OBJECTS.clear()
        for (kind, phase), n in counts.items():
            metrics.OBJECTS.labels(kind, phase).set(n)
        metrics.MEMBER_STATUS.clear()
        for state, n in members.items():
            metrics.MEMBER_STATUS.labels(state).set(n)

    # ---- triggers and waits ----------------------------------------------------------------

    def trigger(self, key: VipKey) -> None:
        self.slots.setdefault(key, Slot()).trigger.set()

    def trigger_all(self, keys: Iterable[VipKey]) -> None:
        for key in keys:
            if self.vip(key) is not None:
                self.trigger(key)

    def trigger_unscheduled(self) -> None:
        """Inventory changed: VIPs that found no device get another chance."""
        self.inventory_version += 1
        self.trigger_all(list(self.unscheduled))

    def device_indexed(self, name: str, body: Mapping[str, Any] | None) -> None:
        """A Device event, seen after kopf indexed it (None: the Device is gone).

        Handlers of a Device trigger nothing themselves: their status patch lands in the
        index only later, and a VIP woken before that would act on the old state.
        """
        state = None
        if body is not None:
            metadata, status = body.get("metadata") or {}, body.get("status") or {}
            state = (metadata.get("generation"), status.get("phase"))
        if self.device_states.get(name) != state:
            if state is None:
                self.device_states.pop(name, None)
            else:
                self.device_states[name] = state
            # Its VIPs: a fixed config clears their errors; a gone device makes them move.
            self.trigger_all(self.bound_vips(name))
        self.trigger_unscheduled()

    async def wait_applied(self, key: VipKey, timeout: float) -> None:
        """Trigger ``key`` and wait for an apply that started after now; raise on failure."""
        slot = self.slots.get(key)
        if slot is None or not slot.running:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        slot.waiters.append((slot.cycle + 1, future))
        slot.trigger.set()
        await asyncio.wait_for(future, timeout)

    # ---- the loop --------------------------------------------------------------------------

    async def run_tree(self, key: VipKey, uid: str, stopped: kopf.DaemonStopped) -> None:
        slot = self.slots.setdefault(key, Slot())
        slot.daemons += 1
        slot.finished.clear()
        slot.trigger.set()  # converge at start: after a restart, in-flight work is redone
        attempt = 0
        wait: float | None = None
        try:
            while not stopped:
                woke = await self._wait(slot, stopped, wait)
                if stopped:
                    break
                if woke:
                    await asyncio.sleep(self.settings.debounce)
                    slot.trigger.clear()
                slot.cycle += 1
                cycle = slot.cycle
                full = woke or attempt > 0
                started = time.monotonic()
                try:
                    async with slot.lock:
                        outcome = await self.reconcile(key, uid=uid, apply=full)
                except Exception as exc:  # never let one tree's bug kill its loop
                    log.exception("reconcile of %s/%s failed", *key)
                    outcome = Outcome(False, True, DriverError(f"internal error: {exc}"))
                if outcome.stale:
                    return  # this daemon's object is gone; a newer one owns the name
                label = "ok" if outcome.ok else ("retry" if outcome.retryable else "error")
                metrics.RECONCILES.labels("VIP", label).inc()
                metrics.RECONCILE_LATENCY.labels("VIP", label).observe(time.monotonic() - started)
                self._resolve(slot, cycle, outcome)
                if outcome.ok:
                    attempt = 0
                    wait = self.settings.member_status_interval
                elif outcome.retryable:
                    attempt += 1
                    wait = min(self.settings.retry_backoff_max, 2.0 ** (attempt - 1))
                else:
                    attempt = 0
                    wait = None
        finally:
            slot.daemons -= 1
            if not slot.running:
                self._resolve(slot, 1 << 62, Outcome(True))
                slot.finished.set()

    @staticmethod
    async def _wait(slot: Slot, stopped: kopf.DaemonStopped, timeout: float | None) -> bool:
        """Wait for a trigger (True) or the timeout (False), checking ``stopped`` every second."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not stopped:
            step = 1.0 if deadline is None else min(1.0, max(0.0, deadline - time.monotonic()))
            try:
                await asyncio.wait_for(slot.trigger.wait(), step)
                return True
            except TimeoutError:
                if deadline is not None and time.monotonic() >= deadline:
                    return False
        return False

    @staticmethod
    def _resolve(slot: Slot, cycle: int, outcome: Outcome) -> None:
        keep = []
        for wanted, future in slot.waiters:
            if future.done():
                continue
            if wanted <= cycle:
                if outcome.ok or outcome.error is None:
                    future.set_result(None)
                else:
                    future.set_exception(outcome.error)
            else:
                keep.append((wanted, future))
        slot.waiters = keep

    # ---- one reconcile -----------------------------------------------------------------------

    def build(self, key: VipKey, vip: Snapshot) -> Tree:
        namespace = key[0]
        pools = list(self._idx(IDX_POOLS_BY_VIP).get(key) or ())
        members_of = {
            name_of(p): list(self._idx(IDX_MEMBERS_BY_POOL).get((namespace, name_of(p))) or ())
            for p in pools
        }
        monitors_of = {
            name_of(p): list(self._idx(IDX_MONITORS_BY_POOL).get((namespace, name_of(p))) or ())
            for p in pools
        }
        return build_tree(vip, pools, members_of, monitors_of)

    async def reconcile(
        self, key: VipKey, *, uid: str | None = None, apply: bool = True
    ) -> Outcome:
        vip = self.vip(key)
        if vip is None or is_deleting(vip):
            return Outcome(True)
        if uid is not None and vip["metadata"].get("uid") != uid:
            return Outcome(True, stale=True)
        tree = self.build(key, vip)
        if tree.vip_spec is None:
            await self._write_all(
                tree,
                "Error",
                tree.vip.problem_reason or "InvalidSpec",
                tree.vip.problem or "invalid spec",
                programmed=False,
            )
            return Outcome(False)
        binding = await self._ensure_bound(key, tree)
        if binding is None:
            return Outcome(False)
        device_name, address = binding
        device = self.device(device_name)
        assert device is not None
        if device["status"].get("phase") == DevicePhase.ERROR:
            message = (
                f"device {device_name} is in Error: {device['status'].get('message')};"
                f" fix the Device"
            )
            await self._write_all(
                tree,
                "Error",
                "DeviceError",
                message,
                programmed=False,
                extra_vip={"device": device_name, "address": address},
            )
            return Outcome(False)
        lb = tree.load_balancer(address)
        unobserved = any(
            o.status.get("observedGeneration") != o.generation
            for o in tree.objects
            if not (o.deleting or o.problem or o.waiting)
        )
        if not apply and unobserved:
            apply = True  # a refresh never reports a generation it has not applied
        try:
            driver, handle = await self._driver_and_handle(device)
        except DriverError as exc:
            return await self._driver_failed(tree, exc, device_name, address)
        applied = (vip["metadata"].get("uid"), lb, handle)
        if apply and not unobserved and self.applied.get(key) == applied:
            # A late trigger (e.g. a child's resume handler after a cold start) for a tree
            # this process already applied as it is: the device has it; refresh only.
            apply = False
        if apply:
            await self._write_pending(tree, device_name, address)
            self.applied.pop(key, None)
            try:
                await self.runner.call(
                    handle.spec.driver, device_name, "apply", lambda: driver.apply(handle, lb)
                )
                self.applied[key] = applied
            except DriverError as exc:
                log.warning(
                    "apply of %s on %s failed: %s %s",
                    lb.key,
                    device_name,
                    exc.user_message,
                    exc.detail,
                )
                return await self._driver_failed(tree, exc, device_name, address)
        try:
            observed = await self.runner.call(
                handle.spec.driver,
                device_name,
                "member_status",
                lambda: driver.member_status(handle, lb),
            )
        except DriverError as exc:
            log.info("member status of %s unavailable: %s", lb.key, exc.user_message)
            observed = {}
        await self._write_active(tree, lb, device_name, observed)
        return Outcome(True)

    async def _driver_failed(
        self, tree: Tree, exc: DriverError, device: str, address: str
    ) -> Outcome:
        """The tree shows the driver's error; the outcome says whether to retry."""
        await self._write_all(
            tree,
            "Error",
            exc.reason,
            exc.user_message,
            programmed=False,
            extra_vip={"device": device, "address": address},
        )
        return Outcome(False, exc.retryable, exc)

    async def _driver_and_handle(self, device: Snapshot) -> tuple[Driver, DeviceHandle]:
        spec = DeviceSpec.model_validate(device["spec"])
        driver = self.drivers.get(spec.driver)
        credentials: Mapping[str, str] = {}
        if spec.credentials_secret_ref is not None:
            ref = spec.credentials_secret_ref
            try:
                credentials = await asyncio.to_thread(
                    self.kube.read_secret, ref.namespace, ref.name
                )
            except Exception as exc:
                raise DriverError(
                    f"cannot read credentials Secret {ref.namespace}/{ref.name}: {exc}",
                    reason="CredentialsUnavailable",
                ) from exc
        labels = device["metadata"].get("labels") or {}
        return driver, DeviceHandle(name_of(device), spec, labels, credentials)

    # ---- scheduling ----------------------------------------------------------------------------

    async def _ensure_bound(self, key: VipKey, tree: Tree) -> tuple[str, str] | None:
        """The VIP's (device, address), scheduling it first if needed; None when impossible."""
        assert tree.vip_spec is not None
        status = tree.vip.status
        device_name = status.get("device") or (self.reservations.get(key) or ("", ""))[0]
        if device_name and self.device(device_name) is not None:
            address = (
                tree.vip_spec.address
                or status.get("address")
                or (self.reservations.get(key) or ("", ""))[1]
            )
            if address:
                self.unscheduled.discard(key)
                return device_name, address
        elif device_name:
            log.warning("VIP %s/%s: its device %s is gone; scheduling again", *key, device_name)
            self.reservations.pop(key, None)
            device_name = ""
        was = (tree.vip.status.get("reason"), tree.vip.status.get("message"))
        if was[0] != "NoEligibleDevice":  # a VIP waiting for a device does not flap
            await self._write(
                tree.vip,
                "Pending",
                "Scheduling",
                "choosing a device",
                [Cond(SCHEDULED, None, "Scheduling", "choosing a device")],
            )
        seen = self.inventory_version
        chosen, address, why = await self._schedule(key, tree, device_name or None)
        if chosen is None or address is None:
            self.unscheduled.add(key)
            if self.inventory_version != seen:
                self.trigger(key)  # the inventory changed while we looked: look again
            message = why or "no device"
            await self._write_all(
                tree,
                "Error",
                "NoEligibleDevice",
                message,
                programmed=False,
                scheduled=False,
                children=("Pending", "VIPNotScheduled", f"VIP {key[1]} has no device: {message}"),
            )
            if was != ("NoEligibleDevice", message):
                _warn(tree.vip.snap, reason="NoEligibleDevice", message=message)
            return None
        self.unscheduled.discard(key)
        self.reservations[key] = (chosen, address)
        await self._write(
            tree.vip,
            "Pending",
            "Applying",
            f"bound to device {chosen}",
            [Cond(SCHEDULED, True, "Scheduled", f"device {chosen}")],
            extra={"device": chosen, "address": address},
        )
        _info(
            tree.vip.snap,
            reason="Scheduled",
            message=f"bound to device {chosen}, address {address}",
        )
        await self._update_device_counts(chosen)
        return chosen, address

    async def _schedule(
        self, key: VipKey, tree: Tree, keep: str | None
    ) -> tuple[str | None, str | None, str]:
        assert tree.vip_spec is not None
        vip_spec = tree.vip_spec
        candidates = []
        for store in self._idx(IDX_DEVICES).values():
            snap = first(store)
            if snap is None or is_deleting(snap):
                continue
            try:
                spec = DeviceSpec.model_validate(snap["spec"])
            except Exception:
                continue
            name = name_of(snap)
            candidates.append(
                Candidate(
                    name=name,
                    spec=spec,
                    labels=snap["metadata"].get("labels") or {},
                    phase=snap["status"].get("phase"),
                    vip_count=len(self.bound_vips(name) - {key}),
                    used_addresses=frozenset(self._used_addresses(name)),
                )
            )
        probe_lb = LoadBalancer(key[0], key[1], vip_spec.address or "", vip_spec)

        def driver_check(c: Candidate) -> str | None:
            try:
                return self.drivers.get(c.spec.driver).supports(probe_lb)
            except DriverError as exc:
                return exc.user_message

        ns_labels = first(self._idx(IDX_NAMESPACES).get(key[0])) or {}
        decision = schedule(vip_spec, key[0], ns_labels, candidates, driver_check)
        if not decision.eligible:
            return None, None, decision.explain()
        chosen = decision.chosen
        by_driver: dict[str, list[Candidate]] = {}
        for c in decision.eligible:
            by_driver.setdefault(c.spec.driver, []).append(c)
        for driver_name in sorted(by_driver):
            group = by_driver[driver_name]
            driver = self.drivers.get(driver_name)
            handles = [DeviceHandle(c.name, c.spec, c.labels) for c in group]
            try:
                picked = await self.runner.call(
                    driver_name,
                    "*scheduler*",
                    "select_device",
                    functools.partial(driver.select_device, probe_lb, handles),
                )
            except DriverError as exc:
                log.warning("select_device of %s failed: %s", driver_name, exc.user_message)
                picked = None
            if picked is not None:
                chosen = next((c for c in group if c.name == picked.name), chosen)
                break
        assert chosen is not None
        # The driver hook ran off the loop: re-check capacity against reservations made since.
        if len(self.bound_vips(chosen.name) - {key}) >= chosen.spec.capacity.max_vips:
            return None, None, f"device {chosen.name} filled up while scheduling; will retry"
        address = vip_spec.address or allocate(
            chosen.spec.address_pool, self._used_addresses(chosen.name, exclude=key)
        )
        if address is None:
            return None, None, f"no free address in the addressPool of {chosen.name}"
        return chosen.name, address, ""

    async def _update_device_counts(self, device: str) -> None:
        snap = self.device(device)
        if snap is None:
            return
        count = len(self.bound_vips(device))
        capacity = int((snap["spec"].get("capacity") or {}).get("maxVIPs", 100))
        metrics.DEVICE_VIPS.labels(device).set(count)
        await asyncio.to_thread(
            self.kube.patch_status,
            "Device",
            None,
            device,
            {"vipCount": count, "freeCapacity": max(0, capacity - count)},
        )

    def release(self, key: VipKey) -> str | None:
        """Forget a VIP's reservation (after its deletion); returns the device it was on."""
        reserved = self.reservations.pop(key, None)
        self.unscheduled.discard(key)
        self.applied.pop(key, None)
        return reserved[0] if reserved else None

    # ---- status writing ----------------------------------------------------------------------

    async def _write(
        self,
        obj: TreeObject,
        phase: str,
        reason: str,
        message: str,
        conds: list[Cond],
        *,
        extra: Mapping[str, Any] | None = None,
        generation: int | None = None,
    ) -> None:
        if obj.deleting:
            return
        current = obj.status
        desired = desired_status(
            current,
            phase=phase,
            reason=reason,
            message=message,
            generation=generation,
            conditions=conds,
            extra=extra,
        )
        if not needs_write(current, desired):
            return
        ns = obj.snap["metadata"].get("namespace")
        found = await asyncio.to_thread(self.kube.patch_status, obj.kind, ns, obj.name, desired)
        if found:
            # Our own view until the watch event arrives: later cycles compare against it.
            obj.snap["status"].update(desired)

    async def _write_pending(self, tree: Tree, device: str, address: str) -> None:
        """Changed objects show Pending before the driver is called."""
        for obj in tree.objects:
            if obj.deleting or obj.problem:
                continue
            if obj.status.get("observedGeneration") != obj.generation or not obj.status.get(
                "phase"
            ):
                extra = {"device": device, "address": address} if obj is tree.vip else None
                await self._write(
                    obj,
                    "Pending",
                    "Applying",
                    f"applying to device {device}",
                    [
                        Cond(SCHEDULED, True, "Scheduled", f"device {device}"),
                        Cond(PROGRAMMED, None, "Applying", "applying"),
                        Cond(READY, False, "Applying", "applying"),
                    ],
                    extra=extra,
                    generation=obj.status.get("observedGeneration"),
                )

    async def _write_all(
        self,
        tree: Tree,
        phase: str,
        reason: str,
        message: str,
        *,
        programmed: bool,
        scheduled: bool = True,
        extra_vip: Mapping[str, Any] | None = None,
        children: tuple[str, str, str] | None = None,
    ) -> None:
        for obj in tree.objects:
            if obj.deleting:
                continue
            if obj.waiting:
                await self._write_waiting(obj, obj.waiting)
                continue
            o_phase, o_reason, o_message = phase, reason, message
            if obj is not tree.vip and children is not None:
                o_phase, o_reason, o_message = children
            if obj.problem:
                o_phase, o_reason, o_message = "Error", obj.problem_reason or "Invalid", obj.problem
            was = (obj.status.get("phase"), obj.status.get("message"))
            conds = [
                Cond(
                    SCHEDULED,
                    scheduled,
                    "Scheduled" if scheduled else o_reason,
                    "" if scheduled else o_message,
                ),
                Cond(PROGRAMMED, programmed, o_reason, o_message),
                Cond(READY, False, o_reason, o_message),
            ]
            await self._write(
                obj,
                o_phase,
                o_reason,
                o_message,
                conds,
                extra=extra_vip if obj is tree.vip else None,
                generation=obj.generation,
            )
            # NoEligibleDevice has its own Event; others get one when they turn (or change) Error.
            quiet = obj is tree.vip and o_reason == "NoEligibleDevice"
            if o_phase == "Error" and was != ("Error", o_message) and not quiet:
                _warn(obj.snap, reason=o_reason, message=o_message)

    async def _write_active(
        self,
        tree: Tree,
        lb: LoadBalancer,
        device: str,
        observed: Mapping[str, MemberOperatingStatus],
    ) -> None:
        member_states: dict[str, str] = {}
        for entry in lb.members:
            state = observed.get(entry.name)
            if not entry.spec.admin_state_up:
                state = MemberOperatingStatus.OFFLINE
            elif state is None:
                state = (
                    MemberOperatingStatus.DRAINING
                    if entry.spec.weight == 0
                    else MemberOperatingStatus.ONLINE
                    if lb.monitor
                    else MemberOperatingStatus.NO_MONITOR
                )
            member_states[entry.name] = str(state)
        rollup = vip_operating_status(lb, member_states)
        programmed = [
            Cond(SCHEDULED, True, "Scheduled", f"device {device}"),
            Cond(PROGRAMMED, True, "Programmed", f"programmed on device {device}"),
        ]
        for obj in tree.objects:
            if obj.deleting:
                continue
            if obj.waiting:
                await self._write_waiting(obj, obj.waiting)
                continue
            if obj.problem:
                was = (obj.status.get("phase"), obj.status.get("message"))
                await self._write(
                    obj,
                    "Error",
                    obj.problem_reason or "Invalid",
                    obj.problem,
                    [
                        Cond(PROGRAMMED, False, obj.problem_reason or "Invalid", obj.problem),
                        Cond(READY, False, obj.problem_reason or "Invalid", obj.problem),
                    ],
                    generation=obj.generation,
                )
                if was != ("Error", obj.problem):
                    _warn(obj.snap, reason=obj.problem_reason or "Invalid", message=obj.problem)
                continue
            extra: dict[str, Any] = {}
            if obj is tree.vip:
                extra = {"device": device, "address": lb.address, "operatingStatus": rollup}
            elif obj.kind == "Member":
                extra = {"operatingStatus": member_states.get(obj.name, "OFFLINE")}
            elif obj.kind == "Pool":
                extra = {"operatingStatus": rollup}
            await self._write(
                obj,
                "Active",
                "Programmed",
                f"active on device {device}",
                [*programmed, Cond(READY, True, "Ready", "serving")],
                extra=extra,
                generation=obj.generation,
            )

    # ---- deletion --------------------------------------------------------------------------------

    async def delete_vip(self, key: VipKey, body: Mapping[str, Any], retry: int) -> None:
        """Remove a VIP from its device; give up (with an Event) after the allowed attempts."""
        slot = self.slots.get(key)
        if slot is not None and slot.running:
            # The loop may be mid-apply: let it finish before removing, or it would re-add.
            await asyncio.wait_for(slot.finished.wait(), self.settings.driver_timeout + 5)
        status = body.get("status") or {}
        device_name = status.get("device") or (self.reservations.get(key) or ("", ""))[0]
        device = self.device(device_name) if device_name else None
        if device is not None:
            spec = body.get("spec") or {}
            try:
                from lbaas.api.vip import VIPSpec

                vip_spec = VIPSpec.model_validate(spec)
                address = vip_spec.address or status.get("address") or ""
                lb = LoadBalancer(key[0], key[1], address, vip_spec)
                driver, handle = await self._driver_and_handle(device)
                await self.runner.call(
                    handle.spec.driver, device_name, "delete", lambda: driver.delete(handle, lb)
                )
            except DriverError as exc:
                if retry + 1 < self.settings.delete_attempts:
                    raise kopf.TemporaryError(
                        f"removing from device {device_name} failed: {exc.user_message}",
                        delay=min(self.settings.retry_backoff_max, 2.0**retry),
                    ) from exc
                _warn(
                    dict(body),
                    reason="DeleteAbandoned",
                    message=f"released after {retry + 1} failed attempts; device"
                    f" {device_name} may keep stale config: {exc.user_message}",
                )
        elif device_name:
            _warn(
                dict(body),
                reason="DeviceGone",
                message=f"device {device_name} no longer exists; it may keep stale config",
            )
        self.release(key)
        if slot is not None and not slot.running:
            self.slots.pop(key, None)
        if device_name:
            await self._update_device_counts(device_name)
            self.trigger_unscheduled()  # capacity and an address were freed
        await self.orphan_children(key)

    async def _write_waiting(self, obj: TreeObject, why: str) -> None:
        await self._write(
            obj,
            "Pending",
            "WaitingForParent",
            f"waiting for its parent: {why}",
            [
                Cond(PROGRAMMED, False, "WaitingForParent", why),
                Cond(READY, False, "WaitingForParent", why),
            ],
        )

    async def orphan_pool_children(self, namespace: str, pool: str) -> None:
        """A Pool vanished: its members and monitor wait for it to come back."""
        for index in (IDX_MEMBERS_BY_POOL, IDX_MONITORS_BY_POOL):
            for snap in list(self._idx(index).get((namespace, pool)) or ()):
                obj = TreeObject(snap)
                if not obj.deleting:
                    await self._write_waiting(obj, f"Pool {pool} does not exist")

    async def orphan_children(self, key: VipKey) -> None:
        """A VIP went away: its pool and the pool's children wait for it to come back."""
        vip_snap = {
            "apiVersion": "lbaas.dev/v1alpha1",
            "kind": "VIP",
            "metadata": {"name": key[1], "namespace": key[0]},
            "spec": {"port": 1},
            "status": {},
        }
        tree = self.build(key, vip_snap)
        for obj in tree.objects[1:]:
            await self._write(
                obj,
                "Pending",
                "WaitingForParent",
                f"waiting for VIP {key[1]} to exist",
                [
                    Cond(PROGRAMMED, False, "WaitingForParent", "parent missing"),
                    Cond(READY, False, "WaitingForParent", "parent missing"),
                ],
            )


def _warn(obj: Mapping[str, Any], *, reason: str, message: str) -> None:
    """A Warning Event on any object of a tree (kopf posts it; it wants the body's identity)."""
    kopf.warn(cast(kopf.Body, obj), reason=reason, message=message)


def _info(obj: Mapping[str, Any], *, reason: str, message: str) -> None:
    kopf.info(cast(kopf.Body, obj), reason=reason, message=message)


def vip_operating_status(lb: LoadBalancer, members: Mapping[str, str]) -> str:
    """Roll member health up: all up → ONLINE, some down → DEGRADED, none serving → ERROR."""
    if not lb.spec.admin_state_up:
        return OperatingStatus.OFFLINE
    serving = [
        s
        for s in members.values()
        if s in (MemberOperatingStatus.ONLINE, MemberOperatingStatus.NO_MONITOR)
    ]
    failed = [s for s in members.values() if s == MemberOperatingStatus.ERROR]
    if not serving:
        return OperatingStatus.ERROR
    if failed:
        return OperatingStatus.DEGRADED
    return OperatingStatus.ONLINE


def age_seconds(creation: str | None) -> float:
    if not creation:
        return 0.0
    created = datetime.strptime(creation, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return (datetime.now(UTC) - created).total_seconds()

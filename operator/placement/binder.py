"""The binder: the controller's loop that binds each VIP to a Device and an address.

A VIP without ``status.device`` (new, or its device is gone, or it fails over) is queued;
binding it runs the pure scheduler over the inventory (with the tenant rules: address policy,
listener conflicts, per-namespace quota), lets the chosen driver pick among eligible devices
(``select_device``), allocates an address from the device's pool when the VIP names none,
and writes the binding: our finalizer first (nothing reaches a device without it), then
``status.device``/``address`` and ``Scheduled=True``. Reservations cover the moment between
the choice and the written status, so concurrent binds never hand out one address twice or
overfill a device. A VIP that cannot be bound says why (``NoEligibleDevice``,
``AddressNotAllowed``, ``AddressInUse``, ``QuotaExceeded``) and waits: any change of the
inventory, of a namespace's labels, or a VIP leaving a device wakes every waiting VIP.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from lbaas.api.vip import VIPSpec
from lbaas.background import spawn
from lbaas.config import OperatorSettings
from lbaas.device_index import transport
from lbaas.drivers.model import LoadBalancer
from lbaas.drivers.registry import DriverRegistry
from lbaas.placement.candidates import CandidateView, Reservations
from lbaas.placement.moves import spec_excludes
from lbaas.reporter import Reporter
from lbaas.status import SCHEDULED, Cond, desired_status
from lbaas.trees import l7, report, translate
from lbaas.trees.assemble import build
from lbaas.views import Views, is_deleting, spec_of, status_of
from lbaas.workqueue import KeyedQueue

log = logging.getLogger(__name__)

VipKey = tuple[str, str]


class Binder:
    """Binds VIPs to Devices; owns the reservations and the set of VIPs waiting for one."""

    def __init__(
        self,
        *,
        views: Views,
        reporter: Reporter,
        drivers: DriverRegistry,
        settings: OperatorSettings,
    ) -> None:
        self.views = views
        self.reporter = reporter
        self.drivers = drivers
        self.settings = settings
        self.reserved: Reservations = {}  # device, address, port, transport
        self.unscheduled: set[VipKey] = set()
        self.stuck: dict[VipKey, str] = {}  # VIP → why it cannot fail over (said once)
        self.inventory_version = 0
        self._queue: KeyedQueue[VipKey] = KeyedQueue(self.bind, name="binder")
        self._locks: dict[VipKey, asyncio.Lock] = {}
        self.candidates = CandidateView(
            views,
            drivers,
            self.reserved,
            probe_grace=settings.lease_duration + 2 * settings.lease_renew_period,
            wake=self.inventory_changed,
        )
        self.on_bound: list[Any] = []

    # ---- the queue -------------------------------------------------------------------------

    def start(self, concurrency: int = 8) -> None:
        self._queue.start(concurrency)

    async def stop(self) -> None:
        await self._queue.stop()

    def trigger(self, key: VipKey) -> None:
        """Bind ``key`` (queued once; never two binds of one VIP at once: they would replace
        each other's reservation, and its own finalizer write is a change that triggers it)."""
        self._queue.add(key)

    def inventory_changed(self) -> None:
        """Devices, namespace labels or capacity changed: waiting VIPs try again."""
        self.inventory_version += 1
        for key in list(self.unscheduled):
            self.trigger(key)

    # ---- one VIP ---------------------------------------------------------------------------

    def needs_binding(self, vip: Mapping[str, Any] | None) -> bool:
        if vip is None or is_deleting(vip):
            return False
        device = status_of(vip).get("device")
        return not device or self.views.device(str(device)) is None

    async def bind(self, key: VipKey, *, leaving: str | None = None) -> bool:
        """Bind ``key`` if it needs it (or move it off ``leaving``); True when bound.

        One bind per VIP at a time: a second one would replace the first's reservation while
        the first still writes it, and free its address for another VIP.
        """
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                return await self._bind(key, leaving)
        finally:
            if not lock.locked() and self._locks.get(key) is lock:
                del self._locks[key]

    async def _bind(self, key: VipKey, leaving: str | None) -> bool:
        vip = self.views.vip(key)
        if vip is None:
            self.unscheduled.discard(key)
            self.stuck.pop(key, None)
            return False
        if is_deleting(vip):
            self.unscheduled.discard(key)
            if not status_of(vip).get("device"):
                await self.reporter.finalizer(vip, present=False)
            return False
        try:
            spec = VIPSpec.model_validate(spec_of(vip))
        except ValueError as exc:
            if leaving is None and not self.needs_binding(vip):
                return True  # bound already: its agent says what is wrong with the spec
            tree = build(self.views, key, vip, None, "")
            await self._failed(key, vip, tree, "InvalidSpec", f"spec is invalid: {exc}")
            return False
        move = None if leaving is not None else self._excluded(vip, spec)
        if move is not None:
            leaving = str(status_of(vip)["device"])
        elif leaving is None and not self.needs_binding(vip):
            self.unscheduled.discard(key)
            return True
        if leaving is not None and spec.device_ref == leaving:
            self._stuck(key, vip, leaving, "it is pinned to that device by spec.deviceRef")
            return False
        seen = self.inventory_version
        probe = self._probe(key, vip, spec)
        decision = self.candidates.decide(key, spec, leaving, probe)
        if not decision.eligible and (lean := l7.essential(probe, spec)) != probe:
            # No device serves all of it: one that serves the VIP without what may be left
            # out (a policy, default forwarded headers) will do, those then say Unsupported;
            # and if none does, why is about what the VIP needs (capacity, an address...).
            probe, decision = lean, self.candidates.decide(key, spec, leaving, lean)
        if self.candidates.awaiting_probe(key, spec, leaving):
            # Devices that would take it have not been probed yet (a cold start): their
            # first status wakes this VIP. Binding now would pile every VIP onto the first
            # device probed, and an error written now would be undone in a second.
            if leaving is None:
                self.unscheduled.add(key)
            return False
        # With a device eligible, the driver's pick runs off the loop while concurrent binds
        # reserve: check its choice again, or else decide again (binds that all decided
        # before any reserved piled every VIP onto one device); then allocate and reserve
        # with no await between. With none eligible nothing awaited: the decision stands.
        chosen = None
        if decision.eligible:
            picked = await self.candidates.pick(probe, decision)
            if picked is not None:
                chosen = self.candidates.recheck(key, spec, picked)
                if chosen is None:
                    self.trigger(key)  # the device filled up (or its address went) meanwhile
                    return False
            else:
                decision = self.candidates.decide(key, spec, leaving, probe)
                chosen = decision.chosen
        address = None
        if chosen is not None:
            address = self.candidates.address(key, spec, chosen, vip, leaving)
        if chosen is None or address is None:
            if chosen is not None:
                reason, message = (
                    "NoEligibleDevice",
                    f"no free address in the addressPool of {chosen.name}",
                )
            else:
                reason, message = decision.reason, decision.explain()
            if leaving is not None:
                self._stuck(key, vip, leaving, message, move=move)
                return False
            self.unscheduled.add(key)
            if self.inventory_version != seen:
                self.trigger(key)  # the inventory changed while we looked: look again
            tree = build(self.views, key, vip, None, "")
            await self._failed(key, vip, tree, reason, message)
            return False
        self.reserved[key] = (chosen.name, address, spec.port, transport(spec.protocol))
        try:
            return await self._write_binding(key, vip, chosen.name, address, leaving, move)
        finally:
            self.reserved.pop(key, None)

    def _probe(self, key: VipKey, vip: Mapping[str, Any], spec: VIPSpec) -> LoadBalancer:
        """The VIP's tree as a driver would get it (its children as the cache holds them now),
        so that only a device whose driver supports what the tree asks for is chosen. A VIP
        without a pool yet is the VIP alone, its session persistence kept (``probe``)."""
        tree = build(self.views, key, vip, None, "")
        if tree.vip_spec is None or not tree.pools:
            return translate.probe(key[0], key[1], spec)
        return translate.load_balancer(tree, spec.address or "")

    def _excluded(self, vip: Mapping[str, Any], spec: VIPSpec) -> str | None:
        """Why a bound VIP's spec no longer allows its device (it moves), or None."""
        device = status_of(vip).get("device")
        if not device or self.views.device(str(device)) is None or is_deleting(vip):
            return None
        return spec_excludes(spec, str(device))

    def _stuck(
        self, key: VipKey, vip: Mapping[str, Any], leaving: str, message: str, *,
        move: str | None = None,
    ) -> None:  # fmt: skip
        """A move with nowhere to go: the VIP stays bound to ``leaving`` (and serves there).

        Unbinding it would report it unscheduled, take its configuration off the device (an
        orphan) and give it a new address: worse than waiting. A failover tries again every
        second; a move asked by the spec (``move``: why) when the inventory changes, and its
        ``Scheduled`` condition says why it waits. A Warning Event says why, once per reason.
        """
        why = move or "NotReady"
        text = (
            f"cannot move off device {leaving} ({why}): {message}; it stays there and moves"
            " as soon as another device can take it"
        )
        if move is not None:
            self.unscheduled.add(key)  # the next inventory change tries again
            condition = Cond(SCHEDULED, False, "MovePending", text)
            spawn(self.reporter.status(dict(vip), desired_status(
                status_of(vip), phase=None, reason=None, message=None, generation=None,
                conditions=[condition])))  # fmt: skip
        if self.stuck.get(key) == message:
            return
        self.stuck[key] = message
        reason = "MovePending" if move is not None else "FailoverPending"
        self.reporter.warn(vip, reason=reason, message=text)

    async def _write_binding(
        self, key: VipKey, vip: Mapping[str, Any], device: str, address: str,
        leaving: str | None, move: str | None = None,
    ) -> bool:  # fmt: skip
        if not await self.reporter.finalizer(dict(vip), present=True):
            return False
        latest = self.views.vip(key) or vip
        if leaving and move:
            reason, message = "Moved", f"moved from device {leaving} to {device}: {move}"
        elif leaving:
            reason, message = "FailedOver", f"moved from device {leaving} (NotReady) to {device}"
        else:
            reason, message = "Scheduled", f"bound to device {device}, address {address}"
        desired = desired_status(
            status_of(latest),
            phase="Pending",
            reason=reason,
            message=f"{message}; waiting for the device's agent to apply it",
            generation=None,
            conditions=[Cond(SCHEDULED, True, reason, message)],
            extra={"device": device, "address": address},
        )
        written = await self.reporter.status(dict(latest), desired)
        if not written:
            self.trigger(key)
            return False
        self.unscheduled.discard(key)
        self.stuck.pop(key, None)
        event = self.reporter.warn if leaving else self.reporter.info
        event(latest, reason=reason, message=message)
        for callback in self.on_bound:
            callback(device)
        return True

    async def _failed(
        self, key: VipKey, vip: Mapping[str, Any], tree: Any, reason: str, message: str
    ) -> None:
        was = (status_of(vip).get("reason"), status_of(vip).get("message"))
        for obj, desired in report.unscheduled(tree, reason, message):
            latest = self.views.latest(obj.snap)
            if latest is None:
                continue
            if obj is not tree.vip and desired.get("phase") == "Error":
                # A child's own problem (said here first: the agent, saying it again once
                # the VIP is placed, would see nothing new to post an Event about).
                before = (status_of(latest).get("phase"), status_of(latest).get("message"))
                if before != ("Error", desired.get("message")):
                    self.reporter.warn(latest, reason=desired["reason"], message=desired["message"])
            await self.reporter.status(latest, desired)
        if was != (reason, message):
            self.reporter.warn(vip, reason=reason, message=message)

"""The inventory as the scheduler sees it from one VIP: candidates with reservations counted.

Part of the binder: the Devices as ``Candidate`` values (bound VIPs, addresses and listeners
in use, per-namespace counts, including the binder's reservations), the scheduler's decision
over them, the re-check after the driver's pick, and whether to wait for Devices not probed
yet (a cold start: binding to the first device probed would pile every VIP onto it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from lbaas.api.device import DevicePhase, DeviceSpec
from lbaas.api.vip import VIPSpec
from lbaas.device_index import normal
from lbaas.drivers.capabilities import why_unsupported
from lbaas.drivers.contract import DeviceHandle
from lbaas.drivers.errors import DriverError
from lbaas.drivers.model import LoadBalancer
from lbaas.drivers.registry import DriverRegistry
from lbaas.placement.addresses import allocate, pool_contains
from lbaas.placement.scheduler import Candidate, Decision, schedule
from lbaas.views import Views, is_deleting, meta_of, spec_of, status_of

log = logging.getLogger(__name__)

VipKey = tuple[str, str]
SELECT_TIMEOUT = 5.0
"""Seconds a driver's ``select_device`` may take (it runs in a thread, off any Lease)."""
Reservations = dict[VipKey, tuple[str, str, int, str]]
"""VIP → (device, address, port, transport) while it is being bound."""
"""VIP → (device, address, port) chosen but not yet written."""


class CandidateView:
    """Candidates for a VIP, computed from the views and the binder's reservations."""

    def __init__(
        self,
        views: Views,
        drivers: DriverRegistry,
        reserved: Reservations,
        *,
        probe_grace: float,
        wake: Callable[[], None],
    ) -> None:
        self.views = views
        self.drivers = drivers
        self.reserved = reserved
        self.probe_grace = probe_grace
        self._wake_up = wake
        self._specs: dict[tuple[str, Any], DeviceSpec | None] = {}
        self._first_seen: dict[str, float] = {}
        self._wake: asyncio.TimerHandle | None = None

    def awaiting_probe(self, key: VipKey, spec: VIPSpec, exclude: str | None) -> bool:
        """Whether a device not probed yet, but young enough to be probed soon, would take
        the VIP once it is Ready (a Device no agent ever probes is not waited for: after
        ``probe_grace`` it is passed over, and the controller marks it NoAgent)."""
        now = time.monotonic()
        if all(status_of(d).get("phase") is not None for d in self.views.devices()):
            return False  # the usual case, answered without building candidates
        unprobed = []
        for c in self.for_vip(key, listeners=bool(spec.address)):
            if c.phase is not None or c.name == exclude:
                continue
            first = self._first_seen.setdefault(c.name, now)
            if now - first < self.probe_grace:
                unprobed.append(dataclasses.replace(c, phase=DevicePhase.READY))
                self._wake_at(first + self.probe_grace)
        if not unprobed:
            return False
        labels = self.views.namespace_labels(key[0])
        return bool(schedule(spec, key[0], labels, unprobed, lambda _c: None).eligible)

    def _wake_at(self, when: float) -> None:
        """Wake the waiting VIPs once at ``when`` (a grace period ends)."""
        if self._wake is None or self._wake.when() > when:
            if self._wake is not None:
                self._wake.cancel()
            loop = asyncio.get_running_loop()
            self._wake = loop.call_at(when - time.monotonic() + loop.time(), self._woken)

    def _woken(self) -> None:
        self._wake = None
        self._wake_up()

    def recheck(self, key: VipKey, spec: VIPSpec, picked: Candidate) -> Candidate | None:
        fresh = self.for_vip(key, only=picked.name, listeners=bool(spec.address))
        labels = self.views.namespace_labels(key[0])
        again = schedule(spec, key[0], labels, fresh, lambda _c: None)
        return again.eligible[0] if again.eligible else None

    def decide(
        self, key: VipKey, spec: VIPSpec, exclude: str | None, probe: LoadBalancer
    ) -> Decision:
        """The scheduler's decision for ``key``; ``probe`` is its tree as the driver would see
        it (what it asks of a device: its features)."""
        candidates = [
            c for c in self.for_vip(key, listeners=bool(spec.address)) if c.name != exclude
        ]

        def driver_check(c: Candidate) -> str | None:
            try:
                return why_unsupported(self.drivers.get(c.spec.driver), c.spec.config, probe)
            except DriverError as exc:
                return exc.user_message

        labels = self.views.namespace_labels(key[0])
        return schedule(spec, key[0], labels, candidates, driver_check)

    def _device_spec(self, device: Mapping[str, Any]) -> DeviceSpec | None:
        cache_key = (str(meta_of(device).get("name")), meta_of(device).get("generation"))
        if cache_key not in self._specs:
            try:
                self._specs[cache_key] = DeviceSpec.model_validate(spec_of(device))
            except ValueError:
                self._specs[cache_key] = None
        return self._specs[cache_key]

    def for_vip(
        self, key: VipKey, only: str | None = None, *, listeners: bool = True
    ) -> list[Candidate]:
        """Every Device (or just ``only``) as a candidate for ``key``: its figures from the
        index views (``key``'s own share left out) plus the binder's reservations.

        ``listeners=False`` leaves each device's listener map empty: the scheduler reads it
        only for a VIP with an explicit address, and building it per device for every VIP
        bound was the binder's largest cost at a cold start of 1,000 VIPs.
        """
        found = []
        by_device: dict[str, dict[VipKey, tuple[str, int, str]]] = {}
        for k, (d, a, p, t) in self.reserved.items():  # one pass, not one per device
            if k != key:
                by_device.setdefault(d, {})[k] = (normal(a) or a, p, t)
        for device in self.views.devices():
            name = str(meta_of(device)["name"])
            if (only is not None and name != only) or is_deleting(device):
                continue
            spec = self._device_spec(device)
            if spec is None:
                continue
            reserved = by_device.get(name, {})
            used = self.views.used_addresses(name, exclude=key) | {
                a for a, _, _ in reserved.values()
            }
            held: dict[tuple[str, int, str], str] = {}
            if listeners:
                held = {
                    a: f"{k[0]}/{k[1]}" for a, k in self.views.listeners(name, exclude=key).items()
                }
                held.update({ap: f"{k[0]}/{k[1]}" for k, ap in reserved.items()})
            found.append(
                Candidate(
                    name=name,
                    spec=spec,
                    labels=meta_of(device).get("labels") or {},
                    phase=status_of(device).get("phase"),
                    vip_count=self.views.bound_count(name, exclude=key) + len(reserved),
                    used_addresses=frozenset(used),
                    namespace_vips=self.views.namespace_count(name, key[0], exclude=key)
                    + sum(1 for k in reserved if k[0] == key[0]),
                    listeners=held,
                )
            )
        return found

    async def pick(self, probe: LoadBalancer, decision: Decision) -> Candidate | None:
        """The device a driver's ``select_device`` prefers among the eligible, or None (no
        preference: the caller decides again after this await, counting what concurrent
        binds reserved meanwhile)."""
        if not decision.eligible:
            return None
        by_driver: dict[str, list[Candidate]] = {}
        for c in decision.eligible:
            by_driver.setdefault(c.spec.driver, []).append(c)
        for driver_name in sorted(by_driver):
            group = by_driver[driver_name]
            handles = [
                DeviceHandle(c.name, driver=c.spec.driver, config=c.spec.config, labels=c.labels)
                for c in group
            ]
            try:
                driver = self.drivers.get(driver_name)
                picked = await asyncio.wait_for(
                    asyncio.to_thread(functools.partial(driver.select_device, probe, handles)),
                    SELECT_TIMEOUT,
                )
            except Exception as exc:
                log.warning("select_device of %s failed: %s", driver_name, exc)
                picked = None
            if picked is not None:
                return next((c for c in group if c.name == picked.name), None)
        return None

    def address(
        self,
        key: VipKey,
        spec: VIPSpec,
        chosen: Candidate,
        vip: Mapping[str, Any],
        leaving: str | None,
    ) -> str | None:
        if spec.address:
            return spec.address
        current = status_of(vip).get("address")
        if (
            leaving
            and current
            and pool_contains(chosen.spec.address_pool, current)
            and current not in chosen.used_addresses
        ):
            return str(current)  # failover keeps the address when the new pool has it
        return allocate(chosen.spec.address_pool, chosen.used_addresses)

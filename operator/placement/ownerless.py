"""Devices no agent drives: the controller says so, since nobody else can.

An agent reports its own Devices' state. When the agent dies and no other may take the Device
(its ``agentSelector`` matches no live agent), or no agent ever took it, the Device would keep
saying ``Ready`` and its VIPs ``Active``/``ONLINE``: a lie. The controller watches the device
Leases (an informer in the lease namespace) and observes them as the agents do (expiry by the
local clock, never by comparing hosts' clocks). A Device without a live Lease for a lease
duration plus a renew period turns ``NotReady`` reason ``NoAgent`` (which also starts its
failover clock), and its VIPs report ``DeviceNotReady``, ``OFFLINE``, members ``UNKNOWN``.
The next agent to take the Device writes the truth again.
"""

from __future__ import annotations

import asyncio
import logging
import time

from lbaas.api.device import DevicePhase
from lbaas.config import OperatorSettings
from lbaas.drivers.capabilities import described, missing
from lbaas.drivers.model import LoadBalancer
from lbaas.kube.informer import Informer
from lbaas.leases import LeaseRecord, Observer
from lbaas.reporter import Reporter
from lbaas.status import PROGRAMMED, READY, Cond, condition, desired_status, now
from lbaas.trees import l7, report, translate
from lbaas.trees.assemble import build
from lbaas.views import Views, is_deleting, meta_of, status_of

log = logging.getLogger(__name__)

NO_AGENT = "NoAgent"


class Ownerless:
    """Finds Devices whose Lease no agent holds, and reports them and their VIPs."""

    def __init__(
        self,
        *,
        views: Views,
        reporter: Reporter,
        leases: Informer,
        settings: OperatorSettings,
    ) -> None:
        self.views = views
        self.reporter = reporter
        self.leases = leases
        self.settings = settings
        self.grace = settings.lease_duration + settings.lease_renew_period
        self._observer = Observer()
        self._seen_device: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._started = time.monotonic()
        self._task = asyncio.create_task(self._loop(), name="ownerless devices")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.lease_renew_period)
            for name in self.ownerless():
                await self.report(name)

    def ownerless(self) -> list[str]:
        """Devices that no live agent has held for the grace period."""
        at = time.monotonic()
        records = [LeaseRecord.from_wire(obj) for obj in self.leases.cache.values()]
        self._observer.observe_all(records, at)
        held: dict[str, float] = {}  # device → since when its holder may be gone
        for record in records:
            if record.device and record.holder:
                expires = self._observer.expires_at(record, self.settings.lease_duration)
                held[record.device] = expires
        found = []
        for device in self.views.devices():
            name = str(meta_of(device)["name"])
            first = self._seen_device.setdefault(name, at)
            if is_deleting(device) and not self.views.bound_vips(name, with_deleting=True):
                continue
            until = held.get(name)
            if until is not None and at < until + self.settings.lease_renew_period:
                continue  # an agent holds it (or may still)
            if at - max(first, self._started) < self.grace:
                continue  # give agents time to take it
            found.append(name)
        return found

    async def report(self, name: str) -> None:
        device = self.views.device(name)
        if device is None:
            return
        status = status_of(device)
        message = (
            "no agent owns this device: its agent stopped, or none matches its agentSelector;"
            " start an agent it accepts"
        )
        if status.get("reason") != NO_AGENT:
            log.warning("device %s: %s", name, message)
            desired = desired_status(
                status,
                phase=DevicePhase.NOT_READY,
                reason=NO_AGENT,
                message=message,
                generation=meta_of(device).get("generation"),
                conditions=[Cond(READY, False, NO_AGENT, message)],
                extra={
                    "agent": "",
                    "notReadySince": status.get("notReadySince") or now(),
                },
            )
            if await self.reporter.status(device, desired):
                self.reporter.warn(device, reason=NO_AGENT, message=message)
        features: list[str] | None = status.get("features")
        for key in sorted(self.views.bound_vips(name)):
            vip = self.views.vip(key)
            if vip is None:
                continue
            tree = build(self.views, key, vip, None, name)
            if tree.vip_spec is None:
                continue
            address = str(tree.vip_spec.address or status_of(vip).get("address") or "")
            lb = translate.load_balancer(tree, address)
            if features is not None:  # what its agent left out for lack of them, say so again
                lb = l7.fit(tree, lb, lambda trial: _lacking(trial, features), device=name)
            # Programmed and every object's status written for its current spec: the device
            # held this tree when its agent went. A spec changed since was never applied (its
            # agent may have died applying it): Pending, never Active at the new generation.
            programmed = condition(status_of(vip), PROGRAMMED).get("status") == "True"
            if programmed and not tree.unobserved():
                pairs = report.active(
                    tree, lb, name, health=None, device_ready=False, device_message=message
                )
            else:
                why = f"device {name} is not ready: {message}"
                pairs = report.failed(tree, "Pending", "DeviceNotReady", why)
            for obj, desired_doc in pairs:
                await self.reporter.status(obj.snap, desired_doc)


def _lacking(lb: LoadBalancer, features: list[str]) -> str | None:
    """What ``lb`` asks for beyond ``features`` (a Device's status.features), as a reason."""
    lacking = missing(lb, features)
    return f"lacks {described(lacking)}" if lacking else None

"""The operator process: kopf runs it, the roles do the work.

Pipeline (who reads what, who writes what)::

    API server ──list/watch──▶ Informers (lbaas.kube.informer) ──▶ Views (lbaas.views)
                                                                   │ changes
                           ┌───────────────────────────────────────┴──────────────┐
                           ▼                                                      ▼
     Controller (leader Lease): Binder ─ Inventory ─ Orphans      Agent (device Leases):
       placement: scheduler, addresses, policy                    TreeLoops ─▶ TreeReconciler
                           │                                        ─▶ DeviceWorker ─▶ driver
                           └──────────────▶ Reporter ◀──────────────────────┘
                                  (the only writer of statuses, finalizers, Events)

kopf provides the process: signals and graceful shutdown, logging, the liveness endpoint,
credentials (``on.login``) and the startup/cleanup hooks below. It handles no object of ours:
its per-object machinery (finalizers, diff-base annotations, one worker per object, and
indices whose readiness gate is quadratic in the number of objects) cost more than the
operator itself at 13,000 objects (issue 13), so the informers feed the roles directly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from lbaas.agents.agent import Agent
from lbaas.agents.election import LeaderElector
from lbaas.agents.ownership import DeviceOwnership
from lbaas.api.meta import LabelSelector
from lbaas.config import OperatorSettings
from lbaas.controller import Controller
from lbaas.drivers.registry import DriverRegistry
from lbaas.gauges import FleetGauges
from lbaas.kube.client import Kube
from lbaas.kube.informer import Informer
from lbaas.kube.resources import (
    DEVICES,
    ENDPOINT_SLICES,
    LEASES,
    NAMESPACES,
    SERVICES,
    TREE_KINDS,
    Resource,
)
from lbaas.leases import KIND_DEVICE, KIND_LABEL, LeaseStore
from lbaas.reporter import Reporter
from lbaas.views import Views, is_deleting, spec_of

log = logging.getLogger(__name__)

Role = Literal["run", "controller", "agent"]
GAUGE_PERIOD = 2.0


def informers_for(kube: Kube, settings: OperatorSettings, role: Role) -> dict[Resource, Informer]:
    """What a role watches: trees (in the watched namespaces), Devices, Namespaces; the
    controller also Services (annotations kept: they configure the load balancer) and their
    EndpointSlices, unless ``services`` is off (every informer must sync before anything
    acts, so one the operator may not list would stall all of it)."""
    informers: dict[Resource, Informer] = {}
    namespaces: list[str | None] = list(settings.namespaces) or [None]
    if len(namespaces) > 1:
        raise ValueError("watching several namespaces needs one informer per namespace")
    for resource in TREE_KINDS:
        informers[resource] = Informer(kube, resource, namespace=namespaces[0])
    informers[DEVICES] = Informer(kube, DEVICES)
    if role in ("run", "controller"):
        informers[NAMESPACES] = Informer(kube, NAMESPACES)
        informers[LEASES] = Informer(
            kube,
            LEASES,
            namespace=settings.lease_namespace,
            selector=f"{KIND_LABEL}={KIND_DEVICE}",
            keep_annotations=True,
        )
    if role in ("run", "controller") and settings.services:
        informers[SERVICES] = Informer(
            kube, SERVICES, namespace=namespaces[0], keep_annotations=True
        )
        informers[ENDPOINT_SLICES] = Informer(kube, ENDPOINT_SLICES, namespace=namespaces[0])
    return informers


@dataclass
class Process:
    """The parts of one operator process, started by ``start`` and stopped by ``stop``."""

    role: Role
    settings: OperatorSettings
    kube: Kube
    informers: dict[Resource, Informer]
    views: Views
    reporter: Reporter
    drivers: DriverRegistry = field(default_factory=DriverRegistry)
    controller: Controller | None = None
    agent: Agent | None = None
    elector: LeaderElector | None = None
    ownership: DeviceOwnership | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    @classmethod
    def build(cls, role: Role, settings: OperatorSettings) -> Process:
        kube = Kube(settings.api_connections)
        informers = informers_for(kube, settings, role)
        views = Views(informers)
        reporter = Reporter(
            kube, informers, event_namespace=settings.lease_namespace, instance=settings.agent_id
        )
        reporter.redact.install()
        return cls(role, settings, kube, informers, views, reporter)

    async def start(self) -> None:
        for informer in self.informers.values():
            informer.start()
        await self.views.wait_synced()
        log.info("%s: caches synced (%d objects)", self.role, self.objects())
        self.tasks.append(asyncio.create_task(self.gauges(), name="gauges"))
        store = LeaseStore(self.kube.client, self.settings.lease_namespace)
        s = self.settings
        if self.role in ("run", "controller"):
            self.controller = Controller(
                settings=s,
                views=self.views,
                reporter=self.reporter,
                drivers=self.drivers,
                kube=self.kube,
            )
            self.elector = LeaderElector(
                store,
                s.agent_id,
                lease_duration=s.lease_duration,
                renew_period=s.lease_renew_period,
                on_started_leading=self.controller.start_leading,
                on_stopped_leading=self.controller.stop_leading,
            )
            self.tasks.append(asyncio.create_task(self.elector.run(), name="leader election"))
        if self.role in ("run", "agent"):

            def ownership(agent: Agent) -> DeviceOwnership:
                self.ownership = DeviceOwnership(
                    store,
                    s.agent_id,
                    labels=s.agent_labels,
                    devices=self.devices,
                    on_acquired=agent.on_acquired,
                    on_release=agent.on_release,
                    on_lost=agent.on_lost,
                    lease_duration=s.lease_duration,
                    renew_period=s.lease_renew_period,
                    driver_timeout=s.driver_timeout,
                )
                return self.ownership

            self.agent = Agent(
                settings=s,
                kube=self.kube,
                views=self.views,
                reporter=self.reporter,
                drivers=self.drivers,
                gate=ownership,
            )
            assert self.ownership is not None
            self.tasks.append(asyncio.create_task(self.ownership.run(), name="device ownership"))

    def devices(self) -> dict[str, LabelSelector | None]:
        """The Devices an agent may own: name → agentSelector."""
        found: dict[str, LabelSelector | None] = {}
        for device in self.views.devices():
            name = str(device["metadata"]["name"])
            if is_deleting(device) and not self.views.bound_vips(name, with_deleting=True):
                continue
            raw = spec_of(device).get("agentSelector")
            try:
                found[name] = LabelSelector.model_validate(raw) if raw else None
            except ValueError:
                continue
        return found

    def objects(self) -> int:
        return sum(len(i.cache) for i in self.informers.values())

    async def gauges(self) -> None:
        """The fleet gauges (lbaas.gauges: objects, phases, devices, Leases) every few seconds."""
        fleet = FleetGauges(self.views, self.informers.get(LEASES))
        while True:
            await asyncio.sleep(GAUGE_PERIOD)
            fleet.update()

    async def stop(self) -> None:
        """Graceful: Leases are released at once, so others take over within a renew period.

        The controller stops first: while it leads, Devices whose agent lets go would look
        ownerless to it for a moment.
        """
        started = time.monotonic()
        if self.elector is not None:
            await self.elector.release()
        if self.ownership is not None:
            await self.ownership.stop()
        log.info("%s: leases released in %.2fs", self.role, time.monotonic() - started)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.agent is not None:
            await self.agent.stop()
        if self.controller is not None:
            await self.controller.stop_leading()
        await self.reporter.drain()
        for informer in self.informers.values():
            informer.stop()
        self.drivers.close()
        self.kube.close()

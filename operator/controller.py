"""The controller role: the inventory and placement side, one leader at a time.

While this process leads (the ``lbaas-controller`` Lease), it binds VIPs to Devices
(:class:`~lbaas.placement.binder.Binder`), keeps Devices' finalizers, counts and failover
(:class:`~lbaas.placement.inventory.Inventory`) and speaks for children without a parent
(:class:`~lbaas.trees.orphans.Orphans`) and generates the VIP trees of LoadBalancer
Services (:class:`~lbaas.services.controller.ServiceController`) and of Gateways
(:class:`~lbaas.gateway.controller.GatewayController`). On taking the lead it
lists VIPs and Devices again, so it acts on everything the previous leader wrote, then
queues every VIP that needs a device. It reacts to informer changes only while it leads.
"""

from __future__ import annotations

import logging
from typing import Any

from lbaas.config import OperatorSettings
from lbaas.drivers.registry import DriverRegistry
from lbaas.gateway.controller import GatewayController
from lbaas.kinds import CHILD_KINDS, children_of
from lbaas.kube.client import Kube
from lbaas.kube.informer import Change
from lbaas.kube.resources import DEVICES, GATEWAYS, LEASES, SERVICES, VIPS
from lbaas.placement.binder import Binder
from lbaas.placement.inventory import Inventory
from lbaas.placement.ownerless import Ownerless
from lbaas.reporter import Reporter
from lbaas.services.controller import ServiceController
from lbaas.trees.orphans import Orphans
from lbaas.views import Views, is_deleting, meta_of, spec_of, status_of

log = logging.getLogger(__name__)

_ORPHAN_REASONS = ("WaitingForParent", "ParentNotFound")
"""What the orphans watcher writes: a child saying so needs no look again."""


class Controller:
    """Placement and inventory, active only while leading."""

    def __init__(
        self,
        *,
        settings: OperatorSettings,
        views: Views,
        reporter: Reporter,
        drivers: DriverRegistry,
        kube: Kube | None = None,
    ) -> None:
        self.settings = settings
        self.views = views
        self.reporter = reporter
        self.binder = Binder(views=views, reporter=reporter, drivers=drivers, settings=settings)
        self.inventory = Inventory(views=views, reporter=reporter, binder=self.binder)
        self.orphans = Orphans(views=views, reporter=reporter, settings=settings)
        leases = views.informers.get(LEASES)
        self.ownerless = (
            Ownerless(views=views, reporter=reporter, leases=leases, settings=settings)
            if leases is not None
            else None
        )
        self.services = (
            ServiceController(kube=kube, views=views, reporter=reporter, settings=settings)
            if kube is not None and settings.services and SERVICES in views.informers
            else None
        )
        self.gateway = (
            GatewayController(kube=kube, views=views, reporter=reporter, settings=settings)
            if kube is not None and GATEWAYS in views.informers
            else None
        )
        self.leading = False
        views.subscribe(self.on_change)

    async def start_leading(self) -> None:
        log.info("leading: binding VIPs and keeping the inventory")
        for resource in (VIPS, DEVICES):
            informer = self.views.informers.get(resource)
            if informer is not None:
                await informer.relist()
        self.leading = True
        self.binder.start(concurrency=min(16, self.settings.api_connections))
        self.inventory.start()
        if self.ownerless is not None:
            self.ownerless.start()
        for vip in self.views.vips():
            key = (str(meta_of(vip)["namespace"]), str(meta_of(vip)["name"]))
            if self.binder.needs_binding(vip) or (
                is_deleting(vip) and not status_of(vip).get("device")
            ):
                self.binder.trigger(key)
        for kind in CHILD_KINDS:
            for obj in self._all(kind):
                meta = meta_of(obj)
                if self.views.missing_parent(kind, str(meta["namespace"]), spec_of(obj)):
                    self.orphans.check(kind, str(meta["namespace"]), str(meta["name"]))
        if self.services is not None:
            self.services.start()
        if self.gateway is not None:
            self.gateway.start()

    def _all(self, kind: str) -> list[dict[str, Any]]:
        informer = next((i for r, i in self.views.informers.items() if r.kind == kind), None)
        return list(informer.cache.values()) if informer else []

    async def stop_leading(self) -> None:
        if not self.leading:
            return
        log.info("no longer leading")
        self.leading = False
        self.orphans.stop()
        if self.ownerless is not None:
            await self.ownerless.stop()
        if self.services is not None:
            await self.services.stop()
        if self.gateway is not None:
            await self.gateway.stop()
        await self.binder.stop()
        await self.inventory.stop()

    # ---- what each change means for placement ------------------------------------------------

    def on_change(self, change: Change) -> None:
        if not self.leading:
            return
        if self.services is not None:
            self.services.on_change(change)
        if self.gateway is not None:
            self.gateway.on_change(change)
        kind = change.resource.kind
        if kind == "VIP":
            self._vip_changed(change)
        elif kind in CHILD_KINDS:
            self._child_changed(change)
        elif kind == "Device":
            self._device_changed(change)
        elif kind == "Namespace" and (
            meta_of(change.old).get("labels") != meta_of(change.new).get("labels")
        ):
            self.binder.inventory_changed()

    def _vip_changed(self, change: Change) -> None:
        key, old, new = change.key, change.old, change.new
        old_device = status_of(old).get("device")
        new_device = status_of(new).get("device")
        if new is None:
            self.binder.unscheduled.discard(key)
            self.orphans.check_children_of("VIP", *key)
        elif (
            self.binder.needs_binding(new)
            or (is_deleting(new) and not new_device)
            or key in self.binder.unscheduled
            or (new_device and spec_of(new).get("deviceRef") not in (None, new_device))
        ):
            self.binder.trigger(key)  # the last: a bound VIP whose deviceRef names another
        if old is None and new is not None:
            self.orphans.check_children_of("VIP", *key)
        if old_device and (new is None or old_device != new_device or is_deleting(new)):
            self.inventory.count_later(str(old_device))
            self.binder.inventory_changed()  # capacity and an address were freed
            device = self.views.device(str(old_device))
            if device is not None and is_deleting(device):
                self.inventory.device_changed(str(old_device))
        if new_device:
            self.inventory.count_later(str(new_device))

    def _child_changed(self, change: Change) -> None:
        kind, (namespace, name) = change.resource.kind, change.key
        if change.new is None:
            if children_of(kind):
                self.orphans.check_children_of(kind, namespace, name)
            return
        old_spec, new_spec = spec_of(change.old), spec_of(change.new)
        field = str(CHILD_KINDS[kind].parent_field)
        if change.old is None or old_spec.get(field) != new_spec.get(field):
            self.orphans.check(kind, namespace, name)
            if children_of(kind):
                self.orphans.check_children_of(kind, namespace, name)
            vip_key = self.views.vip_key_of(kind, namespace, new_spec)
            if vip_key is not None and vip_key in self.binder.unscheduled:
                self.binder.trigger(vip_key)  # its status says why it waits
        elif status_of(change.new).get("reason") not in _ORPHAN_REASONS and (
            self.views.missing_parent(kind, namespace, new_spec)
        ):
            # Another writer (an agent finishing a tree its parent just left) wrote over the
            # child's Pending: say again what it waits for.
            self.orphans.check(kind, namespace, name)

    def _device_changed(self, change: Change) -> None:
        name = change.key[1]
        self.inventory.device_changed(name)
        old, new = change.old, change.new
        if (
            old is None
            or new is None
            or meta_of(old).get("generation") != meta_of(new).get("generation")
            or status_of(old).get("phase") != status_of(new).get("phase")
            or meta_of(old).get("labels") != meta_of(new).get("labels")
            or is_deleting(old) != is_deleting(new)
        ):
            self.binder.inventory_changed()
        if new is None:
            for key in self.views.bound_vips(name, with_deleting=True):
                self.binder.trigger(key)  # its device is gone: bind it elsewhere

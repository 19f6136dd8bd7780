"""The Gateway API controller: keeps Gateways' VIP trees and every status in step.

It runs in the controller role, next to the Services controller (one writer at a time: the
leader). One queue, keyed by (kind, namespace, name), with one reconcile per key at a time:

- a ``GatewayClass`` of ours: ``Accepted`` and ``supportedFeatures``
  (:class:`~lbaas.gateway.routes.StatusWriter`);
- a ``Gateway``: its trees and status (:class:`~lbaas.gateway.gateways.GatewayReconciler`);
- a route (``TCPRoute``, ``TLSRoute``, ``UDPRoute``): its ``status.parents``.

What a change touches (:meth:`GatewayController.on_change`): a class, its Gateways; a
ConfigMap of the operator's namespace, the classes whose parameters it is; a Device, every
class (its features); a Gateway, itself and its routes; a route, itself, its Gateways and their
other routes (which one a port serves depends on their ages); a Service, its routes and their
Gateways; an EndpointSlice, the Gateways of its Service's routes; a ReferenceGrant, the routes
naming a Service of its namespace; a Namespace's labels, the routes in it; a generated
object, the Gateway that owns it. Status-only changes (our own writes among them) touch
nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from lbaas import metrics
from lbaas.config import OperatorSettings
from lbaas.gateway import classes
from lbaas.gateway.gateways import GatewayReconciler
from lbaas.gateway.index import RouteIndex
from lbaas.gateway.routes import StatusWriter
from lbaas.gateway.spec import Ref, ref_of
from lbaas.gateway.world import CachedWorld
from lbaas.generated.objects import GeneratedObjects, matters
from lbaas.kinds import BY_KIND
from lbaas.kube.client import Kube
from lbaas.kube.informer import Change, Key, Obj
from lbaas.kube.resources import GATEWAY_CLASSES, GATEWAYS, ROUTES
from lbaas.reporter import Reporter
from lbaas.views import GATEWAY_LABEL, SLICE_SERVICE_LABEL, Views, meta_of, spec_of, status_of
from lbaas.workqueue import KeyedQueue

log = logging.getLogger(__name__)

MANAGER = "lbaas-gateway"
RETRY_DELAY = 0.5
"""Seconds before a reconcile whose status write met a newer object runs again."""
Item = tuple[str, str, str]  # kind, namespace, name
_META = ("generation", "labels", "deletionTimestamp", "finalizers")


def _changed(change: Change, *fields: str) -> bool:
    """Created, deleted, or one of ``fields`` of its metadata changed."""
    if change.old is None or change.new is None:
        return True
    old, new = meta_of(change.old), meta_of(change.new)
    return any(old.get(f) != new.get(f) for f in fields)


class GatewayController:
    def __init__(
        self, *, kube: Kube, views: Views, reporter: Reporter, settings: OperatorSettings
    ) -> None:
        self.views = views
        self.route_resources = [r for r in ROUTES if r in views.informers]
        self.world = CachedWorld(views, frozenset(r.kind for r in self.route_resources))
        self.index = RouteIndex()
        self.objects = GeneratedObjects(kube, views, manager=MANAGER, writes=metrics.GATEWAY_WRITES)
        self.gateways = GatewayReconciler(
            world=self.world,
            reporter=reporter,
            objects=self.objects,
            namespace=settings.lease_namespace,
            routes_of=self.routes_of,
        )
        self.statuses = StatusWriter(
            world=self.world,
            reporter=reporter,
            namespace=settings.lease_namespace,
            routes_of=self.routes_of,
        )
        self._queue: KeyedQueue[Item] = KeyedQueue(
            self.reconcile, name="gateway", backoff_max=settings.retry_backoff_max
        )

    # ---- the queue ---------------------------------------------------------------------------

    def start(self, concurrency: int = 4) -> None:
        self.index.clear()
        for resource in self.route_resources:
            for route in self.views.informers[resource].cache.values():
                self.index.add(route)
                self.trigger(ref_of(route))
        self._queue.start(concurrency)
        for gateway_class in self._all(GATEWAY_CLASSES):
            self.trigger(("GatewayClass", "", str(meta_of(gateway_class)["name"])))
        for gateway in self._all(GATEWAYS):
            self.trigger(("Gateway", *_key(gateway)))
        for namespace, value in self.views.sources_with_generated(GATEWAY_LABEL):
            for obj in self.views.generated(namespace, value, GATEWAY_LABEL)[:1]:
                self._trigger_owner(obj)

    async def stop(self) -> None:
        await self._queue.stop()
        self.objects.forget()

    def trigger(self, item: Item | Ref) -> None:
        if isinstance(item, Ref):
            item = (item.kind, item.namespace, item.name)
        self._queue.add(item)

    def _all(self, resource: Any) -> list[Obj]:
        informer = self.views.informers.get(resource)
        return list(informer.cache.values()) if informer is not None else []

    def routes_of(self, key: Key) -> list[Obj]:
        """The routes whose parentRefs name the Gateway ``key``."""
        found = (self.world.get(r.kind, r.namespace, r.name) for r in self.index.of_gateway(key))
        return [r for r in found if r is not None]

    async def reconcile(self, item: Item) -> None:
        kind, namespace, name = item
        if kind == "GatewayClass":
            done = await self.statuses.gateway_class(name)
        elif kind == "Gateway":
            done = await self.gateways.reconcile((namespace, name))
        else:
            done = await self.statuses.route(Ref(kind, namespace, name))
        if not done:  # a write lost a race with another writer: again, once the watch caught up
            self._queue.add_after(item, RETRY_DELAY)

    # ---- what a change means -----------------------------------------------------------------

    def on_change(self, change: Change) -> None:
        kind, (namespace, name) = change.resource.kind, change.key
        if kind == "GatewayClass":
            self.trigger(("GatewayClass", "", name))
            if _changed(change, "generation"):
                self._gateways_of_classes({name})
        elif kind == "ConfigMap":
            self._config_map(namespace, name)
        elif kind == "Device" and self._device_changed(change):
            for gateway_class in self._all(GATEWAY_CLASSES):
                if classes.is_ours(gateway_class):
                    self.trigger(("GatewayClass", "", str(meta_of(gateway_class)["name"])))
        elif kind == "Gateway":
            if _changed(change, *_META):
                self.trigger(("Gateway", namespace, name))
                self._routes(self.index.of_gateway((namespace, name)), gateways=False)
        elif change.resource in self.route_resources:
            self._route(change)
        elif kind == "Service":
            ports = [spec_of(o).get("ports") for o in (change.old, change.new)]
            if change.old is None or change.new is None or ports[0] != ports[1]:
                self._routes(self.index.of_service((namespace, name)))
        elif kind == "EndpointSlice":
            for obj in (change.old, change.new):
                service = (meta_of(obj).get("labels") or {}).get(SLICE_SERVICE_LABEL)
                if service:
                    self._routes(self.index.of_service((namespace, str(service))), routes=False)
        elif kind == "ReferenceGrant":
            self._routes(self.index.with_backends_in(namespace))
        elif kind == "Namespace" and _changed(change, "labels"):
            self._routes(self.index.in_namespace(name))
        elif kind in BY_KIND:
            if change.new is None:
                self.objects.gone(str(meta_of(change.old).get("uid")))
            if matters(change):
                for obj in (change.old, change.new):
                    self._trigger_owner(obj)

    def _route(self, change: Change) -> None:
        ref = Ref(change.resource.kind, *change.key)
        before = self.index.gateways_of(ref)
        self.index.update(ref, change.new)
        if not _changed(change, "generation", "deletionTimestamp"):
            return  # a status write
        self.trigger(ref)
        for key in before | self.index.gateways_of(ref):
            self.trigger(("Gateway", *key))
            self._routes(self.index.of_gateway(key), gateways=False)

    def _routes(self, refs: Iterable[Ref], *, routes: bool = True, gateways: bool = True) -> None:
        for ref in refs:
            if routes:
                self.trigger(ref)
            if gateways:
                for key in self.index.gateways_of(ref):
                    self.trigger(("Gateway", *key))

    def _gateways_of_classes(self, names: set[str]) -> None:
        for gateway in self._all(GATEWAYS):
            if spec_of(gateway).get("gatewayClassName") in names:
                self.trigger(("Gateway", *_key(gateway)))

    def _config_map(self, namespace: str, name: str) -> None:
        named = set()
        for gateway_class in self._all(GATEWAY_CLASSES):
            ref = spec_of(gateway_class).get("parametersRef") or {}
            if ref.get("kind") == "ConfigMap" and (ref.get("namespace"), ref.get("name")) == (
                namespace,
                name,
            ):
                named.add(str(meta_of(gateway_class)["name"]))
                self.trigger(("GatewayClass", "", str(meta_of(gateway_class)["name"])))
        self._gateways_of_classes(named)

    @staticmethod
    def _device_changed(change: Change) -> bool:
        old, new = change.old, change.new
        return _changed(change, "labels", "deletionTimestamp") or (
            status_of(old).get("features") != status_of(new).get("features")
        )

    def _trigger_owner(self, obj: Mapping[str, Any] | None) -> None:
        """The Gateway a generated object names as its controller."""
        if not (meta_of(obj).get("labels") or {}).get(GATEWAY_LABEL):
            return
        for ref in meta_of(obj).get("ownerReferences") or ():
            if ref.get("kind") == "Gateway" and ref.get("controller"):
                self.trigger(("Gateway", str(meta_of(obj)["namespace"]), str(ref.get("name"))))


def _key(obj: Mapping[str, Any]) -> Key:
    return (str(meta_of(obj).get("namespace") or ""), str(meta_of(obj).get("name")))

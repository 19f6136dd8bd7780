"""A route's status and a GatewayClass's status: computed from the caches, then written.

A route's ``status.parents`` has an entry per parentRef naming a Gateway of this operator's
classes (:mod:`lbaas.gateway.status`); it is computed from the Gateway's listeners and all its
routes (which of them a port serves depends on their ages), so it is recomputed whenever the
Gateway, a sibling route, a backend Service or a ReferenceGrant changes. A GatewayClass of ours
gets ``Accepted`` and ``supportedFeatures`` (:mod:`lbaas.gateway.classes`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from lbaas.gateway import classes, listeners
from lbaas.gateway.attach import Bindings, bind, partially_invalid
from lbaas.gateway.backends import resolve
from lbaas.gateway.spec import CONTROLLER_NAME, GROUP, Ref, parent_refs
from lbaas.gateway.status import parent_entry, route_parents
from lbaas.gateway.world import CachedWorld
from lbaas.kube.informer import Key, Obj
from lbaas.reporter import Reporter
from lbaas.views import spec_of, status_of


class StatusWriter:
    """Route and GatewayClass statuses."""

    def __init__(
        self,
        *,
        world: CachedWorld,
        reporter: Reporter,
        namespace: str,
        routes_of: Callable[[Key], Sequence[Obj]],
    ) -> None:
        self.world = world
        self.reporter = reporter
        self.namespace = namespace
        self.routes_of = routes_of

    def _ours(self, gateway: Obj | None) -> bool:
        name = str(spec_of(gateway).get("gatewayClassName") or "")
        return gateway is not None and classes.is_ours(self.world.get("GatewayClass", "", name))

    async def route(self, ref: Ref) -> bool:
        """Write the route's ``status.parents``; False when it changed meanwhile."""
        route = self.world.get(ref.kind, ref.namespace, ref.name)
        if route is None:
            return True
        resolved = resolve(route, self.world)[1]
        bound: dict[Key, Bindings] = {}
        entries: list[dict[str, Any]] = []
        for parent in parent_refs(route):
            if (parent.group, parent.kind) != (GROUP, "Gateway"):
                continue
            key = (parent.namespace, parent.name)
            gateway = self.world.get("Gateway", *key)
            if gateway is None or not self._ours(gateway):
                continue
            if key not in bound:
                verdicts = listeners.verdicts(gateway, self.world.route_kinds, self.world)
                bound[key] = bind(gateway, verdicts, self.routes_of(key), self.world)
            attachment = next(
                (a for a in bound[key].attachments.get(ref, ()) if a.parent == parent), None
            )
            if attachment is None:
                continue
            accepted = bound[key].accepted(ref, attachment)
            extra = partially_invalid(route) if accepted.ok else None
            conditions = [accepted, resolved, *([extra] if extra else [])]
            entries.append(parent_entry(route, attachment, conditions))
        had = any(
            p.get("controllerName") == CONTROLLER_NAME
            for p in status_of(route).get("parents") or ()
        )
        if not entries and not had:
            return True
        return await self.reporter.status(route, {"parents": route_parents(route, entries)})

    async def gateway_class(self, name: str) -> bool:
        gateway_class = self.world.get("GatewayClass", "", name)
        if gateway_class is None or not classes.is_ours(gateway_class):
            return True
        doc = classes.class_status(
            gateway_class,
            self.world,
            namespace=self.namespace,
            devices=self.world.views.devices(),
        )
        return await self.reporter.status(gateway_class, doc)

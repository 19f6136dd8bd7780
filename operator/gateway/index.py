"""Routes by the Gateways and Services they name: what a change of either touches.

Kept by the Gateway controller from the routes' changes (and rebuilt from the caches when it
starts leading), so that a Gateway's reconcile finds its routes, and a Service's or an
EndpointSlice's change the routes (and through them the Gateways) it matters to, without a
scan of every route.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from lbaas.gateway.spec import GROUP, Ref, backend_refs, parent_refs, ref_of
from lbaas.kube.informer import Key


class RouteIndex:
    def __init__(self) -> None:
        self._gateways: dict[Key, set[Ref]] = defaultdict(set)
        self._services: dict[Key, set[Ref]] = defaultdict(set)
        self._routes: dict[Ref, tuple[frozenset[Key], frozenset[Key]]] = {}

    def clear(self) -> None:
        self._gateways.clear()
        self._services.clear()
        self._routes.clear()

    def update(self, ref: Ref, route: Mapping[str, Any] | None) -> None:
        """Index ``route`` (None: it is gone) in place of what ``ref`` named before."""
        gateways, services = self._routes.pop(ref, (frozenset(), frozenset()))
        for key in gateways:
            _discard(self._gateways, key, ref)
        for key in services:
            _discard(self._services, key, ref)
        if route is None:
            return
        gateways = frozenset(
            (p.namespace, p.name)
            for p in parent_refs(route)
            if p.group == GROUP and p.kind == "Gateway"
        )
        services = frozenset(
            (b.namespace, b.name)
            for b in backend_refs(route)
            if (b.group, b.kind) == ("", "Service")
        )
        self._routes[ref] = (gateways, services)
        for key in gateways:
            self._gateways[key].add(ref)
        for key in services:
            self._services[key].add(ref)

    def add(self, route: Mapping[str, Any]) -> None:
        self.update(ref_of(route), route)

    def of_gateway(self, key: Key) -> set[Ref]:
        return set(self._gateways.get(key, ()))

    def of_service(self, key: Key) -> set[Ref]:
        return set(self._services.get(key, ()))

    def with_backends_in(self, namespace: str) -> set[Ref]:
        """Routes naming a Service of ``namespace`` (a ReferenceGrant there changed)."""
        return {r for key, refs in self._services.items() if key[0] == namespace for r in refs}

    def in_namespace(self, namespace: str) -> set[Ref]:
        return {r for r in self._routes if r.namespace == namespace}

    def gateways_of(self, ref: Ref) -> frozenset[Key]:
        return self._routes.get(ref, (frozenset(), frozenset()))[0]


def _discard(index: dict[Key, set[Ref]], key: Key, ref: Ref) -> None:
    refs = index.get(key)
    if refs is not None:
        refs.discard(ref)
        if not refs:
            del index[key]

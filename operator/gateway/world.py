"""What the translation may read of the cluster: a narrow, read-only lookup (a protocol).

The translation (:mod:`~lbaas.gateway.attach`, :mod:`~lbaas.gateway.backends`,
:mod:`~lbaas.gateway.translate`) is pure given a World: the controller hands it one over the
informers' caches (:class:`CachedWorld`), the unit tests one over dicts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from lbaas.kube.informer import Obj
from lbaas.kube.resources import CONFIG_MAPS, GATEWAY_CLASSES, REFERENCE_GRANTS, Resource
from lbaas.views import Views


class World(Protocol):
    route_kinds: frozenset[str]
    """The route kinds the operator watches (the cluster serves, the code translates)."""

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        """A Gateway, Service, GatewayClass ("" namespace), ConfigMap, by name."""

    def endpoint_slices(self, namespace: str, service: str) -> Sequence[Obj]: ...

    def grants(self, namespace: str) -> Sequence[Obj]:
        """The ReferenceGrants of ``namespace``."""

    def namespace_labels(self, namespace: str) -> Mapping[str, str]: ...


class CachedWorld:
    """A World over the operator's views."""

    def __init__(self, views: Views, route_kinds: frozenset[str]) -> None:
        self.views = views
        self.route_kinds = route_kinds

    def _cache(self, resource: Resource) -> dict[tuple[str, str], Any]:
        informer = self.views.informers.get(resource)
        return informer.cache if informer is not None else {}

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        if kind == "GatewayClass":
            return self._cache(GATEWAY_CLASSES).get(("", name))
        if kind == "ConfigMap":
            return self._cache(CONFIG_MAPS).get((namespace, name))
        return self.views.get(kind, namespace, name)

    def endpoint_slices(self, namespace: str, service: str) -> Sequence[Obj]:
        return self.views.endpoint_slices(namespace, service)

    def grants(self, namespace: str) -> Sequence[Obj]:
        cache = self._cache(REFERENCE_GRANTS)
        return [obj for (ns, _), obj in sorted(cache.items()) if ns == namespace]

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        return self.views.namespace_labels(namespace)

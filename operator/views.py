"""Index views: the one place that reads the informers' caches.

Everything else asks questions here: a VIP by key, a Device by name, the children of a VIP,
which VIPs a Device holds, which addresses are in use on it, a Service's EndpointSlices and
the objects generated for it. The secondary indices (children by parent, VIPs by device,
slices and generated objects by Service) are kept current from the informers' change stream,
so each answer costs a dict lookup, not a scan; listeners registered with ``subscribe`` hear
of a change after the indices reflect it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from lbaas.device_index import DeviceIndex
from lbaas.kinds import BY_KIND as TREE_BY_KIND
from lbaas.kinds import CHILD_KINDS
from lbaas.kube.informer import Change, Informer, Key, Obj
from lbaas.kube.resources import (
    DEVICES,
    ENDPOINT_SLICES,
    NAMESPACES,
    POOLS,
    SERVICES,
    VIPS,
    Resource,
)

VipKey = tuple[str, str]
Listener = Callable[[Change], None]


def spec_of(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (obj or {}).get("spec") or {}


def status_of(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (obj or {}).get("status") or {}


def meta_of(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (obj or {}).get("metadata") or {}


def is_deleting(obj: Mapping[str, Any] | None) -> bool:
    return bool(meta_of(obj).get("deletionTimestamp"))


SERVICE_LABEL = "lbaas.dev/service"
"""On VIPs, Pools, Members and HealthMonitors generated for a Service: the Service's name."""
GATEWAY_LABEL = "lbaas.dev/gateway"
"""On the objects generated for a Gateway (and its Routes): the Gateway's name (a digest when
longer than a label value may be: ``lbaas.generated.owned.label_value``)."""
GENERATED_LABELS = (SERVICE_LABEL, GATEWAY_LABEL)
SLICE_SERVICE_LABEL = "kubernetes.io/service-name"
"""On an EndpointSlice: the Service it belongs to (set by the endpointslice controller)."""


def _labelled(obj: Mapping[str, Any] | None, label: str) -> str | None:
    value = (meta_of(obj).get("labels") or {}).get(label)
    return str(value) if value else None


class Views:
    """Read access to the cluster as the informers hold it, with secondary indices."""

    def __init__(self, informers: Mapping[Resource, Informer]) -> None:
        self.informers = dict(informers)
        # (namespace, parent name) -> child keys, per child kind
        self._children: dict[str, dict[Key, set[Key]]] = {
            kind: defaultdict(set) for kind in CHILD_KINDS
        }
        self.devices_index = DeviceIndex()
        # (namespace, Service name) -> EndpointSlice keys; per source label: (namespace, label
        # value) -> (kind, name) of the objects generated for that source
        self._slices: dict[Key, set[Key]] = defaultdict(set)
        self._generated: dict[str, dict[Key, set[tuple[str, str]]]] = {
            label: defaultdict(set) for label in GENERATED_LABELS
        }
        self._listeners: list[Listener] = []
        for informer in self.informers.values():
            informer.handlers.append(self._on_change)

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    @property
    def synced(self) -> bool:
        return all(i.synced.is_set() for i in self.informers.values())

    async def wait_synced(self) -> None:
        for informer in self.informers.values():
            await informer.synced.wait()

    # ---- index maintenance ---------------------------------------------------------------

    def _on_change(self, change: Change) -> None:
        kind = change.resource.kind
        if kind in CHILD_KINDS:
            field = str(CHILD_KINDS[kind].parent_field)
            index = self._children[kind]
            for obj, add in ((change.old, False), (change.new, True)):
                if obj is None:
                    continue
                parent = (change.key[0], str(spec_of(obj).get(field) or ""))
                if add:
                    index[parent].add(change.key)
                else:
                    index[parent].discard(change.key)
                    if not index[parent]:
                        del index[parent]
        elif kind == "VIP":
            self.devices_index.update(change.key, change.new)
        if kind in TREE_BY_KIND:
            for label, index in self._generated.items():
                self._reindex(index, change, label, (kind, change.key[1]))
        elif kind == "EndpointSlice":
            self._reindex(self._slices, change, SLICE_SERVICE_LABEL, change.key)
        for listener in self._listeners:
            listener(change)

    @staticmethod
    def _reindex(index: dict[Key, set[Any]], change: Change, label: str, item: Any) -> None:
        """Move ``item`` from the Service its old label named to the one its new label names."""
        namespace = change.key[0]
        old, new = _labelled(change.old, label), _labelled(change.new, label)
        if old and old != new:
            index[(namespace, old)].discard(item)
            if not index[(namespace, old)]:
                del index[(namespace, old)]
        if new:
            index[(namespace, new)].add(item)

    # ---- lookups ---------------------------------------------------------------------------

    def _get(self, resource: Resource, key: Key) -> Obj | None:
        informer = self.informers.get(resource)
        return informer.cache.get(key) if informer else None

    def _all(self, resource: Resource) -> Iterable[Obj]:
        informer = self.informers.get(resource)
        return list(informer.cache.values()) if informer else []

    def get(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        """The cached object of ``kind`` (our kinds, Namespaces, Services)."""
        resource = next((r for r in self.informers if r.kind == kind), None)
        return self._get(resource, (namespace or "", name)) if resource else None

    def latest(self, obj: Mapping[str, Any]) -> Obj | None:
        """The newest cached copy of ``obj`` (same uid), or None when it is gone."""
        meta = meta_of(obj)
        found = self.get(str(obj.get("kind")), meta.get("namespace"), str(meta.get("name")))
        if found is None or meta_of(found).get("uid") != meta.get("uid"):
            return None
        return found

    def vip(self, key: VipKey) -> Obj | None:
        return self._get(VIPS, key)

    def vips(self) -> Iterable[Obj]:
        return self._all(VIPS)

    def device(self, name: str) -> Obj | None:
        return self._get(DEVICES, ("", name))

    def devices(self) -> Iterable[Obj]:
        return self._all(DEVICES)

    def pool(self, namespace: str, name: str) -> Obj | None:
        return self._get(POOLS, (namespace, name))

    def children(self, kind: str, namespace: str, parent: str) -> list[Obj]:
        """The objects of child ``kind`` whose parent field names ``parent``."""
        resource = CHILD_KINDS[kind].resource
        keys = self._children[kind].get((namespace, parent), ())
        return [obj for key in keys if (obj := self._get(resource, key)) is not None]

    def service(self, namespace: str, name: str) -> Obj | None:
        return self._get(SERVICES, (namespace, name))

    def services(self) -> Iterable[Obj]:
        return self._all(SERVICES)

    def endpoint_slices(self, namespace: str, service: str) -> list[Obj]:
        """The EndpointSlices labelled for ``service``, by name."""
        keys = sorted(self._slices.get((namespace, service), ()))
        return [obj for key in keys if (obj := self._get(ENDPOINT_SLICES, key)) is not None]

    def generated(self, namespace: str, source: str, label: str = SERVICE_LABEL) -> list[Obj]:
        """VIPs, Pools, Members and HealthMonitors whose ``label`` says ``source`` (a
        Service's name, a Gateway's label value)."""
        found = []
        for kind, name in sorted(self._generated[label].get((namespace, source), ())):
            obj = self.get(kind, namespace, name)
            if obj is not None:
                found.append(obj)
        return found

    def services_with_generated(self) -> set[Key]:
        """(namespace, Service name) of every Service something was generated for."""
        return set(self._generated[SERVICE_LABEL])

    def sources_with_generated(self, label: str) -> set[Key]:
        """(namespace, label value) of every source ``label`` names on a generated object."""
        return set(self._generated[label])

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        return meta_of(self._get(NAMESPACES, ("", namespace))).get("labels") or {}

    def parent_of(self, kind: str, namespace: str, spec: Mapping[str, Any]) -> tuple[str, str]:
        """(parent kind, parent name) that a child's spec names."""
        child = CHILD_KINDS[kind]
        return str(child.parent), str(spec.get(str(child.parent_field)) or "")

    def vip_key_of(self, kind: str, namespace: str, spec: Mapping[str, Any]) -> VipKey | None:
        """The VIP a child belongs to, up its parents (Member → Pool → VIP). None while a
        parent is missing."""
        while kind != "VIP":
            kind, name = self.parent_of(kind, namespace, spec)
            if kind == "VIP":
                return (namespace, name) if name else None
            parent = self.get(kind, namespace, name)
            if parent is None:
                return None
            spec = spec_of(parent)
        return None

    def missing_parent(self, kind: str, namespace: str, spec: Mapping[str, Any]) -> str | None:
        """What a child waits for ("VIP web", "Pool web"), or None when its parents exist."""
        parent_kind, name = self.parent_of(kind, namespace, spec)
        parent = self.get(parent_kind, namespace, name)
        if parent is None:
            return f"{parent_kind} {name}"
        if parent_kind == "VIP":
            return None
        return self.missing_parent(parent_kind, namespace, spec_of(parent))

    def bound_vips(self, device: str, *, with_deleting: bool = False) -> set[VipKey]:
        """VIPs whose status names ``device`` (a copy)."""
        return self.devices_index.vips(device, with_deleting=with_deleting)

    def bound_count(self, device: str, exclude: VipKey | None = None) -> int:
        """How many VIPs not being deleted ``device`` holds (``exclude`` left out)."""
        return self.devices_index.count(device, exclude)

    def listeners(
        self, device: str, exclude: VipKey | None = None
    ) -> dict[tuple[str, int, str], VipKey]:
        """(address, port, transport) → VIP, for the VIPs bound to ``device``."""
        return self.devices_index.listeners(device, exclude)

    def used_addresses(self, device: str, exclude: VipKey | None = None) -> set[str]:
        """Addresses in use on ``device``, in ipaddress's textual form."""
        return self.devices_index.addresses(device, exclude)

    def namespace_count(self, device: str, namespace: str, exclude: VipKey | None = None) -> int:
        return self.devices_index.namespace_count(device, namespace, exclude)

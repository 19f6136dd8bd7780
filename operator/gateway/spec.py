"""The Gateway API objects the operator reads, as small typed values (pure).

The informers hold plain dicts as the API server stores them (with the CRDs' defaults filled
in: a parentRef's group and kind, a listener's ``allowedRoutes``, a backendRef's weight);
the translation works on these values instead, so each field is read, defaulted and named in
one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lbaas.api.meta import LabelSelector
from lbaas.views import meta_of, spec_of

GROUP = "gateway.networking.k8s.io"
CONTROLLER_NAME = "lbaas.dev/gateway-controller"
"""The ``spec.controllerName`` of the GatewayClasses this operator implements."""


@dataclass(frozen=True)
class Ref:
    """(kind, namespace, name) of an object: a Route, a Gateway, a Service."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def ref_of(obj: Mapping[str, Any]) -> Ref:
    meta = meta_of(obj)
    return Ref(str(obj.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name")))


def selector(raw: Mapping[str, Any] | None) -> LabelSelector | None:
    """A label selector (the API server has checked its shape); None selects everything."""
    return LabelSelector.model_validate(raw) if raw else None


@dataclass(frozen=True)
class Listener:
    index: int
    name: str
    port: int
    protocol: str
    hostname: str | None
    tls_mode: str | None
    certificate_refs: tuple[Mapping[str, Any], ...]
    tls_options: bool
    """Its ``tls.options`` are set (implementation-specific: none is supported)."""
    routes_from: str  # Same | All | Selector
    routes_selector: LabelSelector | None
    kinds: tuple[tuple[str, str], ...] | None  # (group, kind); None: the protocol's defaults


def listeners(gateway: Mapping[str, Any]) -> list[Listener]:
    out = []
    for i, raw in enumerate(spec_of(gateway).get("listeners") or ()):
        allowed = raw.get("allowedRoutes") or {}
        namespaces = allowed.get("namespaces") or {}
        tls = raw.get("tls") or {}
        kinds = allowed.get("kinds")
        out.append(
            Listener(
                index=i,
                name=str(raw.get("name")),
                port=int(raw.get("port") or 0),
                protocol=str(raw.get("protocol")),
                hostname=raw.get("hostname") or None,
                tls_mode=(tls.get("mode") or "Terminate") if raw.get("tls") else None,
                certificate_refs=tuple(tls.get("certificateRefs") or ()),
                tls_options=bool(tls.get("options")),
                routes_from=str(namespaces.get("from") or "Same"),
                routes_selector=selector(namespaces.get("selector")),
                kinds=None
                if kinds is None
                else tuple((str(k.get("group", GROUP)), str(k.get("kind"))) for k in kinds),
            )
        )
    return out


@dataclass(frozen=True)
class ParentRef:
    group: str
    kind: str
    namespace: str
    name: str
    section: str | None
    port: int | None
    raw: Mapping[str, Any]
    """As the route wrote it (the status repeats it)."""


def parent_refs(route: Mapping[str, Any]) -> list[ParentRef]:
    namespace = str(meta_of(route).get("namespace") or "")
    return [
        ParentRef(
            group=str(p.get("group", GROUP)),
            kind=str(p.get("kind") or "Gateway"),
            namespace=str(p.get("namespace") or namespace),
            name=str(p.get("name")),
            section=p.get("sectionName") or None,
            port=int(p["port"]) if p.get("port") else None,
            raw=p,
        )
        for p in spec_of(route).get("parentRefs") or ()
    ]


@dataclass(frozen=True)
class BackendRef:
    group: str
    kind: str
    namespace: str
    name: str
    port: int | None
    weight: int


def backend_ref(raw: Mapping[str, Any], namespace: str) -> BackendRef:
    """One backendRef of a route of ``namespace``."""
    return BackendRef(
        group=str(raw.get("group") or ""),
        kind=str(raw.get("kind") or "Service"),
        namespace=str(raw.get("namespace") or namespace),
        name=str(raw.get("name")),
        port=int(raw["port"]) if raw.get("port") else None,
        weight=int(raw.get("weight", 1)),
    )


def backend_refs(route: Mapping[str, Any]) -> list[BackendRef]:
    """The backendRefs of all the route's rules (TCP, TLS and UDP routes have one rule)."""
    namespace = str(meta_of(route).get("namespace") or "")
    return [
        backend_ref(b, namespace)
        for rule in spec_of(route).get("rules") or ()
        for b in rule.get("backendRefs") or ()
    ]


def hostnames(route: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(h) for h in spec_of(route).get("hostnames") or ())


def created(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    """The order "oldest first" of the Gateway API's conflict rules: creation time, then
    namespace/name."""
    meta = meta_of(obj)
    return (
        str(meta.get("creationTimestamp") or ""),
        str(meta.get("namespace") or ""),
        str(meta.get("name") or ""),
    )

"""Gateway API objects for tests, as the API server stores them (the CRDs' defaults filled
in), and a World over dicts for the pure translation (``lbaas.gateway.world``)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

GROUP = "gateway.networking.k8s.io"
API = f"{GROUP}/v1"
CONTROLLER = "lbaas.dev/gateway-controller"
_UIDS = itertools.count(1)
_STAMPS = itertools.count(0)


def _meta(name: str, namespace: str | None, **extra: Any) -> dict[str, Any]:
    n = next(_STAMPS)  # each object a second younger than the one before
    meta: dict[str, Any] = {
        "name": name,
        "uid": f"uid-{next(_UIDS)}",
        "generation": 1,
        "resourceVersion": "1",
        "creationTimestamp": f"2026-01-01T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z",
    }
    if namespace:
        meta["namespace"] = namespace
    meta.update(extra)
    return meta


def gateway_class(
    name: str = "lbaas", *, params: Mapping[str, Any] | None = None, controller: str = CONTROLLER
) -> dict[str, Any]:
    spec: dict[str, Any] = {"controllerName": controller}
    if params is not None:
        spec["parametersRef"] = dict(params)
    return {"apiVersion": API, "kind": "GatewayClass", "metadata": _meta(name, None), "spec": spec}


def listener(name: str, port: int, protocol: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "port": port, "protocol": protocol}
    body["allowedRoutes"] = extra.pop("allowedRoutes", {"namespaces": {"from": "Same"}})
    body.update(extra)
    return body


def passthrough(name: str, port: int, **extra: Any) -> dict[str, Any]:
    return listener(name, port, "TLS", tls={"mode": "Passthrough"}, **extra)


def gateway(
    name: str, namespace: str, *listeners: dict[str, Any], cls: str = "lbaas", **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Gateway",
        "metadata": _meta(name, namespace),
        "spec": {"gatewayClassName": cls, "listeners": list(listeners), **spec},
    }


def parent(name: str, **extra: Any) -> dict[str, Any]:
    return {"group": GROUP, "kind": "Gateway", "name": name, **extra}


def backend(name: str, port: int, **extra: Any) -> dict[str, Any]:
    return {"group": "", "kind": "Service", "name": name, "port": port, "weight": 1, **extra}


def route(
    kind: str,
    name: str,
    namespace: str,
    parents: Sequence[dict[str, Any]],
    backends: Sequence[dict[str, Any]],
    **spec: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": kind,
        "metadata": _meta(name, namespace),
        "spec": {
            "parentRefs": list(parents),
            "rules": [{"backendRefs": list(backends)}],
            **spec,
        },
    }


def grant(
    namespace: str,
    *,
    from_namespace: str,
    from_kind: str = "TCPRoute",
    to_name: str | None = None,
    to_kind: str = "Service",
    name: str = "g",
) -> dict[str, Any]:
    to: dict[str, Any] = {"group": "", "kind": to_kind}
    if to_name:
        to["name"] = to_name
    return {
        "apiVersion": f"{GROUP}/v1beta1",
        "kind": "ReferenceGrant",
        "metadata": _meta(name, namespace),
        "spec": {
            "from": [{"group": GROUP, "kind": from_kind, "namespace": from_namespace}],
            "to": [to],
        },
    }


def service(name: str, namespace: str, *ports: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(name, namespace),
        "spec": {"ports": list(ports) or [{"name": "tcp", "port": 80, "protocol": "TCP"}]},
    }


def endpoint_slice(
    service_name: str,
    namespace: str,
    addresses: Sequence[str],
    port: int,
    *,
    port_name: str = "tcp",
    protocol: str = "TCP",
) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": _meta(
            f"{service_name}-{next(_UIDS)}",
            namespace,
            labels={"kubernetes.io/service-name": service_name},
        ),
        "addressType": "IPv4",
        "ports": [{"name": port_name, "port": port, "protocol": protocol}],
        "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses],
    }


@dataclass
class DictWorld:
    """A World (``lbaas.gateway.world``) over dicts."""

    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    slices: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    route_kinds: frozenset[str] = frozenset({"HTTPRoute", "TCPRoute", "TLSRoute", "UDPRoute"})

    def add(self, *objs: dict[str, Any]) -> DictWorld:
        for obj in objs:
            meta = obj["metadata"]
            if obj["kind"] == "EndpointSlice":
                svc = meta["labels"]["kubernetes.io/service-name"]
                self.slices.setdefault((meta["namespace"], svc), []).append(obj)
            else:
                self.objects[(obj["kind"], meta.get("namespace", ""), meta["name"])] = obj
        return self

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind, namespace, name))

    def endpoint_slices(self, namespace: str, service: str) -> list[dict[str, Any]]:
        return self.slices.get((namespace, service), [])

    def grants(self, namespace: str) -> list[dict[str, Any]]:
        return [
            o for (k, ns, _), o in self.objects.items() if k == "ReferenceGrant" and ns == namespace
        ]

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        return self.labels.get(namespace, {})

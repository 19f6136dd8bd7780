"""Services of type LoadBalancer in tests: the Service, the EndpointSlices a test plays the
endpointslice controller with (the test bed runs no controllers), and what was generated."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from helpers import GROUP, PLURALS, VERSION, Api, kubectl

CLASS = "lbaas.dev/lbaas"
SERVICE_LABEL = "lbaas.dev/service"
KINDS = ("VIP", "Pool", "Member", "HealthMonitor")

Endpoint = tuple[str, bool]  # address, ready


@dataclass
class Svc:
    """One Service and its EndpointSlices, through the core and discovery APIs."""

    api: Api
    namespace: str
    name: str

    def create(
        self,
        ports: Sequence[dict[str, Any]],
        *,
        annotations: dict[str, str] | None = None,
        cls: str | None = CLASS,
        **spec: Any,
    ) -> dict[str, Any]:
        body = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "annotations": annotations or {},
            },
            "spec": {
                "type": "LoadBalancer",
                "ports": list(ports),
                "selector": {"app": self.name},
                **({"loadBalancerClass": cls} if cls else {}),
                **spec,
            },
        }
        created = self.api.core.create_namespaced_service(self.namespace, body)
        return dict(self.api.core.api_client.sanitize_for_serialization(created))

    def get(self) -> dict[str, Any] | None:
        """The Service as the API has it (camelCase, as kubectl shows it), None when gone."""
        from kubernetes.client.exceptions import ApiException

        try:
            found = self.api.core.read_namespaced_service(self.name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(self.api.core.api_client.sanitize_for_serialization(found))

    def patch(self, body: dict[str, Any]) -> None:
        """A JSON merge patch: lists are replaced, ``None`` removes a field."""
        self.api.core.patch_namespaced_service(
            self.name, self.namespace, body, _content_type="application/merge-patch+json"
        )

    def delete(self) -> None:
        # Unparsed: the answer is a Service (a finalizer holds it) or a Status (it is gone).
        self.api.core.delete_namespaced_service(self.name, self.namespace, _preload_content=False)

    def ingress_ip(self) -> str | None:
        ingress = ((self.get() or {}).get("status") or {}).get("loadBalancer", {}).get("ingress")
        return str(ingress[0].get("ip")) if ingress else None

    def kubectl(self, *args: str) -> str:
        """kubectl's answer, with a discovery cache refreshed first (it may predate the CRDs,
        and a stale one does not know the ``lbaas`` category)."""
        kubectl("api-resources", "--api-group=lbaas.dev")
        return kubectl(*args, "-n", self.namespace).stdout

    def kubectl_row(self) -> list[str]:
        """``kubectl get svc NAME`` as columns: NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE."""
        out = kubectl("get", "svc", self.name, "-n", self.namespace, "--no-headers").stdout
        return out.split()

    def set_endpoints(
        self,
        endpoints: Sequence[Endpoint],
        *,
        port: int,
        port_name: str = "",
        slice_name: str | None = None,
        protocol: str = "TCP",
    ) -> None:
        """Create or replace one EndpointSlice of the Service (all endpoints on ``port``)."""
        name = slice_name or f"{self.name}-abc"
        body = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {"kubernetes.io/service-name": self.name},
            },
            "addressType": "IPv4",
            "ports": [{"name": port_name, "port": port, "protocol": protocol}],
            "endpoints": [
                {"addresses": [address], "conditions": {"ready": ready}}
                for address, ready in endpoints
            ],
        }
        self._discovery().patch_namespaced_endpoint_slice(
            name,
            self.namespace,
            body,
            field_manager="test",
            force=True,
            _content_type="application/apply-patch+yaml",
        )

    def delete_slice(self, slice_name: str | None = None) -> None:
        name = slice_name or f"{self.name}-abc"
        self._discovery().delete_namespaced_endpoint_slice(name, self.namespace)

    def _discovery(self) -> Any:
        import kubernetes

        return kubernetes.client.DiscoveryV1Api(self.api.core.api_client)

    def generated(self, kind: str) -> dict[str, dict[str, Any]]:
        """The objects of ``kind`` labelled for this Service, by name."""
        found = self.api.custom.list_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            PLURALS[kind],
            label_selector=f"{SERVICE_LABEL}={self.name}",
        )
        return {item["metadata"]["name"]: item for item in found.get("items", [])}

    def everything(self) -> dict[str, dict[str, dict[str, Any]]]:
        return {kind: self.generated(kind) for kind in KINDS}

    def versions(self) -> dict[tuple[str, str], str]:
        """resourceVersion of every generated object: what changed, and what did not."""
        return {
            (kind, name): obj["metadata"]["resourceVersion"]
            for kind, objs in self.everything().items()
            for name, obj in objs.items()
        }

    def generations(self) -> dict[tuple[str, str], int]:
        """metadata.generation of every generated object: spec changes only (statuses,
        which a device's health checks keep changing, leave it alone)."""
        return {
            (kind, name): obj["metadata"]["generation"]
            for kind, objs in self.everything().items()
            for name, obj in objs.items()
        }

    def member_addresses(self, pool: str) -> set[tuple[str, int]]:
        return {
            (m["spec"]["address"], m["spec"]["port"])
            for m in self.generated("Member").values()
            if m["spec"]["poolRef"] == pool
        }

    def events(self, reason: str | None = None, type_: str = "Warning") -> list[Any]:
        found = self.api.events(self.namespace, self.name, type_)
        return [
            e for e in found if e.involved_object.kind == "Service" and reason in (None, e.reason)
        ]


def delete_services(api: Api, namespace: str, timeout: float = 30) -> None:
    """Delete every Service of ``namespace`` and wait until they are gone: the operator's
    finalizer holds each until its trees left the devices (test teardown: no tree, and so
    no device, stays behind for the next operator to resume)."""
    from helpers import wait_for

    names = [s.metadata.name for s in api.core.list_namespaced_service(namespace).items]
    for name in names:
        Svc(api, namespace, name).delete()
    wait_for(
        lambda: not api.core.list_namespaced_service(namespace).items,
        timeout,
        f"the Services of {namespace} gone",
    )


# ---- pods behind a Service, and how long traffic takes to follow them -----------------------


class Backend(Protocol):
    """A backend server that counts the requests it answered (tests' ``hxsupport.Backend``)."""

    name: str
    address: str
    port: int
    hits: int


class Pods:
    """Backends as the pods of a Service: one EndpointSlice each, whose port ``http`` names
    the backend's port (a named ``targetPort`` resolved per slice, as for pods whose
    container ports differ)."""

    def __init__(self, svc: Svc) -> None:
        self.svc = svc

    def up(self, backend: Backend, ready: bool = True) -> None:
        self.svc.set_endpoints(
            [(backend.address, ready)],
            port=backend.port,
            port_name="http",
            slice_name=self.slice(backend),
        )

    def down(self, backend: Backend) -> None:
        self.svc.delete_slice(self.slice(backend))

    def slice(self, backend: Backend) -> str:
        return f"{self.svc.name}-{backend.name}"


def until_served_by(backend: Backend, send: Callable[[], object], timeout: float = 10) -> float:
    """Seconds from now until one of back-to-back requests (``send``) reaches ``backend``."""
    started, hits = time.monotonic(), backend.hits
    while backend.hits == hits:
        with contextlib.suppress(OSError):
            send()
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{backend.name} served nothing within {timeout}s")
    return time.monotonic() - started


def until_not_served_by(
    backend: Backend, send: Callable[[], object], timeout: float = 10, misses: int = 30
) -> float:
    """Seconds from now until ``backend``'s last request, after which ``misses`` requests in
    a row went elsewhere (were it still in a pool of 3, that happens with p < 1e-5)."""
    started, hits = time.monotonic(), backend.hits
    last, missed = 0.0, 0
    while missed < misses:
        with contextlib.suppress(OSError):
            send()
        if backend.hits != hits:
            hits, missed, last = backend.hits, 0, time.monotonic() - started
        else:
            missed += 1
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{backend.name} still served after {timeout}s")
    return last

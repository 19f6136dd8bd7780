"""The Gateway API in cluster tests: its CRDs in the test bed, its objects through the API,
backend Services with the EndpointSlices a test writes (the test bed runs no controllers),
and waits on the statuses the operator writes."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from helpers import ROOT, Api, kubectl, need_tool, wait_for

GATEWAY_CRDS = Path(
    os.environ.get("LBAAS_GATEWAY_API_CRDS", ROOT.parent / "shared/gateway-api/v1.6.1")
)
GROUP = "gateway.networking.k8s.io"
PLURALS = {
    "GatewayClass": "gatewayclasses",
    "Gateway": "gateways",
    "HTTPRoute": "httproutes",
    "TCPRoute": "tcproutes",
    "TLSRoute": "tlsroutes",
    "UDPRoute": "udproutes",
    "ReferenceGrant": "referencegrants",
}
VERSIONS = {"ReferenceGrant": "v1beta1"}
GENERATED = ("VIP", "Pool", "Member", "HealthMonitor", "L7Policy")


def install_crds() -> None:
    """The upstream CRDs (standard channel, unchanged), server-side applied, Established."""
    files = sorted(GATEWAY_CRDS.glob("*.yaml"))
    if not files:
        need_tool(f"no Gateway API CRDs in {GATEWAY_CRDS} (LBAAS_GATEWAY_API_CRDS)")
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(GATEWAY_CRDS))
    for path in files:
        kubectl("wait", "--for=condition=Established", "-f", str(path), "--timeout=60s")


class Gw:
    """CRUD on the Gateway API's kinds, Services and EndpointSlices; what was generated."""

    def __init__(self, api: Api) -> None:
        import kubernetes

        self.api = api
        self.custom = api.custom
        self.discovery = kubernetes.client.DiscoveryV1Api(api.core.api_client)

    def _where(self, kind: str) -> tuple[str, str, str]:
        return GROUP, VERSIONS.get(kind, "v1"), PLURALS[kind]

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        obj = {k: v for k, v in obj.items() if k != "status"}
        meta = {k: v for k, v in obj["metadata"].items() if k in ("name", "namespace", "labels")}
        obj = {**obj, "metadata": meta}
        group, version, plural = self._where(obj["kind"])
        obj["apiVersion"] = f"{group}/{version}"
        if meta.get("namespace"):
            return dict(
                self.custom.create_namespaced_custom_object(
                    group, version, meta["namespace"], plural, obj
                )
            )
        return dict(self.custom.create_cluster_custom_object(group, version, plural, obj))

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        group, version, plural = self._where(kind)
        try:
            if namespace:
                return dict(
                    self.custom.get_namespaced_custom_object(
                        group, version, namespace, plural, name
                    )
                )
            return dict(self.custom.get_cluster_custom_object(group, version, plural, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def patch(self, kind: str, namespace: str | None, name: str, body: Mapping[str, Any]) -> None:
        group, version, plural = self._where(kind)
        if namespace:
            self.custom.patch_namespaced_custom_object(
                group, version, namespace, plural, name, dict(body)
            )
        else:
            self.custom.patch_cluster_custom_object(group, version, plural, name, dict(body))

    def delete(self, kind: str, namespace: str | None, name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        group, version, plural = self._where(kind)
        try:
            if namespace:
                self.custom.delete_namespaced_custom_object(group, version, namespace, plural, name)
            else:
                self.custom.delete_cluster_custom_object(group, version, plural, name)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def items(self, kind: str, namespace: str) -> list[dict[str, Any]]:
        group, version, plural = self._where(kind)
        found = self.custom.list_namespaced_custom_object(group, version, namespace, plural)
        return list(found["items"])

    # ---- backends --------------------------------------------------------------------------

    def service(self, namespace: str, name: str, *ports: Mapping[str, Any]) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": {"app": name}, "ports": [dict(p) for p in ports]},
        }
        self.api.core.create_namespaced_service(namespace, body)

    def endpoints(
        self,
        namespace: str,
        service: str,
        addresses: Sequence[str],
        port: int,
        *,
        port_name: str = "",
        protocol: str = "TCP",
        slice_name: str = "",
    ) -> None:
        """Create or replace one EndpointSlice of ``service`` (every address ready)."""
        name = slice_name or f"{service}-abc"
        body = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {"kubernetes.io/service-name": service},
            },
            "addressType": "IPv4",
            "ports": [{"name": port_name, "port": port, "protocol": protocol}],
            "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses],
        }
        self.discovery.patch_namespaced_endpoint_slice(
            name,
            namespace,
            body,
            field_manager="test",
            force=True,
            _content_type="application/apply-patch+yaml",
        )

    # ---- what the operator did ---------------------------------------------------------------

    def generated(self, namespace: str, gateway: str, kind: str) -> dict[str, dict[str, Any]]:
        from helpers import GROUP as LBAAS
        from helpers import PLURALS as TREE
        from helpers import VERSION

        found = self.custom.list_namespaced_custom_object(
            LBAAS, VERSION, namespace, TREE[kind], label_selector=f"lbaas.dev/gateway={gateway}"
        )
        return {i["metadata"]["name"]: i for i in found["items"]}

    def everything(self, namespace: str, gateway: str) -> dict[str, dict[str, dict[str, Any]]]:
        return {kind: self.generated(namespace, gateway, kind) for kind in GENERATED}

    def versions(self, namespace: str, gateway: str) -> dict[tuple[str, str], str]:
        return {
            (kind, name): obj["metadata"]["resourceVersion"]
            for kind, objs in self.everything(namespace, gateway).items()
            for name, obj in objs.items()
        }

    def members(self, namespace: str, gateway: str) -> dict[str, tuple[str, int, int]]:
        """Member name → (address, port, weight)."""
        return {
            name: (m["spec"]["address"], m["spec"]["port"], m["spec"].get("weight", 1))
            for name, m in self.generated(namespace, gateway, "Member").items()
        }

    def condition(
        self,
        kind: str,
        namespace: str | None,
        name: str,
        type_: str,
        *,
        listener: str | None = None,
        parent: str | None = None,
    ) -> dict[str, Any]:
        """A condition of an object, of one of its listeners, or of its parent entry."""
        status = (self.get(kind, namespace, name) or {}).get("status") or {}
        conditions = status.get("conditions") or []
        if listener is not None:
            entry = next((e for e in status.get("listeners") or () if e["name"] == listener), {})
            conditions = entry.get("conditions") or []
        if parent is not None:
            entry = next(
                (p for p in status.get("parents") or () if p["parentRef"]["name"] == parent), {}
            )
            conditions = entry.get("conditions") or []
        return next((c for c in conditions if c["type"] == type_), {})

    def wait_condition(
        self,
        kind: str,
        namespace: str | None,
        name: str,
        type_: str,
        status: str,
        reason: str | None = None,
        timeout: float = 30,
        **where: str,
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            cond = self.condition(kind, namespace, name, type_, **where)
            ok = cond.get("status") == status and reason in (None, cond.get("reason"))
            return cond if ok else None

        what = f"{kind} {namespace}/{name} {where or ''} {type_}={status} {reason or ''}"
        return dict(wait_for(check, timeout, what))

    def listener(self, namespace: str, gateway: str, name: str) -> dict[str, Any]:
        status = (self.get("Gateway", namespace, gateway) or {}).get("status") or {}
        return next((e for e in status.get("listeners") or () if e["name"] == name), {})


def all_conditions(obj: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every condition of a Gateway API object's status: top level, listeners', parents'."""
    status = obj.get("status") or {}
    yield from status.get("conditions") or ()
    for entry in [*(status.get("listeners") or ()), *(status.get("parents") or ())]:
        yield from entry.get("conditions") or ()

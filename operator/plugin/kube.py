"""The plugin's reads from the API server, with the user's kubeconfig and rights.

The kubeconfig is the one kubectl uses: ``--kubeconfig``, else ``KUBECONFIG`` (several paths
merged), else ``~/.kube/config``; ``--context`` picks a context, whose namespace is the default
one. A read the user may not do (403) or of something absent (404) is ``None``/``[]`` with a
note kept in ``Reader.notes``: the plugin shows what it can and says what it could not see.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, cast

import kubernetes
from kubernetes.client.exceptions import ApiException

from lbaas import __version__

GROUP, VERSION = "lbaas.dev", "v1alpha1"
PLURALS = {
    "vip": "vips",
    "vips": "vips",
    "pool": "pools",
    "pools": "pools",
    "lbpool": "pools",
    "member": "members",
    "members": "members",
    "lbmember": "members",
    "healthmonitor": "healthmonitors",
    "healthmonitors": "healthmonitors",
    "hm": "healthmonitors",
    "lbhm": "healthmonitors",
    "l7policy": "l7policies",
    "l7policies": "l7policies",
    "l7p": "l7policies",
    "device": "devices",
    "devices": "devices",
    "lbdev": "devices",
}
KINDS = {
    "vips": "VIP",
    "pools": "Pool",
    "members": "Member",
    "healthmonitors": "HealthMonitor",
    "l7policies": "L7Policy",
    "devices": "Device",
}

Obj = dict[str, Any]


class NotFound(Exception):
    """The object asked for does not exist (or the user may not see it)."""


def load(kubeconfig: str | None, context: str | None) -> tuple[Any, str]:
    """(an ApiClient, the context's namespace) from the user's kubeconfig."""
    path = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    client = kubernetes.config.new_client_from_config(config_file=path, context=context)
    client.user_agent = f"kubectl-lbaas/{__version__}"
    contexts, active = kubernetes.config.list_kube_config_contexts(config_file=path)
    chosen = next((c for c in contexts if c["name"] == context), active) if context else active
    namespace = ((chosen or {}).get("context") or {}).get("namespace") or "default"
    return client, str(namespace)


class Reader:
    """Gets and lists, remembering what could not be read."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.custom = kubernetes.client.CustomObjectsApi(client)
        self.core = kubernetes.client.CoreV1Api(client)
        self.coordination = kubernetes.client.CoordinationV1Api(client)
        self.discovery = kubernetes.client.DiscoveryV1Api(client)
        self.notes: list[str] = []

    def _denied(self, what: str, exc: ApiException) -> None:
        if exc.status == 404:
            return
        self.notes.append(f"cannot read {what}: {exc.status} {exc.reason}")

    def get(self, plural: str, name: str, namespace: str | None) -> Obj | None:
        try:
            if plural == "devices":
                found = self.custom.get_cluster_custom_object(GROUP, VERSION, plural, name)
            else:
                found = self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace or "default", plural, name
                )
        except ApiException as exc:
            self._denied(f"{KINDS[plural]} {name}", exc)
            return None
        return cast(Obj, found)

    def need(self, plural: str, name: str, namespace: str | None) -> Obj:
        found = self.get(plural, name, namespace)
        if found is None:
            where = "" if plural == "devices" else f" in namespace {namespace}"
            raise NotFound(f"{KINDS[plural]} {name} not found{where}")
        return found

    def objects(self, plural: str, namespace: str | None) -> list[Obj]:
        """Every object of ``plural`` in ``namespace`` (None: all namespaces, and Devices)."""
        try:
            if plural == "devices" or namespace is None:
                answer = self.custom.list_cluster_custom_object(GROUP, VERSION, plural)
            else:
                answer = self.custom.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural
                )
        except ApiException as exc:
            self._denied(f"{plural} in {namespace or 'all namespaces'}", exc)
            return []
        return [dict(item) for item in cast(Obj, answer).get("items") or []]

    def events(self, obj: Mapping[str, Any], namespace: str) -> list[Obj]:
        """Events about ``obj`` (matched by uid: names repeat, uids do not), oldest first."""
        meta = obj.get("metadata") or {}
        selector = f"involvedObject.uid={meta.get('uid')}"
        try:
            answer = self.core.list_namespaced_event(namespace, field_selector=selector)
        except ApiException as exc:
            self._denied(f"Events in {namespace}", exc)
            return []
        found = [item.to_dict() for item in answer.items]
        return sorted(found, key=_event_time)

    def lease(self, namespace: str, name: str) -> Obj | None:
        try:
            return dict(self.coordination.read_namespaced_lease(name, namespace).to_dict())
        except ApiException as exc:
            self._denied(f"Lease {namespace}/{name}", exc)
            return None

    def leases(self, namespace: str, selector: str) -> list[Obj]:
        try:
            answer = self.coordination.list_namespaced_lease(namespace, label_selector=selector)
        except ApiException as exc:
            self._denied(f"Leases in {namespace}", exc)
            return []
        return [item.to_dict() for item in answer.items]

    def endpoint_slices(self, namespace: str, service: str) -> list[Obj]:
        try:
            answer = self.discovery.list_namespaced_endpoint_slice(
                namespace, label_selector=f"kubernetes.io/service-name={service}"
            )
        except ApiException as exc:
            self._denied(f"EndpointSlices of Service {namespace}/{service}", exc)
            return []
        return [item.to_dict() for item in answer.items]

    def raw(self, path: str) -> str:
        """GET an API path as text (the pod proxy); raises ApiException."""
        request = self.client.param_serialize(
            "GET", path, header_params={"Accept": "text/plain"}, auth_settings=["BearerToken"]
        )  # the token too: kubeconfigs with tokens (cloud clusters) need it on every call
        response = self.client.call_api(*request, _request_timeout=10)
        raw = response.response
        data = raw.read().decode(errors="replace")
        if not 200 <= raw.status <= 299:
            raise ApiException(status=raw.status, reason=raw.reason, body=data)
        return str(data)


def _event_time(event: Mapping[str, Any]) -> str:
    stamp = event.get("last_timestamp") or event.get("event_time") or ""
    return str(stamp.isoformat() if hasattr(stamp, "isoformat") else stamp)

"""Requests to the Kubernetes API: the official client, run in a bounded thread pool.

Every call the operator makes goes through :class:`Kube` (a test greps for calls elsewhere):
``list``/``stream`` feed the informers, ``apply_status``/``apply_meta`` are server-side
applies with a field manager per role, ``patch_status`` a merge patch for objects we do not
own (a Service's ``status.loadBalancer``). Responses are parsed once, as plain dicts, with
no model classes in between: at thousands of objects that is most of a client's cost.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlencode

import kubernetes
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from lbaas import __version__, metrics
from lbaas.kube.resources import SECRETS, Resource

log = logging.getLogger(__name__)

APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
WRITE_TIMEOUT = 10.0
"""Seconds a write may take. Bounded so that a leader or owner that lost its Lease has no
write in flight for longer than the Lease's safety margin."""


class Gone(Exception):
    """410: the watch's resourceVersion is too old; the caller lists again."""


def configuration() -> kubernetes.client.Configuration:
    """In-cluster service account, else ``$KUBECONFIG`` (read explicitly: the client reads the
    variable only once, when first imported)."""
    config = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=config)
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(
            config_file=os.environ.get("KUBECONFIG"), client_configuration=config
        )
    return config


def trim(obj: Mapping[str, Any], *, keep_annotations: bool = False) -> dict[str, Any]:
    """An object without what the operator never reads (managedFields above all)."""
    meta = dict(obj.get("metadata") or {})
    meta.pop("managedFields", None)
    if not keep_annotations:
        meta.pop("annotations", None)
    out = dict(obj)
    out["metadata"] = meta
    return out


class Kube:
    """Blocking API calls, offered as coroutines that run in a pool of ``connections`` threads.

    The pool size is also the urllib3 connection pool size: at most that many requests are
    in flight, whatever the number of objects (kopf's unbounded pool cost 0.5 GB at 1,200).
    """

    def __init__(self, connections: int = 16, config: Any = None) -> None:
        config = config or configuration()
        # + the informers' watch streams (one per watched resource and namespace: nine in
        # ``run`` mode), so a busy pool never opens and discards connections (TLS handshakes);
        # + the agent's Secret and ConfigMap watches (lbaas.tls.store: up to three per
        # namespace where it serves TLS trees). Beyond it a watch's connection is discarded
        # after each request (one a minute), not refused: the size is no limit.
        config.connection_pool_maxsize = connections + 16 + 48
        self.client = kubernetes.client.ApiClient(config)
        # Audit logs and API priority rules tell the operator's requests from other clients.
        self.client.user_agent = f"lbaas-operator/{__version__}"
        self.pool = concurrent.futures.ThreadPoolExecutor(connections, thread_name_prefix="kube")

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    # ---- the one request primitive -------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | tuple[float, float] | None = WRITE_TIMEOUT,
        stream: bool = False,
    ) -> Any:
        """Send one request; the parsed JSON answer (or the raw response when ``stream``).

        Raises ``ApiException`` for non-2xx answers (``.status`` has the code).
        """
        url_path = path + ("?" + urlencode(query) if query else "")
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type  # the client serialises dicts as JSON
        serialized = self.client.param_serialize(
            method, url_path, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        started = time.monotonic()
        response = self.client.call_api(*serialized, _request_timeout=timeout)
        raw = response.response
        if not 200 <= raw.status <= 299:
            data = raw.read()
            raw.release_conn()
            raise ApiException(
                status=raw.status, reason=raw.reason, body=data.decode(errors="replace")
            )
        if stream:
            return raw
        data = raw.read()
        raw.release_conn()
        if method != "GET":
            metrics.API_WRITES.labels(method, path_kind(path)).inc()
        metrics.API_LATENCY.labels(method).observe(time.monotonic() - started)
        return json.loads(data) if data else None

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """``request`` in the pool, awaited."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, lambda: self.request(method, path, **kwargs))

    # ---- reads (informers) ---------------------------------------------------------------

    def list_page(
        self,
        resource: Resource,
        namespace: str | None,
        selector: str,
        cont: str | None,
        fields: str = "",
    ) -> dict[str, Any]:
        query: dict[str, Any] = {"limit": 500, **selectors(selector, fields)}
        if cont:
            query["continue"] = cont
        return dict(self.request("GET", resource.path(namespace), query=query, timeout=120))

    def watch_lines(
        self,
        resource: Resource,
        namespace: str | None,
        selector: str,
        version: str,
        timeout: int,
        fields: str = "",
    ) -> Iterator[dict[str, Any]]:
        """Watch events from ``version`` on; ends after ``timeout`` s. Raises Gone on 410."""
        query: dict[str, Any] = {
            "watch": "1",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": timeout,
            **selectors(selector, fields),
        }
        try:
            raw = self.request(
                "GET",
                resource.path(namespace),
                query=query,
                timeout=(10, timeout + 30),
                stream=True,
            )
        except ApiException as exc:
            if exc.status == 410:
                raise Gone() from exc
            raise
        try:
            for line in iter_resp_lines(raw):
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    if (event.get("object") or {}).get("code") == 410:
                        raise Gone()
                    raise ApiException(status=(event.get("object") or {}).get("code", 500))
                yield event
        finally:
            raw.release_conn()

    # ---- writes --------------------------------------------------------------------------

    async def apply_status(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        status: Mapping[str, Any],
        *,
        manager: str,
        resource_version: str | None = None,
    ) -> dict[str, Any] | None:
        """Server-side apply of ``status`` as ``manager``; the new object, None when gone.

        Fields this manager applied before and leaves out now are removed; fields others
        own stay. ``resource_version`` makes it conditional (409 when the object changed).
        """
        metadata = _metadata(name, namespace, resourceVersion=resource_version)
        body = {
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "metadata": metadata,
            "status": dict(status),
        }
        return await self._write(
            "PATCH",
            resource.path(namespace, name, "status"),
            body,
            APPLY,
            {"fieldManager": manager, "force": "true"},
        )

    async def apply_finalizer(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        finalizer: str,
        *,
        present: bool,
        manager: str,
        uid: str | None = None,
    ) -> dict[str, Any] | None:
        """Add (or, by applying without it, remove) our finalizer; other finalizers stay.

        ``uid`` makes it conditional on that object (409 otherwise): an apply creates what
        does not exist, and a finalizer removal racing the object's deletion must not bring
        back an empty object of the same name."""
        metadata = _metadata(name, namespace, uid=uid, finalizers=[finalizer] if present else None)
        body = {"apiVersion": resource.api_version, "kind": resource.kind, "metadata": metadata}
        return await self._write(
            "PATCH", resource.path(namespace, name), body, APPLY, {"fieldManager": manager}
        )

    async def apply(
        self, resource: Resource, body: Mapping[str, Any], *, manager: str, force: bool = False
    ) -> dict[str, Any] | None:
        """Server-side apply of a whole object (created when absent); the written object.
        Raises ApiException (422: the API server refused it)."""
        meta = body["metadata"]
        query = {"fieldManager": manager, **({"force": "true"} if force else {})}
        return await self._write(
            "PATCH", resource.path(meta.get("namespace"), meta["name"]), dict(body), APPLY, query
        )

    async def merge_patch(
        self, resource: Resource, namespace: str | None, name: str, patch: Mapping[str, Any],
        *, sub: str = "",
    ) -> dict[str, Any] | None:  # fmt: skip
        return await self._write(
            "PATCH", resource.path(namespace, name, sub), dict(patch), MERGE, None
        )

    async def create(self, resource: Resource, namespace: str | None, body: Any) -> Any:
        return await self._write("POST", resource.path(namespace), body, "application/json", None)

    async def delete(self, resource: Resource, namespace: str | None, name: str) -> bool:
        """Delete; False when it was already gone."""
        try:
            await self.call("DELETE", resource.path(namespace, name))
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def _write(
        self, method: str, path: str, body: Any, content_type: str, query: Any
    ) -> dict[str, Any] | None:
        try:
            result = await self.call(
                method, path, query=query, body=body, content_type=content_type
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(result) if result else None

    async def discover(self, group_version: str) -> set[str] | None:
        """The resources (plurals) the API server serves in ``group_version`` (``g/v``), None
        when it serves no such group version. Discovery: every authenticated user may read
        it (the ``system:discovery`` ClusterRole), no RBAC rule needed."""
        try:
            found = await self.call("GET", f"/apis/{group_version}", timeout=30)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return {str(r.get("name")) for r in (found or {}).get("resources") or ()}

    async def get(self, resource: Resource, namespace: str | None, name: str) -> Any:
        """One object by name; None when it does not exist. Raises ApiException otherwise."""
        try:
            return await self.call("GET", resource.path(namespace, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def read_secret(self, namespace: str, name: str) -> dict[str, str]:
        """A Secret's data, decoded. Raises ApiException (callers hide its text from users)."""
        secret = await self.call("GET", SECRETS.path(namespace, name))
        return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def _metadata(name: str, namespace: str | None, **fields: Any) -> dict[str, Any]:
    """An apply's metadata: the name, the namespace of a namespaced object, the fields set."""
    found = {"name": name, "namespace": namespace, **fields}
    return {k: v for k, v in found.items() if v}


def selectors(labels: str, fields: str) -> dict[str, str]:
    """The query parameters of a label and a field selector ("" = none)."""
    return {k: v for k, v in (("labelSelector", labels), ("fieldSelector", fields)) if v}


def path_kind(path: str) -> str:
    """The plural of an API path (``.../vips/web/status`` → ``vips``), for metrics."""
    parts = [p for p in path.split("?")[0].split("/") if p]
    if "namespaces" in parts:
        index = parts.index("namespaces")
        if len(parts) > index + 2:
            return parts[index + 2]
    for i, part in enumerate(parts):
        if part in ("v1", "v1alpha1") and i + 1 < len(parts):
            return parts[i + 1]
    return parts[-1] if parts else ""

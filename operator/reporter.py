"""The status reporter: the only writer of statuses, finalizers and Events (a test enforces it).

Statuses are merge patches conditional on the resourceVersion the writer read, so a
controller and an agent writing one object never overwrite each other unseen (server-side
apply was tried first: with two field managers setting the same condition types, field
ownership split inside one condition and a manager dropping its fields left half a condition
the schema refuses). The API's answer goes straight into the informer cache
(``Informer.offer``), so the next comparison is against what was written. A write that
would not change anything is not sent. Events are posted in the background, never delaying
a reconcile; every text a user sees passes the redactor, which removes credential values the
operator holds.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from lbaas.kube.client import Kube
from lbaas.kube.informer import Informer, Obj
from lbaas.kube.resources import BY_KIND, EVENTS, SERVICES, Resource
from lbaas.status import DROP_CONDITIONS, merge_conditions, needs_write, now

log = logging.getLogger(__name__)

FINALIZER = "lbaas.dev/finalizer"
FINALIZER_MANAGER = "lbaas-finalizer"
MAX_PENDING_EVENTS = 1000


class Redactor:
    """Credential values the operator holds; no user-visible text may contain them, and no
    log line (``install``: a driver may put a credential into an error's message or detail,
    or an exception that ends up in a traceback)."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, values: Mapping[str, str]) -> None:
        self._secrets |= {v for v in values.values() if isinstance(v, str) and len(v) >= 4}

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text

    def install(self) -> None:
        """Redact every record the root logger's handlers emit (kopf's and ours)."""
        for handler in logging.getLogger().handlers:
            for old in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
                handler.removeFilter(old)
            handler.addFilter(RedactingFilter(self))


class RedactingFilter(logging.Filter):
    """A handler filter: the record's message, exception text and stack, redacted."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.redact:
            return True
        message = record.getMessage()
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            clean = self.redact(record.exc_text)
            if clean != record.exc_text:
                # Formatters that format exc_info themselves (JSON) must not see it.
                record.exc_text, record.exc_info = clean, None
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class Reporter:
    """Writes what the reconcilers decided; reads nothing but the informer caches."""

    def __init__(
        self,
        kube: Kube,
        informers: Mapping[Resource, Informer],
        *,
        event_namespace: str,
        instance: str,
    ) -> None:
        self.kube = kube
        self.informers = informers
        self.event_namespace = event_namespace
        self.instance = instance
        self.redact = Redactor()
        self._events: set[asyncio.Task[None]] = set()

    # ---- statuses ----------------------------------------------------------------------------

    async def status(self, obj: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
        """Write ``desired`` (fields of ``status``; None removes one) unless it says nothing new.

        A merge patch, conditional on the resourceVersion ``obj`` was read at: two writers (a
        controller, an agent) never overwrite each other unseen; the loser gets 409 and tries
        again with the newer object. Conditions are merged by type into the stored list, so a
        writer keeps those it does not set. False when the object changed meanwhile or is gone.
        """
        current = obj.get("status") or {}
        if not needs_write(current, desired):
            return True
        patch = self._redacted(desired)
        drop = tuple(patch.pop(DROP_CONDITIONS, ()))
        if "conditions" in patch or drop:
            patch["conditions"] = merge_conditions(
                current.get("conditions") or [], patch.get("conditions") or [], drop
            )
        meta = obj["metadata"]
        resource = BY_KIND[obj["kind"]]
        try:
            written = await self.kube.merge_patch(
                resource,
                meta.get("namespace"),
                meta["name"],
                {"metadata": {"resourceVersion": meta.get("resourceVersion")}, "status": patch},
                sub="status",
            )
        except ApiException as exc:
            if exc.status == 409:
                return False
            if exc.status == 422:
                log.error("status of %s %s refused: %s", obj["kind"], meta["name"], exc.body)
                return True
            raise
        if written is None:
            return False
        informer = self.informers.get(resource)
        if informer is not None:
            informer.offer(written)
        return True

    def _redacted(self, status: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(status)
        if isinstance(out.get("message"), str):
            out["message"] = self.redact(out["message"])
        if "conditions" in out:
            out["conditions"] = [
                {**c, "message": self.redact(str(c.get("message", "")))} for c in out["conditions"]
            ]
        return out

    async def service_load_balancer(self, service: Obj, load_balancer: Mapping[str, Any]) -> bool:
        """A Service's ``status.loadBalancer`` (merge patch: the Service is not ours).

        Keys left out of ``load_balancer`` are removed (a merge patch keeps what it does not
        name, so ``{}`` alone would never clear an ``ingress``)."""
        current = (service.get("status") or {}).get("loadBalancer") or {}
        if current == load_balancer:
            return True
        meta = service["metadata"]
        patch = {**{k: None for k in current if k not in load_balancer}, **load_balancer}
        written = await self.kube.merge_patch(
            SERVICES,
            meta["namespace"],
            meta["name"],
            {"status": {"loadBalancer": patch}},
            sub="status",
        )
        if written is not None and SERVICES in self.informers:
            self.informers[SERVICES].offer(written)
        return written is not None

    # ---- finalizers --------------------------------------------------------------------------

    async def finalizer(self, obj: Mapping[str, Any], *, present: bool) -> bool:
        """Add or remove our finalizer (other finalizers stay). False when the object is gone
        or is another object now (conditional on its uid: never recreates a deleted one)."""
        meta = obj["metadata"]
        if (FINALIZER in (meta.get("finalizers") or ())) == present:
            return True
        resource = BY_KIND[obj["kind"]]
        try:
            written = await self.kube.apply_finalizer(
                resource,
                meta.get("namespace"),
                meta["name"],
                FINALIZER,
                present=present,
                manager=FINALIZER_MANAGER,
                uid=meta.get("uid"),
            )
        except ApiException as exc:
            if exc.status == 409:  # that object is gone (or was replaced by a new one)
                return False
            if exc.status == 422 and not present:
                # Gone: the apply tried to create it and the schema refused the bare object
                # (an apply to an existing one keeps its spec and cannot be invalid).
                return False
            raise
        if written is not None and resource in self.informers:
            self.informers[resource].offer(written)
        return written is not None

    # ---- events --------------------------------------------------------------------------------

    def event(self, obj: Mapping[str, Any], *, reason: str, message: str, warning: bool) -> None:
        """Post an Event about ``obj`` in the background (cluster-scoped objects: the
        operator's namespace, where its RBAC allows Events)."""
        if len(self._events) >= MAX_PENDING_EVENTS:
            log.warning("event dropped (backlog full): %s %s", reason, message)
            return
        task = asyncio.create_task(self._post(obj, reason, self.redact(message), warning))
        self._events.add(task)
        task.add_done_callback(self._events.discard)

    def warn(self, obj: Mapping[str, Any], *, reason: str, message: str) -> None:
        self.event(obj, reason=reason, message=message, warning=True)

    def info(self, obj: Mapping[str, Any], *, reason: str, message: str) -> None:
        self.event(obj, reason=reason, message=message, warning=False)

    async def _post(self, obj: Mapping[str, Any], reason: str, message: str, warn: bool) -> None:
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or self.event_namespace
        stamp = now()
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta.get('name', 'object')[:200]}.{uuid.uuid4().hex[:12]}",
                "namespace": namespace,
            },
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"),
                "kind": obj.get("kind"),
                "name": meta.get("name"),
                "namespace": meta.get("namespace") or "",
                "uid": meta.get("uid"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warn else "Normal",
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "source": {"component": "lbaas-operator"},
            "reportingComponent": "lbaas.dev/operator",
            "reportingInstance": self.instance,
        }
        for attempt in range(3):
            try:
                await self.kube.create(EVENTS, namespace, body)
                return
            except Exception as exc:  # events are best effort; never fail a reconcile
                if attempt == 2:
                    log.warning("event %s on %s not posted: %s", reason, meta.get("name"), exc)
                else:
                    await asyncio.sleep(0.5 * (attempt + 1))

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait (a little) for Events still being posted; at shutdown."""
        if self._events:
            await asyncio.wait(set(self._events), timeout=timeout)

"""The Services controller: keeps each LoadBalancer Service's VIP trees in step with it.

It runs in the controller role (it creates objects: one writer at a time, the leader). One
reconcile per Service at a time, keyed by (namespace, name); a Service, one of its
EndpointSlices or one of its generated objects changing queues it again. A reconcile:

1. The Service is gone, being deleted, or no longer ours (type or class changed): delete the
   generated objects (VIPs first: their finalizer makes the agent take them off the device),
   take our addresses out of ``status.loadBalancer``, and drop the Service's finalizer once
   no generated VIP is left. The test bed (like a cluster whose garbage collector lags) does
   not cascade ownerReferences, so this is what removes the trees.
2. Ours: our finalizer on the Service first (nothing is created that a deletion could miss),
   then the desired objects (:mod:`lbaas.services.translate`) are server-side applied, only
   those that differ from the cache, in waves (VIPs, Pools, then Members and monitors) so
   children never wait for a parent; objects no longer desired are deleted.
3. Invalid annotations: a Warning Event, and the VIPs, Pools and HealthMonitors stay as they
   are; Members keep following the endpoints (pods restarting while someone fixes a typo
   must not turn into traffic sent to dead addresses).
4. ``status.loadBalancer`` once every VIP is settled (Active or Error), through the reporter.

What the Service is told (Warning Events, once per distinct message; the errors of its
generated objects) is :class:`~lbaas.services.notices.Notices`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from lbaas import metrics
from lbaas.config import OperatorSettings
from lbaas.generated.objects import GeneratedObjects, matters
from lbaas.kinds import BY_KIND
from lbaas.kube.client import Kube
from lbaas.kube.informer import Change, Key, Obj
from lbaas.reporter import FINALIZER, Reporter
from lbaas.services import translate
from lbaas.services.annotations import Options, parse
from lbaas.services.notices import Notices
from lbaas.views import (
    SERVICE_LABEL,
    SLICE_SERVICE_LABEL,
    Views,
    is_deleting,
    meta_of,
    spec_of,
    status_of,
)
from lbaas.workqueue import KeyedQueue

log = logging.getLogger(__name__)

MANAGER = "lbaas-services"
GENERATES = ("VIP", "Pool", "Member", "HealthMonitor")
"""The kinds a Service's tree has (no L7Policy: a Service routes by port, not by request)."""


class ServiceController:
    """Generates and removes the VIP trees of LoadBalancer Services (see the module doc)."""

    def __init__(
        self, *, kube: Kube, views: Views, reporter: Reporter, settings: OperatorSettings
    ) -> None:
        self.kube = kube
        self.views = views
        self.reporter = reporter
        self.cls = settings.load_balancer_class
        self.take_unclassed = settings.default_load_balancer_class
        self._queue: KeyedQueue[Key] = KeyedQueue(
            self.reconcile, name="services", backoff_max=settings.retry_backoff_max
        )
        self.objects = GeneratedObjects(kube, views, manager=MANAGER, writes=metrics.SERVICE_WRITES)
        self.notices = Notices(views=views, reporter=reporter)

    # ---- the queue ---------------------------------------------------------------------------

    def start(self, concurrency: int = 4) -> None:
        self._queue.start(concurrency)
        for service in self.views.services():
            if self._concerns(service):
                self.trigger(_key(service))
        for key in self.views.services_with_generated():
            self.trigger(key)

    async def stop(self) -> None:
        await self._queue.stop()
        self.objects.forget()

    def trigger(self, key: Key) -> None:
        self._queue.add(key)

    # ---- what a change means -------------------------------------------------------------------

    def _ours(self, service: Mapping[str, Any] | None) -> bool:
        return translate.is_ours(service, self.cls, self.take_unclassed)

    def _concerns(self, service: Mapping[str, Any] | None) -> bool:
        return self._ours(service) or FINALIZER in (meta_of(service).get("finalizers") or ())

    def on_change(self, change: Change) -> None:
        kind, (namespace, name) = change.resource.kind, change.key
        if kind == "Service":
            if (
                self._concerns(change.old)
                or self._concerns(change.new)
                or self.views.generated(namespace, name)
            ):
                self.trigger(change.key)
        elif kind == "EndpointSlice":
            for obj in (change.old, change.new):
                service = (meta_of(obj).get("labels") or {}).get(SLICE_SERVICE_LABEL)
                if service and self._concerns(self.views.service(namespace, str(service))):
                    self.trigger((namespace, str(service)))
        elif kind in BY_KIND:
            if change.new is None:
                self.objects.gone(str(meta_of(change.old).get("uid")))
            if matters(change):
                for obj in (change.old, change.new):
                    service = (meta_of(obj).get("labels") or {}).get(SERVICE_LABEL)
                    if service:
                        self.trigger((namespace, str(service)))
            self.notices.relay_error(change)

    # ---- one Service ---------------------------------------------------------------------------

    async def reconcile(self, key: Key) -> None:
        service = self.views.service(*key)
        if service is None or is_deleting(service) or not self._ours(service):
            await self._remove(key, service)
            return
        if FINALIZER not in (meta_of(service).get("finalizers") or ()):
            if not await self.reporter.finalizer(service, present=True):
                return  # gone meanwhile: its deletion queues it again
            service = self.views.service(*key) or service
        generated = self._generated(key)
        annotations = meta_of(service).get("annotations") or {}
        spec = spec_of(service)
        options, problems = parse(annotations, spec.get("loadBalancerIP"), spec.get("ports"))
        self.notices.say(key, service, "InvalidAnnotation", _problems(problems))
        for note in options.notes:
            self.notices.say(key, service, "Deprecated", note)
        vips = [o for o in generated if o["kind"] == "VIP"]
        slices = self.views.endpoint_slices(*key)
        want = translate.desired(service, slices, Options() if problems else options, vips)
        kinds = ("Member",) if problems else GENERATES
        if problems:  # keep the trees; only Members of the Pools that exist follow the slices
            pools = {meta_of(o)["name"] for o in generated if o["kind"] == "Pool"}
            want.objects = {
                k: b
                for k, b in want.objects.items()
                if k[0] == "Member" and b["spec"]["poolRef"] in pools
            }
        await self._write(key, service, want.objects, generated, kinds)
        self.notices.say(key, service, "UnsupportedProtocol", _unsupported(want.unsupported))
        self.notices.say(
            key,
            service,
            "TargetPortNotFound",
            f"no EndpointSlice port resolves {', '.join(want.unresolved)}"
            if want.unresolved
            else None,
        )
        await self._status(key, service)

    async def _write(
        self,
        key: Key,
        service: Obj,
        objects: Mapping[tuple[str, str], dict[str, Any]],
        generated: Iterable[Obj],
        kinds: tuple[str, ...],
    ) -> None:
        outcome = await self.objects.sync(
            key[0],
            objects,
            generated,
            ours=lambda existing: translate.generated_for(existing, key[1]),
            kinds=kinds,
        )
        self.notices.say(
            key,
            service,
            "NameConflict",
            f"not generated, another object has the name: {', '.join(outcome.conflicts)}"
            if outcome.conflicts
            else None,
        )
        self.notices.say(key, service, "Rejected", "; ".join(outcome.refused) or None)

    async def _remove(self, key: Key, service: Obj | None) -> None:
        """Take the Service's trees off the devices and out of the cluster, then let it go."""
        self.notices.forget(key)
        generated = self._generated(key)
        await self.objects.delete(o for o in generated if not is_deleting(o))
        vips = [o for o in generated if o["kind"] == "VIP"]
        if service is None:
            return
        if not is_deleting(service):
            ours = {str(a) for v in vips for a in (status_of(v).get("address"),) if a}
            current = (status_of(service).get("loadBalancer") or {}).get("ingress") or []
            kept = [i for i in current if i.get("ip") not in ours]
            if kept != current:
                await self.reporter.service_load_balancer(
                    service, {"ingress": kept} if kept else {}
                )
        if any(self.views.get("VIP", key[0], meta_of(v)["name"]) for v in vips):
            return  # the agent is removing them; their deletion queues the Service again
        if FINALIZER in (meta_of(service).get("finalizers") or ()):
            latest = self.views.service(*key) or service
            await self.reporter.finalizer(latest, present=False)
            log.info("Service %s/%s: load balancer removed", *key)

    def _generated(self, key: Key) -> list[Obj]:
        """The objects generated for the Service: labelled for it and owned by a Service of
        that name (a hand-made object that only carries the label is never deleted), of the
        kinds it generates."""
        return [
            o
            for o in self.views.generated(*key)
            if o["kind"] in GENERATES and translate.generated_for(o, key[1])
        ]

    async def _status(self, key: Key, service: Obj) -> None:
        vips = {meta_of(o)["name"]: o for o in self._generated(key) if o["kind"] == "VIP"}
        wanted = translate.load_balancer_status(service, vips)
        if wanted is None:
            return
        latest = self.views.service(*key) or service
        before = [
            i.get("ip") for i in (status_of(latest).get("loadBalancer") or {}).get("ingress") or ()
        ]
        if await self.reporter.service_load_balancer(latest, wanted):
            after = [i.get("ip") for i in wanted.get("ingress") or ()]
            if after and after != before:
                self.reporter.info(
                    latest, reason="IPAllocated", message=f"serving on {', '.join(after)}"
                )


def _key(obj: Mapping[str, Any]) -> Key:
    return (str(meta_of(obj).get("namespace") or ""), str(meta_of(obj).get("name")))


def _problems(problems: list[str]) -> str | None:
    if not problems:
        return None
    return (
        "; ".join(problems) + ": the load balancer keeps its current settings (its members"
        " still follow the endpoints) until the annotations are fixed"
    )


def _unsupported(ports: list[str]) -> str | None:
    if not ports:
        return None
    return f"ports {', '.join(ports)} not served: this load balancer supports TCP and UDP only"

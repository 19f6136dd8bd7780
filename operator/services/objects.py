"""Writing the objects generated for Services: server-side applies and deletes, counted.

Part of the Services controller: each generated VIP, Pool, Member and HealthMonitor is one
server-side apply (field manager ``lbaas-services``; force: these objects are ours), whose
answer goes straight into the informer cache; what the API server refuses (422) is reported
on the Service rather than retried. Deletes are sent once per object: until the watch reports
it gone the cache still holds it, and a reconcile in between must not delete it again.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from lbaas import metrics
from lbaas.kinds import BY_KIND
from lbaas.kube.client import Kube
from lbaas.kube.informer import Obj
from lbaas.views import Views, meta_of

MANAGER = "lbaas-services"


def _api_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except ValueError:
        return str(exc.reason)


class GeneratedObjects:
    """Applies and deletes generated objects; remembers deletes in flight."""

    def __init__(self, kube: Kube, views: Views) -> None:
        self.kube = kube
        self.views = views
        self._deleted: set[str] = set()  # uids deleted, not yet reported gone by the watch

    def forget(self) -> None:
        self._deleted.clear()

    def gone(self, uid: str) -> None:
        """The watch reported the object deleted."""
        self._deleted.discard(uid)

    async def apply(self, body: Mapping[str, Any], refused: list[str]) -> None:
        """Server-side apply of one generated object; the answer goes into the cache. What
        the API server refuses (422) is added to ``refused``: retrying cannot help until the
        Service changes."""
        resource = BY_KIND[str(body["kind"])].resource
        try:
            written = await self.kube.apply(resource, body, manager=MANAGER, force=True)
        except ApiException as exc:
            if exc.status != 422:
                raise
            refused.append(f"{body['kind']} {body['metadata']['name']}: {_api_message(exc)}")
            return
        metrics.SERVICE_WRITES.labels(body["kind"], "apply").inc()
        informer = self.views.informers.get(resource)
        if informer is not None and written:
            informer.offer(dict(written))

    async def delete(self, objs: Iterable[Obj]) -> None:
        """VIPs first, so the agent removes each tree whole rather than member by member."""
        objs = list(objs)
        for first in (True, False):
            batch = [o for o in objs if (o["kind"] == "VIP") == first]
            await asyncio.gather(*(self._delete_one(o) for o in batch))

    async def _delete_one(self, obj: Obj) -> None:
        """Delete once: until the watch reports it gone, the cache still holds the object,
        and a reconcile in between must not send the same delete again."""
        meta = meta_of(obj)
        uid = str(meta.get("uid"))
        if uid in self._deleted:
            return
        self._deleted.add(uid)
        try:
            if await self.kube.delete(
                BY_KIND[obj["kind"]].resource, meta["namespace"], meta["name"]
            ):
                metrics.SERVICE_WRITES.labels(obj["kind"], "delete").inc()
        except Exception:
            self._deleted.discard(uid)
            raise
